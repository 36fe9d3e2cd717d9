/**
 * The audit log's Merkle tree, hashed as RFC 9162 §2.1 does: leaf `SHA-256(0x00 ‖ record)`,
 * interior node `SHA-256(0x01 ‖ left ‖ right)`, the empty tree `SHA-256()`.
 *
 * The tree is kept as its complete subtrees: node (level, index) is the hash of leaves
 * [index·2^level, (index+1)·2^level), level 0 being the leaf hashes. Appending leaf n stores it
 * and every subtree it completes (at most log2(n)+1 nodes, reading as many left siblings), so
 * appends cost O(log n). Every hash a root or proof needs is a complete subtree or the
 * right-to-left fold of at most log2(n) of them, so proofs read O(log n) stored nodes and never
 * recompute from the leaves. Nodes are addressed by their in-order number
 * (`nodeId`), one integer per node across all levels.
 *
 * Indices are ordinary numbers (no 32-bit bitwise operators): up to MAX_TREE_SIZE leaves.
 */
import { createHash } from 'node:crypto';
import { AuditError } from '../errors.js';

export const HASH_BYTES = 32;
/** Most leaves a tree may hold: keeps every in-order node id below 2^53. */
export const MAX_TREE_SIZE = 2 ** 50;
/** Longest proof accepted: a tree of MAX_TREE_SIZE leaves needs at most 50 (+1 for consistency). */
export const MAX_PROOF_HASHES = 64;

const LEAF_PREFIX = Buffer.of(0x00);
const NODE_PREFIX = Buffer.of(0x01);

/** RFC 9162 §2.1.1: the hash of the empty tree. */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

export const leafHash = (entry: Uint8Array): Buffer => createHash('sha256').update(LEAF_PREFIX).update(entry).digest();
export const nodeHash = (left: Uint8Array, right: Uint8Array): Buffer => createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();

export interface NodeRef {
  readonly level: number;
  readonly index: number;
}

/** The in-order number of node (level, index): unique over all levels, `2^(level+1)·index + 2^level − 1`. */
export const nodeId = (level: number, index: number): number => 2 ** (level + 1) * index + 2 ** level - 1;

/** Reads stored complete-subtree hashes; the result holds one hash per id asked for, or it throws. */
export interface NodeReader {
  nodes(ids: readonly number[]): Promise<ReadonlyMap<number, Buffer>>;
}

const half = (n: number) => Math.floor(n / 2);
const isOdd = (n: number) => n % 2 === 1;

function checkSize(size: number, what: string): void {
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_TREE_SIZE) {
    throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit(merkle): ${what} ${size} is not a tree size`);
  }
}

/** The complete subtrees that make up leaves [start, end), left to right (start aligned as in RFC 9162's recursion). */
export function rangeNodes(start: number, end: number): NodeRef[] {
  const out: NodeRef[] = [];
  let s = start;
  while (s < end) {
    // The largest aligned power of two that starts at s and fits.
    let level = 0;
    while (s % 2 ** (level + 1) === 0 && s + 2 ** (level + 1) <= end) level++;
    out.push({ level, index: s / 2 ** level });
    s += 2 ** level;
  }
  return out;
}

/** The hash of a range from its complete subtrees: `H(p1, H(p2, ... pk))`, which is MTH of the range. */
function fold(parts: readonly Buffer[]): Buffer {
  if (parts.length === 0) return EMPTY_ROOT;
  let acc = parts[parts.length - 1]!;
  for (let i = parts.length - 2; i >= 0; i--) acc = nodeHash(parts[i]!, acc);
  return acc;
}

/** A plan: each output hash is the fold of these complete subtrees. */
type Plan = NodeRef[][];

async function resolve(plan: Plan, reader: NodeReader): Promise<Buffer[]> {
  const ids = [...new Set(plan.flat().map((r) => nodeId(r.level, r.index)))];
  const got = ids.length === 0 ? new Map<number, Buffer>() : await reader.nodes(ids);
  return plan.map((parts) =>
    fold(
      parts.map((r) => {
        const h = got.get(nodeId(r.level, r.index));
        if (!h || h.length !== HASH_BYTES) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit(merkle): node (${r.level}, ${r.index}) is missing`);
        return h;
      }),
    ),
  );
}

/** The left siblings appending leaf `index` combines with, bottom up. */
export function appendSiblings(index: number): NodeRef[] {
  const out: NodeRef[] = [];
  for (let level = 0, i = index; isOdd(i); level++, i = half(i)) out.push({ level, index: i - 1 });
  return out;
}

/** The nodes leaf `index` adds: itself and every subtree it completes; `siblings` as appendSiblings names them. */
export function appendNodes(index: number, leaf: Buffer, siblings: readonly Buffer[]): Array<NodeRef & { hash: Buffer }> {
  const out: Array<NodeRef & { hash: Buffer }> = [{ level: 0, index, hash: leaf }];
  let h = leaf;
  for (let level = 0, i = index; isOdd(i); level++, i = half(i)) {
    const s = siblings[level];
    if (!s || s.length !== HASH_BYTES) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit(merkle): sibling at level ${level} is missing`);
    h = nodeHash(s, h);
    out.push({ level: level + 1, index: half(i), hash: h });
  }
  return out;
}

/** The root of the tree of the first `size` leaves (RFC 9162 §2.1.1 MTH). */
export async function rootHash(reader: NodeReader, size: number): Promise<Buffer> {
  checkSize(size, 'tree size');
  const [root] = await resolve([rangeNodes(0, size)], reader);
  return root!;
}

/** Height of the tree of `size` leaves: ceil(log2(size)). */
function height(size: number): number {
  let h = 0;
  while (2 ** h < size) h++;
  return h;
}

/** RFC 9162 §2.1.3.1 PATH(m, D[n]): the inclusion proof of leaf `index` in the tree of `size` leaves, leaf to root. */
export async function inclusionProof(reader: NodeReader, index: number, size: number): Promise<Buffer[]> {
  checkSize(size, 'tree size');
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
    throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit(merkle): leaf ${index} is not in a tree of ${size}`);
  }
  const plan: Plan = [];
  for (let level = 0, i = index; level < height(size); level++, i = half(i)) {
    const sibling = isOdd(i) ? i - 1 : i + 1;
    const start = sibling * 2 ** level;
    // A right sibling past the end does not exist: the node is carried up unchanged.
    if (start < size) plan.push(rangeNodes(start, Math.min(start + 2 ** level, size)));
  }
  return resolve(plan, reader);
}

/** RFC 9162 §2.1.4.1 PROOF(m, D[n]): the consistency proof from the tree of `size1` leaves to that of `size2`. */
export async function consistencyProof(reader: NodeReader, size1: number, size2: number): Promise<Buffer[]> {
  checkSize(size1, 'first tree size');
  checkSize(size2, 'second tree size');
  if (size1 > size2) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit(merkle): tree of ${size1} cannot precede one of ${size2}`);
  if (size1 === 0 || size1 === size2) return [];
  const plan: Plan = [];
  // SUBPROOF(m, D[start : start+n], b), iteratively: the recursion only ever descends one side.
  let m = size1;
  let start = 0;
  let n = size2;
  let complete = true;
  while (m !== n) {
    let k = 1;
    while (k * 2 < n) k *= 2;
    if (m <= k) {
      plan.unshift(rangeNodes(start + k, start + n));
      n = k;
    } else {
      plan.unshift(rangeNodes(start, start + k));
      m -= k;
      start += k;
      n -= k;
      complete = false;
    }
  }
  if (!complete) plan.unshift(rangeNodes(start, start + m));
  return resolve(plan, reader);
}

const badProof = (message: string): never => {
  throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit(merkle): ${message}`);
};

function checkHashes(proof: readonly Uint8Array[], ...hashes: Uint8Array[]): void {
  if (proof.length > MAX_PROOF_HASHES) badProof(`proof of ${proof.length} hashes is longer than ${MAX_PROOF_HASHES}`);
  for (const h of [...proof, ...hashes]) if (h.length !== HASH_BYTES) badProof(`a hash of ${h.length} bytes is not SHA-256`);
}

/** RFC 9162 §2.1.3.2: the root an inclusion proof leads to from `leaf` (a leaf hash). */
export function rootFromInclusionProof(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[]): Buffer {
  checkSize(size, 'tree size');
  checkHashes(proof, leaf);
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) badProof(`leaf ${index} is not in a tree of ${size}`);
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) badProof('inclusion proof is too long');
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) badProof('inclusion proof is too short');
  return r;
}

/** Throws unless `proof` shows leaf hash `leaf` at `index` in the tree of `size` leaves whose root is `root`. */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): void {
  checkHashes([], root);
  if (!rootFromInclusionProof(index, size, leaf, proof).equals(root)) badProof(`inclusion proof of leaf ${index} does not lead to the root of tree ${size}`);
}

/** RFC 9162 §2.1.4.2: throws unless `proof` shows the tree (size1, root1) is a prefix of (size2, root2). */
export function verifyConsistency(size1: number, size2: number, proof: readonly Uint8Array[], root1: Uint8Array, root2: Uint8Array): void {
  checkSize(size1, 'first tree size');
  checkSize(size2, 'second tree size');
  checkHashes(proof, root1, root2);
  if (size1 > size2) badProof(`tree of ${size1} cannot precede one of ${size2}`);
  if (size1 === size2) {
    if (proof.length !== 0) badProof('consistency proof between equal sizes must be empty');
    if (!Buffer.from(root1).equals(root2)) badProof(`two different roots for tree size ${size1}`);
    return;
  }
  if (size1 === 0) {
    if (proof.length !== 0) badProof('consistency proof from the empty tree must be empty');
    return;
  }
  if (proof.length === 0) badProof('consistency proof is empty');
  // Step 2: when size1 is a power of two, the old root is itself the first node of the path.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = Buffer.from(path[0]!);
  for (const c of path.slice(1)) {
    if (sn === 0) badProof('consistency proof is too long');
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) badProof('consistency proof is too short');
  if (!fr.equals(root1)) badProof(`consistency proof does not lead to the root of tree ${size1}`);
  if (!sr.equals(root2)) badProof(`consistency proof does not lead to the root of tree ${size2}`);
}

function isPowerOfTwo(n: number): boolean {
  let p = 1;
  while (p < n) p *= 2;
  return p === n;
}

/** A tree held in memory (tests, `verify-log`): the same node layout the store keeps. */
export class MemoryTree implements NodeReader {
  private readonly stored = new Map<number, Buffer>();
  private leaves = 0;

  get size(): number {
    return this.leaves;
  }

  /** Appends one entry (its bytes, not its hash); returns the leaf hash. */
  append(entry: Uint8Array): Buffer {
    return this.appendWithNodes(entry)[0]!.hash;
  }

  /** Appends one entry; returns the nodes it added, the leaf first, by in-order id. */
  appendWithNodes(entry: Uint8Array): Array<{ id: number; hash: Buffer }> {
    if (this.leaves >= MAX_TREE_SIZE) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit(merkle): a tree holds at most ${MAX_TREE_SIZE} leaves`);
    const siblings = appendSiblings(this.leaves).map((r) => this.stored.get(nodeId(r.level, r.index))!);
    const added = appendNodes(this.leaves, leafHash(entry), siblings).map((n) => ({ id: nodeId(n.level, n.index), hash: n.hash }));
    for (const n of added) this.stored.set(n.id, n.hash);
    this.leaves++;
    return added;
  }

  async nodes(ids: readonly number[]): Promise<ReadonlyMap<number, Buffer>> {
    const out = new Map<number, Buffer>();
    for (const id of ids) {
      const h = this.stored.get(id);
      if (h) out.set(id, h);
    }
    return out;
  }

  /** How many nodes are stored: 2n − popcount(n) for n leaves. */
  get nodeCount(): number {
    return this.stored.size;
  }
}
