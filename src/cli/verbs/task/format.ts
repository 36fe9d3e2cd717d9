/** How `writ task list` and `writ task show` print tasks and delegation trees (text and JSON). */
import type { GetTaskResponse, RevokedBy, Task, TaskGrant, TaskWrit } from '../../../gen/writ/v1/admin_pb.js';
import type { Permission } from '../../../gen/writ/v1/grant_pb.js';

/**
 * Text from the issuer's records (reasons, actors, principals: UNTRUSTED, a principal's or an
 * agent's words) printed on one line: control, line-separator and bidirectional-override characters escaped, so that no
 * record can forge lines of the tree.
 */
export const oneLine = (s: string): string =>
  s.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

const iso = (ms: bigint) => new Date(Number(ms)).toISOString();
const perms = (ps: readonly Permission[]) => ps.map((p) => `${p.action}=${p.resource}`);

function revokedByJson(r: RevokedBy | undefined) {
  if (!r) return undefined;
  return { sequence: Number(r.sequence), kind: r.kind, target: r.target, actor: r.actor, reason: r.reason, at: iso(r.at) };
}

export function taskJson(t: Task) {
  return {
    id: t.id,
    principal: t.principal,
    goal: t.goal,
    state: t.state,
    created_at: iso(t.createdAt),
    expires_at: iso(t.expiresAt),
    ...(t.state === 'ended' ? { ended_at: iso(t.endedAt), ended_by: t.endedBy, end_reason: t.endReason } : {}),
  };
}

function taskState(t: Task): string {
  if (t.state === 'ended') return `ended ${iso(t.endedAt)} by ${oneLine(t.endedBy)}${t.endReason ? ` (${oneLine(t.endReason)})` : ''}`;
  if (t.state === 'expired') return `expired ${iso(t.expiresAt)}`;
  return `live, ends ${iso(t.expiresAt)}`;
}

/** One line per task: id, principal, state, goal. */
export function taskLine(t: Task): string {
  return `${t.id}  ${oneLine(t.principal)}  ${taskState(t)}  ${JSON.stringify(t.goal)}`;
}

function grantJson(g: TaskGrant) {
  return {
    id: g.id,
    depth: g.depth,
    from: g.from,
    from_writ: g.fromWrit || null,
    delegate_jkt: g.delegateJkt,
    scope: perms(g.scope),
    boundaries: perms(g.boundaries),
    escalate: perms(g.escalate),
    max_depth: g.maxDepth,
    created_at: iso(g.createdAt),
    expires_at: iso(g.expiresAt),
    state: g.state,
    ...(g.revokedBy ? { revoked_by: revokedByJson(g.revokedBy) } : {}),
  };
}

function writJson(w: TaskWrit) {
  return {
    id: w.id,
    grant: w.grant,
    spiffe_id: w.spiffeId,
    jkt: w.jkt,
    evidence_type: w.evidenceType,
    entry_id: w.entryId,
    ...(w.platform ? { platform: w.platform } : {}),
    issued_at: iso(w.issuedAt),
    expires_at: iso(w.expiresAt),
    state: w.state,
    ...(w.revokedBy ? { revoked_by: revokedByJson(w.revokedBy) } : {}),
  };
}

/** The task, its grants (each with the writs minted on it and the grants delegated from those) as a nested tree. */
export function taskTreeJson(res: GetTaskResponse) {
  const { writsOf, grantsOf, roots } = index(res);
  const seen = new Set<string>();
  const grantTree = (g: TaskGrant): unknown => {
    seen.add(g.id);
    return {
      ...grantJson(g),
      writs: writsOf(g.id).map((w) => ({
        ...writJson(w),
        delegated: grantsOf(w.id)
          .filter((c) => !seen.has(c.id))
          .map(grantTree),
      })),
    };
  };
  return { task: taskJson(res.task!), tree: roots.map(grantTree), truncated: res.truncated };
}

function index(res: GetTaskResponse) {
  const writIds = new Set(res.writs.map((w) => w.id));
  const writsByGrant = new Map<string, TaskWrit[]>();
  for (const w of res.writs) writsByGrant.set(w.grant, [...(writsByGrant.get(w.grant) ?? []), w]);
  const grantsByWrit = new Map<string, TaskGrant[]>();
  for (const g of res.grants) if (g.fromWrit) grantsByWrit.set(g.fromWrit, [...(grantsByWrit.get(g.fromWrit) ?? []), g]);
  // Root grants, then hop grants whose writ is not in the view (a truncated task).
  const roots = res.grants.filter((g) => !g.fromWrit || !writIds.has(g.fromWrit));
  return { writsOf: (id: string) => writsByGrant.get(id) ?? [], grantsOf: (id: string) => grantsByWrit.get(id) ?? [], roots };
}

function nodeState(state: string, expiresAt: bigint, r: RevokedBy | undefined, now: Date): string {
  if (state === 'revoked') {
    if (!r) return 'revoked';
    const what = r.kind ? `${r.kind} ${r.target}` : `revocation ${r.sequence}`;
    return `revoked ${iso(r.at)} by ${r.actor ? oneLine(r.actor) : 'an unknown actor (the revocation was pruned)'}: ${oneLine(what)}${r.reason ? ` (${oneLine(r.reason)})` : ''}`;
  }
  if (state === 'expired' || Number(expiresAt) <= now.getTime()) return `expired ${iso(expiresAt)}`;
  return `live, expires ${iso(expiresAt)}`;
}

/**
 * The tree as text:
 *   principal → root grant → writs minted on it → grants delegated from each writ → ...
 */
export function taskTree(res: GetTaskResponse, now: Date): string {
  const t = res.task!;
  const out: string[] = [`task ${t.id}: ${JSON.stringify(t.goal)}, ${taskState(t)}`, `principal ${oneLine(t.principal)}`];
  const { writsOf, grantsOf, roots } = index(res);
  const seen = new Set<string>();
  const line = (prefix: string, last: boolean, text: string) => out.push(`${prefix}${last ? '└─ ' : '├─ '}${text}`);
  const grant = (g: TaskGrant, prefix: string, last: boolean) => {
    seen.add(g.id);
    const origin = g.depth === 0 ? 'root grant' : `hop ${g.depth} grant from ${g.from}`;
    const limits = [
      `scope ${perms(g.scope).join(' ') || '(none)'}`,
      ...(g.boundaries.length ? [`boundaries ${perms(g.boundaries).join(' ')}`] : []),
      ...(g.escalate.length ? [`escalate ${perms(g.escalate).join(' ')}`] : []),
      `max depth ${g.maxDepth}`,
    ];
    line(prefix, last, `${origin} ${g.id} → key ${g.delegateJkt}; ${limits.join('; ')}; ${nodeState(g.state, g.expiresAt, g.revokedBy, now)}`);
    const inner = prefix + (last ? '   ' : '│  ');
    const ws = writsOf(g.id);
    if (ws.length === 0) out.push(`${inner}(no writ minted on it yet)`);
    for (const [i, w] of ws.entries()) writ(w, inner, i === ws.length - 1);
  };
  const writ = (w: TaskWrit, prefix: string, last: boolean) => {
    line(
      prefix,
      last,
      `writ ${w.id} ${w.spiffeId}, key ${w.jkt}, ${w.evidenceType}${w.platform ? ` on ${w.platform}` : ''}; ${nodeState(w.state, w.expiresAt, w.revokedBy, now)}`,
    );
    const inner = prefix + (last ? '   ' : '│  ');
    const cs = grantsOf(w.id).filter((c) => !seen.has(c.id));
    for (const [i, c] of cs.entries()) grant(c, inner, i === cs.length - 1);
  };
  if (roots.length === 0) out.push('   (no grants)');
  for (const [i, g] of roots.entries()) grant(g, '', i === roots.length - 1);
  if (res.truncated) out.push('(more grants or writs than one view shows: the first 2000 of each)');
  return `${out.join('\n')}\n`;
}
