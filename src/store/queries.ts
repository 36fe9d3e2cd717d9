/**
 * Every statement the store runs, once, in SQL both engines read the same way: upserts are
 * `INSERT ... ON CONFLICT`, the one set-valued parameter goes through `Dialect.textSet`, and
 * placeholders are `?`, rendered per dialect. Rendered once per store; drivers cache the
 * prepared form by `name`.
 */
import {
  APPROVALS,
  ATTESTED_AGENTS,
  AUDIT_CHECKPOINTS,
  AUDIT_KEYS,
  AUDIT_RECORDS,
  CA_KEYS,
  ENTRIES,
  GRANTS,
  ISSUED_SVIDS,
  JOIN_TOKENS,
  PASSKEY_CEREMONIES,
  PASSKEYS,
  POLICY_DECISIONS,
  POLICY_SNAPSHOTS,
  REVOCATIONS,
  REVOCATIONS_READ,
  STATUS_LISTS,
  type Table,
  TASKS,
  TPM_ENDORSEMENTS,
  WRITS,
} from './codecs.js';
import type { WritMatch } from './store.js';
import type { Dialect } from './dialect.js';

export interface Statement {
  /** Stable and unique per statement text (PostgreSQL prepares by name). */
  readonly name: string;
  readonly text: string;
}

const cols = (t: Table) => t.columns.join(', ');
const insert = (t: Table) => `INSERT INTO ${t.name} (${cols(t)}) VALUES (${t.columns.map(() => '?').join(', ')})`;
const select = (t: Table) => `SELECT ${cols(t)} FROM ${t.name}`;
/** The audit tree's size: the number of records, whose seq runs from 0 without a gap (migration 12). */
const AUDIT_SIZE = '(SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_records)';
/** findAuditRecords by one derived column (see auditRecordsBy_task below). */
const auditRecordsBy = (kind: string, column: string) => {
  const indexed = `(${AUDIT_SIZE} / 64 * 64)`;
  return `${select(AUDIT_RECORDS)} WHERE seq IN (
      SELECT seq FROM audit_records WHERE seq >= ${indexed} AND seq < ? AND ${column} = ?
      UNION ALL SELECT seq FROM (
        SELECT seq FROM audit_index WHERE kind = '${kind}' AND value = ? AND seq < ? AND seq < ${indexed} ORDER BY seq DESC LIMIT ?
      ) AS indexed
    ) ORDER BY seq DESC LIMIT ?`;
};
/** `col = excluded.col` for every column but the conflict key. */
const replaceAll = (t: Table, key: string) =>
  t.columns
    .filter((c) => c !== key)
    .map((c) => `${c} = excluded.${c}`)
    .join(', ');

/** The writs a match selects directly, as a subquery of one column `jti` with one parameter. */
const DIRECT: Readonly<Record<WritMatch['by'], string>> = {
  jti: 'SELECT jti FROM writs WHERE jti = ?',
  task: 'SELECT jti FROM writs WHERE task_id = ?',
  principal: 'SELECT jti FROM writs WHERE principal = ?',
  spiffe_id: 'SELECT jti FROM writs WHERE spiffe_id = ?',
  jkt: 'SELECT jti FROM writs WHERE jkt = ?',
  entry: 'SELECT jti FROM writs WHERE entry_id = ?',
  platform: 'SELECT jti FROM writs WHERE platform = ?',
  grant: 'SELECT writ_jti AS jti FROM writ_lineage WHERE grant_jti = ?',
};

/** Every writ a match selects and every writ delegated from those (through parent_jti), at any depth. */
const revokeWrits = (by: WritMatch['by']) =>
  `WITH RECURSIVE d(jti) AS (${DIRECT[by]} UNION SELECT w.jti FROM writs w JOIN d ON w.parent_jti = d.jti)
   UPDATE writs SET revoked_at = ?, revoked_seq = ? WHERE revoked_at IS NULL AND jti IN (SELECT jti FROM d)`;
/**
 * The writs a match selects directly whose kill set (the writ and every writ delegated from it,
 * at any depth) still holds a writ unexpired at the second parameter, each with the latest expiry
 * in that set (`kill_last`): an expired delegator whose children live still matters.
 */
const killRoots = (by: WritMatch['by']) =>
  `WITH RECURSIVE d(kill_root, jti) AS (SELECT m.jti, m.jti FROM (${DIRECT[by]}) m UNION SELECT d.kill_root, w.jti FROM writs w JOIN d ON w.parent_jti = d.jti),
   k(kill_root, kill_last) AS (SELECT d.kill_root, MAX(x.expires_at) FROM d JOIN writs x ON x.jti = d.jti GROUP BY d.kill_root)
   SELECT ${WRITS.columns.map((c) => `writs.${c}`).join(', ')}, k.kill_last FROM writs JOIN k ON writs.jti = k.kill_root
   WHERE k.kill_last > ? ORDER BY writs.issued_at, writs.jti LIMIT ?`;

export function buildQueries(d: Dialect) {
  const texts = {
    insertEntry: insert(ENTRIES),
    getEntry: `${select(ENTRIES)} WHERE id = ?`,
    listEntries: `${select(ENTRIES)} ORDER BY created_at, id`,
    insertSelector: 'INSERT INTO entry_selectors (entry_id, selector) VALUES (?, ?)',
    entriesBySelectors: `${select(ENTRIES)} WHERE id IN (SELECT entry_id FROM entry_selectors WHERE selector IN ${d.textSet}) ORDER BY created_at, id`,
    entryExists: 'SELECT 1 AS found FROM entries WHERE spiffe_id = ? AND selectors_key = ?',
    deleteEntry: 'DELETE FROM entries WHERE id = ?',

    insertToken: insert(JOIN_TOKENS),
    getToken: `${select(JOIN_TOKENS)} WHERE id = ?`,
    // One statement: the row lock (PostgreSQL) or the write lock (SQLite) makes it once-only.
    consumeToken: 'UPDATE join_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?',
    pruneTokens: 'DELETE FROM join_tokens WHERE expires_at < ?',

    listKeys: `${select(CA_KEYS)} ORDER BY not_before, id`,
    putKey: insert(CA_KEYS),
    setKeyState: 'UPDATE ca_keys SET state = ? WHERE id = ?',
    deleteKey: 'DELETE FROM ca_keys WHERE id = ?',

    getSeq: "SELECT value FROM meta WHERE key = 'bundle_sequence'",
    bumpSeq: `UPDATE meta SET value = CAST(CAST(value AS ${d.int}) + 1 AS TEXT) WHERE key = 'bundle_sequence' RETURNING value`,

    insertIssued: insert(ISSUED_SVIDS),
    countIssued: 'SELECT COUNT(*) AS n FROM issued_svids',
    pruneIssued: 'DELETE FROM issued_svids WHERE expires_at < ?',

    createApproval: insert(APPROVALS),
    getApproval: `${select(APPROVALS)} WHERE id = ?`,
    // Parameters: state ×3, now ×2 (-1: no clock, the stored state), task ×2, principal flag, iss,
    // sub, keyset flag, created_at, id, limit. The order matches the indexes, newest first.
    listApprovals: `${select(APPROVALS)} WHERE (? = ''
        OR (state = ? AND (state <> 'pending' OR expires_at > ?))
        OR (? = 'expired' AND state = 'pending' AND expires_at <= ?))
      AND (? = '' OR task_id = ?)
      AND (? = 0 OR (principal_iss = ? AND principal_sub = ?))
      AND (? = 0 OR created_at < ? OR (created_at = ? AND id < ?))
      ORDER BY created_at DESC, id DESC LIMIT ?`,
    // Bounded by LIMIT: a cap check reads no more index entries than the cap.
    countPendingApprovals:
      "SELECT COUNT(*) AS n FROM (SELECT 1 FROM approvals WHERE task_id = ? AND state = 'pending' AND expires_at > ? AND (? = '' OR writ_jti = ?) LIMIT ?) AS pending",
    findPendingApproval: `${select(APPROVALS)} WHERE writ_jti = ? AND action = ? AND resource = ? AND state = 'pending' AND expires_at > ? ORDER BY created_at DESC, id DESC LIMIT 1`,
    listExpiredPending: `${select(APPROVALS)} WHERE state = 'pending' AND expires_at <= ? ORDER BY expires_at, id LIMIT ?`,
    // One conditional statement: exactly one decision over a pending, unexpired request wins.
    decideApproval:
      "UPDATE approvals SET state = ?, decided_at = ?, decided_by = ?, decision_reason = ?, credential_id = ?, step_up = ? WHERE id = ? AND state = 'pending' AND expires_at > ?",
    // The same for expiry: of any number of replicas, one moves it (and writes its audit record).
    expireApproval: "UPDATE approvals SET state = 'expired' WHERE id = ? AND state = 'pending' AND expires_at <= ?",
    putPasskey: insert(PASSKEYS),
    getPasskey: `${select(PASSKEYS)} WHERE id = ?`,
    listPasskeys: `${select(PASSKEYS)} WHERE owner_iss = ? AND owner_sub = ? ORDER BY created_at, id`,
    usePasskey: 'UPDATE passkeys SET sign_count = ?, used_at = ? WHERE id = ? AND sign_count = ?',
    putPasskeyCeremony: insert(PASSKEY_CEREMONIES),
    // One statement: of concurrent takers of a challenge, exactly one gets the row.
    takePasskeyCeremony: `DELETE FROM passkey_ceremonies WHERE challenge = ? RETURNING ${cols(PASSKEY_CEREMONIES)}`,
    listPasskeyCeremonies: `${select(PASSKEY_CEREMONIES)} WHERE owner = ? AND expires_at > ? ORDER BY created_at, challenge`,
    countPasskeyCeremonies: 'SELECT COUNT(*) AS n FROM passkey_ceremonies WHERE expires_at > ?',
    prunePasskeyCeremonies: 'DELETE FROM passkey_ceremonies WHERE expires_at <= ?',

    putAttestedAgent: insert(ATTESTED_AGENTS),
    attestedAgentBySerial: `${select(ATTESTED_AGENTS)} WHERE serial = ?`,
    // One conditional statement: the row lock (PostgreSQL) or the write lock (SQLite) lets exactly
    // one renewal from a given serial win; the loser changes nothing.
    renewAttestedAgent:
      'UPDATE attested_agents SET serial = ?, jkt = ?, svid_expires_at = ?, key_residency = ?, renewed_at = ?, renewals = renewals + 1 WHERE id = ? AND serial = ?',
    pruneAttestedAgents: 'DELETE FROM attested_agents WHERE svid_expires_at < ?',
    attestedAgentBy_jkt: 'SELECT 1 AS found FROM attested_agents WHERE jkt = ? LIMIT 1',
    attestedAgentBy_platform: 'SELECT 1 AS found FROM attested_agents WHERE platform = ? LIMIT 1',

    getTpm: `${select(TPM_ENDORSEMENTS)} WHERE ek_hash = ?`,
    putTpm: `${insert(TPM_ENDORSEMENTS)} ON CONFLICT (ek_hash) DO UPDATE SET ${replaceAll(TPM_ENDORSEMENTS, 'ek_hash')}`,

    // Snapshots are immutable and content-addressed: the first one stored under a digest stays.
    putSnapshot: `${insert(POLICY_SNAPSHOTS)} ON CONFLICT (digest) DO NOTHING`,
    getSnapshot: `${select(POLICY_SNAPSHOTS)} WHERE digest = ?`,
    listSnapshots: `${select(POLICY_SNAPSHOTS)} ORDER BY created_at DESC, digest`,
    setActive:
      'INSERT INTO policy_active (id, digest, activated_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, activated_at = excluded.activated_at',
    getActive: 'SELECT digest, activated_at FROM policy_active WHERE id = 1',

    putGrant: insert(GRANTS),
    getGrant: `${select(GRANTS)} WHERE jti = ?`,
    putWrit: insert(WRITS),
    getWrit: `${select(WRITS)} WHERE jti = ?`,
    insertLineage: 'INSERT INTO writ_lineage (grant_jti, writ_jti) VALUES (?, ?)',
    revokeGrant: 'UPDATE grants SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL',
    grantsByTask: `${select(GRANTS)} WHERE task_id = ? ORDER BY created_at, jti LIMIT ?`,
    writsByTask: `${select(WRITS)} WHERE task_id = ? ORDER BY issued_at, jti LIMIT ?`,
    ...(Object.fromEntries(Object.keys(DIRECT).map((by) => [`revokeWritsBy_${by}`, revokeWrits(by as WritMatch['by'])])) as Record<
      `revokeWritsBy_${WritMatch['by']}`,
      string
    >),
    ...(Object.fromEntries(Object.keys(DIRECT).map((by) => [`killRootsBy_${by}`, killRoots(by as WritMatch['by'])])) as Record<
      `killRootsBy_${WritMatch['by']}`,
      string
    >),
    ...(Object.fromEntries(Object.entries(DIRECT).map(([by, sql]) => [`countWritsBy_${by}`, `SELECT COUNT(*) AS n FROM (${sql}) m`])) as Record<
      `countWritsBy_${WritMatch['by']}`,
      string
    >),
    keyDelegated: 'SELECT 1 AS found FROM grants WHERE delegate_jkt = ? LIMIT 1',
    principalKnown: 'SELECT 1 AS found FROM tasks WHERE principal_iss = ? AND principal_sub = ? LIMIT 1',

    insertTask: insert(TASKS),
    getTask: `${select(TASKS)} WHERE id = ?`,
    extendTask: 'UPDATE tasks SET expires_at = ? WHERE id = ? AND expires_at < ?',
    endTask: 'UPDATE tasks SET ended_at = ?, ended_by = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL',
    listTasks: `${select(TASKS)} ORDER BY created_at DESC, id LIMIT ?`,

    insertRevocation: `${insert(REVOCATIONS)} RETURNING seq`,
    getRevocation: `${select(REVOCATIONS_READ)} WHERE key = ?`,
    findRevocations: `${select(REVOCATIONS_READ)} WHERE key IN ${d.textSet} ORDER BY seq`,
    revocationsSince: `${select(REVOCATIONS_READ)} WHERE seq > ? ORDER BY seq LIMIT ?`,
    revocationBounds: 'SELECT COALESCE(MIN(seq), 0) AS oldest, COALESCE(MAX(seq), 0) AS newest FROM revocations',
    // The newest row stays, so the sequence a subscriber resumes from is never lost.
    pruneRevocations: 'DELETE FROM revocations WHERE expires_at IS NOT NULL AND expires_at < ? AND seq < (SELECT MAX(seq) FROM revocations)',

    currentStatusList: `${select(STATUS_LISTS)} ORDER BY id DESC LIMIT 1`,
    getStatusList: `${select(STATUS_LISTS)} WHERE id = ?`,
    createStatusList: insert(STATUS_LISTS),
    statusIndexTaken: 'SELECT 1 AS found FROM writs WHERE status_list = ? AND status_idx = ?',
    countStatusAllocation: 'UPDATE status_lists SET allocated = allocated + 1 WHERE id = ?',
    revokedStatusIndexes: 'SELECT status_idx FROM writs WHERE status_list = ? AND revoked_at IS NOT NULL ORDER BY status_idx',

    // The tree size is the last record's seq + 1 (migration 12). Appenders serialize on the
    // records' key: SQLite has one writer at a time (BEGIN IMMEDIATE); on PostgreSQL the loser of
    // two transactions placing the same seq fails on audit_records' primary key and runs again
    // (postgres.ts).
    getAuditTail: 'SELECT seq, leaf_hash FROM audit_records ORDER BY seq DESC LIMIT 1',
    auditNodes: `SELECT id, hash FROM audit_nodes WHERE id IN ${d.intSet}`,
    auditLeafHashes: `SELECT seq, leaf_hash FROM audit_records WHERE seq IN ${d.intSet}`,
    putAuditNode: 'INSERT INTO audit_nodes (id, hash) VALUES (?, ?)',
    insertAuditRecord: insert(AUDIT_RECORDS),
    getAuditRecord: `${select(AUDIT_RECORDS)} WHERE seq = ?`,
    listAuditRecords: `${select(AUDIT_RECORDS)} WHERE seq >= ? ORDER BY seq LIMIT ?`,
    // The batch of AUDIT_INDEX_BATCH records [from, to) into audit_index (migration 11): from, to three times.
    indexAuditRecords: `INSERT INTO audit_index (kind, value, seq)
      SELECT 'task', task_id, seq FROM audit_records WHERE seq >= ? AND seq < ? AND task_id <> ''
      UNION ALL SELECT 'principal', principal, seq FROM audit_records WHERE seq >= ? AND seq < ? AND principal <> ''
      UNION ALL SELECT 'actor', actor, seq FROM audit_records WHERE seq >= ? AND seq < ? AND actor <> ''`,
    // Newest first, from position `before` down: the records past the last complete batch
    // (fewer than 64, read by position) and, below it, audit_index. One statement, so one
    // snapshot; params: before, value, value, before, limit, limit.
    auditRecordsBy_task: auditRecordsBy('task', 'task_id'),
    auditRecordsBy_principal: auditRecordsBy('principal', 'principal'),
    auditRecordsBy_actor: auditRecordsBy('actor', 'actor'),
    auditRecordsBefore: `${select(AUDIT_RECORDS)} WHERE seq < ? ORDER BY seq DESC LIMIT ?`,
    putAuditCheckpoint: insert(AUDIT_CHECKPOINTS),
    latestAuditCheckpoint: `${select(AUDIT_CHECKPOINTS)} ORDER BY size DESC LIMIT 1`,
    getAuditCheckpoint: `${select(AUDIT_CHECKPOINTS)} WHERE size = ?`,
    putAuditKey: insert(AUDIT_KEYS),
    listAuditKeys: `${select(AUDIT_KEYS)} ORDER BY created_at, id`,

    putDecision: insert(POLICY_DECISIONS),
    listDecisions: `${select(POLICY_DECISIONS)} ORDER BY id DESC LIMIT ?`,

    // Run only where the dialect has them (store/dialect.ts); empty otherwise, never prepared.
    sequenceLock: d.sequenceLock ?? '',
    notify: d.notify ?? '',
  };
  return Object.fromEntries(Object.entries(texts).map(([name, text]) => [name, { name: `writ_${name}`, text: d.placeholders(text) }])) as {
    readonly [K in keyof typeof texts]: Statement;
  };
}

export type Queries = ReturnType<typeof buildQueries>;
