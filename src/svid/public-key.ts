/**
 * Which agent keys writ certifies, and PKCS#10 CSR parsing (RFC 2986) with the signature
 * checked by Node's crypto. UNTRUSTED input enters here.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { FormatError } from '../errors.js';
import { SeqReader, TAG, decodeBitString, decodeOid, decodeSmallInt, parseOne, MAX_DER_BYTES } from '../der/der.js';
import { SIGNATURE_ALGORITHMS } from '../x509/oids.js';

export type KeyKind = 'ec-p256' | 'ec-p384' | 'rsa';

/** RSA keys below this many bits are refused (NIST SP 800-57). */
export const MIN_RSA_BITS = 2048;
/** RSA keys above this are refused: no benefit, and they make verification a CPU sink. */
export const MAX_RSA_BITS = 8192;

export interface AgentPublicKey {
  readonly key: KeyObject;
  /** Normalised DER SubjectPublicKeyInfo, as it goes into the certificate. */
  readonly spki: Buffer;
  readonly kind: KeyKind;
}

/** Classifies a public key or throws ERR_KEY_UNSUPPORTED. */
export function classifyKey(key: KeyObject): KeyKind {
  const type = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails ?? {};
  if (type === 'ec') {
    if (d.namedCurve === 'prime256v1') return 'ec-p256';
    if (d.namedCurve === 'secp384r1') return 'ec-p384';
    throw new FormatError('ERR_KEY_UNSUPPORTED', `key: unsupported EC curve ${d.namedCurve ?? 'unknown'} (want P-256 or P-384)`);
  }
  if (type === 'rsa') {
    const bits = d.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
      throw new FormatError('ERR_KEY_UNSUPPORTED', `key: RSA modulus of ${bits} bits (want ${MIN_RSA_BITS}..${MAX_RSA_BITS})`);
    }
    return 'rsa';
  }
  throw new FormatError('ERR_KEY_UNSUPPORTED', `key: unsupported key type ${type ?? 'unknown'} (want EC P-256/P-384 or RSA)`);
}

/**
 * The DER of an EC SubjectPublicKeyInfo (RFC 5480) up to the uncompressed point's coordinates:
 * SEQUENCE { SEQUENCE { id-ecPublicKey, namedCurve }, BIT STRING { 0 unused bits, 0x04, X, Y } }.
 */
const EC_SPKI_PREFIXES: ReadonlyArray<{ crv: 'P-256' | 'P-384'; kind: KeyKind; prefix: Buffer; coordinate: number }> = [
  { crv: 'P-256', kind: 'ec-p256', prefix: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex'), coordinate: 32 },
  { crv: 'P-384', kind: 'ec-p384', prefix: Buffer.from('3076301006072a8648ce3d020106052b8104002203620004', 'hex'), coordinate: 48 },
];

/**
 * An uncompressed P-256/P-384 key in exactly its one DER encoding, imported from its
 * coordinates. OpenSSL checks the point is on the curve as it does for DER; the JWK route
 * skips OpenSSL 3's generic decoder (and encoder), which cost more than a signature. The
 * bytes are already the normalised SPKI (the one encoding there is), so they are kept as they
 * are. Anything else takes the general route.
 */
function ecKeyFromCanonicalSpki(buf: Buffer): AgentPublicKey | undefined {
  for (const { crv, kind, prefix, coordinate } of EC_SPKI_PREFIXES) {
    if (buf.length !== prefix.length + 2 * coordinate || !buf.subarray(0, prefix.length).equals(prefix)) continue;
    const x = buf.subarray(prefix.length, prefix.length + coordinate).toString('base64url');
    const y = buf.subarray(prefix.length + coordinate).toString('base64url');
    let key: KeyObject;
    try {
      key = createPublicKey({ key: { kty: 'EC', crv, x, y }, format: 'jwk' });
    } catch (e) {
      throw new FormatError('ERR_KEY_UNSUPPORTED', 'key: not a point on the curve', { cause: e });
    }
    return { key, kind, spki: buf };
  }
  return undefined;
}

/** Parses and accepts a DER SubjectPublicKeyInfo. */
export function parsePublicKey(spkiDer: Uint8Array): AgentPublicKey {
  const buf = Buffer.from(spkiDer);
  if (buf.length === 0) throw new FormatError('ERR_KEY_UNSUPPORTED', 'key: empty public key');
  if (buf.length > MAX_DER_BYTES) throw new FormatError('ERR_KEY_UNSUPPORTED', 'key: public key too large');
  const ec = ecKeyFromCanonicalSpki(buf);
  if (ec) return ec;
  let key: KeyObject;
  try {
    parseOne(buf, TAG.SEQUENCE);
    key = createPublicKey({ key: buf, format: 'der', type: 'spki' });
  } catch (e) {
    throw new FormatError('ERR_KEY_UNSUPPORTED', 'key: not a DER SubjectPublicKeyInfo', { cause: e });
  }
  const kind = classifyKey(key);
  return { key, kind, spki: key.export({ format: 'der', type: 'spki' }) };
}

/** Parses a DER PKCS#10 CSR, checks its self-signature, and returns the accepted key. */
export function parseCsr(der: Uint8Array): AgentPublicKey {
  const buf = Buffer.from(der);
  try {
    const req = new SeqReader(parseOne(buf, TAG.SEQUENCE), 'certificationRequest');
    const infoTlv = req.next(TAG.SEQUENCE, 'certificationRequestInfo');
    const algTlv = req.next(TAG.SEQUENCE, 'signatureAlgorithm');
    const sig = decodeBitString(req.next(TAG.BIT_STRING, 'signature'));
    req.end('certificationRequest');
    const info = new SeqReader(infoTlv, 'certificationRequestInfo');
    if (decodeSmallInt(info.next(TAG.INTEGER, 'version')) !== 0) throw csrError('version must be 0');
    info.next(TAG.SEQUENCE, 'subject');
    const spkiTlv = info.next(TAG.SEQUENCE, 'subjectPKInfo');
    info.next(0xa0, 'attributes');
    info.end('certificationRequestInfo');
    const alg = new SeqReader(algTlv, 'signatureAlgorithm');
    const algOid = decodeOid(alg.next(TAG.OID, 'algorithm'));
    const scheme = SIGNATURE_ALGORITHMS.get(algOid);
    if (!scheme) throw csrError(`unsupported signature algorithm ${algOid}`);
    const pk = parsePublicKey(spkiTlv.bytes);
    if ((scheme.key === 'ec') !== (pk.kind !== 'rsa')) throw csrError('signature algorithm does not match the key type');
    if (sig.unused !== 0 || !verify(scheme.hash, infoTlv.bytes, pk.key, sig.bytes)) throw csrError('signature does not verify');
    return pk;
  } catch (e) {
    if (e instanceof FormatError && (e.code === 'ERR_CSR_INVALID' || e.code === 'ERR_KEY_UNSUPPORTED')) throw e;
    throw csrError(e instanceof Error ? e.message : 'malformed', e);
  }
}

function csrError(msg: string, cause?: unknown): FormatError {
  return new FormatError('ERR_CSR_INVALID', `csr: ${msg}`, { cause });
}
