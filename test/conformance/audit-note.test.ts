/**
 * C2SP signed-note and tlog-checkpoint against outside examples (testdata/audit/c2sp-signed-note.json
 * cites them): the spec's example key and note, the Go note package's example reproduced byte
 * for byte (Ed25519 is deterministic), and real checkpoints signed by sum.golang.org; each with
 * mutated twins. Then the issuer's rule: never sign a checkpoint that does not extend the last.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatCheckpoint, parseCheckpoint, signCheckpoint, signNextCheckpoint, verifyCheckpoint, witnessCheckpoint } from '../../src/audit/checkpoint.js';
import { consistencyProof, MemoryTree, rootHash } from '../../src/audit/merkle.js';
import { ed25519FromSeed, MAX_NOTE_SIGNATURES, noteSigner, openNote, parseVerifierKey, signNote } from '../../src/audit/note.js';
import { AuditError } from '../../src/errors.js';
import { REPO_ROOT } from '../helpers/shared.js';

const V = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/testdata/audit/c2sp-signed-note.json'), 'utf8'));

function refused(f: () => unknown, code: AuditError['code'] = 'ERR_CHECKPOINT_INVALID'): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(AuditError);
    expect((e as AuditError).code).toBe(code);
    return (e as Error).message;
  }
  throw new Error(`expected ${code}`);
}

/** The Go note package's private key string: PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>. */
function goSigner(skey: string) {
  const [, , name, , ...key] = skey.split('+') as [string, string, string, string, ...string[]];
  const raw = Buffer.from(key.join('+'), 'base64');
  expect(raw[0]).toBe(1);
  return noteSigner(name, ed25519FromSeed(raw.subarray(1)));
}

describe('C2SP signed-note: outside examples', () => {
  it('parses the spec verifier key and opens the spec note', () => {
    const v = parseVerifierKey(V.spec.vkey);
    expect([v.name, v.keyId]).toEqual(['example.com/foo', 0x530d903a]);
    expect(v.vkey).toBe(V.spec.vkey);
    expect(openNote(V.spec.note, v).text).toBe(V.spec.text);
  });

  it('reproduces the Go note example byte for byte from its private key, and its verifier key', () => {
    const s = goSigner(V.go.skey);
    expect(s.vkey).toBe(V.go.vkey);
    expect(signNote(V.go.text, s)).toBe(V.go.note);
    expect(openNote(Buffer.from(V.go.note), parseVerifierKey(V.go.vkey)).text).toBe(V.go.text);
  });

  const SUMDB = V.sumdb.checkpoints as { note: string; size: number; root: string }[];
  it.each(SUMDB.map((c) => [c.size, c] as const))('opens the sum.golang.org checkpoint of size %i', (_s, c) => {
    const { note, size, root } = c;
    const { text } = openNote(note, parseVerifierKey(V.sumdb.vkey));
    expect(parseCheckpoint(text, V.sumdb.origin)).toEqual({ origin: V.sumdb.origin, size, root: Buffer.from(root, 'base64') });
    expect(formatCheckpoint(parseCheckpoint(text))).toBe(text);
  });

  describe('mutated twins of the spec note', () => {
    const v = parseVerifierKey(V.spec.vkey);
    const n: string = V.spec.note;
    it.each([
      ['altered text', n.replace('example', 'exbmple')],
      ['altered signature byte', n.replace('Uw2QOkn8', 'Uw2QOkn9')],
      ['altered key ID (no signature by the key left)', n.replace('foo Uw2Q', 'foo Vw2Q')],
      ['non-canonical base64', n.replace('yaQM=', 'yaQN=')],
      ['no final newline', n.slice(0, -1)],
      ['no blank line', n.replace('.\n\n', '.\n')],
      ['an ASCII hyphen for the em dash', n.replace('—', '-')],
      ['a control character', n.replace('This', 'Th\u0007s')],
      ['a carriage return', n.replace('message.\n', 'message.\r\n')],
      ['junk after the signatures', `${n}junk\n`],
      ['the signature line twice', n + n.slice(n.indexOf('—'))],
      ['a name with a space', n.replace('example.com/foo', 'example.com foo')],
      ['a lone surrogate', n.replace('This', '\ud800This')],
      ['too many signatures', n + '— other AAAAAAAA\n'.repeat(MAX_NOTE_SIGNATURES)],
    ])('refuses %s', (_name, note) => {
      refused(() => openNote(note, v));
    });

    it('refuses invalid UTF-8 bytes', () => {
      const b = Buffer.from(n);
      b[2] = 0xff;
      refused(() => openNote(b, v));
    });

    it('keeps other keys’ signatures unchecked, in order', () => {
      const extra = `${n}— witness.example/w AAAAAAAAAAA=\n`;
      expect(openNote(extra, v).signatures.map((s) => s.name)).toEqual(['example.com/foo', 'witness.example/w']);
    });

    it.each([
      ['a wrong key ID', V.spec.vkey.replace('530d903a', '530d903b')],
      ['an upper-case key ID', V.spec.vkey.replace('530d903a', '530D903A')],
      ['an unknown algorithm byte', V.spec.vkey.replace('+Aeky', '+Aky')],
      ['a truncated key', V.spec.vkey.slice(0, -1)],
      ['a missing part', 'example.com/foo+530d903a'],
      ['an empty name', V.spec.vkey.replace('example.com/foo', '')],
    ])('refuses a verifier key with %s', (_n, k) => {
      refused(() => parseVerifierKey(k));
    });

    it('refuses the sum.golang.org checkpoint with its size or root changed, or under another origin', () => {
      const c = V.sumdb.checkpoints[0];
      const k = parseVerifierKey(V.sumdb.vkey);
      refused(() => openNote(c.note.replace('65209736', '65209737'), k));
      refused(() => openNote(c.note.replace('5+uG', '5+uH'), k));
      refused(() => parseCheckpoint(openNote(c.note, k).text, 'another origin'));
    });
  });
});

describe('checkpoints signed by the issuer', () => {
  const key = generateKeyPairSync('ed25519').privateKey;
  const origin = 'writ.example.org/audit';
  const signer = noteSigner(origin, key);
  const v = parseVerifierKey(signer.vkey);
  const tree = new MemoryTree();
  for (let i = 0; i < 10; i++) tree.append(Buffer.from(`r${i}`));

  it('signs and verifies origin, size and root', async () => {
    const c = { origin, size: 10, root: await rootHash(tree, 10) };
    const note = signCheckpoint(c, signer);
    expect(note).toMatch(/^writ\.example\.org\/audit\n10\n[A-Za-z0-9+/]{43}=\n\n— writ\.example\.org\/audit [A-Za-z0-9+/]{91}=\n$/);
    expect(verifyCheckpoint(note, v)).toEqual(c);
  });

  it.each([
    ['a leading zero in the size', `o\n010\n${Buffer.alloc(32).toString('base64')}\n`],
    ['a short root', `o\n1\n${Buffer.alloc(31).toString('base64')}\n`],
    ['an extension line', `o\n1\n${Buffer.alloc(32).toString('base64')}\nextension\n`],
    ['no origin', `\n1\n${Buffer.alloc(32).toString('base64')}\n`],
    ['a negative size', `o\n-1\n${Buffer.alloc(32).toString('base64')}\n`],
  ])('refuses a checkpoint body with %s', (_n, text) => {
    refused(() => parseCheckpoint(text));
  });

  it('refuses a checkpoint signed by a key named for another origin', () => {
    refused(() => signCheckpoint({ origin: 'other.example/log', size: 0, root: Buffer.alloc(32) }, signer));
  });

  it('signs the next checkpoint only if it extends the last one', async () => {
    const last = { origin, size: 6, root: await rootHash(tree, 6) };
    const next = { origin, size: 10, root: await rootHash(tree, 10) };
    const proof = await consistencyProof(tree, 6, 10);
    expect(verifyCheckpoint(signNextCheckpoint(last, next, proof, signer), v)).toEqual(next);
    expect(verifyCheckpoint(signNextCheckpoint(undefined, next, [], signer), v)).toEqual(next);

    // A fork: the same first six sizes, another history.
    const fork = new MemoryTree();
    for (let i = 0; i < 10; i++) fork.append(Buffer.from(i === 2 ? 'rewritten' : `r${i}`));
    const forked = { origin, size: 10, root: await rootHash(fork, 10) };
    expect(refused(() => signNextCheckpoint(last, forked, proof, signer), 'ERR_AUDIT_INCONSISTENT')).toMatch(/does not extend/);
    refused(() => signNextCheckpoint(last, forked, [], signer), 'ERR_AUDIT_INCONSISTENT');
    // Same size, another root; and a smaller tree.
    refused(() => signNextCheckpoint(next, forked, [], signer), 'ERR_AUDIT_INCONSISTENT');
    expect(refused(() => signNextCheckpoint(next, last, [], signer), 'ERR_AUDIT_INCONSISTENT')).toMatch(/fewer than/);
  });

  it('a witness accepts a tree that grew consistently and fails loudly on every kind of fork', async () => {
    const at = async (t: MemoryTree, size: number) => signCheckpoint({ origin, size, root: await rootHash(t, size) }, signer);
    const c6 = await at(tree, 6);
    const c10 = await at(tree, 10);
    expect(witnessCheckpoint(undefined, c6, [], v).size).toBe(6);
    expect(witnessCheckpoint(c6, c10, await consistencyProof(tree, 6, 10), v).size).toBe(10);
    expect(witnessCheckpoint(c10, c10, [], v).size).toBe(10);
    // The same key signing another history (a compromised or lying issuer): same sizes, other roots.
    const fork = new MemoryTree();
    for (let i = 0; i < 10; i++) fork.append(Buffer.from(i === 3 ? 'rewritten' : `r${i}`));
    const f10 = await at(fork, 10);
    expect(refused(() => witnessCheckpoint(c6, f10, [], v), 'ERR_AUDIT_INCONSISTENT')).toMatch(/FORK: the consistency proof from 6 to 10/);
    const forkProof = await consistencyProof(fork, 6, 10);
    expect(refused(() => witnessCheckpoint(c6, f10, forkProof, v), 'ERR_AUDIT_INCONSISTENT')).toMatch(/FORK/);
    expect(refused(() => witnessCheckpoint(c10, f10, [], v), 'ERR_AUDIT_INCONSISTENT')).toMatch(/two different roots for 10 records/);
    expect(refused(() => witnessCheckpoint(c10, c6, [], v), 'ERR_AUDIT_INCONSISTENT')).toMatch(/shrank from 10 to 6/);
    // Under another key, neither the kept nor the new checkpoint is taken.
    const stranger = noteSigner(origin, generateKeyPairSync('ed25519').privateKey);
    const strange = signCheckpoint({ origin, size: 10, root: await rootHash(tree, 10) }, stranger);
    refused(() => witnessCheckpoint(c6, strange, [], v));
  });
});
