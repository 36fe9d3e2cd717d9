/**
 * `writ agent healthcheck`: does the sidecar on this socket serve an identity? gRPC health of the
 * Workload API service, which is SERVING only while an identity is served (not while attesting,
 * after expiry or revocation). With --wait, keeps asking (container probes, scripts).
 */
import * as grpc from '@grpc/grpc-js';
import { parseDuration } from '../../../config/duration.js';
import { stringOption, UsageError } from '../../../config/options.js';
import { Health, HealthCheckResponse_ServingStatus as Serving, type HealthCheckResponse } from '../../../gen/grpc/health/v1/health_pb.js';
import { SpiffeWorkloadAPI } from '../../../gen/spiffe/workload/workload_pb.js';
import { unaryCall } from '../../../rpc/grpc-adapter.js';
import { socketPath } from '../../../sidecar/socket.js';
import type { Verb } from '../../verb.js';

/** Pause between attempts while waiting. */
const RETRY_MS = 200;

export const agentHealthcheckVerb: Verb = {
  name: ['agent', 'healthcheck'],
  summary: 'exit 0 when the sidecar on the socket serves an identity over the Workload API (with --wait, wait until it does)',
  options: {
    socket: { type: 'string', value: 'PATH', help: "the sidecar's socket (default: SPIFFE_ENDPOINT_SOCKET=unix:///PATH)" },
    wait: { type: 'string', value: 'D', help: 'keep trying for this long (e.g. 30s) before failing' },
    quiet: { type: 'boolean', help: 'print nothing' },
  },
  async run({ values, env, io }) {
    const path = socketPath(stringOption(values, 'socket'), env);
    const waitText = stringOption(values, 'wait');
    let waitMs = 0;
    if (waitText !== undefined) {
      try {
        waitMs = parseDuration(waitText);
      } catch (e) {
        throw new UsageError(`--wait: ${(e as Error).message}`);
      }
    }
    const until = Date.now() + waitMs;
    let last = '';
    for (;;) {
      try {
        const r = await unaryCall<HealthCheckResponse>(
          `unix:${path}`,
          grpc.credentials.createInsecure(),
          Health,
          'check',
          { service: SpiffeWorkloadAPI.typeName },
          { deadline: new Date(Date.now() + 2000) },
        );
        if (r.status === Serving.SERVING) {
          if (values.quiet !== true) io.out(`serving (${path})\n`);
          return 0;
        }
        last = `the sidecar on ${path} serves no identity (status ${Serving[r.status] ?? r.status})`;
      } catch (e) {
        const err = e as grpc.ServiceError;
        last = `no sidecar answers on ${path}: ${err.details || err.message}`;
      }
      if (Date.now() + RETRY_MS > until) break;
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
    throw new Error(waitMs ? `${last} (waited ${waitText})` : last);
  },
};
