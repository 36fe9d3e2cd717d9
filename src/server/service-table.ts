/**
 * One table of every gRPC service the issuer serves: its descriptor, its implementation and
 * where it is exposed. Registration on each listener, server reflection (what each listener
 * lists) and health (one status per service) are all derived from it (rpc/mount.ts), so adding
 * a service is one row in `services/index.ts`.
 */
import type { DescFile, DescService } from '@bufbuild/protobuf';
import type * as grpc from '@grpc/grpc-js';
import type { HealthState } from '../rpc/health.js';
import { markAll, mountWithHealthAndReflection } from '../rpc/mount.js';

/** The public TLS port, or the admin Unix socket. */
export type Listener = 'public' | 'admin';

export interface ServiceEntry {
  readonly service: DescService;
  /** The generated file that declares it (for reflection). */
  readonly file: DescFile;
  readonly impl: grpc.UntypedServiceImplementation;
  readonly on: readonly Listener[];
}

/**
 * Adds every entry exposed on `listener` to `server`, plus health and reflection (listing what
 * this listener serves), and registers a health status for each of them.
 */
export function mountServices(server: grpc.Server, listener: Listener, table: readonly ServiceEntry[], health: HealthState): string[] {
  return mountWithHealthAndReflection(
    server,
    table.filter((e) => e.on.includes(listener)),
    health,
  );
}

/** SERVING for the server as a whole ("") and for every service in the table. */
export function markServing(health: HealthState, table: readonly ServiceEntry[]): void {
  markAll(
    health,
    table.map((e) => e.service.typeName),
  );
}
