/**
 * The schema, written once for every backend: numbered migrations, append only, each a
 * function of the dialect (dialect.ts). For SQLite they render to exactly the texts writ
 * shipped before PostgreSQL existed (test/store/sqlite.test.ts pins that), so databases in the
 * field keep upgrading the way they always did. Every backend applies each pending migration
 * in its own transaction, recorded in `schema_migrations`, under a lock that makes two
 * processes starting at once migrate once (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
 * transaction lock).
 */
import { StoreError } from '../errors.js';
import type { Dialect } from './dialect.js';

export type Migration = (d: Dialect) => string;

export const MIGRATIONS: readonly Migration[] = [
  ({ int, blob, text, tableOptions }) => `CREATE TABLE meta (key ${text} PRIMARY KEY, value ${text} NOT NULL)${tableOptions};
   INSERT INTO meta (key, value) VALUES ('bundle_sequence', '0');
   CREATE TABLE entries (
     id ${text} PRIMARY KEY,
     spiffe_id ${text} NOT NULL,
     selectors_key ${text} NOT NULL,
     selectors ${text} NOT NULL,
     x509_svid_ttl ${int} NOT NULL,
     jwt_svid_ttl ${int} NOT NULL,
     scope_ceiling ${text} NOT NULL,
     hint ${text} NOT NULL,
     created_at ${int} NOT NULL,
     UNIQUE (spiffe_id, selectors_key)
   )${tableOptions};
   CREATE TABLE join_tokens (
     id ${text} PRIMARY KEY,
     secret_hash ${blob} NOT NULL,
     expires_at ${int} NOT NULL,
     created_at ${int} NOT NULL,
     used_at ${int}
   )${tableOptions};
   CREATE TABLE ca_keys (
     id ${text} PRIMARY KEY,
     kind ${text} NOT NULL CHECK (kind IN ('x509-root', 'x509-intermediate', 'jwt')),
     state ${text} NOT NULL CHECK (state IN ('prepared', 'active', 'retired')),
     cert_der ${blob} NOT NULL,
     public_key_der ${blob} NOT NULL,
     sealed_key ${blob} NOT NULL,
     not_before ${int} NOT NULL,
     not_after ${int} NOT NULL
   )${tableOptions};
   CREATE UNIQUE INDEX ca_keys_one_active ON ca_keys (kind) WHERE state = 'active';
   CREATE TABLE issued_svids (
     id ${text} PRIMARY KEY,
     kind ${text} NOT NULL,
     spiffe_id ${text} NOT NULL,
     entry_id ${text} NOT NULL,
     evidence_type ${text} NOT NULL,
     issued_at ${int} NOT NULL,
     expires_at ${int} NOT NULL
   )${tableOptions};
   CREATE INDEX issued_svids_expires ON issued_svids (expires_at);`,
  // Selector index, so a handshake reads only the entries that can match (SPIRE does the same).
  ({ text, tableOptions, jsonElements, jsonMember }) => `CREATE TABLE entry_selectors (
     entry_id ${text} NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
     selector ${text} NOT NULL,
     PRIMARY KEY (selector, entry_id)
   )${tableOptions};
   INSERT INTO entry_selectors (entry_id, selector)
     SELECT e.id, ${jsonMember('s', 'type')} || ':' || ${jsonMember('s', 'value')} FROM entries e, ${jsonElements('e.selectors', 's')};`,
  // TPMs: the AK activated per EK, the firmware version at enrolment, and the last quote's counters.
  ({ int, blob, text, tableOptions }) => `CREATE TABLE tpm_endorsements (
     ek_hash ${text} PRIMARY KEY,
     ak_name ${blob} NOT NULL,
     firmware_version ${text} NOT NULL,
     reset_count ${int} NOT NULL,
     restart_count ${int} NOT NULL,
     clock ${text} NOT NULL,
     activated_at ${int} NOT NULL,
     updated_at ${int} NOT NULL
   )${tableOptions};`,
  // Writ keys (a kind of their own), policy snapshots, grants, writs and policy decisions.
  ({ int, blob, text, tableOptions, autoId }) => `CREATE TABLE ca_keys_v4 (
     id ${text} PRIMARY KEY,
     kind ${text} NOT NULL CHECK (kind IN ('x509-root', 'x509-intermediate', 'jwt', 'writ')),
     state ${text} NOT NULL CHECK (state IN ('prepared', 'active', 'retired')),
     cert_der ${blob} NOT NULL,
     public_key_der ${blob} NOT NULL,
     sealed_key ${blob} NOT NULL,
     not_before ${int} NOT NULL,
     not_after ${int} NOT NULL
   )${tableOptions};
   INSERT INTO ca_keys_v4 SELECT * FROM ca_keys;
   DROP TABLE ca_keys;
   ALTER TABLE ca_keys_v4 RENAME TO ca_keys;
   CREATE UNIQUE INDEX ca_keys_one_active ON ca_keys (kind) WHERE state = 'active';
   CREATE TABLE policy_snapshots (
     digest ${text} PRIMARY KEY,
     policies ${text} NOT NULL,
     created_at ${int} NOT NULL
   )${tableOptions};
   CREATE TABLE policy_active (
     id ${int} PRIMARY KEY CHECK (id = 1),
     digest ${text} NOT NULL REFERENCES policy_snapshots (digest),
     activated_at ${int} NOT NULL
   )${tableOptions};
   CREATE TABLE grants (
     jti ${text} PRIMARY KEY,
     issuer ${text} NOT NULL,
     rid ${text} NOT NULL,
     depth ${int} NOT NULL,
     task_id ${text} NOT NULL,
     principal_iss ${text} NOT NULL,
     principal_sub ${text} NOT NULL,
     principal_groups ${text} NOT NULL,
     delegate_jkt ${text} NOT NULL,
     expires_at ${int} NOT NULL,
     compact ${text} NOT NULL,
     created_at ${int} NOT NULL,
     revoked_at ${int}
   )${tableOptions};
   CREATE INDEX grants_rid ON grants (rid);
   CREATE TABLE writs (
     jti ${text} PRIMARY KEY,
     spiffe_id ${text} NOT NULL,
     jkt ${text} NOT NULL,
     chain_digest ${blob} NOT NULL,
     lineage ${text} NOT NULL,
     task_id ${text} NOT NULL,
     evidence_digest ${blob} NOT NULL,
     issued_at ${int} NOT NULL,
     expires_at ${int} NOT NULL
   )${tableOptions};
   CREATE TABLE policy_decisions (
     id ${autoId},
     at ${int} NOT NULL,
     actor ${text} NOT NULL,
     principal ${text} NOT NULL,
     action ${text} NOT NULL,
     decision ${text} NOT NULL CHECK (decision IN ('allow', 'deny', 'escalate')),
     snapshot ${text} NOT NULL,
     policies ${text} NOT NULL,
     reason ${text} NOT NULL
   )${tableOptions};`,
  // Revocation: what a revocation matches on (writs), tasks, revocations as an event log, Token
  // Status List allocation. Added columns are NULL/empty for writs minted before (they match by
  // jti and lineage only, and have no status list entry).
  ({ int, text, tableOptions, autoId, jsonElements, jsonText }) => `ALTER TABLE writs ADD COLUMN principal ${text} NOT NULL DEFAULT '';
   ALTER TABLE writs ADD COLUMN parent_jti ${text};
   ALTER TABLE writs ADD COLUMN entry_id ${text} NOT NULL DEFAULT '';
   ALTER TABLE writs ADD COLUMN platform ${text} NOT NULL DEFAULT '';
   ALTER TABLE writs ADD COLUMN evidence_type ${text} NOT NULL DEFAULT '';
   ALTER TABLE writs ADD COLUMN status_list ${int};
   ALTER TABLE writs ADD COLUMN status_idx ${int};
   ALTER TABLE writs ADD COLUMN revoked_at ${int};
   ALTER TABLE writs ADD COLUMN revoked_seq ${int};
   CREATE INDEX writs_task ON writs (task_id);
   CREATE INDEX writs_spiffe ON writs (spiffe_id);
   CREATE INDEX writs_jkt ON writs (jkt);
   CREATE INDEX writs_principal ON writs (principal);
   CREATE INDEX writs_parent ON writs (parent_jti);
   CREATE INDEX writs_entry ON writs (entry_id);
   CREATE INDEX writs_platform ON writs (platform);
   CREATE UNIQUE INDEX writs_status ON writs (status_list, status_idx);
   CREATE INDEX writs_status_revoked ON writs (status_list, status_idx) WHERE revoked_at IS NOT NULL;
   CREATE TABLE writ_lineage (
     grant_jti ${text} NOT NULL,
     writ_jti ${text} NOT NULL REFERENCES writs (jti) ON DELETE CASCADE,
     PRIMARY KEY (grant_jti, writ_jti)
   )${tableOptions};
   INSERT INTO writ_lineage (grant_jti, writ_jti) SELECT ${jsonText('l')}, w.jti FROM writs w, ${jsonElements('w.lineage', 'l')};
   CREATE INDEX grants_task ON grants (task_id);
   CREATE TABLE tasks (
     id ${text} PRIMARY KEY,
     principal_iss ${text} NOT NULL,
     principal_sub ${text} NOT NULL,
     goal ${text} NOT NULL,
     expires_at ${int} NOT NULL,
     created_at ${int} NOT NULL,
     ended_at ${int},
     ended_by ${text},
     end_reason ${text}
   )${tableOptions};
   CREATE TABLE revocations (
     seq ${autoId},
     key ${text} NOT NULL UNIQUE,
     kind ${text} NOT NULL CHECK (kind IN ('grant', 'task', 'principal', 'agent', 'key', 'writ', 'entry', 'platform')),
     target ${text} NOT NULL,
     reason ${text} NOT NULL,
     actor ${text} NOT NULL,
     principal ${text} NOT NULL,
     at ${int} NOT NULL,
     derived_from ${int},
     expires_at ${int}
   )${tableOptions};
   CREATE TABLE status_lists (
     id ${int} PRIMARY KEY,
     size ${int} NOT NULL,
     allocated ${int} NOT NULL,
     created_at ${int} NOT NULL
   )${tableOptions};`,
  // The audit log (issue #10): records by position (seq = Merkle leaf index) with their canonical
  // bytes and leaf hash, and query columns derived from them; the tree's complete subtrees by
  // in-order node id; signed checkpoints; the Ed25519 audit key, sealed as the CA keys are. The
  // tree size lives in meta, so concurrent appends conflict on one row and serialize.
  ({ int, blob, text, tableOptions }) => `INSERT INTO meta (key, value) VALUES ('audit_size', '0');
   CREATE TABLE audit_records (
     seq ${int} PRIMARY KEY,
     at ${int} NOT NULL,
     event ${text} NOT NULL,
     actor ${text} NOT NULL,
     principal ${text} NOT NULL,
     task_id ${text} NOT NULL,
     canonical ${blob} NOT NULL,
     leaf_hash ${blob} NOT NULL
   )${tableOptions};
   CREATE INDEX audit_records_task ON audit_records (task_id, seq);
   CREATE INDEX audit_records_principal ON audit_records (principal, seq);
   CREATE INDEX audit_records_actor ON audit_records (actor, seq);
   CREATE TABLE audit_nodes (
     id ${int} PRIMARY KEY,
     hash ${blob} NOT NULL
   )${tableOptions};
   CREATE TABLE audit_checkpoints (
     size ${int} PRIMARY KEY,
     root ${blob} NOT NULL,
     note ${text} NOT NULL,
     signed_at ${int} NOT NULL
   )${tableOptions};
   CREATE TABLE audit_keys (
     id ${text} PRIMARY KEY,
     name ${text} NOT NULL,
     public_key ${blob} NOT NULL,
     sealed_key ${blob} NOT NULL,
     state ${text} NOT NULL CHECK (state IN ('active', 'retired')),
     created_at ${int} NOT NULL
   )${tableOptions};
   CREATE UNIQUE INDEX audit_keys_one_active ON audit_keys (state) WHERE state = 'active';`,
  // Attested agents (SPIRE's attested nodes): per attestation, the identity its evidence proved
  // and the serial of the one X.509-SVID that may renew it (attestation/x509-svid). A renewal
  // moves `serial` with a conditional UPDATE, so a superseded SVID can never renew.
  ({ int, blob, text, tableOptions }) => `CREATE TABLE attested_agents (
     id ${text} PRIMARY KEY,
     spiffe_id ${text} NOT NULL,
     entry_id ${text} NOT NULL,
     evidence_type ${text} NOT NULL,
     selectors ${text} NOT NULL,
     platform ${text} NOT NULL,
     key_residency ${text} NOT NULL,
     evidence_digest ${blob} NOT NULL,
     serial ${text} NOT NULL UNIQUE,
     jkt ${text} NOT NULL,
     svid_expires_at ${int} NOT NULL,
     attested_at ${int} NOT NULL,
     renewed_at ${int},
     renewals ${int} NOT NULL
   )${tableOptions};
   CREATE INDEX attested_agents_expires ON attested_agents (svid_expires_at);
   CREATE INDEX attested_agents_jkt ON attested_agents (jkt);
   CREATE INDEX attested_agents_platform ON attested_agents (platform);`,
  // Approvals (issue 14): escalation requests an approver decides, and the passkeys approvers
  // registered. A request is decided once, by a conditional UPDATE from 'pending'; a passkey's
  // sign count moves only forward, the same way.
  ({ int, blob, text, tableOptions }) => `CREATE TABLE approvals (
     id ${text} PRIMARY KEY,
     task_id ${text} NOT NULL,
     principal_iss ${text} NOT NULL,
     principal_sub ${text} NOT NULL,
     actor ${text} NOT NULL,
     actor_jkt ${text} NOT NULL,
     writ_jti ${text} NOT NULL,
     lineage ${text} NOT NULL,
     action ${text} NOT NULL,
     resource ${text} NOT NULL,
     reason ${text} NOT NULL,
     policies ${text} NOT NULL,
     snapshot ${text} NOT NULL,
     request ${text} NOT NULL,
     digest ${text} NOT NULL,
     created_at ${int} NOT NULL,
     expires_at ${int} NOT NULL,
     state ${text} NOT NULL CHECK (state IN ('pending', 'approved', 'denied')),
     decided_at ${int},
     decided_by ${text},
     decision_reason ${text},
     credential_id ${text},
     step_up ${text}
   )${tableOptions};
   CREATE INDEX approvals_task ON approvals (task_id, created_at);
   CREATE INDEX approvals_state ON approvals (state, created_at);
   CREATE TABLE passkeys (
     id ${text} PRIMARY KEY,
     owner_iss ${text} NOT NULL,
     owner_sub ${text} NOT NULL,
     public_key ${blob} NOT NULL,
     sign_count ${int} NOT NULL,
     created_at ${int} NOT NULL,
     used_at ${int}
   )${tableOptions};
   CREATE INDEX passkeys_owner ON passkeys (owner_iss, owner_sub);`,
  // Passkey registration ceremonies (issue 14): shared by replicas, so a registration may finish
  // on any of them; a challenge is deleted on first use.
  ({ int, text, tableOptions }) => `CREATE TABLE passkey_ceremonies (
     challenge ${text} PRIMARY KEY,
     owner ${text} NOT NULL,
     statement ${text},
     created_at ${int} NOT NULL,
     expires_at ${int} NOT NULL
   )${tableOptions};
   CREATE INDEX passkey_ceremonies_owner ON passkey_ceremonies (owner, created_at);
   CREATE INDEX passkey_ceremonies_expires ON passkey_ceremonies (expires_at);`,
  // Approvals, second form: 'expired' is stored (housekeeping moves a pending request past its
  // expiry there once, with its approval.expired audit record), and the indexes that let
  // ListApprovals filter by writ, principal and page newest first in SQL (keyset on created_at, id).
  ({ int, text, tableOptions }) => `CREATE TABLE approvals_v2 (
     id ${text} PRIMARY KEY,
     task_id ${text} NOT NULL,
     principal_iss ${text} NOT NULL,
     principal_sub ${text} NOT NULL,
     actor ${text} NOT NULL,
     actor_jkt ${text} NOT NULL,
     writ_jti ${text} NOT NULL,
     lineage ${text} NOT NULL,
     action ${text} NOT NULL,
     resource ${text} NOT NULL,
     reason ${text} NOT NULL,
     policies ${text} NOT NULL,
     snapshot ${text} NOT NULL,
     request ${text} NOT NULL,
     digest ${text} NOT NULL,
     created_at ${int} NOT NULL,
     expires_at ${int} NOT NULL,
     state ${text} NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired')),
     decided_at ${int},
     decided_by ${text},
     decision_reason ${text},
     credential_id ${text},
     step_up ${text}
   )${tableOptions};
   INSERT INTO approvals_v2 SELECT * FROM approvals;
   DROP TABLE approvals;
   ALTER TABLE approvals_v2 RENAME TO approvals;
   CREATE INDEX approvals_task ON approvals (task_id, created_at, id);
   CREATE INDEX approvals_state ON approvals (state, created_at, id);
   CREATE INDEX approvals_pending ON approvals (task_id, state, expires_at);
   CREATE INDEX approvals_writ ON approvals (writ_jti, state, expires_at);
   CREATE INDEX approvals_principal ON approvals (principal_iss, principal_sub, created_at, id);
   CREATE INDEX approvals_created ON approvals (created_at, id);`,
  // The audit log's query index in batches (docs/audit.md "Storage"): (kind, value, seq) for each
  // record's task, principal and actor (empty ones left out), written by the transaction that
  // appends record 64k + 63 for records 64k to 64k + 63, instead of three indexes on
  // audit_records that every append wrote a page of. Filled here for the complete batches of an
  // existing log. 64 is AUDIT_INDEX_BATCH (sql-store.ts), which this migration fixes. And the
  // tree keeps nodes of level 4 (16 leaves) and up only (src/audit/log.ts STORED_LEVEL; the
  // level is the number of trailing one bits of the in-order id): lower ones are hashed again
  // from the leaf hashes in audit_records.
  ({ int, text, tableOptions }) => `CREATE TABLE audit_index (
     kind ${text} NOT NULL CHECK (kind IN ('task', 'principal', 'actor')),
     value ${text} NOT NULL,
     seq ${int} NOT NULL,
     PRIMARY KEY (kind, value, seq)
   )${tableOptions};
   INSERT INTO audit_index (kind, value, seq)
     SELECT 'task', task_id, seq FROM audit_records
       WHERE task_id <> '' AND seq < (SELECT CAST(value AS ${int}) / 64 * 64 FROM meta WHERE key = 'audit_size')
     UNION ALL SELECT 'principal', principal, seq FROM audit_records
       WHERE principal <> '' AND seq < (SELECT CAST(value AS ${int}) / 64 * 64 FROM meta WHERE key = 'audit_size')
     UNION ALL SELECT 'actor', actor, seq FROM audit_records
       WHERE actor <> '' AND seq < (SELECT CAST(value AS ${int}) / 64 * 64 FROM meta WHERE key = 'audit_size');
   DROP INDEX audit_records_task;
   DROP INDEX audit_records_principal;
   DROP INDEX audit_records_actor;
   DELETE FROM audit_nodes WHERE (id + 1) % 16 <> 0;`,
  // The audit tree's size is the number of its records (seq runs from 0 without a gap), read
  // from audit_records' primary key, instead of a meta row that every appending transaction
  // rewrote (on SQLite a page more in every commit). Appenders still serialize: SQLite has one
  // writer; on PostgreSQL two transactions placing the same seq collide on the key and the loser
  // runs again (postgres.ts).
  () => `DELETE FROM meta WHERE key = 'audit_size';`,
];

/** The schema version this binary migrates to. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** The table that records applied migrations; created before the first one runs. */
export const migrationsTable = ({ int, tableOptions }: Dialect): string =>
  `CREATE TABLE IF NOT EXISTS schema_migrations (version ${int} PRIMARY KEY, applied_at ${int} NOT NULL)${tableOptions}`;

export const CURRENT_VERSION = 'SELECT MAX(version) AS v FROM schema_migrations';
export const RECORD_VERSION = 'INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)';

/** Every migration rendered for one dialect, version 1 first. */
export function renderMigrations(d: Dialect): string[] {
  return MIGRATIONS.map((m) => m(d));
}

/**
 * The next migration to apply to a database at `current`, or undefined when it is up to date.
 * A database from a newer binary is refused: this one would misread it.
 */
export function nextMigration(d: Dialect, current: number): { version: number; sql: string } | undefined {
  if (!Number.isSafeInteger(current) || current < 0) throw new StoreError(`store(${d.backend}): schema version ${current} is not a version`);
  if (current > SCHEMA_VERSION) throw new StoreError(`store(${d.backend}): database schema version ${current} is newer than this binary (${SCHEMA_VERSION})`);
  if (current === SCHEMA_VERSION) return undefined;
  return { version: current + 1, sql: MIGRATIONS[current]!(d) };
}
