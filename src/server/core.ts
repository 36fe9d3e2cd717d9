/**
 * The issuer's domain objects, built once from validated settings: what every service in the
 * table (services/index.ts) may use. Nothing here knows about gRPC listeners or files.
 */
import { createPrivateKey } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { sectionSettings, type ServerSettings } from '../config/config.js';
import { certificatesInFile, readInputFile } from '../config/files.js';
import { CaManager, loadUpstreamCa, type UpstreamCa } from '../ca/manager.js';
import type { KeyCustody } from '../ca/custody.js';
import type { EvidenceCatalog } from '../attestation/catalog.js';
import { Admin, joinTokenSection, type JoinTokenSettings } from '../issuance/admin.js';
import { GrantIssuer } from '../issuance/grants.js';
import { Approvals } from '../issuance/approvals.js';
import { approvalsSection, type ApprovalSettings } from '../approval/settings.js';
import { Issuer } from '../issuance/issuer.js';
import { PolicySnapshots } from '../issuance/policies.js';
import { RevocationFeed } from '../issuance/revocation-feed.js';
import { Tasks } from '../issuance/tasks.js';
import { Revocations, revocationSection, type RevocationSettings } from '../issuance/revocations.js';
import { PolicyEngine } from '../policy/engine.js';
import { PrincipalVerifier, type Fetcher, type PrincipalIssuerSettings } from '../principal/oidc.js';
import { principalsSection } from '../principal/settings.js';
import type { Store } from '../store/store.js';
import { ProofReplayCache, type ReplayCache } from '../writ/proof.js';
import { defaultAuditOrigin, openAuditSigner } from '../audit/keys.js';
import { AuditLog } from '../audit/log.js';
import type { HighWaterStore } from '../audit/high-water.js';
import { NamedRefusalGate, RefusalTally } from '../audit/tally.js';
import { auditKeyChange, auditSection, type AuditSettings } from '../issuance/audit.js';
import type { KeyEncryptor } from '../ca/key-encryptor.js';
import type { Metrics } from './metrics.js';
import { PeerRateLimiter, type RateLimiter } from './rate-limit.js';
import { WatchStreams } from './watch-streams.js';

export interface ServerCore {
  readonly settings: ServerSettings;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly store: Store;
  readonly metrics: Metrics;
  readonly ca: CaManager;
  readonly evidence: EvidenceCatalog;
  readonly issuer: Issuer;
  readonly grants: GrantIssuer;
  readonly approvals: Approvals;
  readonly policies: PolicySnapshots;
  readonly admin: Admin;
  readonly principals: PrincipalVerifier;
  readonly revocations: Revocations;
  readonly tasks: Tasks;
  readonly feed: RevocationFeed;
  readonly revocationSettings: RevocationSettings;
  /** What Watch streams hold, shared by the public port and the admin socket. */
  readonly watchStreams: WatchStreams;
  /** Per-replica state, behind interfaces so a shared implementation can replace it. */
  readonly limits: { readonly handshakes: RateLimiter; readonly calls: RateLimiter };
  readonly replayCache: ReplayCache;
  /** The audit log: signed checkpoints and proofs (records are appended by the flows themselves). */
  readonly audit: AuditLog;
  readonly auditSettings: AuditSettings;
  /** Refusals of peers not yet named, counted and written as aggregate records at each checkpoint (audit/tally.ts). */
  readonly refusals: RefusalTally;
}

export interface CoreOptions {
  readonly settings: ServerSettings;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly store: Store;
  readonly metrics: Metrics;
  readonly custody: KeyCustody;
  /** Seals the audit key as the CA keys are sealed. */
  readonly keyEncryptor: KeyEncryptor;
  readonly evidence: EvidenceCatalog;
  /** HTTP GET used for OIDC discovery and JWKS (tests inject one). */
  readonly fetcher?: Fetcher;
  readonly jwksRefetchCooldownMs?: number;
  /** Where writs' status lists are served (the HTTPS listener); absent: writs carry no `status`. */
  readonly statusLists?: { uri(list: number): string };
  /** The audit high-water mark outside the database (server.ts: a file in the data directory). */
  readonly auditHighWater?: HighWaterStore;
}

function loadUpstream(settings: ServerSettings): UpstreamCa | undefined {
  const u = settings.ca.upstream;
  if (!u) return undefined;
  const chain = certificatesInFile(u.certFile, 'ca.upstream.cert_file');
  const key = createPrivateKey(readInputFile(u.keyFile, 'ca.upstream.key_file'));
  const roots = certificatesInFile(u.bundleFile, 'ca.upstream.bundle_file');
  return loadUpstreamCa(chain, key, roots);
}

const joinTokenTtls = (t: JoinTokenSettings) => ({ joinTokenDefaultTtlMs: t.defaultTtlMs, joinTokenMaxTtlMs: t.maxTtlMs });

export async function buildCore(o: CoreOptions): Promise<ServerCore> {
  const { settings, store, clock, logger, metrics } = o;
  const upstream = loadUpstream(settings);
  const ca = new CaManager({
    store,
    clock,
    custody: o.custody,
    settings: {
      trustDomain: settings.trustDomain,
      caTtlMs: settings.ca.ttlMs,
      rootTtlMs: settings.ca.rootTtlMs,
      keyType: settings.ca.keyType,
      jwtAlg: settings.svid.jwtAlg,
      refreshHintSeconds: settings.ca.refreshHintSeconds,
      ...(upstream ? { upstream } : {}),
    },
    onKeyChange: auditKeyChange,
  });
  await ca.init();
  const policies = new PolicySnapshots({ store, clock });
  const engine = new PolicyEngine();
  const principals = new PrincipalVerifier(sectionSettings<PrincipalIssuerSettings[]>(settings, principalsSection.key), {
    now: () => clock.now().getTime(),
    ...(o.fetcher ? { fetcher: o.fetcher } : {}),
    ...(o.jwksRefetchCooldownMs !== undefined ? { refetchCooldownMs: o.jwksRefetchCooldownMs } : {}),
  });
  const verifiers = o.evidence.verifiers({ store, trustBundle: () => ca.bundle() });
  const auditSettings = sectionSettings<AuditSettings>(settings, auditSection.key);
  const replayCache = new ProofReplayCache();
  const approvals = new Approvals({
    ca,
    store,
    clock,
    principals,
    policies,
    engine,
    replayCache,
    settings: sectionSettings<ApprovalSettings>(settings, approvalsSection.key),
    publicUrl: () =>
      settings.httpPublicUrl ??
      (settings.httpListen && settings.httpListen.port !== 0 ? `https://${settings.httpListen.host}:${settings.httpListen.port}` : undefined),
  });
  const issuer = new Issuer({
    ca,
    store,
    verifiers,
    clock,
    policies,
    engine,
    settings: { x509SvidTtlMs: settings.svid.x509TtlMs, jwtSvidTtlMs: settings.svid.jwtTtlMs },
    observer: { issued: (kind, evidenceType) => metrics.issued.inc({ kind, evidence_type: evidenceType }) },
    stepUps: approvals,
    refusalGate: new NamedRefusalGate(auditSettings.checkpointIntervalMs, () => clock.now().getTime()),
    ...(o.statusLists ? { statusLists: o.statusLists } : {}),
  });
  const { attestationsPerSecond: rate, attestationBurst: burst } = settings.limits;
  const revocations = new Revocations({ store, clock, onListenerError: (e) => logger.error({ err: e }, 'a revocation listener failed') });
  const feed = new RevocationFeed({
    store,
    now: () => clock.now().getTime(),
    observer: {
      replicated: (lagMs) => metrics.replicationLag.observe({ kind: 'revocation' }, lagMs / 1000),
      syncFailed: (e) => {
        metrics.feedSyncFailures.inc();
        logger.warn({ err: e }, 'revocation feed: cannot read the events (heartbeats paused)');
      },
    },
  });
  revocations.listen(feed);
  const revocationSettings = sectionSettings<RevocationSettings>(settings, revocationSection.key);
  const auditSigner = await openAuditSigner({ store, encryptor: o.keyEncryptor, origin: defaultAuditOrigin(settings.trustDomain), clock });
  const audit = new AuditLog({
    store,
    signer: auditSigner,
    clock,
    ...(o.auditHighWater ? { highWater: o.auditHighWater } : {}),
    onInconsistent: (e) => {
      metrics.auditCheckpointRefusals.inc();
      logger.error({ code: e.code, reason: e.message }, 'AUDIT: refusing to sign a checkpoint that would fork the log (database rolled back or rewritten?)');
    },
  });
  return {
    audit,
    auditSettings,
    refusals: new RefusalTally(new Set(verifiers.types())),
    settings,
    logger,
    clock,
    store,
    metrics,
    ca,
    evidence: o.evidence,
    issuer,
    grants: new GrantIssuer({ ca, store, clock, principals, policies, engine, settings: settings.grants }),
    principals,
    revocations,
    tasks: new Tasks({ store, clock }),
    feed,
    revocationSettings,
    watchStreams: new WatchStreams(revocationSettings.watch),
    policies,
    admin: new Admin({
      store,
      clock,
      settings: { trustDomain: settings.trustDomain, ...joinTokenTtls(sectionSettings<JoinTokenSettings>(settings, joinTokenSection.key)) },
    }),
    // Handshakes have their own per-peer budget; CreateGrant and Verify share another.
    limits: { handshakes: new PeerRateLimiter(rate, burst), calls: new PeerRateLimiter(rate, burst) },
    replayCache,
    approvals,
  };
}
