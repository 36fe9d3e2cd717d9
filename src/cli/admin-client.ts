/** A client for the admin Unix socket. */
import * as grpc from '@grpc/grpc-js';
import { join, resolve } from 'node:path';
import type { DescService } from '@bufbuild/protobuf';
import { unaryCall } from '../rpc/grpc-adapter.js';
import { asCallError } from '../agent/attest-client.js';

/** The admin socket: --admin-socket, WRIT_ADMIN_SOCKET, or admin.sock in the data directory. */
export function adminSocketPath(opts: { 'data-dir'?: string; 'admin-socket'?: string }, env: NodeJS.ProcessEnv): string {
  if (opts['admin-socket']) return resolve(opts['admin-socket']);
  if (env.WRIT_ADMIN_SOCKET) return resolve(env.WRIT_ADMIN_SOCKET);
  return join(resolve(opts['data-dir'] ?? env.WRIT_DATA_DIR ?? './.writ'), 'admin.sock');
}

/** Calls one unary method on the admin socket. */
export async function adminCall<Res>(socket: string, svc: DescService, method: string, req: unknown): Promise<Res> {
  try {
    return await unaryCall<Res>(`unix:${socket}`, grpc.credentials.createInsecure(), svc, method, req, { deadline: new Date(Date.now() + 10_000) });
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (err.code === grpc.status.UNAVAILABLE)
      throw new Error(`cannot reach the writ server admin socket at ${socket} (is \`writ server\` running with this --data-dir?)`);
    if (typeof err.code === 'number') throw asCallError(err);
    throw e;
  }
}
