/**
 * The database restarts under load (issue #13): three real `writ server` replicas on a private
 * PostgreSQL cluster of this test (test/helpers/pg-cluster.ts), clients handshaking with
 * failover all along. The cluster is stopped cleanly (`pg_ctl stop -m fast`) and started again,
 * then crashed (`-m immediate`, recovery at start) and started again. During each outage
 * issuance and revocation fail closed (`UNAVAILABLE` / `ERR_STORE`) and nothing is half-written;
 * after it every replica reconnects its pool and its LISTEN connection on its own (metrics),
 * revocations made on replica 1 right after the restart (the first time while replica 2 is frozen
 * by SIGSTOP, so its LISTEN is certainly down) reach a Watch subscriber of replica 2 with no
 * event missing and none twice, every credential
 * acknowledged to a client is recorded once, and the audit log verifies.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { attest, type AttestOutcome, GrpcCallError } from '../../src/agent/attest-client.js';
import { withFailover } from '../../src/agent/failover.js';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { WatchRevocationSource } from '../../src/revocation/watch-source.js';
import { type Cluster, cluster, type Replica, until } from '../helpers/ha.js';
import { PG_CLUSTER_UNAVAILABLE, type PgCluster, type StopMode, startPgCluster } from '../helpers/pg-cluster.js';
import { revokeAsOperator } from '../helpers/revocation.js';

const clusterDescribe = PG_CLUSTER_UNAVAILABLE === undefined ? describe : describe.skip;

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => console.error('cleanup failed:', e));
});

const newKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const serialOf = (o: AttestOutcome) => new X509Certificate(o.svidChain[0]!).serialNumber.toLowerCase().replace(/^0+/, '');
const metric = async (r: Replica, name: string) => {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(r.metricsUrl)).text());
  return m ? Number(m[1]) : Number.NaN;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

clusterDescribe('the database restarts under load', () => {
  it('replicas fail closed while it is down, reconnect by themselves, and lose no credential and no revocation', { timeout: 240_000 }, async () => {
    const started = Date.now();
    const pgc: PgCluster = await startPgCluster();
    cleanups.push(() => pgc.destroy());
    const admin = new pg.Client({ connectionString: pgc.url() });
    await admin.connect();
    await admin.query('CREATE DATABASE writ');
    await admin.end();
    const db = new pg.Pool({ connectionString: pgc.url('writ'), max: 2 });
    // The test's own pool sees the restarts too: its idle connections fail, and are dropped.
    db.on('error', () => undefined);
    cleanups.push(() => db.end());
    const c: Cluster = cluster('writ');
    cleanups.push(() => c.stop());
    const onCluster = { connectionString: pgc.url('writ') };
    const [r1, r2, r3] = await Promise.all([c.start(onCluster), c.start(onCluster), c.start(onCluster)]);
    const replicas = [r1!, r2!, r3!];
    const bundle = r1!.bundlePem();
    const tokenOn = (r: Replica, path: string) => adminClients(r.adminSocket).admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org${path}` });
    const handshakeOn = (server: string, tok: string) =>
      attest({ server, bundlePem: bundle, evidenceType: 'join_token', key: newKey(), respond: () => Buffer.from(tok), timeoutMs: 20_000 });

    // A relying party on replica 2 only: whatever it learns, replica 2 had to catch up on.
    const watcher = new WatchRevocationSource({
      addresses: [r2!.address],
      connector: grpcWatchConnector(bundle, { ownConnection: true }),
      reconnectInitialMs: 20,
      reconnectMaxMs: 200,
    }).start();
    cleanups.push(async () => watcher.close());
    await watcher.synced(30_000);
    const seen: number[] = [];
    watcher.onRevoked((x) => seen.push(x.sequence));

    // Sustained load: workers handshake through every replica in turn (failover to the next),
    // each attempt with a join token of its own (a failed attempt may have consumed its token).
    const tokens = new Map<string, string>(); // token id → SPIFFE ID
    const acked: Array<{ spiffeId: string; serial: string; via: string; phase: number }> = [];
    let phase = 0;
    let stopLoad = false;
    let refusedDuringLoad = 0;
    let n = 0;
    const worker = async (w: number) => {
      while (!stopLoad) {
        const id = n++;
        const spiffePath = `/agent/load-${id}`;
        let tok: Awaited<ReturnType<typeof tokenOn>>;
        try {
          tok = await tokenOn(replicas[(w + id) % 3]!, spiffePath);
        } catch {
          // The database is down: no token either. Try again shortly.
          refusedDuringLoad++;
          await sleep(100);
          continue;
        }
        tokens.set(tok.id, `spiffe://example.org${spiffePath}`);
        const order = [0, 1, 2].map((k) => replicas[(w + id + k) % 3]!);
        const at = phase;
        try {
          let via = '?';
          const o = await withFailover(
            order.map((r) => r.address),
            (server) => {
              via = order.find((r) => r.address === server)!.name;
              return handshakeOn(server, tok.token);
            },
          );
          acked.push({ spiffeId: o.spiffeId, serial: serialOf(o), via, phase: at });
        } catch {
          refusedDuringLoad++;
          await sleep(100);
        }
      }
    };
    const load = Promise.all(Array.from({ length: 4 }, (_, w) => worker(w)));

    const reconnects = async () => Promise.all(replicas.map((r) => metric(r, 'writ_change_feed_reconnects_total')));
    const poolConnects = async () => Promise.all(replicas.map((r) => metric(r, 'writ_datastore_pool_connects_total')));
    const report: string[] = [];

    const outage = async (mode: StopMode, round: number, freezeR2: boolean) => {
      const floor = acked.length;
      await until(() => acked.filter((a) => a.phase === phase).length >= 6 && acked.length >= floor + 6, `handshakes flow before the ${mode} stop`, 60_000);
      // Made before the outage: a token to try during it, entries to revoke right after it.
      const probe = await tokenOn(r1!, `/agent/probe-${mode}`);
      const targets = await Promise.all([0, 1, 2].map((i) => tokenOn(r1!, `/agent/revoke-${mode}-${i}`)));
      const feedBefore = await reconnects();

      await pgc.stop(mode);
      // Fail closed: no credential, no revocation, no token without the database; typed as the datastore's.
      const refused = await failure(handshakeOn(r2!.address, probe.token));
      expect(refused).toBeInstanceOf(GrpcCallError);
      expect((refused as GrpcCallError).code).toBe(grpc.status.UNAVAILABLE);
      expect((refused as GrpcCallError).writCode).toBe('ERR_STORE');
      expect((refused as GrpcCallError).details).toMatch(/datastore unavailable/);
      const revokeRefused = await failure(revokeAsOperator(r1!.adminSocket, 'entry', targets[0]!.entryId!));
      expect(String(revokeRefused)).toMatch(/datastore unavailable/);
      for (const r of replicas)
        await until(async () => (await metric(r, 'writ_change_feed_connected')) === 0, `${r.name} sees its LISTEN connection drop`, 20_000);
      phase = round;
      await sleep(1_000);
      // Counted while the database is down, every connection to the old server gone: whatever the
      // pools open from here on is a connection to the restarted server (not an idle one reopened).
      const connectsBefore = await poolConnects();

      // In the first round replica 2 is frozen (SIGSTOP) from before the database is back until replica 1
      // has revoked: its LISTEN connection is certainly down while those revocations commit. In the second it
      // runs free, and its LISTEN may or may not be back by then.
      const made: number[] = [];
      let r2ListenDown = freezeR2;
      try {
        // Inside the try: if the start fails, replica 2 is not left frozen (afterAll could not stop it).
        if (freezeR2) r2!.proc.kill('SIGSTOP');
        await pgc.start();
        // Right after the restart, on replica 1: its first calls must already work (its pool reconnects on demand).
        r2ListenDown ||= (await metric(r2!, 'writ_change_feed_connected')) === 0;
        for (const t of targets) made.push(Number((await revokeAsOperator(r1!.adminSocket, 'entry', t.entryId!, `after ${mode} restart`)).sequence));
      } finally {
        if (freezeR2) r2!.proc.kill('SIGCONT');
      }
      report.push(`${mode}: replica 2's LISTEN ${freezeR2 ? 'down (frozen)' : r2ListenDown ? 'still down' : 'already back'} when replica 1 revoked`);
      await until(() => watcher.sequence >= made[2]!, `the Watch subscriber of replica 2 sees the revocations made after the ${mode} restart`, 60_000);
      // The LISTEN connection of every replica is back by itself, and counted.
      await until(
        async () => (await Promise.all(replicas.map((r) => metric(r, 'writ_change_feed_connected')))).every((v) => v === 1),
        `every LISTEN reconnects after the ${mode} restart`,
        30_000,
      );
      // Each LISTEN was seen down (0) above and is up (1) now; its reconnection is counted (once,
      // unless the new connection dropped again, e.g. a ping unanswered on a starved machine).
      const feedAfter = await reconnects();
      for (const [i, v] of feedAfter.entries()) expect(v, `${replicas[i]!.name} change feed reconnects`).toBeGreaterThanOrEqual(feedBefore[i]! + 1);
      // Nothing of the refused handshake was written: its token still works, once.
      const o = await handshakeOn(r2!.address, probe.token);
      expect(o.spiffeId).toBe(`spiffe://example.org/agent/probe-${mode}`);
      // Load resumes on every replica: each one's pool opened new connections, to the restarted server.
      await until(
        () => replicas.every((r) => acked.some((a) => a.phase === round && a.via === r.name)),
        `every replica issues again after the ${mode} restart`,
        60_000,
      );
      const connectsAfter = await poolConnects();
      for (const [i, v] of connectsAfter.entries()) expect(v, `${replicas[i]!.name} pool connects`).toBeGreaterThan(connectsBefore[i]!);
    };

    try {
      await outage('fast', 1, true);
      await outage('immediate', 2, false);
      await until(() => acked.filter((a) => a.phase === 2).length >= 10, 'handshakes flow after the crash', 60_000);
    } finally {
      stopLoad = true;
      await load;
    }

    // Every replica lived through both restarts.
    for (const r of replicas) expect(r.proc.exitCode, `${r.name} exited:\n${r.log().slice(-3000)}`).toBeNull();
    // Every credential acknowledged to a client is recorded, under its SPIFFE ID, and none twice.
    const rows = (await db.query("SELECT ltrim(id, '0') AS id, spiffe_id FROM issued_svids WHERE kind = 'x509'")).rows as Array<{
      id: string;
      spiffe_id: string;
    }>;
    const recorded = new Map(rows.map((x) => [x.id, x.spiffe_id]));
    for (const a of acked) expect(recorded.get(a.serial), `${a.spiffeId} (${a.serial}) acknowledged but not recorded`).toBe(a.spiffeId);
    const perId = new Map<string, number>();
    for (const x of rows) perId.set(x.spiffe_id, (perId.get(x.spiffe_id) ?? 0) + 1);
    expect([...perId.entries()].filter(([, k]) => k !== 1)).toEqual([]);
    expect(new Set(acked.map((a) => a.serial)).size).toBe(acked.length);
    // Nothing half-written: a join token is consumed exactly when its credential is recorded (one transaction).
    const used = new Map(
      ((await db.query('SELECT id, used_at FROM join_tokens')).rows as Array<{ id: string; used_at: string | null }>).map((x) => [x.id, x.used_at !== null]),
    );
    const torn: string[] = [];
    for (const [id, spiffeId] of tokens) if (used.get(id) !== perId.has(spiffeId)) torn.push(`${id} used=${used.get(id)} recorded=${perId.has(spiffeId)}`);
    expect(torn).toEqual([]);
    // The subscriber of replica 2 saw every revocation in the store, in order, none twice, none missing.
    await until(async () => {
      const newest = (await db.query('SELECT COALESCE(MAX(seq), 0)::int AS s FROM revocations')).rows[0].s as number;
      return watcher.sequence >= newest;
    }, 'the subscriber of replica 2 is at the newest revocation');
    const stored = ((await db.query('SELECT seq::int AS s FROM revocations ORDER BY seq')).rows as Array<{ s: number }>).map((x) => x.s);
    expect(seen).toEqual(stored);
    expect(stored.length).toBe(6);
    // The audit log verifies, from any replica.
    const v = await adminClients(r3!.adminSocket, 120_000).audit.verifyLog({});
    expect(v.problem).toBe('');
    expect(v.ok).toBe(true);
    for (const r of replicas) {
      expect(r.log()).toContain('change feed reconnected');
      expect(r.log()).not.toContain('ha-test-password-never-logged');
    }
    console.log(
      `ha pg restart: ${acked.length} acknowledged (${[0, 1, 2].map((p) => acked.filter((a) => a.phase === p).length).join('/')} per phase), ${rows.length} recorded, ${refusedDuringLoad} refused during load, revocation sequences ${stored.join(',')}; ${report.join('; ')}; ${Math.round((Date.now() - started) / 1000)} s`,
    );
  });
});
