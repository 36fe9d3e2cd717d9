/**
 * The console's in-browser audit verifier (console/src/verify.ts, WebCrypto) against the issuer's
 * own Merkle tree and signed checkpoints (src/audit): every record of trees of many sizes proves,
 * and a flipped byte of the record, the proof, the checkpoint or its signature is refused.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatCheckpoint, signCheckpoint } from '../../src/audit/checkpoint.js';
import { inclusionProof, MemoryTree, rootHash } from '../../src/audit/merkle.js';
import { noteSigner } from '../../src/audit/note.js';
import { parseCheckpointNote, rootFromInclusionProof, verifyRecordInclusion } from '../../console/src/verify.js';

const signer = noteSigner('writ.test/audit', generateKeyPairSync('ed25519').privateKey);
const other = noteSigner('writ.test/audit', generateKeyPairSync('ed25519').privateKey);
const entry = (i: number) => new TextEncoder().encode(JSON.stringify({ seq: i, event: 'writ.issued' }));

async function world(size: number) {
  const tree = new MemoryTree();
  for (let i = 0; i < size; i++) tree.append(entry(i));
  const root = await rootHash(tree, size);
  const note = signCheckpoint({ origin: signer.name, size, root }, signer);
  return { tree, root, note };
}

describe('console audit verifier (browser code, WebCrypto)', () => {
  it('agrees with the issuer on every leaf of trees of 1..33 records', async () => {
    for (let size = 1; size <= 33; size++) {
      const { tree, root } = await world(size);
      for (let i = 0; i < size; i++) {
        const proof = await inclusionProof(tree, i, size);
        expect(Buffer.from(await rootFromInclusionProof(i, size, entry(i), proof)).equals(root)).toBe(true);
      }
    }
  });

  it('verifies a record against a signed checkpoint', async () => {
    const { tree, note } = await world(21);
    const v = await verifyRecordInclusion({
      seq: 13,
      size: 21,
      canonical: entry(13),
      proof: await inclusionProof(tree, 13, 21),
      checkpoint: note,
      verifierKey: signer.vkey,
    });
    expect(v).toMatchObject({ ok: true, size: 21, origin: signer.name, signed: true });
  });

  it('refuses a tampered record, proof, size, checkpoint or signature, saying why', async () => {
    const { tree, note } = await world(21);
    const proof = await inclusionProof(tree, 13, 21);
    const base = { seq: 13, size: 21, canonical: entry(13), proof, checkpoint: note, verifierKey: signer.vkey };
    const tampered = entry(13);
    tampered[3] ^= 1;
    const cases: Array<[string, Partial<typeof base>, RegExp]> = [
      ['a record byte', { canonical: tampered }, /another root/],
      ['a proof hash', { proof: proof.map((p, i) => (i === 1 ? Buffer.from(p.map((b, j) => (j === 0 ? b ^ 1 : b))) : p)) }, /another root/],
      ['a shorter proof', { proof: proof.slice(1) }, /shorter|another root/],
      ['another position', { seq: 12 }, /another root/],
      ['another tree size', { size: 22 }, /tree of 22/],
      ['another key', { verifierKey: other.vkey }, /key id does not match|not signed/],
      [
        'a checkpoint root',
        { checkpoint: note.replace(/\n([A-Za-z0-9+/]{43}=)\n/, (_m, r: string) => `\n${r[0] === 'A' ? 'B' : 'A'}${r.slice(1)}\n`) },
        /not signed/,
      ],
      ['an unsigned checkpoint', { checkpoint: `${formatCheckpoint({ origin: signer.name, size: 21, root: Buffer.alloc(32) })}\n` }, /signature|not signed/],
    ];
    for (const [what, change, reason] of cases) {
      const v = await verifyRecordInclusion({ ...base, ...change });
      expect(v.ok, what).toBe(false);
      expect(v.ok ? '' : v.reason, what).toMatch(reason);
    }
  });

  it("reads verifier keys whose base64 holds '+' (a split at every '+' would not)", async () => {
    for (let i = 0; i < 40; i++) {
      const k = noteSigner('writ.test/audit', generateKeyPairSync('ed25519').privateKey);
      if (!k.vkey.split('+')[2]!.includes('+') && i < 39) continue;
      const size = 3;
      const tree = new MemoryTree();
      for (let j = 0; j < size; j++) tree.append(entry(j));
      const note = signCheckpoint({ origin: k.name, size, root: await rootHash(tree, size) }, k);
      const v = await verifyRecordInclusion({
        seq: 1,
        size,
        canonical: entry(1),
        proof: await inclusionProof(tree, 1, size),
        checkpoint: note,
        verifierKey: k.vkey,
      });
      expect(v.ok).toBe(true);
      return;
    }
  });

  it('parses the checkpoint it verifies (origin, size, root)', async () => {
    const { note, root } = await world(5);
    const c = parseCheckpointNote(note);
    expect(c).toMatchObject({ origin: signer.name, size: 5 });
    expect(Buffer.from(c.root).equals(root)).toBe(true);
  });
});
