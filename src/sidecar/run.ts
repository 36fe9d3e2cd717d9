/**
 * One running sidecar: the state machine (daemon.ts) and its socket (socket.ts) with every
 * service of `SOCKET_SERVICES`. `writ agent run` is this plus options and signals; tests and
 * benchmarks start it in-process.
 */
import { Sidecar, type SidecarOptions } from './daemon.js';
import { startSocketServer, type SocketServer } from './socket.js';
import type { SocketService } from './socket-service.js';
import { workloadApiService } from './workload-api/service.js';

/** Every service on the sidecar's socket, one line each. */
export const SOCKET_SERVICES: ReadonlyArray<() => SocketService> = [workloadApiService];

export interface RunningSidecar {
  readonly sidecar: Sidecar;
  readonly socket: SocketServer;
  /** Ends every stream, stops renewing, removes the socket. */
  close(): Promise<void>;
}

export interface RunSidecarOptions extends SidecarOptions {
  readonly socketPath: string;
  readonly socketGid?: number;
  /** Services to mount instead of `SOCKET_SERVICES` (tests). */
  readonly services?: readonly SocketService[];
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
  sidecar.start();
  let closing: Promise<void> | undefined;
  return {
    sidecar,
    socket,
    close() {
      closing ??= (async () => {
        await sidecar.stop();
        await socket.close();
      })();
      return closing;
    },
  };
}
