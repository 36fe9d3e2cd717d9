/**
 * One service the sidecar serves on its Unix socket. `sidecar/socket.ts` lists them (the SPIFFE
 * Workload API and writ's AgentService) and mounts each on the one gRPC server, with health and
 * reflection derived from the list; adding a service is one line there.
 */
import type { DescFile, DescService } from '@bufbuild/protobuf';
import type * as grpc from '@grpc/grpc-js';
import type { SidecarState } from './state.js';

export interface SocketServiceContext {
  readonly state: SidecarState;
  /** ms since the epoch; injected so tests can move time. */
  readonly now: () => number;
  /** One line to the sidecar's log (never a key, token or writ). */
  readonly log: (line: string) => void;
}

export interface SocketService {
  /** The service's descriptor (its full name is the gRPC service name). */
  readonly service: DescService;
  /** The generated file that declares it (for reflection). */
  readonly file: DescFile;
  implementation(ctx: SocketServiceContext): grpc.UntypedServiceImplementation;
  /** Ends every open stream of this service with `status` (revocation, expiry, shutdown). */
  readonly closeStreams?: (status: { code: grpc.status; details: string }) => void;
}

/**
 * A writer for a server stream, latest-wins while the client is not reading: at most one message
 * waits (the newest, replacing an older one), written when the stream drains, and none once
 * `over()`. Both services' identity streams write this way, so a client that never reads holds
 * one message, never a queue.
 */
export function latestWins<T>(call: grpc.ServerWritableStream<unknown, T>, over: () => boolean): (m: T) => void {
  let blocked = false;
  let pending: T | undefined;
  const send = (m: T): void => {
    if (blocked) pending = m;
    else if (!call.write(m)) blocked = true;
  };
  call.on('drain', () => {
    blocked = false;
    const m = pending;
    pending = undefined;
    if (m !== undefined && !over()) send(m);
  });
  return send;
}
