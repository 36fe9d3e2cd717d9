/**
 * CreateGrant: a principal, proven by an OIDC token (RFC 8693 subject_token), asks for a root
 * grant for a task. Policy (Cedar, the active snapshot) decides whether this principal may
 * delegate each permission of the scope; every decision is recorded, allowed or not. The
 * grant is signed by the issuer's writ key and stored in the same transaction as the decision.
 */
import { appendAudit } from '../audit/log.js';
import { DelegationError, LimitError, RevocationError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { CaManager } from '../ca/manager.js';
import { parsePermissions, type Permission } from '../delegation/scope.js';
import { MAX_DELEGATION_DEPTH, MAX_GOAL_BYTES, TASK_ID, newGrantId, parseGrant, signRootGrant, type GrantClaims } from '../delegation/grant.js';
import { refusal, type PolicyEngine } from '../policy/engine.js';
import { delegateRequests } from '../policy/requests.js';
import type { PrincipalVerifier } from '../principal/oidc.js';
import { trustDomainId } from '../spiffe/id.js';
import { isJkt } from '../jose/jws.js';
import type { GrantRecord, Store } from '../store/store.js';
import type { PolicySnapshots } from './policies.js';

export interface CreateGrantRequest {
  readonly subjectToken: string;
  readonly subjectTokenType: string;
  readonly taskId: string;
  readonly goal: string;
  /** Seconds; 0 means the configured default. */
  readonly ttlSeconds: number;
  readonly scope: readonly Permission[];
  readonly boundaries: readonly Permission[];
  readonly escalate: readonly Permission[];
  readonly maxDepth: number;
  readonly delegateJkt: string;
}

export interface CreatedGrant {
  readonly grant: string;
  readonly jti: string;
  readonly expiresAt: number;
  readonly principal: { iss: string; sub: string };
  readonly policies: readonly string[];
  readonly snapshot: string;
}

/** The store's record of a grant the issuer signed or accepted in a chain. */
export function grantRecord(claims: GrantClaims, compact: string, principalGroups: readonly string[], now: Date): GrantRecord {
  return {
    jti: claims.jti,
    issuer: claims.iss,
    rid: claims.rid,
    depth: claims.depth,
    taskId: claims.task.id,
    principalIss: claims.principal.iss,
    principalSub: claims.principal.sub,
    principalGroups,
    delegateJkt: claims.dlg.jkt,
    expiresAt: claims.exp * 1000,
    compact,
    createdAt: now.getTime(),
    revokedAt: null,
  };
}

export class GrantIssuer {
  constructor(
    private readonly deps: {
      ca: CaManager;
      store: Store;
      clock: Clock;
      principals: PrincipalVerifier;
      policies: PolicySnapshots;
      engine: PolicyEngine;
      settings: { defaultTtlMs: number; maxTtlMs: number };
    },
  ) {}

  async create(r: CreateGrantRequest): Promise<CreatedGrant> {
    const { ca, store, clock, principals, policies, engine, settings } = this.deps;
    if (!principals.configured) throw new DelegationError('delegation: no principal issuers are configured (principals: in the server config)');
    const principal = await principals.verify(r.subjectToken, r.subjectTokenType);
    if (!TASK_ID.test(r.taskId))
      throw new DelegationError('delegation: task id must be 1..128 ASCII letters, digits or . _ : - (starting with a letter or digit)');
    if (r.goal === '' || Buffer.byteLength(r.goal) > MAX_GOAL_BYTES) throw new DelegationError(`delegation: task goal must be 1..${MAX_GOAL_BYTES} bytes`);
    const ttlMs = r.ttlSeconds === 0 ? settings.defaultTtlMs : r.ttlSeconds * 1000;
    if (!Number.isSafeInteger(r.ttlSeconds) || r.ttlSeconds < 0 || ttlMs > settings.maxTtlMs)
      throw new LimitError(`delegation: task lifetime must be at most ${settings.maxTtlMs / 1000}s`);
    const scope = parsePermissions(r.scope, 'scope');
    if (scope.length === 0) throw new DelegationError('delegation: the scope must hold at least one permission');
    const boundaries = parsePermissions(r.boundaries, 'boundaries');
    const escalate = parsePermissions(r.escalate, 'escalate');
    if (!Number.isInteger(r.maxDepth) || r.maxDepth < 0 || r.maxDepth > MAX_DELEGATION_DEPTH)
      throw new LimitError(`delegation: max depth must be 0..${MAX_DELEGATION_DEPTH}`);
    if (!isJkt(r.delegateJkt))
      throw new DelegationError('delegation: the delegate key must be an RFC 7638 SHA-256 thumbprint (43 base64url characters; `writ agent keygen` prints it)');

    const snapshot = await policies.active();
    const now = clock.now();
    const nowS = Math.floor(now.getTime() / 1000);
    const signer = ca.writSigner();
    const exp = Math.min(Math.floor((now.getTime() + ttlMs) / 1000), Math.floor(signer.notAfter.getTime() / 1000));
    const task = { id: r.taskId, goal: r.goal, exp };
    const decision = engine.decideAll(snapshot, delegateRequests(principal, scope, { id: task.id, goal: task.goal, lifetimeSeconds: exp - nowS }, r.maxDepth));
    const who = `${principal.iss}#${principal.sub}`;
    const record = {
      at: now.getTime(),
      actor: who,
      principal: who,
      action: `delegate task ${task.id}`,
      decision: decision.decision,
      snapshot: snapshot.digest,
      policies: decision.policies,
      reason: decision.reason,
    };
    const audited = {
      at: now.getTime(),
      actor: { kind: 'principal', iss: principal.iss, sub: principal.sub } as const,
      principal: { iss: principal.iss, sub: principal.sub },
      task: task.id,
      action: record.action,
      resource: null,
      decision: decision.decision,
      policies: decision.policies,
      snapshot: snapshot.digest,
      evidence: null,
    };
    if (decision.decision !== 'allow') {
      const refused = refusal(decision, `delegating this scope for task ${task.id}`);
      await store.transaction(async (tx) => {
        await tx.recordDecision(record);
        const event = decision.decision === 'escalate' ? 'grant.escalated' : 'grant.denied';
        await appendAudit(tx, { ...audited, event, lineage: [], reason: refused.code, created: [] });
      });
      throw refused;
    }
    const jti = newGrantId();
    const claims: GrantClaims = {
      iss: trustDomainId(ca.trustDomain),
      jti,
      iat: nowS,
      exp,
      rid: jti,
      depth: 0,
      max_depth: r.maxDepth,
      task,
      principal: { iss: principal.iss, sub: principal.sub },
      dlg: { jkt: r.delegateJkt },
      scope,
      boundaries,
      escalate,
      pol: { snap: snapshot.digest, decision: 'allow', policies: decision.policies },
    };
    const grant = await signRootGrant(claims, signer.signer, signer.kid);
    parseGrant(grant); // validate our own output before it leaves
    await store.transaction(async (tx) => {
      // A revoked principal makes no grants; an ended task takes none; a revoked key receives none;
      // a task id is one principal's.
      const hit = (await tx.findRevocations([`principal:${who}`, `task:${task.id}`, `key:${r.delegateJkt}`]))[0];
      if (hit) {
        const what =
          hit.kind === 'task'
            ? `task ${task.id} has ended`
            : hit.kind === 'key'
              ? `the delegate key ${r.delegateJkt} is revoked`
              : `principal ${who} is revoked`;
        throw new RevocationError('ERR_REVOKED', `revocation: ${what} (by ${hit.actor}${hit.reason ? `: ${hit.reason}` : ''})`);
      }
      const known = await tx.getTask(task.id);
      if (known && (known.principalIss !== principal.iss || known.principalSub !== principal.sub)) {
        throw new DelegationError(`delegation: task id ${task.id} belongs to another principal; choose another id`);
      }
      if (!known) {
        await tx.createTask({
          id: task.id,
          principalIss: principal.iss,
          principalSub: principal.sub,
          goal: task.goal,
          expiresAt: exp * 1000,
          createdAt: now.getTime(),
          endedAt: null,
          endedBy: null,
          endReason: null,
        });
      } else await tx.extendTask(task.id, exp * 1000);
      await tx.recordDecision(record);
      await tx.putGrant(grantRecord(claims, grant, principal.groups, now));
      await appendAudit(tx, { ...audited, event: 'grant.created', lineage: [jti], reason: null, created: [jti] });
    });
    return { grant, jti, expiresAt: exp, principal: claims.principal, policies: decision.policies, snapshot: snapshot.digest };
  }
}
