/**
 * writ.v1.ConsoleService (proto/writ/v1/console.proto): reads over the store for the web console,
 * and revocation through the same Revocations logic RevocationService.Revoke uses, with the
 * session's human as the revoker. Every handler gets the session the HTTP layer authenticated
 * (routes.ts); who sees what: an operator everything, anyone else only their own tasks and
 * records. Errors are writ errors, mapped to Connect codes by the one table (server/status.ts).
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import type { Logger } from 'pino';
import type { AuditLog } from '../../audit/log.js';
import { encodeRecord } from '../../audit/record.js';
import type { CaManager } from '../../ca/manager.js';
import { parseGrantCached } from '../../delegation/grant.js';
import { AuditError, RevocationError, TaskError } from '../../errors.js';
import { type ConsoleService, GetTaskTreeResponseSchema, TaskSummarySchema, type TaskSummary } from '../../gen/writ/v1/console_pb.js';
import type { Revocations, Revoker } from '../../issuance/revocations.js';
import type { Store, TaskRecord } from '../../store/store.js';
import { toGrpcFailure } from '../status.js';
import { SESSION_COOKIE, setCookie, type ConsoleSession } from './sessions.js';

/** Writs and grants one tree shows at most (a task with more is shown truncated). */
export const MAX_TREE_WRITS = 20_000;
/** Escalation requests one tree shows at most. */
export const MAX_TREE_APPROVALS = 500;
/** Tasks one listing returns at most, and the most a principal's listing scans. */
export const MAX_TASKS_LISTED = 500;
export const MAX_TASKS_SCANNED = 5_000;
export const MAX_AUDIT_LISTED = 200;
/** Kinds a console user may name (an operator every one; the Revocations logic decides the rest). */
export const CONSOLE_REVOKE_KINDS = ['grant', 'task', 'agent', 'writ', 'platform', 'principal', 'key', 'entry'] as const;

/** The session of the call (set by the HTTP layer after the cookie, origin and content type checks). */
export const kSession = createContextKey<ConsoleSession | undefined>(undefined, { description: 'console session' });
/** The cookie value of the call, for SignOut. */
export const kSessionToken = createContextKey<string | undefined>(undefined, { description: 'console session token' });

export interface ConsoleServiceDeps {
  readonly store: Store;
  readonly ca: Pick<CaManager, 'trustDomain'>;
  readonly audit: AuditLog;
  readonly revocations: Pick<Revocations, 'revoke'>;
  readonly logger: Logger;
  readonly now: () => number;
  readonly version: string;
  readonly datastore: string;
  /** Forgets a session (SignOut). */
  readonly endSession: (token: string | undefined) => void;
}

const principalKey = (s: ConsoleSession) => `${s.principal.iss}#${s.principal.sub}`;

function session(ctx: HandlerContext): ConsoleSession {
  const s = ctx.values.get(kSession);
  if (!s) throw new ConnectError('console: sign in first', Code.Unauthenticated);
  return s;
}

function operatorOnly(s: ConsoleSession, what: string): void {
  if (!s.operator) throw new ConnectError(`console: ${what} is for operators`, Code.PermissionDenied);
}

function taskPb(t: TaskRecord): TaskSummary {
  return create(TaskSummarySchema, {
    id: t.id,
    principal: `${t.principalIss}#${t.principalSub}`,
    goal: t.goal,
    createdAt: BigInt(t.createdAt),
    expiresAt: BigInt(t.expiresAt),
    endedAt: BigInt(t.endedAt ?? 0),
    endedBy: t.endedBy ?? '',
    endReason: t.endReason ?? '',
  });
}

const perms = (ps: readonly { action: string; resource: string }[] | undefined) => (ps ?? []).map((p) => `${p.action} ${p.resource}`);

/** Wraps a handler: writ errors become Connect errors through the one status table, logged once. */
export function mapped<A extends unknown[], R>(logger: Logger, name: string, fn: (...a: A) => Promise<R>): (...a: A) => Promise<R> {
  return async (...a) => {
    try {
      return await fn(...a);
    } catch (e) {
      if (e instanceof ConnectError) throw e;
      const f = toGrpcFailure(e);
      logger.warn({ rpc: `console.${name}`, code: f.writCode, reason: f.internal, requestId: f.requestId }, 'call failed');
      // Connect codes are gRPC's status numbers.
      throw new ConnectError(f.details, f.code as unknown as Code, { 'writ-error-code': f.writCode });
    }
  };
}

export function consoleService(deps: ConsoleServiceDeps): ServiceImpl<typeof ConsoleService> {
  const { store, logger } = deps;

  async function ownTask(s: ConsoleSession, id: string): Promise<TaskRecord> {
    if (id === '' || id.length > 128) throw new TaskError('ERR_TASK_INVALID', 'console: a task id is 1..128 characters');
    const t = await store.getTask(id);
    // A principal learns nothing of another's task, not even that it exists.
    if (!t || (!s.operator && `${t.principalIss}#${t.principalSub}` !== principalKey(s))) throw new TaskError('ERR_TASK_NOT_FOUND', `console: no task ${id}`);
    return t;
  }

  return {
    getSession: mapped(logger, 'GetSession', async (_req, ctx) => {
      const s = session(ctx);
      return { issuer: s.principal.iss, subject: s.principal.sub, groups: [...s.principal.groups], operator: s.operator, expiresAt: BigInt(s.expiresAt) };
    }),

    signOut: mapped(logger, 'SignOut', async (_req, ctx) => {
      session(ctx);
      deps.endSession(ctx.values.get(kSessionToken));
      ctx.responseHeader.append('set-cookie', setCookie(SESSION_COOKIE, '', 0, 'Strict'));
      return {};
    }),

    getOverview: mapped(logger, 'GetOverview', async (_req, ctx) => {
      operatorOnly(session(ctx), 'the overview');
      const keys = await store.listCaKeys();
      const kindPurpose: Record<string, string> = { 'x509-root': 'x509 root', 'x509-intermediate': 'x509 intermediate', jwt: 'jwt-svid', writ: 'writ' };
      return {
        version: deps.version,
        trustDomain: deps.ca.trustDomain,
        keys: keys.map((k) => ({ purpose: kindPurpose[k.kind] ?? k.kind, id: k.id, state: k.state, notAfter: BigInt(k.notAfter) })),
        auditSize: BigInt(await store.getAuditSize()),
        datastore: deps.datastore,
        tasks: BigInt((await store.listTasks(MAX_TASKS_SCANNED)).length),
        issued: BigInt(await store.countIssued()),
        now: BigInt(deps.now()),
      };
    }),

    listTasks: mapped(logger, 'ListTasks', async (req, ctx) => {
      const s = session(ctx);
      const limit = Math.min(req.limit || 100, MAX_TASKS_LISTED);
      const rows = s.operator
        ? await store.listTasks(limit)
        : (await store.listTasks(MAX_TASKS_SCANNED)).filter((t) => `${t.principalIss}#${t.principalSub}` === principalKey(s)).slice(0, limit);
      return { tasks: rows.map(taskPb) };
    }),

    getTaskTree: mapped(logger, 'GetTaskTree', async (req, ctx) => {
      const t = await ownTask(session(ctx), req.taskId);
      const [grants, writs, approvals] = await Promise.all([
        store.listGrantsByTask(t.id, MAX_TREE_WRITS + 1),
        store.listWritsByTask(t.id, MAX_TREE_WRITS + 1),
        store.listApprovals({ taskId: t.id }, MAX_TREE_APPROVALS),
      ]);
      const now = deps.now();
      return create(GetTaskTreeResponseSchema, {
        task: taskPb(t),
        truncated: grants.length > MAX_TREE_WRITS || writs.length > MAX_TREE_WRITS,
        now: BigInt(now),
        approvals: approvals.map((a) => ({
          id: a.id,
          actor: a.actor,
          actorJkt: a.actorJkt,
          permission: `${a.action} ${a.resource}`,
          state: a.state === 'pending' && a.expiresAt <= now ? 'expired' : a.state,
          decidedBy: a.decidedBy ?? '',
          decidedAt: BigInt(a.decidedAt ?? 0),
          expiresAt: BigInt(a.expiresAt),
        })),
        grants: grants.slice(0, MAX_TREE_WRITS).map((g) => {
          const c = parseGrantCached(g.compact).claims;
          return {
            jti: g.jti,
            depth: g.depth,
            delegateJkt: g.delegateJkt,
            scope: perms(c.scope),
            boundaries: perms(c.boundaries),
            escalate: perms(c.escalate),
            expiresAt: BigInt(g.expiresAt),
            revokedAt: BigInt(g.revokedAt ?? 0),
            fromSub: c.from?.sub ?? '',
          };
        }),
        writs: writs.slice(0, MAX_TREE_WRITS).map((w) => ({
          jti: w.jti,
          spiffeId: w.spiffeId,
          jkt: w.jkt,
          evidenceType: w.evidenceType,
          platform: w.platform,
          entryId: w.entryId,
          evidenceDigest: w.evidenceDigest.toString('hex'),
          parentJti: w.parentJti ?? '',
          lineage: [...w.lineage],
          issuedAt: BigInt(w.issuedAt),
          expiresAt: BigInt(w.expiresAt),
          revokedAt: BigInt(w.revokedAt ?? 0),
        })),
      });
    }),

    revoke: mapped(logger, 'Revoke', async (req, ctx) => {
      const s = session(ctx);
      if (!(CONSOLE_REVOKE_KINDS as readonly string[]).includes(req.kind))
        throw new RevocationError('ERR_REVOCATION_INVALID', `console: cannot revoke a ${req.kind.slice(0, 32)} (want ${CONSOLE_REVOKE_KINDS.join(', ')})`);
      if (req.reason.trim() === '') throw new RevocationError('ERR_REVOCATION_INVALID', 'console: say why (a reason is required)');
      const by: Revoker = s.operator ? { kind: 'operator' } : { kind: 'principal', iss: s.principal.iss, sub: s.principal.sub };
      const reason = s.operator ? `${req.reason} (console: ${principalKey(s)})` : req.reason;
      const r = await deps.revocations.revoke(req.kind, req.target, reason, by);
      logger.info({ kind: req.kind, target: req.target, seq: r.seq, writs: r.writs, by: principalKey(s), operator: s.operator }, 'console: revoked');
      return { sequence: BigInt(r.seq), at: BigInt(r.at), writs: r.writs };
    }),

    listAuditRecords: mapped(logger, 'ListAuditRecords', async (req, ctx) => {
      const s = session(ctx);
      for (const [name, v] of [
        ['task', req.task],
        ['principal', req.principal],
        ['actor', req.actor],
      ] as const)
        if (v.length > 1024) throw new AuditError('ERR_AUDIT_RECORD_INVALID', `console: the ${name} filter is longer than 1024 characters`);
      // Records are the operator's, or the principal's own (docs/audit.md).
      if (!s.operator && req.principal !== '' && req.principal !== principalKey(s))
        throw new ConnectError("console: only operators read another principal's records", Code.PermissionDenied);
      const principal = s.operator ? req.principal : principalKey(s);
      const limit = Math.min(req.limit || 50, MAX_AUDIT_LISTED);
      const records = await deps.audit.list(
        { ...(req.task ? { task: req.task } : {}), ...(principal ? { principal } : {}), ...(req.actor ? { actor: req.actor } : {}) },
        limit,
      );
      return { records: records.map((r) => ({ seq: BigInt(r.seq), canonical: encodeRecord(r) })) };
    }),

    proveAuditRecord: mapped(logger, 'ProveAuditRecord', async (req, ctx) => {
      const s = session(ctx);
      if (req.seq > BigInt(Number.MAX_SAFE_INTEGER)) throw new AuditError('ERR_AUDIT_PROOF_INVALID', 'console: no such record');
      const seq = Number(req.seq);
      const row = await store.getAuditRecord(seq);
      if (!row) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `console: no record ${seq}`);
      if (!s.operator) {
        const r = JSON.parse(row.canonical.toString('utf8')) as { principal?: { iss: string; sub: string } | null };
        if (!r.principal || `${r.principal.iss}#${r.principal.sub}` !== principalKey(s))
          throw new AuditError('ERR_AUDIT_PROOF_INVALID', `console: no record ${seq}`);
      }
      // On demand, as AuditService.GetCheckpoint: the last checkpoint if the log has not grown.
      const c = await deps.audit.checkpoint();
      const b = await deps.audit.prove(seq, c.checkpoint.size);
      return { seq: BigInt(seq), canonical: b.record, proof: [...b.proof], size: BigInt(b.size), checkpoint: c.note, verifierKey: deps.audit.verifierKey };
    }),
  };
}
