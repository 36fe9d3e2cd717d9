/** `writ healthcheck`: is the server on this admin socket serving? With --wait, waits until it is (container probes, scripts). */
import { parseDuration } from '../../config/duration.js';
import { stringOption, UsageError } from '../../config/options.js';
import { HealthCheckResponse_ServingStatus as Serving } from '../../gen/grpc/health/v1/health_pb.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../admin-client.js';
import type { Verb } from '../verb.js';

/** Pause between attempts while waiting. */
const RETRY_MS = 200;

export const healthcheckVerb: Verb = {
  name: ['healthcheck'],
  summary: 'exit 0 when the server answering on the admin socket is SERVING (with --wait, wait until it is)',
  options: {
    ...ADMIN_OPTIONS,
    wait: { type: 'string', value: 'D', help: 'keep trying for this long (e.g. 30s) before failing' },
    quiet: { type: 'boolean', help: 'print nothing' },
  },
  async run({ values, env, io }) {
    const socket = adminSocketPath(values, env);
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
        const r = await adminClients(socket, 2000).health.check({ service: '' });
        if (r.status === Serving.SERVING) {
          if (values.quiet !== true) io.out(`serving (${socket})\n`);
          return 0;
        }
        last = `the server is not serving (status ${Serving[r.status] ?? r.status})`;
      } catch (e) {
        last = (e as Error).message;
      }
      if (Date.now() + RETRY_MS > until) break;
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
    throw new Error(waitMs ? `${last} (waited ${waitText})` : last);
  },
};
