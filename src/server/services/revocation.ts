/**
 * gRPC RevocationService. On the admin socket Revoke is the operator's; on the public port the
 * caller proves it is a principal (an OIDC token) or an agent (its writ and a proof of
 * possession for the issuer). Watch streams the feed with bounded buffers: a subscriber that
 * stops reading is cut off with a resumable error and never slows the others.
 */
import * as http2 from 'node:http2';
import { Duplex } from 'node:stream';
import { create, toBinary } from '@bufbuild/protobuf';
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
import { revokeMethod } from '../../writ/proof-methods.js';
import { newRequestId, toGrpcFailure } from '../status.js';
import { unary } from '../unary.js';
import { peerHost, type RateLimiter } from '../rate-limit.js';
import type { WatchStreams } from '../watch-streams.js';

/** Messages queued for one subscriber (beyond what its transport buffers) before it is cut off as too slow. */
export const MAX_SUBSCRIBER_BACKLOG = 4096;
/**
 * After a cut, how long its status may wait behind what the stream's transport still holds (at
 * most a stream buffer's worth: the backlog itself is freed at the cut) before the HTTP/2 stream
 * is reset (RST_STREAM ENHANCE_YOUR_CALM, which gRPC clients report as RESOURCE_EXHAUSTED).
 */
export const CUT_STREAM_GRACE_MS = 5000;
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
  /** Open streams and queued bytes, shared by every RevocationService instance. */
  readonly watchStreams: WatchStreams;
}

interface Outgoing {
  readonly pb: WatchResponse;
  /** Its size on the wire (gRPC framing included), what queuing it costs. */
  readonly bytes: number;
  /** A revocation's sequence; 0 for the other messages. */
  readonly seq: number;
}

/** Each event's message, built (and, frozen, serialized) once for all its subscribers: by record, or by the shared heartbeat. */
const messages = new WeakMap<object, Outgoing>();

function toPb(m: FeedMessage): Outgoing {
  const key = m.kind === 'revocation' ? m.record : m;
  let out = messages.get(key);
  if (!out) {
    const pb = Object.freeze(buildPb(m));
    out = { pb, bytes: 5 + toBinary(WatchResponseSchema, pb).length, seq: m.kind === 'revocation' ? m.record.seq : 0 };
    messages.set(key, out);
  }
  return out;
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
            expiresAt: BigInt(r.expiresAt ?? 0),
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
        // A writ restricted to some relying parties (`aud`) still lets its holder revoke what it signed.
        presentedToIssuer: true,
        // Bound to this kind and target: the proof revokes exactly one thing.
        method: revokeMethod(req.kind, req.target),
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
      // UNTRUSTED: anyone who reaches the port. Every stream holds a slot (overall and per peer
      // address) until its HTTP/2 stream is closed, and what is queued for it counts against one
      // shared byte budget.
      const slot = deps.watchStreams.acquire(peerHost(call.getPeer()));
      if ('refused' in slot) {
        call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `revocation: ${slot.refused}` });
        return;
      }
      const h2 = http2StreamOf(call);
      /** Messages the transport refused for now, oldest first from `head`. */
      let queue: Outgoing[] = [];
      let head = 0;
      let queuedBytes = 0;
      let writable = true;
      let unsubscribe: (() => void) | undefined;
      let ended = false;
      let closed = false;
      let resetTimer: NodeJS.Timeout | undefined;
      /** The last revocation handed to the transport (what the subscriber can have received). */
      let written = Number.isSafeInteger(Number(call.request.since)) ? Number(call.request.since) : 0;
      const write = (out: Outgoing): boolean => {
        if (out.seq > 0) written = out.seq;
        return call.write(out.pb);
      };
      const dropQueue = () => {
        deps.watchStreams.free(queuedBytes);
        queue = [];
        head = 0;
        queuedBytes = 0;
      };
      /** The HTTP/2 stream is over: nothing of it is held any more. */
      const closedNow = () => {
        if (closed) return;
        closed = true;
        ended = true;
        clearTimeout(resetTimer);
        unsubscribe?.();
        dropQueue();
        slot.release();
      };
      const end = (e?: grpc.ServiceError | { code: grpc.status; details: string }) => {
        if (ended) return;
        ended = true;
        unsubscribe?.();
        dropQueue();
        if (e) call.emit('error', e);
        else call.end();
        // The status waits behind what the transport holds; a peer that does not read it loses the stream.
        resetTimer = setTimeout(() => {
          if (closed) return;
          if (h2 && !h2.destroyed) h2.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
          else call.destroy();
          closedNow();
        }, CUT_STREAM_GRACE_MS);
        resetTimer.unref();
      };
      const flush = () => {
        writable = true;
        while (!ended && head < queue.length) {
          const next = queue[head]!;
          queue[head++] = undefined as unknown as Outgoing;
          queuedBytes -= next.bytes;
          deps.watchStreams.free(next.bytes);
          if (!write(next)) {
            writable = false;
            call.once('drain', flush);
            break;
          }
        }
        if (head === queue.length) {
          queue = [];
          head = 0;
        }
      };
      const sink = {
        send: (m: FeedMessage) => {
          if (ended) return false;
          const out = toPb(m);
          if (writable && head === queue.length) {
            // write() false: the stream's buffer is full; queue here (counted) until it drains.
            if (!write(out)) {
              writable = false;
              call.once('drain', flush);
            }
            return true;
          }
          if (queue.length - head >= MAX_SUBSCRIBER_BACKLOG || !deps.watchStreams.reserve(out.bytes)) return false;
          queue.push(out);
          queuedBytes += out.bytes;
          return true;
        },
        overflow: () => {
          // What was queued is dropped now: the hint is what reached the transport.
          const metadata = new grpc.Metadata();
          metadata.set('writ-resume-since', String(written));
          end({
            code: grpc.status.RESOURCE_EXHAUSTED,
            details: `revocation: this subscriber fell behind; resume with since=${written}`,
            metadata,
          } as grpc.ServiceError);
        },
      };
      if (h2) h2.once('close', closedNow);
      call.on('cancelled', closedNow);
      call.on('close', () => {
        // Without the HTTP/2 stream in hand, the call's end is the best signal there is.
        if (!h2) closedNow();
        else end();
      });
      const since = Number(call.request.since);
      if (!Number.isSafeInteger(since) || since < 0) {
        end({ code: grpc.status.INVALID_ARGUMENT, details: 'revocation: since must be a sequence number' });
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

/**
 * The HTTP/2 stream under a grpc-js server call, to reset it (grpc-js has no public way to). Found
 * by shape, so that a grpc-js that moves it degrades to destroying the call, not to a crash;
 * test/e2e/revocation-watch.test.ts checks a stalled stream is really reset.
 */
function http2StreamOf(call: object): http2.ServerHttp2Stream | undefined {
  let c = (call as { call?: unknown }).call;
  for (let i = 0; i < 8 && c && typeof c === 'object'; i++) {
    const s = (c as { stream?: unknown }).stream;
    if (s instanceof Duplex && typeof (s as { close?: unknown }).close === 'function' && 'rstCode' in s) return s as http2.ServerHttp2Stream;
    c = (c as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}
