/**
 * A strict, bounded DER reader and a small DER writer (X.690). The reader accepts only
 * definite, minimally encoded lengths and single-byte tags (all X.509 and PKCS#10 needs),
 * bounds the nesting depth, and never reads past the buffer. UNTRUSTED input enters here.
 */
import { FormatError } from '../errors.js';

/** Deepest nesting we parse; X.509 needs fewer than 10 levels. */
export const MAX_DER_DEPTH = 32;
/** Largest DER object we accept (a certificate chain element, a CSR). */
export const MAX_DER_BYTES = 64 * 1024;

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One parsed TLV: `bytes` is the whole encoding, `value` the contents. */
export interface Tlv {
  readonly tag: number;
  readonly bytes: Buffer;
  readonly value: Buffer;
}

function bad(msg: string): never {
  throw new FormatError('ERR_DER_MALFORMED', `der: ${msg}`);
}

/**
 * A TLV located by offsets in its source buffer; `bytes` and `value` are views made only when
 * asked for, so walking a certificate allocates little.
 */
class LazyTlv implements Tlv {
  private v?: Buffer;
  private b?: Buffer;
  constructor(
    readonly tag: number,
    readonly buf: Buffer,
    readonly start: number,
    readonly valueStart: number,
    readonly end: number,
  ) {}
  get value(): Buffer {
    this.v ??= this.buf.subarray(this.valueStart, this.end);
    return this.v;
  }
  get bytes(): Buffer {
    this.b ??= this.buf.subarray(this.start, this.end);
    return this.b;
  }
}

function readAt(buf: Buffer, offset: number, limit: number): LazyTlv {
  if (offset + 2 > limit) bad('truncated header');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) bad('multi-byte tags are not supported');
  let len = buf[offset + 1]!;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) bad('indefinite length');
    if (n > 3) bad('length too large');
    if (p + n > limit) bad('truncated length');
    if (buf[p] === 0) bad('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | buf[p + i]!;
    if (len < 0x80) bad('non-minimal length');
    p += n;
  }
  if (p + len > limit) bad('truncated value');
  return new LazyTlv(tag, buf, offset, p, p + len);
}

/** Reads one TLV at `offset`; returns it and the offset after it. */
export function readTlv(buf: Buffer, offset: number): { tlv: Tlv; next: number } {
  const t = readAt(buf, offset, buf.length);
  return { tlv: t, next: t.end };
}

/** Parses exactly one TLV filling the whole buffer (no trailing bytes). */
export function parseOne(buf: Buffer, expectTag?: number): Tlv {
  if (buf.length > MAX_DER_BYTES) bad(`object larger than ${MAX_DER_BYTES} bytes`);
  const t = readAt(buf, 0, buf.length);
  if (t.end !== buf.length) bad('trailing bytes');
  if (expectTag !== undefined && t.tag !== expectTag) bad(`expected tag 0x${expectTag.toString(16)}, got 0x${t.tag.toString(16)}`);
  return t;
}

/** The children of a constructed TLV, parsed strictly. */
export function children(t: Tlv, depth = 0): Tlv[] {
  if (depth > MAX_DER_DEPTH) bad('nesting too deep');
  if ((t.tag & 0x20) === 0) bad('expected a constructed value');
  const out: Tlv[] = [];
  if (t instanceof LazyTlv) {
    let off = t.valueStart;
    while (off < t.end) {
      const c = readAt(t.buf, off, t.end);
      out.push(c);
      off = c.end;
    }
    return out;
  }
  let off = 0;
  const v = t.value;
  while (off < v.length) {
    const c = readAt(v, off, v.length);
    out.push(c);
    off = c.end;
  }
  return out;
}

/** A cursor over the children of a SEQUENCE, for flat early-return parsers. */
export class SeqReader {
  private readonly items: Tlv[];
  private i = 0;
  constructor(t: Tlv, what: string) {
    if (t.tag !== TAG.SEQUENCE) bad(`${what}: expected SEQUENCE`);
    this.items = children(t);
  }
  peekTag(): number | undefined {
    return this.items[this.i]?.tag;
  }
  next(tag: number, what: string): Tlv {
    const t = this.items[this.i];
    if (!t) bad(`${what}: missing`);
    if (t.tag !== tag) bad(`${what}: expected tag 0x${tag.toString(16)}, got 0x${t.tag.toString(16)}`);
    this.i++;
    return t;
  }
  optional(tag: number): Tlv | undefined {
    const t = this.items[this.i];
    if (t && t.tag === tag) {
      this.i++;
      return t;
    }
    return undefined;
  }
  end(what: string): void {
    if (this.i !== this.items.length) bad(`${what}: unexpected trailing elements`);
  }
}

// Decoded OIDs by their content bytes; bounded so hostile input cannot grow it without limit.
const oidCache = new Map<string, string>();
const OID_CACHE_MAX = 512;

/** Decodes an OBJECT IDENTIFIER to dotted form, strictly (minimal base-128). */
export function decodeOid(t: Tlv): string {
  if (t.tag !== TAG.OID) bad('expected OID');
  const key = t.value.toString('latin1');
  const hit = oidCache.get(key);
  if (hit !== undefined) return hit;
  const dotted = decodeOidValue(t.value);
  if (oidCache.size < OID_CACHE_MAX) oidCache.set(key, dotted);
  return dotted;
}

/** Longest OID arc, in encoded bytes (a 128-bit UUID arc under 2.25 takes 19). */
const MAX_OID_ARC_BYTES = 20;

function decodeOidValue(v: Buffer): string {
  if (v.length === 0 || v.length > 64) bad('bad OID length');
  const parts: bigint[] = [];
  let acc = 0n;
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const b = v[i]!;
    if (n === 0 && b === 0x80) bad('non-minimal OID arc');
    if (++n > MAX_OID_ARC_BYTES) bad('OID arc too large');
    acc = (acc << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      parts.push(acc);
      acc = 0n;
      n = 0;
    } else if (i === v.length - 1) bad('truncated OID');
  }
  const first = parts[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...parts.slice(1)].join('.');
}

export function decodeBoolean(t: Tlv): boolean {
  if (t.tag !== TAG.BOOLEAN || t.value.length !== 1) bad('bad BOOLEAN');
  const b = t.value[0]!;
  if (b !== 0x00 && b !== 0xff) bad('non-DER BOOLEAN');
  return b === 0xff;
}

/** INTEGER contents, checked minimal. Returns the raw two's-complement bytes. */
export function integerBytes(t: Tlv): Buffer {
  if (t.tag !== TAG.INTEGER || t.value.length === 0) bad('bad INTEGER');
  const v = t.value;
  if (v.length > 1 && ((v[0] === 0x00 && (v[1]! & 0x80) === 0) || (v[0] === 0xff && (v[1]! & 0x80) !== 0))) {
    bad('non-minimal INTEGER');
  }
  return v;
}

/** A small non-negative INTEGER as a number. */
export function decodeSmallInt(t: Tlv): number {
  const v = integerBytes(t);
  if (v[0]! & 0x80) bad('negative INTEGER');
  if (v.length > 4) bad('INTEGER too large');
  let n = 0;
  for (const b of v) n = n * 256 + b;
  return n;
}

/** BIT STRING contents: returns the bytes and the count of unused bits. */
export function decodeBitString(t: Tlv): { bytes: Buffer; unused: number } {
  if (t.tag !== TAG.BIT_STRING || t.value.length === 0) bad('bad BIT STRING');
  const unused = t.value[0]!;
  if (unused > 7 || (t.value.length === 1 && unused !== 0)) bad('bad BIT STRING padding');
  const bytes = t.value.subarray(1);
  if (unused && (bytes[bytes.length - 1]! & ((1 << unused) - 1)) !== 0) bad('non-zero BIT STRING padding');
  return { bytes, unused };
}

function digits(v: Buffer, off: number, n: number): number {
  let x = 0;
  for (let i = off; i < off + n; i++) {
    const c = v[i]! - 0x30;
    if (c < 0 || c > 9) bad('non-digit in time');
    x = x * 10 + c;
  }
  return x;
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), DER forms only (RFC 5280 §4.1.2.5). */
export function decodeTime(t: Tlv): Date {
  const v = t.value;
  let year: number;
  let p: number;
  if (t.tag === TAG.UTC_TIME) {
    if (v.length !== 13) bad('bad UTCTime');
    const yy = digits(v, 0, 2);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    p = 2;
  } else if (t.tag === TAG.GENERALIZED_TIME) {
    if (v.length !== 15) bad('bad GeneralizedTime');
    year = digits(v, 0, 4);
    p = 4;
  } else bad('expected a time');
  if (v[v.length - 1] !== 0x5a) bad('time must end in Z');
  const mo = digits(v, p, 2);
  const d = digits(v, p + 2, 2);
  const h = digits(v, p + 4, 2);
  const mi = digits(v, p + 6, 2);
  const se = digits(v, p + 8, 2);
  const back = new Date(Date.UTC(year, mo - 1, d, h, mi, se));
  if (mo < 1 || mo > 12 || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) bad('invalid date');
  return back;
}

// ---------------------------------------------------------------- writer

/** Encodes one TLV from already-encoded contents, in a single allocation. */
export function tlv(tag: number, ...contents: Buffer[]): Buffer {
  let n = 0;
  for (const c of contents) n += c.length;
  const hl = n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : 5;
  const out = Buffer.allocUnsafe(hl + n);
  out[0] = tag;
  if (hl === 2) out[1] = n;
  else if (hl === 3) {
    out[1] = 0x81;
    out[2] = n;
  } else if (hl === 4) {
    out[1] = 0x82;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x83;
    out[2] = (n >> 16) & 0xff;
    out[3] = (n >> 8) & 0xff;
    out[4] = n & 0xff;
  }
  let off = hl;
  for (const c of contents) {
    c.copy(out, off);
    off += c.length;
  }
  return out;
}

export const seq = (...items: Buffer[]): Buffer => tlv(TAG.SEQUENCE, ...items);
export const set = (...items: Buffer[]): Buffer => tlv(TAG.SET, ...items);
export const octets = (b: Buffer): Buffer => tlv(TAG.OCTET_STRING, b);
export const bitString = (b: Buffer): Buffer => tlv(TAG.BIT_STRING, Buffer.from([0]), b);
export const bool = (v: boolean): Buffer => tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0x00]));
export const ia5 = (s: string): Buffer => tlv(TAG.IA5_STRING, Buffer.from(s, 'latin1'));
export const utf8 = (s: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
export const printable = (s: string): Buffer => tlv(TAG.PRINTABLE_STRING, Buffer.from(s, 'latin1'));
/** Context-specific tag [n], constructed or primitive. */
export const ctx = (n: number, constructed: boolean, ...contents: Buffer[]): Buffer => tlv(0x80 | (constructed ? 0x20 : 0) | n, ...contents);

/** An unsigned big-endian magnitude as a DER INTEGER (adds a 0x00 pad where needed). */
export function uint(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let v = bytes.subarray(i);
  if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return tlv(TAG.INTEGER, v);
}

export function smallInt(n: number): Buffer {
  const bytes: number[] = [];
  do {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  } while (n > 0);
  return uint(Buffer.from(bytes));
}

const oidEncCache = new Map<string, Buffer>();
/** Encodes a dotted OID (memoised: writ encodes a small fixed set). */
export function oid(dotted: string): Buffer {
  let b = oidEncCache.get(dotted);
  if (!b) {
    b = encodeOid(dotted);
    if (oidEncCache.size < 256) oidEncCache.set(dotted, b);
  }
  return b;
}

function encodeOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const out: number[] = [];
  for (const sub of [40n * arcs[0]! + arcs[1]!, ...arcs.slice(2)]) {
    const stack: number[] = [];
    let v = sub;
    do {
      stack.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    for (let i = 0; i < stack.length - 1; i++) stack[i]! |= 0x80;
    out.push(...stack);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

/** Time per RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after. Seconds precision. */
export function time(d: Date): Buffer {
  const year = d.getUTCFullYear();
  const utc = year >= 1950 && year < 2050;
  const out = Buffer.allocUnsafe(utc ? 15 : 17);
  out[0] = utc ? TAG.UTC_TIME : TAG.GENERALIZED_TIME;
  out[1] = utc ? 13 : 15;
  let p = 2;
  const put = (n: number, width: number) => {
    for (let i = width - 1; i >= 0; i--) {
      out[p + i] = 0x30 + (n % 10);
      n = Math.floor(n / 10);
    }
    p += width;
  };
  if (utc) put(year % 100, 2);
  else put(year, 4);
  put(d.getUTCMonth() + 1, 2);
  put(d.getUTCDate(), 2);
  put(d.getUTCHours(), 2);
  put(d.getUTCMinutes(), 2);
  put(d.getUTCSeconds(), 2);
  out[p] = 0x5a;
  return out;
}
