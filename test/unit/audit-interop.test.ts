/**
 * The audit formats as docs/audit.md defines them, checked by an independent verifier written
 * from that document alone (test/interop/verify_audit.py, Python with stock `cryptography`):
 * a checkpoint signature, an inclusion proof and a consistency proof made by writ over a real
 * SQLite log, and mutated twins of each that both verifiers must refuse.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeConsistencyBundle,
  encodeProofBundle,
  parseConsistencyBundle,
  parseProofBundle,
  verifyConsistencyBundle,
  verifyProofBundle,
} from '../../src/audit/bundle.js';
import { AuditLog, appendAudit } from '../../src/audit/log.js';
import { noteSigner, parseVerifierKey } from '../../src/audit/note.js';
import { parseRecord } from '../../src/audit/record.js';
import { ManualClock } from '../../src/clock.js';
import { AuditError } from '../../src/errors.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { auditRecord } from '../store/conformance.js';

const PY = join(REPO_ROOT, 'test', 'interop', 'verify_audit.py');
const havePython = spawnSync('/usr/bin/python3', ['-c', 'import cryptography']).status === 0;
/** Kept for the whole file (helpers/tmp.ts removes its directories after each test). */
const dir = mkdtempSync(join(tmpdir(), 'writ-audit-py-'));
const signer = noteSigner('example.org/audit', generateKeyPairSync('ed25519').privateKey);
const other = noteSigner('example.org/audit', generateKeyPairSync('ed25519').privateKey);
let store: SqliteStore;
let proofText: string;
let consistencyText: string;
let note13: string;

function python(verb: string, vkey: string, text: string): { ok: boolean; out: string } {
  const file = join(dir, `${verb}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, text);
  const r = spawnSync('/usr/bin/python3', [PY, verb, vkey, file], { encoding: 'utf8' });
  return { ok: r.status === 0, out: (r.status === 0 ? r.stdout : r.stderr).trim() };
}

beforeAll(async () => {
  store = new SqliteStore(join(dir, 'w.db'));
  const log = new AuditLog({ store, signer, clock: new ManualClock(1_700_000_000_000) });
  await store.transaction(async (tx) => {
    for (let i = 0; i < 6; i++) await appendAudit(tx, auditRecord(i, { reason: i === 4 ? 'line\nbreak "quoted" \u0001 é 😀' : null }));
  });
  const c6 = await log.checkpoint();
  await store.transaction(async (tx) => {
    for (let i = 6; i < 13; i++) await appendAudit(tx, auditRecord(i));
  });
  const c13 = await log.checkpoint();
  note13 = c13.note;
  const b = await log.prove(4, 13);
  proofText = encodeProofBundle({ v: 1, seq: 4, record: b.record, checkpoint: c13.note, inclusion: b.proof });
  consistencyText = encodeConsistencyBundle({ v: 1, old: c6.note, new: c13.note, consistency: await log.consistency(6, 13) });
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('audit bundles verified by writ', () => {
  it('verifies the proof bundle and the consistency bundle', () => {
    const v = parseVerifierKey(signer.vkey);
    const { record, checkpoint } = verifyProofBundle(parseProofBundle(proofText), v);
    expect([record.seq, checkpoint.size]).toEqual([4, 13]);
    const c = verifyConsistencyBundle(parseConsistencyBundle(consistencyText), v);
    expect([c.old.size, c.new.size]).toEqual([6, 13]);
  });

  it('refuses them under another key, with the record altered, or with the proof cut short', () => {
    expect(() => verifyProofBundle(parseProofBundle(proofText), parseVerifierKey(other.vkey))).toThrow(AuditError);
    const j = JSON.parse(proofText);
    const altered = Buffer.from(Buffer.from(j.record, 'base64').toString().replace('"decision":"allow"', '"decision":"deny"'));
    expect(() => verifyProofBundle(parseProofBundle(JSON.stringify({ ...j, record: altered.toString('base64') })), signer)).toThrow(/does not lead/);
    expect(() => verifyProofBundle(parseProofBundle(JSON.stringify({ ...j, inclusion: j.inclusion.slice(1) })), signer)).toThrow(AuditError);
    expect(() => parseProofBundle(JSON.stringify({ ...j, extra: 1 }))).toThrow(/exactly the members/);
  });
});

describe.skipIf(!havePython && !process.env.CI)('audit bundles verified by the Python verifier written from docs/audit.md', () => {
  it('checks a checkpoint signature', () => {
    const r = python('checkpoint', signer.vkey, note13);
    expect(r).toEqual({ ok: true, out: expect.stringMatching(/^example\.org\/audit 13 [0-9a-f]{64}$/) });
  });

  it('checks an inclusion proof of a record with escapes and non-ASCII text', () => {
    expect(parseRecord(Buffer.from(JSON.parse(proofText).record, 'base64')).reason).toContain('😀');
    expect(python('inclusion', signer.vkey, proofText)).toEqual({ ok: true, out: '4 13 handshake.issued' });
  });

  it('checks a consistency proof', () => {
    expect(python('consistency', signer.vkey, consistencyText)).toEqual({ ok: true, out: '6 13' });
  });

  describe('and refuses the mutated twins', () => {
    const twins: [string, string, () => string, string?][] = [
      ['a checkpoint under another key', 'checkpoint', () => note13, other.vkey],
      ['a checkpoint with its size changed', 'checkpoint', () => note13.replace('\n13\n', '\n12\n')],
      [
        'a record with its decision changed',
        'inclusion',
        () => {
          const j = JSON.parse(proofText);
          const rec = Buffer.from(j.record, 'base64').toString().replace('"decision":"allow"', '"decision":"deny"');
          return JSON.stringify({ ...j, record: Buffer.from(rec).toString('base64') });
        },
      ],
      [
        'a record not in canonical form',
        'inclusion',
        () => {
          const j = JSON.parse(proofText);
          return JSON.stringify({
            ...j,
            record: Buffer.from(JSON.stringify(JSON.parse(Buffer.from(j.record, 'base64').toString()), null, 1)).toString('base64'),
          });
        },
      ],
      ['a proof for another seq', 'inclusion', () => JSON.stringify({ ...JSON.parse(proofText), seq: 5 })],
      [
        'an inclusion proof with a flipped bit',
        'inclusion',
        () => {
          const j = JSON.parse(proofText);
          const h = Buffer.from(j.inclusion[1], 'base64');
          h[0]! ^= 1;
          j.inclusion[1] = h.toString('base64');
          return JSON.stringify(j);
        },
      ],
      [
        'a consistency proof cut short',
        'consistency',
        () => {
          const j = JSON.parse(consistencyText);
          return JSON.stringify({ ...j, consistency: j.consistency.slice(0, -1) });
        },
      ],
      [
        'old and new swapped',
        'consistency',
        () => {
          const j = JSON.parse(consistencyText);
          return JSON.stringify({ ...j, old: j.new, new: j.old });
        },
      ],
    ];
    it.each(twins)('%s', (_n, verb, make, vkey) => {
      const text = make();
      const r = python(verb, vkey ?? signer.vkey, text);
      expect(r.ok, r.out).toBe(false);
      expect(r.out).toMatch(/^audit verification failed: /);
      // writ agrees.
      const v = parseVerifierKey(vkey ?? signer.vkey);
      if (verb === 'inclusion') expect(() => verifyProofBundle(parseProofBundle(text), v)).toThrow(AuditError);
      if (verb === 'consistency') expect(() => verifyConsistencyBundle(parseConsistencyBundle(text), v)).toThrow(AuditError);
    });
  });
});

describe('docs/audit.md', () => {
  it('shows an example record that is a record in canonical form', () => {
    const doc = readFileSync(join(REPO_ROOT, 'docs', 'audit.md'), 'utf8');
    const block = doc.split('Example (one line, shown wrapped):\n\n```\n')[1]!.split('\n```')[0]!;
    const r = parseRecord(Buffer.from(block.replace(/\n/g, '')));
    expect([r.seq, r.event, r.actor.kind, r.principal?.sub]).toEqual([7, 'handshake.issued', 'agent', 'alice']);
  });

  it('gives the leaf and node hashing the code uses', () => {
    expect(execFileSync('/usr/bin/python3', ['-c', 'import hashlib;print(hashlib.sha256(b"\\x00").hexdigest())'], { encoding: 'utf8' }).trim()).toBe(
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    );
  });
});
