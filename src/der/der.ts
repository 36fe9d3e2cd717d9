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

/** Reads one TLV at `offset`; returns it and the offset after it. */
export function readTlv(buf: Buffer, offset: number): { tlv: Tlv; next: number } {
  if (offset + 2 > buf.length) bad('truncated header');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) bad('multi-byte tags are not supported');
  let len = buf[offset + 1]!;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) bad('indefinite length');
    if (n > 3) bad('length too large');
    if (p + n > buf.length) bad('truncated length');
    if (buf[p] === 0) bad('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | buf[p + i]!;
    if (len < 0x80) bad('non-minimal length');
    p += n;
  }
  if (p + len > buf.length) bad('truncated value');
  return { tlv: { tag, bytes: buf.subarray(offset, p + len), value: buf.subarray(p, p + len) }, next: p + len };
}

/** Parses exactly one TLV filling the whole buffer (no trailing bytes). */
export function parseOne(buf: Buffer, expectTag?: number): Tlv {
  if (buf.length > MAX_DER_BYTES) bad(`object larger than ${MAX_DER_BYTES} bytes`);
  const { tlv, next } = readTlv(buf, 0);
  if (next !== buf.length) bad('trailing bytes');
  if (expectTag !== undefined && tlv.tag !== expectTag) bad(`expected tag 0x${expectTag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  return tlv;
}

/** The children of a constructed TLV, parsed strictly. */
export function children(t: Tlv, depth = 0): Tlv[] {
  if (depth > MAX_DER_DEPTH) bad('nesting too deep');
  if ((t.tag & 0x20) === 0) bad('expected a constructed value');
  const out: Tlv[] = [];
  let off = 0;
  while (off < t.value.length) {
    const { tlv, next } = readTlv(t.value, off);
    out.push(tlv);
    off = next;
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

/** Decodes an OBJECT IDENTIFIER to dotted form, strictly (minimal base-128). */
export function decodeOid(t: Tlv): string {
  if (t.tag !== TAG.OID) bad('expected OID');
  const v = t.value;
  if (v.length === 0 || v.length > 64) bad('bad OID length');
  const parts: number[] = [];
  let acc = 0;
  let started = false;
  for (let i = 0; i < v.length; i++) {
    const b = v[i]!;
    if (!started && b === 0x80) bad('non-minimal OID arc');
    started = true;
    if (acc > 0x1ffffff) bad('OID arc too large');
    acc = acc * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      parts.push(acc);
      acc = 0;
      started = false;
    } else if (i === v.length - 1) bad('truncated OID');
  }
  const first = parts[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
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

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), DER forms only. */
export function decodeTime(t: Tlv): Date {
  const s = t.value.toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === TAG.UTC_TIME) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) bad('bad UTCTime');
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (t.tag === TAG.GENERALIZED_TIME) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) bad('bad GeneralizedTime');
    year = Number(m[1]);
  } else bad('expected a time');
  const [mo, d, h, mi, se] = [2, 3, 4, 5, 6].map((i) => Number(m![i]));
  const ms = Date.UTC(year, mo! - 1, d, h, mi, se);
  const back = new Date(ms);
  if (back.getUTCMonth() !== mo! - 1 || back.getUTCDate() !== d || h! > 23 || mi! > 59 || se! > 59) bad('invalid date');
  return back;
}

// ---------------------------------------------------------------- writer

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  if (n < 0x10000) return Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.from([0x83, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

/** Encodes one TLV from already-encoded contents. */
export function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = contents.length === 1 ? contents[0]! : Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body]);
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
export const ctx = (n: number, constructed: boolean, ...contents: Buffer[]): Buffer =>
  tlv(0x80 | (constructed ? 0x20 : 0) | n, ...contents);

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

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [40 * arcs[0]! + arcs[1]!];
  for (const a of arcs.slice(2)) {
    const stack: number[] = [];
    let v = a;
    do {
      stack.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < stack.length - 1; i++) stack[i]! |= 0x80;
    out.push(...stack);
  }
  // first arc pair may exceed 127 (2.x); encode base-128 as well
  if (out[0]! > 127) {
    const first = out.shift()!;
    out.unshift(0x80 | (first >> 7), first & 0x7f);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

/** Time per RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after. Seconds precision. */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const y = iso.slice(0, 4);
  const rest = iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) + 'Z';
  const year = d.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(TAG.UTC_TIME, Buffer.from(y.slice(2) + rest, 'latin1'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(y + rest, 'latin1'));
}
