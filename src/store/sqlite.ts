/**
 * SQLite implementation of Store (better-sqlite3): WAL, foreign keys, numbered migrations,
 * one connection, and an async mutex so that a transaction's statements never interleave
 * with another caller's.
 */
import Database from 'better-sqlite3';
import { StoreError } from '../errors.js';
import type { Entry, Selector } from '../registration/entry.js';
import type {
  ActivePolicyRecord,
  CaKeyRecord,
  CaKeyState,
  DecisionRecord,
  GrantRecord,
  IssuedSvidRecord,
  JoinTokenRecord,
  PolicySnapshotRecord,
  Store,
  StoreTx,
  TpmRecord,
  WritRecord,
} from './store.js';

/** Numbered migrations; append only. Each runs in its own transaction. */
export const MIGRATIONS: readonly string[] = [
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
];

interface EntryRow {
  id: string;
  spiffe_id: string;
  selectors: string;
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  scope_ceiling: string;
  hint: string;
  created_at: number;
}

function rowToEntry(r: EntryRow): Entry {
  return {
    id: r.id,
    spiffeId: r.spiffe_id,
    selectors: JSON.parse(r.selectors) as Selector[],
    x509SvidTtl: r.x509_svid_ttl,
    jwtSvidTtl: r.jwt_svid_ttl,
    scopeCeiling: JSON.parse(r.scope_ceiling) as string[],
    hint: r.hint,
    createdAt: r.created_at,
  };
}

/** A FIFO async mutex. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  async lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.tail;
    this.tail = prev.then(() => next);
    await prev;
    return release;
  }
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly mutex = new Mutex();
  private readonly ops: StoreTx;
  private closed = false;

  /** Opens (creating if needed) the database at `path` and applies pending migrations. */
  constructor(path: string) {
    try {
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      this.db.pragma('busy_timeout = 5000');
      this.migrate();
    } catch (e) {
      throw new StoreError(`store(sqlite): cannot open ${path}: ${(e as Error).message}`, { cause: e });
    }
    this.ops = this.makeOps();
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT');
    const row = this.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
    const current = row.v ?? 0;
    if (current > MIGRATIONS.length) throw new Error(`database schema version ${current} is newer than this binary (${MIGRATIONS.length})`);
    for (let v = current + 1; v <= MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v - 1]!);
        this.db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(v, Date.now());
      })();
    }
  }

  get schemaVersion(): number {
    return (this.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number }).v;
  }

  private makeOps(): StoreTx {
    const db = this.db;
    const q = {
      insertEntry: db.prepare(
        `INSERT INTO entries (id, spiffe_id, selectors_key, selectors, x509_svid_ttl, jwt_svid_ttl, scope_ceiling, hint, created_at)
         VALUES (@id, @spiffe_id, @selectors_key, @selectors, @x509_svid_ttl, @jwt_svid_ttl, @scope_ceiling, @hint, @created_at)`,
      ),
      getEntry: db.prepare('SELECT * FROM entries WHERE id = ?'),
      insertSelector: db.prepare('INSERT INTO entry_selectors (entry_id, selector) VALUES (?, ?)'),
      entriesBySelectors: db.prepare(
        `SELECT * FROM entries WHERE id IN (SELECT entry_id FROM entry_selectors WHERE selector IN (SELECT value FROM json_each(?))) ORDER BY created_at, id`,
      ),
      listEntries: db.prepare('SELECT * FROM entries ORDER BY created_at, id'),
      entryExists: db.prepare('SELECT 1 FROM entries WHERE spiffe_id = ? AND selectors_key = ?'),
      deleteEntry: db.prepare('DELETE FROM entries WHERE id = ?'),
      insertToken: db.prepare('INSERT INTO join_tokens (id, secret_hash, expires_at, created_at, used_at) VALUES (?, ?, ?, ?, NULL)'),
      getToken: db.prepare('SELECT * FROM join_tokens WHERE id = ?'),
      consumeToken: db.prepare('UPDATE join_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?'),
      pruneTokens: db.prepare('DELETE FROM join_tokens WHERE expires_at < ?'),
      listKeys: db.prepare('SELECT * FROM ca_keys ORDER BY not_before, id'),
      putKey: db.prepare(
        `INSERT INTO ca_keys (id, kind, state, cert_der, public_key_der, sealed_key, not_before, not_after)
         VALUES (@id, @kind, @state, @cert_der, @public_key_der, @sealed_key, @not_before, @not_after)`,
      ),
      setKeyState: db.prepare('UPDATE ca_keys SET state = ? WHERE id = ?'),
      deleteKey: db.prepare('DELETE FROM ca_keys WHERE id = ?'),
      getSeq: db.prepare("SELECT value FROM meta WHERE key = 'bundle_sequence'"),
      bumpSeq: db.prepare("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'bundle_sequence'"),
      insertIssued: db.prepare(
        `INSERT INTO issued_svids (id, kind, spiffe_id, entry_id, evidence_type, issued_at, expires_at)
         VALUES (@id, @kind, @spiffe_id, @entry_id, @evidence_type, @issued_at, @expires_at)`,
      ),
      countIssued: db.prepare('SELECT COUNT(*) AS n FROM issued_svids'),
      getTpm: db.prepare('SELECT * FROM tpm_endorsements WHERE ek_hash = ?'),
      putTpm: db.prepare(
        `INSERT OR REPLACE INTO tpm_endorsements (ek_hash, ak_name, firmware_version, reset_count, restart_count, clock, activated_at, updated_at)
         VALUES (@ek_hash, @ak_name, @firmware_version, @reset_count, @restart_count, @clock, @activated_at, @updated_at)`,
      ),
      pruneIssued: db.prepare('DELETE FROM issued_svids WHERE expires_at < ?'),
      putSnapshot: db.prepare('INSERT OR IGNORE INTO policy_snapshots (digest, policies, created_at) VALUES (?, ?, ?)'),
      getSnapshot: db.prepare('SELECT * FROM policy_snapshots WHERE digest = ?'),
      listSnapshots: db.prepare('SELECT * FROM policy_snapshots ORDER BY created_at DESC, digest'),
      setActive: db.prepare('INSERT OR REPLACE INTO policy_active (id, digest, activated_at) VALUES (1, ?, ?)'),
      getActive: db.prepare('SELECT digest, activated_at FROM policy_active WHERE id = 1'),
      putGrant: db.prepare(
        `INSERT INTO grants (jti, issuer, rid, depth, task_id, principal_iss, principal_sub, principal_groups, delegate_jkt, expires_at, compact, created_at, revoked_at)
         VALUES (@jti, @issuer, @rid, @depth, @task_id, @principal_iss, @principal_sub, @principal_groups, @delegate_jkt, @expires_at, @compact, @created_at, @revoked_at)`,
      ),
      getGrant: db.prepare('SELECT * FROM grants WHERE jti = ?'),
      putWrit: db.prepare(
        `INSERT INTO writs (jti, spiffe_id, jkt, chain_digest, lineage, task_id, evidence_digest, issued_at, expires_at)
         VALUES (@jti, @spiffe_id, @jkt, @chain_digest, @lineage, @task_id, @evidence_digest, @issued_at, @expires_at)`,
      ),
      getWrit: db.prepare('SELECT * FROM writs WHERE jti = ?'),
      putDecision: db.prepare(
        `INSERT INTO policy_decisions (at, actor, principal, action, decision, snapshot, policies, reason)
         VALUES (@at, @actor, @principal, @action, @decision, @snapshot, @policies, @reason)`,
      ),
      listDecisions: db.prepare('SELECT * FROM policy_decisions ORDER BY id DESC LIMIT ?'),
    };
    const snapshotOf = (r: Record<string, unknown>): PolicySnapshotRecord => ({
      digest: r.digest as string,
      policies: JSON.parse(r.policies as string) as PolicySnapshotRecord['policies'],
      createdAt: r.created_at as number,
    });
    return {
      createEntry: async (e, selectorsKey) => {
        q.insertEntry.run({
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
        for (const sel of e.selectors) q.insertSelector.run(e.id, `${sel.type}:${sel.value}`);
      },
      getEntry: async (id) => {
        const r = q.getEntry.get(id) as EntryRow | undefined;
        return r && rowToEntry(r);
      },
      listEntries: async () => (q.listEntries.all() as EntryRow[]).map(rowToEntry),
      listEntriesBySelectors: async (selectors) => (q.entriesBySelectors.all(JSON.stringify(selectors)) as EntryRow[]).map(rowToEntry),
      entryExists: async (spiffeId, key) => q.entryExists.get(spiffeId, key) !== undefined,
      deleteEntry: async (id) => q.deleteEntry.run(id).changes === 1,
      createJoinToken: async (t) => {
        q.insertToken.run(t.id, t.secretHash, t.expiresAt, t.createdAt);
      },
      getJoinToken: async (id) => {
        const r = q.getToken.get(id) as { id: string; secret_hash: Buffer; expires_at: number; created_at: number; used_at: number | null } | undefined;
        return r && { id: r.id, secretHash: r.secret_hash, expiresAt: r.expires_at, createdAt: r.created_at, usedAt: r.used_at };
      },
      consumeJoinToken: async (id, now) => q.consumeToken.run(now, id, now).changes === 1,
      pruneJoinTokens: async (before) => q.pruneTokens.run(before).changes,
      listCaKeys: async () =>
        (q.listKeys.all() as Array<Record<string, unknown>>).map((r) => ({
          id: r.id as string,
          kind: r.kind as CaKeyRecord['kind'],
          state: r.state as CaKeyState,
          certDer: r.cert_der as Buffer,
          publicKeyDer: r.public_key_der as Buffer,
          sealedKey: r.sealed_key as Buffer,
          notBefore: r.not_before as number,
          notAfter: r.not_after as number,
        })),
      putCaKey: async (k) => {
        q.putKey.run({
          id: k.id,
          kind: k.kind,
          state: k.state,
          cert_der: k.certDer,
          public_key_der: k.publicKeyDer,
          sealed_key: k.sealedKey,
          not_before: k.notBefore,
          not_after: k.notAfter,
        });
      },
      setCaKeyState: async (id, state) => {
        q.setKeyState.run(state, id);
      },
      deleteCaKey: async (id) => {
        q.deleteKey.run(id);
      },
      getBundleSequence: async () => Number((q.getSeq.get() as { value: string }).value),
      bumpBundleSequence: async () => {
        q.bumpSeq.run();
        return Number((q.getSeq.get() as { value: string }).value);
      },
      recordIssued: async (r: IssuedSvidRecord) => {
        q.insertIssued.run({
          id: r.id,
          kind: r.kind,
          spiffe_id: r.spiffeId,
          entry_id: r.entryId,
          evidence_type: r.evidenceType,
          issued_at: r.issuedAt,
          expires_at: r.expiresAt,
        });
      },
      countIssued: async () => (q.countIssued.get() as { n: number }).n,
      getTpmRecord: async (ekHash) => {
        const r = q.getTpm.get(ekHash) as Record<string, unknown> | undefined;
        return (
          r && {
            ekHash: r.ek_hash as string,
            akName: r.ak_name as Buffer,
            firmwareVersion: r.firmware_version as string,
            resetCount: r.reset_count as number,
            restartCount: r.restart_count as number,
            clock: r.clock as string,
            activatedAt: r.activated_at as number,
            updatedAt: r.updated_at as number,
          }
        );
      },
      putTpmRecord: async (t) => {
        q.putTpm.run({
          ek_hash: t.ekHash,
          ak_name: t.akName,
          firmware_version: t.firmwareVersion,
          reset_count: t.resetCount,
          restart_count: t.restartCount,
          clock: t.clock,
          activated_at: t.activatedAt,
          updated_at: t.updatedAt,
        });
      },
      pruneIssued: async (before) => q.pruneIssued.run(before).changes,
      putPolicySnapshot: async (r) => {
        q.putSnapshot.run(r.digest, JSON.stringify(r.policies), r.createdAt);
      },
      getPolicySnapshot: async (digest) => {
        const r = q.getSnapshot.get(digest) as Record<string, unknown> | undefined;
        return r && snapshotOf(r);
      },
      listPolicySnapshots: async () => (q.listSnapshots.all() as Record<string, unknown>[]).map(snapshotOf),
      setActivePolicy: async (r) => {
        q.setActive.run(r.digest, r.activatedAt);
      },
      getActivePolicy: async () => {
        const r = q.getActive.get() as { digest: string; activated_at: number } | undefined;
        return r && { digest: r.digest, activatedAt: r.activated_at };
      },
      putGrant: async (g) => {
        q.putGrant.run({
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
      },
      getGrant: async (jti) => {
        const r = q.getGrant.get(jti) as Record<string, unknown> | undefined;
        return (
          r && {
            jti: r.jti as string,
            issuer: r.issuer as string,
            rid: r.rid as string,
            depth: r.depth as number,
            taskId: r.task_id as string,
            principalIss: r.principal_iss as string,
            principalSub: r.principal_sub as string,
            principalGroups: JSON.parse(r.principal_groups as string) as string[],
            delegateJkt: r.delegate_jkt as string,
            expiresAt: r.expires_at as number,
            compact: r.compact as string,
            createdAt: r.created_at as number,
            revokedAt: r.revoked_at as number | null,
          }
        );
      },
      recordWrit: async (w) => {
        q.putWrit.run({
          jti: w.jti,
          spiffe_id: w.spiffeId,
          jkt: w.jkt,
          chain_digest: w.chainDigest,
          lineage: JSON.stringify(w.lineage),
          task_id: w.taskId,
          evidence_digest: w.evidenceDigest,
          issued_at: w.issuedAt,
          expires_at: w.expiresAt,
        });
      },
      getWrit: async (jti) => {
        const r = q.getWrit.get(jti) as Record<string, unknown> | undefined;
        return (
          r && {
            jti: r.jti as string,
            spiffeId: r.spiffe_id as string,
            jkt: r.jkt as string,
            chainDigest: r.chain_digest as Buffer,
            lineage: JSON.parse(r.lineage as string) as string[],
            taskId: r.task_id as string,
            evidenceDigest: r.evidence_digest as Buffer,
            issuedAt: r.issued_at as number,
            expiresAt: r.expires_at as number,
          }
        );
      },
      recordDecision: async (d) => {
        q.putDecision.run({ ...d, policies: JSON.stringify(d.policies) });
      },
      listDecisions: async (limit) =>
        (q.listDecisions.all(limit) as Record<string, unknown>[]).map((r) => ({
          at: r.at as number,
          actor: r.actor as string,
          principal: r.principal as string,
          action: r.action as string,
          decision: r.decision as DecisionRecord['decision'],
          snapshot: r.snapshot as string,
          policies: JSON.parse(r.policies as string) as string[],
          reason: r.reason as string,
        })),
    };
  }

  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreError('store(sqlite): closed');
    const release = await this.mutex.lock();
    try {
      return await fn();
    } catch (e) {
      throw wrap(e);
    } finally {
      release();
    }
  }

  async transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    return this.locked(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const out = await fn(this.ops);
        this.db.exec('COMMIT');
        return out;
      } catch (e) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw e;
      }
    });
  }

  async close(): Promise<void> {
    const release = await this.mutex.lock();
    try {
      if (!this.closed) this.db.close();
      this.closed = true;
    } finally {
      release();
    }
  }

  // Single operations: each is atomic on its own.
  createEntry = (e: Entry, k: string) => this.locked(() => this.ops.createEntry(e, k));
  getEntry = (id: string) => this.locked(() => this.ops.getEntry(id));
  listEntries = () => this.locked(() => this.ops.listEntries());
  listEntriesBySelectors = (s: readonly string[]) => this.locked(() => this.ops.listEntriesBySelectors(s));
  entryExists = (s: string, k: string) => this.locked(() => this.ops.entryExists(s, k));
  deleteEntry = (id: string) => this.locked(() => this.ops.deleteEntry(id));
  createJoinToken = (t: JoinTokenRecord) => this.locked(() => this.ops.createJoinToken(t));
  getJoinToken = (id: string) => this.locked(() => this.ops.getJoinToken(id));
  consumeJoinToken = (id: string, now: number) => this.locked(() => this.ops.consumeJoinToken(id, now));
  pruneJoinTokens = (before: number) => this.locked(() => this.ops.pruneJoinTokens(before));
  listCaKeys = () => this.locked(() => this.ops.listCaKeys());
  putCaKey = (k: CaKeyRecord) => this.locked(() => this.ops.putCaKey(k));
  setCaKeyState = (id: string, s: CaKeyState) => this.locked(() => this.ops.setCaKeyState(id, s));
  deleteCaKey = (id: string) => this.locked(() => this.ops.deleteCaKey(id));
  getBundleSequence = () => this.locked(() => this.ops.getBundleSequence());
  bumpBundleSequence = () => this.locked(() => this.ops.bumpBundleSequence());
  recordIssued = (r: IssuedSvidRecord) => this.locked(() => this.ops.recordIssued(r));
  countIssued = () => this.locked(() => this.ops.countIssued());
  getTpmRecord = (h: string) => this.locked(() => this.ops.getTpmRecord(h));
  putTpmRecord = (r: TpmRecord) => this.locked(() => this.ops.putTpmRecord(r));
  pruneIssued = (before: number) => this.locked(() => this.ops.pruneIssued(before));
  putPolicySnapshot = (r: PolicySnapshotRecord) => this.locked(() => this.ops.putPolicySnapshot(r));
  getPolicySnapshot = (d: string) => this.locked(() => this.ops.getPolicySnapshot(d));
  listPolicySnapshots = () => this.locked(() => this.ops.listPolicySnapshots());
  setActivePolicy = (r: ActivePolicyRecord) => this.locked(() => this.ops.setActivePolicy(r));
  getActivePolicy = () => this.locked(() => this.ops.getActivePolicy());
  putGrant = (r: GrantRecord) => this.locked(() => this.ops.putGrant(r));
  getGrant = (jti: string) => this.locked(() => this.ops.getGrant(jti));
  recordWrit = (r: WritRecord) => this.locked(() => this.ops.recordWrit(r));
  getWrit = (jti: string) => this.locked(() => this.ops.getWrit(jti));
  recordDecision = (r: DecisionRecord) => this.locked(() => this.ops.recordDecision(r));
  listDecisions = (limit: number) => this.locked(() => this.ops.listDecisions(limit));
}

function wrap(e: unknown): unknown {
  if (e instanceof Error && (e as { code?: string }).code?.startsWith('SQLITE_')) {
    return new StoreError(`store(sqlite): ${e.message}`, { cause: e });
  }
  return e;
}
