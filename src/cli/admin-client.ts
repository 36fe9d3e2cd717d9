/** A client for the admin Unix socket. */
import * as grpc from '@grpc/grpc-js';
import { join, resolve } from 'node:path';
import { create, type DescService } from '@bufbuild/protobuf';
import { grpcClientConstructor } from '../rpc/grpc-adapter.js';
import { asCallError } from '../agent/attest-client.js';

/** The admin socket: --admin-socket, WRIT_ADMIN_SOCKET, or admin.sock in the data directory. */
export function adminSocketPath(opts: { 'data-dir'?: string; 'admin-socket'?: string }, env: NodeJS.ProcessEnv): string {
  if (opts['admin-socket']) return resolve(opts['admin-socket']);
  if (env.WRIT_ADMIN_SOCKET) return resolve(env.WRIT_ADMIN_SOCKET);
  return join(resolve(opts['data-dir'] ?? env.WRIT_DATA_DIR ?? './.writ'), 'admin.sock');
}

/** Calls one unary method on the admin socket. */
export async function adminCall<Res>(socket: string, svc: DescService, method: string, req: unknown): Promise<Res> {
  const m = svc.methods.find((x) => x.localName === method);
  if (!m) throw new Error(`admin: no method ${method} on ${svc.typeName}`);
  const message = create(m.input, req as never);
  const Client = grpcClientConstructor(svc);
  const client = new Client(`unix:${socket}`, grpc.credentials.createInsecure());
  try {
    return await new Promise<Res>((resolvePromise, reject) => {
      const fn = (client as unknown as Record<string, (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method]!;
      fn.call(client, message, { deadline: new Date(Date.now() + 10_000) }, (e, r) => {
        if (e) {
          if (e.code === grpc.status.UNAVAILABLE) reject(new Error(`cannot reach the writ server admin socket at ${socket} (is \`writ server\` running with this --data-dir?)`));
          else reject(asCallError(e));
        } else resolvePromise(r);
      });
    });
  } finally {
    client.close();
  }
}
