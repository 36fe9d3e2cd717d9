/**
 * One table of every gRPC service the issuer serves: its descriptor, its implementation and
 * where it is exposed. Registration on each listener, server reflection (what each listener
 * lists) and health (one status per service) are all derived from it, so adding a service is
 * one row in `services/index.ts`.
 */
import type { DescFile, DescService } from '@bufbuild/protobuf';
import type * as grpc from '@grpc/grpc-js';
import { Health, file_grpc_health_v1_health } from '../gen/grpc/health/v1/health_pb.js';
import { ServerReflection, file_grpc_reflection_v1_reflection } from '../gen/grpc/reflection/v1/reflection_pb.js';
import { grpcServiceDefinition } from '../rpc/grpc-adapter.js';
import { type HealthState, Serving, healthService } from './services/health.js';
import { reflectionService } from './services/reflection.js';

/** The public TLS port, or the admin Unix socket. */
export type Listener = 'public' | 'admin';

export interface ServiceEntry {
  readonly service: DescService;
  /** The generated file that declares it (for reflection). */
  readonly file: DescFile;
  readonly impl: grpc.UntypedServiceImplementation;
  readonly on: readonly Listener[];
}

/** grpc.reflection.v1alpha has the same messages on the wire; older clients (grpcurl < 1.9) ask for it. */
const REFLECTION_V1ALPHA = { ...ServerReflection, typeName: 'grpc.reflection.v1alpha.ServerReflection' } as DescService;

/**
 * Adds every entry exposed on `listener` to `server`, plus health and reflection (listing what
 * this listener serves), and registers a health status for each of them.
 */
export function mountServices(server: grpc.Server, listener: Listener, table: readonly ServiceEntry[], health: HealthState): string[] {
  const here = table.filter((e) => e.on.includes(listener));
  for (const e of here) server.addService(grpcServiceDefinition(e.service), e.impl);
  server.addService(grpcServiceDefinition(Health), healthService(health));
  const names = [...here.map((e) => e.service.typeName), Health.typeName, ServerReflection.typeName];
  const reflect = reflectionService([...here.map((e) => e.file), file_grpc_health_v1_health, file_grpc_reflection_v1_reflection], () => names);
  server.addService(grpcServiceDefinition(ServerReflection), reflect);
  server.addService(grpcServiceDefinition(REFLECTION_V1ALPHA), reflect);
  return here.map((e) => e.service.typeName);
}

/** SERVING for the server as a whole ("") and for every service in the table. */
export function markServing(health: HealthState, table: readonly ServiceEntry[]): void {
  for (const name of ['', ...new Set(table.map((e) => e.service.typeName))]) health.set(name, Serving.SERVING);
}
