/**
 * Compact JWS (RFC 7515) for writ's own documents (grants, writs, proofs) and JWT-SVIDs:
 * an algorithm allow-list where each algorithm is tied to one key type, signatures made and
 * checked with Node's crypto, strict base64url and strict JSON. `none`, `HS*` and any
 * algorithm that does not fit the verifying key are refused before a signature is looked at
 * (RFC 8725 §3.1, §3.2). UNTRUSTED input enters here.
 */
import { constants, createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { BoundedCache } from '../cache/bounded.js';
import { JwsError } from '../errors.js';
import { parseStrictJson, StrictJsonError } from './strict-json.js';

export type JwsAlg = 'RS256' | 'RS384' | 'RS512' | 'ES256' | 'ES384' | 'ES512' | 'PS256' | 'PS384' | 'PS512';

export interface AlgSpec {
  readonly hash: string;
  readonly kty: 'ec' | 'rsa';
  readonly curve?: string;
  readonly pss?: boolean;
}

/** The only algorithms writ signs or accepts. Anything else (none, HS*, EdDSA) is refused. */
export const JWS_ALGORITHMS: ReadonlyMap<string, AlgSpec> = new Map<string, AlgSpec>([
  ['RS256', { hash: 'sha256', kty: 'rsa' }],
  ['RS384', { hash: 'sha384', kty: 'rsa' }],
  ['RS512', { hash: 'sha512', kty: 'rsa' }],
  ['PS256', { hash: 'sha256', kty: 'rsa', pss: true }],
  ['PS384', { hash: 'sha384', kty: 'rsa', pss: true }],
  ['PS512', { hash: 'sha512', kty: 'rsa', pss: true }],
  ['ES256', { hash: 'sha256', kty: 'ec', curve: 'prime256v1' }],
  ['ES384', { hash: 'sha384', kty: 'ec', curve: 'secp384r1' }],
  ['ES512', { hash: 'sha512', kty: 'ec', curve: 'secp521r1' }],
]);

/** Largest compact JWS writ parses. A writ with embedded TPM evidence is ~8 KiB. */
export const MAX_JWS_BYTES = 64 * 1024;

/** True when `key` is the key type (and curve, or at least 2048-bit modulus) `spec` needs. */
export function keyFits(spec: AlgSpec, key: KeyObject): boolean {
  if (key.asymmetricKeyType !== spec.kty) return false;
  if (spec.curve) return key.asymmetricKeyDetails?.namedCurve === spec.curve;
  return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048;
}

export function signOpts(spec: AlgSpec, key: KeyObject) {
  if (spec.kty === 'ec') return { key, dsaEncoding: 'ieee-p1363' as const };
  if (spec.pss) return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };
  return { key, padding: constants.RSA_PKCS1_PADDING };
}

/** The algorithm writ signs with for a key: ES256/ES384/ES512 by curve, PS256 for RSA. */
export function algForKey(key: KeyObject): JwsAlg {
  if (key.asymmetricKeyType === 'rsa') return 'PS256';
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === 'prime256v1') return 'ES256';
  if (curve === 'secp384r1') return 'ES384';
  if (curve === 'secp521r1') return 'ES512';
  throw new JwsError(`jws: no signing algorithm for a ${key.asymmetricKeyType ?? 'unknown'} key`);
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/** Strict base64url: alphabet, no padding, and canonical (unused trailing bits zero). */
export function b64urlDecode(part: string): Buffer {
  if (!B64URL.test(part)) throw new Error('not base64url');
  const bytes = Buffer.from(part, 'base64url');
  if (bytes.toString('base64url') !== part) throw new Error('non-canonical base64url');
  return bytes;
}

const b64json = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');

/** Signs `payload` with `header` (alg filled in from the key when absent). */
export function signJws(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): string {
  const alg = (header.alg as JwsAlg | undefined) ?? algForKey(key);
  const spec = JWS_ALGORITHMS.get(alg);
  if (!spec || !keyFits(spec, key)) throw new JwsError(`jws: signing key does not fit ${alg}`);
  const input = `${b64json({ ...header, alg })}.${b64json(payload)}`;
  return `${input}.${sign(spec.hash, Buffer.from(input), signOpts(spec, key)).toString('base64url')}`;
}

/** A signer whose private key may live elsewhere (a TPM): signs the JWS signing input. */
export interface JwsSigner {
  readonly alg: JwsAlg;
  /** The public key, as it goes into a `jwk` header and a thumbprint. */
  readonly publicKey: KeyObject;
  /** The JWS signature over `input` (for EC: IEEE P1363 r‖s). */
  sign(input: Buffer): Promise<Buffer>;
}

/** A JwsSigner for a private key held in this process; `alg` defaults to the one writ uses for its type. */
export function keySigner(privateKey: KeyObject, alg: JwsAlg = algForKey(privateKey)): JwsSigner {
  const spec = JWS_ALGORITHMS.get(alg);
  if (!spec || !keyFits(spec, privateKey)) throw new JwsError(`jws: the key does not fit ${alg}`);
  const opts = signOpts(spec, privateKey);
  return { alg, publicKey: createPublicKey(privateKey), sign: async (input) => sign(spec.hash, input, opts) };
}

/** Signs with a JwsSigner, then checks the signature with its public key before returning. */
export async function signJwsWith(header: Record<string, unknown>, payload: Record<string, unknown>, signer: JwsSigner): Promise<string> {
  const spec = JWS_ALGORITHMS.get(signer.alg);
  if (!spec || !keyFits(spec, signer.publicKey)) throw new JwsError(`jws: signing key does not fit ${signer.alg}`);
  const input = `${b64json({ ...header, alg: signer.alg })}.${b64json(payload)}`;
  const signature = await signer.sign(Buffer.from(input));
  if (!verify(spec.hash, Buffer.from(input), signOpts(spec, signer.publicKey), signature))
    throw new JwsError('jws: the signer produced a signature that does not verify');
  return `${input}.${signature.toString('base64url')}`;
}

export interface DecodedJws {
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
  readonly alg: JwsAlg;
  /** The exact signing input: ASCII of `header.payload`. */
  readonly input: string;
  /** The same, as bytes (made once; a cached document reuses them). */
  readonly inputBytes: Buffer;
  readonly signature: Buffer;
  /** The compact serialisation as received. */
  readonly compact: string;
}

function jsonPart(part: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = parseStrictJson(b64urlDecode(part).toString('utf8'));
  } catch (e) {
    throw new JwsError(`jws: ${what} is not strict base64url JSON${e instanceof StrictJsonError ? `: ${e.message}` : ''}`, { cause: e });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JwsError(`jws: ${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * Splits and decodes a compact JWS without checking its signature: size, three parts,
 * strict JSON, an allow-listed `alg`, no `crit`, and `typ` exactly as expected (RFC 8725
 * §3.11: explicit typing keeps one kind of writ document from being accepted as another).
 * `typ: null` leaves the `typ` check to a caller with its own rule and message (JWT-SVIDs).
 */
export function decodeJws(compact: string, typ: string | readonly (string | undefined)[] | null, maxBytes = MAX_JWS_BYTES): DecodedJws {
  if (typeof compact !== 'string' || compact.length > maxBytes) throw new JwsError(`jws: longer than ${maxBytes} bytes`);
  const parts = compact.split('.');
  if (parts.length !== 3) throw new JwsError('jws: not a compact JWS (three dot-separated parts)');
  const header = jsonPart(parts[0]!, 'header');
  const payload = jsonPart(parts[1]!, 'payload');
  let signature: Buffer;
  try {
    signature = b64urlDecode(parts[2]!);
  } catch (e) {
    throw new JwsError('jws: signature is not strict base64url', { cause: e });
  }
  const alg = header.alg;
  if (typeof alg !== 'string' || !JWS_ALGORITHMS.has(alg)) throw new JwsError(`jws: algorithm ${JSON.stringify(alg)?.slice(0, 20)} is not allowed`);
  if ('crit' in header) throw new JwsError('jws: crit header parameters are not supported');
  if ('b64' in header) throw new JwsError('jws: unencoded payloads (b64) are not supported');
  const accepted = typeof typ === 'string' ? [typ] : typ;
  if (accepted !== null && !accepted.includes(header.typ as string | undefined))
    throw new JwsError(`jws: typ must be ${accepted.map((t) => (t === undefined ? 'absent' : `"${t}"`)).join(' or ')}`);
  const input = `${parts[0]}.${parts[1]}`;
  return { header, payload, alg: alg as JwsAlg, input, inputBytes: Buffer.from(input, 'latin1'), signature, compact };
}

/** Checks the signature of a decoded JWS with `key`; false when the key does not fit the algorithm. */
export function verifyJws(d: DecodedJws, key: KeyObject): boolean {
  const spec = JWS_ALGORITHMS.get(d.alg)!;
  if (!keyFits(spec, key)) return false;
  return verify(spec.hash, d.inputBytes, signOpts(spec, key), d.signature);
}

/** RFC 7638 JWK SHA-256 thumbprint of a public key, base64url. */
export function jwkThumbprint(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: 'EC', x: jwk.x, y: jwk.y } : jwk.kty === 'RSA' ? { e: jwk.e, kty: 'RSA', n: jwk.n } : undefined;
  if (!members) throw new JwsError(`jws: no thumbprint for a ${String(jwk.kty)} key`);
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/**
 * True for a well-formed RFC 7638 SHA-256 thumbprint: 43 base64url characters that decode to
 * 32 bytes and re-encode to themselves. The last character carries 2 unused bits, so without
 * the round trip four spellings would name the same key.
 */
export function isJkt(s: unknown): s is string {
  return typeof s === 'string' && /^[A-Za-z0-9_-]{43}$/.test(s) && Buffer.from(s, 'base64url').toString('base64url') === s;
}

/** SHA-256 of a string's UTF-8 bytes, base64url (e.g. the hash of a writ in a proof). */
export function sha256b64url(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('base64url');
}

/** JWK members that carry private or symmetric key material (RFC 7518 §6). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

const EC_CURVES: Record<string, number> = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };

/**
 * A public key from an UNTRUSTED JWK (a JWS `jwk` header): only EC P-256/384/521 or RSA
 * members, never private material, coordinates of exact length.
 */
export function publicKeyFromJwk(v: unknown): KeyObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JwsError('jws: jwk is not an object');
  const j = v as Record<string, unknown>;
  if (PRIVATE_MEMBERS.some((m) => m in j)) throw new JwsError('jws: jwk carries private key material');
  try {
    if (j.kty === 'EC') {
      const len = EC_CURVES[String(j.crv)];
      if (!len || typeof j.x !== 'string' || typeof j.y !== 'string') throw new Error('bad EC members');
      if (b64urlDecode(j.x).length !== len || b64urlDecode(j.y).length !== len) throw new Error('bad coordinate length');
      return createPublicKey({ key: { kty: 'EC', crv: j.crv as string, x: j.x, y: j.y }, format: 'jwk' });
    }
    if (j.kty === 'RSA') {
      if (typeof j.n !== 'string' || typeof j.e !== 'string') throw new Error('bad RSA members');
      b64urlDecode(j.n);
      b64urlDecode(j.e);
      const key = createPublicKey({ key: { kty: 'RSA', n: j.n, e: j.e }, format: 'jwk' });
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048 || bits > 8192) throw new Error(`RSA modulus of ${bits} bits`);
      return key;
    }
  } catch (e) {
    throw new JwsError(`jws: jwk is not an acceptable public key: ${(e as Error).message}`, { cause: e });
  }
  throw new JwsError('jws: jwk kty must be EC or RSA');
}

/** Keys made from JWKs recently, by their RFC 7638 members: creating a KeyObject validates the point and costs ~0.1 ms. */
const JWK_CACHE_SIZE = 4096;
const jwkCache = new BoundedCache<string, { readonly key: KeyObject; readonly jkt: string }>(JWK_CACHE_SIZE);

/**
 * `publicKeyFromJwk` and the key's thumbprint, cached by the thumbprint members (the same
 * members always make the same key, so a hit is exact). Agents present the same key in every
 * proof and hop grant.
 */
export function keyFromJwk(v: unknown): { key: KeyObject; jkt: string } {
  const j = v as Record<string, unknown> | null;
  const id = j && typeof j === 'object' ? JSON.stringify([j.kty, j.crv, j.x, j.y, j.n, j.e]) : '';
  const hit = id ? jwkCache.get(id) : undefined;
  // A hit still needs the same members only: private or unknown members are refused every time.
  if (hit && !PRIVATE_MEMBERS.some((m) => m in j!)) return hit;
  const key = publicKeyFromJwk(v);
  const out = Object.freeze({ key, jkt: jwkThumbprint(key) });
  jwkCache.set(id, out);
  return out;
}

/** The public JWK of a key with only the members RFC 7638 names. */
export function publicJwk(key: KeyObject): Record<string, string> {
  const jwk = key.export({ format: 'jwk' }) as Record<string, string>;
  return jwk.kty === 'EC' ? { kty: 'EC', crv: jwk.crv!, x: jwk.x!, y: jwk.y! } : { kty: 'RSA', n: jwk.n!, e: jwk.e! };
}
