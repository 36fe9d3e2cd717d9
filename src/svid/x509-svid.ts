/**
 * X.509-SVID validation (X509-SVID spec §3–§5): the structural profile of leaf and signing
 * certificates, and path validation to a trust bundle at a given instant. Signatures are
 * checked with Node's crypto (OpenSSL). Error strings follow go-spiffe's x509svid package.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { SvidError, WritError } from '../errors.js';
import { decodePem } from '../der/pem.js';
import { parseSpiffeId, type SpiffeId } from '../spiffe/id.js';
import type { BundleSet } from '../spiffe/bundle.js';
import { parseCertificate, type ParsedCertificate } from '../x509/certificate.js';
import { KEY_USAGE } from '../x509/oids.js';
import { MAX_CHAIN_LENGTH, pathProblem, signingProblem } from '../x509/path.js';

export { MAX_CHAIN_LENGTH };

export interface X509Svid {
  readonly id: SpiffeId;
  /** Leaf first, then intermediates. */
  readonly certificates: readonly ParsedCertificate[];
  readonly privateKey?: KeyObject;
}

function fail(msg: string, cause?: unknown): SvidError {
  return new SvidError('ERR_X509_SVID_INVALID', `x509svid: ${msg}`, { cause });
}

/** The single SPIFFE ID of a leaf (X509-SVID §2: exactly one URI SAN). */
export function leafSpiffeId(leaf: ParsedCertificate): SpiffeId {
  if (leaf.uris.length === 0) throw new Error('certificate contains no URI SAN');
  if (leaf.uris.length > 1) throw new Error('certificate contains more than one URI SAN');
  return parseSpiffeId(leaf.uris[0]!);
}

/** Checks the leaf profile (X509-SVID §4) and returns its SPIFFE ID. Throws plain Errors; callers prefix. */
export function checkLeafProfile(leaf: ParsedCertificate): SpiffeId {
  let id: SpiffeId;
  try {
    id = leafSpiffeId(leaf);
  } catch (e) {
    throw new Error(`cannot get leaf certificate SPIFFE ID: ${(e as Error).message}`);
  }
  if (id.path === '') throw new Error('leaf certificate SPIFFE ID must have a non-root path');
  if (leaf.basicConstraints?.ca) throw new Error('leaf certificate must not have CA flag set to true');
  const ku = leaf.keyUsage;
  if (!ku?.has(KEY_USAGE.digitalSignature)) throw new Error("leaf certificate must have 'digitalSignature' set as key usage");
  if (ku.has(KEY_USAGE.keyCertSign)) throw new Error("leaf certificate must not have 'keyCertSign' set as key usage");
  if (ku.has(KEY_USAGE.cRLSign)) throw new Error("leaf certificate must not have 'cRLSign' set as key usage");
  if (leaf.unknownCritical.length) throw new Error(`leaf certificate has unknown critical extension ${leaf.unknownCritical[0]}`);
  return id;
}

/** Checks a signing certificate (X509-SVID §4.1, §4.3). */
export function checkSigningProfile(cert: ParsedCertificate): void {
  const problem = signingProblem(cert);
  if (problem) throw new Error(problem);
}

function parseCertsPem(pem: string | Uint8Array): ParsedCertificate[] {
  const text = typeof pem === 'string' ? pem : Buffer.from(pem).toString('utf8');
  let blocks;
  try {
    blocks = decodePem(text);
  } catch (e) {
    throw fail(`cannot parse PEM encoded certificate: ${(e as Error).message}`, e);
  }
  if (blocks.length === 0) throw fail('cannot parse PEM encoded certificate: no PEM blocks found');
  const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
  if (certs.length > MAX_CHAIN_LENGTH) throw fail(`chain longer than ${MAX_CHAIN_LENGTH} certificates`);
  return certs.map((b) => {
    try {
      const cert = parseCertificate(b.der);
      // As Go's x509.ParseCertificate: a SubjectPublicKeyInfo that does not decode is a malformed certificate.
      createPublicKey({ key: cert.spki, format: 'der', type: 'spki' });
      return cert;
    } catch (e) {
      throw fail('cannot parse PEM encoded certificate: x509: malformed certificate', e);
    }
  });
}

function parseKeyPem(pem: string | Uint8Array): KeyObject {
  const text = typeof pem === 'string' ? pem : Buffer.from(pem).toString('utf8');
  let blocks;
  try {
    blocks = decodePem(text);
  } catch (e) {
    throw fail(`cannot parse PEM encoded private key: ${(e as Error).message}`, e);
  }
  if (blocks.length === 0) throw fail('cannot parse PEM encoded private key: no PEM blocks found');
  const keyBlock = blocks.find((b) => b.label === 'PRIVATE KEY');
  if (!keyBlock) throw fail('private key validation failed: no private key found');
  try {
    return createPrivateKey({ key: keyBlock.der, format: 'der', type: 'pkcs8' });
  } catch (e) {
    throw fail('cannot parse PEM encoded private key: asn1: structure error: not a PKCS#8 private key', e);
  }
}

/**
 * Structural parse of an X.509-SVID and its key (go-spiffe `x509svid.Parse`): chain shape,
 * SPIFFE ID, leaf and signing profiles, key match. Does not check time or signatures.
 */
export function parseX509Svid(certsPem: string | Uint8Array, keyPem: string | Uint8Array): X509Svid {
  const certs = parseCertsPem(certsPem);
  if (certs.length === 0) throw fail('certificate validation failed: no certificates found');
  const privateKey = parseKeyPem(keyPem);
  const id = validateChainProfile(certs);
  const leafKey = createPublicKey({ key: certs[0]!.spki, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' });
  const derived = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  if (!leafKey.equals(derived)) throw fail('private key validation failed: leaf certificate does not match private key');
  return { id, certificates: certs, privateKey };
}

/** Profile checks over a whole chain (leaf + signing certs); returns the leaf's SPIFFE ID. */
export function validateChainProfile(certs: readonly ParsedCertificate[]): SpiffeId {
  try {
    const id = checkLeafProfile(certs[0]!);
    for (const c of certs.slice(1)) checkSigningProfile(c);
    return id;
  } catch (e) {
    if (e instanceof WritError) throw fail(`certificate validation failed: ${e.message}`, e);
    throw fail(`certificate validation failed: ${(e as Error).message}`, e);
  }
}

/**
 * Verifies an X.509-SVID chain (leaf first, DER) against the bundle of the leaf's trust
 * domain at instant `at` (go-spiffe `x509svid.Verify`). Returns the SPIFFE ID.
 */
export function verifyX509Svid(chainDer: readonly Uint8Array[], bundles: BundleSet, at: Date): { id: SpiffeId; chain: ParsedCertificate[] } {
  if (chainDer.length === 0) throw fail('empty certificates chain');
  if (chainDer.length > MAX_CHAIN_LENGTH) throw fail(`chain longer than ${MAX_CHAIN_LENGTH} certificates`);
  let chain: ParsedCertificate[];
  try {
    chain = chainDer.map((d) => parseCertificate(Buffer.from(d)));
  } catch (e) {
    throw fail(`cannot parse certificate: ${(e as Error).message}`, e);
  }
  const leaf = chain[0]!;
  let id: SpiffeId;
  try {
    id = leafSpiffeId(leaf);
  } catch (e) {
    throw fail(`could not get leaf SPIFFE ID: ${(e as Error).message}`, e);
  }
  if (leaf.basicConstraints?.ca) throw fail('leaf certificate with CA flag set to true');
  if (leaf.keyUsage?.has(KEY_USAGE.keyCertSign)) throw fail('leaf certificate with KeyCertSign key usage');
  if (leaf.keyUsage?.has(KEY_USAGE.cRLSign)) throw fail('leaf certificate with KeyCrlSign key usage');
  const bundle = bundles.get(id.trustDomain);
  if (!bundle) throw fail(`could not get X509 bundle: x509bundle: no X.509 bundle found for trust domain: "${id.trustDomain}"`);
  const verr = (msg: string): SvidError => fail(`could not verify leaf certificate: x509: ${msg}`);
  try {
    checkLeafProfile(leaf);
  } catch (e) {
    throw fail((e as Error).message, e);
  }
  const problem = pathProblem(chain, bundle.x509Authorities, at.getTime());
  if (problem) throw verr(problem);
  return { id, chain };
}
