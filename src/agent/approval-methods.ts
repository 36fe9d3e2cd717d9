/** The method strings an agent's proofs bind to on ApprovalService (the issuer checks the same: issuance/approvals.ts). */
export const escalateMethodName = (action: string, resource: string): string => `writ.v1.ApprovalService/Escalate ${action}=${resource}`;
export const getApprovalMethodName = (id: string): string => `writ.v1.ApprovalService/GetApproval ${id}`;
export const watchApprovalMethodName = (id: string): string => `writ.v1.ApprovalService/WatchApproval ${id}`;
