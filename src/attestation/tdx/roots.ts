/**
 * The trust anchor every PCK certificate chain must reach: the Intel SGX Root CA, shipped here
 * and pinned by the SHA-256 fingerprint Intel publishes (checked when this module loads). An
 * operator replaces it with `attestation.tdx.roots` (or `--roots`, `--enclave-roots tdx=FILE`);
 * a root copied inside a quote is never an anchor.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { certificatesInFile } from '../../config/files.js';
import { decodePem } from '../../der/pem.js';
import { parseCertificate } from '../../x509/certificate.js';
import { signedBy } from '../../x509/path.js';

/** SHA-256 of the Intel SGX Root CA certificate (DER), as Intel publishes it. */
export const INTEL_SGX_ROOT_CA_SHA256 = '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3';

/** Intel SGX Root CA (https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.pem). */
const INTEL_SGX_ROOT_CA_PEM = `-----BEGIN CERTIFICATE-----
MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw
aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv
cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ
BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG
A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0
aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT
AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7
1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB
uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ
MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50
ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV
Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI
KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg
AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=
-----END CERTIFICATE-----
`;

export const sha256Hex = (der: Buffer): string => createHash('sha256').update(der).digest('hex');

function load(): Buffer {
  const der = decodePem(INTEL_SGX_ROOT_CA_PEM)[0]!.der;
  if (sha256Hex(der) !== INTEL_SGX_ROOT_CA_SHA256) throw new Error('attestation(tdx): the shipped Intel SGX Root CA does not match its pinned fingerprint');
  return der;
}

/** The shipped anchors (DER): the Intel SGX Root CA. */
export const DEFAULT_TDX_ROOTS: readonly Buffer[] = [load()];

/** The self-signed certificates of a vendor chain file (DER): the anchors it names. */
export function anchorsInFile(path: string, what: string): Buffer[] {
  const certs = certificatesInFile(path, what);
  const anchors = certs.filter((der) => {
    try {
      const c = parseCertificate(der);
      return c.subject.equals(c.issuer) && signedBy(c, createPublicKey({ key: c.spki, format: 'der', type: 'spki' }));
    } catch {
      return false;
    }
  });
  if (anchors.length === 0) throw new Error(`${what}: ${path} holds no self-signed root certificate`);
  return anchors;
}
