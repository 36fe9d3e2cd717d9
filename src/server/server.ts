/**
 * `writ server`, the composition root: store, key custody, the domain core (core.ts), the
 * service table (services/index.ts) mounted on the public TLS port and the admin socket,
 * metrics, housekeeping, and orderly shutdown. Nothing here names an evidence type or a
 * service's internals.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Server as HttpServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import pino, { type Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { ServerSettings } from '../config/config.js';
import { writeFileAtomic } from '../config/files.js';
import { SealedKeyCustody, type KeyCustody } from '../ca/custody.js';
import type { CaManager } from '../ca/manager.js';
import type { EvidencePlugin } from '../attestation/plugin.js';
import { BUILTIN_EVIDENCE } from '../attestation/builtins.js';
import type { Fetcher } from '../principal/oidc.js';
import type { Store } from '../store/store.js';
import { bindPrivateSocket, claimSocket } from './admin-socket.js';
import { flushTally } from '../audit/tally.js';
import { FileHighWater, HIGH_WATER_FILE } from './audit-high-water.js';
import { bundleDocuments } from './bundle-documents.js';
import { buildCore, type ServerCore } from './core.js';
import { openDatastore, type Datastore } from './datastore.js';
import { coalesced, Housekeeping } from './housekeeping.js';
import { keyEncryptor } from './kek.js';
import { Metrics } from './metrics.js';
import { markServing, mountServices, type ServiceEntry } from './service-table.js';
import { serviceTable } from './services/index.js';
import { HealthState } from '../rpc/health.js';
import { IssuerHttp } from './http/issuer-http.js';
import { StatusListUris } from '../issuance/status-list-publisher.js';
import { ServingCertificate } from './serving-cert.js';
import { evidenceCatalog } from './settings.js';
import { RotatingServerCredentials } from './tls.js';

export { SERVER_ID_PATH } from './serving-cert.js';

/** Largest gRPC message accepted on either port (evidence included). */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
/** How often due key rotations and clean-ups are applied. */
export const ROTATION_INTERVAL_MS = 10_000;

/** Options of both gRPC servers (the benchmark's floor uses the same). */
export const SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': 4 * MAX_MESSAGE_BYTES,
  'grpc.max_concurrent_streams': 1000,
};

export interface StartOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly env?: NodeJS.ProcessEnv;
  /** HTTP GET used for OIDC discovery and JWKS (tests inject one). */
  readonly fetcher?: Fetcher;
  /** Least time between JWKS refetches for an unknown kid, ms (tests shorten it). */
  readonly jwksRefetchCooldownMs?: number;
  /** Rotation tick, ms (tests shorten it). */
  readonly rotationIntervalMs?: number;
  /** The evidence types to serve (default: attestation/builtins.ts); settings must have been parsed for the same list. */
  readonly evidence?: readonly EvidencePlugin[];
  /** Where CA, JWT and writ keys are held (default: sealed in the store under the key-encryption key). */
  readonly custody?: KeyCustody;
}

function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port))));
}

const hostPort = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

export class WritServer {
  private metricsServer?: HttpServer;
  /** The HTTPS listener (status lists, bundle endpoint), when `http_listen` is set. */
  http?: IssuerHttp;
  private heartbeat?: NodeJS.Timeout;
  private readonly unwatch: Array<() => void> = [];
  private stopped = false;
  /** The bound public port. */
  port = 0;
  metricsPort?: number;
  /** The bound HTTPS port, when `http_listen` is set. */
  httpPort?: number;

  private constructor(
    readonly settings: ServerSettings,
    readonly core: ServerCore,
    private readonly table: readonly ServiceEntry[],
    private readonly publicServer: grpc.Server,
    private readonly adminServer: grpc.Server,
    private readonly health: HealthState,
    private readonly housekeeping: Housekeeping,
    private readonly datastore: Datastore,
  ) {}

  get logger(): Logger {
    return this.core.logger;
  }
  get store(): Store {
    return this.core.store;
  }
  get ca(): CaManager {
    return this.core.ca;
  }
  get metrics(): Metrics {
    return this.core.metrics;
  }
  get bundlePemPath(): string {
    return join(this.settings.dataDir, 'bundle.pem');
  }
  get bundleJwksPath(): string {
    return join(this.settings.dataDir, 'bundle.jwks');
  }
  /** The datastore, for the log and the banner (backend and where; never a password). */
  get datastoreDescription(): string {
    return this.datastore.description;
  }
  get address(): string {
    return hostPort(this.settings.listen.host, this.port);
  }

  static async start(settings: ServerSettings, opts: StartOptions = {}): Promise<WritServer> {
    const clock = opts.clock ?? systemClock;
    const env = opts.env ?? process.env;
    const logger = opts.logger ?? pino({ level: settings.logLevel, base: { svc: 'writ-server' } });
    mkdirSync(settings.dataDir, { recursive: true, mode: 0o700 });
    chmodSync(settings.dataDir, 0o700);
    // First, before anything binds or opens: one server per data directory.
    await claimSocket(settings.adminSocket);
    const encryptor = keyEncryptor(settings, env, logger);
    const custody = opts.custody ?? new SealedKeyCustody(encryptor);
    const metrics = new Metrics();
    const datastore = await openDatastore(settings.datastore, { env, logger, metrics });
    const { store, changes } = datastore;
    const servers: grpc.Server[] = [];
    let http: IssuerHttp | undefined;
    try {
      const statusUris = settings.httpListen ? new StatusListUris() : undefined;
      const evidence = evidenceCatalog(settings, opts.evidence ?? BUILTIN_EVIDENCE);
      const core = await buildCore({
        settings,
        logger,
        clock,
        store,
        metrics,
        custody,
        keyEncryptor: encryptor,
        evidence,
        auditHighWater: new FileHighWater(join(settings.dataDir, HIGH_WATER_FILE)),
        ...(statusUris ? { statusLists: statusUris } : {}),
        ...(opts.fetcher ? { fetcher: opts.fetcher } : {}),
        ...(opts.jwksRefetchCooldownMs !== undefined ? { jwksRefetchCooldownMs: opts.jwksRefetchCooldownMs } : {}),
      });
      const table = serviceTable(core);
      const health = new HealthState();
      const tls = new RotatingServerCredentials({});
      http = statusUris ? new IssuerHttp(core, statusUris) : undefined;
      const serving = new ServingCertificate({
        ca: core.ca,
        clock,
        tls: {
          update: (o) => {
            tls.update(o);
            http?.listener.update(o);
          },
        },
        trustDomain: settings.trustDomain,
        ttlMs: settings.svid.x509TtlMs,
        names: settings.servingNames,
      });
      const publicServer = new grpc.Server(SERVER_OPTIONS);
      const adminServer = new grpc.Server(SERVER_OPTIONS);
      servers.push(publicServer, adminServer);
      mountServices(publicServer, 'public', table, health);
      mountServices(adminServer, 'admin', table, health);

      const writeBundleFiles = () => {
        const d = bundleDocuments(core.ca.bundle());
        writeFileAtomic(join(settings.dataDir, 'bundle.pem'), d.pem, 0o644);
        writeFileAtomic(join(settings.dataDir, 'bundle.jwks'), d.jwks, 0o644);
        // The audit verifier key, published beside the bundle (docs/audit.md).
        writeFileAtomic(join(settings.dataDir, 'audit.vkey'), `${core.audit.verifierKey}\n`, 0o644);
      };
      let lastCheckpointAt = Number.NEGATIVE_INFINITY;
      // Another replica may have rotated (the sequence moved); then apply what is due here.
      // Run by the housekeeping tick and on every bundle wake-up, one run at a time.
      const keys = coalesced(async () => {
        const reloaded = await core.ca.refresh();
        const rotated = await core.ca.rotate();
        if (reloaded || rotated) {
          core.metrics.bundleSequence.inc();
          writeBundleFiles();
          logger.info({ sequence: core.ca.bundle().sequence, keys: core.ca.describe().map((k) => `${k.kind}:${k.state}`) }, 'trust bundle changed');
        }
        await serving.renewIfDue(reloaded || rotated);
      });
      const housekeeping = new Housekeeping(
        [
          { name: 'keys', run: keys },
          // Every audit.checkpoint_interval: the refusal tally's records, then a signed checkpoint of the log as it is
          // (the last one again when nothing was appended).
          {
            name: 'audit checkpoint',
            run: async () => {
              const now = clock.now().getTime();
              if (now - lastCheckpointAt < core.auditSettings.checkpointIntervalMs) return;
              await flushTally(store, core.refusals, now);
              await core.audit.checkpoint();
              lastCheckpointAt = now;
            },
          },
          // Each pending request past its expiry, stored as expired with its approval.expired record (once, whatever the replicas).
          { name: 'expire approvals', run: async () => void (await core.approvals.expireDue()) },
          { name: 'prune join tokens', run: async () => void (await store.pruneJoinTokens(clock.now().getTime())) },
          { name: 'prune issuance records', run: async () => void (await store.pruneIssued(clock.now().getTime())) },
          // An agent whose latest SVID has expired cannot renew: it attests again.
          { name: 'prune attested agents', run: async () => void (await store.pruneAttestedAgents(clock.now().getTime())) },
          { name: 'prune passkey ceremonies', run: async () => void (await store.prunePasskeyCeremonies(clock.now().getTime())) },
          // Revocations whose target can no longer match anything valid leave the event log (never the newest).
          { name: 'prune revocations', run: async () => void (await store.pruneRevocations(clock.now().getTime() - core.revocationSettings.retentionMs)) },
        ],
        logger,
      );
      const server = new WritServer(settings, core, table, publicServer, adminServer, health, housekeeping, datastore);
      await serving.renew();
      writeBundleFiles();
      // Before the public port: no writ is minted before the URL it names is known.
      if (http && settings.httpListen) {
        server.http = http;
        server.httpPort = await http.listen(settings.httpListen);
      }
      server.port = await bind(publicServer, hostPort(settings.listen.host, settings.listen.port), tls);
      await bindPrivateSocket(settings.adminSocket, (tmp) => bind(adminServer, `unix:${tmp}`, grpc.ServerCredentials.createInsecure()));
      if (settings.metricsListen) {
        const m = await core.metrics.serve(settings.metricsListen.host, settings.metricsListen.port);
        server.metricsServer = m.server;
        server.metricsPort = m.port;
      }
      markServing(health, table);
      // The serving certificate lives svid.x509_ttl and is renewed by this tick at half-life: with
      // a TTL under two ticks it would expire between them and every handshake fail (4 s SVIDs:
      // renewals refused with "certificate has expired"), so the tick is at most a quarter of it.
      housekeeping.start(opts.rotationIntervalMs ?? Math.min(ROTATION_INTERVAL_MS, Math.max(250, settings.svid.x509TtlMs / 4)));
      await core.feed.newest();
      // Other replicas' commits: revocations to the Watch feed, bundle changes to the keys (store/changes.ts).
      const syncFeed = () =>
        core.feed.sync().then((ok) => {
          core.metrics.feedSequence.set(core.feed.sequence);
          return ok;
        });
      server.unwatch.push(
        changes.on('revocation', () => void syncFeed()),
        changes.on('bundle', () => void keys().catch((e: unknown) => logger.error({ err: e }, 'reloading the trust bundle failed'))),
        // Approval decisions on any replica wake this one's WatchApproval streams.
        changes.on('approval', () => core.approvals.changed()),
      );
      // A bundle change another replica committed after init and before the subscription woke nobody: read it now.
      await keys().catch((e: unknown) => logger.error({ err: e }, 'reloading the trust bundle failed'));
      // Each heartbeat reads the store first: one missed wake-up costs at most a heartbeat, and a replica cut from the database stops vouching for freshness.
      server.heartbeat = setInterval(() => void syncFeed().then(() => core.feed.heartbeat()), core.revocationSettings.heartbeatMs);
      server.heartbeat.unref();
      logger.info(
        {
          trustDomain: settings.trustDomain,
          address: server.address,
          ...(http ? { https: http.url } : {}),
          adminSocket: settings.adminSocket,
          datastore: datastore.description,
          bundle: server.bundlePemPath,
          keys: core.ca.describe().map((k) => `${k.kind}:${k.state}`),
          evidence: evidence.describe(),
          services: table.map((e) => `${e.service.typeName}@${e.on.join('+')}`),
        },
        'writ server started',
      );
      return server;
    } catch (e) {
      for (const srv of servers) srv.forceShutdown();
      await http?.listener.close(0);
      await datastore.close();
      throw e;
    }
  }

  /** Runs the housekeeping tasks once: due rotations, serving certificate, pruning (tests call it). */
  tick(): Promise<void> {
    return this.housekeeping.tick();
  }

  async stop(graceMs = 5000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeat);
    for (const u of this.unwatch) u();
    await this.housekeeping.stop();
    this.health.shutdown();
    const shut = (s: grpc.Server) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          s.forceShutdown();
          resolve();
        }, graceMs);
        s.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    await Promise.all([shut(this.publicServer), shut(this.adminServer), this.http?.listener.close(graceMs)]);
    if (this.metricsServer) await new Promise<void>((r) => this.metricsServer!.close(() => r()));
    // The refusals counted since the last checkpoint are written before the store closes (a crash loses them: docs/audit.md).
    await flushTally(this.store, this.core.refusals, this.core.clock.now().getTime()).catch((e) =>
      this.logger.error({ err: e }, 'audit: the refusal tally could not be written'),
    );
    await this.datastore.close();
    rmSync(this.settings.adminSocket, { force: true });
    this.logger.info('writ server stopped');
  }

  /** The services this server mounts, for operators and tests. */
  services(): ReadonlyArray<{ name: string; on: readonly string[] }> {
    return this.table.map((e) => ({ name: e.service.typeName, on: e.on }));
  }
}
