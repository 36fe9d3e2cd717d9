/** Typed clients for the admin Unix socket, derived from the generated service descriptors. */
import * as grpc from '@grpc/grpc-js';
import { join, resolve } from 'node:path';
import type { DescMethod } from '@bufbuild/protobuf';
import type { OptionSpecs, OptionValues } from '../config/options.js';
import { unaryCall, unaryClient } from '../rpc/grpc-adapter.js';
import { asCallError } from '../agent/attest-client.js';
import { AdminService } from '../gen/writ/v1/admin_pb.js';
import { AuditService } from '../gen/writ/v1/audit_pb.js';
import { RevocationService } from '../gen/writ/v1/revocation_pb.js';
import { BundleService } from '../gen/writ/v1/bundle_pb.js';
import { Health } from '../gen/grpc/health/v1/health_pb.js';

/** The options every operator verb takes to find the admin socket. */
export const ADMIN_OPTIONS: OptionSpecs = {
  'data-dir': { type: 'string', value: 'DIR', help: "the server's data directory, whose admin.sock is used (default ./.writ, or WRIT_DATA_DIR)" },
  'admin-socket': { type: 'string', value: 'PATH', help: 'the admin socket itself (or WRIT_ADMIN_SOCKET)' },
};

/** The admin socket: --admin-socket, WRIT_ADMIN_SOCKET, or admin.sock in the data directory. */
export function adminSocketPath(values: OptionValues, env: NodeJS.ProcessEnv): string {
  const sock = values['admin-socket'];
  if (typeof sock === 'string' && sock) return resolve(sock);
  if (env.WRIT_ADMIN_SOCKET) return resolve(env.WRIT_ADMIN_SOCKET);
  const dir = values['data-dir'];
  return join(resolve(typeof dir === 'string' && dir ? dir : (env.WRIT_DATA_DIR ?? './.writ')), 'admin.sock');
}

/** Calls one unary method on the admin socket, with the CLI's errors. */
function socketCall(socket: string, deadlineMs: number) {
  return async (m: DescMethod, req: unknown): Promise<unknown> => {
    try {
      return await unaryCall(`unix:${socket}`, grpc.credentials.createInsecure(), m.parent, m.localName, req, { deadline: new Date(Date.now() + deadlineMs) });
    } catch (e) {
      const err = e as grpc.ServiceError;
      // UNAVAILABLE with a writ error code is the server answering (its datastore is down), not an unreachable socket.
      if (err.code === grpc.status.UNAVAILABLE && !err.metadata?.get('writ-error-code').length)
        throw new Error(`cannot reach the writ server admin socket at ${socket} (is \`writ server\` running with this --data-dir?)`);
      if (typeof err.code === 'number') throw asCallError(err);
      throw e;
    }
  };
}

export function adminClients(socket: string, deadlineMs = 10_000) {
  const call = socketCall(socket, deadlineMs);
  return {
    admin: unaryClient(AdminService, call),
    audit: unaryClient(AuditService, call),
    bundle: unaryClient(BundleService, call),
    health: unaryClient(Health, call),
    revocation: unaryClient(RevocationService, call),
  };
}
