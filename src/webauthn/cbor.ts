/**
 * A strict, bounded CBOR (RFC 8949) decoder for the two CBOR structures a WebAuthn relying
 * party reads: the credential public key (a COSE_Key, RFC 9052 §7) and the extensions map of
 * authenticator data (WebAuthn Level 3 §6.1). Both are made by authenticators in the CTAP2
 * canonical form, so this accepts only what that form allows to vary and refuses the rest:
 *   - definite lengths only, every length and integer in its shortest form (RFC 8949 §4.2.1);
 *   - unsigned and negative integers within ±(2^53 − 1), byte strings, UTF-8 text strings
 *     (invalid UTF-8 refused), arrays, maps, false, true and null;
 *   - no tags, floats, undefined or other simple values; map keys integers or text only;
 *   - no duplicate map keys (compared by type and value), nesting at most MAX_CBOR_DEPTH.
 * Key order is not enforced: a duplicate, not an order, is what could make two readers disagree.
 * UNTRUSTED input enters here.
 */
import { WebAuthnError } from '../errors.js';

/** Deepest nesting read: a COSE key is 1, extension outputs rarely more than 3. */
export const MAX_CBOR_DEPTH = 8;

export type CborKey = number | string;
export type CborValue = number | string | boolean | null | Buffer | readonly CborValue[] | ReadonlyMap<CborKey, CborValue>;

const fail = (msg: string, at: number): never => {
  throw new WebAuthnError(`webauthn(cbor): ${msg} at offset ${at}`);
};

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Reads the argument of the head at `i`: returns [argument, offset after the head]. */
function head(b: Buffer, i: number, end: number): [major: number, arg: number, next: number] {
  if (i >= end) fail('truncated item', i);
  const ib = b[i]!;
  const major = ib >> 5;
  const info = ib & 0x1f;
  if (info < 24) return [major, info, i + 1];
  const width = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
  if (width === 0) return fail(info === 31 ? 'indefinite length is not allowed' : `reserved additional information ${info}`, i);
  if (i + 1 + width > end) fail('truncated head', i);
  let arg: number;
  if (width === 8) {
    const big = b.readBigUInt64BE(i + 1);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) fail('integer or length beyond 2^53 - 1', i);
    arg = Number(big);
  } else arg = width === 1 ? b[i + 1]! : width === 2 ? b.readUInt16BE(i + 1) : b.readUInt32BE(i + 1);
  const min = width === 1 ? 24 : width === 2 ? 0x100 : width === 4 ? 0x10000 : 0x100000000;
  if (arg < min) fail('non-minimal encoding of an integer or length', i);
  return [major, arg, i + 1 + width];
}

function item(b: Buffer, i: number, end: number, depth: number): [CborValue, number] {
  const at = i;
  if (i < end && b[i]! >= 0xf8) fail('floats and extended simple values are not allowed', at);
  const [major, arg, next] = head(b, i, end);
  switch (major) {
    case 0:
      return [arg, next];
    case 1:
      // -1 - arg; arg ≤ 2^53 - 1 would give -2^53, one past the safe range.
      if (arg >= Number.MAX_SAFE_INTEGER) fail('negative integer beyond -(2^53 - 1)', at);
      return [-1 - arg, next];
    case 2:
    case 3: {
      if (arg > end - next) fail('string longer than the input', at);
      const bytes = b.subarray(next, next + arg);
      if (major === 2) return [Buffer.from(bytes), next + arg];
      let s: string;
      try {
        s = utf8.decode(bytes);
      } catch {
        return fail('text string is not valid UTF-8', at);
      }
      return [s, next + arg];
    }
    case 4:
    case 5: {
      if (depth >= MAX_CBOR_DEPTH) fail(`nesting deeper than ${MAX_CBOR_DEPTH}`, at);
      // Every item takes at least one byte: a count beyond what is left is refused before any work.
      if (arg * (major === 5 ? 2 : 1) > end - next) fail('more items than bytes left', at);
      let p = next;
      if (major === 4) {
        const arr: CborValue[] = [];
        for (let k = 0; k < arg; k++) {
          const [v, n] = item(b, p, end, depth + 1);
          arr.push(v);
          p = n;
        }
        return [Object.freeze(arr), p];
      }
      const map = new Map<CborKey, CborValue>();
      for (let k = 0; k < arg; k++) {
        const kat = p;
        const [key, n1] = item(b, p, end, depth + 1);
        if (typeof key !== 'number' && typeof key !== 'string') fail('map key is neither an integer nor a text string', kat);
        if (map.has(key as CborKey)) fail(`duplicate map key ${JSON.stringify(key)}`, kat);
        const [v, n2] = item(b, n1, end, depth + 1);
        map.set(key as CborKey, v);
        p = n2;
      }
      return [map, p];
    }
    case 6:
      return fail('tags are not allowed', at);
    default: {
      // major 7 (one-byte form only, above): false (20), true (21) and null (22).
      if (arg === 20) return [false, next];
      if (arg === 21) return [true, next];
      if (arg === 22) return [null, next];
      return fail(`simple value ${arg} is not allowed`, at);
    }
  }
}

/** Decodes one CBOR item starting at `offset` and ending at or before `end`; returns it and the offset after it. */
export function decodeCborAt(b: Buffer, offset: number, end = b.length): { value: CborValue; next: number } {
  const [value, next] = item(b, offset, end, 0);
  return { value, next };
}

/** Decodes exactly one CBOR item filling all of `b` (no trailing bytes). */
export function decodeCbor(b: Buffer): CborValue {
  const { value, next } = decodeCborAt(b, 0);
  if (next !== b.length) fail('trailing bytes', next);
  return value;
}
