/**
 * The SPIFFE security header (SPIFFE Workload Endpoint §5): every request on the sidecar's
 * socket, to the Workload API and to writ's AgentService alike, must carry the metadata
 * `workload.spiffe.io: true`, exactly once. A browser or a request-forging proxy pointed at the
 * socket cannot set it, so a request without it is refused (INVALID_ARGUMENT) before anything
 * else is looked at. Clients on the socket add it with `securityHeaderInterceptor`.
 */
import * as grpc from '@grpc/grpc-js';

/** The metadata every request on the socket must carry. */
export const SECURITY_HEADER = 'workload.spiffe.io';
export const SECURITY_HEADER_MISSING = 'security header missing from request';

/** Whether `metadata` lacks the header (absent, repeated, or not exactly `true`). */
export function securityHeaderMissing(metadata: grpc.Metadata): boolean {
  const v = metadata.get(SECURITY_HEADER);
  return !(v.length === 1 && v[0] === 'true');
}

/** A client interceptor adding the header to every call (pass in `interceptors`). */
export const securityHeaderInterceptor: grpc.Interceptor = (options, nextCall) =>
  new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set(SECURITY_HEADER, 'true');
      next(metadata, listener);
    },
  });
