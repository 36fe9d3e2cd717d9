/**
 * Known answers from outside for the audit log's encoding and hashing, each with mutated twins:
 * RFC 8785's own examples for the canonical JSON, and transparency-dev/merkle's vectors (RFC
 * 6962 / RFC 9162 §2.1 hashing) for leaves, roots, inclusion and consistency proofs. The data
 * files in testdata/audit/ cite where each value comes from.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/audit/jcs.js';
import {
  consistencyProof,
  EMPTY_ROOT,
  inclusionProof,
  leafHash,
  MemoryTree,
  nodeHash,
  rootHash,
  verifyConsistency,
  verifyInclusion,
} from '../../src/audit/merkle.js';
import { AuditError } from '../../src/errors.js';
import { REPO_ROOT } from '../helpers/shared.js';

const data = (name: string) => JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/testdata/audit', name), 'utf8'));
const JCS = data('rfc8785.json') as {
  example: { input: string; output: string };
  sorting: { input: string; valuesInOrder: string[] };
  numbers: [string, string][];
  errors: string[];
};
const MERKLE = data('transparency-dev-merkle.json') as {
  leaves: string[];
  nodes: string[][];
  roots: string[];
  inclusion: { leaf: number; size: number; proof: string[] }[];
  consistency: { size1: number; size2: number; proof: string[] }[];
};
const hex = (s: string) => Buffer.from(s, 'hex');
const double = (bits: string) => Buffer.from(bits, 'hex').readDoubleBE(0);

function auditError(f: () => unknown, code: AuditError['code']): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(AuditError);
    expect((e as AuditError).code).toBe(code);
    return (e as Error).message;
  }
  throw new Error('expected an AuditError');
}

describe('RFC 8785 canonical JSON: the RFC examples', () => {
  it('canonicalizes the §3.2.2 example to the §3.2.3 output', () => {
    expect(canonicalize(JSON.parse(JCS.example.input), { integersOnly: false })).toBe(JCS.example.output);
  });

  it('sorts the §3.2.3 example by UTF-16 code units', () => {
    // Read the values off the text: JSON.parse would put the integer-like key "1" first again.
    const out = canonicalize(JSON.parse(JCS.sorting.input));
    expect([...out.matchAll(/:"([^"]*)"/g)].map((m) => m[1])).toEqual(JCS.sorting.valuesInOrder);
  });

  it.each(JCS.numbers)('serializes IEEE 754 %s as %s (Appendix B)', (bits, want) => {
    expect(canonicalize(double(bits), { integersOnly: false })).toBe(want);
  });

  it.each(JCS.errors)('refuses IEEE 754 %s (NaN, Infinity: Appendix B)', (bits) => {
    auditError(() => canonicalize(double(bits), { integersOnly: false }), 'ERR_AUDIT_RECORD_INVALID');
  });

  describe('mutated twins', () => {
    it('a different member order in the input gives the same bytes; a changed value does not', () => {
      const reordered = JSON.parse(JCS.example.input) as Record<string, unknown>;
      const twin = { string: reordered.string, literals: reordered.literals, numbers: reordered.numbers };
      expect(canonicalize(twin, { integersOnly: false })).toBe(JCS.example.output);
      expect(canonicalize({ ...twin, literals: [null, true, true] }, { integersOnly: false })).not.toBe(JCS.example.output);
    });

    it('code-point order is not code-unit order: U+FB33 sorts after the emoji (surrogates D83D DE00)', () => {
      expect(canonicalize({ '\ufb33': 1, '\u{1f600}': 2 })).toBe('{"\u{1f600}":2,"\ufb33":1}');
    });

    it('integers only by default: the example numbers are refused', () => {
      expect(auditError(() => canonicalize(JSON.parse(JCS.example.input)), 'ERR_AUDIT_RECORD_INVALID')).toMatch(/not a safe integer/);
      auditError(() => canonicalize(2 ** 53), 'ERR_AUDIT_RECORD_INVALID');
      expect(canonicalize(-(2 ** 53 - 1))).toBe('-9007199254740991');
    });

    it.each([
      ['undefined', undefined],
      ['a member that is undefined', { a: undefined }],
      ['a bigint', 1n],
      ['a function', () => 1],
      ['a Date', new Date(0)],
      ['a Map', new Map()],
      ['a Buffer', Buffer.from('a')],
      ['a lone high surrogate', '\ud800'],
      ['a lone low surrogate in a key', { '\udc00': 1 }],
      ['-Infinity', Number.NEGATIVE_INFINITY],
    ])('refuses %s', (_n, v) => {
      auditError(() => canonicalize(v, { integersOnly: false }), 'ERR_AUDIT_RECORD_INVALID');
    });

    it('refuses cycles and nesting past the limit, accepts a repeated (acyclic) reference', () => {
      const a: unknown[] = [];
      a.push(a);
      auditError(() => canonicalize(a), 'ERR_AUDIT_RECORD_INVALID');
      let deep: unknown = 1;
      for (let i = 0; i < 40; i++) deep = [deep];
      auditError(() => canonicalize(deep), 'ERR_AUDIT_RECORD_INVALID');
      const shared = { x: 1 };
      expect(canonicalize([shared, shared])).toBe('[{"x":1},{"x":1}]');
    });

    it('escapes controls as the RFC says: short forms, else lower-case \\u00hh; / and non-ASCII raw', () => {
      expect(canonicalize('\b\t\n\f\r\u0000\u001f\u007f"\\/é')).toBe('"\\b\\t\\n\\f\\r\\u0000\\u001f\u007f\\"\\\\/é"');
    });
  });
});

describe('RFC 9162 §2.1 Merkle tree: transparency-dev/merkle vectors', () => {
  const tree = new MemoryTree();
  const leaves = MERKLE.leaves.map((l) => tree.append(hex(l)));

  it('hashes every leaf and every complete subtree as the vectors say', () => {
    expect(leaves.map((l) => l.toString('hex'))).toEqual(MERKLE.nodes[0]);
    for (let level = 1; level < MERKLE.nodes.length; level++) {
      MERKLE.nodes[level]!.forEach((want, i) => {
        const [l, r] = [MERKLE.nodes[level - 1]![2 * i]!, MERKLE.nodes[level - 1]![2 * i + 1]!];
        expect(nodeHash(hex(l), hex(r)).toString('hex')).toBe(want);
      });
    }
    expect(tree.nodeCount).toBe(15);
  });

  it.each(MERKLE.roots.map((r, size) => [size, r]))('root of the tree of %i leaves', async (size, want) => {
    expect((await rootHash(tree, size as number)).toString('hex')).toBe(want);
  });

  it('the empty tree is SHA-256 of nothing', () => {
    expect(EMPTY_ROOT.toString('hex')).toBe(MERKLE.roots[0]);
  });

  describe.each(MERKLE.inclusion)('inclusion of leaf $leaf (1-based) in tree $size', ({ leaf, size, proof }) => {
    const index = leaf - 1;
    const root = hex(MERKLE.roots[size]!);
    const want = proof.map(hex);

    it('generates the vector proof and verifies it', async () => {
      const got = await inclusionProof(tree, index, size);
      expect(got.map((h) => h.toString('hex'))).toEqual(proof);
      verifyInclusion(index, size, leaves[index]!, got, root);
    });

    // The mutations transparency-dev's corruptInclusionProof applies (proof/verify_test.go).
    const twins: [string, number, number, Buffer, Buffer[], Buffer][] = [
      ['index - 1', index - 1, size, leaves[index]!, want, root],
      ['index + 1', index + 1, size, leaves[index]!, want, root],
      ['index ^ 2', index ^ 2, size, leaves[index]!, want, root],
      ['size * 2', index, size * 2, leaves[index]!, want, root],
      ['size / 2', index, Math.floor(size / 2), leaves[index]!, want, root],
      ['another leaf', index, size, leafHash(Buffer.from('WrongLeaf')), want, root],
      ['the empty root', index, size, leaves[index]!, want, EMPTY_ROOT],
      ['trailing root', index, size, leaves[index]!, [...want, root], root],
      ['preceding root', index, size, leaves[index]!, [root, ...want], root],
      ...want.map((_, i): [string, number, number, Buffer, Buffer[], Buffer] => {
        const w = want.map((h) => Buffer.from(h));
        w[i]![0]! ^= 8;
        return [`proof[${i}] with bit 3 flipped`, index, size, leaves[index]!, w, root];
      }),
      ...(want.length > 0
        ? [['removed last', index, size, leaves[index]!, want.slice(0, -1), root] as [string, number, number, Buffer, Buffer[], Buffer]]
        : []),
    ];
    it.each(twins)('refuses the twin: %s', (_n, i, s, l, p, r) => {
      if (i === index && s === size && l === leaves[index] && r === root && p === want) throw new Error('not a twin');
      auditError(() => verifyInclusion(i, s, l, p, r), 'ERR_AUDIT_PROOF_INVALID');
    });
  });

  describe.each(MERKLE.consistency)('consistency from $size1 to $size2', ({ size1, size2, proof }) => {
    const [r1, r2] = [hex(MERKLE.roots[size1]!), hex(MERKLE.roots[size2]!)];
    const want = proof.map(hex);

    it('generates the vector proof and verifies it', async () => {
      const got = await consistencyProof(tree, size1, size2);
      expect(got.map((h) => h.toString('hex'))).toEqual(proof);
      verifyConsistency(size1, size2, got, r1, r2);
    });

    if (want.length === 0) return;
    // The mutations of transparency-dev's corruptConsistencyProof.
    const twins: [string, number, number, Buffer[], Buffer, Buffer][] = [
      ['size1 - 1', size1 - 1, size2, want, r1, r2],
      ['size1 + 1', size1 + 1, size2, want, r1, r2],
      ['size1 ^ 2', size1 ^ 2, size2, want, r1, r2],
      ['size2 * 2', size1, size2 * 2, want, r1, r2],
      ['size2 / 2', size1, Math.floor(size2 / 2), want, r1, r2],
      ['wrong root1', size1, size2, want, EMPTY_ROOT, r2],
      ['wrong root2', size1, size2, want, r1, EMPTY_ROOT],
      ['swapped roots', size1, size2, want, r2, r1],
      ['empty proof', size1, size2, [], r1, r2],
      ['trailing root1', size1, size2, [...want, r1], r1, r2],
      ['preceding root2', size1, size2, [r2, ...want], r1, r2],
      ['preceding proof[0]', size1, size2, [want[0]!, ...want], r1, r2],
      ['truncated', size1, size2, want.slice(0, -1), r1, r2],
      ...want.map((_, i): [string, number, number, Buffer[], Buffer, Buffer] => {
        const w = want.map((h) => Buffer.from(h));
        w[i]![0]! ^= 16;
        return [`proof[${i}] with bit 4 flipped`, size1, size2, w, r1, r2];
      }),
    ];
    it.each(twins)('refuses the twin: %s', (_n, s1, s2, p, a, b) => {
      auditError(() => verifyConsistency(s1, s2, p, a, b), 'ERR_AUDIT_PROOF_INVALID');
    });
  });

  it('refuses hashes that are not 32 bytes and sizes that go back in time', () => {
    auditError(() => verifyInclusion(0, 1, Buffer.alloc(31), [], Buffer.alloc(31)), 'ERR_AUDIT_PROOF_INVALID');
    auditError(() => verifyConsistency(2, 1, [], EMPTY_ROOT, EMPTY_ROOT), 'ERR_AUDIT_PROOF_INVALID');
    auditError(() => verifyConsistency(1, 1, [], hex(MERKLE.roots[1]!), hex(MERKLE.roots[2]!)), 'ERR_AUDIT_PROOF_INVALID');
    auditError(() => verifyConsistency(0, 1, [EMPTY_ROOT], EMPTY_ROOT, EMPTY_ROOT), 'ERR_AUDIT_PROOF_INVALID');
    verifyConsistency(0, 5, [], EMPTY_ROOT, hex(MERKLE.roots[5]!));
  });
});
