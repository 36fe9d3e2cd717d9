/**
 * gRPC RevocationService. On the admin socket Revoke is the operator's; on the public port the
 * caller proves it is a principal (an OIDC token) or an agent (its writ and a proof of
 * possession for the issuer). Watch streams the feed with bounded buffers: a subscriber that
 * stops reading is cut off with a resumable error and never slows the others.
 */
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { RevokeResponseSchema, WatchResponseSchema, type RevokeRequest, type WatchRequest, type WatchResponse } from '../../gen/writ/v1/revocation_pb.js';
import { RevocationError } from '../../errors.js';
import type { Clock } from '../../clock.js';
import type { CaManager } from '../../ca/manager.js';
import type { PrincipalVerifier } from '../../principal/oidc.js';
import type { RevocationFeed, FeedMessage } from '../../issuance/revocation-feed.js';
import { issuerRevocationSource } from '../../issuance/revocation-status.js';
import type { Revocations, Revoker } from '../../issuance/revocations.js';
import type { Store } from '../../store/store.js';
import { trustDomainId } from '../../spiffe/id.js';
import type { ReplayCache } from '../../writ/proof.js';
import { verifyWrit } from '../../writ/verify.js';
import { parseWritCached } from '../../writ/writ.js';
import { REVOKE_METHOD } from '../../revocation/target.js';
import { newRequestId, toGrpcFailure } from '../status.js';
import { unary } from '../unary.js';
import type { RateLimiter } from '../rate-limit.js';

/** Messages queued for one subscriber before it is cut off as too slow. */
export const MAX_SUBSCRIBER_BACKLOG = 4096;
/** Most Watch streams one issuer serves at once. */
export const MAX_SUBSCRIBERS = 20_000;
/** Largest writ, proof or token accepted by Revoke. */
const MAX_CREDENTIAL = 64 * 1024;

export interface RevocationServiceDeps {
  readonly revocations: Revocations;
  readonly feed: RevocationFeed;
  readonly store: Store;
  readonly ca: CaManager;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly principals: PrincipalVerifier;
  readonly replayCache: ReplayCache;
  readonly limiter?: RateLimiter;
  /** The admin socket: Revoke needs no credential there, and takes none. */
  readonly operator: boolean;
}

/** Each event's message, built (and, frozen, serialized) once for all its subscribers: by record, or by the shared heartbeat. */
const messages = new WeakMap<object, WatchResponse>();

function toPb(m: FeedMessage): WatchResponse {
  const key = m.kind === 'revocation' ? m.record : m;
  let pb = messages.get(key);
  if (!pb) {
    pb = Object.freeze(buildPb(m));
    messages.set(key, pb);
  }
  return pb;
}

function buildPb(m: FeedMessage): WatchResponse {
  switch (m.kind) {
    case 'revocation': {
      const r = m.record;
      return create(WatchResponseSchema, {
        message: {
          case: 'revocation',
          value: {
            sequence: BigInt(r.seq),
            kind: r.kind,
            target: r.target,
            reason: r.reason,
            at: BigInt(r.at),
            actor: r.actor,
            principal: r.principal,
            derivedFrom: BigInt(r.derivedFrom ?? 0),
          },
        },
      });
    }
    case 'heartbeat':
      return create(WatchResponseSchema, { message: { case: 'heartbeat', value: { sequence: BigInt(m.sequence), at: BigInt(m.at) } } });
    case 'snapshot-begin':
      return create(WatchResponseSchema, { message: { case: 'snapshotBegin', value: { oldestRetained: BigInt(m.oldestRetained) } } });
    case 'snapshot-end':
      return create(WatchResponseSchema, { message: { case: 'snapshotEnd', value: { sequence: BigInt(m.sequence) } } });
  }
}

export function revocationService(deps: RevocationServiceDeps): grpc.UntypedServiceImplementation {
  const { revocations, feed, store, ca, clock, logger } = deps;

  async function revoker(req: RevokeRequest): Promise<Revoker> {
    const c = req.credential;
    if (deps.operator) {
      if (c.case) throw new RevocationError('ERR_REVOCATION_INVALID', 'revocation: the admin socket is the operator; send no credential');
      return { kind: 'operator' };
    }
    if (c.case === 'principal') {
      if (c.value.subjectToken.length > MAX_CREDENTIAL) throw new RevocationError('ERR_REVOCATION_INVALID', 'revocation: token too large');
      const p = await deps.principals.verify(c.value.subjectToken, c.value.subjectTokenType || 'urn:ietf:params:oauth:token-type:id_token');
      return { kind: 'principal', iss: p.iss, sub: p.sub };
    }
    if (c.case === 'agent') {
      if (c.value.writ.length > MAX_CREDENTIAL || c.value.proof.length > MAX_CREDENTIAL)
        throw new RevocationError('ERR_REVOCATION_INVALID', 'revocation: writ or proof too large');
      const claims = parseWritCached(c.value.writ).claims;
      const v = verifyWrit({
        writ: c.value.writ,
        proof: c.value.proof,
        trust: { issuer: trustDomainId(ca.trustDomain), writKeys: ca.bundle().writAuthorities ?? new Map() },
        audience: trustDomainId(ca.trustDomain),
        method: REVOKE_METHOD,
        now: clock.now(),
        replayCache: deps.replayCache,
        revocation: await issuerRevocationSource(store, claims),
      });
      return { kind: 'agent', writ: v.claims };
    }
    throw new RevocationError(
      'ERR_REVOCATION_DENIED',
      'revocation: on the public port a principal token or an agent writ with its proof is required (operators use the admin socket)',
    );
  }

  return {
    revoke: unary(
      logger,
      'Revoke',
      async (req: RevokeRequest) => {
        const by = await revoker(req);
        const r = await revocations.revoke(req.kind, req.target, req.reason, by);
        logger.info({ kind: req.kind, target: req.target, seq: r.seq, writs: r.writs, derived: r.records.length - 1, actor: r.records[0]!.actor }, 'revoked');
        return create(RevokeResponseSchema, { sequence: BigInt(r.seq), at: BigInt(r.at), writs: r.writs });
      },
      deps.limiter,
    ),
    watch(call: grpc.ServerWritableStream<WatchRequest, WatchResponse>) {
      let backlog = 0;
      let unsubscribe: (() => void) | undefined;
      let ended = false;
      const end = (e?: grpc.ServiceError | { code: grpc.status; details: string }) => {
        if (ended) return;
        ended = true;
        unsubscribe?.();
        if (e) call.emit('error', e);
        else call.end();
      };
      const sink = {
        send: (m: FeedMessage) => {
          if (ended) return false;
          if (backlog >= MAX_SUBSCRIBER_BACKLOG) return false;
          // write() false: the HTTP/2 stream's buffer is full; count until it drains (one listener, not one per message).
          if (!call.write(toPb(m)) && backlog++ === 0) {
            call.once('drain', () => {
              backlog = 0;
            });
          }
          return true;
        },
        overflow: (lastSent: number) => {
          const metadata = new grpc.Metadata();
          metadata.set('writ-resume-since', String(lastSent));
          end({
            code: grpc.status.RESOURCE_EXHAUSTED,
            details: `revocation: this subscriber fell behind; resume with since=${lastSent}`,
            metadata,
          } as grpc.ServiceError);
        },
      };
      call.on('cancelled', () => end());
      call.on('close', () => end());
      const since = Number(call.request.since);
      if (!Number.isSafeInteger(since) || since < 0) {
        end({ code: grpc.status.INVALID_ARGUMENT, details: 'revocation: since must be a sequence number' });
        return;
      }
      if (feed.subscriberCount >= MAX_SUBSCRIBERS) {
        end({ code: grpc.status.RESOURCE_EXHAUSTED, details: `revocation: this issuer serves at most ${MAX_SUBSCRIBERS} watch streams; retry later` });
        return;
      }
      feed.subscribe(since, sink).then(
        (u) => {
          unsubscribe = u;
          if (ended) u();
        },
        (e) => {
          const f = toGrpcFailure(e, newRequestId());
          logger.warn({ rpc: 'Watch', code: f.writCode, reason: f.internal, requestId: f.requestId }, 'call failed');
          end({ code: f.code, details: f.details });
        },
      );
    },
  };
}
