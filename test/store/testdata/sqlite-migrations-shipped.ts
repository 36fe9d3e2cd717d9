/**
 * The SQLite migrations exactly as writ shipped them before the store was split into shared
 * schema and dialects (src/store/sqlite.ts at commit a22b537). Databases in the field were
 * built from these texts; never edit them. test/store/sqlite.test.ts checks that the shared
 * schema still renders to them for SQLite and that databases built from them upgrade to the
 * schema a fresh database gets.
 */
export const SHIPPED_SQLITE_MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
   INSERT INTO meta (key, value) VALUES ('bundle_sequence', '0');
   CREATE TABLE entries (
     id TEXT PRIMARY KEY,
     spiffe_id TEXT NOT NULL,
     selectors_key TEXT NOT NULL,
     selectors TEXT NOT NULL,
     x509_svid_ttl INTEGER NOT NULL,
     jwt_svid_ttl INTEGER NOT NULL,
     scope_ceiling TEXT NOT NULL,
     hint TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     UNIQUE (spiffe_id, selectors_key)
   ) STRICT;
   CREATE TABLE join_tokens (
     id TEXT PRIMARY KEY,
     secret_hash BLOB NOT NULL,
     expires_at INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     used_at INTEGER
   ) STRICT;
   CREATE TABLE ca_keys (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL CHECK (kind IN ('x509-root', 'x509-intermediate', 'jwt')),
     state TEXT NOT NULL CHECK (state IN ('prepared', 'active', 'retired')),
     cert_der BLOB NOT NULL,
     public_key_der BLOB NOT NULL,
     sealed_key BLOB NOT NULL,
     not_before INTEGER NOT NULL,
     not_after INTEGER NOT NULL
   ) STRICT;
   CREATE UNIQUE INDEX ca_keys_one_active ON ca_keys (kind) WHERE state = 'active';
   CREATE TABLE issued_svids (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     spiffe_id TEXT NOT NULL,
     entry_id TEXT NOT NULL,
     evidence_type TEXT NOT NULL,
     issued_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX issued_svids_expires ON issued_svids (expires_at);`,
  // Selector index, so a handshake reads only the entries that can match (SPIRE does the same).
  `CREATE TABLE entry_selectors (
     entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
     selector TEXT NOT NULL,
     PRIMARY KEY (selector, entry_id)
   ) STRICT;
   INSERT INTO entry_selectors (entry_id, selector)
     SELECT e.id, json_extract(s.value, '$.type') || ':' || json_extract(s.value, '$.value') FROM entries e, json_each(e.selectors) s;`,
  // TPMs: the AK activated per EK, the firmware version at enrolment, and the last quote's counters.
  `CREATE TABLE tpm_endorsements (
     ek_hash TEXT PRIMARY KEY,
     ak_name BLOB NOT NULL,
     firmware_version TEXT NOT NULL,
     reset_count INTEGER NOT NULL,
     restart_count INTEGER NOT NULL,
     clock TEXT NOT NULL,
     activated_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   ) STRICT;`,
  // Writ keys (a kind of their own), policy snapshots, grants, writs and policy decisions.
  `CREATE TABLE ca_keys_v4 (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL CHECK (kind IN ('x509-root', 'x509-intermediate', 'jwt', 'writ')),
     state TEXT NOT NULL CHECK (state IN ('prepared', 'active', 'retired')),
     cert_der BLOB NOT NULL,
     public_key_der BLOB NOT NULL,
     sealed_key BLOB NOT NULL,
     not_before INTEGER NOT NULL,
     not_after INTEGER NOT NULL
   ) STRICT;
   INSERT INTO ca_keys_v4 SELECT * FROM ca_keys;
   DROP TABLE ca_keys;
   ALTER TABLE ca_keys_v4 RENAME TO ca_keys;
   CREATE UNIQUE INDEX ca_keys_one_active ON ca_keys (kind) WHERE state = 'active';
   CREATE TABLE policy_snapshots (
     digest TEXT PRIMARY KEY,
     policies TEXT NOT NULL,
     created_at INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE policy_active (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     digest TEXT NOT NULL REFERENCES policy_snapshots (digest),
     activated_at INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE grants (
     jti TEXT PRIMARY KEY,
     issuer TEXT NOT NULL,
     rid TEXT NOT NULL,
     depth INTEGER NOT NULL,
     task_id TEXT NOT NULL,
     principal_iss TEXT NOT NULL,
     principal_sub TEXT NOT NULL,
     principal_groups TEXT NOT NULL,
     delegate_jkt TEXT NOT NULL,
     expires_at INTEGER NOT NULL,
     compact TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     revoked_at INTEGER
   ) STRICT;
   CREATE INDEX grants_rid ON grants (rid);
   CREATE TABLE writs (
     jti TEXT PRIMARY KEY,
     spiffe_id TEXT NOT NULL,
     jkt TEXT NOT NULL,
     chain_digest BLOB NOT NULL,
     lineage TEXT NOT NULL,
     task_id TEXT NOT NULL,
     evidence_digest BLOB NOT NULL,
     issued_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE policy_decisions (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at INTEGER NOT NULL,
     actor TEXT NOT NULL,
     principal TEXT NOT NULL,
     action TEXT NOT NULL,
     decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'escalate')),
     snapshot TEXT NOT NULL,
     policies TEXT NOT NULL,
     reason TEXT NOT NULL
   ) STRICT;`,
  // Shipped with revocation (issue #9).
  "ALTER TABLE writs ADD COLUMN principal TEXT NOT NULL DEFAULT '';\n   ALTER TABLE writs ADD COLUMN parent_jti TEXT;\n   ALTER TABLE writs ADD COLUMN entry_id TEXT NOT NULL DEFAULT '';\n   ALTER TABLE writs ADD COLUMN platform TEXT NOT NULL DEFAULT '';\n   ALTER TABLE writs ADD COLUMN evidence_type TEXT NOT NULL DEFAULT '';\n   ALTER TABLE writs ADD COLUMN status_list INTEGER;\n   ALTER TABLE writs ADD COLUMN status_idx INTEGER;\n   ALTER TABLE writs ADD COLUMN revoked_at INTEGER;\n   ALTER TABLE writs ADD COLUMN revoked_seq INTEGER;\n   CREATE INDEX writs_task ON writs (task_id);\n   CREATE INDEX writs_spiffe ON writs (spiffe_id);\n   CREATE INDEX writs_jkt ON writs (jkt);\n   CREATE INDEX writs_principal ON writs (principal);\n   CREATE INDEX writs_parent ON writs (parent_jti);\n   CREATE INDEX writs_entry ON writs (entry_id);\n   CREATE INDEX writs_platform ON writs (platform);\n   CREATE UNIQUE INDEX writs_status ON writs (status_list, status_idx);\n   CREATE INDEX writs_status_revoked ON writs (status_list, status_idx) WHERE revoked_at IS NOT NULL;\n   CREATE TABLE writ_lineage (\n     grant_jti TEXT NOT NULL,\n     writ_jti TEXT NOT NULL REFERENCES writs (jti) ON DELETE CASCADE,\n     PRIMARY KEY (grant_jti, writ_jti)\n   ) STRICT;\n   INSERT INTO writ_lineage (grant_jti, writ_jti) SELECT l.value, w.jti FROM writs w, json_each(w.lineage) l;\n   CREATE INDEX grants_task ON grants (task_id);\n   CREATE TABLE tasks (\n     id TEXT PRIMARY KEY,\n     principal_iss TEXT NOT NULL,\n     principal_sub TEXT NOT NULL,\n     goal TEXT NOT NULL,\n     expires_at INTEGER NOT NULL,\n     created_at INTEGER NOT NULL,\n     ended_at INTEGER,\n     ended_by TEXT,\n     end_reason TEXT\n   ) STRICT;\n   CREATE TABLE revocations (\n     seq INTEGER PRIMARY KEY AUTOINCREMENT,\n     key TEXT NOT NULL UNIQUE,\n     kind TEXT NOT NULL CHECK (kind IN ('grant', 'task', 'principal', 'agent', 'key', 'writ', 'entry', 'platform')),\n     target TEXT NOT NULL,\n     reason TEXT NOT NULL,\n     actor TEXT NOT NULL,\n     principal TEXT NOT NULL,\n     at INTEGER NOT NULL,\n     derived_from INTEGER,\n     expires_at INTEGER\n   ) STRICT;\n   CREATE TABLE status_lists (\n     id INTEGER PRIMARY KEY,\n     size INTEGER NOT NULL,\n     allocated INTEGER NOT NULL,\n     created_at INTEGER NOT NULL\n   ) STRICT;",
  // Shipped with the audit log (issue #10).
  "INSERT INTO meta (key, value) VALUES ('audit_size', '0');\n   CREATE TABLE audit_records (\n     seq INTEGER PRIMARY KEY,\n     at INTEGER NOT NULL,\n     event TEXT NOT NULL,\n     actor TEXT NOT NULL,\n     principal TEXT NOT NULL,\n     task_id TEXT NOT NULL,\n     canonical BLOB NOT NULL,\n     leaf_hash BLOB NOT NULL\n   ) STRICT;\n   CREATE INDEX audit_records_task ON audit_records (task_id, seq);\n   CREATE INDEX audit_records_principal ON audit_records (principal, seq);\n   CREATE INDEX audit_records_actor ON audit_records (actor, seq);\n   CREATE TABLE audit_nodes (\n     id INTEGER PRIMARY KEY,\n     hash BLOB NOT NULL\n   ) STRICT;\n   CREATE TABLE audit_checkpoints (\n     size INTEGER PRIMARY KEY,\n     root BLOB NOT NULL,\n     note TEXT NOT NULL,\n     signed_at INTEGER NOT NULL\n   ) STRICT;\n   CREATE TABLE audit_keys (\n     id TEXT PRIMARY KEY,\n     name TEXT NOT NULL,\n     public_key BLOB NOT NULL,\n     sealed_key BLOB NOT NULL,\n     state TEXT NOT NULL CHECK (state IN ('active', 'retired')),\n     created_at INTEGER NOT NULL\n   ) STRICT;\n   CREATE UNIQUE INDEX audit_keys_one_active ON audit_keys (state) WHERE state = 'active';",
  // Shipped with SVID-authenticated renewal (issue #12).
  'CREATE TABLE attested_agents (\n     id TEXT PRIMARY KEY,\n     spiffe_id TEXT NOT NULL,\n     entry_id TEXT NOT NULL,\n     evidence_type TEXT NOT NULL,\n     selectors TEXT NOT NULL,\n     platform TEXT NOT NULL,\n     key_residency TEXT NOT NULL,\n     evidence_digest BLOB NOT NULL,\n     serial TEXT NOT NULL UNIQUE,\n     jkt TEXT NOT NULL,\n     svid_expires_at INTEGER NOT NULL,\n     attested_at INTEGER NOT NULL,\n     renewed_at INTEGER,\n     renewals INTEGER NOT NULL\n   ) STRICT;\n   CREATE INDEX attested_agents_expires ON attested_agents (svid_expires_at);\n   CREATE INDEX attested_agents_jkt ON attested_agents (jkt);\n   CREATE INDEX attested_agents_platform ON attested_agents (platform);',
  // Shipped with approvals (issue 14).
  "CREATE TABLE approvals (\n     id TEXT PRIMARY KEY,\n     task_id TEXT NOT NULL,\n     principal_iss TEXT NOT NULL,\n     principal_sub TEXT NOT NULL,\n     actor TEXT NOT NULL,\n     actor_jkt TEXT NOT NULL,\n     writ_jti TEXT NOT NULL,\n     lineage TEXT NOT NULL,\n     action TEXT NOT NULL,\n     resource TEXT NOT NULL,\n     reason TEXT NOT NULL,\n     policies TEXT NOT NULL,\n     snapshot TEXT NOT NULL,\n     request TEXT NOT NULL,\n     digest TEXT NOT NULL,\n     created_at INTEGER NOT NULL,\n     expires_at INTEGER NOT NULL,\n     state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied')),\n     decided_at INTEGER,\n     decided_by TEXT,\n     decision_reason TEXT,\n     credential_id TEXT,\n     step_up TEXT\n   ) STRICT;\n   CREATE INDEX approvals_task ON approvals (task_id, created_at);\n   CREATE INDEX approvals_state ON approvals (state, created_at);\n   CREATE TABLE passkeys (\n     id TEXT PRIMARY KEY,\n     owner_iss TEXT NOT NULL,\n     owner_sub TEXT NOT NULL,\n     public_key BLOB NOT NULL,\n     sign_count INTEGER NOT NULL,\n     created_at INTEGER NOT NULL,\n     used_at INTEGER\n   ) STRICT;\n   CREATE INDEX passkeys_owner ON passkeys (owner_iss, owner_sub);",
  // Shipped with shared passkey registration ceremonies (issue 14).
  'CREATE TABLE passkey_ceremonies (\n     challenge TEXT PRIMARY KEY,\n     owner TEXT NOT NULL,\n     statement TEXT,\n     created_at INTEGER NOT NULL,\n     expires_at INTEGER NOT NULL\n   ) STRICT;\n   CREATE INDEX passkey_ceremonies_owner ON passkey_ceremonies (owner, created_at);\n   CREATE INDEX passkey_ceremonies_expires ON passkey_ceremonies (expires_at);',
  // Shipped with stored expiry and SQL-side approval listing (issue 14, escalation limits).
  "CREATE TABLE approvals_v2 (\n     id TEXT PRIMARY KEY,\n     task_id TEXT NOT NULL,\n     principal_iss TEXT NOT NULL,\n     principal_sub TEXT NOT NULL,\n     actor TEXT NOT NULL,\n     actor_jkt TEXT NOT NULL,\n     writ_jti TEXT NOT NULL,\n     lineage TEXT NOT NULL,\n     action TEXT NOT NULL,\n     resource TEXT NOT NULL,\n     reason TEXT NOT NULL,\n     policies TEXT NOT NULL,\n     snapshot TEXT NOT NULL,\n     request TEXT NOT NULL,\n     digest TEXT NOT NULL,\n     created_at INTEGER NOT NULL,\n     expires_at INTEGER NOT NULL,\n     state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired')),\n     decided_at INTEGER,\n     decided_by TEXT,\n     decision_reason TEXT,\n     credential_id TEXT,\n     step_up TEXT\n   ) STRICT;\n   INSERT INTO approvals_v2 SELECT * FROM approvals;\n   DROP TABLE approvals;\n   ALTER TABLE approvals_v2 RENAME TO approvals;\n   CREATE INDEX approvals_task ON approvals (task_id, created_at, id);\n   CREATE INDEX approvals_state ON approvals (state, created_at, id);\n   CREATE INDEX approvals_pending ON approvals (task_id, state, expires_at);\n   CREATE INDEX approvals_writ ON approvals (writ_jti, state, expires_at);\n   CREATE INDEX approvals_principal ON approvals (principal_iss, principal_sub, created_at, id);\n   CREATE INDEX approvals_created ON approvals (created_at, id);",
  // Shipped with the audit index in batches (issue 10, handshake cost).
  "CREATE TABLE audit_index (\n     kind TEXT NOT NULL CHECK (kind IN ('task', 'principal', 'actor')),\n     value TEXT NOT NULL,\n     seq INTEGER NOT NULL,\n     PRIMARY KEY (kind, value, seq)\n   ) STRICT;\n   INSERT INTO audit_index (kind, value, seq)\n     SELECT 'task', task_id, seq FROM audit_records\n       WHERE task_id <> '' AND seq < (SELECT CAST(value AS INTEGER) / 64 * 64 FROM meta WHERE key = 'audit_size')\n     UNION ALL SELECT 'principal', principal, seq FROM audit_records\n       WHERE principal <> '' AND seq < (SELECT CAST(value AS INTEGER) / 64 * 64 FROM meta WHERE key = 'audit_size')\n     UNION ALL SELECT 'actor', actor, seq FROM audit_records\n       WHERE actor <> '' AND seq < (SELECT CAST(value AS INTEGER) / 64 * 64 FROM meta WHERE key = 'audit_size');\n   DROP INDEX audit_records_task;\n   DROP INDEX audit_records_principal;\n   DROP INDEX audit_records_actor;\n   DELETE FROM audit_nodes WHERE (id + 1) % 16 <> 0;",
  "DELETE FROM meta WHERE key = 'audit_size';",
];
