/**
 * The approval request document (docs/writ-format.md §Approval requests): what an agent asked
 * for, for whom, why, and which policies asked for an approval. Its canonical form (RFC 8785,
 * audit/jcs.ts) is what the approver's passkey signs: the WebAuthn challenge is the SHA-256 of
 * those bytes, so the authenticator's signature covers exactly what was approved.
 */
import { createHash, randomBytes } from 'node:crypto';
import { canonicalBytes } from '../jose/jcs.js';
import { ApprovalError } from '../errors.js';

export const APPROVAL_REQUEST_TYP = 'writ-approval-request';
export const APPROVAL_REQUEST_VERSION = 1;
/** Longest reason an agent or an approver gives, bytes. */
export const MAX_APPROVAL_REASON_BYTES = 1024;
/** An approval id: 16 random bytes, base64url. */
export const APPROVAL_ID = /^[A-Za-z0-9_-]{22}$/;

export interface ApprovalRequestDoc {
  readonly typ: typeof APPROVAL_REQUEST_TYP;
  readonly v: typeof APPROVAL_REQUEST_VERSION;
  readonly id: string;
  /** The issuer's trust domain ID. */
  readonly iss: string;
  readonly task: { readonly id: string; readonly goal: string; readonly exp: number };
  readonly principal: { readonly iss: string; readonly sub: string };
  /** The requesting agent, its key, the writ it presented and that writ's lineage. */
  readonly actor: { readonly sub: string; readonly jkt: string };
  /** From the principal (`iss#sub`) through every delegating agent to the actor. */
  readonly path: readonly string[];
  readonly writ: string;
  readonly lineage: readonly string[];
  readonly permission: { readonly action: string; readonly resource: string };
  readonly reason: string;
  readonly policies: readonly string[];
  readonly snapshot: string;
  /** The chain's delegation limit (the `approve` context's maxDepth). */
  readonly maxDepth: number;
  /** Unix seconds. */
  readonly iat: number;
  readonly exp: number;
}

export const newApprovalId = (): string => randomBytes(16).toString('base64url');

export function checkApprovalId(id: string): string {
  if (!APPROVAL_ID.test(id)) throw new ApprovalError('ERR_APPROVAL_INVALID', 'approval: an approval id is 22 base64url characters');
  return id;
}

/**
 * What a reason may not hold: control characters (C0, DEL, C1), format characters (Unicode Cf:
 * the bidi embeddings, overrides and isolates U+202A–U+202E and U+2066–U+2069, the zero-width
 * U+200B–U+200F and U+2060–U+2064, U+FEFF, soft hyphen, tag characters), lone surrogates, and
 * the line and paragraph separators. A reason is shown to an approver who decides on it: none of
 * these may reorder or hide what they read (Trojan Source, CVE-2021-42574).
 */
export const REASON_REFUSED = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

/** A reason: 1..MAX_APPROVAL_REASON_BYTES bytes of one line of visible text (it reaches approvers' screens and the audit log). */
export function checkReason(reason: string, who: string): string {
  if (reason.trim() === '' || Buffer.byteLength(reason) > MAX_APPROVAL_REASON_BYTES || REASON_REFUSED.test(reason))
    throw new ApprovalError(
      'ERR_APPROVAL_INVALID',
      `approval: ${who} reason must be 1..${MAX_APPROVAL_REASON_BYTES} bytes of one line of text, without control or format (bidi, zero-width) characters`,
    );
  return reason;
}

/** The canonical bytes of a request document (RFC 8785). */
export const approvalRequestBytes = (d: ApprovalRequestDoc): Buffer => canonicalBytes(d);

/** SHA-256 of the canonical request: the WebAuthn challenge (raw bytes). */
export function approvalDigest(canonical: string | Buffer): Buffer {
  return createHash('sha256').update(canonical).digest();
}
