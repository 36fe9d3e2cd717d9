/**
 * The change feed between replicas on PostgreSQL: one dedicated connection (outside the pool)
 * that LISTENs on one channel per kind of change (postgres.ts `pgChannel`). Writers NOTIFY in
 * the transaction of the change, so a wake-up arrives after the rows are visible. The payload
 * is empty: listeners read the tables by sequence. When the connection drops, listeners are
 * woken once it is back (they catch up from their last sequence); while it is down, `connected`
 * is false and nothing arrives from other replicas. A ping on the connection finds a link that
 * died without a word (a cut network) within `pingIntervalMs + pingTimeoutMs`.
 *
 * NOTIFY's limits (docs/operations.md): the server queues notifications for every listener in
 * one queue (8 GB by default) until the slowest listener reads them; a listener that never
 * reads (a stuck replica with an open connection) fills it, and when it is full every NOTIFY,
 * so every revocation, fails. `PostgresStore.notificationQueueUsage` reports how full it is.
 */
import pg from 'pg';
import { StoreError } from '../errors.js';
import { CHANGE_KINDS, ChangeListeners, type ChangeFeed, type ChangeKind } from './changes.js';
import { ErrorMapper, pgChannel, type PostgresStoreOptions, SCHEMA_NAME } from './postgres.js';

/** How often the listening connection is checked with a query. */
export const PG_FEED_PING_INTERVAL_MS = 2_000;
/** A ping unanswered this long means the connection is dead: it is dropped and reopened. */
export const PG_FEED_PING_TIMEOUT_MS = 3_000;
/** Reconnect backoff: doubled per failure from the first to the most, with jitter. */
export const PG_FEED_RECONNECT_INITIAL_MS = 100;
export const PG_FEED_RECONNECT_MAX_MS = 5_000;

export interface PgChangeFeedOptions extends Pick<PostgresStoreOptions, 'connectionString' | 'password' | 'schema' | 'ssl' | 'connectTimeoutMs'> {
  readonly pingIntervalMs?: number;
  readonly pingTimeoutMs?: number;
  /** Reconnect backoff, first and most (default PG_FEED_RECONNECT_INITIAL_MS, PG_FEED_RECONNECT_MAX_MS). */
  readonly reconnectInitialMs?: number;
  readonly reconnectMaxMs?: number;
  /** Told of connection state changes and listener failures (the log); messages carry no secret. */
  readonly onEvent?: (e: PgFeedEvent) => void;
}

export type PgFeedEvent =
  | { readonly type: 'connected'; readonly reconnects: number }
  | { readonly type: 'disconnected'; readonly error: StoreError; readonly retryInMs: number }
  | { readonly type: 'notification'; readonly kind: ChangeKind }
  | { readonly type: 'listener-error'; readonly error: unknown };

export class PgChangeFeed implements ChangeFeed {
  private readonly listeners: ChangeListeners;
  private readonly errors: ErrorMapper;
  private readonly byChannel: ReadonlyMap<string, ChangeKind>;
  private client?: pg.Client;
  private closed = false;
  private ping?: NodeJS.Timeout;
  private loop?: Promise<void>;
  private wakeLoop?: () => void;
  /** Connections made after the first. */
  reconnects = 0;
  connected = false;

  private constructor(private readonly o: PgChangeFeedOptions) {
    if (o.schema !== undefined && !SCHEMA_NAME.test(o.schema)) throw new StoreError(`store(postgres): schema must match ${SCHEMA_NAME.source}`);
    for (const [name, v] of [
      ['reconnectInitialMs', o.reconnectInitialMs],
      ['reconnectMaxMs', o.reconnectMaxMs],
    ] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) throw new StoreError(`store(postgres): change feed: ${name} must be a positive integer`);
    }
    this.errors = new ErrorMapper(o.connectionString, o.password);
    this.listeners = new ChangeListeners((error) => o.onEvent?.({ type: 'listener-error', error }));
    this.byChannel = new Map(CHANGE_KINDS.map((k) => [pgChannel(o.schema, k), k]));
  }

  /** Connects and LISTENs before resolving (so nothing committed after it is missed), then keeps the connection up. */
  static async open(o: PgChangeFeedOptions): Promise<PgChangeFeed> {
    const feed = new PgChangeFeed(o);
    await feed.connect();
    feed.loop = feed.run();
    return feed;
  }

  on(kind: ChangeKind, fn: () => void): () => void {
    return this.listeners.on(kind, fn);
  }

  changed(kind: ChangeKind): void {
    this.listeners.fire(kind);
  }

  /**
   * The database answered another connection (the pool's, after a restart): when the feed is
   * waiting out its reconnect backoff, it tries now instead, so wake-ups resume with the pool
   * rather than up to `PG_FEED_RECONNECT_MAX_MS` later. Does nothing while connected, and wakes
   * the loop early at most once per `reconnectInitialMs`: every pooled connection calls it, and
   * a database that accepts connections but refuses the feed's must not be retried in a tight loop.
   */
  retryNow(): void {
    if (this.closed || this.client || !this.backingOff) return;
    const now = performance.now();
    if (now - this.lastEarlyWake < (this.o.reconnectInitialMs ?? PG_FEED_RECONNECT_INITIAL_MS)) return;
    this.lastEarlyWake = now;
    this.wakeLoop?.();
  }

  /** When `retryNow` last cut a backoff short (performance.now()). */
  private lastEarlyWake = Number.NEGATIVE_INFINITY;

  /** Whether the loop is sleeping between two connection attempts. */
  private backingOff = false;

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.o.connectionString,
      ...(this.o.password !== undefined ? { password: this.o.password } : {}),
      ...(this.o.ssl !== undefined ? { ssl: this.o.ssl } : {}),
      connectionTimeoutMillis: this.o.connectTimeoutMs ?? 5_000,
      keepAlive: true,
      application_name: 'writ-change-feed',
    });
    let failed: Error | undefined;
    client.on('error', (e) => {
      failed ??= e;
      this.drop(client, e);
    });
    client.on('end', () => this.drop(client, failed ?? new Error('connection ended')));
    client.on('notification', (n) => {
      const kind = this.byChannel.get(n.channel);
      if (!kind) return;
      this.o.onEvent?.({ type: 'notification', kind });
      this.listeners.fire(kind);
    });
    try {
      await client.connect();
      for (const channel of this.byChannel.keys()) await client.query(`LISTEN "${channel}"`);
    } catch (e) {
      await client.end().catch(() => undefined);
      throw this.errors.map(e, 'change feed');
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.connected = true;
    this.startPing(client);
  }

  private startPing(client: pg.Client): void {
    const interval = this.o.pingIntervalMs ?? PG_FEED_PING_INTERVAL_MS;
    const timeout = this.o.pingTimeoutMs ?? PG_FEED_PING_TIMEOUT_MS;
    this.ping = setInterval(() => {
      const t = setTimeout(() => this.drop(client, new Error(`no answer to a ping within ${timeout} ms`)), timeout);
      t.unref();
      client.query('SELECT 1').then(
        () => clearTimeout(t),
        (e: Error) => {
          clearTimeout(t);
          this.drop(client, e);
        },
      );
    }, interval);
    this.ping.unref();
  }

  /** The connection `client` is gone (or must go): forget it and let the loop reconnect. */
  private drop(client: pg.Client, e: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.connected = false;
    clearInterval(this.ping);
    // Destroys the socket at once, whatever state the protocol is in.
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    client.end().catch(() => undefined);
    this.lastError = this.errors.map(e, 'change feed');
    this.wakeLoop?.();
  }

  private lastError?: StoreError;

  /** Until `drop` or `close` (or `ms`, when given). */
  private pause(ms?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = ms === undefined ? undefined : setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wakeLoop = done;
    }).finally(() => {
      this.wakeLoop = undefined;
    });
  }

  /** Waits for the connection to drop, reconnects with backoff, and wakes every listener when back. */
  private async run(): Promise<void> {
    const initial = this.o.reconnectInitialMs ?? PG_FEED_RECONNECT_INITIAL_MS;
    const most = this.o.reconnectMaxMs ?? PG_FEED_RECONNECT_MAX_MS;
    let delay = initial;
    while (!this.closed) {
      if (this.client) {
        await this.pause();
        continue;
      }
      const retryIn = Math.round(delay / 2 + (Math.random() * delay) / 2);
      this.o.onEvent?.({ type: 'disconnected', error: this.lastError ?? new StoreError('store(postgres): change feed: disconnected'), retryInMs: retryIn });
      this.backingOff = true;
      await this.pause(retryIn);
      this.backingOff = false;
      if (this.closed) return;
      try {
        await this.connect();
        this.reconnects++;
        delay = initial;
        this.o.onEvent?.({ type: 'connected', reconnects: this.reconnects });
        // Whatever was announced while we were away is read now.
        this.listeners.fireAll();
      } catch (e) {
        this.lastError = e instanceof StoreError ? e : this.errors.map(e, 'change feed');
        delay = Math.min(most, delay * 2);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ping);
    const c = this.client;
    this.client = undefined;
    this.connected = false;
    this.wakeLoop?.();
    await c?.end().catch(() => undefined);
    await this.loop;
  }
}
