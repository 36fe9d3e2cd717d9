/**
 * One running sidecar: the state machine (daemon.ts) and its socket (socket.ts) with every
 * service of `SOCKET_SERVICES`. `writ agent run` is this plus options and signals; tests and
 * benchmarks start it in-process.
 */
import type { WatchConnector } from '../revocation/watch-source.js';
import { agentService } from './agent-service/service.js';
import { Sidecar, type SidecarOptions } from './daemon.js';
import { RevocationGuard } from './revocation-guard.js';
import { startSocketServer, type SocketServer } from './socket.js';
import type { SocketService } from './socket-service.js';
import { workloadApiService } from './workload-api/service.js';

/** Every service on the sidecar's socket, one line each. */
export const SOCKET_SERVICES: ReadonlyArray<() => SocketService> = [workloadApiService, () => agentService()];

export interface RunningSidecar {
  readonly sidecar: Sidecar;
  readonly socket: SocketServer;
  /** The revocation subscription, when one was configured. */
  readonly guard?: RevocationGuard;
  /** Ends every stream, stops renewing, removes the socket. */
  close(): Promise<void>;
}

export interface RunSidecarOptions extends SidecarOptions {
  readonly socketPath: string;
  readonly socketGid?: number;
  /** Services to mount instead of `SOCKET_SERVICES` (tests). */
  readonly services?: readonly SocketService[];
  /**
   * The issuer's revocation Watch (`grpcWatchConnector(bundlePem)` at the issuer's addresses):
   * a revocation of this identity stops it at once (revocation-guard.ts).
   */
  readonly revocation?: { readonly addresses: readonly string[]; readonly connector: WatchConnector };
}

/** Binds the socket first (a live socket at the path refuses the start), then attests. */
export async function runSidecar(o: RunSidecarOptions): Promise<RunningSidecar> {
  const sidecar = new Sidecar(o);
  const log = o.log ?? (() => {});
  const socket = await startSocketServer({
    path: o.socketPath,
    ...(o.socketGid !== undefined ? { gid: o.socketGid } : {}),
    services: o.services ?? SOCKET_SERVICES.map((f) => f()),
    ctx: { state: sidecar, now: o.now, log },
  });
  let guard: RevocationGuard | undefined;
  if (o.revocation) {
    guard = new RevocationGuard({
      addresses: o.revocation.addresses,
      connector: o.revocation.connector,
      state: sidecar,
      onRevoked: (reason) => sidecar.revoke(reason),
      clock: { now: () => new Date(o.now()) },
      onConnection: (e) => log(`sidecar: revocation watch: ${e.type}${'address' in e ? ` ${e.address}` : ''}`),
    }).start();
    const g = guard;
    sidecar.setFreshnessSource(() => g.freshness());
  }
  sidecar.start();
  let closing: Promise<void> | undefined;
  return {
    sidecar,
    socket,
    ...(guard ? { guard } : {}),
    close() {
      closing ??= (async () => {
        guard?.close();
        await sidecar.stop();
        await socket.close();
      })();
      return closing;
    },
  };
}
