/** Prometheus metrics (prom-client), served over HTTP when `metrics_listen` is set. */
import { createServer, type Server } from 'node:http';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'writ_process_' });
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
