import { oid, seq, tlv, TAG } from '../der/der.js';

/** Object identifiers used by the SVID profile (RFC 5280, RFC 5480, RFC 4055). */
export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  p256: '1.2.840.10045.3.1.7',
  p384: '1.3.132.0.34',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ecdsaSha512: '1.2.840.10045.4.3.4',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  sha384WithRsa: '1.2.840.113549.1.1.12',
  sha512WithRsa: '1.2.840.113549.1.1.13',
  rsaPss: '1.2.840.113549.1.1.10',
  ed25519: '1.3.101.112',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  nameConstraints: '2.5.29.30',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  organizationName: '2.5.4.10',
  organizationalUnitName: '2.5.4.11',
  commonName: '2.5.4.3',
  countryName: '2.5.4.6',
  extensionRequest: '1.2.840.113549.1.9.14',
  /**
   * writ key residency (UUID OID f029a8e5-3653-4e45-97c2-eb5bdbdda18a under 2.25): a
   * non-critical extension whose UTF8String value says where the SVID's private key lives ("tpm").
   */
  writKeyResidency: '2.25.319231028764455267678575191352458191242',
} as const;

/** Signature algorithms accepted on certificates and CSRs, with the hash each uses. */
export const SIGNATURE_ALGORITHMS: ReadonlyMap<string, { hash: string; key: 'ec' | 'rsa' }> = new Map([
  [OID.ecdsaSha256, { hash: 'sha256', key: 'ec' }],
  [OID.ecdsaSha384, { hash: 'sha384', key: 'ec' }],
  [OID.ecdsaSha512, { hash: 'sha512', key: 'ec' }],
  [OID.sha256WithRsa, { hash: 'sha256', key: 'rsa' }],
  [OID.sha384WithRsa, { hash: 'sha384', key: 'rsa' }],
  [OID.sha512WithRsa, { hash: 'sha512', key: 'rsa' }],
]);

/** X.509 keyUsage bits (RFC 5280 §4.2.1.3), bit 0 first. */
export const KEY_USAGE = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
  encipherOnly: 7,
  decipherOnly: 8,
} as const;

/**
 * Signature AlgorithmIdentifiers accepted on certificates, by their exact DER (hex): ECDSA with
 * absent parameters (RFC 5758 §3.2), RSA PKCS#1 v1.5 with NULL or absent parameters (RFC 4055
 * §5). Matching the whole encoding leaves no parameters for an attacker to play with.
 */
export const SIGNATURE_ALGORITHM_DER: ReadonlyMap<string, { hash: string; key: 'ec' | 'rsa' }> = new Map(
  [...SIGNATURE_ALGORITHMS].flatMap(([o, spec]) => {
    const forms = spec.key === 'ec' ? [seq(oid(o))] : [seq(oid(o), tlv(TAG.NULL)), seq(oid(o))];
    return forms.map((f) => [f.toString('hex'), spec] as const);
  }),
);
