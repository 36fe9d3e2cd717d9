/**
 * The store and change feed a server runs on, from `datastore:` settings: SQLite in the data
 * directory (the embedded default; the feed is in-process), or PostgreSQL shared by replicas
 * (a pool, and a LISTEN connection that wakes this replica when another one commits). The
 * password is read here, from its file or environment variable, and goes nowhere but the driver.
 */
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { DatastoreSettings } from '../config/config.js';
import { readInputFile } from '../config/files.js';
import { ConfigError } from '../errors.js';
import { type ChangeFeed, LocalChangeFeed } from '../store/changes.js';
import { type CopyReport, copySqliteToPostgres } from '../store/copy.js';
import { PostgresStore } from '../store/postgres.js';
import { PgChangeFeed } from '../store/postgres-changes.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import type { Metrics } from './metrics.js';

export interface Datastore {
  readonly store: Store;
  readonly changes: ChangeFeed;
  /** For the log: backend and where, never a password. */
  readonly description: string;
  close(): Promise<void>;
}

/** The password the settings point at; ConfigError (naming the file or variable, not the value) when it cannot be read. */
export function datastorePassword(s: Extract<DatastoreSettings, { type: 'postgres' }>, env: NodeJS.ProcessEnv): string | undefined {
  if (s.passwordFile) {
    let text: string;
    try {
      text = readInputFile(s.passwordFile, 'datastore.password_file').toString('utf8');
    } catch (e) {
      throw new ConfigError([(e as Error).message]);
    }
    // One line: a trailing newline (echo > file) is not part of the password.
    const pw = text.replace(/\r?\n$/, '');
    if (pw === '' || /[\r\n]/.test(pw)) throw new ConfigError([`datastore.password_file ${s.passwordFile} must hold the password on one line`]);
    return pw;
  }
  if (s.passwordEnv) {
    const pw = env[s.passwordEnv];
    if (pw === undefined || pw === '') throw new ConfigError([`datastore.password_env: the environment variable ${s.passwordEnv} is not set`]);
    return pw;
  }
  return undefined;
}

function tlsOptions(t: NonNullable<Extract<DatastoreSettings, { type: 'postgres' }>['tls']>): ConnectionOptions {
  return {
    rejectUnauthorized: true,
    ...(t.caFile ? { ca: readInputFile(t.caFile, 'datastore.tls.ca_file').toString('utf8') } : {}),
    ...(t.certFile ? { cert: readInputFile(t.certFile, 'datastore.tls.cert_file').toString('utf8') } : {}),
    ...(t.keyFile ? { key: readInputFile(t.keyFile, 'datastore.tls.key_file').toString('utf8') } : {}),
    ...(t.serverName ? { servername: t.serverName } : {}),
  };
}

/** Where a postgres:// URL points, without user or password. */
export function describePostgres(connectionString: string, schema?: string): string {
  try {
    const u = new URL(connectionString);
    return `postgres ${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}${schema ? ` schema ${schema}` : ''}`;
  } catch {
    return 'postgres';
  }
}

export async function openDatastore(s: DatastoreSettings, o: { env: NodeJS.ProcessEnv; logger: Logger; metrics: Metrics }): Promise<Datastore> {
  const { logger, metrics } = o;
  if (s.type === 'sqlite') {
    const store = new SqliteStore(s.path);
    const changes = new LocalChangeFeed((e) => logger.error({ err: e }, 'a change listener failed'));
    return { store, changes, description: `sqlite ${s.path}`, close: () => store.close() };
  }
  const password = datastorePassword(s, o.env);
  const ssl = s.tls ? tlsOptions(s.tls) : undefined;
  const common = {
    connectionString: s.connectionString,
    ...(password !== undefined ? { password } : {}),
    ...(s.schema ? { schema: s.schema } : {}),
    ...(ssl ? { ssl } : {}),
  };
  // Set once the feed is open; a connection the pool opens meanwhile proves the database is back.
  let feed: PgChangeFeed | undefined;
  const store = await PostgresStore.open({
    ...common,
    poolSize: s.poolSize,
    statementTimeoutMs: s.statementTimeoutMs,
    onIdleError: (err) => {
      metrics.datastoreIdleErrors.inc();
      logger.warn({ err }, 'datastore: an idle connection failed (dropped from the pool)');
    },
    onConnect: () => {
      metrics.datastoreConnects.inc();
      // After a restart the pool reconnects on demand; the LISTEN connection follows at once instead of after its backoff.
      if (feed && !feed.connected) feed.retryNow();
    },
  });
  let changes: PgChangeFeed;
  try {
    changes = await PgChangeFeed.open({
      ...common,
      onEvent: (e) => {
        switch (e.type) {
          case 'connected':
            metrics.changeFeedConnected.set(1);
            metrics.changeFeedReconnects.inc();
            logger.info({ reconnects: e.reconnects }, 'datastore: change feed reconnected; catching up');
            break;
          case 'disconnected':
            metrics.changeFeedConnected.set(0);
            logger.warn({ err: e.error, retryInMs: e.retryInMs }, 'datastore: change feed disconnected');
            break;
          case 'notification':
            metrics.changeNotifications.inc({ kind: e.kind });
            break;
          case 'listener-error':
            logger.error({ err: e.error }, 'a change listener failed');
            break;
        }
      },
    });
  } catch (e) {
    await store.close();
    throw e;
  }
  feed = changes;
  metrics.changeFeedConnected.set(1);
  metrics.watchPool(() => store.poolStats());
  metrics.watchNotifyQueue(() => store.notificationQueueUsage());
  return {
    store,
    changes,
    description: describePostgres(s.connectionString, s.schema),
    close: async () => {
      await changes.close();
      await store.close();
    },
  };
}

/**
 * `writ datastore migrate`: the SQLite database at `sqlitePath` copied into the PostgreSQL
 * database the settings name (empty but for migrations), password and TLS as a replica uses them.
 */
export async function migrateToPostgres(sqlitePath: string, s: Extract<DatastoreSettings, { type: 'postgres' }>, env: NodeJS.ProcessEnv): Promise<CopyReport> {
  const password = datastorePassword(s, env);
  return copySqliteToPostgres(sqlitePath, {
    connectionString: s.connectionString,
    ...(password !== undefined ? { password } : {}),
    ...(s.schema ? { schema: s.schema } : {}),
    ...(s.tls ? { ssl: tlsOptions(s.tls) } : {}),
    statementTimeoutMs: 300_000,
  });
}
