/**
 * The spawn handshake, independent of gRPC: hello → challenge → evidence (→ challenge …) →
 * SVIDs. Flat early-return checks; issuance commits in one transaction (evidence side
 * effects such as consuming a join token, and the issuance records) or not at all.
 */
import { appendAudit, type AuditAppender } from '../audit/log.js';
import { createHash, randomBytes } from 'node:crypto';
import { AttestationError, DelegationError, EntryError, LimitError, RevocationError, WritError } from '../errors.js';
import type { AuditActor } from '../audit/record.js';
import type { Clock } from '../clock.js';
import { parseSpiffeId, trustDomainId, type SpiffeId } from '../spiffe/id.js';
import { jwkThumbprint } from '../jose/jws.js';
import { verifyChain, type VerifiedChain } from '../delegation/chain.js';
import { refusal, type PolicyEngine } from '../policy/engine.js';
import { escalationRequests, receiveRequests } from '../policy/requests.js';
import type { Permission } from '../delegation/scope.js';
import { parseStepUpGrantCached, stepUpListDigest } from '../delegation/step-up.js';
import { bindingDigest } from '../writ/binding.js';
import { MAX_STEP_UPS, parseWrit, signWrit, type ActClaim, type WritClaims } from '../writ/writ.js';
import type { PolicySnapshots, StoredSnapshot } from './policies.js';
import { grantRecord } from './grants.js';
import type { Bundle } from '../spiffe/bundle.js';
import { parseCsr, parsePublicKey, type AgentPublicKey } from '../svid/public-key.js';
import { mintJwtSvid, type JwtSvid } from '../svid/jwt-svid.js';
import type { CaManager } from '../ca/manager.js';
import type { VerifierRegistry } from '../attestation/registry.js';
import type { AttestationResult, AttestationSession, EvidenceVerifier } from '../attestation/verifier.js';
import { verifyKeyProof } from '../attestation/key-proof.js';
import { type Entry, formatSelector, matchEntry } from '../registration/entry.js';
import type { GrantRecord, Store, StoreTx, WritRecord } from '../store/store.js';
import { allocateStatusIndex } from './status-lists.js';
import { recordAttestedAgent } from './attested-agents.js';

/** Most JWT-SVIDs one handshake may ask for. */
export const MAX_JWT_AUDIENCES = 8;
/** Longest audience string. */
export const MAX_AUDIENCE_BYTES = 256;
/** X.509-SVIDs are backdated this much for clock skew. */
export const SVID_BACKDATE_MS = 10_000;
/** Nonce length, bytes. */
export const NONCE_BYTES = 32;
/** Evidence larger than this is not embedded in a writ (only its digest). */
export const MAX_EMBEDDED_EVIDENCE_BYTES = 40 * 1024;
/** Most audiences a writ may name. */
export const MAX_WRIT_AUDIENCES = 8;

export interface IssuerSettings {
  readonly x509SvidTtlMs: number;
  readonly jwtSvidTtlMs: number;
}

export interface HelloInput {
  readonly evidenceType: string;
  readonly publicKey: Uint8Array;
  readonly csr: Uint8Array;
  readonly grants: readonly string[];
  readonly jwtAudiences: readonly string[];
  /** Audiences for the writ (`aud`); empty means none (any relying party, with a proof). */
  readonly writAudiences?: readonly string[];
  /** Step-up grants from approvals within the task, presented for the writ to carry (with grants only). */
  readonly stepUps?: readonly string[];
}

/** Checks step-up grants for a renewal (issuance/approvals.ts `Approvals.stepUpsFor`). */
export interface StepUpChecker {
  stepUpsFor(
    tx: Pick<StoreTx, 'getApproval'>,
    compacts: readonly string[],
    who: { spiffeId: string; jkt: string; lineage: readonly string[]; taskId: string },
    now: number,
  ): Promise<Permission[]>;
}

export interface IssuedResult {
  readonly spiffeId: string;
  readonly entryId: string;
  readonly svidChain: readonly Buffer[];
  readonly bundle: Bundle;
  readonly jwtSvids: ReadonlyArray<{ audience: string; token: string }>;
  readonly selectors: ReadonlyArray<{ type: string; value: string }>;
  /** The writ, when the hello carried a grant chain. */
  readonly writ?: string;
}

export type HandshakeStep = { kind: 'challenge'; nonce: Buffer; payload: Buffer } | { kind: 'result'; result: IssuedResult };

export interface IssuanceObserver {
  issued(kind: 'x509' | 'jwt', evidenceType: string): void;
}

export interface IssuerDeps {
  readonly ca: CaManager;
  readonly store: Store;
  readonly verifiers: VerifierRegistry;
  readonly clock: Clock;
  readonly settings: IssuerSettings;
  readonly observer?: IssuanceObserver;
  readonly policies: PolicySnapshots;
  readonly engine: PolicyEngine;
  /** Where writs' Token Status Lists are served; absent: writs carry no `status` claim. */
  readonly statusLists?: { uri(list: number): string };
  /**
   * Appends the handshake's audit records (default `appendAudit`). A seam for the benchmark's
   * audit-off baseline only (docs/testing.md); no configuration reaches it.
   */
  readonly appendAudit?: AuditAppender;
  /**
   * Whether a named agent's refusal may be its own record (audit/tally.ts NamedRefusalGate);
   * when it says no, the refusal is left unrecorded here and the server tallies it. Absent: every one is recorded.
   */
  readonly refusalGate?: { admit(actor: string, reason: string): boolean };
  /** Checks presented step-up grants; absent: a hello with step-up grants is refused. */
  readonly stepUps?: StepUpChecker;
}

/** Refusals already written to the audit log, so that no layer above records them again. */
const auditedRefusals = new WeakSet<object>();
/** Refusals the gate kept out of the log one by one: not recorded again as named refusals (the server tallies them). */
const skippedRefusals = new WeakSet<object>();

/**
 * The named-refusal gate's key: what the peer cannot vary once named (the SPIFFE ID, the entry
 * that named it, and the attested platform when there is one). Never the agent key: a peer
 * picks a fresh one per hello, and keyed on it a revoked agent with reusable evidence would get
 * one record per attempt (docs/audit.md "Refusals").
 */
export function refusalGateKey(spiffeId: string, entryId: string, result: Pick<AttestationResult, 'platform'>): string {
  return `${spiffeId}\n${entryId}\n${result.platform ?? ''}`;
}

/** True when the audit log holds a record of this refusal (the server tallies the others, docs/audit.md). */
export function isAuditedRefusal(e: unknown): boolean {
  return typeof e === 'object' && e !== null && auditedRefusals.has(e);
}

/** Failures that are the issuer's faults, not decisions about the peer: never recorded as refusals. */
const NOT_REFUSALS: ReadonlySet<string> = new Set([
  'ERR_CA_UNAVAILABLE',
  'ERR_KEY_DECRYPT',
  'ERR_STORE',
  'ERR_CONFIG_INVALID',
  'ERR_TPM_COMMAND',
  'ERR_TPM_TRANSPORT',
  'ERR_REVOCATION_UNAVAILABLE',
  'ERR_AUDIT_RECORD_INVALID',
  'ERR_AUDIT_PROOF_INVALID',
  'ERR_CHECKPOINT_INVALID',
  'ERR_AUDIT_INCONSISTENT',
  'ERR_AUDIT_DENIED',
]);

/** A decision refusing the peer (a typed error that is not the issuer's own failure). */
export function isRefusal(e: unknown): e is WritError {
  return e instanceof WritError && !NOT_REFUSALS.has(e.code);
}

/** What a grant chain binds into a handshake. */
interface Delegation {
  readonly chain: VerifiedChain;
  readonly jkt: string;
  readonly snapshot: StoredSnapshot;
  readonly issuerNonce: Buffer;
  readonly binding: Buffer;
  readonly audiences: readonly string[];
  /** The principal's groups as recorded with the root grant (from its OIDC token). */
  readonly principalGroups: readonly string[];
  /** Step-up grants presented with the hello, checked inside the issuance transaction. */
  readonly stepUps: readonly string[];
}

export class Issuer {
  constructor(private readonly deps: IssuerDeps) {}

  /** Validates a hello and opens a handshake; returns it with its first challenge. */
  async begin(hello: HelloInput): Promise<{ handshake: Handshake; challenge: HandshakeStep }> {
    const verifier = this.deps.verifiers.get(hello.evidenceType);
    const agentKey = agentKeyOf(hello);
    const audiences = checkAudiences(hello.jwtAudiences);
    const writAudiences = checkAudiences(hello.writAudiences ?? [], MAX_WRIT_AUDIENCES);
    const issuerNonce = randomBytes(NONCE_BYTES);
    const stepUps = hello.stepUps ?? [];
    if (stepUps.length > MAX_STEP_UPS) throw new LimitError(`attestation: at most ${MAX_STEP_UPS} step-up grants per hello`);
    const delegation = hello.grants.length > 0 ? await this.bindGrants(hello.grants, agentKey, issuerNonce, writAudiences, stepUps) : undefined;
    if (!delegation && writAudiences.length > 0) throw new AttestationError('ERR_PROTOCOL', 'attestation: writ audiences need a grant chain');
    if (!delegation && stepUps.length > 0) throw new AttestationError('ERR_PROTOCOL', 'attestation: step-up grants need a grant chain');
    if (stepUps.length > 0 && !this.deps.stepUps) throw new AttestationError('ERR_PROTOCOL', 'attestation: this issuer does not accept step-up grants');
    // With a grant chain, the evidence must sign the binding digest, not the bare nonce.
    const nonce = delegation ? delegation.binding : issuerNonce;
    const session = await verifier.begin({ nonce, agentKey, now: this.deps.clock.now() });
    // A bare public key must be shown to be held: its signature over this nonce comes with the first evidence.
    const keyProven = hello.csr.length > 0;
    const handshake = new Handshake(this.deps, verifier, session, agentKey, audiences, nonce, keyProven, delegation);
    return { handshake, challenge: { kind: 'challenge', nonce, payload: session.challenge } };
  }

  /**
   * Checks a grant chain before any evidence is asked for: every signature, link and
   * attenuation rule (delegation/chain.ts), that the root is one this issuer signed and nothing
   * in the lineage is revoked, that each delegating agent held a writ for its SPIFFE ID with
   * the key it signed with, and pins the active policy snapshot into the binding digest.
   */
  private async bindGrants(
    grants: readonly string[],
    agentKey: AgentPublicKey,
    issuerNonce: Buffer,
    audiences: readonly string[],
    stepUps: readonly string[],
  ): Promise<Delegation> {
    const { ca, store, clock, policies } = this.deps;
    const jkt = jwkThumbprint(agentKey.key);
    const now = clock.now();
    const chain = verifyChain({
      grants,
      issuer: trustDomainId(ca.trustDomain),
      issuerKeys: ca.bundle().writAuthorities ?? new Map(),
      now: Math.floor(now.getTime() / 1000),
      leafJkt: jkt,
    });
    const root = await checkChainAuthority(store, chain, grants, now.getTime());
    await refuseRevoked(store, chainRevocationKeys(chain));
    const snapshot = await policies.active();
    // The step-up grants are bound into B (binding v2): the evidence commits to the approvals too.
    const binding = bindingDigest({
      jkt,
      chainDigest: chain.digest,
      policySnapshot: snapshot.digest,
      taskId: chain.root.claims.task.id,
      nonce: issuerNonce,
      ...(stepUps.length > 0 ? { stepUpDigest: stepUpListDigest(stepUps) } : {}),
    });
    return { chain, jkt, snapshot, issuerNonce, binding, audiences, principalGroups: root.principalGroups, stepUps };
  }
}

/** Clock skew tolerated on a delegating writ's expiry, ms. */
export const DELEGATOR_SKEW_MS = 5_000;

/**
 * The chain's authority as this issuer knows it: the root is one it created (the exact bytes),
 * no grant reuses another's id or is revoked, and each hop was made by the holder of a **live**
 * writ the issuer issued: that writ names the delegator's SPIFFE ID, key and lineage, is
 * unexpired, unrevoked, and its registration entry still exists. Runs before evidence is asked
 * for and again inside the issuance transaction. Returns the stored root grant.
 */
async function checkChainAuthority(
  store: Pick<StoreTx, 'getGrant' | 'getWrit' | 'getEntry'>,
  chain: VerifiedChain,
  grants: readonly string[],
  now: number,
): Promise<GrantRecord> {
  const root = await store.getGrant(chain.root.claims.jti);
  if (!root || root.compact !== grants[0]) throw new DelegationError('delegation: the root grant is not one this issuer created');
  for (let i = 0; i < chain.grants.length; i++) {
    const g = chain.grants[i]!;
    const known = i === 0 ? root : await store.getGrant(g.claims.jti);
    if (known?.revokedAt) throw new RevocationError('ERR_REVOKED', `revocation: grant ${i} (${g.claims.jti}) is revoked`);
    if (known && known.compact !== grants[i]) throw new DelegationError(`delegation: grant ${i} reuses the id of another grant`);
    if (i === 0) continue;
    const from = g.claims.from!;
    const parentWrit = await store.getWrit(from.writ);
    if (!parentWrit) throw new DelegationError(`delegation: grant ${i} names a delegator writ this issuer did not issue`);
    const parentLineage = chain.lineage.slice(0, i);
    if (
      parentWrit.spiffeId !== from.sub ||
      parentWrit.jkt !== chain.grants[i - 1]!.claims.dlg.jkt ||
      parentWrit.lineage.length !== parentLineage.length ||
      parentWrit.lineage.some((id, k) => id !== parentLineage[k])
    ) {
      throw new DelegationError(`delegation: grant ${i} was not made by the holder of the writ it names (SPIFFE ID, key or lineage differ)`);
    }
    if (parentWrit.revokedAt !== null) throw new RevocationError('ERR_REVOKED', `revocation: grant ${i} was made from writ ${from.writ}, which is revoked`);
    if (parentWrit.expiresAt <= now - DELEGATOR_SKEW_MS)
      throw new DelegationError(`delegation: grant ${i} was made from writ ${from.writ}, which has expired: a delegator needs live authority`);
    if (!(await store.getEntry(parentWrit.entryId)))
      throw new DelegationError(`delegation: grant ${i} was made by ${from.sub}, whose registration entry no longer exists`);
  }
  return root;
}

/** What revocations a chain depends on: its grants, task, principal, every delegating agent, key and writ. */
function chainRevocationKeys(chain: VerifiedChain): string[] {
  const root = chain.root.claims;
  const keys = [`task:${root.task.id}`, `principal:${root.principal.iss}#${root.principal.sub}`, ...chain.lineage.map((id) => `grant:${id}`)];
  for (const g of chain.grants.slice(1)) keys.push(`agent:${g.claims.from!.sub}`, `writ:${g.claims.from!.writ}`);
  for (const g of chain.grants.slice(0, -1)) keys.push(`key:${g.claims.dlg.jkt}`);
  return keys;
}

/** Refuses when any of these `kind:target` keys is revoked, naming it. */
async function refuseRevoked(store: Pick<StoreTx, 'findRevocations'>, keys: readonly string[]): Promise<void> {
  const hit = (await store.findRevocations([...new Set(keys)]))[0];
  if (hit) {
    const what = hit.kind === 'task' ? `task ${hit.target} has ended` : `${hit.kind} ${hit.target} is revoked`;
    throw new RevocationError('ERR_REVOKED', `revocation: ${what} (by ${hit.actor}${hit.reason ? `: ${hit.reason}` : ''})`);
  }
}

/** Longest list of attested selectors a refusal shows (the agent proved them; it may see them). */
export const MAX_SHOWN_SELECTORS_BYTES = 2048;

function shownSelectors(selectors: readonly { type: string; value: string }[]): string {
  const all = selectors.map(formatSelector).join(', ');
  return `(${all.length > MAX_SHOWN_SELECTORS_BYTES ? `${all.slice(0, MAX_SHOWN_SELECTORS_BYTES)}…` : all})`;
}

/** The evidence type an issuance names: a renewal's original type, else the verifier's. */
function evidenceTypeOf(result: AttestationResult, verifier: EvidenceVerifier): string {
  return result.renewal?.evidenceType ?? verifier.type;
}

function agentKeyOf(hello: HelloInput): AgentPublicKey {
  const hasKey = hello.publicKey.length > 0;
  const hasCsr = hello.csr.length > 0;
  if (hasKey === hasCsr) throw new AttestationError('ERR_PROTOCOL', 'attestation: hello must carry exactly one of public_key and csr');
  return hasCsr ? parseCsr(hello.csr) : parsePublicKey(hello.publicKey);
}

function checkAudiences(auds: readonly string[], max = MAX_JWT_AUDIENCES): string[] {
  if (auds.length > max) throw new LimitError(`attestation: at most ${max} audiences per handshake`);
  for (const a of auds) {
    if (a === '' || Buffer.byteLength(a) > MAX_AUDIENCE_BYTES || /[\x00-\x20\x7f]/.test(a)) {
      throw new AttestationError('ERR_PROTOCOL', `attestation: an audience must be 1..${MAX_AUDIENCE_BYTES} bytes without spaces or control characters`);
    }
  }
  return [...new Set(auds)];
}

export class Handshake {
  private rounds = 0;
  private done = false;

  constructor(
    private readonly deps: IssuerDeps,
    private readonly verifier: EvidenceVerifier,
    private readonly session: AttestationSession,
    private readonly agentKey: AgentPublicKey,
    private readonly audiences: readonly string[],
    private readonly nonce: Buffer,
    private keyProven: boolean,
    private readonly delegation?: Delegation,
  ) {}

  get evidenceType(): string {
    return this.verifier.type;
  }

  /**
   * Feeds one evidence message; returns another challenge or the issued result. `keyProof` is the
   * agent key's signature over the nonce (attestation/key-proof.ts): required with the first
   * evidence when the hello named a bare public key, refused otherwise. The handshake ends with
   * its result or its first refusal, whatever refused (key proof, size, verifier, entry, policy,
   * revocation): later evidence is refused unseen, so an agent cannot probe the verifier with
   * retries under one nonce; and one message is handled at a time.
   */
  async respond(evidence: Uint8Array, keyProof: Uint8Array = new Uint8Array(0)): Promise<HandshakeStep> {
    if (this.done) throw new AttestationError('ERR_PROTOCOL', 'attestation: this handshake has ended; start a new one');
    // Over unless this evidence is answered with another challenge.
    this.done = true;
    const step = await this.step(evidence, keyProof);
    if (step.kind === 'challenge') this.done = false;
    return step;
  }

  private async step(evidence: Uint8Array, keyProof: Uint8Array): Promise<HandshakeStep> {
    if (++this.rounds > this.verifier.maxRounds)
      throw new AttestationError('ERR_PROTOCOL', `attestation: more than ${this.verifier.maxRounds} evidence rounds`);
    if (evidence.length > this.verifier.maxEvidenceBytes) {
      throw new LimitError(`attestation(${this.verifier.type}): evidence of ${evidence.length} bytes exceeds ${this.verifier.maxEvidenceBytes}`);
    }
    if (this.keyProven) {
      if (keyProof.length > 0)
        throw new AttestationError('ERR_PROTOCOL', 'attestation: key_proof belongs only in the first evidence of a hello with a bare public key');
    } else {
      verifyKeyProof(this.agentKey.key, this.nonce, keyProof);
      this.keyProven = true;
    }
    const step = await this.session.respond(Buffer.from(evidence));
    if (step.kind === 'challenge') return { kind: 'challenge', nonce: this.nonce, payload: step.payload };
    const { ca, store } = this.deps;
    const result = step.result;

    const candidates = await store.listEntriesBySelectors(result.selectors.map(formatSelector));
    const entry = matchEntry(candidates, result.selectors);
    if (entry === undefined) {
      throw new AttestationError(
        'ERR_NO_MATCHING_ENTRY',
        `attestation: no registration entry matches the attested selectors ${shownSelectors(result.selectors)}`,
      );
    }
    if (entry === 'ambiguous')
      throw new AttestationError('ERR_NO_MATCHING_ENTRY', 'attestation: the attested selectors match entries for different SPIFFE IDs equally');
    // A renewal renews one identity: if its selectors now match another entry, attest afresh.
    if (result.renewal && entry.id !== result.renewal.entryId)
      throw new AttestationError(
        'ERR_NO_MATCHING_ENTRY',
        `attestation: the recorded selectors now match entry ${entry.id}, not ${result.renewal.entryId}: attest with fresh evidence`,
      );
    const spiffeId = parseSpiffeId(entry.spiffeId);
    if (spiffeId.trustDomain !== ca.trustDomain) throw new EntryError('ERR_ENTRY_INVALID', 'entry: SPIFFE ID outside the trust domain');
    // From here the peer is named: its evidence verified and an entry gave it a SPIFFE ID, so
    // each refusal is one record with the agent as actor (docs/audit.md "Refusals").
    const agent = { kind: 'agent', spiffeId: spiffeId.uri, jkt: jwkThumbprint(this.agentKey.key) } as const;
    try {
      return await this.issue(entry, spiffeId, agent, result);
    } catch (e) {
      if (isRefusal(e) && !auditedRefusals.has(e) && !skippedRefusals.has(e))
        await this.auditRefusal(refusalGateKey(spiffeId.uri, entry.id, result), agent, result, e);
      throw e;
    }
  }

  /** One record of a refusal of a named agent, in its own transaction (the refused change rolled back). */
  private async auditRefusal(gateKey: string, agent: AuditActor & { kind: 'agent' }, result: AttestationResult, e: WritError): Promise<void> {
    if (this.deps.refusalGate && !this.deps.refusalGate.admit(gateKey, e.code)) return;
    const d = this.delegation;
    const claims = d?.chain.root.claims;
    const append = this.deps.appendAudit ?? appendAudit;
    await this.deps.store.transaction((tx) =>
      append(tx, {
        at: this.deps.clock.now().getTime(),
        event: d && e instanceof DelegationError ? 'delegation.refused' : 'handshake.refused',
        actor: agent,
        principal: claims ? { iss: claims.principal.iss, sub: claims.principal.sub } : null,
        task: claims?.task.id ?? null,
        lineage: d?.chain.lineage ?? [],
        action: d ? `receive task ${claims!.task.id} at depth ${d.chain.leaf.claims.depth}` : `attest with ${this.verifier.type}`,
        resource: null,
        decision: null,
        reason: e.code,
        policies: [],
        snapshot: d?.snapshot.digest ?? null,
        evidence: result.evidenceDigest.toString('hex'),
        created: [],
      }),
    );
    auditedRefusals.add(e);
  }

  private async issue(entry: Entry, spiffeId: SpiffeId, agent: AuditActor & { kind: 'agent' }, result: AttestationResult): Promise<HandshakeStep> {
    const { ca, store, clock, settings, observer } = this.deps;
    const append = this.deps.appendAudit ?? appendAudit;
    const now = clock.now();
    const x509Ttl = entry.x509SvidTtl ? entry.x509SvidTtl * 1000 : settings.x509SvidTtlMs;
    const svid = await ca.x509Minter().mint({
      spiffeId,
      spki: this.agentKey.spki,
      notBefore: new Date(now.getTime() - SVID_BACKDATE_MS),
      notAfter: new Date(now.getTime() + x509Ttl),
      ...(result.keyResidency ? { keyResidency: result.keyResidency } : {}),
    });
    const jwtTtl = entry.jwtSvidTtl ? entry.jwtSvidTtl * 1000 : settings.jwtSvidTtlMs;
    const signer = ca.jwtSigner();
    const jwtExp = new Date(Math.min(now.getTime() + jwtTtl, signer.notAfter.getTime()));
    const jwts: Array<{ audience: string; svid: JwtSvid }> = [];
    for (const audience of this.audiences)
      jwts.push({ audience, svid: await mintJwtSvid(signer, { spiffeId, audience: [audience], issuedAt: now, expiresAt: jwtExp }) });

    const decided = this.delegation ? this.decide(this.delegation, spiffeId, result, now) : undefined;
    const delegated = this.delegation && {
      principal: { iss: this.delegation.chain.root.claims.principal.iss, sub: this.delegation.chain.root.claims.principal.sub },
      task: this.delegation.chain.root.claims.task.id,
      lineage: this.delegation.chain.lineage,
      snapshot: this.delegation.snapshot.digest,
    };
    const evidence = result.evidenceDigest.toString('hex');
    if (decided?.refused) {
      const refused = decided.refused;
      const recorded = !this.deps.refusalGate || this.deps.refusalGate.admit(refusalGateKey(spiffeId.uri, entry.id, result), refused.code);
      await store.transaction(async (tx) => {
        await tx.recordDecision(decided.decisionRecord);
        if (!recorded) return;
        await append(tx, {
          at: now.getTime(),
          event: 'handshake.refused',
          actor: agent,
          principal: delegated!.principal,
          task: delegated!.task,
          lineage: delegated!.lineage,
          action: decided.decisionRecord.action,
          resource: null,
          decision: decided.decisionRecord.decision,
          reason: refused.code,
          policies: decided.policies,
          snapshot: delegated!.snapshot,
          evidence,
          created: [],
        });
      });
      // Marked either way: an unrecorded policy refusal is not retried as a named refusal, and the server tallies it.
      if (recorded) auditedRefusals.add(refused);
      else skippedRefusals.add(refused);
      throw refused;
    }

    // Everything a refusal depends on is checked again inside the transaction that records the
    // issuance, so nothing is issued after a revocation that committed first.
    const keys = [
      `agent:${spiffeId.uri}`,
      `key:${jwkThumbprint(this.agentKey.key)}`,
      `entry:${entry.id}`,
      ...(result.platform ? [`platform:${result.platform}`] : []),
    ];
    let writCompact: string | undefined;
    await store.transaction(async (tx) => {
      await result.commit?.(tx, now);
      const d = this.delegation;
      await refuseRevoked(tx, d ? [...keys, ...chainRevocationKeys(d.chain)] : keys);
      const base = { spiffeId: spiffeId.uri, entryId: entry.id, evidenceType: evidenceTypeOf(result, this.verifier), issuedAt: now.getTime() };
      const created = [svid.serial.toString('hex')];
      await tx.recordIssued({ ...base, id: created[0]!, kind: 'x509', expiresAt: svid.notAfter.getTime() });
      await recordAttestedAgent(tx, result, { ...base, serial: created[0]!, jkt: agent.jkt, expiresAt: svid.notAfter.getTime() });
      for (const j of jwts) {
        const id = createHash('sha256').update(j.svid.token).digest('hex');
        created.push(id);
        await tx.recordIssued({ ...base, id, kind: 'jwt', expiresAt: j.svid.expiresAt.getTime() });
      }
      const record = {
        at: now.getTime(),
        actor: agent,
        principal: delegated?.principal ?? null,
        task: delegated?.task ?? null,
        lineage: delegated?.lineage ?? [],
        action: decided ? decided.decisionRecord.action : null,
        // A renewal names the SVID it replaced.
        resource: result.renewal ? `x509-svid:${result.renewal.serial}` : null,
        decision: decided ? ('allow' as const) : null,
        reason: null,
        policies: decided?.policies ?? [],
        snapshot: delegated?.snapshot ?? null,
        evidence,
      };
      // The SVIDs; then, with a chain, each hop the issuer accepts for the first time and the writ.
      await append(tx, { ...record, event: 'handshake.issued', created });
      if (d && decided) {
        await checkChainAuthority(
          tx,
          d.chain,
          d.chain.grants.map((g) => g.jws.compact),
          now.getTime(),
        );
        if (d.stepUps.length > 0) {
          // Each approval is the issuer's own, for exactly this agent, key, lineage and live task
          // (the task's end is among the chain's revocations checked above), and what it adds is
          // still something policy lets an approver allow.
          const added = await this.deps.stepUps!.stepUpsFor(
            tx,
            d.stepUps,
            { spiffeId: spiffeId.uri, jkt: d.jkt, lineage: d.chain.lineage, taskId: d.chain.root.claims.task.id },
            now.getTime(),
          );
          this.checkApprovable(d, spiffeId, result, added, now);
        }
        const status = this.deps.statusLists ? await allocateStatusIndex(tx, now.getTime()) : undefined;
        const w = await this.mintWrit(d, decided.policies, spiffeId, result, entry.id, svid.chain[0]!, svid.notAfter, now, status);
        writCompact = w.compact;
        await tx.recordDecision(decided.decisionRecord);
        await tx.recordWrit(w.record);
        for (let i = 1; i < d.chain.grants.length; i++) {
          const g = d.chain.grants[i]!;
          if (await tx.getGrant(g.claims.jti)) continue;
          await tx.putGrant(grantRecord(g.claims, g.jws.compact, [], now));
          // The delegator (the holder of the parent writ) is the actor of a hop, not the receiver.
          await append(tx, {
            ...record,
            event: 'delegation.accepted',
            actor: { kind: 'agent', spiffeId: g.claims.from!.sub, jkt: d.chain.grants[i - 1]!.claims.dlg.jkt },
            lineage: d.chain.lineage.slice(0, i + 1),
            action: `delegate task ${delegated!.task} at depth ${g.claims.depth}`,
            resource: null,
            evidence: null,
            created: [g.claims.jti],
          });
        }
        await append(tx, { ...record, event: 'writ.issued', created: [w.record.jti] });
      }
    });
    observer?.issued('x509', this.verifier.type);
    for (let i = 0; i < jwts.length; i++) observer?.issued('jwt', this.verifier.type);
    return {
      kind: 'result',
      result: {
        spiffeId: spiffeId.uri,
        entryId: entry.id,
        svidChain: svid.chain,
        bundle: ca.bundle(),
        jwtSvids: jwts.map((j) => ({ audience: j.audience, token: j.svid.token })),
        selectors: result.selectors,
        ...(writCompact ? { writ: writCompact } : {}),
      },
    };
  }

  /** The policy decision for this agent receiving the chain (recorded whatever it is). */
  private decide(d: Delegation, id: SpiffeId, result: AttestationResult, now: Date) {
    const { engine } = this.deps;
    const { chain, snapshot } = d;
    const root = chain.root.claims;
    const leaf = chain.leaf.claims;
    const nowS = Math.floor(now.getTime() / 1000);
    const spiffeId = id.uri;
    const decision = engine.decideAll(
      snapshot,
      receiveRequests(
        {
          spiffeId,
          trustDomain: id.trustDomain,
          path: id.path,
          selectors: result.selectors.map(formatSelector),
          evidenceType: evidenceTypeOf(result, this.verifier),
        },
        { iss: root.principal.iss, sub: root.principal.sub, groups: d.principalGroups },
        leaf.scope,
        { id: root.task.id, goal: root.task.goal, lifetimeSeconds: Math.max(0, root.task.exp - nowS) },
        leaf.depth,
        leaf.max_depth,
      ),
    );
    const decisionRecord = {
      at: now.getTime(),
      actor: spiffeId,
      principal: `${root.principal.iss}#${root.principal.sub}`,
      action: `receive task ${root.task.id} at depth ${leaf.depth}`,
      decision: decision.decision,
      snapshot: snapshot.digest,
      policies: decision.policies,
      reason: decision.reason,
    };
    if (decision.decision !== 'allow')
      return { refused: refusal(decision, `issuing a writ to ${spiffeId}`), decisionRecord, policies: decision.policies } as const;
    return { refused: undefined, decisionRecord, policies: decision.policies } as const;
  }

  /** Refuses a permission an approval added when the active policy now denies it outright (fail closed). */
  private checkApprovable(d: Delegation, id: SpiffeId, result: AttestationResult, added: readonly Permission[], now: Date): void {
    const root = d.chain.root.claims;
    const leaf = d.chain.leaf.claims;
    const agent = {
      spiffeId: id.uri,
      trustDomain: id.trustDomain,
      path: id.path,
      selectors: result.selectors.map(formatSelector),
      evidenceType: evidenceTypeOf(result, this.verifier),
    };
    const task = { id: root.task.id, goal: root.task.goal, lifetimeSeconds: Math.max(0, root.task.exp - Math.floor(now.getTime() / 1000)) };
    const principal = { iss: root.principal.iss, sub: root.principal.sub, groups: d.principalGroups };
    for (const p of added) {
      const decision = this.deps.engine.decideAll(d.snapshot, escalationRequests(agent, principal, p, task, leaf.depth, leaf.max_depth));
      if (decision.decision === 'deny')
        throw refusal(decision, `carrying the approval of ${p.action} on ${p.resource} (policy no longer lets an approver allow it)`);
    }
  }

  /** The writ, signed by the active writ key, and its record. Runs inside the issuance transaction. */
  private async mintWrit(
    d: Delegation,
    policies: readonly string[],
    id: SpiffeId,
    result: AttestationResult,
    entryId: string,
    leafDer: Buffer,
    svidNotAfter: Date,
    now: Date,
    status: { list: number; idx: number } | undefined,
  ) {
    const { ca, statusLists } = this.deps;
    const { chain, snapshot } = d;
    const root = chain.root.claims;
    const leaf = chain.leaf.claims;
    const nowS = Math.floor(now.getTime() / 1000);
    const spiffeId = id.uri;
    const signer = ca.writSigner();
    const exp = Math.min(
      Math.floor(svidNotAfter.getTime() / 1000),
      root.task.exp,
      leaf.exp,
      Math.floor(signer.notAfter.getTime() / 1000),
      // Never outliving an approval it carries.
      ...d.stepUps.map((g) => parseStepUpGrantCached(g).claims.exp),
    );
    let act: ActClaim = { sub: root.principal.sub, iss: root.principal.iss };
    for (const g of chain.grants.slice(1)) act = { sub: g.claims.from!.sub, act };
    const ev = result.publicEvidence && result.publicEvidence.length <= MAX_EMBEDDED_EVIDENCE_BYTES ? result.publicEvidence.toString('base64url') : undefined;
    const claims: WritClaims = {
      iss: trustDomainId(ca.trustDomain),
      sub: spiffeId,
      ...(d.audiences.length ? { aud: d.audiences } : {}),
      jti: randomBytes(16).toString('base64url'),
      iat: nowS,
      exp,
      cnf: { jkt: d.jkt },
      svid: { 'x5t#S256': createHash('sha256').update(leafDer).digest('base64url') },
      principal: root.principal,
      act,
      task: root.task,
      grants: chain.grants.map((g) => g.jws.compact),
      lineage: chain.lineage,
      att: {
        type: evidenceTypeOf(result, this.verifier),
        sel: result.selectors.map(formatSelector),
        bind: d.binding.toString('base64url'),
        nonce: d.issuerNonce.toString('base64url'),
        ev_sha256: result.evidenceDigest.toString('base64url'),
        ...(ev ? { ev } : {}),
        // nonce and ev_sha256 above are the renewal handshake's, type and sel the original's: say so.
        ...(result.renewal ? { renewed: { via: 'x509_svid', serial: result.renewal.serial } as const } : {}),
      },
      pol: { snap: snapshot.digest, decision: 'allow', policies, iat: Math.floor(snapshot.createdAt / 1000) },
      reg: entryId,
      ...(d.stepUps.length > 0 ? { stepup: [...d.stepUps] } : {}),
      ...(status && statusLists ? { status: { status_list: { idx: status.idx, uri: statusLists.uri(status.list) } } } : {}),
    };
    if (exp <= nowS) throw new DelegationError('delegation: the task or a grant ends before a writ could be valid');
    const compact = await signWrit(claims, signer.signer, signer.kid);
    parseWrit(compact); // validate our own output before it leaves
    const record: WritRecord = {
      jti: claims.jti,
      spiffeId,
      jkt: d.jkt,
      chainDigest: chain.digest,
      lineage: chain.lineage,
      taskId: root.task.id,
      evidenceDigest: result.evidenceDigest,
      issuedAt: now.getTime(),
      expiresAt: exp * 1000,
      principal: `${root.principal.iss}#${root.principal.sub}`,
      parentJti: chain.grants.length > 1 ? chain.leaf.claims.from!.writ : null,
      entryId,
      platform: result.platform ?? '',
      evidenceType: evidenceTypeOf(result, this.verifier),
      statusList: status?.list ?? null,
      statusIdx: status?.idx ?? null,
      revokedAt: null,
      revokedSeq: null,
    };
    return { compact, record };
  }
}
