/**
 * Credential public keys as WebAuthn registers them: a COSE_Key (RFC 9052 §7) in CBOR, as the
 * authenticator put it in the attested credential data. The key's `alg` fixes the one signature
 * algorithm its assertions are checked with (no algorithm is ever taken from anywhere else), and
 * its `kty` and `crv` must be the ones that algorithm needs (WebAuthn Level 3 §5.8.5, RFC 9053):
 *
 *   alg  -7 ES256  kty 2 (EC2)  crv 1 (P-256)    x, y: 32-byte big-endian coordinates
 *   alg -35 ES384  kty 2 (EC2)  crv 2 (P-384)    x, y: 48 bytes
 *   alg -36 ES512  kty 2 (EC2)  crv 3 (P-521)    x, y: 66 bytes
 *   alg  -8 EdDSA  kty 1 (OKP)  crv 6 (Ed25519)  x: 32 bytes
 *   alg -257 RS256 kty 3 (RSA)  n ≥ 2048 bits (≤ 8192), e: odd, ≤ 4 bytes, ≥ 3
 *
 * Strict: the map holds exactly the members of its key type (1, 3 and the type's parameters),
 * never a private member (`d`), `key_ops`, `kid`, `Base IV` or any other label; the EC point is
 * uncompressed (y a byte string, not a sign bit) and on the curve; coordinates have their exact
 * length (leading zeros kept, RFC 9053 §7.1.1). UNTRUSTED input enters here.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { WebAuthnError } from '../errors.js';
import { decodeCbor, type CborValue } from './cbor.js';

/** Largest COSE key read: an RSA-8192 key is ~1.05 KiB. */
export const MAX_COSE_KEY_BYTES = 2048;

export type CoseAlgorithm = 'ES256' | 'ES384' | 'ES512' | 'EdDSA' | 'RS256';

interface AlgSpec {
  readonly name: CoseAlgorithm;
  readonly kty: 1 | 2 | 3;
  /** COSE crv for EC2 / OKP, with the JWK curve name and the coordinate length. */
  readonly crv?: { readonly id: number; readonly jwk: string; readonly len: number };
  /** Node's digest name for the signature (null for EdDSA: the message is signed whole). */
  readonly hash: string | null;
}

/** COSE alg → what it requires. The only algorithms a credential may have. */
export const COSE_ALGORITHMS: ReadonlyMap<number, AlgSpec> = new Map<number, AlgSpec>([
  [-7, { name: 'ES256', kty: 2, crv: { id: 1, jwk: 'P-256', len: 32 }, hash: 'sha256' }],
  [-35, { name: 'ES384', kty: 2, crv: { id: 2, jwk: 'P-384', len: 48 }, hash: 'sha384' }],
  [-36, { name: 'ES512', kty: 2, crv: { id: 3, jwk: 'P-521', len: 66 }, hash: 'sha512' }],
  [-8, { name: 'EdDSA', kty: 1, crv: { id: 6, jwk: 'Ed25519', len: 32 }, hash: null }],
  [-257, { name: 'RS256', kty: 3, hash: 'sha256' }],
]);

/** The labels each key type's COSE_Key has, every one required: kty (1), alg (3) and its parameters. */
const LABELS: Record<number, readonly number[]> = {
  1: [1, 3, -1, -2],
  2: [1, 3, -1, -2, -3],
  3: [1, 3, -1, -2],
};

export interface CoseKey {
  /** The COSE alg integer (-7, -8, ...). */
  readonly alg: number;
  readonly algorithm: CoseAlgorithm;
  /** Node's digest for the signature; null for EdDSA. */
  readonly hash: string | null;
  readonly key: KeyObject;
  /** The same key as DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7). */
  readonly spki: Buffer;
}

const fail = (msg: string, cause?: unknown): never => {
  throw new WebAuthnError(`webauthn(cose): ${msg}`, cause === undefined ? undefined : { cause });
};

function bytes(m: ReadonlyMap<number | string, CborValue>, label: number, what: string): Buffer {
  const v = m.get(label);
  if (!Buffer.isBuffer(v)) fail(`${what} (${label}) must be a byte string`);
  return v as Buffer;
}

/** Minimal unsigned big-endian: no leading zero byte (RSA n and e, RFC 9053 §7.1.2 "without leading zeros"). */
function minimalUnsigned(b: Buffer, what: string): Buffer {
  if (b.length === 0 || b[0] === 0) fail(`${what} must be a non-empty unsigned integer without leading zero bytes`);
  return b;
}

/** Parses a COSE_Key (CBOR bytes) into a public key whose algorithm the key itself fixes. */
export function parseCoseKey(cose: Buffer | Uint8Array): CoseKey {
  const buf = Buffer.from(cose.buffer, cose.byteOffset, cose.byteLength);
  if (buf.length === 0 || buf.length > MAX_COSE_KEY_BYTES) fail(`a COSE key is 1..${MAX_COSE_KEY_BYTES} bytes`);
  const v = decodeCbor(buf);
  if (!(v instanceof Map)) return fail('a COSE key is a CBOR map');
  const m = v as ReadonlyMap<number | string, CborValue>;
  const kty = m.get(1);
  const alg = m.get(3);
  if (typeof kty !== 'number') fail('kty (1) must be an integer (text kty values are not accepted)');
  if (typeof alg !== 'number') fail('alg (3) must be an integer');
  const spec = COSE_ALGORITHMS.get(alg as number);
  if (!spec) return fail(`alg ${alg} is not one writ accepts (-7 ES256, -35 ES384, -36 ES512, -8 EdDSA, -257 RS256)`);
  if (kty !== spec.kty) fail(`kty ${kty} does not fit alg ${spec.name} (needs kty ${spec.kty})`);
  const labels = LABELS[spec.kty]!;
  for (const k of m.keys()) {
    if (typeof k !== 'number' || !labels.includes(k))
      fail(`label ${JSON.stringify(k)} is not a member of a ${spec.name} public key (private, key_ops, kid and unknown labels are refused)`);
  }
  for (const l of labels) if (!m.has(l)) fail(`label ${l} is missing`);

  let jwk: Record<string, string>;
  if (spec.kty === 3) {
    const n = minimalUnsigned(bytes(m, -1, 'n'), 'n');
    const e = minimalUnsigned(bytes(m, -2, 'e'), 'e');
    if (n.length < 256 || n.length > 1024) fail(`RSA modulus of ${n.length * 8} bits (2048..8192 accepted)`);
    if (e.length > 4 || (e[e.length - 1]! & 1) === 0 || (e.length === 1 && e[0]! < 3)) fail('RSA exponent must be odd, at least 3 and at most 4 bytes');
    jwk = { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') };
  } else {
    const crv = m.get(-1);
    if (crv !== spec.crv!.id) fail(`crv ${JSON.stringify(crv)} does not fit alg ${spec.name} (needs crv ${spec.crv!.id}, ${spec.crv!.jwk})`);
    const len = spec.crv!.len;
    const x = bytes(m, -2, 'x');
    if (x.length !== len) fail(`x must be ${len} bytes, not ${x.length}`);
    if (spec.kty === 1) jwk = { kty: 'OKP', crv: spec.crv!.jwk, x: x.toString('base64url') };
    else {
      if (typeof m.get(-3) === 'boolean') fail('compressed points are not accepted (WebAuthn §5.8.5): y must be a byte string');
      const y = bytes(m, -3, 'y');
      if (y.length !== len) fail(`y must be ${len} bytes, not ${y.length}`);
      jwk = { kty: 'EC', crv: spec.crv!.jwk, x: x.toString('base64url'), y: y.toString('base64url') };
    }
  }
  let key: KeyObject;
  try {
    // OpenSSL refuses a point off the curve (and the point at infinity) here.
    key = createPublicKey({ key: jwk, format: 'jwk' });
  } catch (e) {
    return fail(`not a valid ${spec.name} public key: ${(e as Error).message}`, e);
  }
  const spki = key.export({ type: 'spki', format: 'der' });
  return Object.freeze({ alg: alg as number, algorithm: spec.name, hash: spec.hash, key, spki });
}

/** The DER SubjectPublicKeyInfo of a COSE_Key, after every check of `parseCoseKey`. */
export function coseToSpki(cose: Buffer | Uint8Array): Buffer {
  return parseCoseKey(cose).spki;
}
