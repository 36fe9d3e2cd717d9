/**
 * The issuer's own CA certificates: a self-signed root, or a signing intermediate (pathLen 0)
 * under the root or an upstream CA. Built from the template encoders and signed by a custody
 * signer, so the key may live outside this process.
 */
import * as t from '../svid/template.js';
import type { JwsSigner } from '../jose/jws.js';
import { trustDomainId } from '../spiffe/id.js';
import { KEY_USAGE, OID } from '../x509/oids.js';
import type { ParsedCertificate } from '../x509/certificate.js';

export interface CaCertificateRequest {
  readonly id: string;
  readonly trustDomain: string;
  /** DER SubjectPublicKeyInfo of the new CA key. */
  readonly spki: Buffer;
  readonly notBefore: number;
  readonly notAfter: number;
  /** The CA above; absent for a self-signed root. */
  readonly issuer?: ParsedCertificate;
  /** The key that signs: the new key itself for a root, the issuer's otherwise. */
  readonly signer: JwsSigner;
}

export function buildCaCertificate(p: CaCertificateRequest): Promise<Buffer> {
  const role = p.issuer ? 'signing' : 'root';
  const subject = t.encodeName([
    { oid: OID.organizationName, value: 'writ' },
    { oid: OID.organizationalUnitName, value: p.trustDomain.slice(0, 64) },
    { oid: OID.commonName, value: `writ ${role} CA ${p.id.slice(-16)}` },
  ]);
  const scheme = t.signatureSchemeForAlg(p.signer.alg);
  const issuerSpki = p.issuer ? p.issuer.spki : p.spki;
  const tbs = t.encodeTbs({
    serial: t.randomSerial(),
    algorithm: scheme.algorithm,
    issuer: p.issuer ? p.issuer.subject : subject,
    notBefore: new Date(p.notBefore),
    notAfter: new Date(p.notAfter),
    subject,
    spki: p.spki,
    extensions: [
      p.issuer ? t.basicConstraints(true, 0) : t.basicConstraints(true),
      t.keyUsage([KEY_USAGE.digitalSignature, KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign]),
      t.subjectKeyId(p.spki),
      t.authorityKeyId(issuerSpki),
      t.subjectAltName([trustDomainId(p.trustDomain)]),
    ],
  });
  return t.signCertificateWith(tbs, scheme.algorithm, p.signer);
}
