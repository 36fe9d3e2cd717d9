/**
 * The issuer's revocation feed with replicas (issuance/revocation-feed.ts): live events come
 * from the store by sequence, so a revocation another replica committed is delivered before a
 * later one this replica made, none is skipped or sent twice, and a replica that cannot read
 * the store stops vouching for freshness (no heartbeats) until it can again.
 */
import { describe, expect, it } from 'vitest';
import { type FeedMessage, RevocationFeed } from '../../src/issuance/revocation-feed.js';
import type { RevocationRecord, Store } from '../../src/store/store.js';

const rec = (seq: number, target = `t${seq}`): RevocationRecord => ({
  seq,
  kind: 'task',
  target,
  reason: 'test',
  actor: 'operator',
  principal: '',
  at: 1_000,
  derivedFrom: null,
  expiresAt: null,
});

/** The events table several replicas write: `down` makes every read fail. */
class SharedLog {
  rows: RevocationRecord[] = [];
  down = false;
  readonly store = {
    revocationBounds: async () => {
      if (this.down) throw new Error('store(postgres): cannot connect');
      return { oldest: this.rows[0]?.seq ?? 0, newest: this.rows.at(-1)?.seq ?? 0 };
    },
    listRevocationsSince: async (after: number, limit: number) => {
      if (this.down) throw new Error('store(postgres): cannot connect');
      return this.rows.filter((r) => r.seq > after).slice(0, limit);
    },
  } as unknown as Store;
}

function subscriber() {
  const got: FeedMessage[] = [];
  return {
    got,
    seqs: () => got.flatMap((m) => (m.kind === 'revocation' ? [m.record.seq] : [])),
    sink: { send: (m: FeedMessage) => got.push(m) > 0, overflow: () => undefined },
  };
}

describe('revocation feed across replicas', () => {
  it('delivers what another replica committed before a later revocation made here, each once, in order', async () => {
    const log = new SharedLog();
    const lags: number[] = [];
    const feed = new RevocationFeed({ store: log.store, now: () => 1_250, observer: { replicated: (ms) => lags.push(ms) } });
    await feed.newest();
    const s = subscriber();
    await feed.subscribe(0, s.sink);
    // Replica 2 commits 1 and 2; this replica, not yet woken, commits 3 and hears of its own.
    log.rows.push(rec(1), rec(2), rec(3));
    feed.revoked([rec(3)]);
    await feed.sync();
    expect(s.seqs()).toEqual([1, 2, 3]);
    // The wake-up for 1 and 2 arrives late: nothing is sent again.
    await feed.sync();
    feed.revoked([rec(3)]);
    expect(s.seqs()).toEqual([1, 2, 3]);
    expect(feed.sequence).toBe(3);
    expect(lags).toEqual([250, 250, 250]);
  });

  it('delivers a revocation made here at once when it directly follows what was delivered', async () => {
    const log = new SharedLog();
    const feed = new RevocationFeed({ store: log.store, now: () => 0 });
    await feed.newest();
    const s = subscriber();
    await feed.subscribe(0, s.sink);
    log.rows.push(rec(1), rec(2));
    feed.revoked([rec(1), rec(2)]);
    expect(s.seqs()).toEqual([1, 2]);
  });

  it('skips the gap a rolled-back sequence leaves', async () => {
    const log = new SharedLog();
    const feed = new RevocationFeed({ store: log.store, now: () => 0 });
    const s = subscriber();
    await feed.subscribe(0, s.sink);
    log.rows.push(rec(1), rec(3));
    feed.revoked([rec(3)]);
    await feed.sync();
    expect(s.seqs()).toEqual([1, 3]);
  });

  it('stops heartbeats while the store cannot be read, and catches up when it can', async () => {
    const log = new SharedLog();
    const failures: unknown[] = [];
    const feed = new RevocationFeed({ store: log.store, now: () => 0, observer: { syncFailed: (e) => failures.push(e) } });
    const s = subscriber();
    await feed.subscribe(0, s.sink);
    const beats = () => s.got.filter((m) => m.kind === 'heartbeat').length;
    const before = beats();
    log.down = true;
    expect(await feed.sync()).toBe(false);
    feed.heartbeat();
    expect(beats()).toBe(before);
    expect(failures).toHaveLength(1);
    log.rows.push(rec(1));
    log.down = false;
    expect(await feed.sync()).toBe(true);
    feed.heartbeat();
    expect(beats()).toBe(before + 1);
    expect(s.seqs()).toEqual([1]);
  });
});
