/**
 * The SPIFFE Workload API (`SpiffeWorkloadAPI`, upstream workload.proto, no proto package) on
 * the sidecar's socket, a view of `SidecarState`:
 * - every call needs the metadata `workload.spiffe.io: true` (SPIFFE Workload Endpoint §5),
 *   else INVALID_ARGUMENT "security header missing from request";
 * - before the first identity: UNAVAILABLE (transient: clients back off and retry); an identity
 *   that expired or was revoked: PERMISSION_DENIED (Workload API §5.2.1, not entitled: clients
 *   stop using what they hold, and may retry after a backoff);
 * - streams send a complete message at once, then one on every change (§4.3); a stream whose
 *   client does not read keeps only the latest message pending, so it holds one message at most;
 * - a TPM-resident key cannot be delivered: FetchX509SVID answers FAILED_PRECONDITION (JWT-SVIDs,
 *   bundles and validation still work; writ's AgentService signs with the key instead);
 * - the WIT-SVID methods answer UNIMPLEMENTED.
 * UNTRUSTED: every request and its metadata come from any process that can open the socket.
 */
import { create, type JsonObject } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { isWritError } from '../../errors.js';
import {
  JWTSVIDResponseSchema,
  SpiffeWorkloadAPI,
  ValidateJWTSVIDResponseSchema,
  file_spiffe_workload_workload,
  type JWTSVIDRequest,
  type JWTSVIDResponse,
  type ValidateJWTSVIDRequest,
  type ValidateJWTSVIDResponse,
} from '../../gen/spiffe/workload/workload_pb.js';
import { BundleSet, parseSpiffeBundle } from '../../spiffe/bundle.js';
import { parseSpiffeId } from '../../spiffe/id.js';
import { MAX_JWT_BYTES, validateJwtSvid } from '../../svid/jwt-svid.js';
import { SECURITY_HEADER_MISSING, securityHeaderMissing } from '../security-header.js';
import { latestWins, type SocketService, type SocketServiceContext } from '../socket-service.js';
import type { SidecarIdentity, SidecarStatus, TrustBundle } from '../state.js';
import { jwtBundlesResponse, x509BundlesResponse, x509SvidResponse } from './messages.js';

// The metadata every request on the socket must carry (SPIFFE Workload Endpoint §5); shared with the AgentService.
export { SECURITY_HEADER, SECURITY_HEADER_MISSING } from '../security-header.js';
/** Longest SPIFFE ID accepted in a request (SPIFFE-ID §2.3: 2048 bytes). */
export const MAX_SPIFFE_ID_BYTES = 2048;
/** Most Workload API streams open at once on one sidecar. */
export const MAX_STREAMS = 10_000;

interface Refusal {
  readonly code: grpc.status;
  readonly details: string;
}

const refuse = (code: grpc.status, details: string): Refusal => ({ code, details });

function headerMissing(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): Refusal | undefined {
  return securityHeaderMissing(call.metadata) ? refuse(grpc.status.INVALID_ARGUMENT, SECURITY_HEADER_MISSING) : undefined;
}

/** What a caller gets when there is no identity to serve (`now`: an identity past notAfter is never served, whatever a timer did). */
export function notServing(s: SidecarStatus, now: number): Refusal | undefined {
  switch (s.state) {
    case 'serving':
      return s.identity.notAfter <= now ? refuse(grpc.status.PERMISSION_DENIED, 'no identity issued: the X.509-SVID expired and was not renewed') : undefined;
    case 'pending':
      return refuse(grpc.status.UNAVAILABLE, 'no identity issued yet (the sidecar is attesting)');
    case 'expired':
      return refuse(grpc.status.PERMISSION_DENIED, `no identity issued: ${s.reason}`);
    case 'revoked':
      return refuse(grpc.status.PERMISSION_DENIED, `no identity issued: revoked: ${s.reason}`);
  }
}

const TPM_KEY = refuse(
  grpc.status.FAILED_PRECONDITION,
  "the agent key is resident in a TPM and cannot be delivered as PKCS#8: the SPIFFE Workload API's X.509-SVID profile requires the key; use JWT-SVIDs, or writ.agent.v1.AgentService, which signs with the key",
);

function errorStatus(e: unknown, state: SidecarStatus, now: number): Refusal {
  if (isWritError(e) && e.code === 'ERR_SIDECAR_REQUEST_INVALID') return refuse(grpc.status.INVALID_ARGUMENT, e.message);
  if (isWritError(e) && e.code === 'ERR_LIMIT_EXCEEDED') return refuse(grpc.status.RESOURCE_EXHAUSTED, e.message);
  return notServing(state, now) ?? refuse(grpc.status.UNAVAILABLE, isWritError(e) ? e.message : 'the sidecar could not answer');
}

const bundleKey = (b: TrustBundle) => `${b.pem}\n${b.jwks}`;

/** All open streams of one service instance, so revocation and shutdown can end them. */
class StreamSet {
  private readonly ends = new Set<(r: Refusal) => void>();
  get size(): number {
    return this.ends.size;
  }
  add(end: (r: Refusal) => void): () => void {
    this.ends.add(end);
    return () => this.ends.delete(end);
  }
  endAll(r: Refusal): void {
    for (const e of [...this.ends]) e(r);
  }
}

/**
 * A server stream fed from the state: `render` returns the message for an identity (or a
 * refusal), `changed` whether a new identity needs a new message. Writes are latest-wins while
 * the client is not reading.
 */
function streamFromState<T>(
  ctx: SocketServiceContext,
  streams: StreamSet,
  call: grpc.ServerWritableStream<unknown, T>,
  render: (id: SidecarIdentity) => T | Refusal,
  changed: (prev: SidecarIdentity, next: SidecarIdentity) => boolean,
): void {
  const first = headerMissing(call) ?? notServing(ctx.state.current(), ctx.now());
  if (first) {
    call.emit('error', { code: first.code, details: first.details });
    return;
  }
  if (streams.size >= MAX_STREAMS) {
    call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `too many Workload API streams (limit ${MAX_STREAMS})` });
    return;
  }
  let over = false;
  let last: SidecarIdentity | undefined;
  const end = (r: Refusal) => {
    if (over) return;
    over = true;
    unsubscribe();
    remove();
    call.emit('error', { code: r.code, details: r.details });
  };
  const send = latestWins(call, () => over);
  const onIdentity = (id: SidecarIdentity) => {
    if (last && !changed(last, id)) return;
    last = id;
    const m = render(id);
    if (m && typeof m === 'object' && 'code' in (m as object) && 'details' in (m as object)) end(m as Refusal);
    else send(m as T);
  };
  const unsubscribe = ctx.state.subscribe((s) => {
    if (over) return;
    if (s.state === 'serving') onIdentity(s.identity);
    else end(notServing(s, ctx.now()) ?? refuse(grpc.status.UNAVAILABLE, 'no identity'));
  });
  const remove = streams.add(end);
  call.on('cancelled', () => {
    over = true;
    unsubscribe();
    remove();
  });
  const s = ctx.state.current();
  if (s.state === 'serving') onIdentity(s.identity);
}

// One frozen response per cached JWT-SVID: serialized once however often it is served.
const jwtResponses = new WeakMap<object, JWTSVIDResponse>();
function jwtResponse(j: { readonly spiffeId: string; readonly token: string }): JWTSVIDResponse {
  let r = jwtResponses.get(j);
  if (!r) {
    r = Object.freeze(create(JWTSVIDResponseSchema, { svids: [{ spiffeId: j.spiffeId, svid: j.token }] }));
    jwtResponses.set(j, r);
  }
  return r;
}

function unaryRefusal<T>(cb: grpc.sendUnaryData<T>, r: Refusal): void {
  cb({ code: r.code, details: r.details });
}

export function workloadApiService(): SocketService {
  const streams = new StreamSet();
  return {
    service: SpiffeWorkloadAPI,
    file: file_spiffe_workload_workload,
    closeStreams: (status) => streams.endAll(status),
    implementation(ctx) {
      return {
        fetchX509SVID(call: grpc.ServerWritableStream<unknown, unknown>) {
          streamFromState(
            ctx,
            streams,
            call,
            (id) => (id.privateKeyPkcs8 ? x509SvidResponse(id) : TPM_KEY),
            (a, b) => a !== b,
          );
        },
        fetchX509Bundles(call: grpc.ServerWritableStream<unknown, unknown>) {
          streamFromState(
            ctx,
            streams,
            call,
            (id) => x509BundlesResponse(id.bundle),
            (a, b) => bundleKey(a.bundle) !== bundleKey(b.bundle),
          );
        },
        fetchJWTBundles(call: grpc.ServerWritableStream<unknown, unknown>) {
          streamFromState(
            ctx,
            streams,
            call,
            (id) => jwtBundlesResponse(id.bundle),
            (a, b) => bundleKey(a.bundle) !== bundleKey(b.bundle),
          );
        },
        fetchJWTSVID(call: grpc.ServerUnaryCall<JWTSVIDRequest, JWTSVIDResponse>, cb: grpc.sendUnaryData<JWTSVIDResponse>) {
          const early = headerMissing(call);
          if (early) return unaryRefusal(cb, early);
          const req = call.request;
          if (req.audience.length === 0) return unaryRefusal(cb, refuse(grpc.status.INVALID_ARGUMENT, 'audience must be specified'));
          const state = ctx.state.current();
          const none = notServing(state, ctx.now());
          if (req.spiffeId !== '') {
            if (Buffer.byteLength(req.spiffeId) > MAX_SPIFFE_ID_BYTES)
              return unaryRefusal(cb, refuse(grpc.status.INVALID_ARGUMENT, `spiffe_id is longer than ${MAX_SPIFFE_ID_BYTES} bytes`));
            let requested: string;
            try {
              requested = parseSpiffeId(req.spiffeId).uri;
            } catch (e) {
              return unaryRefusal(cb, refuse(grpc.status.INVALID_ARGUMENT, `invalid requested SPIFFE ID: ${(e as Error).message}`));
            }
            // SPIRE: a SPIFFE ID the caller is not entitled to is PermissionDenied ("no identity issued").
            if (!none && state.state === 'serving' && requested !== state.identity.spiffeId)
              return unaryRefusal(cb, refuse(grpc.status.PERMISSION_DENIED, 'no identity issued for the requested SPIFFE ID'));
          }
          if (none) return unaryRefusal(cb, none);
          ctx.state.jwtSvid(req.audience).then(
            (j) => cb(null, jwtResponse(j)),
            (e) => {
              ctx.log(`workload-api: FetchJWTSVID: ${(e as Error).message}`);
              unaryRefusal(cb, errorStatus(e, ctx.state.current(), ctx.now()));
            },
          );
        },
        validateJWTSVID(call: grpc.ServerUnaryCall<ValidateJWTSVIDRequest, ValidateJWTSVIDResponse>, cb: grpc.sendUnaryData<ValidateJWTSVIDResponse>) {
          const early = headerMissing(call);
          if (early) return unaryRefusal(cb, early);
          const req = call.request;
          if (req.audience === '') return unaryRefusal(cb, refuse(grpc.status.INVALID_ARGUMENT, 'audience must be specified'));
          if (req.svid === '') return unaryRefusal(cb, refuse(grpc.status.INVALID_ARGUMENT, 'svid must be specified'));
          if (req.svid.length > MAX_JWT_BYTES) return unaryRefusal(cb, refuse(grpc.status.INVALID_ARGUMENT, `svid is longer than ${MAX_JWT_BYTES} bytes`));
          const state = ctx.state.current();
          const none = notServing(state, ctx.now());
          if (none || state.state !== 'serving') return unaryRefusal(cb, none ?? refuse(grpc.status.UNAVAILABLE, 'no bundle'));
          const b = state.identity.bundle;
          let claims: Record<string, unknown>;
          let spiffeId: string;
          try {
            const v = validateJwtSvid(req.svid, new BundleSet([parseSpiffeBundle(b.trustDomain, b.jwks)]), [req.audience], new Date(ctx.now()));
            claims = v.claims;
            spiffeId = v.id.uri;
          } catch (e) {
            return unaryRefusal(cb, refuse(grpc.status.INVALID_ARGUMENT, (e as Error).message));
          }
          cb(null, create(ValidateJWTSVIDResponseSchema, { spiffeId, claims: claims as JsonObject }));
        },
        fetchWITSVID(call: grpc.ServerWritableStream<unknown, unknown>) {
          call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'WIT-SVIDs are not issued by writ' });
        },
        fetchWITBundles(call: grpc.ServerWritableStream<unknown, unknown>) {
          call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'WIT-SVIDs are not issued by writ' });
        },
      };
    },
  };
}
