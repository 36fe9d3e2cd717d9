/**
 * Mutators: byte-level (bit and byte flips, interesting values, insert, delete, duplicate,
 * splice, dictionary, length fields) and structure-aware ones that decode a layer, mutate
 * inside it and re-encode it with consistent lengths, so a mutant gets past the outer parser
 * and reaches the inner one: DER trees (with re-computed lengths, or deliberately non-minimal
 * ones), PEM bodies, JSON documents (including duplicate members), compact JWS parts, and
 * base64 strings inside JSON. Each mutator returns a new buffer, or undefined when the input
 * does not have its shape.
 */
import type { Rng } from './rng.js';

export interface MutationContext {
  readonly rng: Rng;
  /** Another corpus entry, for splicing. */
  other(): Buffer;
  readonly dictionary: readonly Buffer[];
  readonly maxLen: number;
}

export type Mutator = (data: Buffer, ctx: MutationContext) => Buffer | undefined;

const INTERESTING_8 = [0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x20, 0x30, 0x0a, 0x22, 0x5c, 0x2e, 0x2f];
const INTERESTING_16 = [0x0000, 0x0001, 0x007f, 0x0080, 0x00ff, 0x0100, 0x7fff, 0x8000, 0xfffe, 0xffff, 0x0400, 0x1000];
const INTERESTING_32 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 20_001, 65_537];

const splice = (a: Buffer, at: number, del: number, ins: Buffer = Buffer.alloc(0)): Buffer =>
  Buffer.concat([a.subarray(0, at), ins, a.subarray(Math.min(a.length, at + del))]);

// ------------------------------------------------------------------ byte level

const flipBit: Mutator = (d, { rng }) => {
  if (d.length === 0) return undefined;
  const o = Buffer.from(d);
  const i = rng.below(o.length);
  o[i]! ^= 1 << rng.below(8);
  return o;
};

const setByte: Mutator = (d, { rng }) => {
  if (d.length === 0) return undefined;
  const o = Buffer.from(d);
  o[rng.below(o.length)] = rng.oneIn(2) ? rng.pick(INTERESTING_8) : rng.below(256);
  return o;
};

const addSmall: Mutator = (d, { rng }) => {
  if (d.length === 0) return undefined;
  const o = Buffer.from(d);
  const width = rng.pick([1, 2, 4]);
  if (o.length < width) return undefined;
  const at = rng.below(o.length - width + 1);
  const delta = (rng.below(35) + 1) * (rng.oneIn(2) ? 1 : -1);
  const le = rng.oneIn(2);
  if (width === 1) o[at] = (o[at]! + delta) & 0xff;
  else if (width === 2) (le ? o.writeUInt16LE : o.writeUInt16BE).call(o, ((le ? o.readUInt16LE(at) : o.readUInt16BE(at)) + delta) & 0xffff, at);
  else (le ? o.writeUInt32LE : o.writeUInt32BE).call(o, ((le ? o.readUInt32LE(at) : o.readUInt32BE(at)) + delta) >>> 0, at);
  return o;
};

const setInteresting: Mutator = (d, { rng }) => {
  const width = rng.pick([2, 4]);
  if (d.length < width) return undefined;
  const o = Buffer.from(d);
  const at = rng.below(o.length - width + 1);
  const le = rng.oneIn(2);
  if (width === 2) (le ? o.writeUInt16LE : o.writeUInt16BE).call(o, rng.pick(INTERESTING_16), at);
  else (le ? o.writeUInt32LE : o.writeUInt32BE).call(o, rng.pick(INTERESTING_32) >>> 0, at);
  return o;
};

const insertBytes: Mutator = (d, { rng }) => {
  const n = rng.size(16);
  const ins = rng.oneIn(2) ? rng.bytes(n) : Buffer.alloc(n, rng.oneIn(2) ? rng.pick(INTERESTING_8) : rng.below(256));
  return splice(d, rng.below(d.length + 1), 0, ins);
};

const insertRepeated: Mutator = (d, { rng, maxLen }) => {
  const n = rng.size(Math.max(2, Math.min(4096, maxLen - d.length)));
  return splice(d, rng.below(d.length + 1), 0, Buffer.alloc(n, rng.pick(INTERESTING_8)));
};

const deleteRange: Mutator = (d, { rng }) => {
  if (d.length < 2) return undefined;
  const n = rng.size(d.length - 1);
  return splice(d, rng.below(d.length - n + 1), n);
};

const duplicateRange: Mutator = (d, { rng }) => {
  if (d.length === 0) return undefined;
  const n = rng.size(d.length);
  const from = rng.below(d.length - n + 1);
  return splice(d, rng.below(d.length + 1), 0, Buffer.from(d.subarray(from, from + n)));
};

const copyOver: Mutator = (d, { rng }) => {
  if (d.length < 2) return undefined;
  const n = rng.size(d.length - 1);
  const from = rng.below(d.length - n + 1);
  const to = rng.below(d.length - n + 1);
  const o = Buffer.from(d);
  d.copy(o, to, from, from + n);
  return o;
};

const truncate: Mutator = (d, { rng }) => (d.length < 2 ? undefined : d.subarray(0, rng.below(d.length)));

/** Crossover: a prefix of this input and a suffix of another, or a chunk of another inserted. */
const crossover: Mutator = (d, ctx) => {
  const o = ctx.other();
  if (o.length === 0) return undefined;
  const { rng } = ctx;
  if (rng.oneIn(2)) return Buffer.concat([d.subarray(0, rng.below(d.length + 1)), o.subarray(rng.below(o.length))]);
  const n = rng.size(o.length);
  const from = rng.below(o.length - n + 1);
  return splice(d, rng.below(d.length + 1), rng.oneIn(2) ? 0 : n, o.subarray(from, from + n));
};

const dictionary: Mutator = (d, { rng, dictionary: dict }) => {
  if (dict.length === 0) return undefined;
  const w = rng.pick(dict);
  const at = rng.below(d.length + 1);
  return rng.oneIn(2) ? splice(d, at, 0, w) : splice(d, at, w.length, w);
};

/**
 * A length field: a u8/u16/u32 (either byte order) set to the number of bytes after it, that
 * ±1, zero or the maximum; or bytes inserted and a length field that encloses them grown by as
 * many (TPM2B sizes, event-log sizes), so the structure stays consistent around the change.
 */
const lengthField: Mutator = (d, { rng }) => {
  if (d.length < 4) return undefined;
  const width = rng.pick([1, 2, 2, 4]);
  const le = rng.oneIn(3);
  const at = rng.below(d.length - width + 1);
  const rest = d.length - at - width;
  const o = Buffer.from(d);
  const max = width === 1 ? 0xff : width === 2 ? 0xffff : 0xffffffff;
  const v = Math.min(max, Math.max(0, rng.pick([rest, rest - 1, rest + 1, 0, max, rng.below(rest + 2)])));
  if (width === 1) o[at] = v;
  else if (width === 2) (le ? o.writeUInt16LE : o.writeUInt16BE).call(o, v, at);
  else (le ? o.writeUInt32LE : o.writeUInt32BE).call(o, v >>> 0, at);
  return o;
};

const growEnclosing: Mutator = (d, { rng }) => {
  if (d.length < 4) return undefined;
  const p = 2 + rng.below(d.length - 1);
  const n = rng.size(32);
  const candidates: Array<{ at: number; width: 2 | 4; le: boolean; v: number }> = [];
  for (let at = 0; at + 2 <= p; at++) {
    for (const le of [false, true]) {
      const v16 = le ? d.readUInt16LE(at) : d.readUInt16BE(at);
      if (v16 > 0 && at + 2 + v16 >= p && at + 2 + v16 <= d.length) candidates.push({ at, width: 2, le, v: v16 });
      if (at + 4 <= p) {
        const v32 = le ? d.readUInt32LE(at) : d.readUInt32BE(at);
        if (v32 > 0 && at + 4 + v32 >= p && at + 4 + v32 <= d.length) candidates.push({ at, width: 4, le, v: v32 });
      }
    }
  }
  if (candidates.length === 0) return undefined;
  const c = rng.pick(candidates);
  const o = splice(d, p, 0, rng.bytes(n));
  if (c.width === 2) (c.le ? o.writeUInt16LE : o.writeUInt16BE).call(o, Math.min(0xffff, c.v + n), c.at);
  else (c.le ? o.writeUInt32LE : o.writeUInt32BE).call(o, c.v + n, c.at);
  return o;
};

/** A run of ASCII digits replaced by an interesting number (JSON numbers, PCR indices, times). */
const asciiNumber: Mutator = (d, { rng }) => {
  const s = d.toString('latin1');
  const runs = [...s.matchAll(/-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g)];
  if (runs.length === 0) return undefined;
  const m = rng.pick(runs);
  const n = rng.pick([
    '0',
    '-1',
    '1',
    '-0',
    '23',
    '24',
    '255',
    '256',
    '65536',
    '4294967296',
    '9007199254740991',
    '9007199254740993',
    '1e308',
    '1e400',
    '0.5',
    '1E2',
    '01',
  ]);
  return Buffer.from(s.slice(0, m.index) + n + s.slice(m.index! + m[0].length), 'latin1');
};

export const BYTE_MUTATORS: readonly Mutator[] = [
  flipBit,
  setByte,
  addSmall,
  setInteresting,
  insertBytes,
  insertRepeated,
  deleteRange,
  duplicateRange,
  copyOver,
  truncate,
  crossover,
  dictionary,
  dictionary,
  lengthField,
  growEnclosing,
  asciiNumber,
];

/** One byte-level mutation (used by the structure-aware mutators on the layer they decoded). */
export function mutateBytes(d: Buffer, ctx: MutationContext): Buffer {
  for (let i = 0; i < 8; i++) {
    const out = ctx.rng.pick(BYTE_MUTATORS)(d, ctx);
    if (out) return out;
  }
  return insertBytes(d, ctx)!;
}

// ------------------------------------------------------------------ DER

interface DerNode {
  tag: number;
  /** Primitive contents (absent when `children` is set). */
  value?: Buffer;
  children?: DerNode[];
  /** Contents of an OCTET STRING, or of a BIT STRING after its unused-bits byte, that are DER themselves. */
  encapsulated?: boolean;
  /** How the encoder writes this node's length: minimal, long form with leading zero, or indefinite. */
  lengthForm?: 'minimal' | 'long' | 'indefinite' | 'off-by-one';
}

/** Parses a sequence of TLVs filling `buf` exactly, leniently (definite lengths, single-byte tags). */
function parseDerList(buf: Buffer, depth: number): DerNode[] | undefined {
  if (depth > 24) return undefined;
  const out: DerNode[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 2 > buf.length) return undefined;
    const tag = buf[off]!;
    if ((tag & 0x1f) === 0x1f) return undefined;
    let len = buf[off + 1]!;
    let p = off + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4 || p + n > buf.length) return undefined;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
      p += n;
    }
    if (p + len > buf.length) return undefined;
    const value = buf.subarray(p, p + len);
    const node: DerNode = { tag };
    if (tag & 0x20) {
      const kids = parseDerList(value, depth + 1);
      if (kids) node.children = kids;
      else node.value = value;
    } else {
      node.value = value;
      const inner = tag === 0x04 ? value : tag === 0x03 && value[0] === 0 ? value.subarray(1) : undefined;
      if (inner && inner.length >= 2 && (inner[0]! & 0x20) !== 0) {
        const kids = parseDerList(inner, depth + 1);
        if (kids) {
          node.children = kids;
          node.encapsulated = true;
          delete node.value;
        }
      }
    }
    out.push(node);
    off = p + len;
  }
  return out;
}

function encodeLength(n: number, form: DerNode['lengthForm']): Buffer {
  if (form === 'off-by-one') return encodeLength(Math.max(0, n + (n % 2 ? -1 : 1)), 'minimal');
  if (form === 'indefinite') return Buffer.from([0x80]);
  if (form === 'long') {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    return Buffer.from([0x80 | (bytes.length + 1), 0, ...bytes]);
  }
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function encodeDer(nodes: readonly DerNode[]): Buffer {
  const parts: Buffer[] = [];
  for (const n of nodes) {
    let contents: Buffer;
    if (n.children) {
      contents = encodeDer(n.children);
      if (n.encapsulated && n.tag === 0x03) contents = Buffer.concat([Buffer.from([0]), contents]);
    } else contents = n.value ?? Buffer.alloc(0);
    parts.push(Buffer.from([n.tag]), encodeLength(contents.length, n.lengthForm), contents);
    if (n.lengthForm === 'indefinite') parts.push(Buffer.from([0, 0]));
  }
  return Buffer.concat(parts);
}

function flatten(nodes: DerNode[], out: Array<{ node: DerNode; siblings: DerNode[]; index: number }> = []) {
  nodes.forEach((node, index) => {
    out.push({ node, siblings: nodes, index });
    if (node.children) flatten(node.children, out);
  });
  return out;
}

const clone = (n: DerNode): DerNode => ({
  tag: n.tag,
  ...(n.value ? { value: Buffer.from(n.value) } : {}),
  ...(n.children ? { children: n.children.map(clone) } : {}),
  ...(n.encapsulated ? { encapsulated: true } : {}),
});

const DER_TAGS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x30, 0x31, 0x80, 0x81, 0x82, 0x86, 0xa0, 0xa3, 0xa4];

/** Mutates one node of a DER tree, then re-encodes every enclosing length. */
export const derMutator: Mutator = (d, ctx) => {
  const tree = parseDerList(d, 0);
  if (!tree || tree.length === 0) return undefined;
  const { rng } = ctx;
  const all = flatten(tree);
  const { node, siblings, index } = rng.pick(all);
  switch (rng.below(10)) {
    case 0:
    case 1:
    case 2: {
      if (node.children) {
        // The contents of a constructed node as opaque bytes (a BIT STRING keeps its unused-bits byte).
        const inner = mutateBytes(encodeDer(node.children), ctx);
        node.value = node.encapsulated && node.tag === 0x03 ? Buffer.concat([Buffer.from([0]), inner]) : inner;
        delete node.children;
        node.encapsulated = false;
      } else node.value = mutateBytes(node.value ?? Buffer.alloc(0), ctx);
      break;
    }
    case 3:
      if (siblings.length > 0) siblings.splice(index, 1);
      break;
    case 4:
      siblings.splice(index + rng.below(2), 0, clone(node));
      break;
    case 5: {
      const j = rng.below(siblings.length);
      [siblings[index], siblings[j]] = [siblings[j]!, siblings[index]!];
      break;
    }
    case 6:
      node.tag = rng.oneIn(3) ? node.tag ^ 0x20 : rng.pick(DER_TAGS);
      if (!(node.tag & 0x20) && node.children && !node.encapsulated) {
        node.value = encodeDer(node.children);
        delete node.children;
      }
      break;
    case 7: {
      const otherTree = parseDerList(ctx.other(), 0);
      if (!otherTree) return undefined;
      const donor = clone(rng.pick(flatten(otherTree)).node);
      if (rng.oneIn(2)) siblings[index] = donor;
      else siblings.splice(index, 0, donor);
      break;
    }
    case 8:
      node.lengthForm = rng.pick(['long', 'indefinite', 'off-by-one'] as const);
      break;
    default:
      // INTEGER and friends: a non-minimal or sign-flipping leading byte, or an empty value.
      if (node.value) node.value = rng.oneIn(3) ? Buffer.alloc(0) : Buffer.concat([Buffer.from([rng.pick([0x00, 0xff, 0x80])]), node.value]);
  }
  return encodeDer(tree);
};

// ------------------------------------------------------------------ text layers

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
const B64URL = /^[A-Za-z0-9_-]+$/;

/** Decodes a layer's bytes, mutates them (DER-aware when they are DER), re-encodes them. */
function mutateDecoded(bytes: Buffer, ctx: MutationContext): Buffer {
  if (!ctx.rng.oneIn(3)) {
    const viaDer = derMutator(bytes, ctx);
    if (viaDer) return viaDer;
  }
  if (ctx.rng.oneIn(3) && looksLikeJson(bytes)) {
    const viaJson = jsonMutator(bytes, ctx);
    if (viaJson) return viaJson;
  }
  return mutateBytes(bytes, ctx);
}

const looksLikeJson = (b: Buffer) => b.length > 1 && (b[0] === 0x7b || b[0] === 0x5b);

/** A PEM block's body decoded, mutated (DER-aware) and encoded again. */
export const pemMutator: Mutator = (d, ctx) => {
  const s = d.toString('latin1');
  const blocks = [...s.matchAll(/(-----BEGIN [A-Z0-9 ]+-----\r?\n)([\s\S]*?)(-----END [A-Z0-9 ]+-----)/g)];
  if (blocks.length === 0) return undefined;
  const m = ctx.rng.pick(blocks);
  const der = mutateDecoded(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'), ctx);
  const body = `${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n`;
  const start = m.index! + m[1]!.length;
  return Buffer.from(s.slice(0, start) + body + s.slice(start + m[2]!.length), 'latin1');
};

type JsonNode = { t: 'obj'; members: Array<[string, JsonNode]> } | { t: 'arr'; items: JsonNode[] } | { t: 'str'; v: string } | { t: 'raw'; v: string };

function toNode(v: unknown): JsonNode {
  if (Array.isArray(v)) return { t: 'arr', items: v.map(toNode) };
  if (v !== null && typeof v === 'object') return { t: 'obj', members: Object.entries(v).map(([k, x]) => [k, toNode(x)]) };
  if (typeof v === 'string') return { t: 'str', v };
  return { t: 'raw', v: JSON.stringify(v) };
}

function serialize(n: JsonNode, ws: string): string {
  switch (n.t) {
    case 'obj':
      return `{${n.members.map(([k, v]) => `${JSON.stringify(k)}:${ws}${serialize(v, ws)}`).join(`,${ws}`)}}`;
    case 'arr':
      return `[${n.items.map((v) => serialize(v, ws)).join(`,${ws}`)}]`;
    case 'str':
      return JSON.stringify(n.v);
    default:
      return n.v;
  }
}

const JSON_VALUES = [
  'null',
  'true',
  'false',
  '0',
  '-1',
  '1.5',
  '-0',
  '1e21',
  '9007199254740993',
  '1e400',
  '""',
  '"a"',
  '[]',
  '{}',
  '[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]',
  '"\\u0000"',
  '"\\ud800"',
  '"\\u00e9"',
  '{"__proto__":{"x":1}}',
];

function allNodes(n: JsonNode, out: Array<{ n: JsonNode; parent?: JsonNode; key?: number }> = [], parent?: JsonNode, key?: number) {
  out.push({ n, ...(parent ? { parent, key: key! } : {}) });
  if (n.t === 'obj') n.members.forEach(([, v], i) => void allNodes(v, out, n, i));
  if (n.t === 'arr') n.items.forEach((v, i) => void allNodes(v, out, n, i));
  return out;
}

function replaceChild(parent: JsonNode, key: number, v: JsonNode): void {
  if (parent.t === 'obj') parent.members[key]![1] = v;
  else if (parent.t === 'arr') parent.items[key] = v;
}

/** A string value mutated by what it holds: a JWS, base64 bytes, or text. */
function mutateString(s: string, ctx: MutationContext): string {
  if (s.split('.').length === 3 && s.split('.').every((p) => p === '' || B64URL.test(p))) return jwsMutator(Buffer.from(s, 'latin1'), ctx)!.toString('latin1');
  if (s.length >= 8 && (B64.test(s) || B64URL.test(s)) && !ctx.rng.oneIn(4)) {
    const url = !B64.test(s) || /[-_]/.test(s);
    const enc = url ? 'base64url' : 'base64';
    return mutateDecoded(Buffer.from(s, enc), ctx).toString(enc);
  }
  return mutateBytes(Buffer.from(s, 'utf8'), ctx).toString('utf8');
}

/** One change to a JSON document: a value, a member (removed, duplicated, renamed, added), a string's content. */
export const jsonMutator: Mutator = (d, ctx) => {
  let doc: unknown;
  try {
    doc = JSON.parse(d.toString('utf8'));
  } catch {
    return undefined;
  }
  const { rng } = ctx;
  const root = toNode(doc);
  const nodes = allNodes(root);
  const { n, parent, key } = rng.pick(nodes);
  switch (rng.below(8)) {
    case 0:
      if (parent) replaceChild(parent, key!, { t: 'raw', v: rng.pick(JSON_VALUES) });
      break;
    case 1:
      if (parent?.t === 'obj') parent.members.splice(key!, 1);
      else if (parent?.t === 'arr') parent.items.splice(key!, 1);
      break;
    case 2:
      // A duplicate member name: the parser that keeps the first and the one that keeps the last disagree.
      if (parent?.t === 'obj') parent.members.splice(key! + 1, 0, [parent.members[key!]![0], rng.oneIn(2) ? n : { t: 'raw', v: rng.pick(JSON_VALUES) }]);
      else if (parent?.t === 'arr') parent.items.splice(key!, 0, structuredClone(n));
      break;
    case 3:
      if (parent?.t === 'obj') parent.members[key!]![0] = mutateString(parent.members[key!]![0], ctx);
      break;
    case 4:
      if (n.t === 'obj') {
        const word = ctx.dictionary.length ? rng.pick(ctx.dictionary).toString('utf8') : 'x';
        n.members.splice(rng.below(n.members.length + 1), 0, [word, { t: 'raw', v: rng.pick(JSON_VALUES) }]);
      } else if (n.t === 'arr') n.items.push(structuredClone(n.items[0] ?? { t: 'raw', v: '0' }));
      break;
    case 5: {
      const other = rng.pick(nodes).n;
      if (parent && other !== n) replaceChild(parent, key!, structuredClone(other));
      break;
    }
    default: {
      const strings = nodes.filter((x) => x.n.t === 'str');
      if (strings.length === 0) return undefined;
      const s = rng.pick(strings).n as { t: 'str'; v: string };
      s.v = mutateString(s.v, ctx);
    }
  }
  return Buffer.from(serialize(root, rng.oneIn(8) ? ' ' : ''), 'utf8');
};

/** A compact JWS: a JSON part decoded, mutated and encoded again; the signature mutated; parts swapped or made non-canonical. */
export const jwsMutator: Mutator = (d, ctx) => {
  const parts = d.toString('latin1').split('.');
  if (parts.length !== 3) return undefined;
  const { rng } = ctx;
  const which = rng.below(3);
  switch (rng.below(6)) {
    case 0:
    case 1:
    case 2: {
      const raw = Buffer.from(parts[which]!, 'base64url');
      const m = which < 2 && !rng.oneIn(4) ? (jsonMutator(raw, ctx) ?? mutateBytes(raw, ctx)) : mutateBytes(raw, ctx);
      parts[which] = m.toString('base64url');
      break;
    }
    case 3: {
      // The same bytes spelled another way: the unused low bits of the last character set.
      const p = parts[which]!;
      if (p.length === 0 || p.length % 4 === 0) return undefined;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(p[p.length - 1]!);
      parts[which] = p.slice(0, -1) + alphabet[(last ^ (rng.below(3) + 1)) & 63];
      break;
    }
    case 4: {
      const donor = ctx.other().toString('latin1').split('.');
      if (donor.length !== 3) return undefined;
      parts[which] = donor[which]!;
      break;
    }
    default:
      parts[which] = rng.pick([`${parts[which]}=`, `${parts[which]}==`, parts[which]!.replace(/[-_]/, (c) => (c === '-' ? '+' : '/')), '', `${parts[which]}.`]);
  }
  return Buffer.from(parts.join('.'), 'latin1');
};

/** A base64 (or base64url) string inside a text document, decoded, mutated and encoded again. */
export const embeddedBase64Mutator: Mutator = (d, ctx) => {
  const s = d.toString('latin1');
  const runs = [...s.matchAll(/"([A-Za-z0-9+/_-]{12,}={0,2})"/g)];
  if (runs.length === 0) return undefined;
  const m = ctx.rng.pick(runs);
  const start = m.index! + 1;
  return Buffer.from(s.slice(0, start) + mutateString(m[1]!, ctx) + s.slice(start + m[1]!.length), 'latin1');
};

// ------------------------------------------------------------------ dictionaries

/** Tokens every target's dictionary holds: DER headers and OIDs, JSON and JOSE words, TPM and event-log constants. */
export const BASE_DICTIONARY: readonly Buffer[] = [
  // DER
  '3080',
  '3081',
  '3082',
  '308180',
  '020100',
  '0201ff',
  '02020080',
  '0500',
  '010100',
  '0101ff',
  '0300',
  '030100',
  '0400',
  '0481',
  'a003020102',
  'a0030201ff',
  '06082a8648ce3d040302',
  '06082a8648ce3d030107',
  '06052b81040022',
  '06092a864886f70d01010b',
  '06092a864886f70d010101',
  '0603551d11',
  '0603551d13',
  '0603551d0f',
  '0603551d25',
  '0603551d23',
  '0603551d0e',
  '170d3939313233313233353935395a',
  '180f32303530303130313030303030305a',
  '860d7370696666653a2f2f612f62',
  // TPM (big-endian) and TCG event logs (little-endian)
  'ff544347',
  '8018',
  '8017',
  '000b',
  '000c',
  '000d',
  '0004',
  '0023',
  '0001',
  '0018',
  '0014',
  '0016',
  '0010',
  '0006',
  '0003',
  '00000003',
  '03000000',
  '0d000000',
  '00050072',
].map((h) => Buffer.from(h, 'hex'));

export const TEXT_DICTIONARY: readonly Buffer[] = [
  '{',
  '}',
  '[',
  ']',
  '"',
  ':',
  ',',
  '\\',
  '\\u0000',
  '\\ud800',
  '\\udc00',
  '\\ud83d\\ude00',
  '\\"',
  'true',
  'false',
  'null',
  '-0',
  '1e999',
  '9007199254740993',
  '__proto__',
  'constructor',
  'eyJ',
  'alg',
  'none',
  'HS256',
  'ES256',
  'ES384',
  'RS256',
  'PS256',
  'kid',
  'jwk',
  'typ',
  'crit',
  'b64',
  'kty',
  'crv',
  'P-256',
  'spiffe://',
  '/..',
  '/.',
  '//',
  '%2e',
  '-----BEGIN CERTIFICATE-----\n',
  '-----END CERTIFICATE-----',
  '\r\n',
  '=',
  '==',
  '\u00ff',
].map((s) => Buffer.from(s, 'utf8'));

/** String literals of source files: member names, algorithm names, labels a parser compares against. */
export function literalsOf(sourceText: string): Buffer[] {
  const out = new Set<string>();
  for (const m of sourceText.matchAll(/'([^'\\\n]{2,48})'|"([^"\\\n]{2,48})"/g)) {
    const s = m[1] ?? m[2]!;
    if (!/\$\{/.test(s)) out.add(s);
  }
  return [...out].map((s) => Buffer.from(s, 'utf8'));
}
