/**
 * `PgChangeFeed.retryNow` (src/store/postgres-changes.ts), called for every connection the pool
 * opens (src/server/datastore.ts onConnect): it cuts the reconnect backoff short at most once
 * per `reconnectInitialMs`, so a database that takes pooled connections but fails the feed's
 * is not retried in a tight loop. `pg.Client` is a fake here: the first connection works, is
 * then broken, and every later one fails at once.
 */
import type { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';

const fake = vi.hoisted(() => ({ attempts: 0, clients: [] as EventEmitter[] }));

vi.mock('pg', async (importOriginal) => {
  const real = await importOriginal<typeof import('pg')>();
  const { EventEmitter: Emitter } = await import('node:events');
  class Client extends Emitter {
    async connect(): Promise<void> {
      fake.attempts++;
      if (fake.attempts > 1) throw new Error('connect ECONNREFUSED');
      fake.clients.push(this);
    }
    async query(): Promise<unknown> {
      return { rows: [] };
    }
    async end(): Promise<void> {}
  }
  return { ...real, Client, default: { ...real.default, Client } };
});

const { PgChangeFeed } = await import('../../src/store/postgres-changes.js');

afterEach(() => {
  fake.attempts = 0;
  fake.clients.length = 0;
});

describe('PgChangeFeed.retryNow', () => {
  it('wakes the backoff early at most once per reconnectInitialMs, however often it is called', async () => {
    const initial = 400;
    const feed = await PgChangeFeed.open({
      connectionString: 'postgres://writ@127.0.0.1:1/writ',
      reconnectInitialMs: initial,
      reconnectMaxMs: 60_000,
      pingIntervalMs: 60_000,
    });
    try {
      expect(fake.attempts).toBe(1);
      fake.clients[0]!.emit('error', new Error('terminating connection due to administrator command'));
      expect(feed.connected).toBe(false);
      // What a pool reconnecting at full speed does: retryNow every millisecond.
      const spam = async (ms: number) => {
        const end = performance.now() + ms;
        while (performance.now() < end) {
          feed.retryNow();
          await new Promise((r) => setTimeout(r, 1));
        }
      };
      await spam(initial - 100);
      // One early attempt (its natural backoff is at least initial/2 = 200 ms after the drop; the
      // second, after the failure, at least initial).
      expect(fake.attempts - 1).toBe(1);
      await spam(1_200);
      // Over ~1.5 s: at most 4 early wakes and a few natural retries, not hundreds.
      expect(fake.attempts - 1).toBeGreaterThanOrEqual(2);
      expect(fake.attempts - 1).toBeLessThanOrEqual(7);
    } finally {
      await feed.close();
    }
  });
});
