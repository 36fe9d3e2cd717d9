/**
 * A small strict CBOR decoder (RFC 8949) for what AWS Nitro attestation documents contain, and
 * the few encoders the COSE Sig_structure needs. UNTRUSTED input: every length is checked
 * against the bytes left before anything is allocated, nesting and container sizes are bounded,
 * integers and lengths must use the shortest form (preferred serialization, §4.2.1), map keys
 * must be unique, text must be valid UTF-8, and nothing may follow the top-level item.
 *
 * Accepted, because genuine NSM documents use them: indefinite-length maps and arrays (serde
 * serialises some structures with an unknown length), `null`, `true`, `false`, tags (the caller
 * decides which it accepts; COSE_Sign1 may arrive as tag 18). Refused: floats, `undefined`,
 * other simple values, indefinite-length strings, integers beyond ±(2^53 − 1), stray breaks.
 */
import { malformed } from './errors.js';

/** Deepest nesting accepted (a Nitro document needs 3: COSE array, document map, pcrs map). */
export const MAX_CBOR_DEPTH = 8;
/** Most items in one array or entries in one map (a document has at most 32 PCRs and 9 fields). */
export const MAX_CBOR_ITEMS = 64;

export type CborValue = number | string | Buffer | boolean | null | readonly CborValue[] | CborMap | CborTag;

/** A decoded map: its entries in wire order (keys are unique by their encoding). */
export class CborMap {
  constructor(readonly entries: ReadonlyArray<readonly [CborValue, CborValue]>) {}

  /** The value under a text or integer key; undefined when absent. */
  get(key: string | number): CborValue | undefined {
    for (const [k, v] of this.entries) if (k === key) return v;
    return undefined;
  }
}

export class CborTag {
  constructor(
    readonly tag: number,
    readonly value: CborValue,
  ) {}
}

const BREAK = Symbol('break');
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  pos = 0;
  constructor(readonly b: Buffer) {}

  byte(): number {
    if (this.pos >= this.b.length) throw malformed('cbor: truncated');
    return this.b[this.pos++]!;
  }

  take(n: number): Buffer {
    if (n > this.b.length - this.pos) throw malformed('cbor: a length runs past the end of the input');
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** The argument of an initial byte with additional information `ai`, shortest form enforced. */
  argument(ai: number): number {
    if (ai < 24) return ai;
    let v: number;
    if (ai === 24) {
      v = this.byte();
      if (v < 24) throw malformed('cbor: non-shortest integer or length encoding');
      return v;
    }
    if (ai === 25) {
      v = this.take(2).readUInt16BE(0);
      if (v <= 0xff) throw malformed('cbor: non-shortest integer or length encoding');
      return v;
    }
    if (ai === 26) {
      v = this.take(4).readUInt32BE(0);
      if (v <= 0xffff) throw malformed('cbor: non-shortest integer or length encoding');
      return v;
    }
    if (ai === 27) {
      const big = this.take(8).readBigUInt64BE(0);
      if (big <= 0xffffffffn) throw malformed('cbor: non-shortest integer or length encoding');
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('cbor: integer or length beyond 2^53 - 1');
      return Number(big);
    }
    throw malformed(`cbor: reserved additional information ${ai}`);
  }

  item(depth: number): CborValue | typeof BREAK {
    if (depth > MAX_CBOR_DEPTH) throw malformed(`cbor: nested deeper than ${MAX_CBOR_DEPTH}`);
    const ib = this.byte();
    const major = ib >> 5;
    const ai = ib & 0x1f;
    if (ai === 31) {
      if (major === 7) return BREAK;
      if (major === 4) return this.array(undefined, depth);
      if (major === 5) return this.map(undefined, depth);
      throw malformed(`cbor: indefinite length is not accepted for major type ${major}`);
    }
    switch (major) {
      case 0:
        return this.argument(ai);
      case 1:
        return -1 - this.argument(ai);
      case 2:
        return Buffer.from(this.take(this.argument(ai)));
      case 3:
        try {
          return utf8.decode(this.take(this.argument(ai)));
        } catch (e) {
          if (e instanceof TypeError) throw malformed('cbor: text string is not valid UTF-8');
          throw e;
        }
      case 4:
        return this.array(this.argument(ai), depth);
      case 5:
        return this.map(this.argument(ai), depth);
      case 6: {
        const tag = this.argument(ai);
        const v = this.item(depth + 1);
        if (v === BREAK) throw malformed('cbor: break where a tagged item belongs');
        return new CborTag(tag, v);
      }
      default:
        if (ai === 20) return false;
        if (ai === 21) return true;
        if (ai === 22) return null;
        throw malformed(`cbor: simple value or float 0x${ib.toString(16)} is not accepted`);
    }
  }

  /** One item that must not be a break. */
  value(depth: number, where: string): CborValue {
    const v = this.item(depth);
    if (v === BREAK) throw malformed(`cbor: break ${where}`);
    return v;
  }

  array(n: number | undefined, depth: number): CborValue[] {
    if (n !== undefined && n > MAX_CBOR_ITEMS) throw malformed(`cbor: array of more than ${MAX_CBOR_ITEMS} items`);
    const out: CborValue[] = [];
    for (;;) {
      if (n !== undefined && out.length === n) return out;
      const v = n === undefined ? this.item(depth + 1) : this.value(depth + 1, 'inside a definite-length array');
      if (v === BREAK) return out;
      if (out.length === MAX_CBOR_ITEMS) throw malformed(`cbor: array of more than ${MAX_CBOR_ITEMS} items`);
      out.push(v);
    }
  }

  map(n: number | undefined, depth: number): CborMap {
    if (n !== undefined && n > MAX_CBOR_ITEMS) throw malformed(`cbor: map of more than ${MAX_CBOR_ITEMS} entries`);
    const entries: [CborValue, CborValue][] = [];
    const seen = new Set<string>();
    for (;;) {
      if (n !== undefined && entries.length === n) return new CborMap(entries);
      const start = this.pos;
      const k = n === undefined ? this.item(depth + 1) : this.value(depth + 1, 'inside a definite-length map');
      if (k === BREAK) return new CborMap(entries);
      if (entries.length === MAX_CBOR_ITEMS) throw malformed(`cbor: map of more than ${MAX_CBOR_ITEMS} entries`);
      // Keys are compared by their exact encoding (§5.6: a map with duplicate keys is not valid).
      const keyBytes = this.b.toString('hex', start, this.pos);
      if (seen.has(keyBytes)) throw malformed('cbor: duplicate map key');
      seen.add(keyBytes);
      entries.push([k, this.value(depth + 1, 'where a map value belongs')]);
    }
  }
}

/** Decodes exactly one CBOR item that fills `bytes`; trailing bytes are refused. */
export function decodeCbor(bytes: Buffer): CborValue {
  const r = new Reader(bytes);
  const v = r.value(0, 'at the top level');
  if (r.pos !== bytes.length) throw malformed(`cbor: ${bytes.length - r.pos} trailing byte(s) after the item`);
  return v;
}

/** The head of a definite-length item of `major` with argument `n`, shortest form. */
export function cborHead(major: number, n: number): Buffer {
  const m = major << 5;
  if (n < 24) return Buffer.from([m | n]);
  if (n <= 0xff) return Buffer.from([m | 24, n]);
  if (n <= 0xffff) {
    const b = Buffer.alloc(3);
    b[0] = m | 25;
    b.writeUInt16BE(n, 1);
    return b;
  }
  if (n <= 0xffffffff) {
    const b = Buffer.alloc(5);
    b[0] = m | 26;
    b.writeUInt32BE(n, 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = m | 27;
  b.writeBigUInt64BE(BigInt(n), 1);
  return b;
}

export const encodeBytes = (b: Uint8Array): Buffer => Buffer.concat([cborHead(2, b.length), b]);
export const encodeText = (s: string): Buffer => {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([cborHead(3, b.length), b]);
};
export const encodeUint = (n: number): Buffer => cborHead(0, n);
export const encodeInt = (n: number): Buffer => (n >= 0 ? cborHead(0, n) : cborHead(1, -1 - n));
export const encodeArray = (items: readonly Buffer[]): Buffer => Buffer.concat([cborHead(4, items.length), ...items]);
/** A definite-length map of already-encoded key/value pairs, in the order given. */
export const encodeMap = (pairs: ReadonlyArray<readonly [Buffer, Buffer]>): Buffer => Buffer.concat([cborHead(5, pairs.length), ...pairs.flat()]);
