/**
 * Certification path validation (RFC 5280 §6, the subset writ needs): validity at an instant,
 * CA flag, keyCertSign and path length on every issuer, names chained, every signature checked
 * with Node's crypto over exact AlgorithmIdentifier encodings, ending at a trust anchor
 * recognised by its key (a same-named impostor fails the signature check).
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { parseCertificate, type ParsedCertificate } from './certificate.js';
import { KEY_USAGE, SIGNATURE_ALGORITHM_DER } from './oids.js';

/** Longest chain (leaf + intermediates) writ validates. */
export const MAX_CHAIN_LENGTH = 8;

/**
 * Verifies that `issuerKey` signed `cert`'s TBSCertificate. Only the exact AlgorithmIdentifier
 * encodings of SIGNATURE_ALGORITHM_DER pass, and the algorithm must fit the key type.
 */
export function signedBy(cert: ParsedCertificate, issuerKey: KeyObject): boolean {
  const alg = SIGNATURE_ALGORITHM_DER.get(cert.signatureAlgorithmDer.toString('hex'));
  if (!alg || issuerKey.asymmetricKeyType !== alg.key) return false;
  try {
    return verify(alg.hash, cert.tbs, issuerKey, cert.signature);
  } catch {
    return false;
  }
}

// Anchor sets hold the same Buffer objects for their lifetime, so anchors are parsed once per Buffer.
const anchorCache = new WeakMap<Buffer, { cert: ParsedCertificate; key: KeyObject } | null>();
function anchorOf(der: Buffer): { cert: ParsedCertificate; key: KeyObject } | null {
  let r = anchorCache.get(der);
  if (r === undefined) {
    try {
      const cert = parseCertificate(der);
      r = { cert, key: createPublicKey({ key: cert.spki, format: 'der', type: 'spki' }) };
    } catch {
      r = null;
    }
    anchorCache.set(der, r);
  }
  return r;
}

/** The public key of a (possibly UNTRUSTED) issuing certificate, or undefined when OpenSSL cannot decode it. */
function issuerKey(c: ParsedCertificate): KeyObject | undefined {
  try {
    return createPublicKey({ key: c.spki, format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

/** Profile of an issuing certificate; a reason string when it may not issue. */
export function signingProblem(cert: ParsedCertificate): string | undefined {
  if (!cert.basicConstraints?.ca) return 'signing certificate must have CA flag set to true';
  if (!cert.keyUsage?.has(KEY_USAGE.keyCertSign)) return "signing certificate must have 'keyCertSign' set as key usage";
  if (cert.unknownCritical.length) return `signing certificate has unknown critical extension ${cert.unknownCritical[0]}`;
  return undefined;
}

/**
 * Validates `chain` (leaf first, then intermediates) to one of `anchors` (DER) at `atMs`.
 * Returns undefined when valid, else an x509-style reason.
 */
export function pathProblem(chain: readonly ParsedCertificate[], anchors: readonly Buffer[], atMs: number): string | undefined {
  if (chain.length === 0) return 'empty chain';
  if (chain.length > MAX_CHAIN_LENGTH) return `chain longer than ${MAX_CHAIN_LENGTH} certificates`;
  for (let i = 0; i < chain.length; i++) {
    const c = chain[i]!;
    if (atMs > c.notAfter.getTime()) return 'certificate has expired or is not yet valid: current time is after notAfter';
    if (atMs < c.notBefore.getTime()) return 'certificate has expired or is not yet valid: current time is before notBefore';
    if (i === 0) continue;
    const problem = signingProblem(c);
    if (problem) return problem;
    // RFC 5280 §4.2.1.9: pathLenConstraint counts the intermediates below this one.
    if (c.basicConstraints?.pathLen !== undefined && i - 1 > c.basicConstraints.pathLen) return 'too many intermediates for path length constraint';
    const child = chain[i - 1]!;
    const key = issuerKey(c);
    if (!key || !child.issuer.equals(c.subject) || !signedBy(child, key)) return 'certificate signed by unknown authority';
  }
  const top = chain[chain.length - 1]!;
  for (const der of anchors) {
    if (top.der.equals(der)) return undefined;
    const a = anchorOf(der);
    if (!a || !top.issuer.equals(a.cert.subject)) continue;
    if (atMs > a.cert.notAfter.getTime() || atMs < a.cert.notBefore.getTime()) continue;
    // A v3 anchor that states basicConstraints must be a CA whose path length allows this chain.
    const bc = a.cert.basicConstraints;
    if (a.cert.version === 3 && bc && (!bc.ca || (bc.pathLen !== undefined && chain.length - 1 > bc.pathLen))) continue;
    if (signedBy(top, a.key)) return undefined;
  }
  return 'certificate signed by unknown authority';
}

/**
 * Builds and validates a path from `leaf` through any of `pool` (untrusted candidates, in any
 * order, duplicates allowed) to one of `anchors`. Depth-first over issuers whose subject names
 * the current issuer and whose key verifies its signature; bounded by MAX_CHAIN_LENGTH.
 * Returns undefined when a valid path exists, else the reason the best attempt failed.
 */
export function buildPathProblem(leaf: ParsedCertificate, pool: readonly ParsedCertificate[], anchors: readonly Buffer[], atMs: number): string | undefined {
  const unique = pool.filter((c, i) => pool.findIndex((d) => d.der.equals(c.der)) === i);
  let lastProblem: string | undefined = 'certificate signed by unknown authority';
  const walk = (chain: ParsedCertificate[]): boolean => {
    const problem = pathProblem(chain, anchors, atMs);
    if (problem === undefined) return true;
    lastProblem = problem;
    if (chain.length >= MAX_CHAIN_LENGTH) return false;
    const top = chain[chain.length - 1]!;
    for (const c of unique) {
      if (chain.includes(c) || !top.issuer.equals(c.subject)) continue;
      if (walk([...chain, c])) return true;
    }
    return false;
  };
  return walk([leaf]) ? undefined : lastProblem;
}
