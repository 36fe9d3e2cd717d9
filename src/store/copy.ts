/**
 * `writ datastore migrate`: copies a SQLite data directory's database into an empty PostgreSQL
 * database (or schema), row for row, in one PostgreSQL transaction: keys stay sealed as they
 * were (the replicas need the same key-encryption key), sequences keep their numbers (revocation
 * and audit positions, so relying parties and audit proofs stay valid), and the identity
 * counters continue after the copied rows. Both sides are first brought to this binary's schema
 * version; the target must hold nothing yet but what migrations put there.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { StoreError } from '../errors.js';
import { ErrorMapper, PostgresStore, type PostgresStoreOptions } from './postgres.js';
import { SqliteStore } from './sqlite.js';

/** Tables migrations fill; their rows are replaced by the source's. */
const SEEDED = new Set(['meta']);
/** Migration bookkeeping, never copied (each side records its own). */
const SKIPPED = new Set(['schema_migrations', 'sqlite_sequence']);
const NAME = /^[a-z_][a-z0-9_]*$/;

export interface CopyReport {
  /** Rows copied per table, in the order they were copied. */
  readonly tables: ReadonlyArray<{ readonly table: string; readonly rows: number }>;
  readonly schemaVersion: number;
}

export async function copySqliteToPostgres(sqlitePath: string, target: PostgresStoreOptions): Promise<CopyReport> {
  // Bring both to this binary's schema, then read the file directly, read-only.
  await new SqliteStore(sqlitePath).close();
  const pgStore = await PostgresStore.open(target);
  const version = pgStore.schemaVersion;
  await pgStore.close();
  const src = new Database(sqlitePath, { readonly: true, fileMustExist: true });
  src.defaultSafeIntegers(true);
  const errors = new ErrorMapper(target.connectionString, target.password);
  const client = new pg.Client({
    connectionString: target.connectionString,
    ...(target.password !== undefined ? { password: target.password } : {}),
    ...(target.ssl !== undefined ? { ssl: target.ssl } : {}),
    ...(target.schema ? { options: `-c search_path=${target.schema}` } : {}),
    application_name: 'writ-datastore-migrate',
  });
  // A connection lost mid-copy (the database restarted) fails the statement in flight, which ends
  // the copy below with StoreError; node-postgres also emits 'error', which unheard would crash the process.
  client.on('error', () => undefined);
  const report: Array<{ table: string; rows: number }> = [];
  try {
    const srcVersion = Number((src.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: bigint }).v);
    if (srcVersion !== version) throw new StoreError(`store: the SQLite database is at schema version ${srcVersion}, PostgreSQL at ${version}`);
    await client.connect();
    await client.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
    // Creation order: a table's foreign keys name tables created before it.
    const tables = (src.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid").all() as Array<{ name: string }>)
      .map((t) => t.name)
      .filter((t) => !SKIPPED.has(t));
    const identity = new Map<string, string>();
    for (const r of (
      await client.query("SELECT table_name, column_name FROM information_schema.columns WHERE is_identity = 'YES' AND table_schema = current_schema()")
    ).rows as Array<{ table_name: string; column_name: string }>)
      identity.set(r.table_name, r.column_name);
    for (const table of tables) {
      if (!NAME.test(table)) throw new StoreError(`store: unexpected table name ${JSON.stringify(table)}`);
      const existing = Number((await client.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
      if (SEEDED.has(table)) await client.query(`DELETE FROM ${table}`);
      else if (existing > 0)
        throw new StoreError(`store: the target is not empty (table ${table} has ${existing} rows); migrate into a new database or schema`);
      const rows = src.prepare(`SELECT * FROM ${table} ORDER BY rowid`).all() as Array<Record<string, unknown>>;
      if (rows.length > 0) {
        const cols = Object.keys(rows[0]!);
        for (const c of cols) if (!NAME.test(c)) throw new StoreError(`store: unexpected column name ${JSON.stringify(c)}`);
        const over = identity.has(table) ? ' OVERRIDING SYSTEM VALUE' : '';
        const text = `INSERT INTO ${table} (${cols.join(', ')})${over} VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`;
        for (const row of rows) await client.query({ name: `copy_${table}`, text, values: cols.map((c) => toPg(row[c])) });
      }
      const id = identity.get(table);
      if (id)
        await client.query(
          `SELECT setval(pg_get_serial_sequence('${table}', '${id}'), GREATEST(COALESCE((SELECT MAX(${id}) FROM ${table}), 0), 1), (SELECT COUNT(*) FROM ${table}) > 0)`,
        );
      report.push({ table, rows: rows.length });
    }
    await client.query('COMMIT');
    return { tables: report, schemaVersion: version };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e instanceof StoreError ? e : errors.map(e, 'datastore migrate');
  } finally {
    src.close();
    await client.end().catch(() => undefined);
  }
}

/** SQLite's values as node-postgres sends them: 64-bit integers as decimal text (never rounded). */
function toPg(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  return v;
}
