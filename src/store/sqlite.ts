/**
 * The SQLite backend (better-sqlite3), the embedded default: WAL, foreign keys, a busy
 * timeout, one connection with a prepared-statement cache, and a FIFO async mutex so that a
 * transaction's statements never interleave with another caller's. Transactions begin
 * IMMEDIATE (the write lock is taken first), so they are serializable, also against other
 * processes on the same file.
 */
import Database from 'better-sqlite3';
import { StoreError } from '../errors.js';
import type { Row, SqlValue } from './codecs.js';
import { SQLITE } from './dialect.js';
import type { Statement } from './queries.js';
import { CURRENT_VERSION, migrationsTable, nextMigration, RECORD_VERSION, renderMigrations } from './schema.js';
import { type SqlDriver, type SqlExecutor, SqlStore } from './sql-store.js';

/** How long a statement waits for another process's write lock before failing (SQLITE_BUSY). */
export const SQLITE_BUSY_TIMEOUT_MS = 5_000;

/** The migrations as SQLite runs them (kept for callers of the pre-split module). */
export const MIGRATIONS: readonly string[] = renderMigrations(SQLITE);

/** A FIFO async mutex that knows when nobody holds or awaits it. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private pending = 0;
  get idle(): boolean {
    return this.pending === 0;
  }
  async lock(): Promise<() => void> {
    this.pending++;
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.tail;
    this.tail = next;
    await prev;
    return () => {
      this.pending--;
      release();
    };
  }
}

const CONSTRAINT: Readonly<Record<string, string>> = {
  SQLITE_CONSTRAINT_UNIQUE: 'unique constraint violated',
  SQLITE_CONSTRAINT_PRIMARYKEY: 'unique constraint violated',
  SQLITE_CONSTRAINT_FOREIGNKEY: 'foreign key constraint violated',
  SQLITE_CONSTRAINT_CHECK: 'check constraint violated',
  SQLITE_CONSTRAINT_NOTNULL: 'not-null constraint violated',
};

/** Any failure of a better-sqlite3 call, as the store's error. */
function sqliteError(e: unknown): StoreError {
  if (e instanceof StoreError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const kind = CONSTRAINT[(err as { code?: string }).code ?? ''];
  return new StoreError(`store(sqlite): ${kind ? `${kind}: ` : ''}${err.message}`, { cause: err });
}

/** The better-sqlite3 driver under SqliteStore (exported for tests that wrap a driver). */
export class SqliteDriver implements SqlDriver {
  readonly dialect = SQLITE;
  readonly direct: SqlExecutor;
  private readonly db: Database.Database;
  private readonly mutex = new Mutex();
  private readonly cache = new Map<Statement, Database.Statement>();
  private readonly begin: Database.Statement;
  private readonly commit: Database.Statement;
  private readonly rollback: Database.Statement;
  private closed = false;

  constructor(path: string) {
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
      migrate(db);
      this.begin = db.prepare('BEGIN IMMEDIATE');
      this.commit = db.prepare('COMMIT');
      this.rollback = db.prepare('ROLLBACK');
    } catch (e) {
      db?.close();
      const why = (e as Error).message.replace(/^store\(sqlite\): /, '');
      throw new StoreError(`store(sqlite): cannot open ${path}: ${why}`, { cause: e });
    }
    this.db = db;
    this.direct = this.directExecutor();
  }

  schemaVersion(): number {
    this.assertOpen();
    try {
      return (this.db.prepare(CURRENT_VERSION).get() as { v: number }).v;
    } catch (e) {
      throw sqliteError(e);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('store(sqlite): closed');
  }

  private prepared(s: Statement): Database.Statement {
    let p = this.cache.get(s);
    if (!p) {
      p = this.db.prepare(s.text);
      this.cache.set(s, p);
    }
    return p;
  }

  // The three ways to run a statement, synchronously (also for SqliteTx); errors become StoreError.
  allNow(s: Statement, params: readonly SqlValue[]): Row[] {
    try {
      return this.prepared(s).all(...(params as unknown[])) as Row[];
    } catch (e) {
      throw sqliteError(e);
    }
  }
  getNow(s: Statement, params: readonly SqlValue[]): Row | undefined {
    try {
      return this.prepared(s).get(...(params as unknown[])) as Row | undefined;
    } catch (e) {
      throw sqliteError(e);
    }
  }
  runNow(s: Statement, params: readonly SqlValue[]): number {
    try {
      return this.prepared(s).run(...(params as unknown[])).changes;
    } catch (e) {
      throw sqliteError(e);
    }
  }

  /**
   * A statement outside a transaction runs at once when nobody holds or awaits the mutex
   * (better-sqlite3 is synchronous, so nothing can interleave with it), else in turn.
   */
  private directExecutor(): SqlExecutor {
    const inTurn = async <R>(now: (s: Statement, p: readonly SqlValue[]) => R, s: Statement, p: readonly SqlValue[]): Promise<R> => {
      this.assertOpen();
      if (this.mutex.idle) return now.call(this, s, p);
      const release = await this.mutex.lock();
      try {
        this.assertOpen();
        return now.call(this, s, p);
      } finally {
        release();
      }
    };
    return {
      all: (s, p) => inTurn(this.allNow, s, p),
      get: (s, p) => inTurn(this.getNow, s, p),
      run: (s, p) => inTurn(this.runNow, s, p),
    };
  }

  async transaction<T>(fn: (x: SqlExecutor) => Promise<T>): Promise<T> {
    this.assertOpen();
    const release = await this.mutex.lock();
    try {
      this.assertOpen();
      return await this.inTransaction(fn);
    } finally {
      release();
    }
  }

  private async inTransaction<T>(fn: (x: SqlExecutor) => Promise<T>): Promise<T> {
    const tx = new SqliteTx(this);
    try {
      this.begin.run();
    } catch (e) {
      throw sqliteError(e);
    }
    let out: T;
    try {
      out = await fn(tx);
    } catch (e) {
      tx.ended = true;
      this.abort();
      throw e;
    }
    tx.ended = true;
    if (tx.failure) {
      this.abort();
      throw rolledBack(tx.failure);
    }
    try {
      this.commit.run();
    } catch (e) {
      this.abort();
      throw sqliteError(e);
    }
    return out;
  }

  private abort(): void {
    if (this.db.inTransaction) this.rollback.run();
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
}

const rolledBack = (failure: StoreError) =>
  new StoreError(`store(sqlite): transaction rolled back: a statement in it failed (${failure.message})`, { cause: failure });

/** The executor of one transaction; the driver holds the mutex for as long as it lives. */
class SqliteTx implements SqlExecutor {
  ended = false;
  failure: StoreError | undefined;
  constructor(private readonly driver: SqliteDriver) {}

  private check(): void {
    if (this.ended) throw new StoreError('store(sqlite): statement on a transaction that has ended');
    // One failed statement ends the transaction (as PostgreSQL does): it can only roll back.
    if (this.failure) throw rolledBack(this.failure);
  }
  private failed(e: unknown): never {
    this.failure ??= e as StoreError;
    throw e;
  }
  async all(s: Statement, params: readonly SqlValue[]): Promise<Row[]> {
    this.check();
    try {
      return this.driver.allNow(s, params);
    } catch (e) {
      return this.failed(e);
    }
  }
  async get(s: Statement, params: readonly SqlValue[]): Promise<Row | undefined> {
    this.check();
    try {
      return this.driver.getNow(s, params);
    } catch (e) {
      return this.failed(e);
    }
  }
  async run(s: Statement, params: readonly SqlValue[]): Promise<number> {
    this.check();
    try {
      return this.driver.runNow(s, params);
    } catch (e) {
      return this.failed(e);
    }
  }
}

/** Applies pending migrations, each in its own IMMEDIATE transaction that re-reads the version. */
function migrate(db: Database.Database): void {
  const step = db.transaction((): boolean => {
    db.exec(migrationsTable(SQLITE));
    const row = db.prepare(CURRENT_VERSION).get() as { v: number | null };
    const next = nextMigration(SQLITE, row.v ?? 0);
    if (!next) return false;
    db.exec(next.sql);
    db.prepare(RECORD_VERSION).run(next.version, Date.now());
    return true;
  });
  while (step.immediate()) {
    // one migration per transaction
  }
}

/** The SQLite Store: opens (creating if needed) the database at `path` and migrates it. */
export class SqliteStore extends SqlStore {
  private readonly sqlite: SqliteDriver;

  constructor(path: string) {
    const driver = new SqliteDriver(path);
    super(driver);
    this.sqlite = driver;
  }

  /** The schema version of the open database. */
  get schemaVersion(): number {
    return this.sqlite.schemaVersion();
  }
}
