/**
 * The PostgreSQL store and change feed across restarts of the database, on a private cluster
 * (test/helpers/pg-cluster.ts) stopped cleanly (`fast`) and crashed (`immediate`): the pool
 * drops the connections the restart ended (told through `onIdleError`, never an unhandled
 * 'error'), fails closed with StoreError while the database is down, and serves the first call
 * after it from new connections; a transaction cut by the crash leaves nothing behind; the
 * LISTEN connection reconnects by itself, and at once when told the database is back;
 * `writ datastore migrate` cut by a restart fails with StoreError and commits nothing.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.js';
import { copySqliteToPostgres } from '../../src/store/copy.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { PgChangeFeed } from '../../src/store/postgres-changes.js';
import { PG_CLUSTER_UNAVAILABLE, type PgCluster, startPgCluster } from '../helpers/pg-cluster.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { tmpDir } from '../helpers/tmp.js';
import { gate, rejection, revocation, token, warm } from './conformance.js';

const clusterDescribe = PG_CLUSTER_UNAVAILABLE === undefined ? describe : describe.skip;

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what}: not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

clusterDescribe('PostgreSQL restarts', () => {
  let pgc: PgCluster;
  beforeAll(async () => {
    pgc = await startPgCluster();
  }, 120_000);
  afterAll(async () => {
    await pgc?.destroy();
  }, 60_000);

  for (const mode of ['fast', 'immediate'] as const) {
    it(`the pool drops what a ${mode} stop ended, refuses while the database is down, and serves the first call after it`, { timeout: 90_000 }, async () => {
      const idleErrors: StoreError[] = [];
      let connects = 0;
      const store = await PostgresStore.open({
        connectionString: pgc.url(),
        schema: 'public',
        poolSize: 4,
        connectTimeoutMs: 2_000,
        onIdleError: (e) => idleErrors.push(e),
        onConnect: () => connects++,
      });
      try {
        await warm(store, 4);
        expect(store.poolStats().total).toBe(4);
        const opened = connects;
        // A transaction in flight when the database goes: it holds a client and has written a row.
        const holding = gate();
        const inFlight = store.transaction(async (tx) => {
          await tx.insertRevocation(revocation('grant', `cut-${mode}`));
          holding.open();
          await new Promise((r) => setTimeout(r, 3_000));
          await tx.insertRevocation(revocation('grant', `cut-${mode}-2`));
        });
        await holding.wait;
        await pgc.stop(mode);
        // Every idle connection is dropped and reported; none is left for the next caller.
        await until(() => idleErrors.length >= 3, 'the idle connections report their end');
        for (const e of idleErrors) expect(e).toBeInstanceOf(StoreError);
        expect(idleErrors[0]!.message).toMatch(/^store\(postgres\): idle connection: /);
        const cut = await rejection(inFlight);
        expect(cut).toBeInstanceOf(StoreError);
        // Fail closed while it is down: StoreError, for single calls and transactions alike.
        expect(await rejection(store.getBundleSequence())).toBeInstanceOf(StoreError);
        expect(await rejection(store.transaction((tx) => tx.getBundleSequence()))).toBeInstanceOf(StoreError);
        await pgc.start();
        // The first calls after the restart succeed, on connections opened now.
        expect(await store.getBundleSequence()).toBeGreaterThanOrEqual(0);
        await store.transaction(async (tx) => {
          await tx.insertRevocation(revocation('grant', `after-${mode}`));
        });
        expect(connects).toBeGreaterThan(opened);
        // Nothing of the cut transaction was kept, and what came after it was.
        expect(await store.findRevocations([`grant:cut-${mode}`, `grant:cut-${mode}-2`])).toEqual([]);
        expect((await store.findRevocations([`grant:after-${mode}`])).length).toBe(1);
      } finally {
        await store.close();
      }
    });
  }

  it('the change feed reconnects by itself after a restart, and wakes every listener to catch up', { timeout: 90_000 }, async () => {
    const writer = await PostgresStore.open({ connectionString: pgc.url(), schema: 'public' });
    const events: string[] = [];
    const feed = await PgChangeFeed.open({
      connectionString: pgc.url(),
      schema: 'public',
      reconnectInitialMs: 50,
      reconnectMaxMs: 400,
      onEvent: (e) => events.push(e.type),
    });
    try {
      let woken = 0;
      feed.on('revocation', () => woken++);
      await pgc.stop('fast');
      await until(() => !feed.connected, 'the feed sees its connection end');
      await pgc.start();
      await until(() => feed.connected, 'the feed reconnects by itself');
      expect(feed.reconnects).toBe(1);
      // Woken once for the reconnection (what was committed meanwhile is read now), then for a commit.
      await until(() => woken >= 1, 'listeners woken after the reconnection');
      const before = woken;
      await writer.insertRevocation(revocation('grant', 'after-feed-restart'));
      await until(() => woken > before, 'a revocation committed after the restart wakes the listener');
      expect(events).toContain('disconnected');
      expect(events).toContain('connected');
    } finally {
      await feed.close();
      await writer.close();
    }
  });

  it('the change feed waiting out its backoff reconnects at once when told the database is back (retryNow)', { timeout: 90_000 }, async () => {
    // A backoff far longer than this test: only retryNow can bring it back in time.
    const feed = await PgChangeFeed.open({ connectionString: pgc.url(), schema: 'public', reconnectInitialMs: 600_000, reconnectMaxMs: 600_000 });
    try {
      let woken = 0;
      feed.on('bundle', () => woken++);
      feed.retryNow(); // connected: nothing to do
      await pgc.stop('immediate');
      await until(() => !feed.connected, 'the feed sees its connection end');
      await pgc.start();
      // Still waiting out its backoff (minutes): the database being back changes nothing by itself.
      await new Promise((r) => setTimeout(r, 1_000));
      expect(feed.connected).toBe(false);
      feed.retryNow();
      await until(() => feed.connected, 'the feed reconnects when told', 20_000);
      expect(feed.reconnects).toBe(1);
      await until(() => woken >= 1, 'listeners woken after the reconnection');
    } finally {
      await feed.close();
    }
  });

  it('a datastore migrate cut by a restart fails with StoreError (the process does not crash) and commits nothing', { timeout: 90_000 }, async () => {
    const dir = tmpDir();
    const sqlite = new SqliteStore(join(dir, 'writ.db'));
    await sqlite.createJoinToken(token());
    await sqlite.close();
    const admin = new pg.Client({ connectionString: pgc.url() });
    await admin.connect();
    await admin.query('CREATE DATABASE migrate_cut');
    await admin.end();
    const target = pgc.url('migrate_cut');
    await (await PostgresStore.open({ connectionString: target })).close();
    // Every table of writ's locked by another session: the copy waits on the first one, in its transaction.
    const locker = new pg.Client({ connectionString: target });
    locker.on('error', () => undefined);
    await locker.connect();
    const tables = (
      await locker.query("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'schema_migrations'")
    ).rows.map((r: { t: string }) => r.t);
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE ${tables.join(', ')} IN ACCESS EXCLUSIVE MODE`);
    const copy = rejection(copySqliteToPostgres(join(dir, 'writ.db'), { connectionString: target }));
    // Watched from a session of its own: inside a transaction pg_stat_activity is a snapshot.
    const watch = new pg.Client({ connectionString: pgc.url() });
    watch.on('error', () => undefined);
    await watch.connect();
    await until(
      async () =>
        (await watch.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'writ-datastore-migrate' AND wait_event_type = 'Lock'"))
          .rows[0].n === 1,
      'the copy waits on a lock',
    );
    await watch.end();
    await pgc.stop('fast');
    const e = await copy;
    expect(e).toBeInstanceOf(StoreError);
    expect((e as Error).message).toMatch(/^store\(postgres\): datastore migrate: /);
    await locker.end().catch(() => undefined);
    await pgc.start();
    const check = new pg.Client({ connectionString: target });
    await check.connect();
    try {
      expect((await check.query('SELECT count(*)::int AS n FROM join_tokens')).rows[0].n).toBe(0);
    } finally {
      await check.end();
    }
  });

  it('refuses a reconnect backoff that is not a positive integer', async () => {
    for (const reconnectInitialMs of [0, -1, 1.5, Number.NaN]) {
      const e = await rejection(PgChangeFeed.open({ connectionString: pgc.url(), reconnectInitialMs }));
      expect(e).toBeInstanceOf(StoreError);
      expect((e as Error).message).toBe('store(postgres): change feed: reconnectInitialMs must be a positive integer');
    }
  });
});
