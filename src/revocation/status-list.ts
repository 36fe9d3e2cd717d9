/**
 * Token Status Lists (draft-ietf-oauth-status-list, §4 Status List, §5 Status List Token in
 * JWT format): a compact array of `bits`-bit statuses, index 0 in the least significant bits of
 * the first byte, ZLIB-compressed (RFC 1950/1951) and base64url-encoded in `lst`; served as a
 * JWT with `typ` "statuslist+jwt" whose `sub` is the URI a referenced token names.
 * UNTRUSTED input enters in `verifyStatusListToken` and `decodeStatusList`.
 */
import { deflateSync, inflateSync } from 'node:zlib';
import type { KeyObject } from 'node:crypto';
import { RevocationError } from '../errors.js';
import { b64urlDecode, decodeJws, signJwsWith, verifyJws, type JwsSigner } from '../jose/jws.js';

export const STATUS_LIST_TYP = 'statuslist+jwt';
/** Status values (§7.1). */
export const STATUS = { VALID: 0, INVALID: 1, SUSPENDED: 2 } as const;
/** Largest decompressed list accepted: 2^24 one-bit entries (a decompression bomb stops here). */
export const MAX_STATUS_LIST_BYTES = 2 * 1024 * 1024;
/** Largest status list token parsed. */
export const MAX_STATUS_LIST_TOKEN_BYTES = 1024 * 1024;
/** Clock skew tolerated on iat and exp, seconds. */
export const STATUS_LIST_SKEW_S = 5;

export type StatusBits = 1 | 2 | 4 | 8;

const bad = (msg: string): never => {
  throw new RevocationError('ERR_STATUS_LIST_INVALID', `status list: ${msg}`);
};

export class StatusList {
  private constructor(
    readonly bits: StatusBits,
    private readonly bytes: Buffer,
  ) {}

  /** A list of `size` entries, all VALID. */
  static empty(size: number, bits: StatusBits = 1): StatusList {
    if (!Number.isSafeInteger(size) || size < 1 || Math.ceil((size * bits) / 8) > MAX_STATUS_LIST_BYTES) bad(`size ${size} out of range`);
    return new StatusList(bits, Buffer.alloc(Math.ceil((size * bits) / 8)));
  }

  /** Parses the `status_list` member of a token (UNTRUSTED). */
  static decode(v: unknown): StatusList {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('status_list must be an object');
    const o = v as Record<string, unknown>;
    const extra = Object.keys(o).filter((k) => k !== 'bits' && k !== 'lst' && k !== 'aggregation_uri');
    if (extra.length) bad(`unknown members ${extra.join(', ').slice(0, 60)}`);
    if (o.bits !== 1 && o.bits !== 2 && o.bits !== 4 && o.bits !== 8) bad('bits must be 1, 2, 4 or 8');
    if (typeof o.lst !== 'string' || o.lst === '') bad('lst must be a base64url string');
    let compressed: Buffer;
    try {
      compressed = b64urlDecode(o.lst as string);
    } catch {
      return bad('lst is not canonical base64url');
    }
    let bytes: Buffer;
    try {
      // Bounded: a few KiB of DEFLATE can expand to gigabytes.
      bytes = inflateSync(compressed, { maxOutputLength: MAX_STATUS_LIST_BYTES });
    } catch (e) {
      return bad(`lst is not a ZLIB stream of at most ${MAX_STATUS_LIST_BYTES} bytes (${(e as Error).message})`);
    }
    if (bytes.length === 0) bad('lst holds no entries');
    return new StatusList(o.bits as StatusBits, bytes);
  }

  /** How many entries the list holds. */
  get size(): number {
    return (this.bytes.length * 8) / this.bits;
  }

  /** The status at `idx`; an index outside the list is an error, never VALID. */
  status(idx: number): number {
    if (!Number.isSafeInteger(idx) || idx < 0 || idx >= this.size) bad(`index ${idx} is outside the list (${this.size} entries)`);
    const bit = idx * this.bits;
    return (this.bytes[bit >> 3]! >> (bit & 7)) & ((1 << this.bits) - 1);
  }

  set(idx: number, status: number): void {
    if (!Number.isSafeInteger(idx) || idx < 0 || idx >= this.size) bad(`index ${idx} is outside the list (${this.size} entries)`);
    if (!Number.isInteger(status) || status < 0 || status >= 1 << this.bits) bad(`status ${status} does not fit ${this.bits} bits`);
    const bit = idx * this.bits;
    const mask = ((1 << this.bits) - 1) << (bit & 7);
    this.bytes[bit >> 3] = (this.bytes[bit >> 3]! & ~mask) | (status << (bit & 7));
  }

  /** The `status_list` member: bits and the ZLIB-compressed, base64url-encoded bytes. */
  encode(): { bits: StatusBits; lst: string } {
    return { bits: this.bits, lst: deflateSync(this.bytes, { level: 9 }).toString('base64url') };
  }

  /** The raw bytes (index 0 in the low bits of byte 0). */
  raw(): Buffer {
    return Buffer.from(this.bytes);
  }

  static fromRaw(bytes: Buffer, bits: StatusBits): StatusList {
    if (bytes.length === 0 || bytes.length > MAX_STATUS_LIST_BYTES) bad('raw list size out of range');
    return new StatusList(bits, Buffer.from(bytes));
  }
}

export interface StatusListClaims {
  /** The URI of this token: what referenced tokens name in `status.status_list.uri`. */
  readonly sub: string;
  readonly iat: number;
  readonly exp: number;
  /** How long a relying party may cache this token, seconds. */
  readonly ttl: number;
  readonly list: StatusList;
  /** The issuer, when it names itself (writ: its trust domain ID). */
  readonly iss?: string;
}

/** Signs a status list token with a writ key (`kid` from the bundle). */
export function signStatusListToken(c: StatusListClaims, signer: JwsSigner, kid: string): Promise<string> {
  return signJwsWith(
    { typ: STATUS_LIST_TYP, kid },
    { ...(c.iss ? { iss: c.iss } : {}), sub: c.sub, iat: c.iat, exp: c.exp, ttl: c.ttl, status_list: c.list.encode() },
    signer,
  );
}

export interface VerifiedStatusList {
  readonly sub: string;
  readonly iat: number;
  readonly exp?: number;
  readonly ttl?: number;
  readonly list: StatusList;
}

/**
 * Verifies a status list token (§8.3): typ, a key the relying party trusts for it (the issuer's
 * writ keys, by kid), the signature, `sub` equal to the URI the referenced token names, `iat`
 * not in the future, `exp` not passed. UNTRUSTED input.
 */
export function verifyStatusListToken(token: string, o: { keys: ReadonlyMap<string, KeyObject>; uri: string; now: Date }): VerifiedStatusList {
  if (typeof token !== 'string' || token.length > MAX_STATUS_LIST_TOKEN_BYTES) bad(`token larger than ${MAX_STATUS_LIST_TOKEN_BYTES} bytes`);
  let d: ReturnType<typeof decodeJws>;
  try {
    d = decodeJws(token, STATUS_LIST_TYP, MAX_STATUS_LIST_TOKEN_BYTES);
  } catch (e) {
    return bad((e as Error).message);
  }
  if ('jwk' in d.header || 'x5c' in d.header || 'jku' in d.header || 'x5u' in d.header) bad('the header may not carry keys: they come from the trust bundle');
  const key = typeof d.header.kid === 'string' ? o.keys.get(d.header.kid) : undefined;
  if (!key) bad('signed by a key the trust bundle does not hold (kid unknown)');
  if (!verifyJws(d, key!)) bad('signature does not verify');
  const p = d.payload;
  if (p.sub !== o.uri) bad(`made for ${String(p.sub).slice(0, 120)}, not ${o.uri}`);
  const now = Math.floor(o.now.getTime() / 1000);
  if (typeof p.iat !== 'number' || !Number.isSafeInteger(p.iat)) bad('iat must be an integer');
  if ((p.iat as number) > now + STATUS_LIST_SKEW_S) bad('issued in the future');
  if (p.exp !== undefined) {
    if (typeof p.exp !== 'number' || !Number.isSafeInteger(p.exp)) bad('exp must be an integer');
    if ((p.exp as number) <= now - STATUS_LIST_SKEW_S) bad('expired');
  }
  if (p.ttl !== undefined && (typeof p.ttl !== 'number' || !Number.isSafeInteger(p.ttl) || (p.ttl as number) < 0)) bad('ttl must be a non-negative integer');
  return {
    sub: p.sub as string,
    iat: p.iat as number,
    ...(p.exp !== undefined ? { exp: p.exp as number } : {}),
    ...(p.ttl !== undefined ? { ttl: p.ttl as number } : {}),
    list: StatusList.decode(p.status_list),
  };
}
