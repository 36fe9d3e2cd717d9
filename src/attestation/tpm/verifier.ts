/**
 * Evidence type `tpm`: a TPM 2.0 proves itself with its EK certificate (chained to a pinned
 * manufacturer root), an AK activated against that EK by MakeCredential/ActivateCredential on
 * first contact, and a quote by that AK over the handshake nonce and the configured PCRs.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BoundedCache } from '../../cache/bounded.js';
import { AttestationError } from '../../errors.js';
import type { StoreTx, TpmRecord } from '../../store/store.js';
import { encodeChallenge1, encodeChallenge2, MAX_TPM_EVIDENCE_BYTES, parseEvidence1, parseEvidence2, type TpmEvidence } from '../../tpm/evidence.js';
import { objectName, parsePcrSelectionSpec, formatPcrSelection, type TpmPublic } from '../../tpm/structures.js';
import type { AttestationResult, AttestationSession, EvidenceVerifier, VerifyStep } from '../verifier.js';
import { makeCredential } from './credential.js';
import { verifyEk, type EkIdentity } from './ek.js';
import { checkCounters } from './quote.js';
import { checkTpmEvidence } from './evidence-check.js';

export const TPM_TYPE = 'tpm';
/** Size of the activation secret, bytes. */
export const ACTIVATION_SECRET_BYTES = 32;

export interface TpmVerifierSettings {
  /** Trust anchors for EK certificates (DER), e.g. the manufacturer's root CA. */
  readonly roots: readonly Buffer[];
  /** Intermediates the operator trusts to complete EK chains (DER). */
  readonly intermediates: readonly Buffer[];
  /** The PCRs every quote must cover, tpm2-tools syntax ("sha256:0,1,2,3,7"). */
  readonly pcrSelection: string;
  /** The application PCR the sidecar measures agent code into. */
  readonly agentPcr: number;
}

export interface TpmVerifierDeps {
  readonly records: Pick<StoreTx, 'getTpmRecord'>;
  readonly settings: TpmVerifierSettings;
}

const fail = (msg: string) => new AttestationError('ERR_EVIDENCE_INVALID', `attestation(tpm): ${msg}`);

/** EK chains verified recently, by digest of (EK public, certificate, intermediates). */
export const EK_CACHE_SIZE = 4096;
/** How long a verified EK chain is reused before it is verified again (intermediates may expire). */
export const EK_CACHE_TTL_MS = 10 * 60_000;

export function tpmVerifier(deps: TpmVerifierDeps): EvidenceVerifier {
  // A verified EK chain stays verified while every certificate in it is valid; the template and
  // key checks are part of the cached verification because the cache key covers the EK public.
  const ekCache = new BoundedCache<string, { identity: EkIdentity; from: number; until: number }>(EK_CACHE_SIZE);
  const verifyEkCached = (e: TpmEvidence, ek: TpmPublic, at: Date): EkIdentity => {
    const h = createHash('sha256');
    for (const b of [e.ekPublic, e.ekCertificate, ...e.ekIntermediates]) h.update(createHash('sha256').update(b).digest());
    const key = h.digest('hex');
    const hit = ekCache.get(key);
    const t = at.getTime();
    if (hit && t >= hit.from && t <= hit.until) return hit.identity;
    const identity = verifyEk(ek, e.ekCertificate, [...e.ekIntermediates, ...deps.settings.intermediates], anchors, at);
    // Valid for the window of the EK certificate itself; intermediates and roots are re-checked on expiry of that.
    ekCache.set(key, {
      identity,
      from: identity.certificate.notBefore.getTime(),
      until: Math.min(identity.certificate.notAfter.getTime(), t + EK_CACHE_TTL_MS),
    });
    return identity;
  };
  const selection = parsePcrSelectionSpec(deps.settings.pcrSelection);
  const spec = formatPcrSelection(selection);
  const anchors = [...deps.settings.roots];
  return {
    type: TPM_TYPE,
    maxEvidenceBytes: MAX_TPM_EVIDENCE_BYTES,
    maxRounds: 2,
    async begin(ctx): Promise<AttestationSession> {
      let pending: { secret: Buffer; result: AttestationResult } | undefined;
      let round = 0;
      return {
        challenge: encodeChallenge1(spec),
        async respond(evidence: Buffer): Promise<VerifyStep> {
          round++;
          if (round === 2) {
            if (!pending) throw fail('unexpected second evidence message');
            const { activatedSecret } = parseEvidence2(evidence);
            const { secret, result } = pending;
            pending = undefined; // single use, whatever the outcome
            if (activatedSecret.length !== secret.length || !timingSafeEqual(activatedSecret, secret)) {
              throw fail('credential activation failed: the AK is not resident in the TPM that holds this EK');
            }
            return { kind: 'attested', result };
          }
          const e = parseEvidence1(evidence);
          const checked = checkTpmEvidence(e, {
            nonce: ctx.nonce,
            selection,
            agentPcr: deps.settings.agentPcr,
            verifyEk: (ek) => verifyEkCached(e, ek, ctx.now),
            residentKeyIs: (k) => k.export({ type: 'spki', format: 'der' }).equals(ctx.agentKey.spki),
          });
          const { identity, ak, ek, attest, resident } = checked;
          const akName = objectName(ak);
          const record = await deps.records.getTpmRecord(identity.ekHash);
          const known = record !== undefined && record.akName.length === akName.length && timingSafeEqual(record.akName, akName);
          const counters = { resetCount: attest.clockInfo.resetCount, restartCount: attest.clockInfo.restartCount, clock: attest.clockInfo.clock };
          if (known) checkCounters({ ...record!, clock: BigInt(record!.clock) }, counters);
          const firmware = attest.firmwareVersion.toString();
          if (record && record.firmwareVersion !== firmware && known) {
            throw fail(`TPM firmware version ${firmware} differs from the enrolled ${record.firmwareVersion}`);
          }
          const result: AttestationResult = {
            selectors: checked.selectors,
            platform: `${TPM_TYPE}:ek_hash:${identity.ekHash}`,
            ...(resident ? { keyResidency: 'tpm' as const } : {}),
            evidenceDigest: createHash('sha256').update(evidence).digest(),
            publicEvidence: evidence,
            commit: async (tx, now) => {
              // Re-read inside the transaction: a concurrent handshake may have moved the counters.
              const latest = await tx.getTpmRecord(identity.ekHash);
              if (latest?.akName.equals(akName)) checkCounters({ ...latest, clock: BigInt(latest.clock) }, counters);
              const next: TpmRecord = {
                ekHash: identity.ekHash,
                akName,
                firmwareVersion: known && latest ? latest.firmwareVersion : firmware,
                resetCount: counters.resetCount,
                restartCount: counters.restartCount,
                clock: counters.clock.toString(),
                activatedAt: known && latest ? latest.activatedAt : now.getTime(),
                updatedAt: now.getTime(),
              };
              await tx.putTpmRecord(next);
            },
          };
          if (known) return { kind: 'attested', result };
          // First contact, or a changed AK: prove the AK lives in the TPM that holds this EK.
          const secret = randomBytes(ACTIVATION_SECRET_BYTES);
          const cred = makeCredential(ek, akName, secret);
          pending = { secret, result };
          return { kind: 'challenge', payload: encodeChallenge2(cred.credentialBlob, cred.secret) };
        },
      };
    },
  };
}
