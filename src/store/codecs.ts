/**
 * Records ↔ rows, once for every backend. Each table's columns are listed here in the order
 * its statements bind them (queries.ts builds INSERTs and SELECTs from these lists), and each
 * encoder returns a row keyed by exactly those columns, so a column added to one side and not
 * the other does not type-check. Decoders accept what either driver returns for a column
 * (SQLite numbers, PostgreSQL BIGINT as decimal strings) and refuse anything else: a value of
 * the wrong type means a schema or driver mismatch, and guessing would hide it.
 */
import { StoreError } from '../errors.js';
import type { Entry, Selector } from '../registration/entry.js';
import type {
  ApprovalRecord,
  ApprovalState,
  AttestedAgentRecord,
  AuditCheckpointRecord,
  AuditKeyRecord,
  AuditRecordRow,
  CaKeyRecord,
  CaKeyState,
  DecisionRecord,
  GrantRecord,
  IssuedSvidRecord,
  JoinTokenRecord,
  NewRevocation,
  PasskeyCeremonyRecord,
  PasskeyRecord,
  PolicySnapshotRecord,
  RevocationRecord,
  StatusListRecord,
  TaskRecord,
  TpmRecord,
  WritRecord,
} from './store.js';

/** What a driver binds. */
export type SqlValue = string | number | Buffer | null | readonly string[] | readonly number[];
/** What a driver returns for one row. */
export type Row = Readonly<Record<string, unknown>>;

export interface Table<C extends string = string> {
  readonly name: string;
  readonly columns: readonly C[];
}
export type RowOf<T extends Table> = { readonly [K in T['columns'][number]]: SqlValue };

const table = <const C extends string>(name: string, columns: readonly C[]): Table<C> => ({ name, columns });

/** A row's values in the table's column order. */
export function bind<T extends Table>(t: T, row: RowOf<T>): SqlValue[] {
  return t.columns.map((c) => row[c as keyof RowOf<T>]);
}

const bad = (column: string, v: unknown) => new StoreError(`store: column ${column} holds ${v === null ? 'null' : typeof v}, not the expected type`);

export function int(v: unknown, column: string): number {
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) return v;
  } else if (typeof v === 'string' && /^-?[0-9]{1,16}$/.test(v)) {
    const n = Number(v);
    if (Number.isSafeInteger(n)) return n;
  } else if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) {
    return Number(v);
  }
  throw bad(column, v);
}
const intOrNull = (v: unknown, column: string): number | null => (v === null ? null : int(v, column));
function str(v: unknown, column: string): string {
  if (typeof v !== 'string') throw bad(column, v);
  return v;
}
function bytes(v: unknown, column: string): Buffer {
  if (!Buffer.isBuffer(v)) throw bad(column, v);
  return v;
}
function json<T>(v: unknown, column: string): T {
  try {
    return JSON.parse(str(v, column)) as T;
  } catch (e) {
    if (e instanceof StoreError) throw e;
    throw new StoreError(`store: column ${column} is not JSON`, { cause: e });
  }
}

export const ENTRIES = table('entries', [
  'id',
  'spiffe_id',
  'selectors_key',
  'selectors',
  'x509_svid_ttl',
  'jwt_svid_ttl',
  'scope_ceiling',
  'hint',
  'created_at',
]);

export const encodeEntry = (e: Entry, selectorsKey: string): RowOf<typeof ENTRIES> => ({
  id: e.id,
  spiffe_id: e.spiffeId,
  selectors_key: selectorsKey,
  selectors: JSON.stringify(e.selectors),
  x509_svid_ttl: e.x509SvidTtl,
  jwt_svid_ttl: e.jwtSvidTtl,
  scope_ceiling: JSON.stringify(e.scopeCeiling),
  hint: e.hint,
  created_at: e.createdAt,
});

export const decodeEntry = (r: Row): Entry => ({
  id: str(r.id, 'entries.id'),
  spiffeId: str(r.spiffe_id, 'entries.spiffe_id'),
  selectors: json<Selector[]>(r.selectors, 'entries.selectors'),
  x509SvidTtl: int(r.x509_svid_ttl, 'entries.x509_svid_ttl'),
  jwtSvidTtl: int(r.jwt_svid_ttl, 'entries.jwt_svid_ttl'),
  scopeCeiling: json<string[]>(r.scope_ceiling, 'entries.scope_ceiling'),
  hint: str(r.hint, 'entries.hint'),
  createdAt: int(r.created_at, 'entries.created_at'),
});

/** The index row of one selector ("type:value") of an entry. */
export const selectorKey = (s: Selector): string => `${s.type}:${s.value}`;

export const JOIN_TOKENS = table('join_tokens', ['id', 'secret_hash', 'expires_at', 'created_at', 'used_at']);

export const encodeJoinToken = (t: JoinTokenRecord): RowOf<typeof JOIN_TOKENS> => ({
  id: t.id,
  secret_hash: t.secretHash,
  expires_at: t.expiresAt,
  created_at: t.createdAt,
  used_at: t.usedAt,
});

export const decodeJoinToken = (r: Row): JoinTokenRecord => ({
  id: str(r.id, 'join_tokens.id'),
  secretHash: bytes(r.secret_hash, 'join_tokens.secret_hash'),
  expiresAt: int(r.expires_at, 'join_tokens.expires_at'),
  createdAt: int(r.created_at, 'join_tokens.created_at'),
  usedAt: intOrNull(r.used_at, 'join_tokens.used_at'),
});

export const CA_KEYS = table('ca_keys', ['id', 'kind', 'state', 'cert_der', 'public_key_der', 'sealed_key', 'not_before', 'not_after']);

export const encodeCaKey = (k: CaKeyRecord): RowOf<typeof CA_KEYS> => ({
  id: k.id,
  kind: k.kind,
  state: k.state,
  cert_der: k.certDer,
  public_key_der: k.publicKeyDer,
  sealed_key: k.sealedKey,
  not_before: k.notBefore,
  not_after: k.notAfter,
});

export const decodeCaKey = (r: Row): CaKeyRecord => ({
  id: str(r.id, 'ca_keys.id'),
  kind: str(r.kind, 'ca_keys.kind') as CaKeyRecord['kind'],
  state: str(r.state, 'ca_keys.state') as CaKeyState,
  certDer: bytes(r.cert_der, 'ca_keys.cert_der'),
  publicKeyDer: bytes(r.public_key_der, 'ca_keys.public_key_der'),
  sealedKey: bytes(r.sealed_key, 'ca_keys.sealed_key'),
  notBefore: int(r.not_before, 'ca_keys.not_before'),
  notAfter: int(r.not_after, 'ca_keys.not_after'),
});

export const ISSUED_SVIDS = table('issued_svids', ['id', 'kind', 'spiffe_id', 'entry_id', 'evidence_type', 'issued_at', 'expires_at']);

export const encodeIssued = (r: IssuedSvidRecord): RowOf<typeof ISSUED_SVIDS> => ({
  id: r.id,
  kind: r.kind,
  spiffe_id: r.spiffeId,
  entry_id: r.entryId,
  evidence_type: r.evidenceType,
  issued_at: r.issuedAt,
  expires_at: r.expiresAt,
});

export const TPM_ENDORSEMENTS = table('tpm_endorsements', [
  'ek_hash',
  'ak_name',
  'firmware_version',
  'reset_count',
  'restart_count',
  'clock',
  'activated_at',
  'updated_at',
]);

export const encodeTpm = (t: TpmRecord): RowOf<typeof TPM_ENDORSEMENTS> => ({
  ek_hash: t.ekHash,
  ak_name: t.akName,
  firmware_version: t.firmwareVersion,
  reset_count: t.resetCount,
  restart_count: t.restartCount,
  clock: t.clock,
  activated_at: t.activatedAt,
  updated_at: t.updatedAt,
});

export const decodeTpm = (r: Row): TpmRecord => ({
  ekHash: str(r.ek_hash, 'tpm_endorsements.ek_hash'),
  akName: bytes(r.ak_name, 'tpm_endorsements.ak_name'),
  firmwareVersion: str(r.firmware_version, 'tpm_endorsements.firmware_version'),
  resetCount: int(r.reset_count, 'tpm_endorsements.reset_count'),
  restartCount: int(r.restart_count, 'tpm_endorsements.restart_count'),
  clock: str(r.clock, 'tpm_endorsements.clock'),
  activatedAt: int(r.activated_at, 'tpm_endorsements.activated_at'),
  updatedAt: int(r.updated_at, 'tpm_endorsements.updated_at'),
});

export const ATTESTED_AGENTS = table('attested_agents', [
  'id',
  'spiffe_id',
  'entry_id',
  'evidence_type',
  'selectors',
  'platform',
  'key_residency',
  'evidence_digest',
  'serial',
  'jkt',
  'svid_expires_at',
  'attested_at',
  'renewed_at',
  'renewals',
]);

export const encodeAttestedAgent = (a: AttestedAgentRecord): RowOf<typeof ATTESTED_AGENTS> => ({
  id: a.id,
  spiffe_id: a.spiffeId,
  entry_id: a.entryId,
  evidence_type: a.evidenceType,
  selectors: JSON.stringify(a.selectors.map((s) => ({ type: s.type, value: s.value }))),
  platform: a.platform,
  key_residency: a.keyResidency,
  evidence_digest: a.evidenceDigest,
  serial: a.serial,
  jkt: a.jkt,
  svid_expires_at: a.svidExpiresAt,
  attested_at: a.attestedAt,
  renewed_at: a.renewedAt,
  renewals: a.renewals,
});

export const decodeAttestedAgent = (r: Row): AttestedAgentRecord => ({
  id: str(r.id, 'attested_agents.id'),
  spiffeId: str(r.spiffe_id, 'attested_agents.spiffe_id'),
  entryId: str(r.entry_id, 'attested_agents.entry_id'),
  evidenceType: str(r.evidence_type, 'attested_agents.evidence_type'),
  selectors: json<Selector[]>(r.selectors, 'attested_agents.selectors'),
  platform: str(r.platform, 'attested_agents.platform'),
  keyResidency: str(r.key_residency, 'attested_agents.key_residency'),
  evidenceDigest: bytes(r.evidence_digest, 'attested_agents.evidence_digest'),
  serial: str(r.serial, 'attested_agents.serial'),
  jkt: str(r.jkt, 'attested_agents.jkt'),
  svidExpiresAt: int(r.svid_expires_at, 'attested_agents.svid_expires_at'),
  attestedAt: int(r.attested_at, 'attested_agents.attested_at'),
  renewedAt: intOrNull(r.renewed_at, 'attested_agents.renewed_at'),
  renewals: int(r.renewals, 'attested_agents.renewals'),
});

export const POLICY_SNAPSHOTS = table('policy_snapshots', ['digest', 'policies', 'created_at']);

export const encodeSnapshot = (s: PolicySnapshotRecord): RowOf<typeof POLICY_SNAPSHOTS> => ({
  digest: s.digest,
  policies: JSON.stringify(s.policies),
  created_at: s.createdAt,
});

export const decodeSnapshot = (r: Row): PolicySnapshotRecord => ({
  digest: str(r.digest, 'policy_snapshots.digest'),
  policies: json<PolicySnapshotRecord['policies']>(r.policies, 'policy_snapshots.policies'),
  createdAt: int(r.created_at, 'policy_snapshots.created_at'),
});

export const decodeActivePolicy = (r: Row) => ({
  digest: str(r.digest, 'policy_active.digest'),
  activatedAt: int(r.activated_at, 'policy_active.activated_at'),
});

export const GRANTS = table('grants', [
  'jti',
  'issuer',
  'rid',
  'depth',
  'task_id',
  'principal_iss',
  'principal_sub',
  'principal_groups',
  'delegate_jkt',
  'expires_at',
  'compact',
  'created_at',
  'revoked_at',
]);

export const encodeGrant = (g: GrantRecord): RowOf<typeof GRANTS> => ({
  jti: g.jti,
  issuer: g.issuer,
  rid: g.rid,
  depth: g.depth,
  task_id: g.taskId,
  principal_iss: g.principalIss,
  principal_sub: g.principalSub,
  principal_groups: JSON.stringify(g.principalGroups),
  delegate_jkt: g.delegateJkt,
  expires_at: g.expiresAt,
  compact: g.compact,
  created_at: g.createdAt,
  revoked_at: g.revokedAt,
});

export const decodeGrant = (r: Row): GrantRecord => ({
  jti: str(r.jti, 'grants.jti'),
  issuer: str(r.issuer, 'grants.issuer'),
  rid: str(r.rid, 'grants.rid'),
  depth: int(r.depth, 'grants.depth'),
  taskId: str(r.task_id, 'grants.task_id'),
  principalIss: str(r.principal_iss, 'grants.principal_iss'),
  principalSub: str(r.principal_sub, 'grants.principal_sub'),
  principalGroups: json<string[]>(r.principal_groups, 'grants.principal_groups'),
  delegateJkt: str(r.delegate_jkt, 'grants.delegate_jkt'),
  expiresAt: int(r.expires_at, 'grants.expires_at'),
  compact: str(r.compact, 'grants.compact'),
  createdAt: int(r.created_at, 'grants.created_at'),
  revokedAt: intOrNull(r.revoked_at, 'grants.revoked_at'),
});

export const WRITS = table('writs', [
  'jti',
  'spiffe_id',
  'jkt',
  'chain_digest',
  'lineage',
  'task_id',
  'evidence_digest',
  'issued_at',
  'expires_at',
  'principal',
  'parent_jti',
  'entry_id',
  'platform',
  'evidence_type',
  'status_list',
  'status_idx',
  'revoked_at',
  'revoked_seq',
]);

export const encodeWrit = (w: WritRecord): RowOf<typeof WRITS> => ({
  jti: w.jti,
  spiffe_id: w.spiffeId,
  jkt: w.jkt,
  chain_digest: w.chainDigest,
  lineage: JSON.stringify(w.lineage),
  task_id: w.taskId,
  evidence_digest: w.evidenceDigest,
  issued_at: w.issuedAt,
  expires_at: w.expiresAt,
  principal: w.principal,
  parent_jti: w.parentJti,
  entry_id: w.entryId,
  platform: w.platform,
  evidence_type: w.evidenceType,
  status_list: w.statusList,
  status_idx: w.statusIdx,
  revoked_at: w.revokedAt,
  revoked_seq: w.revokedSeq,
});

const strOrNull = (v: unknown, column: string): string | null => (v === null ? null : str(v, column));

export const decodeWrit = (r: Row): WritRecord => ({
  jti: str(r.jti, 'writs.jti'),
  spiffeId: str(r.spiffe_id, 'writs.spiffe_id'),
  jkt: str(r.jkt, 'writs.jkt'),
  chainDigest: bytes(r.chain_digest, 'writs.chain_digest'),
  lineage: json<string[]>(r.lineage, 'writs.lineage'),
  taskId: str(r.task_id, 'writs.task_id'),
  evidenceDigest: bytes(r.evidence_digest, 'writs.evidence_digest'),
  issuedAt: int(r.issued_at, 'writs.issued_at'),
  expiresAt: int(r.expires_at, 'writs.expires_at'),
  principal: str(r.principal, 'writs.principal'),
  parentJti: strOrNull(r.parent_jti, 'writs.parent_jti'),
  entryId: str(r.entry_id, 'writs.entry_id'),
  platform: str(r.platform, 'writs.platform'),
  evidenceType: str(r.evidence_type, 'writs.evidence_type'),
  statusList: intOrNull(r.status_list, 'writs.status_list'),
  statusIdx: intOrNull(r.status_idx, 'writs.status_idx'),
  revokedAt: intOrNull(r.revoked_at, 'writs.revoked_at'),
  revokedSeq: intOrNull(r.revoked_seq, 'writs.revoked_seq'),
});

export const TASKS = table('tasks', ['id', 'principal_iss', 'principal_sub', 'goal', 'expires_at', 'created_at', 'ended_at', 'ended_by', 'end_reason']);

export const encodeTask = (t: TaskRecord): RowOf<typeof TASKS> => ({
  id: t.id,
  principal_iss: t.principalIss,
  principal_sub: t.principalSub,
  goal: t.goal,
  expires_at: t.expiresAt,
  created_at: t.createdAt,
  ended_at: t.endedAt,
  ended_by: t.endedBy,
  end_reason: t.endReason,
});

export const decodeTask = (r: Row): TaskRecord => ({
  id: str(r.id, 'tasks.id'),
  principalIss: str(r.principal_iss, 'tasks.principal_iss'),
  principalSub: str(r.principal_sub, 'tasks.principal_sub'),
  goal: str(r.goal, 'tasks.goal'),
  expiresAt: int(r.expires_at, 'tasks.expires_at'),
  createdAt: int(r.created_at, 'tasks.created_at'),
  endedAt: intOrNull(r.ended_at, 'tasks.ended_at'),
  endedBy: strOrNull(r.ended_by, 'tasks.ended_by'),
  endReason: strOrNull(r.end_reason, 'tasks.end_reason'),
});

/** Without `seq`: the engine assigns it, strictly increasing. `key` is kind:target, unique. */
export const REVOCATIONS = table('revocations', ['key', 'kind', 'target', 'reason', 'actor', 'principal', 'at', 'derived_from', 'expires_at']);
const REVOCATION_COLUMNS = ['seq', ...REVOCATIONS.columns] as const;
export const REVOCATIONS_READ = table('revocations', REVOCATION_COLUMNS);

export const encodeRevocation = (r: NewRevocation): RowOf<typeof REVOCATIONS> => ({
  key: `${r.kind}:${r.target}`,
  kind: r.kind,
  target: r.target,
  reason: r.reason,
  actor: r.actor,
  principal: r.principal,
  at: r.at,
  derived_from: r.derivedFrom,
  expires_at: r.expiresAt,
});

export const decodeRevocation = (r: Row): RevocationRecord => ({
  seq: int(r.seq, 'revocations.seq'),
  kind: str(r.kind, 'revocations.kind'),
  target: str(r.target, 'revocations.target'),
  reason: str(r.reason, 'revocations.reason'),
  actor: str(r.actor, 'revocations.actor'),
  principal: str(r.principal, 'revocations.principal'),
  at: int(r.at, 'revocations.at'),
  derivedFrom: intOrNull(r.derived_from, 'revocations.derived_from'),
  expiresAt: intOrNull(r.expires_at, 'revocations.expires_at'),
});

export const STATUS_LISTS = table('status_lists', ['id', 'size', 'allocated', 'created_at']);

export const encodeStatusList = (l: StatusListRecord): RowOf<typeof STATUS_LISTS> => ({
  id: l.id,
  size: l.size,
  allocated: l.allocated,
  created_at: l.createdAt,
});

export const decodeStatusList = (r: Row): StatusListRecord => ({
  id: int(r.id, 'status_lists.id'),
  size: int(r.size, 'status_lists.size'),
  allocated: int(r.allocated, 'status_lists.allocated'),
  createdAt: int(r.created_at, 'status_lists.created_at'),
});

/** Without `id`: the engine assigns it, in insertion order (listDecisions sorts on it). */
export const POLICY_DECISIONS = table('policy_decisions', ['at', 'actor', 'principal', 'action', 'decision', 'snapshot', 'policies', 'reason']);

export const encodeDecision = (d: DecisionRecord): RowOf<typeof POLICY_DECISIONS> => ({
  at: d.at,
  actor: d.actor,
  principal: d.principal,
  action: d.action,
  decision: d.decision,
  snapshot: d.snapshot,
  policies: JSON.stringify(d.policies),
  reason: d.reason,
});

export const decodeDecision = (r: Row): DecisionRecord => ({
  at: int(r.at, 'policy_decisions.at'),
  actor: str(r.actor, 'policy_decisions.actor'),
  principal: str(r.principal, 'policy_decisions.principal'),
  action: str(r.action, 'policy_decisions.action'),
  decision: str(r.decision, 'policy_decisions.decision') as DecisionRecord['decision'],
  snapshot: str(r.snapshot, 'policy_decisions.snapshot'),
  policies: json<string[]>(r.policies, 'policy_decisions.policies'),
  reason: str(r.reason, 'policy_decisions.reason'),
});

export const AUDIT_RECORDS = table('audit_records', ['seq', 'at', 'event', 'actor', 'principal', 'task_id', 'canonical', 'leaf_hash']);

export const encodeAuditRecord = (r: AuditRecordRow): RowOf<typeof AUDIT_RECORDS> => ({
  seq: r.seq,
  at: r.at,
  event: r.event,
  actor: r.actor,
  principal: r.principal,
  task_id: r.task,
  canonical: r.canonical,
  leaf_hash: r.leafHash,
});

export const decodeAuditRecord = (r: Row): AuditRecordRow => ({
  seq: int(r.seq, 'audit_records.seq'),
  at: int(r.at, 'audit_records.at'),
  event: str(r.event, 'audit_records.event'),
  actor: str(r.actor, 'audit_records.actor'),
  principal: str(r.principal, 'audit_records.principal'),
  task: str(r.task_id, 'audit_records.task_id'),
  canonical: bytes(r.canonical, 'audit_records.canonical'),
  leafHash: bytes(r.leaf_hash, 'audit_records.leaf_hash'),
});

export const AUDIT_CHECKPOINTS = table('audit_checkpoints', ['size', 'root', 'note', 'signed_at']);

export const encodeAuditCheckpoint = (c: AuditCheckpointRecord): RowOf<typeof AUDIT_CHECKPOINTS> => ({
  size: c.size,
  root: c.root,
  note: c.note,
  signed_at: c.signedAt,
});

export const decodeAuditCheckpoint = (r: Row): AuditCheckpointRecord => ({
  size: int(r.size, 'audit_checkpoints.size'),
  root: bytes(r.root, 'audit_checkpoints.root'),
  note: str(r.note, 'audit_checkpoints.note'),
  signedAt: int(r.signed_at, 'audit_checkpoints.signed_at'),
});

export const AUDIT_KEYS = table('audit_keys', ['id', 'name', 'public_key', 'sealed_key', 'state', 'created_at']);

export const encodeAuditKey = (k: AuditKeyRecord): RowOf<typeof AUDIT_KEYS> => ({
  id: k.id,
  name: k.name,
  public_key: k.publicKey,
  sealed_key: k.sealedKey,
  state: k.state,
  created_at: k.createdAt,
});

export const decodeAuditKey = (r: Row): AuditKeyRecord => ({
  id: str(r.id, 'audit_keys.id'),
  name: str(r.name, 'audit_keys.name'),
  publicKey: bytes(r.public_key, 'audit_keys.public_key'),
  sealedKey: bytes(r.sealed_key, 'audit_keys.sealed_key'),
  state: str(r.state, 'audit_keys.state') as AuditKeyRecord['state'],
  createdAt: int(r.created_at, 'audit_keys.created_at'),
});

export const APPROVALS = table('approvals', [
  'id',
  'task_id',
  'principal_iss',
  'principal_sub',
  'actor',
  'actor_jkt',
  'writ_jti',
  'lineage',
  'action',
  'resource',
  'reason',
  'policies',
  'snapshot',
  'request',
  'digest',
  'created_at',
  'expires_at',
  'state',
  'decided_at',
  'decided_by',
  'decision_reason',
  'credential_id',
  'step_up',
]);

export const encodeApproval = (a: ApprovalRecord): RowOf<typeof APPROVALS> => ({
  id: a.id,
  task_id: a.taskId,
  principal_iss: a.principalIss,
  principal_sub: a.principalSub,
  actor: a.actor,
  actor_jkt: a.actorJkt,
  writ_jti: a.writJti,
  lineage: JSON.stringify(a.lineage),
  action: a.action,
  resource: a.resource,
  reason: a.reason,
  policies: JSON.stringify(a.policies),
  snapshot: a.snapshot,
  request: a.request,
  digest: a.digest,
  created_at: a.createdAt,
  expires_at: a.expiresAt,
  state: a.state,
  decided_at: a.decidedAt,
  decided_by: a.decidedBy,
  decision_reason: a.decisionReason,
  credential_id: a.credentialId,
  step_up: a.stepUp,
});

const APPROVAL_STATES: readonly string[] = ['pending', 'approved', 'denied', 'expired'];

export const decodeApproval = (r: Row): ApprovalRecord => {
  const state = str(r.state, 'approvals.state');
  if (!APPROVAL_STATES.includes(state)) throw bad('approvals.state', state);
  return {
    id: str(r.id, 'approvals.id'),
    taskId: str(r.task_id, 'approvals.task_id'),
    principalIss: str(r.principal_iss, 'approvals.principal_iss'),
    principalSub: str(r.principal_sub, 'approvals.principal_sub'),
    actor: str(r.actor, 'approvals.actor'),
    actorJkt: str(r.actor_jkt, 'approvals.actor_jkt'),
    writJti: str(r.writ_jti, 'approvals.writ_jti'),
    lineage: json<string[]>(r.lineage, 'approvals.lineage'),
    action: str(r.action, 'approvals.action'),
    resource: str(r.resource, 'approvals.resource'),
    reason: str(r.reason, 'approvals.reason'),
    policies: json<string[]>(r.policies, 'approvals.policies'),
    snapshot: str(r.snapshot, 'approvals.snapshot'),
    request: str(r.request, 'approvals.request'),
    digest: str(r.digest, 'approvals.digest'),
    createdAt: int(r.created_at, 'approvals.created_at'),
    expiresAt: int(r.expires_at, 'approvals.expires_at'),
    state: state as ApprovalState,
    decidedAt: intOrNull(r.decided_at, 'approvals.decided_at'),
    decidedBy: strOrNull(r.decided_by, 'approvals.decided_by'),
    decisionReason: strOrNull(r.decision_reason, 'approvals.decision_reason'),
    credentialId: strOrNull(r.credential_id, 'approvals.credential_id'),
    stepUp: strOrNull(r.step_up, 'approvals.step_up'),
  };
};

export const PASSKEYS = table('passkeys', ['id', 'owner_iss', 'owner_sub', 'public_key', 'sign_count', 'created_at', 'used_at']);

export const encodePasskey = (k: PasskeyRecord): RowOf<typeof PASSKEYS> => ({
  id: k.id,
  owner_iss: k.ownerIss,
  owner_sub: k.ownerSub,
  public_key: k.publicKey,
  sign_count: k.signCount,
  created_at: k.createdAt,
  used_at: k.usedAt,
});

export const decodePasskey = (r: Row): PasskeyRecord => ({
  id: str(r.id, 'passkeys.id'),
  ownerIss: str(r.owner_iss, 'passkeys.owner_iss'),
  ownerSub: str(r.owner_sub, 'passkeys.owner_sub'),
  publicKey: bytes(r.public_key, 'passkeys.public_key'),
  signCount: int(r.sign_count, 'passkeys.sign_count'),
  createdAt: int(r.created_at, 'passkeys.created_at'),
  usedAt: intOrNull(r.used_at, 'passkeys.used_at'),
});

export const PASSKEY_CEREMONIES = table('passkey_ceremonies', ['challenge', 'owner', 'statement', 'created_at', 'expires_at']);

export const encodePasskeyCeremony = (c: PasskeyCeremonyRecord): RowOf<typeof PASSKEY_CEREMONIES> => ({
  challenge: c.challenge,
  owner: c.owner,
  statement: c.statement,
  created_at: c.createdAt,
  expires_at: c.expiresAt,
});

export const decodePasskeyCeremony = (r: Row): PasskeyCeremonyRecord => ({
  challenge: str(r.challenge, 'passkey_ceremonies.challenge'),
  owner: str(r.owner, 'passkey_ceremonies.owner'),
  statement: strOrNull(r.statement, 'passkey_ceremonies.statement'),
  createdAt: int(r.created_at, 'passkey_ceremonies.created_at'),
  expiresAt: int(r.expires_at, 'passkey_ceremonies.expires_at'),
});
