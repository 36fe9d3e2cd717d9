/** Prometheus metrics (prom-client), served over HTTP when `metrics_listen` is set. */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** A pool's occupancy, as the PostgreSQL store reports it. */
export interface PoolOccupancy {
  readonly max: number;
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly issued = new Counter({
    name: 'writ_svids_issued_total',
    help: 'SVIDs issued, by kind (x509, jwt) and evidence type',
    labelNames: ['kind', 'evidence_type'] as const,
    registers: [this.registry],
  });
  readonly handshakes = new Counter({
    name: 'writ_handshakes_total',
    help: 'Attestation handshakes by evidence type and result (ok or the writ error code)',
    labelNames: ['evidence_type', 'result'] as const,
    registers: [this.registry],
  });
  readonly handshakeSeconds = new Histogram({
    name: 'writ_handshake_duration_seconds',
    help: 'Attestation handshake latency from hello to result, seconds',
    labelNames: ['evidence_type', 'result'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly mintSeconds = new Histogram({
    name: 'writ_svid_mint_duration_seconds',
    help: "Time to mint and validate one handshake's SVIDs, seconds",
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
    registers: [this.registry],
  });
  readonly bundleSequence = new Counter({
    name: 'writ_bundle_changes_total',
    help: 'Trust bundle changes (key prepared, activated or removed)',
    registers: [this.registry],
  });

  readonly auditCheckpointRefusals = new Counter({
    name: 'writ_audit_checkpoint_refusals_total',
    help: 'Checkpoints the issuer refused to sign because the stored log does not extend the last one it signed (rolled-back or rewritten database)',
    registers: [this.registry],
  });
  /** From the revoking replica's clock at revocation to this replica's feed reading it. */
  readonly replicationLag = new Histogram({
    name: 'writ_event_replication_lag_seconds',
    help: 'Time from an event (revocation) being made, on any replica, to this replica fanning it out, seconds',
    labelNames: ['kind'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly feedSequence = new Gauge({
    name: 'writ_revocation_feed_sequence',
    help: "The newest revocation sequence this replica's Watch feed has delivered (compare across replicas)",
    registers: [this.registry],
  });
  readonly feedSyncFailures = new Counter({
    name: 'writ_revocation_feed_sync_failures_total',
    help: 'Reads of the revocation events that failed (heartbeats stop until one succeeds)',
    registers: [this.registry],
  });
  readonly changeFeedConnected = new Gauge({
    name: 'writ_change_feed_connected',
    help: 'Whether wake-ups from other replicas arrive (PostgreSQL LISTEN connection up: 1)',
    registers: [this.registry],
  });
  readonly changeFeedReconnects = new Counter({
    name: 'writ_change_feed_reconnects_total',
    help: 'Reconnections of the LISTEN connection (each followed by a catch-up read)',
    registers: [this.registry],
  });
  readonly datastoreConnects = new Counter({
    name: 'writ_datastore_pool_connects_total',
    help: 'Connections the datastore pool opened (after a database restart it opens new ones on demand)',
    registers: [this.registry],
  });
  readonly datastoreIdleErrors = new Counter({
    name: 'writ_datastore_idle_connection_errors_total',
    help: 'Idle pooled connections that failed (the database restarted or cut them) and were dropped',
    registers: [this.registry],
  });
  readonly changeNotifications = new Counter({
    name: 'writ_change_notifications_total',
    help: 'Wake-ups received from the datastore, by kind of change',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'writ_process_' });
  }

  /** Pool saturation gauges, read at each scrape. */
  watchPool(stats: () => PoolOccupancy): void {
    const g = (name: string, help: string, pick: (p: PoolOccupancy) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(pick(stats()));
        },
      });
    g('writ_datastore_pool_max', 'Connections the datastore pool may open', (p) => p.max);
    g('writ_datastore_pool_open', 'Connections the datastore pool holds open', (p) => p.total);
    g('writ_datastore_pool_in_use', 'Pooled connections running a statement or transaction', (p) => p.total - p.idle);
    g('writ_datastore_pool_waiting', 'Callers waiting for a pooled connection (saturation)', (p) => p.waiting);
  }

  /** The PostgreSQL NOTIFY queue's fill ratio, read at each scrape (unreadable: -1). */
  watchNotifyQueue(usage: () => Promise<number>): void {
    new Gauge({
      name: 'writ_datastore_notify_queue_usage_ratio',
      help: "Fraction of PostgreSQL's NOTIFY queue in use (at 1 every revocation fails); -1 when it cannot be read",
      registers: [this.registry],
      async collect() {
        this.set(await usage().catch(() => -1));
      },
    });
  }

  /** Serves /metrics on host:port; resolves with the bound address. */
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
}
