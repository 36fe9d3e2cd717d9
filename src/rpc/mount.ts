/**
 * Mounting a list of generated services on one grpc-js server with health and reflection
 * derived from the list (the issuer's listeners and the sidecar's socket both do this).
 */
import type { DescFile, DescService } from '@bufbuild/protobuf';
import type * as grpc from '@grpc/grpc-js';
import { Health, file_grpc_health_v1_health } from '../gen/grpc/health/v1/health_pb.js';
import { ServerReflection, file_grpc_reflection_v1_reflection } from '../gen/grpc/reflection/v1/reflection_pb.js';
import { grpcServiceDefinition } from './grpc-adapter.js';
import { type HealthState, Serving, healthService } from './health.js';
import { reflectionService } from './reflection.js';

export interface MountedService {
  readonly service: DescService;
  /** The generated file that declares it (for reflection). */
  readonly file: DescFile;
  readonly impl: grpc.UntypedServiceImplementation;
}

/** grpc.reflection.v1alpha has the same messages on the wire; older clients (grpcurl < 1.9) ask for it. */
const REFLECTION_V1ALPHA = { ...ServerReflection, typeName: 'grpc.reflection.v1alpha.ServerReflection' } as DescService;

/** Adds every service to `server`, plus health and reflection listing exactly these. */
export function mountWithHealthAndReflection(server: grpc.Server, services: readonly MountedService[], health: HealthState): string[] {
  for (const e of services) server.addService(grpcServiceDefinition(e.service), e.impl);
  server.addService(grpcServiceDefinition(Health), healthService(health));
  const names = [...services.map((e) => e.service.typeName), Health.typeName, ServerReflection.typeName];
  const reflect = reflectionService([...services.map((e) => e.file), file_grpc_health_v1_health, file_grpc_reflection_v1_reflection], () => names);
  server.addService(grpcServiceDefinition(ServerReflection), reflect);
  server.addService(grpcServiceDefinition(REFLECTION_V1ALPHA), reflect);
  return services.map((e) => e.service.typeName);
}

/** Sets one status for the server as a whole ("") and for every service named. */
export function markAll(health: HealthState, names: readonly string[], status: Serving = Serving.SERVING): void {
  for (const name of ['', ...new Set(names)]) health.set(name, status);
}
