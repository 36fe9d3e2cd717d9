/**
 * `writ agent run --metrics-listen HOST:PORT`: Prometheus metrics (prom-client, as the server's),
 * a view of `SidecarState`: the state, identities obtained (the first and every renewal),
 * renewals and failed renewals (by a bounded reason), time to the X.509-SVID's notAfter, how
 * long ago the issuer last confirmed the revocation view (the most a revocation can have been
 * missed by), and, from the revocation guard, how long each revocation took from the issuer's
 * record to this sidecar. Read-only; GET /metrics only. The names are listed in README.md.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RenewalFailure, SidecarState, SidecarStatus } from './state.js';

const STATES: readonly SidecarStatus['state'][] = ['pending', 'serving', 'expired', 'revoked'];
const RENEWAL_FAILURES: readonly RenewalFailure[] = ['unavailable', 'refused', 'terminal', 'error'];
/** Seconds from the issuer recording a revocation to the guard applying it. */
const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300];

/** The revocation guard's side (revocation-guard.ts `onLag`). */
export interface RevocationLagSource {
  /** Called with the seconds each live revocation took to arrive; returns the unsubscribe function. */
  onLag(listener: (seconds: number) => void): () => void;
}

export class SidecarMetrics {
  readonly registry = new Registry();
  private readonly off: () => void;
  private readonly offLag: () => void;
  private last: unknown;

  constructor(state: SidecarState, now: () => number, revocations?: RevocationLagSource) {
    const r = [this.registry];
    const identities = new Counter({
      name: 'writ_sidecar_identities_total',
      help: 'Identities obtained: the first attestation and every renewal (writ_sidecar_renewals_total counts renewals alone)',
      registers: r,
    });
    // The daemon's counts, caught up at each scrape (a counter only grows: the difference is added).
    let renewed = 0;
    new Counter({
      name: 'writ_sidecar_renewals_total',
      help: 'Renewals of the X.509-SVID that succeeded (scheduled, step-up or with an on-demand JWT-SVID); the first attestation is not one',
      registers: r,
      collect() {
        const n = state.renewalCounts?.().renewals ?? 0;
        if (n > renewed) this.inc(n - renewed);
        renewed = n;
      },
    });
    const failed: Record<RenewalFailure, number> = { unavailable: 0, refused: 0, terminal: 0, error: 0 };
    new Counter({
      name: 'writ_sidecar_renewal_failures_total',
      help: 'Renewals that failed, by reason: unavailable (no answer from the issuer), refused (an issuer refusal, retried), terminal (revoked or the entry gone), error (this side)',
      labelNames: ['reason'] as const,
      registers: r,
      collect() {
        const f = state.renewalCounts?.().failures;
        for (const reason of RENEWAL_FAILURES) {
          const n = f?.[reason] ?? 0;
          // Every reason exported from the start (0), so a rate() sees the first failure.
          this.inc({ reason }, Math.max(0, n - failed[reason]));
          failed[reason] = Math.max(n, failed[reason]);
        }
      },
    });
    const lag = new Histogram({
      name: 'writ_sidecar_revocation_lag_seconds',
      help: "Seconds from the issuer recording a revocation (its `at`) to this sidecar applying it, live and catch-up events (not snapshot re-sends); the two hosts' clock offset is included",
      buckets: LAG_BUCKETS,
      registers: r,
    });
    this.offLag = revocations?.onLag((seconds) => lag.observe(seconds)) ?? (() => {});
    const expirations = new Counter({
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
        expirations.inc();
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
    this.offLag();
  }
}
