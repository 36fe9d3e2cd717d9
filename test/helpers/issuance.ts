/**
 * The issuer's domain objects wired as server/core.ts wires them, without gRPC, files or a
 * network: a real SQLite store in memory, a real CA (its keys sealed with a random key), the
 * real policy engine with the end-to-end policy set, the real OIDC verifier over a fake
 * provider (test/fakes/oidc-provider.ts) and the scripted evidence verifier
 * (test/fakes/evidence.ts). Unit tests of src/issuance/ drive the handshake and grant rules
 * through it; see test/fakes/README.md for why the store is real.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { KeyEncryptor } from '../../src/ca/key-encryptor.js';
import { SealedKeyCustody } from '../../src/ca/custody.js';
import { CaManager } from '../../src/ca/manager.js';
import { ManualClock } from '../../src/clock.js';
import { VerifierRegistry } from '../../src/attestation/registry.js';
import type { EvidenceVerifier } from '../../src/attestation/verifier.js';
import { signKeyProofWith } from '../../src/attestation/key-proof.js';
import { delegateGrant } from '../../src/delegation/grant.js';
import type { Permission } from '../../src/delegation/scope.js';
import type { AuditAppender } from '../../src/audit/log.js';
import { Admin } from '../../src/issuance/admin.js';
import { Approvals, type ApprovalsDeps } from '../../src/issuance/approvals.js';
import { type ApprovalSettings, DEFAULT_MAX_PENDING_PER_TASK, DEFAULT_MAX_PENDING_PER_WRIT } from '../../src/approval/settings.js';
import { ProofReplayCache } from '../../src/writ/proof.js';
import { auditKeyChange } from '../../src/issuance/audit.js';
import { type CreateGrantRequest, GrantIssuer } from '../../src/issuance/grants.js';
import { type HandshakeStep, type HelloInput, type IssuedResult, Issuer } from '../../src/issuance/issuer.js';
import { PolicySnapshots } from '../../src/issuance/policies.js';
import { Revocations } from '../../src/issuance/revocations.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { PrincipalVerifier } from '../../src/principal/oidc.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { parseWrit } from '../../src/writ/writ.js';
import { FAKE_EVIDENCE_TYPE, type FakeEvidence, FakeEvidenceVerifier, fakeEvidence } from '../fakes/evidence.js';
import { FakeProvider } from '../fakes/oidc-provider.js';
import { POLICY } from './policies.js';

export const T0 = Date.UTC(2030, 0, 1);
export const HOUR = 3_600_000;
export const TD = 'example.org';
export const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
export const GRANT_MAX_TTL_MS = 8 * HOUR;
export const JOIN_TOKEN_MAX_TTL_MS = 24 * HOUR;
/** The WebAuthn relying party of the world's approvals. */
export const APPROVAL_RP_ID = 'issuer.example';
export const APPROVAL_ORIGIN = 'https://issuer.example';

export interface TestAgent {
  readonly key: KeyObject;
  readonly spki: Buffer;
  readonly jkt: string;
}

export function newAgent(): TestAgent {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const pub = createPublicKey(key);
  return { key, spki: pub.export({ type: 'spki', format: 'der' }), jkt: jwkThumbprint(pub) };
}

export interface AttestOptions {
  readonly grants?: readonly string[];
  /** The evidence the agent sends (default: attested with `sel`). */
  readonly evidence?: FakeEvidence;
  readonly sel?: readonly string[];
  readonly platform?: string;
  readonly jwtAudiences?: readonly string[];
  readonly writAudiences?: readonly string[];
  /** Step-up grants to present with the chain (approvals). */
  readonly stepUps?: readonly string[];
}

/** The nonce of a challenge step (what the key proof and the evidence sign). */
export function nonceOf(step: HandshakeStep): Buffer {
  if (step.kind !== 'challenge') throw new Error('expected a challenge');
  return step.nonce;
}

export type World = Awaited<ReturnType<typeof issuanceWorld>>;

/** The approval settings of every test world: the WebAuthn relying party at APPROVAL_ORIGIN, the default caps. */
export const TEST_APPROVAL_SETTINGS: ApprovalSettings = {
  rpId: APPROVAL_RP_ID,
  origin: APPROVAL_ORIGIN,
  rpName: 'writ',
  requestTtlMs: 15 * 60_000,
  retryAfterSeconds: 2,
  maxPendingPerWrit: DEFAULT_MAX_PENDING_PER_WRIT,
  maxPendingPerTask: DEFAULT_MAX_PENDING_PER_TASK,
};

/**
 * An Approvals over a world's pieces (another replica on the same store, or other settings), with
 * a replay cache of its own: TEST_APPROVAL_SETTINGS with `o.settings` over them.
 */
export function approvalsOver(
  w: Pick<ApprovalsDeps, 'ca' | 'store' | 'clock' | 'principals' | 'policies' | 'engine'>,
  o: { settings?: Partial<ApprovalSettings> | undefined; registrationLimits?: ApprovalsDeps['registrationLimits'] } = {},
): Approvals {
  return new Approvals({
    ca: w.ca,
    store: w.store,
    clock: w.clock,
    principals: w.principals,
    policies: w.policies,
    engine: w.engine,
    replayCache: new ProofReplayCache(),
    settings: { ...TEST_APPROVAL_SETTINGS, ...o.settings },
    ...(o.registrationLimits ? { registrationLimits: o.registrationLimits } : {}),
  });
}

export interface WorldOptions {
  readonly statusLists?: boolean;
  /** Push the end-to-end policy set (default); false: no policy is active. */
  readonly policy?: boolean;
  readonly grantMaxTtlMs?: number;
  /** More verifiers beside the fake one, made with the world's store and CA (e.g. x509_svid renewal). */
  readonly verifiers?: (deps: { store: SqliteStore; ca: CaManager }) => readonly EvidenceVerifier[];
  /** A SQLite file instead of memory (benchmarks). */
  readonly storePath?: string;
  /** The issuer's audit appender (the benchmark's audit-off baseline injects a no-op). */
  readonly appendAudit?: AuditAppender;
  /** As server/core.ts passes one (audit/tally.ts NamedRefusalGate); absent: every named refusal is recorded. */
  readonly refusalGate?: { admit(actor: string, reason: string): boolean };
  /** Pending-escalation caps (default: the server's, 16 per writ and 256 per task). */
  readonly approvalLimits?: { readonly maxPendingPerWrit: number; readonly maxPendingPerTask: number };
}

export async function issuanceWorld(o: WorldOptions = {}) {
  const clock = new ManualClock(T0);
  const store = new SqliteStore(o.storePath ?? ':memory:');
  const ca = new CaManager({
    store,
    clock,
    custody: new SealedKeyCustody(new KeyEncryptor(randomBytes(32))),
    settings: { trustDomain: TD, caTtlMs: 24 * HOUR, rootTtlMs: 240 * HOUR, keyType: 'ec-p256', jwtAlg: 'ES256', refreshHintSeconds: 300 },
    // As server/core.ts wires it: each key state change is a key.rotated record.
    onKeyChange: auditKeyChange,
  });
  await ca.init();
  const policies = new PolicySnapshots({ store, clock });
  if (o.policy !== false) await policies.push([{ name: 'policy.cedar', text: POLICY }]);
  const engine = new PolicyEngine();
  const evidence = new FakeEvidenceVerifier();
  const idp = new FakeProvider('https://idp.example.com');
  const principals = new PrincipalVerifier([{ issuer: idp.issuer, audience: 'writ', groupsClaim: 'groups' }], {
    fetcher: idp.fetcher,
    now: () => clock.now().getTime(),
  });
  // Approvals as server/core.ts wires them, the WebAuthn relying party at APPROVAL_ORIGIN.
  const approvals = approvalsOver({ ca, store, clock, principals, policies, engine }, { settings: o.approvalLimits });
  const issuer = new Issuer({
    ca,
    store,
    verifiers: new VerifierRegistry([evidence, ...(o.verifiers?.({ store, ca }) ?? [])]),
    clock,
    policies,
    engine,
    settings: { x509SvidTtlMs: HOUR, jwtSvidTtlMs: 5 * 60_000 },
    stepUps: approvals,
    ...(o.appendAudit ? { appendAudit: o.appendAudit } : {}),
    ...(o.refusalGate ? { refusalGate: o.refusalGate } : {}),
    ...(o.statusLists ? { statusLists: { uri: (list: number) => `https://issuer.example.org/status/${list}` } } : {}),
  });
  const grants = new GrantIssuer({
    ca,
    store,
    clock,
    principals,
    policies,
    engine,
    settings: { defaultTtlMs: HOUR, maxTtlMs: o.grantMaxTtlMs ?? GRANT_MAX_TTL_MS },
  });
  const revocations = new Revocations({ store, clock });
  const admin = new Admin({
    store,
    clock,
    settings: { trustDomain: TD, joinTokenDefaultTtlMs: 10 * 60_000, joinTokenMaxTtlMs: JOIN_TOKEN_MAX_TTL_MS },
  });

  /** Registers `spiffe://example.org<path>` for agents that attest exactly these selectors. */
  const register = (path: string, sel: readonly string[]) =>
    admin.createEntry({
      spiffeId: `spiffe://${TD}${path}`,
      selectors: sel.map((s) => ({ type: s.slice(0, s.indexOf(':')), value: s.slice(s.indexOf(':') + 1) })),
      x509SvidTtl: 0,
      jwtSvidTtl: 0,
      scopeCeiling: [],
      hint: '',
    });

  const hello = (agent: TestAgent, a: AttestOptions = {}): HelloInput => ({
    evidenceType: FAKE_EVIDENCE_TYPE,
    publicKey: agent.spki,
    csr: new Uint8Array(0),
    grants: a.grants ?? [],
    jwtAudiences: a.jwtAudiences ?? [],
    ...(a.writAudiences ? { writAudiences: a.writAudiences } : {}),
    ...(a.stepUps ? { stepUps: a.stepUps } : {}),
  });

  /** A whole handshake with a bare public key: hello, one evidence with the key proof, result. */
  async function attest(agent: TestAgent, a: AttestOptions = {}): Promise<IssuedResult> {
    const { handshake, challenge } = await issuer.begin(hello(agent, a));
    const ev = a.evidence ?? { sel: a.sel ?? [], ...(a.platform ? { platform: a.platform } : {}) };
    const step = await handshake.respond(fakeEvidence(ev), signKeyProofWith(agent.key, nonceOf(challenge)));
    if (step.kind !== 'result') throw new Error('the fake evidence asked for another round');
    return step.result;
  }

  /** A grant request from alice (group eng) for `agent`, valid as the end-to-end policy wants it. */
  const grantRequest = (agent: TestAgent, over: Partial<CreateGrantRequest> = {}): CreateGrantRequest => ({
    subjectToken: idp.token(clock.now().getTime()),
    subjectTokenType: ID_TOKEN,
    taskId: 'task-1',
    goal: 'triage open issues',
    ttlSeconds: 0,
    scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
    boundaries: [],
    escalate: [],
    maxDepth: 2,
    delegateJkt: agent.jkt,
    ...over,
  });

  /** A hop grant from `parent`, which holds `parentWrit` (a writ over `parentGrant`), to `child`. */
  function hop(parentGrant: string, parent: TestAgent, parentWrit: string, child: TestAgent, req: { scope?: Permission[]; exp?: number } = {}): string {
    const w = parseWrit(parentWrit).claims;
    return delegateGrant(parentGrant, parent.key, {
      childJkt: child.jkt,
      now: Math.floor(clock.now().getTime() / 1000),
      from: { sub: w.sub, writ: w.jti },
      ...req,
    });
  }

  return {
    clock,
    store,
    ca,
    policies,
    engine,
    evidence,
    issuer,
    idp,
    principals,
    approvals,
    grants,
    revocations,
    admin,
    register,
    hello,
    attest,
    grantRequest,
    hop,
    close: () => store.close(),
  };
}
