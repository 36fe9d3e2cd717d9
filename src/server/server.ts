/**
 * `writ server`: wires the store, key encryption, CA, evidence verifiers and issuer into a
 * public gRPC port (TLS from the issuer's own CA) and an admin Unix socket, with health,
 * reflection, metrics, rotation and orderly shutdown.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createPrivateKey, generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import pino, { type Logger } from 'pino';
import type { DescService } from '@bufbuild/protobuf';
import { systemClock, type Clock } from '../clock.js';
import { CaError } from '../errors.js';
import type { ServerSettings } from '../config/config.js';
import { certificatesInFile } from '../config/files.js';
import { KeyEncryptor } from '../ca/key-encryptor.js';
import { CaManager, loadUpstreamCa, type UpstreamCa } from '../ca/manager.js';
import { builtinReverifiers, builtinVerifiers } from '../attestation/builtins.js';
import { Issuer } from '../issuance/issuer.js';
import { GrantIssuer } from '../issuance/grants.js';
import { PolicySnapshots } from '../issuance/policies.js';
import { PolicyEngine } from '../policy/engine.js';
import { PrincipalVerifier, type Fetcher } from '../principal/oidc.js';
import { Admin } from '../issuance/admin.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { spiffeIdFromParts } from '../spiffe/id.js';
import { encodePem } from '../der/pem.js';
import { AttestationService, file_writ_v1_attestation } from '../gen/writ/v1/attestation_pb.js';
import { BundleService, file_writ_v1_bundle } from '../gen/writ/v1/bundle_pb.js';
import { AdminService, file_writ_v1_admin } from '../gen/writ/v1/admin_pb.js';
import { GrantService, file_writ_v1_grant } from '../gen/writ/v1/grant_pb.js';
import { VerifyService, file_writ_v1_verify } from '../gen/writ/v1/verify_pb.js';
import { Health, file_grpc_health_v1_health } from '../gen/grpc/health/v1/health_pb.js';
import { ServerReflection, file_grpc_reflection_v1_reflection } from '../gen/grpc/reflection/v1/reflection_pb.js';
import { grpcServiceDefinition } from '../rpc/grpc-adapter.js';
import { Metrics } from './metrics.js';
import { RotatingServerCredentials } from './tls.js';
import { PeerRateLimiter } from './rate-limit.js';
import { bundleDocuments } from './bundle-documents.js';
import { attestationService } from './services/attestation.js';
import { bundleService } from './services/bundle.js';
import { adminService } from './services/admin.js';
import { grantService } from './services/grant.js';
import { verifyService } from './services/verify.js';
import { HealthState, Serving, healthService } from './services/health.js';
import { reflectionService } from './services/reflection.js';

/** Largest gRPC message accepted on either port (evidence included). */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
/** How often due key rotations and clean-ups are applied. */
export const ROTATION_INTERVAL_MS = 10_000;
/** The issuer's own SPIFFE ID path (reserved: entries cannot use /writ/...). */
export const SERVER_ID_PATH = '/writ/server';

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
}

function writeFileAtomic(path: string, data: string | Buffer, mode: number): void {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}

/** The key-encryption key: from a passphrase (env or file), or a generated key file (dev default). */
function keyEncryptor(settings: ServerSettings, env: NodeJS.ProcessEnv, logger: Logger): KeyEncryptor {
  let passphrase = env.WRIT_KEY_PASSPHRASE;
  if (settings.ca.keyPassphraseFile) passphrase = readFileSync(settings.ca.keyPassphraseFile, 'utf8').trim();
  if (passphrase) {
    const saltPath = join(settings.dataDir, 'kek.salt');
    if (!existsSync(saltPath)) writeFileAtomic(saltPath, randomBytes(16), 0o600);
    return KeyEncryptor.fromPassphrase(passphrase, readFileSync(saltPath));
  }
  const kekPath = join(settings.dataDir, 'kek');
  if (!existsSync(kekPath)) {
    writeFileAtomic(kekPath, KeyEncryptor.randomKek(), 0o600);
    logger.warn(
      { kekPath },
      'generated a key-encryption key file beside the database (development default); set WRIT_KEY_PASSPHRASE or ca.key_passphrase_file in production',
    );
  }
  const st = statSync(kekPath);
  if ((st.mode & 0o077) !== 0) throw new CaError('ERR_KEY_DECRYPT', `ca: ${kekPath} is readable by group or others; chmod 600 it`);
  return new KeyEncryptor(readFileSync(kekPath));
}

function loadUpstream(settings: ServerSettings): UpstreamCa | undefined {
  const u = settings.ca.upstream;
  if (!u) return undefined;
  const chain = certificatesInFile(u.certFile);
  const key = createPrivateKey(readFileSync(u.keyFile));
  const roots = certificatesInFile(u.bundleFile);
  return loadUpstreamCa(chain, key, roots);
}

/** Refuses to start if another server answers on the admin socket; removes a stale one. */
async function claimSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new Error(`server: another writ server is serving ${path}; stop it or use another --data-dir`);
  rmSync(path, { force: true });
}

function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port))));
}

export class WritServer {
  private rotationTimer?: NodeJS.Timeout;
  private metricsServer?: HttpServer;
  private servingCertNotAfter = 0;
  private servingCertIssuedAt = 0;
  private stopped = false;

  private constructor(
    readonly settings: ServerSettings,
    readonly logger: Logger,
    readonly store: Store,
    readonly ca: CaManager,
    readonly metrics: Metrics,
    private readonly clock: Clock,
    private readonly publicServer: grpc.Server,
    private readonly adminServer: grpc.Server,
    private readonly health: HealthState,
    private readonly tls: RotatingServerCredentials,
    private readonly servingKey: ReturnType<typeof generateKeyPairSync>,
    /** The bound public port. */
    public port = 0,
    public metricsPort?: number,
  ) {}

  get bundlePemPath(): string {
    return join(this.settings.dataDir, 'bundle.pem');
  }
  get bundleJwksPath(): string {
    return join(this.settings.dataDir, 'bundle.jwks');
  }
  get address(): string {
    return `${this.settings.listen.host.includes(':') ? `[${this.settings.listen.host}]` : this.settings.listen.host}:${this.port}`;
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
    const store = new SqliteStore(join(settings.dataDir, 'writ.db'));
    const servers: grpc.Server[] = [];
    try {
      const metrics = new Metrics();
      const upstream = loadUpstream(settings);
      const ca = new CaManager({
        store,
        clock,
        encryptor,
        settings: {
          trustDomain: settings.trustDomain,
          caTtlMs: settings.ca.ttlMs,
          rootTtlMs: settings.ca.rootTtlMs,
          keyType: settings.ca.keyType,
          jwtAlg: settings.svid.jwtAlg,
          refreshHintSeconds: settings.ca.refreshHintSeconds,
          ...(upstream ? { upstream } : {}),
        },
      });
      await ca.init();
      const tpmRoots = settings.attestation.tpm.manufacturerRoots.flatMap(certificatesInFile);
      const tpmIntermediates = settings.attestation.tpm.intermediates.flatMap(certificatesInFile);
      const verifiers = builtinVerifiers({
        store,
        tpm: {
          roots: tpmRoots,
          intermediates: tpmIntermediates,
          pcrSelection: settings.attestation.tpm.pcrSelection,
          agentPcr: settings.attestation.tpm.agentPcr,
        },
      });
      const policies = new PolicySnapshots({ store, clock });
      const engine = new PolicyEngine();
      const principals = new PrincipalVerifier(settings.principals, {
        now: () => clock.now().getTime(),
        ...(opts.fetcher ? { fetcher: opts.fetcher } : {}),
        ...(opts.jwksRefetchCooldownMs !== undefined ? { refetchCooldownMs: opts.jwksRefetchCooldownMs } : {}),
      });
      const grants = new GrantIssuer({ ca, store, clock, principals, policies, engine, settings: settings.grants });
      const issuer = new Issuer({
        ca,
        store,
        verifiers,
        clock,
        policies,
        engine,
        settings: { x509SvidTtlMs: settings.svid.x509TtlMs, jwtSvidTtlMs: settings.svid.jwtTtlMs },
        observer: { issued: (kind, evidenceType) => metrics.issued.inc({ kind, evidence_type: evidenceType }) },
      });
      const admin = new Admin({
        store,
        clock,
        settings: { trustDomain: settings.trustDomain, joinTokenDefaultTtlMs: settings.joinToken.defaultTtlMs, joinTokenMaxTtlMs: settings.joinToken.maxTtlMs },
      });

      const health = new HealthState();
      const servingKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const tls = new RotatingServerCredentials({});
      const publicServer = new grpc.Server(SERVER_OPTIONS);
      const adminServer = new grpc.Server(SERVER_OPTIONS);
      servers.push(publicServer, adminServer);
      // CreateGrant and Verify share one per-peer budget, apart from handshakes.
      const callLimiter = new PeerRateLimiter(settings.limits.attestationsPerSecond, settings.limits.attestationBurst);
      const publicServices: Array<[DescService, grpc.UntypedServiceImplementation]> = [
        [
          AttestationService,
          attestationService({
            issuer,
            logger,
            metrics,
            limiter: new PeerRateLimiter(settings.limits.attestationsPerSecond, settings.limits.attestationBurst),
          }),
        ],
        [BundleService, bundleService({ ca })],
        [GrantService, grantService({ grants, logger, limiter: callLimiter })],
        [
          VerifyService,
          verifyService({
            ca,
            clock,
            logger,
            reverifiers: builtinReverifiers(),
            hardware: new Map([['tpm', { roots: tpmRoots, intermediates: tpmIntermediates }]]),
            limiter: callLimiter,
            revokedAmong: async (ids) => {
              const out = new Set<string>();
              for (const id of ids.slice(0, 16)) if ((await store.getGrant(id))?.revokedAt) out.add(id);
              return out;
            },
          }),
        ],
        [Health, healthService(health)],
      ];
      const reflect = reflectionService(
        [
          file_writ_v1_attestation,
          file_writ_v1_bundle,
          file_writ_v1_admin,
          file_writ_v1_grant,
          file_writ_v1_verify,
          file_grpc_health_v1_health,
          file_grpc_reflection_v1_reflection,
        ],
        () => [AttestationService.typeName, BundleService.typeName, GrantService.typeName, VerifyService.typeName, Health.typeName, ServerReflection.typeName],
      );
      for (const [svc, impl] of publicServices) publicServer.addService(grpcServiceDefinition(svc), impl);
      publicServer.addService(grpcServiceDefinition(ServerReflection), reflect);
      // v1alpha has the same messages on the wire; older clients (grpcurl < 1.9) ask for it.
      const v1alpha = { ...ServerReflection, typeName: 'grpc.reflection.v1alpha.ServerReflection' } as DescService;
      publicServer.addService(grpcServiceDefinition(v1alpha), reflect);
      adminServer.addService(grpcServiceDefinition(AdminService), adminService({ admin, logger, policies, store }));
      adminServer.addService(grpcServiceDefinition(BundleService), bundleService({ ca }));
      adminServer.addService(grpcServiceDefinition(Health), healthService(health));

      const server = new WritServer(settings, logger, store, ca, metrics, clock, publicServer, adminServer, health, tls, servingKey);
      server.renewServingCert();
      server.writeBundleFiles();
      server.port = await bind(
        publicServer,
        `${settings.listen.host.includes(':') ? `[${settings.listen.host}]` : settings.listen.host}:${settings.listen.port}`,
        tls,
      );
      await bind(adminServer, `unix:${settings.adminSocket}`, grpc.ServerCredentials.createInsecure());
      chmodSync(settings.adminSocket, 0o600);
      if (settings.metricsListen) {
        const m = await metrics.serve(settings.metricsListen.host, settings.metricsListen.port);
        server.metricsServer = m.server;
        server.metricsPort = m.port;
      }
      for (const name of ['', AttestationService.typeName, BundleService.typeName, GrantService.typeName, VerifyService.typeName, AdminService.typeName]) {
        health.set(name, Serving.SERVING);
      }
      server.rotationTimer = setInterval(() => void server.tick(), opts.rotationIntervalMs ?? ROTATION_INTERVAL_MS);
      server.rotationTimer.unref();
      logger.info(
        {
          trustDomain: settings.trustDomain,
          address: server.address,
          adminSocket: settings.adminSocket,
          bundle: server.bundlePemPath,
          keys: ca.describe().map((k) => `${k.kind}:${k.state}`),
        },
        'writ server started',
      );
      return server;
    } catch (e) {
      for (const srv of servers) srv.forceShutdown();
      await store.close();
      throw e;
    }
  }

  /** Mints the serving certificate (spiffe://<td>/writ/server) from the active signing CA. */
  private renewServingCert(): void {
    const now = this.clock.now().getTime();
    const spki = createPublicKey(this.servingKey.privateKey).export({ type: 'spki', format: 'der' });
    const svid = this.ca.x509Minter().mint({
      spiffeId: spiffeIdFromParts(this.settings.trustDomain, SERVER_ID_PATH),
      spki,
      notBefore: new Date(now - 10_000),
      notAfter: new Date(now + this.settings.svid.x509TtlMs),
      dnsNames: this.settings.servingNames.dns,
      ipAddresses: this.settings.servingNames.ips,
    });
    this.tls.update({
      cert: svid.chain.map((c) => encodePem('CERTIFICATE', c)).join(''),
      key: this.servingKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    });
    this.servingCertNotAfter = svid.notAfter.getTime();
    this.servingCertIssuedAt = now;
  }

  private writeBundleFiles(): void {
    const d = bundleDocuments(this.ca.bundle());
    writeFileAtomic(this.bundlePemPath, d.pem, 0o644);
    writeFileAtomic(this.bundleJwksPath, d.jwks, 0o644);
  }

  /** Applies due rotations, renews the serving certificate at half-life, prunes expired records. */
  async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const changed = await this.ca.rotate();
      if (changed) {
        this.metrics.bundleSequence.inc();
        this.writeBundleFiles();
        this.logger.info({ sequence: this.ca.bundle().sequence, keys: this.ca.describe().map((k) => `${k.kind}:${k.state}`) }, 'trust bundle changed');
      }
      const now = this.clock.now().getTime();
      const half = this.servingCertIssuedAt + (this.servingCertNotAfter - this.servingCertIssuedAt) / 2;
      if (changed || now >= half) this.renewServingCert();
      await this.store.pruneJoinTokens(now);
      await this.store.pruneIssued(now);
    } catch (e) {
      this.logger.error({ err: e }, 'rotation tick failed');
    }
  }

  async stop(graceMs = 5000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.rotationTimer);
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
    await Promise.all([shut(this.publicServer), shut(this.adminServer)]);
    if (this.metricsServer) await new Promise<void>((r) => this.metricsServer!.close(() => r()));
    await this.store.close();
    rmSync(this.settings.adminSocket, { force: true });
    this.logger.info('writ server stopped');
  }
}
