/**
 * Verification of an AWS Nitro Enclaves attestation document (aws-nitro-enclaves-nsm-api,
 * docs/attestation_process.md §3.2): the ES384 signature over the exact Sig_structure by the
 * leaf certificate's key first; then the chain leaf → cabundle (reversed: the document lists
 * the root first) → a pinned root, every certificate valid at the verification instant, the
 * document's own copy of the root used only to name which pinned root it claims; then the
 * platform policy (debug enclaves, timestamp window) and the nonce. Pure: no I/O, no clock.
 */
import { createHash, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { BoundedCache } from '../../cache/bounded.js';
import type { Selector } from '../../registration/entry.js';
import { parseCertificate, type ParsedCertificate } from '../../x509/certificate.js';
import { pathProblem } from '../../x509/path.js';
import { NitroEvidenceError, malformed } from './errors.js';
import { parseNitroDocument, type CoseSign1, type NitroDocument } from './document.js';
import { sha256Hex } from './roots.js';

export const NITRO_TYPE = 'nitro';
/** How far a document's timestamp may be ahead of a relying party's clock (deep verification, the offline check). */
export const NITRO_CLOCK_SKEW_MS = 60_000;
/** PCRs that become selectors (`nitro:pcr:<i>:<hex>`): the ones AWS defines (0-4, 8) and the unused 5-7. */
export const SELECTOR_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 8] as const;

export interface NitroVerifyOptions {
  /** Trust anchors (DER), pinned: the AWS Nitro root G1 unless the operator gave others. */
  readonly anchors: readonly Buffer[];
  /** The instant every certificate must be valid at. */
  readonly at: Date;
  /** Accept a debug enclave (PCR0 all zero). */
  readonly allowDebug: boolean;
  /** What `nonce` must equal (the binding digest); undefined: not checked (the offline checker without --report-data). */
  readonly nonce?: Uint8Array;
  /** Accepted timestamps, ms since the epoch, inclusive; undefined: not checked. */
  readonly timestampWindow?: { readonly notBefore: number; readonly notAfter: number };
  /** Chains verified before with these same anchors (a verifier keeps one). */
  readonly chainCache?: NitroChainCache;
}

/** Verified chains kept per verifier (the leaf of an enclave changes every few hours). */
export const NITRO_CHAIN_CACHE_SIZE = 4096;

/**
 * Chains already verified to one fixed anchor set, keyed by the SHA-256 of the certificate and
 * cabundle DER, each valid for the intersection of its certificates' validity (a hit outside
 * it is verified again, and fails); and leaf keys, by the SHA-256 of the leaf certificate.
 */
export class NitroChainCache {
  private readonly cache = new BoundedCache<string, { rootSha256: string; from: number; until: number }>(NITRO_CHAIN_CACHE_SIZE);
  private readonly keys = new BoundedCache<string, KeyObject>(NITRO_CHAIN_CACHE_SIZE);

  /** The leaf certificate's key, decoded once per certificate (OpenSSL decodes a P-384 SPKI in about half the time of a verification). */
  leafKey(der: Buffer, decode: () => KeyObject): KeyObject {
    const k = createHash('sha256').update(der).digest('hex');
    let key = this.keys.get(k);
    if (!key) {
      key = decode();
      this.keys.set(k, key);
    }
    return key;
  }

  static key(d: NitroDocument): string {
    const h = createHash('sha256');
    for (const c of [d.certificate, ...d.cabundle]) h.update(createHash('sha256').update(c).digest());
    return h.digest('hex');
  }

  lookup(d: NitroDocument, at: Date): string | undefined {
    const hit = this.cache.get(NitroChainCache.key(d));
    const t = at.getTime();
    return hit && t >= hit.from && t <= hit.until ? hit.rootSha256 : undefined;
  }

  remember(d: NitroDocument, rootSha256: string, chain: readonly ParsedCertificate[]): void {
    const from = Math.max(...chain.map((c) => c.notBefore.getTime()));
    const until = Math.min(...chain.map((c) => c.notAfter.getTime()));
    this.cache.set(NitroChainCache.key(d), { rootSha256, from, until });
  }
}

export interface VerifiedNitroDocument {
  readonly cose: CoseSign1;
  readonly document: NitroDocument;
  /** PCR0 is all zero: the enclave runs in debug mode (its PCRs say nothing about its code). */
  readonly debug: boolean;
  /** SHA-256 (hex) of the pinned root the chain ends at. */
  readonly rootSha256: string;
  readonly selectors: readonly Selector[];
}

function certificate(der: Buffer, what: string): ParsedCertificate {
  try {
    return parseCertificate(der);
  } catch (e) {
    throw new NitroEvidenceError('malformed', `${what} is not a well-formed certificate: ${(e as Error).message}`, { cause: e });
  }
}

function leafKey(leaf: ParsedCertificate): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: leaf.spki, format: 'der', type: 'spki' });
  } catch (e) {
    throw new NitroEvidenceError('malformed', 'the leaf certificate key cannot be decoded', { cause: e });
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') throw malformed('the leaf certificate key is not ECDSA P-384');
  return key;
}

/** True when `b` is all zero bytes. */
const allZero = (b: Buffer) => b.every((x) => x === 0);

/** Selectors a document proves (README.md §Selectors). */
export function nitroSelectors(d: NitroDocument): Selector[] {
  const out: Selector[] = [];
  for (const i of SELECTOR_PCRS) {
    const v = d.pcrs.get(i);
    if (v) out.push({ type: NITRO_TYPE, value: `pcr:${i}:${v.toString('hex')}` });
  }
  out.push({ type: NITRO_TYPE, value: `module_id:${d.moduleId}` });
  return out;
}

/**
 * Checks the ES384 signature over the exact Sig_structure with the leaf certificate's key (which
 * must be P-384). The key is decoded once per leaf certificate when a cache is given.
 */
export function verifyNitroSignature(cose: CoseSign1, cache?: NitroChainCache): void {
  const der = cose.document.certificate;
  const key = cache ? cache.leafKey(der, () => leafKey(certificate(der, 'the leaf certificate'))) : leafKey(certificate(der, 'the leaf certificate'));
  if (!verify('sha384', cose.toBeSigned, { key, dsaEncoding: 'ieee-p1363' }, cose.signature))
    throw new NitroEvidenceError('signature', 'the COSE_Sign1 signature does not verify with the leaf certificate key');
}

/**
 * The chain of a parsed document: leaf → cabundle reversed (the document lists the root first)
 * → the pinned root that cabundle[0] must equal byte for byte (the copy inside the document only
 * names which pinned root it claims; it is never an anchor), every certificate valid at `at`.
 * Returns the SHA-256 (hex) of that root.
 */
export function verifyNitroChain(d: NitroDocument, anchors: readonly Buffer[], at: Date, cache?: NitroChainCache): string {
  const cached = cache?.lookup(d, at);
  if (cached !== undefined) return cached;
  const leaf = certificate(d.certificate, 'the leaf certificate');
  const bundle = d.cabundle.map((c, i) => certificate(c, `cabundle[${i}]`));
  if (anchors.length === 0) throw new NitroEvidenceError('chain', 'no Nitro root is configured');
  const root = anchors.find((a) => a.equals(d.cabundle[0]!));
  if (!root) throw new NitroEvidenceError('chain', `the document's root (cabundle[0], SHA-256 ${sha256Hex(d.cabundle[0]!)}) is not a pinned root`);
  if (leaf.basicConstraints?.ca) throw new NitroEvidenceError('chain', 'the leaf certificate is a CA certificate');
  if (leaf.unknownCritical.length) throw new NitroEvidenceError('chain', `the leaf certificate has unknown critical extension ${leaf.unknownCritical[0]}`);
  const chain = [leaf, ...bundle.slice(1).reverse()];
  const problem = pathProblem(chain, [root], at.getTime());
  if (problem) throw new NitroEvidenceError('chain', `the certificate chain does not verify to the pinned root at ${at.toISOString()}: ${problem}`);
  const rootSha256 = sha256Hex(root);
  cache?.remember(d, rootSha256, [...chain, certificate(root, 'the pinned root')]);
  return rootSha256;
}

/**
 * Verifies a COSE_Sign1 attestation document; throws `NitroEvidenceError` with the failed
 * check's reason. `bytes` is UNTRUSTED.
 */
export function verifyNitroDocument(bytes: Buffer, o: NitroVerifyOptions): VerifiedNitroDocument {
  const cose = parseNitroDocument(bytes);
  const d = cose.document;
  verifyNitroSignature(cose, o.chainCache);
  const rootSha256 = verifyNitroChain(d, o.anchors, o.at, o.chainCache);

  const pcr0 = d.pcrs.get(0);
  if (!pcr0) throw malformed('the document has no PCR0');
  const debug = allZero(pcr0);
  if (debug && !o.allowDebug) throw new NitroEvidenceError('debug', 'the enclave runs in debug mode (PCR0 is all zero) and debug enclaves are not allowed');
  if (o.timestampWindow && (d.timestamp < o.timestampWindow.notBefore || d.timestamp > o.timestampWindow.notAfter)) {
    const iso = (ms: number) => new Date(ms).toISOString();
    throw new NitroEvidenceError(
      'timestamp',
      `the document's timestamp ${iso(d.timestamp)} is outside ${iso(o.timestampWindow.notBefore)} .. ${iso(o.timestampWindow.notAfter)}`,
    );
  }
  if (o.nonce !== undefined) {
    if (!d.nonce) throw new NitroEvidenceError('nonce', 'the document has no nonce; it must carry the binding digest');
    if (d.nonce.length !== o.nonce.length || !timingSafeEqual(d.nonce, o.nonce))
      throw new NitroEvidenceError('nonce', 'the document nonce is not the binding digest');
  }
  return {
    cose,
    document: d,
    debug,
    rootSha256,
    selectors: nitroSelectors(d),
  };
}
