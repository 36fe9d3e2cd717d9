/**
 * The `htm` (method) an agent's proof of possession binds to for each issuer RPC that takes one
 * (writ/proof.ts, docs/writ-format.md §Proof of possession): one definition, used by the agent
 * that signs the proof (agent/, cli/) and by the issuer that checks it (issuance/, server/), so
 * the two cannot drift apart. Each names the RPC and what the call acts on, so that a captured
 * proof is good for nothing else, even where its one-time id is not remembered (after a
 * restart, on another replica).
 */

/** The RPC an agent's proof of possession names to revoke (its audience: the issuer's trust domain ID). */
export const REVOKE_METHOD = 'writ.v1.RevocationService/Revoke';

/** Revoking exactly this target: `writ.v1.RevocationService/Revoke grant <jti>`. */
export const revokeMethod = (kind: string, id: string): string => `${REVOKE_METHOD} ${kind} ${id}`;

/** Escalating for exactly this permission: `writ.v1.ApprovalService/Escalate ACTION=RESOURCE`. */
export const escalateMethod = (action: string, resource: string): string => `writ.v1.ApprovalService/Escalate ${action}=${resource}`;

/** Reading this approval request as the agent that asked for it. */
export const getApprovalMethod = (id: string): string => `writ.v1.ApprovalService/GetApproval ${id}`;

/** Watching this approval request as the agent that asked for it. */
export const watchApprovalMethod = (id: string): string => `writ.v1.ApprovalService/WatchApproval ${id}`;
