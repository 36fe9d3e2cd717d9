/**
 * Three real `writ server` processes on one PostgreSQL database (its own per test): they start
 * at once on an empty database and agree on one CA; handshakes spread over them all succeed;
 * one join token raced on all three is consumed exactly once; a revocation made on replica 1
 * reaches a Watch subscriber of replica 3; a rotation happens once and every replica serves the
 * new bundle. The password (from the environment) never reaches a log.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { attest, type AttestOutcome } from '../../src/agent/attest-client.js';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { WatchRevocationSource } from '../../src/revocation/watch-source.js';
import { type Cluster, cluster, freshDatabase, PG_UNREACHABLE, type Replica, until } from '../helpers/ha.js';
import { revokeAsOperator } from '../helpers/revocation.js';

const pgDescribe = PG_UNREACHABLE === undefined ? describe : describe.skip;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(n: number, config?: string): Promise<{ c: Cluster; db: Awaited<ReturnType<typeof freshDatabase>>; r: Replica[] }> {
  const db = await freshDatabase();
  cleanups.push(() => db.drop());
  const c = cluster(db.name, config ? { config } : {});
  cleanups.push(() => c.stop());
  // All at once, on an empty database: migrations and the first CA under contention.
  const r = await Promise.all(Array.from({ length: n }, () => c.start()));
  return { c, db, r };
}

const newKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

async function token(r: Replica, path: string) {
  return adminClients(r.adminSocket).admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org${path}` });
}

function handshake(r: Replica, tok: string): Promise<AttestOutcome> {
  return attest({ server: r.address, bundlePem: r.bundlePem(), evidenceType: 'join_token', key: newKey(), respond: () => Buffer.from(tok) });
}

const serialOf = (o: AttestOutcome) => new X509Certificate(o.svidChain[0]!).serialNumber.toLowerCase().replace(/^0+/, '');

pgDescribe('three replicas on one PostgreSQL', () => {
  it('start at once on an empty database with one CA, and handshakes spread over them all succeed', { timeout: 180_000 }, async () => {
    const { db, r } = await setup(3);
    // One root, one bundle: every replica writes the same one as soon as it has started, sequence
    // included. A replica whose first load straddles another's commit of the first CA loads one
    // snapshot and reloads after its own rotation saw the sequence move
    // (test/store/ca-replicas-postgres.test.ts holds that interleaving), so no wait is needed.
    expect(new Set(r.map((x) => x.bundlePem())).size).toBe(1);
    expect(new Set(r.map((x) => x.bundleJwks())).size, r.map((x) => x.bundleJwks()).join('\n')).toBe(1);
    const roots = await db.query("SELECT count(*)::int AS n FROM ca_keys WHERE kind = 'x509-root'");
    expect(roots.rows[0].n).toBe(1);
    const outcomes: AttestOutcome[] = [];
    for (let i = 0; i < 12; i++) {
      const via = r[i % 3]!;
      // The token is made on one replica and spent on another.
      const tok = await token(r[(i + 1) % 3]!, `/agent/spread-${i}`);
      outcomes.push(await handshake(via, tok.token));
    }
    expect(outcomes.map((o) => o.spiffeId)).toEqual(Array.from({ length: 12 }, (_, i) => `spiffe://example.org/agent/spread-${i}`));
    const serials = outcomes.map(serialOf);
    expect(new Set(serials).size).toBe(12);
    const recorded = await db.query("SELECT ltrim(id, '0') AS id FROM issued_svids WHERE kind = 'x509'");
    expect(new Set(recorded.rows.map((x: { id: string }) => x.id))).toEqual(new Set(serials));
    // Each replica served a third of them.
    for (const x of r) {
      const m = await (await fetch(x.metricsUrl)).text();
      expect(m).toMatch(/writ_handshakes_total\{evidence_type="join_token",result="ok"\} 4\b/);
      expect(m).toMatch(/writ_datastore_pool_max 8\b/);
      expect(m).toMatch(/writ_change_feed_connected 1\b/);
    }
    for (const x of r) {
      expect(x.log()).not.toContain('ha-test-password-never-logged');
      expect(x.log()).toContain('postgres 127.0.0.1');
    }
  });

  it('consume one join token raced on all three replicas exactly once', { timeout: 180_000 }, async () => {
    const { db, r } = await setup(3);
    for (let round = 0; round < 5; round++) {
      const tok = await token(r[round % 3]!, `/agent/race-${round}`);
      const results = await Promise.allSettled(r.flatMap((x) => [handshake(x, tok.token), handshake(x, tok.token)]));
      const won = results.filter((x) => x.status === 'fulfilled');
      expect(won.length, JSON.stringify(results.map((x) => (x.status === 'rejected' ? String(x.reason) : 'ok')))).toBe(1);
      for (const x of results) if (x.status === 'rejected') expect(String(x.reason)).not.toMatch(/unavailable|datastore/i);
    }
    const issued = await db.query("SELECT spiffe_id, count(*)::int AS n FROM issued_svids WHERE kind = 'x509' GROUP BY spiffe_id ORDER BY spiffe_id");
    expect(issued.rows).toEqual(Array.from({ length: 5 }, (_, i) => ({ spiffe_id: `spiffe://example.org/agent/race-${i}`, n: 1 })));
  });

  it('a revocation made on replica 1 reaches a Watch subscriber of replica 3, and one of replica 2 in the same order', { timeout: 180_000 }, async () => {
    const { r } = await setup(3);
    const connector = grpcWatchConnector(r[0]!.bundlePem(), { ownConnection: true });
    const on3 = new WatchRevocationSource({ addresses: [r[2]!.address], connector, reconnectInitialMs: 20, reconnectMaxMs: 200 }).start();
    const on2 = new WatchRevocationSource({ addresses: [r[1]!.address], connector, reconnectInitialMs: 20, reconnectMaxMs: 200 }).start();
    cleanups.push(async () => {
      on3.close();
      on2.close();
    });
    await Promise.all([on3.synced(30_000), on2.synced(30_000)]);
    const seen3: string[] = [];
    const seen2: string[] = [];
    on3.onRevoked((x) => seen3.push(`${x.sequence} ${x.target.kind}:${x.target.id}`));
    on2.onRevoked((x) => seen2.push(`${x.sequence} ${x.target.kind}:${x.target.id}`));
    const entries: string[] = [];
    for (let i = 0; i < 6; i++) entries.push((await token(r[0]!, `/agent/watch-${i}`)).entryId);
    // Made on replicas 1 and 2 at once: the subscribers see them in one order, with no gap.
    const made = await Promise.all(entries.map((e, i) => revokeAsOperator(r[i % 2]!.adminSocket, 'entry', e, `test ${i}`)));
    const newest = Math.max(...made.map((m) => Number(m.sequence)));
    await until(() => on3.sequence >= newest && on2.sequence >= newest, 'both subscribers reach the newest revocation');
    const expected = made.map((m, i) => `${Number(m.sequence)} entry:${entries[i]}`).sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10));
    expect(seen3).toEqual(expected);
    expect(seen2).toEqual(expected);
  });

  it('rotate once: one replica prepares the next keys, every replica reloads and serves the new bundle', { timeout: 180_000 }, async () => {
    // A CA lifetime so short that the next keys are due at the first housekeeping tick (10 s).
    const { db, r } = await setup(3, 'ca:\n  ttl: 60s\nsvid:\n  x509_ttl: 30s\n  jwt_ttl: 30s\n');
    const before = r[0]!.bundleJwks();
    const seq0 = Number((await db.query("SELECT value FROM meta WHERE key = 'bundle_sequence'")).rows[0].value);
    await until(async () => (await db.query("SELECT count(*)::int AS n FROM ca_keys WHERE state = 'prepared'")).rows[0].n > 0, 'next keys prepared', 60_000);
    // Kinds may come due a moment apart (several rotations): wait until every replica serves the same new bundle.
    await until(
      () => r.every((x) => x.bundleJwks() !== before) && new Set(r.map((x) => x.bundleJwks())).size === 1,
      'every replica rewrote its bundle alike',
      90_000,
    );
    // Once: whichever replica did it, one prepared key per kind.
    const prepared = await db.query("SELECT kind, count(*)::int AS n FROM ca_keys WHERE state = 'prepared' GROUP BY kind ORDER BY kind");
    expect(prepared.rows.length).toBeGreaterThan(0);
    // Never two active or two prepared keys of a kind (this CA lifetime keeps rotating: retired keys pile up legitimately).
    const live = await db.query("SELECT kind, state, count(*)::int AS n FROM ca_keys WHERE state IN ('active', 'prepared') GROUP BY kind, state");
    expect(live.rows.filter((x: { n: number }) => x.n !== 1)).toEqual([]);
    const seq1 = Number((await db.query("SELECT value FROM meta WHERE key = 'bundle_sequence'")).rows[0].value);
    expect(seq1).toBeGreaterThanOrEqual(seq0);
    // Every replica serves the database's bundle sequence.
    await until(() => r.every((x) => JSON.parse(x.bundleJwks()).spiffe_sequence === seq1), 'every replica at the stored bundle sequence', 60_000);
    // Served: a handshake on each replica returns that bundle.
    for (const [i, x] of r.entries()) {
      const tok = await token(x, `/agent/rotated-${i}`);
      const o = await handshake(x, tok.token);
      // This short CA lifetime may rotate again meanwhile: never an older bundle than the stored one.
      expect(JSON.parse(o.bundleJwks).spiffe_sequence).toBeGreaterThanOrEqual(seq1);
    }
  });
});
