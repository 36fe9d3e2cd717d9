/**
 * How the `tdx` evidence type refuses: always `ERR_EVIDENCE_INVALID` (the gRPC mapping and the
 * public text stay those of every evidence failure), with a `reason` that says which family of
 * check failed, so tests, the offline checker and the issuer's log can tell them apart without
 * matching message text. Listed in docs/errors.md ("TDX refusal reasons").
 */
import { AttestationError } from '../../errors.js';

export type TdxFailure =
  /** The bytes are not a TDX quote v4/v5 as Intel defines it (layout, sizes, versions, trailing bytes). */
  | 'format'
  /** The quote signature by the attestation key, or the QE report signature by the PCK key. */
  | 'signature'
  /** The QE report does not bind the attestation key (report data), or the QE identity. */
  | 'qe'
  /** The PCK certificate chain does not lead to a pinned Intel SGX root. */
  | 'chain'
  /** A platform policy refused it (debug TD, TCB not evaluated or not acceptable). */
  | 'policy'
  /** The report data is not the binding digest the verifier expects. */
  | 'binding'
  /** Intel collateral (TCB info, QE identity, CRLs) is malformed, unsigned, stale or revokes the PCK. */
  | 'collateral';

export class TdxError extends AttestationError {
  readonly reason: TdxFailure;
  constructor(reason: TdxFailure, message: string, options?: { cause?: unknown }) {
    super('ERR_EVIDENCE_INVALID', `attestation(tdx): ${message}`, options);
    this.reason = reason;
    this.name = 'TdxError';
  }
}
