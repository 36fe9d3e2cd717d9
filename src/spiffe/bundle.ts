/**
 * SPIFFE trust bundles (SPIFFE Trust Domain and Bundle spec §4; X509-SVID §6; JWT-SVID §6):
 * a JWK Set whose keys carry `use` = `x509-svid` (one certificate in `x5c`) or `jwt-svid`
 * (`kid` required), plus `spiffe_sequence` and `spiffe_refresh_hint`. Also plain JWKS (JWT
 * authorities) and PEM (X.509 authorities). UNTRUSTED input enters here.
 * Error strings follow go-spiffe's bundle packages so conformance vectors classify alike.
 */
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { FormatError } from '../errors.js';
import { decodePem, encodePem } from '../der/pem.js';
import { parseCertificate } from '../x509/certificate.js';

/** The `use` of a bundle key that is an X.509-SVID authority (X509-SVID §6). */
export const X509_SVID_USE = 'x509-svid';

/** Largest bundle document we parse. */
export const MAX_BUNDLE_BYTES = 1024 * 1024;
/** Most keys in one bundle. */
export const MAX_BUNDLE_KEYS = 1024;

export interface Bundle {
  readonly trustDomain: string;
  /** Trust anchors for X.509-SVIDs, DER. Empty means no X.509-SVID is trusted. */
  readonly x509Authorities: readonly Buffer[];
  /** JWT-SVID keys by `kid`. Empty means no JWT-SVID is trusted. */
  readonly jwtAuthorities: ReadonlyMap<string, KeyObject>;
  /**
   * writ's own keys (`use` "writ", `kid` required): they sign grants and writs. SPIFFE
   * consumers ignore this `use`, so a writ key is never accepted for a JWT-SVID.
   */
  readonly writAuthorities?: ReadonlyMap<string, KeyObject>;
  readonly sequence?: number;
  /** Seconds. */
  readonly refreshHint?: number;
}

function bundleError(prefix: string, msg: string, cause?: unknown): FormatError {
  return new FormatError('ERR_BUNDLE_INVALID', `${prefix}: ${msg}`, { cause });
}

type Jwk = Record<string, unknown>;

function parseJson(prefix: string, input: string | Uint8Array): Record<string, unknown> {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
  if (Buffer.byteLength(text) > MAX_BUNDLE_BYTES) throw bundleError(prefix, `document larger than ${MAX_BUNDLE_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bundleError(prefix, `unable to parse JWKS: ${text.trim() === '' ? 'unexpected end of JSON input' : (e as Error).message}`, e);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bundleError(prefix, 'unable to parse JWKS: not a JSON object');
  return doc as Record<string, unknown>;
}

function keysOf(prefix: string, doc: Record<string, unknown>): Jwk[] {
  // Bundle spec §4.1.3: `keys` MUST be present; an empty array is a valid, empty bundle.
  if (!('keys' in doc)) throw bundleError(prefix, 'no authorities found');
  const keys = doc.keys;
  if (!Array.isArray(keys)) throw bundleError(prefix, 'unable to parse JWKS: keys is not an array');
  if (keys.length > MAX_BUNDLE_KEYS) throw bundleError(prefix, `more than ${MAX_BUNDLE_KEYS} keys`);
  for (const k of keys) if (typeof k !== 'object' || k === null || Array.isArray(k)) throw bundleError(prefix, 'unable to parse JWKS: key is not an object');
  return keys as Jwk[];
}

function jwkToKey(prefix: string, jwk: Jwk, index: number): KeyObject {
  if ('d' in jwk || 'p' in jwk || 'k' in jwk) throw bundleError(prefix, `key ${index} carries private or symmetric key material`);
  try {
    const { use: _u, kid: _k, x5c: _x, alg: _a, key_ops: _o, ...material } = jwk;
    return createPublicKey({ key: material as never, format: 'jwk' });
  } catch (e) {
    throw bundleError(prefix, `key ${index} is not a usable public key`, e);
  }
}

function addJwtAuthority(prefix: string, map: Map<string, KeyObject>, jwk: Jwk, index: number): void {
  const kid = jwk.kid;
  if (typeof kid !== 'string' || kid === '') throw bundleError(prefix, `error adding authority ${index} of JWKS: keyID cannot be empty`);
  if (map.has(kid)) throw bundleError(prefix, `error adding authority ${index} of JWKS: duplicate keyID ${JSON.stringify(kid)}`);
  map.set(kid, jwkToKey(prefix, jwk, index));
}

/** Parses a SPIFFE bundle document for `trustDomain`. Unknown `use` values are ignored. */
export function parseSpiffeBundle(trustDomain: string, input: string | Uint8Array): Bundle {
  const P = 'spiffebundle';
  const doc = parseJson(P, input);
  const keys = keysOf(P, doc);
  const x509: Buffer[] = [];
  const seenX509 = new Set<string>();
  const jwt = new Map<string, KeyObject>();
  const writ = new Map<string, KeyObject>();
  keys.forEach((jwk, i) => {
    switch (jwk.use) {
      case 'writ':
        addJwtAuthority(P, writ, jwk, i);
        break;
      case 'x509-svid': {
        const x5c = jwk.x5c;
        if (!Array.isArray(x5c) || x5c.length !== 1 || typeof x5c[0] !== 'string') {
          throw bundleError(P, `expected a single certificate in x509-svid entry ${i}; got ${Array.isArray(x5c) ? x5c.length : 0}`);
        }
        const der = Buffer.from(x5c[0], 'base64');
        if (der.toString('base64') !== x5c[0]) throw bundleError(P, `x509-svid entry ${i}: x5c is not standard base64`);
        let certKey: KeyObject;
        try {
          parseCertificate(der);
          // X509Certificate parses lazily: a key OpenSSL cannot decode fails only when asked for.
          certKey = new X509Certificate(der).publicKey;
        } catch (e) {
          throw bundleError(P, `x509-svid entry ${i}: cannot parse certificate`, e);
        }
        const jwkKey = jwkToKey(P, jwk, i);
        if (!jwkKey.export({ type: 'spki', format: 'der' }).equals(certKey.export({ type: 'spki', format: 'der' }))) {
          throw bundleError(P, `x509-svid entry ${i}: key parameters do not match the certificate`);
        }
        const hex = der.toString('hex');
        if (seenX509.has(hex)) throw bundleError(P, `x509-svid entry ${i}: duplicate certificate`);
        seenX509.add(hex);
        x509.push(der);
        break;
      }
      case 'jwt-svid':
        addJwtAuthority(P, jwt, jwk, i);
        break;
      default:
        // X509-SVID §6 / JWT-SVID §6: entries with another or no `use` are ignored.
        break;
    }
  });
  const seq = doc.spiffe_sequence;
  const hint = doc.spiffe_refresh_hint;
  if (seq !== undefined && (!Number.isSafeInteger(seq) || (seq as number) < 0)) throw bundleError(P, 'spiffe_sequence must be a non-negative integer');
  if (hint !== undefined && (!Number.isSafeInteger(hint) || (hint as number) < 0)) throw bundleError(P, 'spiffe_refresh_hint must be a non-negative integer');
  return {
    trustDomain,
    x509Authorities: x509,
    jwtAuthorities: jwt,
    ...(writ.size ? { writAuthorities: writ } : {}),
    ...(seq !== undefined ? { sequence: seq as number } : {}),
    ...(hint !== undefined ? { refreshHint: hint as number } : {}),
  };
}

/**
 * Parses a plain JWKS whose every key is an authority named by its `kid` (JWT-SVID keys; the
 * experimental WIT-SVID bundles have the same shape). `prefix` names the bundle kind in errors.
 */
export function parseKeyedJwks(prefix: string, input: string | Uint8Array): Map<string, KeyObject> {
  const keys = keysOf(prefix, parseJson(prefix, input));
  const out = new Map<string, KeyObject>();
  for (let i = 0; i < keys.length; i++) addJwtAuthority(prefix, out, keys[i]!, i);
  return out;
}

/** Parses a plain JWKS of JWT authorities (every key needs a `kid`). */
export function parseJwtBundle(trustDomain: string, input: string | Uint8Array): Bundle {
  return { trustDomain, x509Authorities: [], jwtAuthorities: parseKeyedJwks('jwtbundle', input) };
}

/** Parses PEM X.509 authorities. Empty input is an empty bundle; CA flags are not checked here. */
export function parseX509BundlePem(trustDomain: string, pem: string | Uint8Array): Bundle {
  const P = 'x509bundle';
  const text = typeof pem === 'string' ? pem : Buffer.from(pem).toString('utf8');
  if (Buffer.byteLength(text) > MAX_BUNDLE_BYTES) throw bundleError(P, `document larger than ${MAX_BUNDLE_BYTES} bytes`);
  if (text.trim() === '') return { trustDomain, x509Authorities: [], jwtAuthorities: new Map() };
  let blocks;
  try {
    blocks = decodePem(text);
  } catch (e) {
    throw bundleError(P, `cannot parse certificate: ${(e as Error).message}`, e);
  }
  if (blocks.length === 0) throw bundleError(P, 'cannot parse certificate: no PEM blocks found');
  const out: Buffer[] = [];
  for (const b of blocks) {
    if (b.label !== 'CERTIFICATE') throw bundleError(P, `cannot parse certificate: unexpected PEM block ${b.label}`);
    try {
      // Strict DER first (OpenSSL tolerates some malformed encodings), then OpenSSL.
      parseCertificate(b.der);
      new X509Certificate(b.der);
    } catch (e) {
      throw bundleError(P, 'cannot parse certificate', e);
    }
    if (!out.some((d) => d.equals(b.der))) out.push(b.der);
  }
  return { trustDomain, x509Authorities: out, jwtAuthorities: new Map() };
}

/** Serialises a bundle as a SPIFFE bundle document (JSON). */
export function marshalSpiffeBundle(b: Bundle): string {
  const keys: Jwk[] = [];
  for (const der of b.x509Authorities) {
    const cert = new X509Certificate(der);
    keys.push({ use: 'x509-svid', ...(cert.publicKey.export({ format: 'jwk' }) as Jwk), x5c: [der.toString('base64')] });
  }
  for (const [kid, key] of b.jwtAuthorities) {
    keys.push({ use: 'jwt-svid', kid, ...(key.export({ format: 'jwk' }) as Jwk) });
  }
  for (const [kid, key] of b.writAuthorities ?? []) {
    keys.push({ use: 'writ', kid, alg: 'ES256', ...(key.export({ format: 'jwk' }) as Jwk) });
  }
  const doc: Record<string, unknown> = { keys };
  if (b.refreshHint !== undefined) doc.spiffe_refresh_hint = b.refreshHint;
  if (b.sequence !== undefined) doc.spiffe_sequence = b.sequence;
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** Serialises the X.509 authorities as PEM. */
export function marshalX509Pem(b: Bundle): string {
  return b.x509Authorities.map((d) => encodePem('CERTIFICATE', d)).join('');
}

/** A set of bundles keyed by trust domain (what a verifier trusts). */
export class BundleSet {
  private readonly byTd = new Map<string, Bundle>();
  constructor(bundles: Iterable<Bundle> = []) {
    for (const b of bundles) this.byTd.set(b.trustDomain, b);
  }
  get(trustDomain: string): Bundle | undefined {
    return this.byTd.get(trustDomain);
  }
}
