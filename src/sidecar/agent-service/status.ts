/**
 * Where the AgentService's errors become gRPC statuses. The sidecar does not import server/
 * (the issuer's wiring), so the codes this service raises are mapped here, each to the status
 * the issuer's table (server/status.ts) gives it; test/unit/sidecar-agent-service.test.ts keeps
 * the two in step. Anything else (a TPM signer failing, a bug) is INTERNAL with the reason in the
 * sidecar's log only, under a request id.
 */
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { GrpcCallError } from '../../agent/attest-client.js';
import { isWritError, type WritErrorCode } from '../../errors.js';

/** The codes the AgentService raises on purpose, and their status. Their messages are shown: the caller is the local agent, and each names its own request. */
export const AGENT_STATUS_BY_CODE: Readonly<Partial<Record<WritErrorCode, grpc.status>>> = {
  ERR_SIDECAR_NOT_SERVING: grpc.status.UNAVAILABLE,
  ERR_SIDECAR_NO_WRIT: grpc.status.FAILED_PRECONDITION,
  ERR_SIDECAR_REQUEST_INVALID: grpc.status.INVALID_ARGUMENT,
  ERR_REVOKED: grpc.status.PERMISSION_DENIED,
  ERR_GRANT_INVALID: grpc.status.PERMISSION_DENIED,
  ERR_REVOCATION_UNAVAILABLE: grpc.status.UNAVAILABLE,
  ERR_LIMIT_EXCEEDED: grpc.status.RESOURCE_EXHAUSTED,
};

/**
 * The issuer's refusals of an escalation (Escalate, WatchApproval) the agent is told as the issuer
 * said them, status and code: policy refused it, too many pending, malformed, closed. The issuer
 * shows these messages to the agent itself (server/status.ts); anything else stays INTERNAL.
 */
export const ISSUER_REFUSALS_PASSED_ON: Readonly<Partial<Record<WritErrorCode, grpc.status>>> = {
  ERR_POLICY_DENIED: grpc.status.PERMISSION_DENIED,
  ERR_APPROVAL_INVALID: grpc.status.INVALID_ARGUMENT,
  ERR_APPROVAL_NOT_FOUND: grpc.status.NOT_FOUND,
  ERR_APPROVAL_DENIED: grpc.status.PERMISSION_DENIED,
  ERR_APPROVAL_CLOSED: grpc.status.FAILED_PRECONDITION,
  ERR_APPROVAL_LIMIT: grpc.status.RESOURCE_EXHAUSTED,
};

export interface AgentFailure {
  readonly code: grpc.status;
  readonly details: string;
  readonly metadata: grpc.Metadata;
  /** The full reason, for the sidecar's log. */
  readonly internal: string;
  readonly writCode: WritErrorCode | 'ERR_INTERNAL';
}

/** The status, details and `writ-error-code` trailer for `e`. */
export function agentFailure(e: unknown): AgentFailure {
  const metadata = new grpc.Metadata();
  const mapped = isWritError(e) ? AGENT_STATUS_BY_CODE[e.code] : undefined;
  if (isWritError(e) && mapped !== undefined) {
    metadata.set('writ-error-code', e.code);
    return { code: mapped, details: e.message, metadata, internal: e.message, writCode: e.code };
  }
  // UNTRUSTED only as far as the issuer is: its status and code must agree with the table.
  if (e instanceof GrpcCallError && e.writCode !== undefined) {
    const code = e.writCode as WritErrorCode;
    const passed = ISSUER_REFUSALS_PASSED_ON[code];
    if (passed !== undefined && passed === e.code) {
      metadata.set('writ-error-code', code);
      const details = `issuer: ${e.details.slice(0, 1024)}`;
      return { code: passed, details, metadata, internal: details, writCode: code };
    }
  }
  const requestId = randomBytes(6).toString('hex');
  metadata.set('writ-error-code', 'ERR_INTERNAL');
  return {
    code: grpc.status.INTERNAL,
    details: `internal error (the sidecar log has the reason under request id ${requestId})`,
    metadata,
    internal: `request ${requestId}: ${isWritError(e) ? `${e.code}: ` : ''}${(e as Error)?.message ?? String(e)}`,
    writCode: 'ERR_INTERNAL',
  };
}
