/**
 * The error contract of writ: one base class, one subclass per failure family, a stable
 * string code from a literal union. `switch (err.code)` on an `AnyWritError` narrows.
 * Codes are documented in docs/errors.md and mapped to gRPC status in src/server/status.ts;
 * test/errors.test.ts keeps the three in step.
 */

export const ERROR_CODES = [
  'ERR_SPIFFE_ID_INVALID',
  'ERR_BUNDLE_INVALID',
  'ERR_DER_MALFORMED',
  'ERR_PEM_MALFORMED',
  'ERR_X509_SVID_INVALID',
  'ERR_JWT_SVID_INVALID',
  'ERR_CSR_INVALID',
  'ERR_KEY_UNSUPPORTED',
  'ERR_EVIDENCE_TYPE_UNKNOWN',
  'ERR_EVIDENCE_INVALID',
  'ERR_KEY_PROOF_INVALID',
  'ERR_JOIN_TOKEN_INVALID',
  'ERR_SVID_RENEWAL_INVALID',
  'ERR_SVID_SUPERSEDED',
  'ERR_FRESH_EVIDENCE_REQUIRED',
  'ERR_NO_MATCHING_ENTRY',
  'ERR_ENTRY_INVALID',
  'ERR_ENTRY_NOT_FOUND',
  'ERR_PROTOCOL',
  'ERR_LIMIT_EXCEEDED',
  'ERR_CA_UNAVAILABLE',
  'ERR_KEY_DECRYPT',
  'ERR_CONFIG_INVALID',
  'ERR_STORE',
  'ERR_TPM_COMMAND',
  'ERR_TPM_TRANSPORT',
  'ERR_JWS_INVALID',
  'ERR_GRANT_INVALID',
  'ERR_WRIT_INVALID',
  'ERR_PROOF_INVALID',
  'ERR_PROOF_REPLAYED',
  'ERR_WRIT_REVOKED',
  'ERR_PRINCIPAL_INVALID',
  'ERR_POLICY_INVALID',
  'ERR_POLICY_NOT_FOUND',
  'ERR_POLICY_DENIED',
  'ERR_ESCALATION_REQUIRED',
  'ERR_REVOCATION_INVALID',
  'ERR_REVOCATION_NOT_FOUND',
  'ERR_REVOCATION_EXISTS',
  'ERR_REVOCATION_DENIED',
  'ERR_REVOKED',
  'ERR_STATUS_LIST_INVALID',
  'ERR_TASK_INVALID',
  'ERR_TASK_NOT_FOUND',
  'ERR_REVOCATION_UNAVAILABLE',
  'ERR_AUDIT_RECORD_INVALID',
  'ERR_AUDIT_PROOF_INVALID',
  'ERR_CHECKPOINT_INVALID',
  'ERR_AUDIT_INCONSISTENT',
  'ERR_AUDIT_DENIED',
  'ERR_SIDECAR_NOT_SERVING',
  'ERR_SIDECAR_NO_WRIT',
  'ERR_SIDECAR_REQUEST_INVALID',
  'ERR_APPROVAL_INVALID',
  'ERR_APPROVAL_NOT_FOUND',
  'ERR_APPROVAL_DENIED',
  'ERR_APPROVAL_CLOSED',
  'ERR_APPROVAL_LIMIT',
  'ERR_WEBAUTHN_INVALID',
  'ERR_STEP_UP_INVALID',
] as const;

export type WritErrorCode = (typeof ERROR_CODES)[number];

/** Base class of every error writ raises on purpose. */
export class WritError<C extends WritErrorCode = WritErrorCode> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'WritError';
  }
}

/** A SPIFFE ID or trust domain failed the SPIFFE-ID spec rules. */
export class SpiffeIdError extends WritError<'ERR_SPIFFE_ID_INVALID'> {
  constructor(message: string) {
    super('ERR_SPIFFE_ID_INVALID', message);
    this.name = 'SpiffeIdError';
  }
}

/** Bytes that should be DER, PEM, a CSR, a key, a certificate or a bundle are not acceptable. */
export class FormatError extends WritError<'ERR_DER_MALFORMED' | 'ERR_PEM_MALFORMED' | 'ERR_CSR_INVALID' | 'ERR_KEY_UNSUPPORTED' | 'ERR_BUNDLE_INVALID'> {
  constructor(code: FormatError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'FormatError';
  }
}

/** A credential (X.509-SVID or JWT-SVID) failed validation. */
export class SvidError extends WritError<'ERR_X509_SVID_INVALID' | 'ERR_JWT_SVID_INVALID'> {
  constructor(code: SvidError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'SvidError';
  }
}

/** Attestation failed: unknown evidence type, bad evidence, no entry, out-of-order stream, a refused renewal. */
export class AttestationError extends WritError<
  | 'ERR_EVIDENCE_TYPE_UNKNOWN'
  | 'ERR_EVIDENCE_INVALID'
  | 'ERR_KEY_PROOF_INVALID'
  | 'ERR_JOIN_TOKEN_INVALID'
  | 'ERR_SVID_RENEWAL_INVALID'
  | 'ERR_SVID_SUPERSEDED'
  | 'ERR_FRESH_EVIDENCE_REQUIRED'
  | 'ERR_NO_MATCHING_ENTRY'
  | 'ERR_PROTOCOL'
> {
  constructor(code: AttestationError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AttestationError';
  }
}

/** A registration entry request was invalid or named an entry that does not exist. */
export class EntryError extends WritError<'ERR_ENTRY_INVALID' | 'ERR_ENTRY_NOT_FOUND'> {
  constructor(code: EntryError['code'], message: string) {
    super(code, message);
    this.name = 'EntryError';
  }
}

/** A named security limit was exceeded (sizes, counts, depths, rates). */
export class LimitError extends WritError<'ERR_LIMIT_EXCEEDED'> {
  constructor(message: string) {
    super('ERR_LIMIT_EXCEEDED', message);
    this.name = 'LimitError';
  }
}

/** The CA or its keys cannot be used: no active key, key decryption failed. */
export class CaError extends WritError<'ERR_CA_UNAVAILABLE' | 'ERR_KEY_DECRYPT'> {
  constructor(code: CaError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'CaError';
  }
}

/** Configuration was invalid; `problems` lists every error found, not only the first. */
export class ConfigError extends WritError<'ERR_CONFIG_INVALID'> {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('ERR_CONFIG_INVALID', `config: ${problems.length} problem(s): ${problems.join('; ')}`);
    this.problems = problems;
    this.name = 'ConfigError';
  }
}

/** The datastore failed; the transaction was rolled back. */
export class StoreError extends WritError<'ERR_STORE'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_STORE', message, options);
    this.name = 'StoreError';
  }
}

/** A TPM command failed (`rc` is the TPM response code) or the TPM could not be reached. */
export class TpmError extends WritError<'ERR_TPM_COMMAND' | 'ERR_TPM_TRANSPORT'> {
  readonly rc: number;
  constructor(code: TpmError['code'], message: string, rc = 0, options?: { cause?: unknown }) {
    super(code, message, options);
    this.rc = rc;
    this.name = 'TpmError';
  }
}

/** A JWS is malformed, uses a refused algorithm, or its JSON is not strict (duplicate keys, depth). */
export class JwsError extends WritError<'ERR_JWS_INVALID'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_JWS_INVALID', message, options);
    this.name = 'JwsError';
  }
}

/** A grant or a grant chain breaks a delegation rule (signature, attenuation, depth, cycle, binding). */
export class DelegationError extends WritError<'ERR_GRANT_INVALID'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_GRANT_INVALID', message, options);
    this.name = 'DelegationError';
  }
}

/** A writ or its proof of possession failed relying-party verification. */
export class WritVerifyError extends WritError<'ERR_WRIT_INVALID' | 'ERR_WRIT_REVOKED' | 'ERR_PROOF_INVALID' | 'ERR_PROOF_REPLAYED'> {
  constructor(code: WritVerifyError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'WritVerifyError';
  }
}

/** A principal's OpenID Connect token was not accepted. */
export class PrincipalError extends WritError<'ERR_PRINCIPAL_INVALID'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PRINCIPAL_INVALID', message, options);
    this.name = 'PrincipalError';
  }
}

/** A policy set is invalid or unknown, or a policy decision refused the request. */
export class PolicyError extends WritError<'ERR_POLICY_INVALID' | 'ERR_POLICY_NOT_FOUND' | 'ERR_POLICY_DENIED' | 'ERR_ESCALATION_REQUIRED'> {
  constructor(code: PolicyError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'PolicyError';
  }
}

/** A revocation request or a revocation source (watch stream, status list) was refused or is unusable. */
export class RevocationError extends WritError<
  | 'ERR_REVOCATION_INVALID'
  | 'ERR_REVOCATION_NOT_FOUND'
  | 'ERR_REVOCATION_EXISTS'
  | 'ERR_REVOCATION_DENIED'
  | 'ERR_REVOKED'
  | 'ERR_STATUS_LIST_INVALID'
  | 'ERR_REVOCATION_UNAVAILABLE'
> {
  constructor(code: RevocationError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'RevocationError';
  }
}

/** A task id is malformed or unknown. */
export class TaskError extends WritError<'ERR_TASK_INVALID' | 'ERR_TASK_NOT_FOUND'> {
  constructor(code: TaskError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'TaskError';
  }
}

/**
 * The audit log refused something: a record that is not canonical or carries a secret, a
 * proof that does not verify, a checkpoint or signed note that is malformed or badly signed,
 * or a tree that does not extend the last signed checkpoint (docs/audit.md).
 */
export class AuditError extends WritError<
  'ERR_AUDIT_RECORD_INVALID' | 'ERR_AUDIT_PROOF_INVALID' | 'ERR_CHECKPOINT_INVALID' | 'ERR_AUDIT_INCONSISTENT' | 'ERR_AUDIT_DENIED'
> {
  constructor(code: AuditError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AuditError';
  }
}

/**
 * The sidecar (`writ agent run`) refused a call on its socket: it serves no identity now, it
 * holds no writ, or the request is malformed (proto/writ/agent/v1/agent.proto).
 */
export class SidecarError extends WritError<'ERR_SIDECAR_NOT_SERVING' | 'ERR_SIDECAR_NO_WRIT' | 'ERR_SIDECAR_REQUEST_INVALID'> {
  constructor(code: SidecarError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'SidecarError';
  }
}

/**
 * An approval request or decision was refused (docs/policy.md §Approvals): malformed input, an
 * unknown request (or one the caller may not see), an approver the `approve` policy does not
 * name, a request no longer pending (decided, expired, its task ended), or too many pending.
 */
export class ApprovalError extends WritError<
  'ERR_APPROVAL_INVALID' | 'ERR_APPROVAL_NOT_FOUND' | 'ERR_APPROVAL_DENIED' | 'ERR_APPROVAL_CLOSED' | 'ERR_APPROVAL_LIMIT'
> {
  constructor(code: ApprovalError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ApprovalError';
  }
}

/**
 * A WebAuthn assertion, its authenticator data, client data or the credential's COSE key was
 * refused (src/webauthn/: W3C WebAuthn Level 3 §7.2, RFC 9052/9053).
 */
export class WebAuthnError extends WritError<'ERR_WEBAUTHN_INVALID'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_WEBAUTHN_INVALID', message, options);
    this.name = 'WebAuthnError';
  }
}

/** A step-up grant (an approval signed by the issuer, embedding the approver's assertion) was refused. */
export class StepUpError extends WritError<'ERR_STEP_UP_INVALID'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_STEP_UP_INVALID', message, options);
    this.name = 'StepUpError';
  }
}

export type AnyWritError =
  | SpiffeIdError
  | FormatError
  | SvidError
  | AttestationError
  | EntryError
  | LimitError
  | CaError
  | ConfigError
  | StoreError
  | TpmError
  | JwsError
  | DelegationError
  | WritVerifyError
  | PrincipalError
  | PolicyError
  | RevocationError
  | TaskError
  | AuditError
  | SidecarError
  | ApprovalError
  | WebAuthnError
  | StepUpError;

export function isWritError(e: unknown): e is AnyWritError {
  return e instanceof WritError;
}
