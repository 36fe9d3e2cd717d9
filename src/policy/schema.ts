/**
 * The Cedar schema writ ships (docs/policy.md). Every pushed policy set is validated against
 * it in strict mode, and every request is validated against it at evaluation time.
 */

/** Bumped whenever the schema changes; part of every snapshot digest. */
export const SCHEMA_VERSION = 'writ-cedar-schema-v2';

export const CEDAR_SCHEMA = `namespace Writ {
  // The human who delegates, as proven by a trusted OpenID Connect issuer.
  entity Principal = { iss: String, sub: String, groups: Set<String> };
  // An attested agent: its SPIFFE ID and the selectors its evidence proved.
  entity Agent = { spiffeId: String, trustDomain: String, path: String, selectors: Set<String>, evidenceType: String };
  // One permission of a grant's scope: an action pattern and a resource pattern.
  entity Permission = { action: String, resource: String };
  type Task = { id: String, goal: String, lifetimeSeconds: Long };
  type PrincipalInfo = { iss: String, sub: String, groups: Set<String> };
  type PrincipalRef = { iss: String, sub: String };
  // An agent's escalation request: who asks (actor), for whom (principal), what, why, and which
  // policies asked for an approval; depth is the agent's place in the delegation chain.
  entity ApprovalRequest = {
    id: String,
    principal: PrincipalRef,
    actor: String,
    action: String,
    resource: String,
    reason: String,
    policies: Set<String>,
    depth: Long
  };
  // May this principal delegate this permission for this task (CreateGrant)?
  action delegate appliesTo {
    principal: [Principal],
    resource: [Permission],
    context: { task: Task, depth: Long, maxDepth: Long }
  };
  // May this attested agent receive this permission (the handshake, for the last grant)?
  action receive appliesTo {
    principal: [Agent],
    resource: [Permission],
    context: { task: Task, depth: Long, maxDepth: Long, principal: PrincipalInfo }
  };
  // May this approver (a human, from their OIDC token) decide this escalation request?
  action approve appliesTo {
    principal: [Principal],
    resource: [ApprovalRequest],
    context: { task: Task, depth: Long, maxDepth: Long }
  };
}
`;
