/**
 * Trust anchors of the `nitro` type: the AWS Nitro Enclaves Root G1 ships pinned by its SHA-256
 * fingerprint (the value AWS publishes in "Verifying the root of trust"); an operator or a
 * relying party may give a PEM file instead, whose anchor is the self-signed certificate in it.
 * A root copied inside a document's `cabundle` is never an anchor (verify.ts).
 */
import { createHash, createPublicKey } from 'node:crypto';
import { decodePem } from '../../der/pem.js';
import { parseCertificate } from '../../x509/certificate.js';
import { signedBy } from '../../x509/path.js';
import { NitroEvidenceError } from './errors.js';

/** AWS Nitro Enclaves Root G1 (CN=aws.nitro-enclaves, P-384, 2019-10-28 .. 2049-10-28), from https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip. */
export const AWS_NITRO_ROOT_G1_PEM = `-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----
`;
/** SHA-256 of the root's DER, as AWS publishes it. */
export const AWS_NITRO_ROOT_G1_SHA256 = '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b';

export const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * The anchors in a PEM or DER certificate file's contents: every certificate must be
 * self-signed (a Nitro root file is the root alone). Throws with why otherwise.
 */
export function anchorsIn(data: Buffer, what: string): Buffer[] {
  const text = data.toString('latin1');
  const ders = text.includes('-----BEGIN')
    ? decodePem(text)
        .filter((b) => b.label === 'CERTIFICATE')
        .map((b) => b.der)
    : [data];
  if (ders.length === 0) throw new NitroEvidenceError('chain', `${what} holds no certificate`);
  for (const der of ders) {
    const c = parseCertificate(der);
    if (!c.subject.equals(c.issuer) || !signedBy(c, createPublicKey({ key: c.spki, format: 'der', type: 'spki' })))
      throw new NitroEvidenceError('chain', `${what}: certificate ${sha256Hex(der)} is not self-signed (give the root alone)`);
    if (!c.basicConstraints?.ca) throw new NitroEvidenceError('chain', `${what}: root ${sha256Hex(der)} is not a CA certificate`);
  }
  return ders;
}

/** The shipped default anchor, checked against its published fingerprint. */
export const DEFAULT_NITRO_ANCHORS: readonly Buffer[] = (() => {
  const [der] = anchorsIn(Buffer.from(AWS_NITRO_ROOT_G1_PEM, 'latin1'), 'the shipped AWS Nitro root');
  if (sha256Hex(der!) !== AWS_NITRO_ROOT_G1_SHA256) throw new Error('attestation(nitro): the shipped AWS Nitro root does not match its pinned fingerprint');
  return [der!];
})();
