/**
 * The SQLite backend: the conformance suite on a fresh file per test, then what is SQLite's
 * own: pragmas, migrations from every schema version writ has shipped, and two processes
 * sharing one file.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.js';
import { SQLITE } from '../../src/store/dialect.js';
import { buildQueries } from '../../src/store/queries.js';
import { renderMigrations, SCHEMA_VERSION } from '../../src/store/schema.js';
import { MIGRATIONS, SqliteStore } from '../../src/store/sqlite.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { tmpDir } from '../helpers/tmp.js';
import { caKey, entry, grant, rejection, storeConformance, token, tpm } from './conformance.js';
import { SHIPPED_SQLITE_MIGRATIONS } from './testdata/sqlite-migrations-shipped.js';

storeConformance({ backend: 'sqlite', open: async () => new SqliteStore(join(tmpDir('writ-st-'), 'w.db')) });

/** Every schema object, its SQL with runs of whitespace made one space, and each table's columns. */
function schemaOf(path: string) {
  const db = new Database(path, { readonly: true });
  try {
    type SchemaObject = { type: string; name: string; tbl_name: string; sql: string | null };
    const rows = db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all() as SchemaObject[];
    const objects = rows.map((o) => ({ ...o, sql: o.sql?.replace(/\s+/g, ' ') ?? null }));
    const tables = objects.filter((o) => o.type === 'table').map((o) => o.name);
    const columns = Object.fromEntries(tables.map((t) => [t, db.pragma(`table_xinfo(${t})`)]));
    const foreignKeys = Object.fromEntries(tables.map((t) => [t, db.pragma(`foreign_key_list(${t})`)]));
    return { objects, columns, foreignKeys };
  } finally {
    db.close();
  }
}

/** A database at `version`, built from the texts writ shipped, as an older binary left it. */
function shippedDatabase(path: string, version: number): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT');
  SHIPPED_SQLITE_MIGRATIONS.slice(0, version).forEach((m, i) => {
    db.exec(m);
    db.prepare('INSERT INTO schema_migrations VALUES (?, 0)').run(i + 1);
  });
  return db;
}

describe('SqliteStore: the database file', () => {
  it('uses WAL journaling, foreign keys and a busy timeout', async () => {
    const path = join(tmpDir(), 'w.db');
    const s = new SqliteStore(path);
    const raw = new Database(path);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    // foreign_keys and busy_timeout are per connection: observed through the store's behaviour.
    await expect(s.setActivePolicy({ digest: 'b'.repeat(64), activatedAt: 1 })).rejects.toThrow(/foreign key/);
    await s.close();
  });

  it('names the file it cannot open, with the sqlite prefix', () => {
    const path = join(tmpDir(), 'no-such-dir', 'w.db');
    let err: unknown;
    try {
      new SqliteStore(path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toMatch(/^store\(sqlite\): cannot open .*no-such-dir\/w\.db: /);
  });
});

describe('SqliteStore: migrations', () => {
  it('renders the shared schema to exactly the migrations writ shipped for SQLite', () => {
    expect(renderMigrations(SQLITE)).toEqual([...SHIPPED_SQLITE_MIGRATIONS]);
    expect(MIGRATIONS).toEqual([...SHIPPED_SQLITE_MIGRATIONS]);
    expect(SCHEMA_VERSION).toBe(SHIPPED_SQLITE_MIGRATIONS.length);
  });

  it('applies migrations once and records the schema version', async () => {
    const path = join(tmpDir(), 'w.db');
    const s1 = new SqliteStore(path);
    expect(s1.schemaVersion).toBe(SCHEMA_VERSION);
    await s1.close();
    const s2 = new SqliteStore(path);
    expect(s2.schemaVersion).toBe(SCHEMA_VERSION);
    await s2.close();
    const raw = new Database(path);
    expect(raw.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all()).toEqual(
      Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
    );
    raw.close();
  });

  it('refuses a database from a newer binary', async () => {
    const path = join(tmpDir(), 'w.db');
    await new SqliteStore(path).close();
    const raw = new Database(path);
    raw.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)').run(SCHEMA_VERSION + 5);
    raw.close();
    expect(() => new SqliteStore(path)).toThrow(
      new RegExp(`^store\\(sqlite\\): cannot open .*: database schema version ${SCHEMA_VERSION + 5} is newer than this binary \\(${SCHEMA_VERSION}\\)$`),
    );
  });

  it.each([0, 1, 2, 3, 4, 5])('upgrades a database at shipped version %i to the schema a fresh one gets', async (version) => {
    const dir = tmpDir();
    await new SqliteStore(join(dir, 'fresh.db')).close();
    shippedDatabase(join(dir, 'old.db'), version).close();
    const s = new SqliteStore(join(dir, 'old.db'));
    expect(s.schemaVersion).toBe(SCHEMA_VERSION);
    await s.close();
    expect(schemaOf(join(dir, 'old.db'))).toEqual(schemaOf(join(dir, 'fresh.db')));
  });

  it('keeps the data of a version-1 database: entries become findable by selector, CA keys stay', async () => {
    const path = join(tmpDir(), 'w.db');
    const db = shippedDatabase(path, 1);
    const e = entry('e1', {
      selectors: [
        { type: 'tpm', value: 'ek_hash:00ff' },
        { type: 'unix', value: 'uid:1000' },
      ],
    });
    db.prepare('INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
      e.id,
      e.spiffeId,
      'key-1',
      JSON.stringify(e.selectors),
      e.x509SvidTtl,
      e.jwtSvidTtl,
      JSON.stringify(e.scopeCeiling),
      e.hint,
      e.createdAt,
    );
    const k = caKey('jwt-1', { state: 'active' });
    db.prepare('INSERT INTO ca_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
      k.id,
      k.kind,
      k.state,
      k.certDer,
      k.publicKeyDer,
      k.sealedKey,
      k.notBefore,
      k.notAfter,
    );
    const t = token();
    db.prepare('INSERT INTO join_tokens VALUES (?, ?, ?, ?, ?)').run(t.id, t.secretHash, t.expiresAt, t.createdAt, t.usedAt);
    db.prepare("UPDATE meta SET value = '7' WHERE key = 'bundle_sequence'").run();
    db.close();

    const s = new SqliteStore(path);
    expect(await s.getEntry('e1')).toEqual(e);
    expect((await s.listEntriesBySelectors(['unix:uid:1000'])).map((x) => x.id)).toEqual(['e1']);
    expect((await s.listEntriesBySelectors(['tpm:ek_hash:00ff'])).map((x) => x.id)).toEqual(['e1']);
    expect(await s.entryExists(e.spiffeId, 'key-1')).toBe(true);
    expect(await s.listCaKeys()).toEqual([k]);
    expect(await s.getJoinToken(t.id)).toEqual(t);
    expect(await s.bumpBundleSequence()).toBe(8);
    await s.close();
  });

  it('keeps CA keys and TPM records across the migration that adds the writ key kind (3 → 4)', async () => {
    const path = join(tmpDir(), 'w.db');
    const db = shippedDatabase(path, 3);
    db.prepare("INSERT INTO ca_keys VALUES ('jwt-1', 'jwt', 'active', x'', x'01', x'02', 1, 2)").run();
    const r = tpm('ek1');
    db.prepare('INSERT INTO tpm_endorsements VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
      r.ekHash,
      r.akName,
      r.firmwareVersion,
      r.resetCount,
      r.restartCount,
      r.clock,
      r.activatedAt,
      r.updatedAt,
    );
    db.close();
    const s = new SqliteStore(path);
    expect(s.schemaVersion).toBe(SCHEMA_VERSION);
    expect(await s.listCaKeys()).toEqual([
      caKey('jwt-1', { state: 'active', certDer: Buffer.alloc(0), publicKeyDer: Buffer.from([1]), sealedKey: Buffer.from([2]), notBefore: 1, notAfter: 2 }),
    ]);
    expect(await s.getTpmRecord('ek1')).toEqual(r);
    await s.putCaKey(caKey('writ-1', { kind: 'writ', state: 'active' }));
    expect((await s.listCaKeys()).map((k) => k.kind).sort()).toEqual(['jwt', 'writ']);
    // The one-active-key index came back with the rebuilt table.
    await expect(s.putCaKey(caKey('jwt-2', { state: 'active' }))).rejects.toThrow(/unique constraint violated/);
    await s.putGrant(grant('g1'));
    expect(await s.getGrant('g1')).toEqual(grant('g1'));
    await s.close();
  });
});

describe('SqliteStore: the audit index in batches (migration 11)', () => {
  it('indexes the complete batches of an existing log, and lookups read through indexes, not the whole table', async () => {
    const path = join(tmpDir(), 'w.db');
    const db = shippedDatabase(path, 8);
    const insert = db.prepare('INSERT INTO audit_records VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    for (let seq = 0; seq < 100; seq++)
      insert.run(
        seq,
        seq,
        'revocation',
        `actor-${seq % 2}`,
        seq % 4 === 0 ? '' : `iss#sub-${seq % 3}`,
        seq % 5 === 0 ? '' : `task-${seq % 3}`,
        Buffer.alloc(0),
        Buffer.alloc(32),
      );
    db.prepare("UPDATE meta SET value = '100' WHERE key = 'audit_size'").run();
    db.close();

    const s = new SqliteStore(path);
    const seqs = async (column: 'task' | 'principal' | 'actor', value: string, before = 100) =>
      (await s.findAuditRecords({ column, value }, before, 200)).map((r) => r.seq);
    const want = (f: (seq: number) => boolean, before = 100) => Array.from({ length: before }, (_, i) => before - 1 - i).filter(f);
    expect(await seqs('task', 'task-1')).toEqual(want((q) => q % 5 !== 0 && q % 3 === 1));
    expect(await seqs('principal', 'iss#sub-2', 70)).toEqual(want((q) => q % 4 !== 0 && q % 3 === 2, 70));
    expect(await seqs('actor', 'actor-0')).toEqual(want((q) => q % 2 === 0));
    await s.close();

    const raw = new Database(path, { readonly: true });
    // Only the first complete batch (0..63) went into the index; 64..99 are read by position.
    expect(raw.prepare('SELECT COUNT(DISTINCT seq) AS n, MAX(seq) AS top FROM audit_index').get()).toEqual({ n: 64, top: 63 });
    expect(raw.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_records'").pluck().all()).toEqual([]);
    const query = buildQueries(SQLITE).auditRecordsBy_task.text;
    const plan = (raw.prepare(`EXPLAIN QUERY PLAN ${query}`).all(100, 'task-1', 'task-1', 100, 10, 10) as { detail: string }[]).map((r) => r.detail);
    expect(
      plan.some((d) => /SEARCH audit_index USING (COVERING )?INDEX sqlite_autoindex_audit_index_1 \(kind=\? AND value=\? AND seq<\?\)/.test(d)),
      plan.join('\n'),
    ).toBe(true);
    expect(
      plan.some((d) => /SEARCH audit_records USING INTEGER PRIMARY KEY \(rowid>\? AND rowid<\?\)/.test(d)),
      plan.join('\n'),
    ).toBe(true);
    expect(
      plan.some((d) => /SCAN audit_records(?! USING)/.test(d) && !/INTEGER PRIMARY KEY/.test(d)),
      plan.join('\n'),
    ).toBe(false);
    raw.close();
  });
});

/** Two processes on one file: each a child running the built store (dist/). */
describe('SqliteStore: two processes on one file', () => {
  const MODULE = join(REPO_ROOT, 'dist', 'src', 'store', 'sqlite.js');
  if (!existsSync(MODULE)) throw new Error('dist/ is missing: run `make build` (make test does) before the SQLite multi-process tests');

  const CHILD = `
    import { writeSync } from 'node:fs';
    import { createInterface } from 'node:readline';
    const { SqliteStore } = await import(process.argv[1]);
    // Written synchronously: the constructor below may block this thread on the file's lock.
    const say = (line) => writeSync(1, line + '\\n');
    const [path, idsJson] = process.argv.slice(2);
    const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    say('ready');
    const s = new SqliteStore(path);
    say('open ' + s.schemaVersion);
    await lines.next();
    const won = [];
    for (const id of JSON.parse(idsJson)) {
      const ok = await s.transaction(async (tx) => {
        const t = await tx.getJoinToken(id);
        await new Promise((r) => setImmediate(r));
        return t !== undefined && t.usedAt === null && (await tx.consumeJoinToken(id, 2000));
      });
      if (ok) won.push(id);
    }
    await s.close();
    say(JSON.stringify(won));
    process.exit(0);
  `;

  interface Child {
    proc: ChildProcessWithoutNullStreams;
    line: () => Promise<string>;
    exit: Promise<number | null>;
  }
  function child(path: string, ids: string[]): Child {
    const proc = spawn(process.execPath, ['--input-type=module', '-e', CHILD, MODULE, path, JSON.stringify(ids)], { stdio: 'pipe' });
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
    const exit = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    return {
      proc,
      exit,
      line: async () => {
        const n = await lines.next();
        if (n.done) throw new Error(`child ended: ${stderr}`);
        return n.value;
      },
    };
  }

  it('two processes opening a new file at once migrate it once, then consume each token once', async () => {
    const path = join(tmpDir(), 'w.db');
    // Hold the write lock so both children wait inside their first migration transaction.
    const holder = new Database(path);
    holder.pragma('journal_mode = WAL');
    holder.exec('BEGIN IMMEDIATE');
    const ids = Array.from({ length: 40 }, (_, i) => `tok-${String(i).padStart(2, '0')}`);
    const kids = [child(path, ids), child(path, ids)];
    try {
      for (const k of kids) expect(await k.line()).toBe('ready');
      await new Promise((r) => setTimeout(r, 200));
      holder.exec('COMMIT');
      holder.close();
      for (const k of kids) expect(await k.line()).toBe(`open ${SCHEMA_VERSION}`);

      const raw = new Database(path);
      expect(raw.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all()).toEqual(
        Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      );
      raw.close();
      const s = new SqliteStore(path);
      for (const id of ids) await s.createJoinToken(token({ id }));
      for (const k of kids) k.proc.stdin.write('go\n');
      const won = await Promise.all(kids.map(async (k) => JSON.parse(await k.line()) as string[]));
      expect(await Promise.all(kids.map((k) => k.exit))).toEqual([0, 0]);
      expect([...won[0]!, ...won[1]!].sort()).toEqual(ids);
      for (const id of ids) expect((await s.getJoinToken(id))!.usedAt).toBe(2000);
      await s.close();
    } finally {
      for (const k of kids) k.proc.kill();
      if (holder.open) holder.close();
    }
  });
});

describe('SqliteStore: errors', () => {
  it('prefixes driver errors and keeps the driver error as the cause', async () => {
    const s = new SqliteStore(join(tmpDir(), 'w.db'));
    await s.putGrant(grant('g1'));
    const err = (await rejection(s.putGrant(grant('g1')))) as StoreError;
    expect(err.message).toBe('store(sqlite): unique constraint violated: UNIQUE constraint failed: grants.jti');
    expect((err.cause as { code?: string }).code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
    await s.close();
  });
});
