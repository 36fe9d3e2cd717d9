/**
 * The audit record (docs/audit.md §Records): one decision or state change, with the actor (who
 * acted: an agent, an operator, the principal directly, or the issuer itself) and the principal
 * (the human on whose behalf, OIDC `iss` + `sub`) as separate fields that are never collapsed.
 * Every field is always present (null or [] when it does not apply), so the record has one
 * shape and one RFC 8785 encoding, and that encoding is the Merkle leaf.
 *
 * Secrets never enter a record: there is no field for one, and a string that looks like a join
 * token or a private key is refused whatever field it is in (a guard against a caller passing
 * the wrong value as a reason).
 */
import { AuditError } from '../errors.js';
import { parseStrictJson, StrictJsonError } from '../jose/strict-json.js';
import { canonicalBytes } from './jcs.js';

export const AUDIT_RECORD_VERSION = 1;
/** Largest canonical record accepted, bytes: a record names ids and digests, never documents. */
export const MAX_AUDIT_RECORD_BYTES = 16 * 1024;
/** Longest string field, UTF-16 units: a SPIFFE ID may be 2048 bytes, revocation reasons 512. */
export const MAX_AUDIT_STRING = 4096;
/** Most items in a list field (lineage is bounded by the delegation depth, policies by a snapshot). */
export const MAX_AUDIT_LIST = 64;

export const AUDIT_EVENTS = [
  'handshake.issued',
  'handshake.refused',
  'grant.created',
  'grant.denied',
  'grant.escalated',
  'writ.issued',
  'delegation.accepted',
  'delegation.refused',
  'revocation',
  'task.ended',
  'policy.pushed',
  'policy.activated',
  'entry.created',
  'entry.deleted',
  'join_token.created',
  'key.rotated',
  'approval.requested',
  'approval.granted',
  'approval.denied',
  'approval.expired',
  'passkey.registered',
] as const;
export type AuditEvent = (typeof AUDIT_EVENTS)[number];

/** Who acted. An agent is named by its SPIFFE ID and key thumbprint; an operator by its admin identity. */
export type AuditActor =
  | { readonly kind: 'agent'; readonly spiffeId: string; readonly jkt: string }
  | { readonly kind: 'operator'; readonly id: string }
  | { readonly kind: 'principal'; readonly iss: string; readonly sub: string }
  | { readonly kind: 'issuer' };

/** The human on whose behalf (OIDC issuer and subject). */
export interface AuditPrincipal {
  readonly iss: string;
  readonly sub: string;
}

export type AuditDecision = 'allow' | 'deny' | 'escalate';

export interface AuditRecord {
  readonly v: typeof AUDIT_RECORD_VERSION;
  /** Position in the log: the Merkle leaf index, from 0. */
  readonly seq: number;
  /** Unix milliseconds. */
  readonly at: number;
  readonly event: AuditEvent;
  readonly actor: AuditActor;
  readonly principal: AuditPrincipal | null;
  readonly task: string | null;
  /** Grant ids from the root down. */
  readonly lineage: readonly string[];
  readonly action: string | null;
  readonly resource: string | null;
  readonly decision: AuditDecision | null;
  /** The reason code of a refusal (`ERR_...`), or a revocation's reason. */
  readonly reason: string | null;
  /** The policies that determined the decision. */
  readonly policies: readonly string[];
  /** Hex SHA-256 of the policy snapshot that decided. */
  readonly snapshot: string | null;
  /** Hex SHA-256 of the attestation evidence. */
  readonly evidence: string | null;
  /** Ids of what the change created (writ jti, grant jti, SVID serial, entry id, ...). */
  readonly created: readonly string[];
}

/** A record before the log gives it its place. */
export type NewAuditRecord = Omit<AuditRecord, 'v' | 'seq'>;

const KEYS = [
  'action',
  'actor',
  'at',
  'created',
  'decision',
  'event',
  'evidence',
  'lineage',
  'policies',
  'principal',
  'reason',
  'resource',
  'seq',
  'snapshot',
  'task',
  'v',
];
/** A set of field names, listed in order for messages. */
interface Fields {
  readonly names: readonly string[];
  readonly set: ReadonlySet<string>;
}
const fields = (names: readonly string[]): Fields => ({ names, set: new Set(names) });
const RECORD_FIELDS = fields(KEYS);
const PRINCIPAL_FIELDS = fields(['iss', 'sub']);
const ACTOR_FIELDS: Readonly<Record<AuditActor['kind'], Fields>> = {
  agent: fields(['jkt', 'kind', 'spiffeId']),
  operator: fields(['id', 'kind']),
  principal: fields(['iss', 'kind', 'sub']),
  issuer: fields(['kind']),
};
const HEX64 = /^[0-9a-f]{64}$/;
const SURROGATE = /[\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** What a join token (`<16 hex>.<43 base64url>`) or a PEM private key looks like, anywhere in a string. */
const SECRET_SHAPES: readonly RegExp[] = [/(?<![0-9a-f])[0-9a-f]{16}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/, /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/];

/** True when `s` holds what a join token or a PEM private key looks like (callers refuse such text before it is published anywhere). */
export function looksLikeSecret(s: string): boolean {
  // Neither shape fits a string without its fixed part: 60 characters around a '.', or "PRIVATE KEY-----".
  if (!(s.length >= 60 && s.includes('.')) && !s.includes('PRIVATE KEY-----')) return false;
  return SECRET_SHAPES.some((re) => re.test(s));
}

const bad = (message: string): never => {
  throw new AuditError('ERR_AUDIT_RECORD_INVALID', `audit(record): ${message}`);
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * True when `o`'s own enumerable keys are `count` of `f` (default: all of them). They are
 * distinct, so `count` of them, each one of `f`, is exactly a set of that many.
 */
function hasFields(o: Record<string, unknown>, f: Fields, count = f.names.length): boolean {
  const got = Object.keys(o);
  return got.length === count && got.every((k) => f.set.has(k));
}
const exactly = (what: string, f: Fields) => `${what} must have exactly the fields ${f.names.join(', ')}`;

function text(v: unknown, field: string): string {
  if (typeof v !== 'string') return bad(`${field} must be a string`);
  if (v.length === 0 || v.length > MAX_AUDIT_STRING) bad(`${field} must be 1 to ${MAX_AUDIT_STRING} characters`);
  if (looksLikeSecret(v)) bad(`${field} looks like a secret (a join token or a private key); secrets never enter the audit log`);
  // RFC 8785 has no form for one (jcs.ts refuses it too); checked here because encodeRecord does not go through jcs.ts.
  if (SURROGATE.test(v) && LONE_SURROGATE.test(v)) bad(`${field} holds a lone surrogate`);
  return v;
}
const textOrNull = (v: unknown, field: string): string | null => (v === null ? null : text(v, field));

function list(v: unknown, field: string): string[] {
  if (!Array.isArray(v)) return bad(`${field} must be a list`);
  if (v.length > MAX_AUDIT_LIST) bad(`${field} holds more than ${MAX_AUDIT_LIST} items`);
  return v.map((e, i) => text(e, `${field}[${i}]`));
}

function digest(v: unknown, field: string): string | null {
  if (v === null) return null;
  if (typeof v !== 'string' || !HEX64.test(v)) return bad(`${field} must be 64 lower-case hex characters or null`);
  return v;
}

function integer(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return bad(`${field} must be a non-negative safe integer`);
  return v;
}

// Every object made here has its keys inserted in RFC 8785 §3.2.3 order (code-unit order), so
// that JSON.stringify of a checked or placed record writes its canonical bytes (serialize).

function actor(v: unknown): AuditActor {
  if (!isObject(v)) return bad('actor must be an object');
  const kind = v.kind;
  if (typeof kind !== 'string' || !Object.hasOwn(ACTOR_FIELDS, kind)) return bad('actor.kind must be agent, operator, principal or issuer');
  const f = ACTOR_FIELDS[kind as AuditActor['kind']];
  if (!hasFields(v, f)) bad(exactly(`a ${kind} actor`, f));
  switch (kind as AuditActor['kind']) {
    case 'agent':
      return { jkt: text(v.jkt, 'actor.jkt'), kind: 'agent', spiffeId: text(v.spiffeId, 'actor.spiffeId') };
    case 'operator':
      return { id: text(v.id, 'actor.id'), kind: 'operator' };
    case 'principal':
      return { iss: text(v.iss, 'actor.iss'), kind: 'principal', sub: text(v.sub, 'actor.sub') };
    case 'issuer':
      return { kind: 'issuer' };
  }
}

function principal(v: unknown): AuditPrincipal | null {
  if (v === null) return null;
  if (!isObject(v)) return bad('principal must be an object or null');
  if (!hasFields(v, PRINCIPAL_FIELDS)) bad(exactly('principal', PRINCIPAL_FIELDS));
  return { iss: text(v.iss, 'principal.iss'), sub: text(v.sub, 'principal.sub') };
}

function event(v: unknown): AuditEvent {
  if (typeof v !== 'string' || !(AUDIT_EVENTS as readonly string[]).includes(v)) return bad('event is not an audit event');
  return v as AuditEvent;
}

function decision(v: unknown): AuditDecision | null {
  if (v !== null && v !== 'allow' && v !== 'deny' && v !== 'escalate') return bad('decision must be allow, deny, escalate or null');
  return v;
}

/** The fields of a checked object that has exactly the fields of a record, or of a new one: a copy, keys in RFC 8785 order. */
function checkFields(v: Record<string, unknown>): NewAuditRecord {
  const ev = event(v.event);
  const dec = decision(v.decision);
  return {
    action: textOrNull(v.action, 'action'),
    actor: actor(v.actor),
    at: integer(v.at, 'at'),
    created: list(v.created, 'created'),
    decision: dec,
    event: ev,
    evidence: digest(v.evidence, 'evidence'),
    lineage: list(v.lineage, 'lineage'),
    policies: list(v.policies, 'policies'),
    principal: principal(v.principal),
    reason: textOrNull(v.reason, 'reason'),
    resource: textOrNull(v.resource, 'resource'),
    snapshot: digest(v.snapshot, 'snapshot'),
    task: textOrNull(v.task, 'task'),
  };
}

/** The record of fields `r` at place `seq` (checked), built key by key in RFC 8785 order (serialize). */
function placed(r: NewAuditRecord, seq: unknown): AuditRecord {
  return {
    action: r.action,
    actor: r.actor,
    at: r.at,
    created: r.created,
    decision: r.decision,
    event: r.event,
    evidence: r.evidence,
    lineage: r.lineage,
    policies: r.policies,
    principal: r.principal,
    reason: r.reason,
    resource: r.resource,
    seq: integer(seq, 'seq'),
    snapshot: r.snapshot,
    task: r.task,
    v: AUDIT_RECORD_VERSION,
  };
}

/** Checks a value is a well-formed record and returns it as one (a copy, keys in RFC 8785 order). */
export function checkRecord(v: unknown): AuditRecord {
  if (!isObject(v)) return bad('a record must be an object');
  if (!hasFields(v, RECORD_FIELDS)) bad(exactly('a record', RECORD_FIELDS));
  if (v.v !== AUDIT_RECORD_VERSION) bad(`v must be ${AUDIT_RECORD_VERSION}`);
  return placed(checkFields(v), v.seq);
}

/**
 * The RFC 8785 bytes of a record checkRecord or placeRecord made. Their keys (and the actor's
 * and principal's) are in RFC 8785 §3.2.3 order, and for such an object JSON.stringify writes
 * exactly the RFC 8785 text: its strings are escaped as §3.2.2.2 says (the checks refused lone
 * surrogates, which JSON.stringify would escape and RFC 8785 has no form for), its numbers are
 * safe integers (§3.2.2.3: ECMAScript's Number::toString, which JSON.stringify uses), and
 * nothing is dropped (no undefined, no functions). parseRecord checks every stored record
 * against jcs.ts, and test/unit/audit-record.test.ts holds the two to the same bytes.
 */
function serialize(r: AuditRecord): Buffer {
  const bytes = Buffer.from(JSON.stringify(r), 'utf8');
  if (bytes.length > MAX_AUDIT_RECORD_BYTES) bad(`record of ${bytes.length} bytes is larger than ${MAX_AUDIT_RECORD_BYTES}`);
  return bytes;
}

/** The record's RFC 8785 bytes: the Merkle leaf. Refuses anything checkRecord refuses. */
export function encodeRecord(r: AuditRecord): Buffer {
  return serialize(checkRecord(r));
}

declare const CHECKED: unique symbol;
/** A new record as checkNewRecord returned it: checked, and a copy its caller cannot change. */
export type CheckedNewRecord = NewAuditRecord & { readonly [CHECKED]: true };

/** The fields of a new record: those of a record but its place and version. */
const NEW_FIELDS = fields(KEYS.filter((k) => k !== 'seq' && k !== 'v'));

/**
 * Checks a record before it has its place (the audit log places it at commit); returns a
 * checked copy (keys in RFC 8785 order). A `v` or `seq` the caller passed is ignored, never kept.
 */
export function checkNewRecord(r: NewAuditRecord): CheckedNewRecord {
  const v: unknown = r;
  if (!isObject(v)) return bad('a record must be an object');
  // All of NEW_FIELDS, and `seq` or `v` (or both) when present.
  const placedKeys = (Object.prototype.propertyIsEnumerable.call(v, 'seq') ? 1 : 0) + (Object.prototype.propertyIsEnumerable.call(v, 'v') ? 1 : 0);
  if (!hasFields(v, RECORD_FIELDS, NEW_FIELDS.names.length + placedKeys)) bad(exactly('a new record', NEW_FIELDS));
  return checkFields(v) as CheckedNewRecord;
}

/** A checked new record at its place `seq`, and its RFC 8785 bytes (the Merkle leaf), without checking it again. */
export function placeRecord(r: CheckedNewRecord, seq: number): { record: AuditRecord; canonical: Buffer } {
  const record = placed(r, seq);
  return { record, canonical: serialize(record) };
}

/**
 * Parses the bytes of a record. UNTRUSTED input (a proof bundle, a row read back from the
 * database): strict UTF-8, strict JSON, the record shape, and the bytes must be exactly the
 * canonical encoding, so one record has one leaf hash.
 */
export function parseRecord(bytes: Uint8Array): AuditRecord {
  if (bytes.length > MAX_AUDIT_RECORD_BYTES) bad(`record of ${bytes.length} bytes is larger than ${MAX_AUDIT_RECORD_BYTES}`);
  let json: unknown;
  try {
    json = parseStrictJson(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes), 4);
  } catch (e) {
    if (e instanceof StrictJsonError || e instanceof TypeError) return bad(`not strict JSON: ${e.message}`);
    throw e;
  }
  const r = checkRecord(json);
  if (!canonicalBytes(r).equals(Buffer.from(bytes))) bad('bytes are not the RFC 8785 canonical form of the record');
  return r;
}
