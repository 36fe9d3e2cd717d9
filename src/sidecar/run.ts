/**
 * One running sidecar: the state machine (daemon.ts) and its socket (socket.ts) with every
 * service of `SOCKET_SERVICES`. `writ agent run` is this plus options and signals; tests and
 * benchmarks start it in-process.
 */
import type { WatchConnector } from '../revocation/watch-source.js';
import { agentService } from './agent-service/service.js';
import type { StepUpHolder } from './step-ups.js';
import { Sidecar, type SidecarOptions } from './daemon.js';
import { RevocationGuard } from './revocation-guard.js';
import { startSocketServer, type SocketServer } from './socket.js';
import type { SocketService } from './socket-service.js';
import { workloadApiService } from './workload-api/service.js';

/** Every service on the sidecar's socket, one line each. */
export const SOCKET_SERVICES: ReadonlyArray<(o: RunSidecarOptions) => SocketService> = [
  workloadApiService,
  (o) =>
    agentService({
      ...(o.maxRevocationStalenessMs !== undefined ? { maxRevocationStalenessMs: o.maxRevocationStalenessMs } : {}),
      ...(o.escalation ? { escalation: o.escalation } : {}),
    }),
];

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
   * The issuer's RevocationService.Watch, which the sidecar's revocation guard subscribes to
   * (revocation-guard.ts): a revocation that kills the identity revokes the sidecar at once.
   */
  readonly revocation?: {
    readonly addresses: readonly string[];
    readonly connector: WatchConnector;
    readonly reconnectInitialMs?: number;
    readonly reconnectMaxMs?: number;
  };
  /** Delegate refuses when the issuer last confirmed the revocation view longer ago (default 15 s). */
  readonly maxRevocationStalenessMs?: number;
  /** The issuer AgentService.Escalate asks, and the holder of step-up grants the identity source presents. */
  readonly escalation?: { readonly server: string; readonly bundlePem: () => string; readonly stepUps: StepUpHolder };
}

/** Binds the socket first (a live socket at the path refuses the start), then attests. */
export async function runSidecar(o: RunSidecarOptions): Promise<RunningSidecar> {
  const sidecar = new Sidecar(o);
  const log = o.log ?? (() => {});
  const socket = await startSocketServer({
    path: o.socketPath,
    ...(o.socketGid !== undefined ? { gid: o.socketGid } : {}),
    services: o.services ?? SOCKET_SERVICES.map((f) => f(o)),
    ctx: { state: sidecar, now: o.now, log },
  });
  // Subscribed before the first attestation: what is revoked already arrives in the catch-up.
  const guard = o.revocation
    ? new RevocationGuard({
        ...o.revocation,
        state: sidecar,
        onRevoked: (reason) => sidecar.revoke(reason),
        clock: { now: () => new Date(o.now()) },
        ...(o.maxRevocationStalenessMs !== undefined ? { maxStalenessMs: o.maxRevocationStalenessMs } : {}),
        onConnection: (e) => {
          if (e.type !== 'connecting')
            log(`sidecar: revocation watch ${e.type} ${e.address}${e.type === 'disconnected' ? ` (${e.reason}; retry in ${e.retryInMs} ms)` : ''}`);
        },
      })
    : undefined;
  if (guard) {
    sidecar.setFreshnessSource(() => guard.freshness());
    sidecar.setRevocationScreen((id) => guard.screen(id));
    guard.start();
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
