/**
 * Tasks as an operator sees them: what a principal's root grants are for, and the delegation
 * tree under it. A tree is principal → root grant → the writs minted on it (one per agent
 * handshake or renewal) → the hop grants delegated from each writ (`from.writ`) → their writs,
 * and so on. Every node says what it is (SPIFFE ID, key, evidence type, scope) and its state:
 * live, expired, or revoked and by whom (the revocation that killed it, with actor and reason).
 * Ending a task is revoking it (issuance/revocations.ts).
 */
import { TaskError } from '../errors.js';
import type { Clock } from '../clock.js';
import { parseGrantCached, TASK_ID } from '../delegation/grant.js';
import type { Permission } from '../delegation/scope.js';
import type { GrantRecord, RevocationRecord, StoreTx, TaskRecord, WritRecord } from '../store/store.js';

/** Most grants and most writs one task view reads (renewals make many writs). */
export const MAX_TASK_NODES = 2000;
/** Most tasks one listing returns. */
export const MAX_TASKS_LISTED = 1000;

export type NodeState = 'live' | 'expired' | 'revoked';

/** What killed a node: the revocation, or (when it has been pruned) just its sequence. */
export interface RevokedBy {
  readonly seq: number;
  readonly kind?: string;
  readonly target?: string;
  readonly actor?: string;
  readonly reason?: string;
  readonly at: number;
}

export interface TaskSummary {
  readonly task: TaskRecord;
  /** live: running; expired: its end passed; ended: someone ended it. */
  readonly state: 'live' | 'expired' | 'ended';
}

export interface GrantNode {
  readonly jti: string;
  readonly depth: number;
  /** The writ it was delegated from; null for a root grant (the principal's). */
  readonly fromWrit: string | null;
  /** The delegating agent (hop grants), or the principal (`iss#sub`, root grants). */
  readonly from: string;
  readonly delegateJkt: string;
  readonly scope: readonly Permission[];
  readonly boundaries: readonly Permission[];
  readonly escalate: readonly Permission[];
  readonly maxDepth: number;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly state: NodeState;
  readonly revokedBy?: RevokedBy;
}

export interface WritNode {
  readonly jti: string;
  /** The grant it was minted on (its lineage's last). */
  readonly grant: string;
  readonly spiffeId: string;
  readonly jkt: string;
  readonly evidenceType: string;
  readonly entryId: string;
  readonly platform: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly state: NodeState;
  readonly revokedBy?: RevokedBy;
}

export interface TaskTree extends TaskSummary {
  readonly grants: readonly GrantNode[];
  readonly writs: readonly WritNode[];
  /** True when the task has more grants or writs than one view shows. */
  readonly truncated: boolean;
}

const taskState = (t: TaskRecord, now: number): TaskSummary['state'] => (t.endedAt !== null ? 'ended' : t.expiresAt <= now ? 'expired' : 'live');

export class Tasks {
  constructor(
    private readonly deps: {
      store: Pick<StoreTx, 'listTasks' | 'getTask' | 'listGrantsByTask' | 'listWritsByTask' | 'findRevocations' | 'listRevocationsSince'>;
      clock: Clock;
    },
  ) {}

  async list(limit = 100): Promise<TaskSummary[]> {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_TASKS_LISTED) {
      throw new TaskError('ERR_TASK_INVALID', `task: the limit is an integer from 1 to ${MAX_TASKS_LISTED}`);
    }
    const now = this.deps.clock.now().getTime();
    return (await this.deps.store.listTasks(limit)).map((task) => ({ task, state: taskState(task, now) }));
  }

  async show(id: string): Promise<TaskTree> {
    if (!TASK_ID.test(id))
      throw new TaskError('ERR_TASK_INVALID', 'task: a task id is 1..128 ASCII letters, digits or . _ : - (starting with a letter or digit)');
    const { store } = this.deps;
    const task = await store.getTask(id);
    if (!task) throw new TaskError('ERR_TASK_NOT_FOUND', `task: no task ${id} is known to this issuer`);
    const now = this.deps.clock.now().getTime();
    const [grantRecords, writRecords] = await Promise.all([store.listGrantsByTask(id, MAX_TASK_NODES + 1), store.listWritsByTask(id, MAX_TASK_NODES + 1)]);
    const truncated = grantRecords.length > MAX_TASK_NODES || writRecords.length > MAX_TASK_NODES;
    const grants = grantRecords.slice(0, MAX_TASK_NODES);
    const writs = writRecords.slice(0, MAX_TASK_NODES);

    // Revocations that name a grant, the task or the principal directly; writs carry their own.
    const principal = `${task.principalIss}#${task.principalSub}`;
    const direct = new Map<string, RevocationRecord>();
    for (const r of await store.findRevocations([`task:${id}`, `principal:${principal}`, ...grants.map((g) => `grant:${g.jti}`)])) {
      direct.set(`${r.kind}:${r.target}`, r);
    }
    const bySeq = new Map<number, RevokedBy>();
    const revokedBySeq = async (seq: number, at: number): Promise<RevokedBy> => {
      let r = bySeq.get(seq);
      if (!r) {
        const rec = (await store.listRevocationsSince(seq - 1, 1))[0];
        r = rec?.seq === seq ? byRecord(rec) : { seq, at };
        bySeq.set(seq, r);
      }
      return r;
    };

    const writNodes = new Map<string, WritNode>();
    for (const w of writs) writNodes.set(w.jti, await writNode(w, now, revokedBySeq));

    // A grant is dead when it, an ancestor grant, its task or principal is revoked, or the writ it was delegated from is.
    const grantNodes: GrantNode[] = [];
    for (const g of [...grants].sort((a, b) => a.depth - b.depth)) {
      const parsed = parseGrantCached(g.compact).claims;
      const fromWrit = parsed.from?.writ ?? null;
      const own = direct.get(`grant:${g.jti}`) ?? direct.get(`task:${id}`) ?? direct.get(`principal:${principal}`);
      let st: { state: NodeState; revokedBy?: RevokedBy } | undefined = own ? { state: 'revoked', revokedBy: byRecord(own) } : undefined;
      if (!st && fromWrit) {
        const parent = writNodes.get(fromWrit);
        if (parent?.state === 'revoked') st = { state: 'revoked', ...(parent.revokedBy ? { revokedBy: parent.revokedBy } : {}) };
      }
      st ??= { state: g.expiresAt <= now ? 'expired' : 'live' };
      grantNodes.push(grantNode(g, parsed.from ? parsed.from.sub : principal, fromWrit, parsed, st));
    }
    grantNodes.sort((a, b) => a.createdAt - b.createdAt || (a.jti < b.jti ? -1 : 1));
    return { task, state: taskState(task, now), grants: grantNodes, writs: [...writNodes.values()], truncated };
  }
}

function byRecord(r: RevocationRecord): RevokedBy {
  return { seq: r.seq, kind: r.kind, target: r.target, actor: r.actor, reason: r.reason, at: r.at };
}

async function writNode(w: WritRecord, now: number, revokedBySeq: (seq: number, at: number) => Promise<RevokedBy>): Promise<WritNode> {
  const base = {
    jti: w.jti,
    grant: w.lineage[w.lineage.length - 1] ?? '',
    spiffeId: w.spiffeId,
    jkt: w.jkt,
    evidenceType: w.evidenceType,
    entryId: w.entryId,
    platform: w.platform,
    issuedAt: w.issuedAt,
    expiresAt: w.expiresAt,
  };
  if (w.revokedAt !== null) {
    return { ...base, state: 'revoked', ...(w.revokedSeq !== null ? { revokedBy: await revokedBySeq(w.revokedSeq, w.revokedAt) } : {}) };
  }
  return { ...base, state: w.expiresAt <= now ? 'expired' : 'live' };
}

function grantNode(
  g: GrantRecord,
  from: string,
  fromWrit: string | null,
  c: ReturnType<typeof parseGrantCached>['claims'],
  st: { state: NodeState; revokedBy?: RevokedBy },
): GrantNode {
  return {
    jti: g.jti,
    depth: g.depth,
    fromWrit,
    from,
    delegateJkt: g.delegateJkt,
    scope: c.scope,
    boundaries: c.boundaries,
    escalate: c.escalate,
    maxDepth: c.max_depth,
    createdAt: g.createdAt,
    expiresAt: g.expiresAt,
    state: st.state,
    ...(st.revokedBy ? { revokedBy: st.revokedBy } : {}),
  };
}
