/**
 * RFC 8785 JCS for audit records: src/jose/jcs.ts, with its refusals reported as
 * `ERR_AUDIT_RECORD_INVALID` (`audit(jcs): …`), as the audit log's contract says.
 */
import { AuditError } from '../errors.js';
import { canonicalize as jcs, JcsError, MAX_JCS_DEPTH, type JcsOptions } from '../jose/jcs.js';

export { MAX_JCS_DEPTH, type JcsOptions };

function audited<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof JcsError) throw new AuditError('ERR_AUDIT_RECORD_INVALID', `audit(jcs): ${e.message}`, { cause: e });
    throw e;
  }
}

/** The RFC 8785 canonical text of a JSON value. */
export function canonicalize(v: unknown, opts: JcsOptions = {}): string {
  return audited(() => jcs(v, opts));
}

/** The RFC 8785 canonical form as UTF-8 bytes (§3.2.4): what gets hashed. */
export function canonicalBytes(v: unknown, opts: JcsOptions = {}): Buffer {
  return Buffer.from(canonicalize(v, opts), 'utf8');
}
