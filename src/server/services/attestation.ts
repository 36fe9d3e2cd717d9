/** gRPC AttestationService: drives the domain Handshake over a bidirectional stream. */
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AttestResponseSchema, type AttestRequest, type AttestResponse } from '../../gen/writ/v1/attestation_pb.js';
import { AttestationError, DelegationError, JwsError, LimitError, RevocationError } from '../../errors.js';
import type { RefusalTally } from '../../audit/tally.js';
import { bundleDocuments } from '../bundle-documents.js';
import { type Handshake, type HandshakeStep, type Issuer, isAuditedRefusal, isRefusal } from '../../issuance/issuer.js';
import { formatSelector } from '../../registration/entry.js';
import type { Metrics } from '../metrics.js';
import { toGrpcFailure } from '../status.js';
import { peerHost, type RateLimiter } from '../rate-limit.js';

/** A handshake that has not finished after this long is cut off. */
export const HANDSHAKE_TIMEOUT_MS = 30_000;

export function attestationService(deps: {
  issuer: Issuer;
  logger: Logger;
  metrics: Metrics;
  limiter: RateLimiter;
  timeoutMs?: number;
  /** Counts the refusals the issuer did not record one by one (peers not yet named; docs/audit.md "Refusals"). */
  refusals?: RefusalTally;
}): grpc.UntypedServiceImplementation {
  return {
    attest(call: grpc.ServerDuplexStream<AttestRequest, AttestResponse>) {
      const started = process.hrtime.bigint();
      let handshake: Handshake | undefined;
      let evidenceType = 'unknown';
      let finished = false;
      /** A hello with a grant chain that the issuer has not accepted yet: its refusal is the delegation's. */
      let chainAtHello = false;
      let queue: Promise<void> = Promise.resolve();

      const finish = (result: string): void => {
        finished = true;
        clearTimeout(timer);
        const secs = Number(process.hrtime.bigint() - started) / 1e9;
        deps.metrics.handshakes.inc({ evidence_type: evidenceType, result });
        deps.metrics.handshakeSeconds.observe({ evidence_type: evidenceType, result }, secs);
      };
      const fail = (e: unknown): void => {
        if (finished) return;
        const f = toGrpcFailure(e);
        finish(f.writCode);
        if (isRefusal(e) && !isAuditedRefusal(e)) {
          const delegation = chainAtHello && !handshake && (e instanceof DelegationError || e instanceof RevocationError || e instanceof JwsError);
          deps.refusals?.add(delegation ? 'delegation.refused' : 'handshake.refused', e.code, evidenceType);
        }
        deps.logger.warn({ evidenceType, code: f.writCode, reason: f.internal, requestId: f.requestId, peer: call.getPeer() }, 'attestation failed');
        const metadata = new grpc.Metadata();
        metadata.set('writ-error-code', f.writCode);
        call.emit('error', { code: f.code, details: f.details, metadata });
      };
      const send = (step: HandshakeStep): void => {
        if (step.kind === 'challenge') {
          call.write(create(AttestResponseSchema, { step: { case: 'challenge', value: { nonce: step.nonce, payload: step.payload } } }));
          return;
        }
        const r = step.result;
        const docs = bundleDocuments(r.bundle);
        call.write(
          create(AttestResponseSchema, {
            step: {
              case: 'result',
              value: {
                spiffeId: r.spiffeId,
                svidChain: [...r.svidChain],
                bundleJwks: docs.jwks,
                bundlePem: docs.pem,
                jwtSvids: r.jwtSvids.map((j) => ({ audience: j.audience, token: j.token })),
                writ: r.writ ?? '',
                entryId: r.entryId,
                selectors: r.selectors.map(formatSelector),
              },
            },
          }),
        );
        finish('ok');
        deps.logger.info({ evidenceType, spiffeId: r.spiffeId, entryId: r.entryId, jwtSvids: r.jwtSvids.length, writ: r.writ !== undefined }, 'svid issued');
        call.end();
      };
      const timer = setTimeout(() => fail(new AttestationError('ERR_PROTOCOL', 'attestation: handshake timed out')), deps.timeoutMs ?? HANDSHAKE_TIMEOUT_MS);

      if (!deps.limiter.take(peerHost(call.getPeer()))) {
        fail(new LimitError('attestation: too many handshakes from this peer; retry later'));
        return;
      }

      const handle = async (req: AttestRequest): Promise<void> => {
        if (finished) return;
        const step = req.step;
        if (step.case === 'hello') {
          if (handshake) throw new AttestationError('ERR_PROTOCOL', 'attestation: hello sent twice');
          evidenceType = step.value.evidenceType.slice(0, 64) || 'unknown';
          chainAtHello = step.value.grants.length > 0;
          const begun = await deps.issuer.begin({
            evidenceType: step.value.evidenceType,
            publicKey: step.value.publicKey,
            csr: step.value.csr,
            grants: step.value.grants,
            stepUps: step.value.stepUpGrants,
            jwtAudiences: step.value.jwtAudiences,
            writAudiences: step.value.writAudiences,
          });
          handshake = begun.handshake;
          evidenceType = handshake.evidenceType;
          send(begun.challenge);
          return;
        }
        if (step.case === 'evidence') {
          if (!handshake) throw new AttestationError('ERR_PROTOCOL', 'attestation: evidence before hello');
          send(await handshake.respond(step.value.payload, step.value.keyProof));
          return;
        }
        throw new AttestationError('ERR_PROTOCOL', 'attestation: empty request');
      };

      call.on('data', (req: AttestRequest) => {
        queue = queue.then(() => handle(req)).catch(fail);
      });
      call.on('end', () => {
        queue = queue.then(() => {
          if (!finished) fail(new AttestationError('ERR_PROTOCOL', 'attestation: stream closed before the handshake finished'));
        });
      });
      call.on('cancelled', () => {
        if (!finished) finish('cancelled');
      });
    },
  };
}
