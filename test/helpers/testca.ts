/**
 * A test CA that can make any certificate, including broken ones, using the same DER
 * templates as the issuer (so tests can build the go-spiffe generated-case tables).
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import * as t from '../../src/svid/template.js';
import { KEY_USAGE, OID } from '../../src/x509/oids.js';
import { parseCertificate, type ParsedCertificate } from '../../src/x509/certificate.js';

export interface TestCert {
  der: Buffer;
  parsed: ParsedCertificate;
  key: KeyObject;
  spki: Buffer;
}

export function ecKey(curve = 'prime256v1'): { privateKey: KeyObject; spki: Buffer } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: curve });
  return { privateKey, spki: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }) };
}

export interface CertOpts {
  subjectCn: string;
  issuer?: TestCert;
  ca?: boolean;
  pathLen?: number;
  keyUsage?: number[];
  uris?: string[];
  notBefore?: Date;
  notAfter?: Date;
  key?: { privateKey: KeyObject; spki: Buffer };
  omitBasicConstraints?: boolean;
  extraExtensions?: Buffer[];
}

export function makeCert(o: CertOpts): TestCert {
  const key = o.key ?? ecKey();
  const subject = t.encodeName([{ oid: OID.commonName, value: o.subjectCn }]);
  const signer = o.issuer?.key ?? key.privateKey;
  const scheme = t.signatureSchemeFor(signer);
  const exts: Buffer[] = [];
  if (!o.omitBasicConstraints) exts.push(t.basicConstraints(!!o.ca, o.pathLen));
  exts.push(t.keyUsage(o.keyUsage ?? (o.ca ? [KEY_USAGE.digitalSignature, KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign] : [KEY_USAGE.digitalSignature])));
  exts.push(t.subjectKeyId(key.spki));
  if (o.uris?.length) exts.push(t.subjectAltName(o.uris));
  exts.push(...(o.extraExtensions ?? []));
  const now = Date.now();
  const tbs = t.encodeTbs({
    serial: t.randomSerial(),
    algorithm: scheme.algorithm,
    issuer: o.issuer ? o.issuer.parsed.subject : subject,
    notBefore: o.notBefore ?? new Date(now - 3600_000),
    notAfter: o.notAfter ?? new Date(now + 3600_000),
    subject,
    spki: key.spki,
    extensions: exts,
  });
  const der = t.signCertificate(tbs, scheme.algorithm, scheme.hash, signer);
  return { der, parsed: parseCertificate(der), key: key.privateKey, spki: key.spki };
}

/** A root CA for trust domain `td` and a leaf under it with `id`. */
export function rootAndLeaf(td: string, id: string, leafOpts: Partial<CertOpts> = {}) {
  const root = makeCert({ subjectCn: `root ${td}`, ca: true, uris: [`spiffe://${td}`] });
  const leaf = makeCert({ subjectCn: 'leaf', issuer: root, uris: [id], ...leafOpts });
  return { root, leaf };
}
