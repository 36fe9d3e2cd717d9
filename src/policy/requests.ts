/** Builds the Cedar requests writ asks (schema in policy/schema.ts). */
import type { PolicyRequest, CedarEntity } from './engine.js';

export interface PrincipalInfo {
  readonly iss: string;
  readonly sub: string;
  readonly groups: readonly string[];
}

export interface AgentInfo {
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly path: string;
  readonly selectors: readonly string[];
  readonly evidenceType: string;
}

export interface TaskInfo {
  readonly id: string;
  readonly goal: string;
  readonly lifetimeSeconds: number;
}

const principalEntity = (p: PrincipalInfo): CedarEntity => ({
  uid: { type: 'Writ::Principal', id: `${p.iss}#${p.sub}` },
  attrs: { iss: p.iss, sub: p.sub, groups: [...p.groups] },
  parents: [],
});

const permissionEntity = (action: string, resource: string, n: number): CedarEntity => ({
  uid: { type: 'Writ::Permission', id: `${n}:${action}=${resource}` },
  attrs: { action, resource },
  parents: [],
});

const task = (t: TaskInfo) => ({ id: t.id, goal: t.goal, lifetimeSeconds: t.lifetimeSeconds });

/** One `delegate` request per permission: may this principal delegate it? */
export function delegateRequests(p: PrincipalInfo, scope: ReadonlyArray<{ action: string; resource: string }>, t: TaskInfo, maxDepth: number): PolicyRequest[] {
  return scope.map((perm, n) => ({
    principal: principalEntity(p),
    action: 'delegate',
    resource: permissionEntity(perm.action, perm.resource, n),
    context: { task: task(t), depth: 0, maxDepth },
  }));
}

/** One `receive` request per permission: may this attested agent hold it? */
export function receiveRequests(
  a: AgentInfo,
  p: PrincipalInfo,
  scope: ReadonlyArray<{ action: string; resource: string }>,
  t: TaskInfo,
  depth: number,
  maxDepth: number,
): PolicyRequest[] {
  const agent: CedarEntity = {
    uid: { type: 'Writ::Agent', id: a.spiffeId },
    attrs: { spiffeId: a.spiffeId, trustDomain: a.trustDomain, path: a.path, selectors: [...a.selectors], evidenceType: a.evidenceType },
    parents: [],
  };
  return scope.map((perm, n) => ({
    principal: agent,
    action: 'receive',
    resource: permissionEntity(perm.action, perm.resource, n),
    context: { task: task(t), depth, maxDepth, principal: { iss: p.iss, sub: p.sub, groups: [...p.groups] } },
  }));
}

export interface ApprovalRequestInfo {
  readonly id: string;
  readonly principal: { readonly iss: string; readonly sub: string };
  readonly actor: string;
  readonly action: string;
  readonly resource: string;
  readonly reason: string;
  readonly policies: readonly string[];
  readonly depth: number;
  readonly maxDepth: number;
}

/** The `approve` request: may this approver (a human, from their OIDC token) decide this escalation? */
export function approveRequest(approver: PrincipalInfo, r: ApprovalRequestInfo, t: TaskInfo): PolicyRequest {
  return {
    principal: principalEntity(approver),
    action: 'approve',
    resource: {
      uid: { type: 'Writ::ApprovalRequest', id: r.id },
      attrs: {
        id: r.id,
        principal: { iss: r.principal.iss, sub: r.principal.sub },
        actor: r.actor,
        action: r.action,
        resource: r.resource,
        reason: r.reason,
        policies: [...r.policies],
        depth: r.depth,
      },
      parents: [],
    },
    // The same context members as delegate and receive, so a policy that names no action still validates.
    context: { task: task(t), depth: r.depth, maxDepth: r.maxDepth },
  };
}

/**
 * An agent's escalation for one concrete permission: may the principal delegate it, and may
 * this agent hold it? Both asked; the strictest answer stands (decideAll).
 */
export function escalationRequests(
  a: AgentInfo,
  p: PrincipalInfo,
  perm: { action: string; resource: string },
  t: TaskInfo,
  depth: number,
  maxDepth: number,
): PolicyRequest[] {
  return [
    ...delegateRequests(p, [perm], t, maxDepth).map((r) => ({ ...r, context: { ...r.context, depth } })),
    ...receiveRequests(a, p, [perm], t, depth, maxDepth),
  ];
}
