/**
 * The PostgreSQL backend (node-postgres), for several issuer replicas sharing one database:
 * a connection pool with a statement timeout, every transaction on one client at SERIALIZABLE
 * isolation with serialization failures retried a bounded number of times, and migrations
 * under a transaction-scoped advisory lock so that replicas starting at once migrate once.
 * Statements outside a transaction are single statements in autocommit (READ COMMITTED):
 * each is atomic, and consuming a join token is one conditional UPDATE, which the row lock
 * makes once-only across replicas.
 */
import { createHash } from 'node:crypto';
import { DatabaseError, Pool, type PoolClient, type PoolConfig } from 'pg';
import type { ChangeKind } from './changes.js';
import { StoreError } from '../errors.js';
import { int, type SqlValue } from './codecs.js';
import { POSTGRES } from './dialect.js';
import type { Statement } from './queries.js';
import { CURRENT_VERSION, migrationsTable, nextMigration, RECORD_VERSION } from './schema.js';
import { type SqlDriver, type SqlExecutor, SqlStore } from './sql-store.js';

/** Pool size when none is given: enough for concurrent handshakes, far below max_connections. */
export const PG_DEFAULT_POOL_SIZE = 10;
export const PG_MAX_POOL_SIZE = 200;
/** A statement running longer than this is cancelled by the server (statement_timeout). */
export const PG_DEFAULT_STATEMENT_TIMEOUT_MS = 5_000;
/** A transaction left idle this long is ended by the server, releasing its locks. */
export const PG_DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 30_000;
/** Waiting for a connection (new, or a free one from the pool) fails after this. */
export const PG_DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/**
 * Runs of a transaction that keeps failing to serialize (SQLSTATE 40001, 40P01, RETRYABLE_UNIQUE)
 * before it fails. Every audited transaction places its records at the end of the one log, so
 * under many concurrent writers a rerun (its snapshot taken after it queued, below) can still lose
 * to first runs that commit meanwhile: 8 gave up on 23 of 480 transactions of 12 concurrent
 * writers over 3 stores, 32 on none (test/store/postgres.test.ts); with the backoff's cap, 32 runs
 * wait a few seconds at most before the StoreError.
 */
export const PG_DEFAULT_TRANSACTION_ATTEMPTS = 32;
/** Retry backoff: a random delay up to min(cap, base * 2^attempt) ms, so racers spread out. */
export const PG_RETRY_BASE_MS = 2;
export const PG_RETRY_CAP_MS = 250;
/** The session-level advisory lock reruns of failed transactions queue on (key pair distinct from the others). */
const PG_RETRY_LOCK_SQL = 'SELECT pg_advisory_lock(2003986804, 2)';
const PG_RETRY_UNLOCK_SQL = 'SELECT pg_advisory_unlock(2003986804, 2)';
/** A migration may take longer than an ordinary statement (it rewrites tables). */
export const PG_MIGRATION_STATEMENT_TIMEOUT_MS = 300_000;
/** The advisory lock key migrations take (ASCII "writ"); advisory locks are per database. */
export const PG_MIGRATION_LOCK_KEY = 0x77726974;

const NOTIFY_QUEUE_USAGE: Statement = { name: 'writ_notify_queue_usage', text: 'SELECT pg_notification_queue_usage() AS usage' };
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const RETRYABLE = new Set(['40001', '40P01']);
/**
 * Unique keys whose violation is a lost race rather than bad data, retried like a serialization
 * failure (PostgreSQL's own advice for a key chosen by reading the stored ones, "Serialization
 * Failure Handling"): an audit record's seq is the tree size its transaction read (queries.ts),
 * and two transactions that read the same size collide on it.
 */
const RETRYABLE_UNIQUE = new Set(['audit_records_pkey']);
const CONSTRAINT: Readonly<Record<string, string>> = {
  '23505': 'unique constraint violated',
  '23503': 'foreign key constraint violated',
  '23514': 'check constraint violated',
  '23502': 'not-null constraint violated',
};

export interface PostgresStoreOptions {
  /** `postgres://user[:password]@host[:port]/database[?...]`; never put in a message. */
  readonly connectionString: string;
  /** The role's password, kept apart from the connection string (read from a file or the environment); never put in a message. */
  readonly password?: string;
  /** The schema holding writ's tables (it must exist); default: the role's search_path. */
  readonly schema?: string;
  readonly poolSize?: number;
  readonly statementTimeoutMs?: number;
  readonly idleInTransactionTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly transactionAttempts?: number;
  /** TLS to the server, as node-postgres takes it. */
  readonly ssl?: PoolConfig['ssl'];
  /** Told of errors on idle pooled connections (the pool drops the connection); default: none. */
  readonly onIdleError?: (err: StoreError) => void;
  /** Told of every connection the pool opens (metrics: reconnections after the database restarted). */
  readonly onConnect?: () => void;
}

function positive(name: string, v: number | undefined, dflt: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = v ?? dflt;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new StoreError(`store(postgres): ${name} must be an integer from 1 to ${max}`);
  return n;
}

/**
 * Turns anything node-postgres throws into StoreError. The message names the failure and the
 * SQLSTATE, with every secret of the connection replaced; the cause is kept only for errors the
 * server sent (they carry no client configuration).
 */
export class ErrorMapper {
  private readonly secrets: string[];
  constructor(connectionString: string, password?: string) {
    const secrets = [connectionString, ...(password ? [password] : [])];
    try {
      const u = new URL(connectionString);
      if (u.password) secrets.push(u.password, decodeURIComponent(u.password));
      for (const [k, v] of u.searchParams) if (/pass|key|secret/i.test(k) && v) secrets.push(v);
    } catch {
      // Not a URL: the whole string is the one secret we know.
    }
    if (process.env.PGPASSWORD) secrets.push(process.env.PGPASSWORD);
    this.secrets = [...new Set(secrets.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
  }

  scrub(text: string): string {
    let out = text;
    for (const s of this.secrets) out = out.split(s).join('[redacted]');
    return out;
  }

  map(e: unknown, context?: string): StoreError {
    if (e instanceof StoreError) return e;
    const pre = `store(postgres): ${context ? `${context}: ` : ''}`;
    if (e instanceof DatabaseError) {
      const kind = e.code ? CONSTRAINT[e.code] : undefined;
      const err = new StoreError(`${pre}${kind ? `${kind}: ` : ''}${this.scrub(e.message)}${e.code ? ` (SQLSTATE ${e.code})` : ''}`, { cause: e });
      if ((e.code && RETRYABLE.has(e.code)) || (e.code === '23505' && e.constraint !== undefined && RETRYABLE_UNIQUE.has(e.constraint))) retryable.add(err);
      return err;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    const code = (err as { code?: unknown }).code;
    return new StoreError(`${pre}${this.scrub(err.message)}${typeof code === 'string' ? ` (${this.scrub(code)})` : ''}`);
  }
}

/** A pool's occupancy at one instant. */
export interface PoolStats {
  readonly max: number;
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
}

/**
 * The NOTIFY channel of a kind of change for the tables in `schema` (channels are per
 * database, schemas share them): `writ_<kind>` for the default schema, else with a digest of
 * the schema's name, so identifiers stay under PostgreSQL's 63 bytes.
 */
export function pgChannel(schema: string | undefined, kind: ChangeKind): string {
  if (schema === undefined) return `writ_${kind}`;
  return `writ_${kind}_${createHash('sha256').update(schema).digest('hex').slice(0, 16)}`;
}

/** Errors that a new run of the same transaction may not meet (serialization failure, deadlock). */
const retryable = new WeakSet<StoreError>();

/** After a failed statement the server refuses the rest of the transaction; so do we, by name. */
const rolledBack = (failure: StoreError) =>
  new StoreError(`store(postgres): transaction rolled back: a statement in it failed (${failure.message})`, { cause: failure });

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

class PgDriver implements SqlDriver {
  readonly dialect = POSTGRES;
  readonly direct: SqlExecutor;
  readonly errors: ErrorMapper;
  private readonly pool: Pool;
  private readonly schema: string | undefined;
  private readonly attempts: number;
  private closed = false;

  constructor(o: PostgresStoreOptions) {
    this.errors = new ErrorMapper(o.connectionString, o.password);
    if (o.schema !== undefined && !SCHEMA_NAME.test(o.schema)) throw new StoreError(`store(postgres): schema must match ${SCHEMA_NAME.source}`);
    this.schema = o.schema;
    this.attempts = positive('transactionAttempts', o.transactionAttempts, PG_DEFAULT_TRANSACTION_ATTEMPTS, 100);
    this.pool = new Pool({
      connectionString: o.connectionString,
      ...(o.password !== undefined ? { password: o.password } : {}),
      max: positive('poolSize', o.poolSize, PG_DEFAULT_POOL_SIZE, PG_MAX_POOL_SIZE),
      statement_timeout: positive('statementTimeoutMs', o.statementTimeoutMs, PG_DEFAULT_STATEMENT_TIMEOUT_MS),
      idle_in_transaction_session_timeout: positive('idleInTransactionTimeoutMs', o.idleInTransactionTimeoutMs, PG_DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS),
      connectionTimeoutMillis: positive('connectTimeoutMs', o.connectTimeoutMs, PG_DEFAULT_CONNECT_TIMEOUT_MS),
      application_name: 'writ',
      keepAlive: true,
      ...(o.schema ? { options: `-c search_path=${o.schema}` } : {}),
      ...(o.ssl !== undefined ? { ssl: o.ssl } : {}),
    });
    this.pool.on('error', (e) => o.onIdleError?.(this.errors.map(e, 'idle connection')));
    if (o.onConnect) this.pool.on('connect', () => o.onConnect?.());
    const query = async (s: Statement, params: readonly SqlValue[]) => {
      this.assertOpen();
      try {
        return await this.pool.query({ name: s.name, text: s.text, values: params as unknown[] });
      } catch (e) {
        throw this.errors.map(e);
      }
    };
    this.direct = {
      all: async (s, p) => (await query(s, p)).rows,
      get: async (s, p) => (await query(s, p)).rows[0],
      run: async (s, p) => (await query(s, p)).rowCount ?? 0,
    };
  }

  channel(kind: ChangeKind): string {
    return pgChannel(this.schema, kind);
  }

  /** Connections of the pool: open, idle, and callers waiting for one (saturation). */
  poolStats(): PoolStats {
    return { max: this.pool.options.max ?? PG_DEFAULT_POOL_SIZE, total: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount };
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('store(postgres): closed');
  }

  private async connect(): Promise<PoolClient> {
    this.assertOpen();
    try {
      return await this.pool.connect();
    } catch (e) {
      throw this.errors.map(e, 'cannot connect');
    }
  }

  /** Checks the session is where the options put it, then applies pending migrations. */
  async open(): Promise<number> {
    const client = await this.connect();
    let broken: Error | undefined;
    const onError = (e: Error) => (broken = e);
    client.on('error', onError);
    try {
      const where = (await client.query('SELECT current_schema() AS s')).rows[0] as { s: string | null };
      if (this.schema !== undefined && where.s !== this.schema) {
        throw new StoreError(
          `store(postgres): the session's schema is ${where.s === null ? 'none' : JSON.stringify(where.s)}, not ${JSON.stringify(this.schema)} (create the schema first; the connection string must not set search_path)`,
        );
      }
      for (;;) {
        const done = await this.migrateOnce(client);
        if (done !== undefined) return done;
      }
    } catch (e) {
      throw this.errors.map(e, 'cannot migrate');
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  /** One migration in one transaction, under the advisory lock; the version if none was due. */
  private async migrateOnce(client: PoolClient): Promise<number | undefined> {
    await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
    try {
      await client.query(`SET LOCAL statement_timeout = ${PG_MIGRATION_STATEMENT_TIMEOUT_MS}`);
      // Waits for any other process's migration to commit; READ COMMITTED, so what follows sees it.
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [PG_MIGRATION_LOCK_KEY]);
      await client.query(migrationsTable(POSTGRES));
      const v = (await client.query(CURRENT_VERSION)).rows[0]?.v;
      const current = v === null || v === undefined ? 0 : int(v, 'schema_migrations.version');
      const next = nextMigration(POSTGRES, current);
      if (next) {
        await client.query(next.sql);
        await client.query(POSTGRES.placeholders(RECORD_VERSION), [next.version, Date.now()]);
      }
      await client.query('COMMIT');
      return next ? undefined : current;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
  }

  async transaction<T>(fn: (x: SqlExecutor) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const run = await this.attempt(fn, attempt > 1);
      if (run.ok) return run.value;
      if (!run.retry || attempt >= this.attempts) {
        if (run.retry)
          throw new StoreError(`store(postgres): transaction gave up after ${attempt} attempts: ${(run.error as Error).message}`, { cause: run.error });
        throw run.error;
      }
      await sleep(Math.random() * Math.min(PG_RETRY_CAP_MS, PG_RETRY_BASE_MS * 2 ** attempt));
    }
  }

  /** One run of a transaction on one client. */
  private async attempt<T>(fn: (x: SqlExecutor) => Promise<T>, retry = false): Promise<{ ok: true; value: T } | { ok: false; retry: boolean; error: unknown }> {
    const client = await this.connect();
    const conn: { broken?: Error } = {};
    const onError = (e: Error) => (conn.broken = e);
    client.on('error', onError);
    // A rerun waits for the other reruns first, before BEGIN (so its snapshot is taken after the
    // wait): transactions that lost a race on one hot key (the audit log's next seq) then queue up
    // instead of colliding again; first runs stay optimistic.
    let queued = false;
    if (retry) {
      try {
        await client.query(PG_RETRY_LOCK_SQL);
        queued = true;
      } catch (e) {
        client.off('error', onError);
        client.release(e as Error);
        return { ok: false, retry: false, error: this.errors.map(e) };
      }
    }
    try {
      return await this.attemptOn(client, conn, fn);
    } finally {
      if (queued) await client.query(PG_RETRY_UNLOCK_SQL).catch((e: Error) => (conn.broken ??= e));
      client.off('error', onError);
      // A broken connection (one that may still hold the session lock among them) is closed, never reused.
      client.release(conn.broken);
    }
  }

  /** One run of a transaction on `client`; `conn.broken` set when the connection must not be reused. */
  private async attemptOn<T>(
    client: PoolClient,
    conn: { broken?: Error },
    fn: (x: SqlExecutor) => Promise<T>,
  ): Promise<{ ok: true; value: T } | { ok: false; retry: boolean; error: unknown }> {
    let ended = false;
    let failure: StoreError | undefined;
    const query = async (s: Statement, params: readonly SqlValue[]) => {
      if (ended) throw new StoreError('store(postgres): statement on a transaction that has ended');
      if (failure) throw rolledBack(failure);
      try {
        return await client.query({ name: s.name, text: s.text, values: params as unknown[] });
      } catch (e) {
        const err = this.errors.map(e);
        failure ??= err;
        throw err;
      }
    };
    const x: SqlExecutor = {
      all: async (s, p) => (await query(s, p)).rows,
      get: async (s, p) => (await query(s, p)).rows[0],
      run: async (s, p) => (await query(s, p)).rowCount ?? 0,
    };
    const rollback = () => client.query('ROLLBACK').catch((e: Error) => (conn.broken ??= e));
    {
      try {
        await client.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
      } catch (e) {
        return { ok: false, retry: false, error: this.errors.map(e) };
      }
      let value: T;
      try {
        value = await fn(x);
      } catch (e) {
        ended = true;
        await rollback();
        // A run that met a serialization failure may have decided on what it could not read.
        if (failure && retryable.has(failure)) return { ok: false, retry: true, error: failure };
        return { ok: false, retry: false, error: e };
      }
      ended = true;
      if (failure) {
        await rollback();
        const error = retryable.has(failure) ? failure : rolledBack(failure);
        return { ok: false, retry: retryable.has(failure), error };
      }
      try {
        const done = await client.query('COMMIT');
        // A COMMIT of a transaction the server had already aborted answers ROLLBACK.
        if (done.command !== 'COMMIT') return { ok: false, retry: false, error: new StoreError('store(postgres): the server rolled the transaction back') };
      } catch (e) {
        const err = this.errors.map(e);
        await rollback();
        return { ok: false, retry: retryable.has(err), error: err };
      }
      return { ok: true, value };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

/**
 * The PostgreSQL Store. `open` connects, checks the session's schema, migrates (once across
 * processes) and returns the store; the pool is closed by `close`.
 */
export class PostgresStore extends SqlStore {
  /** The schema version the database was at (or was migrated to) when the store opened. */
  readonly schemaVersion: number;

  private constructor(
    private readonly pg: PgDriver,
    version: number,
  ) {
    super(pg);
    this.schemaVersion = version;
  }

  /** The connection pool's occupancy now (metrics: pool saturation). */
  poolStats(): PoolStats {
    return this.pg.poolStats();
  }

  /**
   * The fraction of the server's NOTIFY queue (8 GB by default) taken by notifications a
   * listener has not consumed yet; at 1 every NOTIFY, hence every revocation, fails.
   */
  async notificationQueueUsage(): Promise<number> {
    const r = await this.pg.direct.get(NOTIFY_QUEUE_USAGE, []);
    return Number(r?.usage ?? 0);
  }

  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    let driver: PgDriver;
    try {
      driver = new PgDriver(options);
    } catch (e) {
      // e.g. a connection string that is not a URL: node-postgres's error may quote it.
      throw new ErrorMapper(options.connectionString, options.password).map(e, 'bad options');
    }
    try {
      return new PostgresStore(driver, await driver.open());
    } catch (e) {
      await driver.close().catch(() => undefined);
      throw driver.errors.map(e);
    }
  }
}
