/** grpc.health.v1.Health: SERVING for the server ("") and each registered service. */
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import {
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Serving,
  HealthListResponseSchema,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from '../gen/grpc/health/v1/health_pb.js';

export class HealthState {
  private readonly statuses = new Map<string, Serving>();
  private readonly watchers = new Set<(service: string, s: Serving) => void>();

  set(service: string, s: Serving): void {
    this.statuses.set(service, s);
    for (const w of this.watchers) w(service, s);
  }
  get(service: string): Serving | undefined {
    return this.statuses.get(service);
  }
  all(): ReadonlyMap<string, Serving> {
    return this.statuses;
  }
  /** Marks every service NOT_SERVING (during shutdown). */
  shutdown(): void {
    for (const k of [...this.statuses.keys()]) this.set(k, Serving.NOT_SERVING);
  }
  watch(fn: (service: string, s: Serving) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }
}

export function healthService(state: HealthState): grpc.UntypedServiceImplementation {
  return {
    check(call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, cb: grpc.sendUnaryData<HealthCheckResponse>) {
      const s = state.get(call.request.service);
      if (s === undefined) {
        cb({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
        return;
      }
      cb(null, create(HealthCheckResponseSchema, { status: s }));
    },
    list(_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) {
      const statuses: Record<string, HealthCheckResponse> = {};
      for (const [k, v] of state.all()) statuses[k] = create(HealthCheckResponseSchema, { status: v });
      cb(null, create(HealthListResponseSchema, { statuses }));
    },
    watch(call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) {
      const service = call.request.service;
      let last: Serving | undefined;
      const emit = (s: Serving) => {
        if (s === last) return;
        last = s;
        call.write(create(HealthCheckResponseSchema, { status: s }));
      };
      emit(state.get(service) ?? Serving.SERVICE_UNKNOWN);
      const stop = state.watch((svc, s) => svc === service && emit(s));
      call.on('cancelled', stop);
      call.on('close', stop);
    },
  };
}

export { Serving };
