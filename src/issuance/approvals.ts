/**
 * Progressive trust, the issuer's side (docs/policy.md §Approvals): an agent escalates (its
 * writ and a proof of possession), policy answers (a request no permit could ever cover, or a
 * boundary, is refused outright; anything else waits for an approver), an approver decides:
 * denies with a reason, or approves with a passkey whose WebAuthn challenge is the SHA-256 of
 * the canonical approval request, which issues a step-up grant. Every state change is one
 * transaction with its audit record. Who may approve is the Cedar `approve` action.
 * UNTRUSTED input: every request field, the OIDC tokens, the WebAuthn JSON documents.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { appendAudit } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { CaManager } from '../ca/manager.js';
import { ApprovalError, PolicyError, isWritError } from '../errors.js';
import { parseGrantCached } from '../delegation/grant.js';
import { authorizeAction, type Permission } from '../delegation/scope.js';
import type { PolicyDecision, PolicyEngine } from '../policy/engine.js';
import { approveRequest, escalationRequests } from '../policy/requests.js';
import type { Principal, PrincipalVerifier } from '../principal/oidc.js';
import { parseSpiffeId, trustDomainId } from '../spiffe/id.js';
import type { ApprovalRecord, PasskeyCeremonyRecord, PasskeyRecord, Store, StoreTx } from '../store/store.js';
import type { ReplayCache } from '../writ/proof.js';
import { escalateMethod } from '../writ/proof-methods.js';
import { verifyWrit, type VerifiedWrit } from '../writ/verify.js';
import { MAX_STEP_UPS, parseWritCached } from '../writ/writ.js';
import { canonicalize } from '../jose/jcs.js';
import { approvalDigest, approvalRequestBytes, checkApprovalId, checkReason, newApprovalId, type ApprovalRequestDoc } from '../approval/request.js';
import type { ApprovalSettings } from '../approval/settings.js';
import { approvalChallenge, approvalRequestFor, mintStepUpGrant, verifyStepUpGrant, type ApprovalRequest } from '../delegation/step-up.js';
import { LimitError, WebAuthnError } from '../errors.js';
import {
  passkeyRegistrationBytes,
  passkeyRegistrationChallenge,
  passkeyRegistrationStatement,
  registrationChallengeOf,
  verifyRegistrationAuthorization,
  type PasskeyRegistrationStatement,
} from '../approval/passkey-registration.js';
import { DEFAULT_REGISTRATION_MAX_AUTH_AGE_MS } from '../approval/settings.js';
import { TOKEN_SKEW_S } from '../principal/oidc.js';
import type { PolicySnapshots } from './policies.js';
import { issuerRevocationSource } from './revocation-status.js';

/** Largest writ, proof, token or WebAuthn JSON document accepted, bytes. */
export const MAX_APPROVAL_INPUT_BYTES = 64 * 1024;
/** Most requests one ListApprovals page answers. */
export const MAX_APPROVAL_LIST = 500;
/**
 * Most stored requests one ListApprovals call reads and runs the `approve` policy over: past it
 * the page ends early with a next page token, so a page costs the issuer a bounded amount of
 * work whatever is stored (requests this approver may not decide are read, never shown).
 */
export const MAX_APPROVAL_SCAN = 2_000;
/** Most requests one housekeeping run stores as expired (the rest wait for the next tick). */
export const MAX_EXPIRED_PER_RUN = 500;
/** Rows read from the store per query while filling a page. */
const APPROVAL_SCAN_CHUNK = 250;
/** Longest principal filter (ISSUER#SUBJECT), bytes. */
const MAX_PRINCIPAL_FILTER_BYTES = 2048;
/** Registration ceremonies in flight (a challenge each, in the store), across approvers: past it a new one is refused, none is evicted. */
export const MAX_PENDING_REGISTRATIONS = 10_000;
/** Registration ceremonies one approver may have in flight: a new one past it drops that approver's oldest, never another's. */
export const MAX_PENDING_REGISTRATIONS_PER_APPROVER = 4;
/** How long a registration challenge is good for, ms (WebAuthn's recommended ceiling). */
export const REGISTRATION_TTL_MS = 5 * 60_000;
/** Most passkeys one approver may register. */
export const MAX_PASSKEYS_PER_APPROVER = 16;
/** The only COSE algorithm accepted for passkeys: ES256 (a relying party checks it with any P-256 library). */
export const PASSKEY_ALGORITHMS = [-7];
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';

export type ApprovalStateView = 'pending' | 'approved' | 'denied' | 'expired';

/** An approval request as callers see it: the record, its live state, and what the console shows. */
export interface ApprovalView {
  readonly record: ApprovalRecord;
  readonly state: ApprovalStateView;
  readonly taskGoal: string;
  /** From the principal to the agent: `iss#sub`, then each agent's SPIFFE ID. */
  readonly delegationPath: readonly string[];
  /** Set by BeginApproval only: the WebAuthn challenge for that approver (base64url). */
  readonly challenge: string;
}

export type ApprovalCaller =
  | { readonly kind: 'agent'; readonly writ: string; readonly proof: string; readonly method: string }
  | { readonly kind: 'approver'; readonly token: string };

export interface ApprovalsDeps {
  readonly ca: CaManager;
  readonly store: Store;
  readonly clock: Clock;
  readonly principals: PrincipalVerifier;
  readonly policies: PolicySnapshots;
  readonly engine: PolicyEngine;
  readonly replayCache: ReplayCache;
  readonly settings: ApprovalSettings;
  /** The HTTPS listener's URL, the default WebAuthn origin (resolved once the listener is bound). */
  readonly publicUrl?: () => string | undefined;
  /** Registration ceremonies in flight, overall and per approver (tests; default the constants). */
  readonly registrationLimits?: { readonly total: number; readonly perApprover: number };
}

/** A registration ceremony in flight (the store's, so any replica finishes it): for whom, until when, and the statement an existing passkey must sign. */
interface PendingRegistration {
  readonly owner: string;
  readonly expiresAt: number;
  /** Absent: the owner had no passkey when it began. */
  readonly statement?: PasskeyRegistrationStatement;
}

/** What BeginPasskeyRegistration answers. */
export interface RegistrationBegun {
  /** PublicKeyCredentialCreationOptionsJSON. */
  readonly options: string;
  /** For an owner who has passkeys: request options over the statement's digest, and the statement. */
  readonly authorization?: { readonly options: string; readonly statement: string };
}

const invalid = (msg: string): never => {
  throw new ApprovalError('ERR_APPROVAL_INVALID', `approval: ${msg}`);
};
const webauthnFailed = (msg: string, cause?: unknown): never => {
  throw new WebAuthnError(`approval(webauthn): ${msg}`, cause ? { cause } : undefined);
};
const bounded = (s: string, what: string): string => (Buffer.byteLength(s) > MAX_APPROVAL_INPUT_BYTES ? invalid(`${what} is too large`) : s);
const who = (p: { iss: string; sub: string }): string => `${p.iss}#${p.sub}`;

function parseJsonDoc<T>(s: string, what: string): T {
  bounded(s, what);
  try {
    const v = JSON.parse(s) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as T;
  } catch (e) {
    return invalid(`${what} is not a JSON object: ${(e as Error).message}`);
  }
}

export class Approvals {
  private readonly listeners = new Set<() => void>();

  constructor(private readonly deps: ApprovalsDeps) {}

  /** The WebAuthn relying party; refuses when neither approvals.origin nor an HTTPS listener URL is known. */
  relyingParty(): { rpId: string; origin: string; rpName: string } {
    const s = this.deps.settings;
    const origin = s.origin ?? (this.deps.publicUrl?.() ? new URL(this.deps.publicUrl()!).origin : undefined);
    if (!origin) return invalid('passkeys need approvals.origin or the HTTPS listener (http_listen) configured');
    return { rpId: s.rpId ?? new URL(origin).hostname, origin, rpName: s.rpName };
  }

  /** Calls `fn` after any approval changed here (and, wired by the server, on another replica). */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Another replica changed an approval (the store's change feed). */
  changed(): void {
    for (const fn of this.listeners) fn();
  }

  get retryAfterSeconds(): number {
    return this.deps.settings.retryAfterSeconds;
  }

  private issuerId(): string {
    return trustDomainId(this.deps.ca.trustDomain);
  }

  /** The agent's writ and proof, verified as the issuer verifies any presentation to itself. */
  private async agent(writ: string, proof: string, method: string): Promise<VerifiedWrit> {
    bounded(writ, 'the writ');
    bounded(proof, 'the proof');
    const { ca, store, clock, replayCache } = this.deps;
    const claims = parseWritCached(writ).claims;
    const v = verifyWrit({
      writ,
      proof,
      trust: { issuer: this.issuerId(), writKeys: ca.bundle().writAuthorities ?? new Map() },
      audience: this.issuerId(),
      presentedToIssuer: true,
      method,
      now: clock.now(),
      replayCache,
      revocation: await issuerRevocationSource(store, claims),
    });
    // Only writs this issuer minted (and recorded) may ask.
    if (!(await store.getWrit(v.jti))) throw new ApprovalError('ERR_APPROVAL_DENIED', 'approval: the writ is not one this issuer recorded');
    return v;
  }

  private async approver(token: string): Promise<Principal> {
    bounded(token, 'the OIDC token');
    return this.deps.principals.verify(token, ID_TOKEN);
  }

  private stateOf(r: ApprovalRecord, now: number): ApprovalStateView {
    return r.state === 'pending' && now >= r.expiresAt ? 'expired' : r.state;
  }

  private view(r: ApprovalRecord, now: number): ApprovalView {
    const doc = JSON.parse(r.request) as ApprovalRequestDoc;
    return {
      record: r,
      state: this.stateOf(r, now),
      taskGoal: doc.task.goal,
      delegationPath: doc.path,
      challenge: '',
    };
  }

  /** The Cedar `approve` decision for this approver over this request (active snapshot). */
  private async mayApprove(approver: Principal, r: ApprovalRecord): Promise<PolicyDecision> {
    const { policies, engine, clock } = this.deps;
    const snapshot = await policies.active();
    const doc = JSON.parse(r.request) as ApprovalRequestDoc;
    const nowS = Math.floor(clock.now().getTime() / 1000);
    return engine.decide(
      snapshot,
      approveRequest(
        approver,
        {
          id: r.id,
          principal: { iss: r.principalIss, sub: r.principalSub },
          actor: r.actor,
          action: r.action,
          resource: r.resource,
          reason: r.reason,
          policies: r.policies,
          depth: r.lineage.length - 1,
          maxDepth: doc.maxDepth,
        },
        { id: r.taskId, goal: doc.task.goal, lifetimeSeconds: Math.max(0, doc.task.exp - nowS) },
      ),
    );
  }

  /**
   * Escalate: records a pending approval request for one concrete permission, or refuses it
   * outright (recorded too) when the writ's boundaries or the policy deny it.
   */
  async escalate(r: { writ: string; proof: string; action: string; resource: string; reason: string }): Promise<ApprovalView> {
    const { store, clock, policies, engine, settings } = this.deps;
    checkReason(r.reason, 'the escalation');
    const v = await this.agent(r.writ, r.proof, escalateMethod(r.action, r.resource));
    let authz;
    try {
      authz = authorizeAction(v.constraints, r.action, r.resource);
    } catch (e) {
      return invalid(isWritError(e) ? e.message : 'the permission must be concrete');
    }
    if (authz.decision === 'allow') invalid(`the writ already allows ${r.action} on ${r.resource}: nothing to escalate`);
    const c = v.claims;
    const leaf = parseGrantCached(c.grants[c.grants.length - 1]!).claims;
    const root = await store.getGrant(c.lineage[0]!);
    const id = parseSpiffeId(c.sub);
    const now = clock.now();
    const nowS = Math.floor(now.getTime() / 1000);
    const snapshot = await policies.active();
    const task = { id: c.task.id, goal: c.task.goal, lifetimeSeconds: Math.max(0, c.task.exp - nowS) };
    const principal = { iss: c.principal.iss, sub: c.principal.sub, groups: root?.principalGroups ?? [] };
    const agentInfo = { spiffeId: c.sub, trustDomain: id.trustDomain, path: id.path, selectors: [...c.att.sel], evidenceType: c.att.type };
    // A boundary of the grant chain is the delegator's hard limit: no approver lifts it.
    const decision: PolicyDecision =
      authz.decision === 'deny' && authz.reason === 'boundary'
        ? {
            decision: 'deny',
            snapshot: snapshot.digest,
            policies: [],
            reason: `the grant's boundary ${authz.matched!.action}=${authz.matched!.resource} forbids it`,
          }
        : engine.decideAll(snapshot, escalationRequests(agentInfo, principal, { action: r.action, resource: r.resource }, task, leaf.depth, leaf.max_depth));
    const asked = [...(decision.decision === 'escalate' ? decision.policies : []), ...(authz.decision === 'escalate' ? [`grant:${leaf.jti}`] : [])];
    const action = `escalate ${r.action}`;
    const audited = {
      at: now.getTime(),
      actor: { kind: 'agent', spiffeId: c.sub, jkt: c.cnf.jkt } as const,
      principal: { iss: c.principal.iss, sub: c.principal.sub },
      task: c.task.id,
      lineage: [...c.lineage],
      action,
      resource: r.resource,
      snapshot: snapshot.digest,
      evidence: null,
    };
    const decisionRecord = {
      at: now.getTime(),
      actor: c.sub,
      principal: who(c.principal),
      action: `${action}=${r.resource}`,
      snapshot: snapshot.digest,
      policies: decision.policies,
      reason: decision.reason,
    };
    if (decision.decision === 'deny') {
      const refused = new PolicyError(
        'ERR_POLICY_DENIED',
        `policy: escalating to ${r.action} on ${r.resource} denied: ${decision.reason} (snapshot ${snapshot.digest.slice(0, 16)}): no approver can allow it`,
      );
      await store.transaction(async (tx) => {
        await tx.recordDecision({ ...decisionRecord, decision: 'deny' });
        await appendAudit(tx, { ...audited, event: 'approval.requested', decision: 'deny', reason: refused.code, policies: decision.policies, created: [] });
      });
      throw refused;
    }
    const expS = Math.min(Math.floor((now.getTime() + settings.requestTtlMs) / 1000), c.task.exp);
    const approvalId = newApprovalId();
    const doc: ApprovalRequestDoc = {
      typ: 'writ-approval-request',
      v: 1,
      id: approvalId,
      iss: this.issuerId(),
      task: { id: c.task.id, goal: c.task.goal, exp: c.task.exp },
      principal: { iss: c.principal.iss, sub: c.principal.sub },
      actor: { sub: c.sub, jkt: c.cnf.jkt },
      path: [...v.chain],
      writ: c.jti,
      lineage: [...c.lineage],
      permission: { action: r.action, resource: r.resource },
      reason: r.reason,
      policies: asked,
      snapshot: snapshot.digest,
      maxDepth: leaf.max_depth,
      iat: nowS,
      exp: expS,
    };
    const canonical = approvalRequestBytes(doc);
    const record: ApprovalRecord = {
      id: approvalId,
      taskId: c.task.id,
      principalIss: c.principal.iss,
      principalSub: c.principal.sub,
      actor: c.sub,
      actorJkt: c.cnf.jkt,
      writJti: c.jti,
      lineage: [...c.lineage],
      action: r.action,
      resource: r.resource,
      reason: r.reason,
      policies: asked,
      snapshot: snapshot.digest,
      request: canonical.toString('utf8'),
      digest: approvalDigest(canonical).toString('hex'),
      createdAt: now.getTime(),
      expiresAt: expS * 1000,
      state: 'pending',
      decidedAt: null,
      decidedBy: null,
      decisionReason: null,
      credentialId: null,
      stepUp: null,
    };
    // The repeat check and the caps read what this transaction inserts into: two racing
    // escalations cannot both pass a cap with one slot left, nor both create the same request.
    const existing = await store.transaction(async (tx) => {
      await refuseEndedTask(tx, c.task.id);
      const t = now.getTime();
      const same = await tx.findPendingApproval(c.jti, r.action, r.resource, t);
      if (same) return same;
      if ((await tx.countPendingApprovals(c.task.id, c.jti, t, settings.maxPendingPerWrit)) >= settings.maxPendingPerWrit)
        throw new ApprovalError(
          'ERR_APPROVAL_LIMIT',
          `approval: writ ${c.jti} already has ${settings.maxPendingPerWrit} escalations pending (approvals.max_pending_per_writ); wait for a decision or an expiry`,
        );
      if ((await tx.countPendingApprovals(c.task.id, undefined, t, settings.maxPendingPerTask)) >= settings.maxPendingPerTask)
        throw new ApprovalError(
          'ERR_APPROVAL_LIMIT',
          `approval: task ${c.task.id} already has ${settings.maxPendingPerTask} escalations pending (approvals.max_pending_per_task); wait for a decision or an expiry`,
        );
      await tx.recordDecision({ ...decisionRecord, decision: 'escalate' });
      await tx.createApproval(record);
      await appendAudit(tx, { ...audited, event: 'approval.requested', decision: 'escalate', reason: null, policies: asked, created: [approvalId] });
      return undefined;
    });
    // The same writ asking again for the same permission: the request already waiting (idempotent).
    if (existing) return this.view(existing, now.getTime());
    this.changed();
    return this.view(record, now.getTime());
  }

  /** One request, for its agent or for an approver the `approve` policy names; anyone else: not found. */
  async get(id: string, caller: ApprovalCaller): Promise<ApprovalView> {
    checkApprovalId(id);
    const r = await this.deps.store.getApproval(id);
    const notFound = () => new ApprovalError('ERR_APPROVAL_NOT_FOUND', `approval: no request ${id} that this caller may see`);
    if (caller.kind === 'agent') {
      const v = await this.agent(caller.writ, caller.proof, caller.method);
      if (!r || r.actor !== v.spiffeId || r.actorJkt !== v.claims.cnf.jkt) throw notFound();
    } else {
      const a = await this.approver(caller.token);
      if (!r || (await this.mayApprove(a, r)).decision !== 'allow') throw notFound();
    }
    return this.view(r, this.deps.clock.now().getTime());
  }

  /** A request read again by id, for a caller `get` already admitted (WatchApproval). */
  async refresh(id: string): Promise<ApprovalView> {
    const r = await this.deps.store.getApproval(id);
    if (!r) throw new ApprovalError('ERR_APPROVAL_NOT_FOUND', `approval: no request ${id}`);
    return this.view(r, this.deps.clock.now().getTime());
  }

  /**
   * One page of the requests this approver may decide, newest first: state, task and principal
   * filtered by the store in SQL, pages by keyset (created_at, id), and the `approve` policy run
   * over at most MAX_APPROVAL_SCAN stored requests per call. A page may be short, even empty,
   * with a next page token (the scan budget ran out): callers follow the token until it is ''.
   */
  async list(
    token: string,
    filter: { state: string; taskId: string; principal?: string; pageSize: number; pageToken?: string },
  ): Promise<{ approvals: ApprovalView[]; nextPageToken: string }> {
    const a = await this.approver(token);
    const pageSize = filter.pageSize === 0 ? 100 : filter.pageSize;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_APPROVAL_LIST) invalid(`page size must be 1..${MAX_APPROVAL_LIST}`);
    const st = filter.state === '' ? 'pending' : filter.state;
    if (!['pending', 'approved', 'denied', 'expired', 'all'].includes(st)) invalid('state must be pending, approved, denied, expired or all');
    bounded(filter.taskId, 'the task id');
    const principal = filter.principal ? parsePrincipalFilter(filter.principal) : undefined;
    let after = filter.pageToken ? parsePageToken(filter.pageToken) : undefined;
    const now = this.deps.clock.now().getTime();
    const query = {
      ...(st === 'all' ? {} : { state: st as ApprovalRecord['state'] }),
      ...(filter.taskId ? { taskId: filter.taskId } : {}),
      ...(principal ? { principal } : {}),
      now,
    };
    const out: ApprovalView[] = [];
    let scanned = 0;
    while (scanned < MAX_APPROVAL_SCAN) {
      const n = Math.min(APPROVAL_SCAN_CHUNK, MAX_APPROVAL_SCAN - scanned);
      const rows = await this.deps.store.listApprovals({ ...query, ...(after ? { after } : {}) }, n);
      for (const r of rows) {
        scanned++;
        after = { createdAt: r.createdAt, id: r.id };
        if ((await this.mayApprove(a, r)).decision === 'allow') out.push(this.view(r, now));
        if (out.length >= pageSize) return { approvals: out, nextPageToken: pageToken(after) };
      }
      if (rows.length < n) return { approvals: out, nextPageToken: '' };
    }
    return { approvals: out, nextPageToken: after ? pageToken(after) : '' };
  }

  /**
   * Stores each pending request past its expiry as expired, with its `approval.expired` audit
   * record in the same transaction (housekeeping). The conditional update from pending decides:
   * with any number of replicas running this at once, each request gets exactly one record.
   */
  async expireDue(): Promise<number> {
    const { store, clock } = this.deps;
    const now = clock.now().getTime();
    let expired = 0;
    for (const r of await store.listExpiredPending(now, MAX_EXPIRED_PER_RUN)) {
      const done = await store.transaction(async (tx) => {
        if (!(await tx.expireApproval(r.id, now))) return false;
        await appendAudit(tx, {
          at: now,
          event: 'approval.expired',
          actor: { kind: 'issuer' },
          principal: { iss: r.principalIss, sub: r.principalSub },
          task: r.taskId,
          lineage: [...r.lineage],
          action: `expire ${r.action}`,
          resource: r.resource,
          decision: null,
          reason: null,
          policies: [...r.policies],
          snapshot: r.snapshot,
          evidence: null,
          created: [],
        });
        return true;
      });
      if (done) expired++;
    }
    if (expired > 0) this.changed();
    return expired;
  }

  /** The checks every decision shares: the approver, the request pending and unexpired, the task live, the `approve` policy. */
  private async decidable(id: string, token: string): Promise<{ approver: Principal; record: ApprovalRecord; decision: PolicyDecision }> {
    checkApprovalId(id);
    const approver = await this.approver(token);
    const { store, clock } = this.deps;
    const record = await store.getApproval(id);
    if (!record) throw new ApprovalError('ERR_APPROVAL_NOT_FOUND', `approval: no request ${id} that this caller may see`);
    const decision = await this.mayApprove(approver, record);
    if (decision.decision !== 'allow')
      throw new ApprovalError(
        'ERR_APPROVAL_DENIED',
        `approval: ${who(approver)} may not decide request ${id}: ${decision.reason} (snapshot ${decision.snapshot.slice(0, 16)})`,
      );
    const state = this.stateOf(record, clock.now().getTime());
    if (state !== 'pending') throw new ApprovalError('ERR_APPROVAL_CLOSED', `approval: request ${id} is ${state}`);
    await refuseEndedTask(store, record.taskId);
    return { approver, record, decision };
  }

  /** Deny: records who and why; the agent's wait ends with the reason. */
  async deny(id: string, token: string, reason: string): Promise<ApprovalView> {
    checkReason(reason, 'the denial');
    const { approver, record, decision } = await this.decidable(id, token);
    const now = this.deps.clock.now().getTime();
    const d = { state: 'denied', decidedAt: now, decidedBy: who(approver), decisionReason: reason, credentialId: null, stepUp: null } as const;
    await this.deps.store.transaction(async (tx) => {
      await refuseEndedTask(tx, record.taskId);
      if (!(await tx.decideApproval(id, d, now))) throw new ApprovalError('ERR_APPROVAL_CLOSED', `approval: request ${id} was decided or expired meanwhile`);
      await tx.recordDecision({
        at: now,
        actor: who(approver),
        principal: `${record.principalIss}#${record.principalSub}`,
        action: `approve ${id}`,
        decision: 'deny',
        snapshot: decision.snapshot,
        policies: decision.policies,
        reason,
      });
      await appendAudit(tx, { ...this.auditOf(record, approver, now, decision), event: 'approval.denied', decision: 'deny', reason, created: [] });
    });
    this.changed();
    return this.view({ ...record, ...d }, now);
  }

  private auditOf(r: ApprovalRecord, approver: Principal, now: number, decision: PolicyDecision) {
    return {
      at: now,
      actor: { kind: 'principal', iss: approver.iss, sub: approver.sub } as const,
      principal: { iss: r.principalIss, sub: r.principalSub },
      task: r.taskId,
      lineage: [...r.lineage],
      action: `approve ${r.action}`,
      resource: r.resource,
      policies: decision.policies,
      snapshot: decision.snapshot,
      evidence: null,
    };
  }

  /**
   * Whether this token shows a sign-in recent enough to register a first passkey: its
   * `auth_time` at most approvals.registration_max_auth_age ago (and not in the future).
   * A token without `auth_time` is refused: the issuer cannot tell a fresh sign-in from a stolen
   * token replayed later.
   */
  private freshSignIn(a: Principal, now: number): void {
    const maxAge = this.deps.settings.registrationMaxAuthAgeMs ?? DEFAULT_REGISTRATION_MAX_AUTH_AGE_MS;
    const nowS = Math.floor(now / 1000);
    const at = a.authTime;
    if (at === undefined)
      throw new ApprovalError(
        'ERR_APPROVAL_DENIED',
        `approval: ${who(a)} has no passkey yet, and the first one needs a fresh sign-in: the ID token has no auth_time`,
      );
    if (at > nowS + TOKEN_SKEW_S || (nowS - at) * 1000 > maxAge)
      throw new ApprovalError(
        'ERR_APPROVAL_DENIED',
        `approval: ${who(a)} has no passkey yet, and the first one needs a sign-in within the last ${Math.round(maxAge / 1000)} s (auth_time ${at}): sign in again`,
      );
  }

  /**
   * Records a ceremony, in one transaction: forgets expired ones, then this owner's oldest past
   * the per-approver cap (never another's), and refuses when the ceremonies in flight reach the
   * overall bound.
   */
  private async recordCeremony(c: PasskeyCeremonyRecord, now: number): Promise<void> {
    const limits = this.deps.registrationLimits ?? { total: MAX_PENDING_REGISTRATIONS, perApprover: MAX_PENDING_REGISTRATIONS_PER_APPROVER };
    await this.deps.store.transaction(async (tx) => {
      await tx.prunePasskeyCeremonies(now);
      const mine = await tx.listPasskeyCeremonies(c.owner, now);
      for (const old of mine.slice(0, Math.max(0, mine.length - limits.perApprover + 1))) await tx.takePasskeyCeremony(old.challenge);
      const inFlight = await tx.countPasskeyCeremonies(now);
      if (inFlight >= limits.total) throw new LimitError(`approval: ${inFlight} passkey registrations are in flight; try again in a few minutes`);
      await tx.putPasskeyCeremony(c);
    });
  }

  /**
   * Registration options for a passkey bound to this approver's OIDC identity (user
   * verification required). An approver who has passkeys also gets request options for them,
   * over the SHA-256 of a statement naming this registration: one of them must sign it
   * (finishRegistration). The first passkey needs a fresh sign-in instead.
   */
  async beginRegistration(token: string): Promise<RegistrationBegun> {
    const a = await this.approver(token);
    const rp = this.relyingParty();
    const now = this.deps.clock.now().getTime();
    const existing = await this.deps.store.listPasskeys(a.iss, a.sub);
    if (existing.length >= MAX_PASSKEYS_PER_APPROVER) invalid(`an approver may register at most ${MAX_PASSKEYS_PER_APPROVER} passkeys`);
    if (existing.length === 0) this.freshSignIn(a, now);
    const challenge = randomBytes(32);
    const options = await generateRegistrationOptions({
      rpName: rp.rpName,
      rpID: rp.rpId,
      userName: a.sub,
      userDisplayName: who(a),
      // A stable, opaque user handle: no personal data in the authenticator.
      userID: createHash('sha256').update(who(a)).digest(),
      challenge,
      attestationType: 'none',
      excludeCredentials: existing.map((k) => ({ id: k.id })),
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
      supportedAlgorithmIDs: PASSKEY_ALGORITHMS,
      timeout: REGISTRATION_TTL_MS,
    });
    const expiresAt = now + REGISTRATION_TTL_MS;
    const statement =
      existing.length === 0
        ? undefined
        : passkeyRegistrationStatement({
            iss: this.issuerId(),
            owner: { iss: a.iss, sub: a.sub },
            challenge: challenge.toString('base64url'),
            rpId: rp.rpId,
            origin: rp.origin,
            exp: Math.floor(expiresAt / 1000),
          });
    await this.recordCeremony(
      {
        challenge: challenge.toString('base64url'),
        owner: who(a),
        statement: statement ? passkeyRegistrationBytes(statement).toString('utf8') : null,
        createdAt: now,
        expiresAt,
      },
      now,
    );
    if (!statement) return { options: JSON.stringify(options) };
    const authorization = await generateAuthenticationOptions({
      rpID: rp.rpId,
      challenge: new Uint8Array(passkeyRegistrationChallenge(statement)),
      allowCredentials: existing.map((k) => ({ id: k.id })),
      userVerification: 'required',
      timeout: REGISTRATION_TTL_MS,
    });
    return {
      options: JSON.stringify(options),
      authorization: { options: JSON.stringify(authorization), statement: passkeyRegistrationBytes(statement).toString('utf8') },
    };
  }

  /**
   * UNTRUSTED: the registration response's client data. The ceremony it names, taken out of the
   * store whatever happens next (one challenge, one try, on any replica); refused unless it is
   * this approver's and live.
   */
  private async takeRegistration(response: RegistrationResponseJSON, owner: string, now: number): Promise<{ challenge: string; pending: PendingRegistration }> {
    let challenge: string;
    try {
      challenge = registrationChallengeOf(response.response?.clientDataJSON);
    } catch (e) {
      return webauthnFailed(`registration rejected: ${(e as Error).message}`, e);
    }
    // Bounded before it reaches the store: a challenge is 43 base64url characters.
    if (!/^[A-Za-z0-9_-]{43}$/.test(challenge)) return webauthnFailed('registration rejected: the challenge is not one this issuer gives');
    const c = await this.deps.store.takePasskeyCeremony(challenge);
    if (!c || c.owner !== owner || c.expiresAt <= now)
      return webauthnFailed('registration rejected: the challenge is not one given to this approver, or it expired or was used');
    return {
      challenge,
      pending: {
        owner: c.owner,
        expiresAt: c.expiresAt,
        ...(c.statement !== null ? { statement: JSON.parse(c.statement) as PasskeyRegistrationStatement } : {}),
      },
    };
  }

  /**
   * The authorizing assertion of a registration for an owner who has passkeys: one of theirs,
   * over the SHA-256 of the statement given at begin, user verified, its sign count moved on.
   * Returns the passkey and its new count (moved in the registering transaction).
   */
  private authorizingPasskey(
    authorizationJson: string,
    statement: PasskeyRegistrationStatement,
    existing: readonly PasskeyRecord[],
  ): { key: PasskeyRecord; newCount: number } {
    if (authorizationJson === '')
      throw new ApprovalError('ERR_APPROVAL_DENIED', 'approval: adding a passkey needs an assertion from one of the approver’s registered passkeys');
    const response = parseJsonDoc<AuthenticationResponseJSON>(authorizationJson, 'the authorizing assertion');
    if (typeof response.id !== 'string' || response.id === '') invalid('the authorizing assertion names no credential');
    const key = existing.find((k) => k.id === response.id);
    if (!key) return webauthnFailed(`credential ${response.id.slice(0, 64)} is not a passkey registered to ${statement.owner.iss}#${statement.owner.sub}`);
    const newCount = verifyRegistrationAuthorization({
      response: response.response as Partial<AuthenticationResponseJSON['response']> | undefined,
      statement,
      credentialPublicKey: key.publicKey,
      storedSignCount: key.signCount,
    });
    return { key, newCount };
  }

  /**
   * Verifies a registration response for a challenge this approver was given, and stores the
   * passkey: authorized by an assertion of one of the approver's passkeys (over the statement of
   * beginRegistration) when they have one, by a fresh sign-in when it is their first. The cap and
   * the rule are checked again in the transaction that stores it.
   */
  async finishRegistration(token: string, responseJson: string, authorizationJson = ''): Promise<string> {
    const a = await this.approver(token);
    const response = parseJsonDoc<RegistrationResponseJSON>(responseJson, 'the registration response');
    bounded(authorizationJson, 'the authorizing assertion');
    const rp = this.relyingParty();
    const now = this.deps.clock.now().getTime();
    // One ceremony, one try: the challenge is gone whatever follows, verified or not.
    const { challenge, pending } = await this.takeRegistration(response, who(a), now);
    const existing = await this.deps.store.listPasskeys(a.iss, a.sub);
    let authorizer: { key: PasskeyRecord; newCount: number } | undefined;
    if (existing.length === 0) {
      if (authorizationJson !== '') invalid('an authorizing assertion is for adding a passkey; this approver has none');
      this.freshSignIn(a, now);
    } else {
      // Begun as a first passkey, and meanwhile another was registered: no statement was signed.
      if (!pending.statement) throw new ApprovalError('ERR_APPROVAL_DENIED', 'approval: a passkey was registered meanwhile; begin again and authorize with it');
      authorizer = this.authorizingPasskey(authorizationJson, pending.statement, existing);
    }
    let out;
    try {
      out = await verifyRegistrationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: rp.origin,
        expectedRPID: rp.rpId,
        requireUserVerification: true,
        supportedAlgorithmIDs: PASSKEY_ALGORITHMS,
      });
    } catch (e) {
      return webauthnFailed(`registration rejected: ${(e as Error).message}`, e);
    }
    if (!out.verified || !out.registrationInfo) return webauthnFailed('registration did not verify');
    const cred = out.registrationInfo.credential;
    const record: PasskeyRecord = {
      id: cred.id,
      ownerIss: a.iss,
      ownerSub: a.sub,
      publicKey: Buffer.from(cred.publicKey),
      signCount: cred.counter,
      createdAt: now,
      usedAt: null,
    };
    await this.deps.store.transaction(async (tx) => {
      const current = await tx.listPasskeys(a.iss, a.sub);
      // The cap, again where it counts: concurrent ceremonies each passed it at begin.
      if (current.length >= MAX_PASSKEYS_PER_APPROVER) invalid(`an approver may register at most ${MAX_PASSKEYS_PER_APPROVER} passkeys`);
      // A first passkey registered concurrently: this one would have needed its assertion.
      if (!authorizer && current.length > 0)
        throw new ApprovalError('ERR_APPROVAL_DENIED', 'approval: a passkey was registered meanwhile; begin again and authorize with it');
      if (await tx.getPasskey(record.id)) throw new WebAuthnError('approval(webauthn): this credential is already registered');
      // The authorizing assertion is used once: its sign count moves from what was read.
      if (authorizer && !(await tx.usePasskey(authorizer.key.id, authorizer.key.signCount, authorizer.newCount, now)))
        throw new WebAuthnError('approval(webauthn): the authorizing passkey was used concurrently (sign count moved)');
      await tx.putPasskey(record);
      await appendAudit(tx, {
        at: now,
        event: 'passkey.registered',
        actor: { kind: 'principal', iss: a.iss, sub: a.sub },
        // The owner's record: it shows in their own audit list (a passkey they did not add is their alarm).
        principal: { iss: a.iss, sub: a.sub },
        task: null,
        lineage: [],
        action: 'register passkey',
        resource: `passkey:${record.id}`,
        decision: null,
        reason: authorizer ? `authorized by passkey:${authorizer.key.id}` : `first passkey: sign-in at auth_time ${a.authTime}`,
        policies: [],
        snapshot: null,
        evidence: null,
        created: [record.id],
      });
    });
    return record.id;
  }

  /**
   * The approval request this approver's passkey signs (docs/writ-format.md §The approval
   * request): the agent, task, principal, permission and reason of the stored escalation, and
   * the approver. Rebuilt the same way at BeginApproval and at Approve; the approval confers
   * nothing past the task's end and is never inherited.
   */
  private approvalRequestFor(r: ApprovalRecord, approver: Principal): ApprovalRequest {
    const doc = JSON.parse(r.request) as ApprovalRequestDoc;
    const task = { id: doc.task.id, goal: doc.task.goal, exp: doc.task.exp };
    const agent = {
      iss: this.issuerId(),
      sub: r.actor,
      cnf: { jkt: r.actorJkt },
      task,
      principal: { iss: r.principalIss, sub: r.principalSub },
      lineage: r.lineage,
    };
    return approvalRequestFor(agent, {
      id: r.id,
      permission: { action: r.action, resource: r.resource },
      reason: r.reason,
      approver: { iss: approver.iss, sub: approver.sub },
      inherit: false,
    });
  }

  /** WebAuthn request options whose challenge is the SHA-256 of the canonical approval request. */
  async beginApproval(id: string, token: string): Promise<{ options: string; request: string; view: ApprovalView }> {
    const { approver, record } = await this.decidable(id, token);
    const keys = await this.deps.store.listPasskeys(approver.iss, approver.sub);
    if (keys.length === 0) throw new ApprovalError('ERR_APPROVAL_DENIED', `approval: ${who(approver)} has no passkey; register one in the console first`);
    const rp = this.relyingParty();
    const req = this.approvalRequestFor(record, approver);
    const challenge = approvalChallenge(req);
    const options = await generateAuthenticationOptions({
      rpID: rp.rpId,
      challenge: new Uint8Array(challenge),
      allowCredentials: keys.map((k) => ({ id: k.id })),
      userVerification: 'required',
      timeout: 120_000,
    });
    const view = { ...this.view(record, this.deps.clock.now().getTime()), challenge: challenge.toString('base64url') };
    return { options: JSON.stringify(options), request: canonicalize(req), view };
  }

  /**
   * Approve: the assertion must be over this request's digest, from the approver's own
   * registered passkey, with the configured origin and RP ID, user verification, and a sign
   * count that moved forward; the `approve` policy must name the approver. Issues the step-up
   * grant in the transaction that decides the request and records it.
   */
  async approve(id: string, token: string, assertionJson: string): Promise<ApprovalView> {
    const { approver, record, decision } = await this.decidable(id, token);
    const response = parseJsonDoc<AuthenticationResponseJSON>(assertionJson, 'the assertion');
    if (typeof response.id !== 'string' || response.id === '') invalid('the assertion names no credential');
    const { store, clock, ca } = this.deps;
    const key = await store.getPasskey(response.id);
    if (!key || key.ownerIss !== approver.iss || key.ownerSub !== approver.sub)
      return webauthnFailed(`credential ${response.id.slice(0, 64)} is not a passkey registered to ${who(approver)}`);
    const rp = this.relyingParty();
    const req = this.approvalRequestFor(record, approver);
    const challenge = approvalChallenge(req).toString('base64url');
    let out;
    try {
      // The library checks the ceremony (type, challenge, origin, RP ID hash, flags, counter) and
      // the signature; mintStepUpGrant checks the assertion again with node:crypto before signing.
      out = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: rp.origin,
        expectedRPID: rp.rpId,
        credential: { id: key.id, publicKey: new Uint8Array(key.publicKey), counter: key.signCount },
        requireUserVerification: true,
      });
    } catch (e) {
      return webauthnFailed(`assertion rejected: ${(e as Error).message}`, e);
    }
    if (!out.verified || !out.authenticationInfo.userVerified) return webauthnFailed('assertion did not verify with user verification');
    const newCount = out.authenticationInfo.newCounter;
    const now = clock.now();
    const nowS = Math.floor(now.getTime() / 1000);
    const signer = ca.writSigner();
    const exp = Math.min(req.exp, Math.floor(signer.notAfter.getTime() / 1000));
    if (exp <= nowS) throw new ApprovalError('ERR_APPROVAL_CLOSED', `approval: task ${record.taskId} ends before a step-up grant could be valid`);
    const b64 = (s: string) => Buffer.from(s, 'base64url');
    const stepUp = await mintStepUpGrant(
      {
        request: req,
        assertion: {
          authenticatorData: b64(response.response.authenticatorData),
          clientDataJSON: b64(response.response.clientDataJSON),
          signature: b64(response.response.signature),
          credentialId: b64(key.id),
        },
        credentialPublicKey: key.publicKey,
        rpId: rp.rpId,
        origin: rp.origin,
        now: nowS,
        exp,
      },
      signer.signer,
      signer.kid,
    );
    const d = { state: 'approved', decidedAt: now.getTime(), decidedBy: who(approver), decisionReason: null, credentialId: key.id, stepUp } as const;
    await store.transaction(async (tx) => {
      await refuseEndedTask(tx, record.taskId);
      // The sign count moves from what was read; a concurrent or replayed use of the same count loses.
      if (!(await tx.usePasskey(key.id, key.signCount, newCount, now.getTime())))
        throw new WebAuthnError('approval(webauthn): the passkey was used concurrently (sign count moved)');
      if (!(await tx.decideApproval(record.id, d, now.getTime())))
        throw new ApprovalError('ERR_APPROVAL_CLOSED', `approval: request ${record.id} was decided or expired meanwhile`);
      await tx.recordDecision({
        at: now.getTime(),
        actor: who(approver),
        principal: `${record.principalIss}#${record.principalSub}`,
        action: `approve ${record.id}`,
        decision: 'allow',
        snapshot: decision.snapshot,
        policies: decision.policies,
        reason: 'approved with a passkey',
      });
      await appendAudit(tx, {
        ...this.auditOf(record, approver, now.getTime(), decision),
        event: 'approval.granted',
        decision: 'allow',
        reason: null,
        created: [record.id],
      });
    });
    this.changed();
    return this.view({ ...record, ...d }, now.getTime());
  }

  /**
   * The permissions step-up grants add to a renewal's writ: each signed by this issuer, the
   * one it issued for that approval (exact bytes), approved, for this agent, key, lineage and
   * task, unexpired. Inheritance by children is refused (no approval says so today). Runs
   * inside the issuance transaction; the task's end is checked there with the chain's revocations.
   */
  async stepUpsFor(
    tx: Pick<StoreTx, 'getApproval'>,
    compacts: readonly string[],
    who: { spiffeId: string; jkt: string; lineage: readonly string[]; taskId: string },
    now: number,
  ): Promise<Permission[]> {
    if (compacts.length > MAX_STEP_UPS) throw new ApprovalError('ERR_APPROVAL_DENIED', `approval: at most ${MAX_STEP_UPS} step-up grants per renewal`);
    const added: Permission[] = [];
    const seen = new Set<string>();
    for (const compact of compacts) {
      bounded(compact, 'a step-up grant');
      // The whole offline check a relying party makes, assertion included, then the issuer's own record.
      const g = verifyStepUpGrant(compact, {
        issuer: this.issuerId(),
        writKeys: this.deps.ca.bundle().writAuthorities ?? new Map(),
        now: new Date(now),
        expectedTask: who.taskId,
        agentSub: who.spiffeId,
        agentJkt: who.jkt,
        agentGrant: who.lineage[who.lineage.length - 1]!,
      });
      const deny = (m: string): never => {
        throw new ApprovalError('ERR_APPROVAL_DENIED', `approval: step-up grant for approval ${g.approvalId}: ${m}`);
      };
      if (seen.has(g.approvalId)) deny('presented twice');
      seen.add(g.approvalId);
      // Never inherited: the approver approved this agent, on this exact lineage (checked through the leaf grant id).
      if (g.inherit) deny('inherited approvals are not accepted by this issuer');
      const r = await tx.getApproval(g.approvalId);
      if (r?.state !== 'approved' || r.stepUp !== compact || r.lineage.join(' ') !== who.lineage.join(' '))
        deny('is not one this issuer issued and recorded for this lineage');
      added.push(g.permission);
    }
    return added;
  }
}

/** A ListApprovals principal filter: ISSUER#SUBJECT, split at the first '#' (an OIDC issuer URL has no fragment). */
function parsePrincipalFilter(p: string): { iss: string; sub: string } {
  const i = p.indexOf('#');
  if (Buffer.byteLength(p) > MAX_PRINCIPAL_FILTER_BYTES || i <= 0 || i === p.length - 1 || /[\x00-\x1f\x7f]/.test(p))
    return invalid(`the principal filter must be ISSUER#SUBJECT, at most ${MAX_PRINCIPAL_FILTER_BYTES} bytes`);
  return { iss: p.slice(0, i), sub: p.slice(i + 1) };
}

/** The page token: base64url of `CREATED_AT:ID`, the last request the previous page read (no secret: it only says where to resume). */
const pageToken = (p: { createdAt: number; id: string }): string => Buffer.from(`${p.createdAt}:${p.id}`).toString('base64url');

/** UNTRUSTED (a caller's page_token): parsed strictly, canonical base64url, a safe integer and an approval id. */
export function parsePageToken(t: string): { createdAt: number; id: string } {
  const bad = (): never => invalid('the page token is not one this issuer issued');
  if (t.length > 64 || !/^[A-Za-z0-9_-]+$/.test(t)) return bad();
  const text = Buffer.from(t, 'base64url').toString('latin1');
  const m = /^(0|[1-9][0-9]{0,15}):([A-Za-z0-9_-]{22})$/.exec(text);
  if (!m || Buffer.from(text, 'latin1').toString('base64url') !== t) return bad();
  const createdAt = Number(m[1]);
  if (!Number.isSafeInteger(createdAt)) return bad();
  return { createdAt, id: m[2]! };
}

async function refuseEndedTask(store: Pick<StoreTx, 'findRevocations'>, taskId: string): Promise<void> {
  const hit = (await store.findRevocations([`task:${taskId}`]))[0];
  if (hit) throw new ApprovalError('ERR_APPROVAL_CLOSED', `approval: task ${taskId} has ended (by ${hit.actor}${hit.reason ? `: ${hit.reason}` : ''})`);
}
