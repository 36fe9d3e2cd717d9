/**
 * Attestation keys and quotes: every check of the TPM quote checklist (go-attestation,
 * go-tpm-tools, Keylime), plus the one tpm2_checkquote skips — the signer must be a
 * restricted key, so the TPM itself produced the TPMS_ATTEST. UNTRUSTED input.
 */
import { constants, createHash, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { BoundedCache } from '../../cache/bounded.js';
import { AttestationError } from '../../errors.js';
import { HASHES, TPMA_OBJECT, TPM_ALG, TPM_ECC, TPM_ST } from '../../tpm/constants.js';
import {
  objectName,
  parseAttest,
  parseSignature,
  publicKeyOf,
  samePcrSelection,
  formatPcrSelection,
  type PcrSelection,
  type TpmAttest,
  type TpmPublic,
} from '../../tpm/structures.js';

const fail = (msg: string) => new AttestationError('ERR_EVIDENCE_INVALID', `attestation(tpm): ${msg}`);

const REQUIRED_AK = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.restricted | TPMA_OBJECT.sign;
const STRONG_HASHES = new Set<number>([TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512]);

/** An AK must be a TPM-generated, TPM-bound, restricted signing key with a strong fixed scheme. */
export function checkAk(ak: TpmPublic): void {
  if ((ak.attributes & REQUIRED_AK) !== REQUIRED_AK) {
    const missing = Object.entries(TPMA_OBJECT)
      .filter(([, bit]) => REQUIRED_AK & bit && !(ak.attributes & bit))
      .map(([n]) => n);
    throw fail(`AK lacks required attributes: ${missing.join(', ')}`);
  }
  if (ak.attributes & TPMA_OBJECT.decrypt) throw fail('AK must not be a decryption key');
  if (!STRONG_HASHES.has(ak.nameAlg)) throw fail('AK nameAlg must be SHA-256 or stronger');
  const s = ak.scheme;
  if (s.hashAlg === undefined || !STRONG_HASHES.has(s.hashAlg)) throw fail('AK signing scheme must use SHA-256 or stronger');
  if (ak.type === TPM_ALG.RSA) {
    if (s.scheme !== TPM_ALG.RSASSA && s.scheme !== TPM_ALG.RSAPSS) throw fail('RSA AK scheme must be RSASSA or RSAPSS');
    if (ak.keyBits < 2048) throw fail('RSA AK must be at least 2048 bits');
  } else {
    if (s.scheme !== TPM_ALG.ECDSA) throw fail('ECC AK scheme must be ECDSA');
    if (ak.curve !== TPM_ECC.NIST_P256 && ak.curve !== TPM_ECC.NIST_P384) throw fail('ECC AK curve must be P-256 or P-384');
  }
}

/** Verifies a TPMT_SIGNATURE over `message` with `ak`, requiring the AK's own scheme and hash. */
export function verifyTpmSignature(ak: TpmPublic, key: KeyObject, message: Buffer, signatureBytes: Buffer): void {
  const sig = parseSignature(signatureBytes);
  if (sig.sigAlg !== ak.scheme.scheme || sig.hash !== ak.scheme.hashAlg) throw fail("signature scheme or hash differs from the AK's");
  const hashName = HASHES.get(sig.hash)!.name;
  let ok = false;
  try {
    if (sig.sigAlg === TPM_ALG.ECDSA) {
      const size = ak.type === TPM_ALG.ECC && ak.curve === TPM_ECC.NIST_P384 ? 48 : 32;
      if (sig.r.length > size || sig.s.length > size) throw fail('ECDSA signature component too long');
      const rs = Buffer.concat([Buffer.alloc(size - sig.r.length), sig.r, Buffer.alloc(size - sig.s.length), sig.s]);
      ok = verify(hashName, message, { key, dsaEncoding: 'ieee-p1363' }, rs);
    } else if (sig.sigAlg === TPM_ALG.RSASSA) {
      ok = verify(hashName, message, { key, padding: constants.RSA_PKCS1_PADDING }, sig.sig);
    } else {
      ok = verify(hashName, message, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, sig.sig);
    }
  } catch (e) {
    if (e instanceof AttestationError) throw e;
    ok = false;
  }
  if (!ok) throw fail('signature does not verify with the AK');
}

/** AK public keys already converted to KeyObjects, by their TPMT_PUBLIC bytes (bounded). */
const AK_KEY_CACHE_SIZE = 4096;
const akKeys = new BoundedCache<string, KeyObject>(AK_KEY_CACHE_SIZE);
function akKey(ak: TpmPublic): KeyObject {
  return akKeys.getOrSet(ak.bytes.toString('base64'), () => publicKeyOf(ak));
}

/** PCR values by bank hash, then index. */
export type PcrValues = ReadonlyMap<number, ReadonlyMap<number, Buffer>>;

/** The digest a quote commits to: H_sig(values of the selection, banks in order, PCRs ascending). */
export function pcrDigest(hash: number, selection: readonly PcrSelection[], values: PcrValues): Buffer {
  const h = createHash(HASHES.get(hash)!.name);
  for (const bank of selection) {
    const size = HASHES.get(bank.hash)!.size;
    for (const p of bank.pcrs) {
      const v = values.get(bank.hash)?.get(p);
      if (!v) throw fail(`missing PCR value ${formatPcrSelection([{ hash: bank.hash, pcrs: [p] }])}`);
      if (v.length !== size) throw fail(`PCR ${p} value has the wrong size`);
      h.update(v);
    }
  }
  return h.digest();
}

export interface VerifiedQuote {
  readonly attest: TpmAttest & { type: typeof TPM_ST.ATTEST_QUOTE };
}

/**
 * Verifies a quote: signature by the AK with its own scheme over the exact TPMS_ATTEST bytes;
 * magic and type; extraData equals `nonce` (constant time); the PCR selection is exactly the
 * requested one; pcrDigest recomputed from the reported values; clock `safe`.
 */
export function verifyQuote(
  ak: TpmPublic,
  attestBytes: Buffer,
  signatureBytes: Buffer,
  nonce: Buffer,
  selection: readonly PcrSelection[],
  values: PcrValues,
): VerifiedQuote {
  checkAk(ak);
  const attest = parseAttest(attestBytes);
  if (attest.type !== TPM_ST.ATTEST_QUOTE) throw fail('attest is not a quote');
  verifyTpmSignature(ak, akKey(ak), attestBytes, signatureBytes);
  if (attest.extraData.length !== nonce.length || !timingSafeEqual(attest.extraData, nonce)) throw fail('quote nonce mismatch');
  if (!samePcrSelection(attest.pcrSelect, selection)) {
    throw fail(`quote covers ${formatPcrSelection(attest.pcrSelect)}, not the requested ${formatPcrSelection(selection)}`);
  }
  const expected = pcrDigest(ak.scheme.hashAlg!, selection, values);
  if (!timingSafeEqual(expected, attest.pcrDigest.length === expected.length ? attest.pcrDigest : Buffer.alloc(expected.length))) {
    throw fail('PCR values do not match the quoted digest');
  }
  if (!attest.clockInfo.safe) throw fail('TPM clock is not safe (it may have been rolled back)');
  return { attest };
}

/** Counters of the last accepted quote of an AK. */
export interface QuoteCounters {
  readonly resetCount: number;
  readonly restartCount: number;
  readonly clock: bigint;
}

/** resetCount, restartCount and clock never go backwards for one AK. */
export function checkCounters(prev: QuoteCounters | undefined, now: QuoteCounters): void {
  if (!prev) return;
  if (now.resetCount < prev.resetCount) throw fail('TPM resetCount went backwards (replayed quote)');
  if (now.resetCount > prev.resetCount) return;
  if (now.restartCount < prev.restartCount) throw fail('TPM restartCount went backwards (replayed quote)');
  if (now.restartCount > prev.restartCount) return;
  if (now.clock < prev.clock) throw fail('TPM clock went backwards (replayed quote)');
}

/**
 * Checks TPM2_Certify evidence that the agent key is resident in the same TPM as the AK:
 * signature by the AK with its scheme, type TPM_ST_ATTEST_CERTIFY, certified Name equals the
 * Name computed from the key's public area, extraData equals the nonce; the key is fixedTPM,
 * fixedParent, sensitiveDataOrigin and sign, and neither restricted nor decrypt.
 */
export function verifyCertify(ak: TpmPublic, key: TpmPublic, attestBytes: Buffer, signatureBytes: Buffer, nonce: Buffer): void {
  const required = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.sign;
  if ((key.attributes & required) !== required) throw fail('TPM-resident key must be fixedTPM, fixedParent, sensitiveDataOrigin and sign');
  if (key.attributes & (TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt)) throw fail('TPM-resident agent key must be neither restricted nor decrypt');
  const attest = parseAttest(attestBytes);
  if (attest.type !== TPM_ST.ATTEST_CERTIFY) throw fail('certify evidence is not a TPMS_CERTIFY_INFO');
  verifyTpmSignature(ak, akKey(ak), attestBytes, signatureBytes);
  if (attest.extraData.length !== nonce.length || !timingSafeEqual(attest.extraData, nonce)) throw fail('certify nonce mismatch');
  if (!attest.name.equals(objectName(key))) throw fail('certified Name is not the Name of the presented key');
}
