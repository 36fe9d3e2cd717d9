/** One wrapper for unary handlers: domain errors become statuses (server/status.ts), logged once. */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { toGrpcFailure } from './status.js';

export type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => void;

export function unary<Req, Res>(logger: Logger, name: string, fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>): Unary<Req, Res> {
  return (call, cb) => {
    fn(call.request, call).then(
      (res) => cb(null, res),
      (e) => {
        const f = toGrpcFailure(e);
        logger.warn({ rpc: name, code: f.writCode, reason: f.internal }, 'call failed');
        const metadata = new grpc.Metadata();
        metadata.set('writ-error-code', f.writCode);
        cb({ code: f.code, details: f.details, metadata });
      },
    );
  };
}
