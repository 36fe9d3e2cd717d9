/** One wrapper for unary handlers: domain errors become statuses (server/status.ts), logged once. */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { LimitError } from '../errors.js';
import { peerHost, type RateLimiter } from './rate-limit.js';
import { toGrpcFailure } from './status.js';

export type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => void;

export function unary<Req, Res>(
  logger: Logger,
  name: string,
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
  limiter?: RateLimiter,
): Unary<Req, Res> {
  return (call, cb) => {
    const run =
      limiter && !limiter.take(peerHost(call.getPeer()))
        ? Promise.reject(new LimitError(`${name}: too many calls from this peer; retry later`))
        : fn(call.request, call);
    run.then(
      (res) => cb(null, res),
      (e) => {
        const f = toGrpcFailure(e);
        logger.warn({ rpc: name, code: f.writCode, reason: f.internal, requestId: f.requestId }, 'call failed');
        const metadata = new grpc.Metadata();
        metadata.set('writ-error-code', f.writCode);
        cb({ code: f.code, details: f.details, metadata });
      },
    );
  };
}
