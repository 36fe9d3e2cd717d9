/**
 * Endorsement keys: the EK public area must be one of the TCG default templates, must equal the
 * key in the EK certificate, and the certificate must chain to a configured manufacturer root,
 * recognised by its key (TCG EK Credential Profile 2.0). UNTRUSTED input.
 */
import { createHash } from 'node:crypto';
import { AttestationError } from '../../errors.js';
import { TAG, children, decodeOid, parseOne } from '../../der/der.js';
import { parseCertificate, type ParsedCertificate } from '../../x509/certificate.js';
import { buildPathProblem } from '../../x509/path.js';
import { matchesEkTemplate } from '../../tpm/ek-templates.js';
import { publicKeyOf, type TpmPublic } from '../../tpm/structures.js';

const fail = (msg: string) => new AttestationError('ERR_EVIDENCE_INVALID', `attestation(tpm): ${msg}`);

/** TCG EK certificate EKU (tcg-kp-EKCertificate). */
export const OID_TCG_EK_CERTIFICATE = '2.23.133.8.1';
const OID_TPM_MANUFACTURER = '2.23.133.2.1';
const OID_TPM_MODEL = '2.23.133.2.2';
const OID_TPM_VERSION = '2.23.133.2.3';

export interface EkIdentity {
  /** SHA-256 of the EK's SubjectPublicKeyInfo, hex: the TPM's stable identity. */
  readonly ekHash: string;
  readonly manufacturer?: string;
  readonly model?: string;
  readonly version?: string;
  readonly certificate: ParsedCertificate;
}

function tpmIdentity(cert: ParsedCertificate): { manufacturer?: string; model?: string; version?: string } {
  const out: { manufacturer?: string; model?: string; version?: string } = {};
  for (const dn of cert.directoryNames) {
    for (const rdn of children(parseOne(dn, TAG.SEQUENCE))) {
      for (const atv of children(rdn)) {
        const [oidTlv, value] = children(atv);
        if (!oidTlv || !value || oidTlv.tag !== TAG.OID) continue;
        const oid = decodeOid(oidTlv);
        const text = value.value.toString('utf8');
        if (!/^[\x20-\x7e]{1,64}$/.test(text)) continue;
        if (oid === OID_TPM_MANUFACTURER) out.manufacturer = text;
        else if (oid === OID_TPM_MODEL) out.model = text;
        else if (oid === OID_TPM_VERSION) out.version = text;
      }
    }
  }
  return out;
}

/**
 * Verifies an EK: TCG template, certificate key equality, EK profile, and a path to one of
 * `roots` through any of `intermediates` (the agent's and the operator's) at `at`.
 */
export function verifyEk(ek: TpmPublic, certDer: Buffer, intermediates: readonly Buffer[], roots: readonly Buffer[], at: Date): EkIdentity {
  if (!matchesEkTemplate(ek)) throw fail('EK public area does not match a TCG default EK template');
  let cert: ParsedCertificate;
  let pool: ParsedCertificate[];
  try {
    cert = parseCertificate(certDer);
    pool = intermediates.map((d) => parseCertificate(d));
  } catch (e) {
    throw fail(`EK certificate is malformed: ${(e as Error).message}`);
  }
  const ekSpki = publicKeyOf(ek).export({ type: 'spki', format: 'der' });
  if (!ekSpki.equals(cert.spki)) throw fail('EK certificate is for another key than the EK public area');
  if (cert.basicConstraints?.ca) throw fail('EK certificate is a CA certificate');
  if (cert.extKeyUsage && !cert.extKeyUsage.includes(OID_TCG_EK_CERTIFICATE)) throw fail('EK certificate EKU lacks tcg-kp-EKCertificate');
  // TCG profile: the SAN (TPM manufacturer/model/version) is critical when the subject is empty; other
  // unknown critical extensions are still refused.
  if (cert.unknownCritical.length) throw fail(`EK certificate has unknown critical extension ${cert.unknownCritical[0]}`);
  if (roots.length === 0) throw fail('no TPM manufacturer roots are configured');
  const problem = buildPathProblem(cert, pool, roots, at.getTime());
  if (problem) throw fail(`EK certificate does not chain to a trusted manufacturer root: ${problem}`);
  return { ekHash: createHash('sha256').update(ekSpki).digest('hex'), ...tpmIdentity(cert), certificate: cert };
}
