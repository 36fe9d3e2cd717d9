/**
 * The `nitro` evidence type's failures: code `ERR_EVIDENCE_INVALID` (docs/errors.md; the caller
 * is told only "evidence rejected", the log has the message), with a stable `reason` so tests
 * and operators can tell why without parsing messages (README.md §Errors lists them).
 */
import { AttestationError } from '../../errors.js';

export const NITRO_FAILURES = [
  /** The bytes are not a well-formed COSE_Sign1 / attestation document (CBOR, fields, sizes). */
  'malformed',
  /** The COSE_Sign1 signature does not verify with the leaf certificate's key. */
  'signature',
  /** The certificate chain does not lead to a pinned root at the verification instant. */
  'chain',
  /** PCR0 is all zero (a debug enclave) and debug enclaves are not allowed. */
  'debug',
  /** The document's timestamp is outside the accepted window. */
  'timestamp',
  /** The document's nonce is not the binding digest. */
  'nonce',
] as const;

export type NitroFailure = (typeof NITRO_FAILURES)[number];

/** A Nitro attestation document was refused; `reason` says which check. */
export class NitroEvidenceError extends AttestationError {
  readonly reason: NitroFailure;
  constructor(reason: NitroFailure, message: string, options?: { cause?: unknown }) {
    super('ERR_EVIDENCE_INVALID', `attestation(nitro): ${message}`, options);
    this.reason = reason;
    this.name = 'NitroEvidenceError';
  }
}

export const malformed = (message: string): NitroEvidenceError => new NitroEvidenceError('malformed', message);
