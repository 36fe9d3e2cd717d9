/**
 * gRPC VerifyService (public port): verifyWrit for relying parties in other languages,
 * against this issuer's bundle, its revocation knowledge and its clock. A verification
 * failure is an answer (valid=false with the code), not a call error.
 */
import { create } from '@bufbuild/protobuf';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { VerifyResponseSchema, type VerifyRequest } from '../../gen/writ/v1/verify_pb.js';
import { isWritError, LimitError } from '../../errors.js';
import type { Clock } from '../../clock.js';
import type { CaManager } from '../../ca/manager.js';
import type { EvidenceReverifier } from '../../attestation/verifier.js';
import { trustDomainId } from '../../spiffe/id.js';
import { ProofReplayCache, type ReplayCache } from '../../writ/proof.js';
import { parseWritCached } from '../../writ/writ.js';
import { verifyWrit, type RevocationSource, type WritRequirements } from '../../writ/verify.js';
import { issuerRevocationSource } from '../../issuance/revocation-status.js';
import type { Store } from '../../store/store.js';
import { unary } from '../unary.js';
import type { RateLimiter } from '../rate-limit.js';

/** Largest writ or proof accepted by Verify, bytes. */
const MAX_INPUT = 64 * 1024;

export function verifyService(deps: {
  ca: CaManager;
  clock: Clock;
  logger: Logger;
  /** What the issuer knows of revocations. */
  store: Store;
  /** Re-verifiers with the issuer's own trust anchors (the same settings its verifiers use). */
  reverifiers: ReadonlyMap<string, EvidenceReverifier>;
  /** Where proof ids are remembered (per replica by default). */
  replayCache?: ReplayCache;
  limiter?: RateLimiter;
}): grpc.UntypedServiceImplementation {
  const cache = deps.replayCache ?? new ProofReplayCache();
  return {
    verify: unary(
      deps.logger,
      'Verify',
      async (req: VerifyRequest) => {
        if (req.writ.length > MAX_INPUT || req.proof.length > MAX_INPUT) throw new LimitError(`verify: writ and proof are limited to ${MAX_INPUT} bytes`);
        const r = req.requirements;
        const requirements: WritRequirements = {
          ...(r?.evidenceTypes.length ? { evidenceTypes: r.evidenceTypes } : {}),
          ...(r?.selectors.length ? { selectors: r.selectors } : {}),
          ...(r?.maxPolicyAgeSeconds ? { maxPolicyAgeSeconds: r.maxPolicyAgeSeconds } : {}),
          ...(r?.policySnapshots.length ? { policySnapshots: r.policySnapshots } : {}),
          ...(r?.principalIssuer ? { principalIssuer: r.principalIssuer } : {}),
        };
        let revocation: RevocationSource | undefined;
        try {
          revocation = await issuerRevocationSource(deps.store, parseWritCached(req.writ).claims);
        } catch {
          // verifyWrit reports the malformed writ below.
        }
        try {
          const v = verifyWrit({
            writ: req.writ,
            proof: req.proof,
            trust: { issuer: trustDomainId(deps.ca.trustDomain), writKeys: deps.ca.bundle().writAuthorities ?? new Map() },
            audience: req.audience,
            ...(req.method ? { method: req.method } : {}),
            now: deps.clock.now(),
            level: req.deep ? 'deep' : 'standard',
            replayCache: cache,
            ...(revocation ? { revocation } : {}),
            requirements,
            reverifiers: deps.reverifiers,
          });
          return create(VerifyResponseSchema, {
            valid: true,
            level: v.level,
            spiffeId: v.spiffeId,
            principalIss: v.principal.iss,
            principalSub: v.principal.sub,
            chain: [...v.chain],
            taskId: v.task.id,
            lineage: [...v.lineage],
            evidenceType: v.evidenceType,
            selectors: [...v.selectors],
            policySnapshot: v.policy.snap,
            checks: v.checks.map((c) => ({ check: c.check, by: c.by })),
            expiresAt: BigInt(v.expiresAt),
          });
        } catch (e) {
          if (!isWritError(e)) throw e;
          return create(VerifyResponseSchema, { valid: false, errorCode: e.code, error: e.message, level: req.deep ? 'deep' : 'standard' });
        }
      },
      deps.limiter,
    ),
  };
}
