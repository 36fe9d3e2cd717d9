/**
 * The stored-node Merkle tree against a reference written straight from RFC 9162 §2.1's
 * recursive definitions (MTH, PATH, PROOF over all leaves), for every index and size pair up
 * to 40 leaves; and the cost bounds: an append stores and reads O(log n) nodes, a proof reads
 * O(log n) nodes.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  appendSiblings,
  consistencyProof,
  inclusionProof,
  leafHash,
  MemoryTree,
  type NodeReader,
  nodeHash,
  nodeId,
  rootHash,
  verifyConsistency,
  verifyInclusion,
} from '../../src/audit/merkle.js';

const entries = Array.from({ length: 40 }, (_, i) => Buffer.from(`entry ${i}`));

// RFC 9162 §2.1.1–§2.1.4 as written, recomputing from the leaves.
const k = (n: number) => {
  let p = 1;
  while (p * 2 < n) p *= 2;
  return p;
};
function mth(d: Buffer[]): Buffer {
  if (d.length === 0) return createHash('sha256').digest();
  if (d.length === 1) return leafHash(d[0]!);
  return nodeHash(mth(d.slice(0, k(d.length))), mth(d.slice(k(d.length))));
}
function path(m: number, d: Buffer[]): Buffer[] {
  if (d.length === 1) return [];
  const s = k(d.length);
  return m < s ? [...path(m, d.slice(0, s)), mth(d.slice(s))] : [...path(m - s, d.slice(s)), mth(d.slice(0, s))];
}
function subproof(m: number, d: Buffer[], b: boolean): Buffer[] {
  if (m === d.length) return b ? [] : [mth(d)];
  const s = k(d.length);
  return m <= s ? [...subproof(m, d.slice(0, s), b), mth(d.slice(s))] : [...subproof(m - s, d.slice(s), false), mth(d.slice(0, s))];
}

/** Counts what a reader is asked for. */
class CountingReader implements NodeReader {
  asked = 0;
  constructor(private readonly inner: NodeReader) {}
  nodes(ids: readonly number[]) {
    this.asked += ids.length;
    return this.inner.nodes(ids);
  }
}

describe('Merkle tree against the RFC 9162 definitions', () => {
  const tree = new MemoryTree();
  for (const e of entries) tree.append(e);

  it('roots of every size match MTH', async () => {
    for (let n = 0; n <= entries.length; n++) expect((await rootHash(tree, n)).equals(mth(entries.slice(0, n))), `size ${n}`).toBe(true);
  });

  it('inclusion proofs of every leaf in every size match PATH, and verify', async () => {
    for (let n = 1; n <= entries.length; n++) {
      const root = mth(entries.slice(0, n));
      for (let m = 0; m < n; m++) {
        const got = await inclusionProof(tree, m, n);
        expect(Buffer.concat(got).equals(Buffer.concat(path(m, entries.slice(0, n)))), `leaf ${m} of ${n}`).toBe(true);
        verifyInclusion(m, n, leafHash(entries[m]!), got, root);
      }
    }
  });

  it('consistency proofs between every pair of sizes match PROOF, and verify', async () => {
    for (let n = 1; n <= entries.length; n++) {
      for (let m = 1; m <= n; m++) {
        const got = await consistencyProof(tree, m, n);
        const want = m === n ? [] : subproof(m, entries.slice(0, n), true);
        expect(Buffer.concat(got).equals(Buffer.concat(want)), `${m} → ${n}`).toBe(true);
        verifyConsistency(m, n, got, mth(entries.slice(0, m)), mth(entries.slice(0, n)));
      }
    }
  });

  it('a proof from another tree does not verify (one entry changed)', async () => {
    const other = new MemoryTree();
    for (const [i, e] of entries.entries()) other.append(i === 5 ? Buffer.from('changed') : e);
    const root = await rootHash(tree, 40);
    expect(() => verifyInclusion(5, 40, leafHash(Buffer.from('changed')), [], root)).toThrow(/too short/);
    expect(() => verifyConsistency(10, 40, [], mth(entries.slice(0, 10)), root)).toThrow(/empty/);
    // The fork keeps sizes but not roots: its proof from 10 to 40 fails against the honest roots.
    const forked = await consistencyProof(other, 10, 40);
    expect(() => verifyConsistency(10, 40, forked, mth(entries.slice(0, 10)), root)).toThrow(/does not lead/);
  });
});

describe('cost: nodes stored and read', () => {
  it('an append reads at most log2(n) siblings and stores 2n − popcount(n) nodes in all', () => {
    const t = new MemoryTree();
    for (let i = 0; i < 1000; i++) {
      expect(appendSiblings(i).length).toBeLessThanOrEqual(Math.ceil(Math.log2(i + 2)));
      t.append(Buffer.from([i & 255, i >> 8]));
    }
    const popcount = [...(1000).toString(2)].filter((c) => c === '1').length;
    expect(t.nodeCount).toBe(2 * 1000 - popcount);
  });

  it('a proof in a tree of 1000 reads O(log n) nodes, never the leaves', async () => {
    const t = new MemoryTree();
    for (let i = 0; i < 1000; i++) t.append(Buffer.from(String(i)));
    const r = new CountingReader(t);
    await inclusionProof(r, 3, 1000);
    expect(r.asked).toBeLessThanOrEqual(2 * 10);
    r.asked = 0;
    await consistencyProof(r, 377, 1000);
    expect(r.asked).toBeLessThanOrEqual(2 * 10);
    r.asked = 0;
    await rootHash(r, 999);
    expect(r.asked).toBeLessThanOrEqual(10);
  });

  it('numbers nodes in order, uniquely, with plain arithmetic past 2^32', () => {
    expect([nodeId(0, 0), nodeId(1, 0), nodeId(0, 1), nodeId(2, 0), nodeId(0, 2), nodeId(1, 1)]).toEqual([0, 1, 2, 3, 4, 5]);
    expect(nodeId(0, 2 ** 40)).toBe(2 ** 41);
    expect(appendSiblings(2 ** 33 - 1).length).toBe(33);
  });

  it('a missing stored node is an error, not a wrong proof', async () => {
    const empty: NodeReader = { nodes: async () => new Map() };
    await expect(inclusionProof(empty, 0, 2)).rejects.toThrow(/node \(0, 1\) is missing/);
  });
});
