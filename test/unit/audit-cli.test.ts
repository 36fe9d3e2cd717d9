/** `writ audit verify`: offline verification of proof and consistency bundles from a real log. */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeConsistencyBundle, encodeProofBundle, MAX_BUNDLE_BYTES } from '../../src/audit/bundle.js';
import { AuditLog, appendAudit } from '../../src/audit/log.js';
import { noteSigner } from '../../src/audit/note.js';
import { ManualClock } from '../../src/clock.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { runCli } from '../helpers/cli.js';
import { auditRecord } from '../store/conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'writ-audit-cli-'));
const signer = noteSigner('example.org/audit', generateKeyPairSync('ed25519').privateKey);
const other = noteSigner('example.org/audit', generateKeyPairSync('ed25519').privateKey);
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
let proofFile: string;
let consistencyFile: string;
let proofText: string;

beforeAll(async () => {
  const store = new SqliteStore(join(dir, 'w.db'));
  try {
    const log = new AuditLog({ store, signer, clock: new ManualClock(0) });
    await store.transaction(async (tx) => {
      for (let i = 0; i < 3; i++) await appendAudit(tx, auditRecord(i, { reason: i === 1 ? 'two\nlines' : null }));
    });
    const c3 = await log.checkpoint();
    await store.transaction(async (tx) => {
      for (let i = 3; i < 9; i++) await appendAudit(tx, auditRecord(i));
    });
    const c9 = await log.checkpoint();
    const b = await log.prove(1, 9);
    proofText = encodeProofBundle({ v: 1, seq: 1, record: b.record, checkpoint: c9.note, inclusion: b.proof });
    proofFile = file('proof.json', proofText);
    consistencyFile = file('consistency.json', encodeConsistencyBundle({ v: 1, old: c3.note, new: c9.note, consistency: await log.consistency(3, 9) }));
  } finally {
    await store.close();
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('writ audit verify', () => {
  it('verifies a proof bundle and prints the record, actor and principal apart, controls escaped', async () => {
    const r = await runCli(['audit', 'verify', '--proof', proofFile, '--audit-key', signer.vkey]);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(/^verified: record 1 is in the log example\.org\/audit of 9 records \(signed checkpoint\)\n/);
    expect(r.out).toContain('  actor      agent spiffe://example.org/agent/1 (jkt jkt-1)\n');
    expect(r.out).toContain('  principal  https://idp.example.org#user-1\n');
    expect(r.out).toContain('  reason     two\\nlines\n');
  });

  it('prints JSON on request', async () => {
    const r = await runCli(['audit', 'verify', '--proof', proofFile, '--audit-key', signer.vkey, '--json']);
    expect(JSON.parse(r.out)).toMatchObject({ verified: true, checkpoint: { size: 9 }, record: { seq: 1, task: 'task-1' } });
  });

  it('verifies a consistency bundle', async () => {
    const r = await runCli(['audit', 'verify', '--consistency', consistencyFile, '--audit-key', signer.vkey]);
    expect(r).toEqual({ code: 0, err: '', out: 'verified: the log example.org/audit of 9 records extends its checkpoint of 3 (both signed)\n' });
  });

  it.each([
    ['another audit key', () => ['--proof', proofFile, '--audit-key', other.vkey], /no signature by example\.org\/audit/],
    [
      'an altered record',
      () => {
        const j = JSON.parse(proofText);
        const rec = Buffer.from(j.record, 'base64').toString().replace('"decision":"allow"', '"decision":"deny"');
        return ['--proof', file('altered.json', JSON.stringify({ ...j, record: Buffer.from(rec).toString('base64') })), '--audit-key', signer.vkey];
      },
      /does not lead to the root/,
    ],
    ['a file that is not a bundle', () => ['--proof', file('junk.json', '{"v":1}'), '--audit-key', signer.vkey], /exactly the members/],
    [
      'a file larger than any bundle',
      () => ['--proof', file('big.json', ' '.repeat(MAX_BUNDLE_BYTES + 1)), '--audit-key', signer.vkey],
      /larger than any audit bundle/,
    ],
    ['a missing file', () => ['--proof', join(dir, 'none.json'), '--audit-key', signer.vkey], /cannot read/],
    ['a malformed key', () => ['--proof', proofFile, '--audit-key', 'example.org/audit+00+AA=='], /verifier key/],
  ])('fails with %s', async (_n, args, msg) => {
    const r = await runCli(['audit', 'verify', ...args()]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(msg);
  });

  it('is a usage error without exactly one of --proof and --consistency, or without --audit-key', async () => {
    expect((await runCli(['audit', 'verify', '--audit-key', signer.vkey])).code).toBe(2);
    expect((await runCli(['audit', 'verify', '--proof', proofFile, '--consistency', consistencyFile, '--audit-key', signer.vkey])).code).toBe(2);
    expect((await runCli(['audit', 'verify', '--proof', proofFile])).code).toBe(2);
  });
});
