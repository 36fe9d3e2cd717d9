/**
 * The one place where writ errors become gRPC statuses, with a per-code leak policy:
 * invalid input says what was wrong; evidence and credential failures say little to the
 * caller (the full reason goes to the log).
 */
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { isWritError, type WritErrorCode } from '../errors.js';

interface Mapping {
  readonly status: status;
  /** When false, the caller gets `publicMessage`, never the internal message. */
  readonly showMessage: boolean;
  readonly publicMessage?: string;
}

export const STATUS_BY_CODE: Readonly<Record<WritErrorCode, Mapping>> = {
  ERR_SPIFFE_ID_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_BUNDLE_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_DER_MALFORMED: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_PEM_MALFORMED: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_X509_SVID_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_JWT_SVID_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_CSR_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_KEY_UNSUPPORTED: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_EVIDENCE_TYPE_UNKNOWN: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_EVIDENCE_INVALID: { status: status.PERMISSION_DENIED, showMessage: false, publicMessage: 'attestation failed: evidence rejected' },
  // The agent holds the key it named; telling it its own signature failed teaches nothing.
  ERR_KEY_PROOF_INVALID: { status: status.PERMISSION_DENIED, showMessage: true },
  // Join-token messages carry no secret and only distinguish expired/used for holders of the real secret.
  ERR_JOIN_TOKEN_INVALID: { status: status.PERMISSION_DENIED, showMessage: true },
  // Renewal evidence (an SVID chain and a signature) says little, as any evidence does.
  ERR_SVID_RENEWAL_INVALID: { status: status.PERMISSION_DENIED, showMessage: false, publicMessage: 'attestation failed: renewal evidence rejected' },
  // Raised only after the SVID chain and its key's signature verified: the caller holds that SVID.
  ERR_SVID_SUPERSEDED: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_FRESH_EVIDENCE_REQUIRED: { status: status.FAILED_PRECONDITION, showMessage: true },
  ERR_NO_MATCHING_ENTRY: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_ENTRY_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_ENTRY_NOT_FOUND: { status: status.NOT_FOUND, showMessage: true },
  ERR_PROTOCOL: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_LIMIT_EXCEEDED: { status: status.RESOURCE_EXHAUSTED, showMessage: true },
  ERR_CA_UNAVAILABLE: { status: status.UNAVAILABLE, showMessage: false, publicMessage: 'issuer CA unavailable' },
  ERR_KEY_DECRYPT: { status: status.INTERNAL, showMessage: false, publicMessage: 'internal error' },
  ERR_CONFIG_INVALID: { status: status.INTERNAL, showMessage: false, publicMessage: 'internal error' },
  ERR_STORE: { status: status.UNAVAILABLE, showMessage: false, publicMessage: 'datastore unavailable' },
  // Raised on the agent side; never expected inside the issuer.
  ERR_TPM_COMMAND: { status: status.INTERNAL, showMessage: false, publicMessage: 'internal error' },
  ERR_TPM_TRANSPORT: { status: status.INTERNAL, showMessage: false, publicMessage: 'internal error' },
  ERR_JWS_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  // Delegation failures name the broken rule: the caller holds every grant it sent.
  ERR_GRANT_INVALID: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_WRIT_INVALID: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_WRIT_REVOKED: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_PROOF_INVALID: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_PROOF_REPLAYED: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_PRINCIPAL_INVALID: { status: status.UNAUTHENTICATED, showMessage: false, publicMessage: 'principal token rejected' },
  ERR_POLICY_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_POLICY_NOT_FOUND: { status: status.NOT_FOUND, showMessage: true },
  ERR_POLICY_DENIED: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_ESCALATION_REQUIRED: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_TASK_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_TASK_NOT_FOUND: { status: status.NOT_FOUND, showMessage: true },
  ERR_REVOCATION_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_REVOCATION_NOT_FOUND: { status: status.NOT_FOUND, showMessage: true },
  ERR_REVOCATION_EXISTS: { status: status.ALREADY_EXISTS, showMessage: true },
  // The caller is authenticated; what it may revoke is not a secret.
  ERR_REVOCATION_DENIED: { status: status.PERMISSION_DENIED, showMessage: true },
  // Says what is revoked: the caller presented it.
  ERR_REVOKED: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_STATUS_LIST_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  // A relying party's own source (never synced, stale, over its limit): says how fresh it is.
  ERR_REVOCATION_UNAVAILABLE: { status: status.UNAVAILABLE, showMessage: true },
  ERR_AUDIT_RECORD_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_AUDIT_PROOF_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_CHECKPOINT_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  // The issuer refuses to sign a fork; the operator needs the detail, a caller only that it failed.
  ERR_AUDIT_DENIED: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_AUDIT_INCONSISTENT: { status: status.INTERNAL, showMessage: false, publicMessage: 'audit log inconsistent' },
  // Raised by the sidecar's AgentService on its Unix socket (sidecar/agent-service/status.ts maps them there); never by the issuer.
  ERR_SIDECAR_NOT_SERVING: { status: status.UNAVAILABLE, showMessage: true },
  ERR_SIDECAR_NO_WRIT: { status: status.FAILED_PRECONDITION, showMessage: true },
  ERR_SIDECAR_REQUEST_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  ERR_APPROVAL_INVALID: { status: status.INVALID_ARGUMENT, showMessage: true },
  // Unknown and not yours look the same: an id is not a way to learn what others asked for.
  ERR_APPROVAL_NOT_FOUND: { status: status.NOT_FOUND, showMessage: true },
  ERR_APPROVAL_DENIED: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_APPROVAL_CLOSED: { status: status.FAILED_PRECONDITION, showMessage: true },
  ERR_APPROVAL_LIMIT: { status: status.RESOURCE_EXHAUSTED, showMessage: true },
  ERR_WEBAUTHN_INVALID: { status: status.PERMISSION_DENIED, showMessage: true },
  ERR_STEP_UP_INVALID: { status: status.PERMISSION_DENIED, showMessage: true },
};

/** A fresh id for one failed call: shown to the caller with a hidden reason, logged with the reason. */
export function newRequestId(): string {
  return randomBytes(6).toString('hex');
}

export interface GrpcFailure {
  readonly code: status;
  readonly details: string;
  /** The writ error code, sent as the `writ-error-code` trailer. */
  readonly writCode: WritErrorCode | 'ERR_INTERNAL';
  /** The full message, for the log only. */
  readonly internal: string;
  /** Logged with `internal`; in `details` too when the reason is hidden, so an operator can find it. */
  readonly requestId: string;
}

export function toGrpcFailure(e: unknown, requestId = newRequestId()): GrpcFailure {
  const hidden = (text: string) => `${text} (the server log has the reason under request id ${requestId})`;
  if (isWritError(e)) {
    const m = STATUS_BY_CODE[e.code];
    return { code: m.status, details: m.showMessage ? e.message : hidden(m.publicMessage!), writCode: e.code, internal: e.message, requestId };
  }
  return { code: status.INTERNAL, details: hidden('internal error'), writCode: 'ERR_INTERNAL', internal: (e as Error)?.stack ?? String(e), requestId };
}
