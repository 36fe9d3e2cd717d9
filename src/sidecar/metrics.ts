/**
 * `writ agent run --metrics-listen HOST:PORT`: Prometheus metrics (prom-client, as the server's),
 * a view of `SidecarState`: the state, identities obtained (the first and every renewal), time to
 * the X.509-SVID's notAfter, and how long ago the issuer last confirmed the revocation view (the
 * most a revocation can have been missed by). Read-only; GET /metrics only.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { SidecarState, SidecarStatus } from './state.js';

const STATES: readonly SidecarStatus['state'][] = ['pending', 'serving', 'expired', 'revoked'];

export class SidecarMetrics {
  readonly registry = new Registry();
  private readonly off: () => void;
  private last: unknown;

  constructor(state: SidecarState, now: () => number) {
    const r = [this.registry];
    const identities = new Counter({
      name: 'writ_sidecar_identities_total',
      help: 'Identities obtained: the first attestation and every renewal',
      registers: r,
    });
    const failures = new Counter({
      name: 'writ_sidecar_expirations_total',
      help: 'Times the X.509-SVID passed notAfter with no renewal (serving stopped)',
      registers: r,
    });
    new Gauge({
      name: 'writ_sidecar_state',
      help: 'The state of the sidecar (1 for the current one)',
      labelNames: ['state'] as const,
      registers: r,
      collect() {
        const s = state.current().state;
        for (const x of STATES) this.set({ state: x }, x === s ? 1 : 0);
      },
    });
    new Gauge({
      name: 'writ_sidecar_x509_svid_expiry_seconds',
      help: "Seconds until the served X.509-SVID's notAfter (NaN when none is served)",
      registers: r,
      collect() {
        const s = state.current();
        if (s.state === 'serving') this.set((s.identity.notAfter - now()) / 1000);
        else this.set(Number.NaN);
      },
    });
    new Gauge({
      name: 'writ_sidecar_revocation_staleness_seconds',
      help: 'Seconds since the issuer last confirmed the revocation view (event or heartbeat): the revocation lag bound; NaN before the first',
      registers: r,
      collect() {
        const f = state.revocationFreshness();
        if (f.confirmedAt > 0) this.set((now() - f.confirmedAt) / 1000);
        else this.set(Number.NaN);
      },
    });
    new Gauge({
      name: 'writ_sidecar_revocation_connected',
      help: '1 while the revocation watch is connected',
      registers: r,
      collect() {
        this.set(state.revocationFreshness().connected ? 1 : 0);
      },
    });
    const seen = (s: SidecarStatus) => {
      if (s.state === 'serving' && s.identity !== this.last) {
        this.last = s.identity;
        identities.inc();
      }
      if (s.state === 'expired' && this.last !== 'expired') {
        this.last = 'expired';
        failures.inc();
      }
    };
    seen(state.current());
    this.off = state.subscribe(seen);
  }

  async serve(host: string, port: number): Promise<{ server: Server; port: number }> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    const addr = server.address();
    return { server, port: typeof addr === 'object' && addr ? addr.port : port };
  }

  close(): void {
    this.off();
  }
}
