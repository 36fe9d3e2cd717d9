/**
 * High-availability benchmarks (group `ha`, called from run.ts), against three real `writ
 * server` processes on one PostgreSQL database of their own (WRIT_TEST_PG, default the local
 * one):
 *   ha_revocation_cross_replica_p50_ms / _p99_ms — from Revoke returning on replica 1 (the
 *     operator, on its admin socket) to a relying party subscribed to Watch on replica 3 having
 *     the event: the commit, NOTIFY, replica 3's read of the events table by sequence, its
 *     fan-out. BENCH_HA_SUBSCRIBERS (default 1,000) relying parties are subscribed, spread evenly
 *     over the three replicas, in child processes of their own; the measured one subscribes last
 *     to replica 3.
 *   ha_revocation_cross_replica_from_call_p50_ms / _p99_ms — the same, from calling Revoke.
 *   ha_revocation_fanout_all_p99_ms — from Revoke returning until every subscriber on every
 *     replica had it.
 *   ha_handshakes_per_s_{sqlite_1,pg_1,pg_2,pg_3} (+ _p99_ms) — join-token handshakes per second
 *     (BENCH_HA_HANDSHAKES each, BENCH_HA_CONCURRENCY clients at once, spread round-robin over
 *     the replicas) against one server on SQLite and 1, 2 and 3 replicas on PostgreSQL, in one
 *     run. The clients run in this process; every server process and PostgreSQL share the
 *     machine's cores, so more replicas add no CPU here: read the ratios, not the absolutes.
 * Knobs: BENCH_HA_SUBSCRIBERS, BENCH_REVOCATIONS (rounds, default 100), BENCH_HA_HANDSHAKES
 * (300), BENCH_HA_CONCURRENCY (16).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attest } from '../../src/agent/attest-client.js';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { WatchRevocationSource } from '../../src/revocation/watch-source.js';
import { cluster, freshDatabase, PG_UNREACHABLE } from '../helpers/ha.js';
import { revokeAsOperator } from '../helpers/revocation.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;

const SUBSCRIBERS = Number(process.env.BENCH_HA_SUBSCRIBERS ?? 1000);
const ROUNDS = Number(process.env.BENCH_REVOCATIONS ?? 100);
const SUBSCRIBERS_JS = fileURLToPath(new URL('./revocation-subscribers.js', import.meta.url));

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const wall = () => performance.timeOrigin + performance.now();
const round2 = (x: number) => Math.round(x * 100) / 100;

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`bench(ha): ${what} not reached within ${ms} ms`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A child process of `n` Watch subscribers on `address`; `seen` gets "every one of them has SEQ" at WALL_MS. */
function subscribers(address: string, bundleFile: string, n: number, seen: Map<number, number[]>): Promise<ChildProcess> {
  const p = spawn(process.execPath, [SUBSCRIBERS_JS, address, bundleFile, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  return new Promise((resolve, reject) => {
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === 'synced') resolve(p);
        else {
          const [seq, at] = line.split(' ').map(Number);
          seen.set(seq!, [...(seen.get(seq!) ?? []), at!]);
        }
        i = buf.indexOf('\n');
      }
    });
    p.once('exit', (c) => reject(new Error(`bench(ha): subscribers exited with ${c}`)));
  });
}

const HANDSHAKES = Number(process.env.BENCH_HA_HANDSHAKES ?? 300);
const CONCURRENCY = Number(process.env.BENCH_HA_CONCURRENCY ?? 16);

/** Handshakes/s and p99 over `replicas` processes (SQLite: one). */
async function handshakeRate(record: Record, label: string, replicas: number, sqlite: boolean): Promise<void> {
  const db = sqlite ? undefined : await freshDatabase();
  const c = cluster(db?.name ?? 'unused', { sqlite, config: 'limits:\n  attestations_per_second: 100000\n  attestation_burst: 100000\n' });
  try {
    const r: Awaited<ReturnType<typeof c.start>>[] = [];
    // The first alone (it makes the CA), the others at once.
    r.push(await c.start());
    r.push(...(await Promise.all(Array.from({ length: replicas - 1 }, () => c.start()))));
    const bundle = r[0]!.bundlePem();
    const admin = adminClients(r[0]!.adminSocket).admin;
    const warm = 20;
    const tokens: string[] = [];
    for (let i = 0; i < HANDSHAKES + warm; i++) tokens.push((await admin.createJoinToken({ ttl: 3600, spiffeId: `spiffe://example.org/agent/hs-${i}` })).token);
    const keys = tokens.map(() => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
    const one = (i: number) =>
      attest({ server: r[i % replicas]!.address, bundlePem: bundle, evidenceType: 'join_token', key: keys[i]!, respond: () => Buffer.from(tokens[i]!) });
    for (let i = 0; i < warm; i++) await one(HANDSHAKES + i);
    const lat: number[] = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < HANDSHAKES) {
          const i = next++;
          const s = performance.now();
          await one(i);
          lat.push(performance.now() - s);
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const what = `${HANDSHAKES} join-token handshakes, ${CONCURRENCY} at once, ${replicas} ${sqlite ? 'server on SQLite' : `replica(s) on one PostgreSQL`}; 2 cores shared by clients, servers and database`;
    record(`ha_handshakes_per_s_${label}`, Math.round(HANDSHAKES / secs), `handshakes/s (${what})`);
    record(`ha_handshakes_${label}_p99_ms`, round2(pct(lat, 99)), `ms (${what})`);
  } finally {
    await c.stop();
    await db?.drop();
  }
}

export async function haBenches(record: Record): Promise<void> {
  if (PG_UNREACHABLE !== undefined) {
    console.warn(`bench(ha): SKIPPED, PostgreSQL unreachable: ${PG_UNREACHABLE}`);
    return;
  }
  if (process.env.BENCH_HA_SKIP_HANDSHAKES !== '1') {
    await handshakeRate(record, 'sqlite_1', 1, true);
    for (const n of [1, 2, 3]) await handshakeRate(record, `pg_${n}`, n, false);
  }
  const db = await freshDatabase();
  // Every subscriber comes from 127.0.0.1: room for all of them on one replica.
  const c = cluster(db.name, { config: `revocation:\n  watch:\n    max_streams_per_peer: ${SUBSCRIBERS + 10}\n` });
  const children: ChildProcess[] = [];
  let source: WatchRevocationSource | undefined;
  try {
    const r = await Promise.all([c.start(), c.start(), c.start()]);
    const bundle = r[0]!.bundlePem();
    const bundleFile = join(c.dir, 'bundle.pem');
    writeFileSync(bundleFile, bundle);
    const seen = new Map<number, number[]>();
    const others = SUBSCRIBERS - 1;
    const share = [Math.floor(others / 3), Math.floor(others / 3), others - 2 * Math.floor(others / 3)];
    const groups = share.filter((n) => n > 0).length;
    // One replica at a time: a thousand TLS handshakes at once time out on a small machine.
    for (const [i, n] of share.entries()) if (n > 0) children.push(await subscribers(r[i]!.address, bundleFile, n, seen));
    source = new WatchRevocationSource({ addresses: [r[2]!.address], connector: grpcWatchConnector(bundle, { ownConnection: true }) }).start();
    await source.synced(60_000);
    const arrived = new Map<number, number>();
    source.onRevoked((x) => arrived.set(x.sequence, wall()));
    const admin = adminClients(r[0]!.adminSocket).admin;
    const fromReturn: number[] = [];
    const fromCall: number[] = [];
    const all: number[] = [];
    let early = 0;
    for (let i = 0; i < ROUNDS + 5; i++) {
      const tok = await admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org/agent/bench-${i}` });
      const t0 = wall();
      const seq = Number((await revokeAsOperator(r[0]!.adminSocket, 'entry', tok.entryId)).sequence);
      const t1 = wall();
      await until(() => arrived.has(seq), 30_000, `revocation ${seq} on replica 3`);
      await until(() => (seen.get(seq)?.length ?? 0) === groups, 60_000, `revocation ${seq} at every subscriber`);
      // The first rounds warm connections and prepared statements.
      if (i < 5) continue;
      const at = arrived.get(seq)!;
      if (at < t1) early++;
      fromReturn.push(Math.max(0, at - t1));
      fromCall.push(at - t0);
      all.push(Math.max(0, Math.max(at, ...seen.get(seq)!) - t1));
    }
    const what = `${ROUNDS} revocations on replica 1, ${SUBSCRIBERS} Watch subscribers over 3 replicas on one PostgreSQL, 2-core machine shared`;
    record(
      'ha_revocation_cross_replica_p50_ms',
      round2(pct(fromReturn, 50)),
      `ms (Revoke returned on replica 1 → subscriber on replica 3 has it; ${what}; ${early} arrived before Revoke returned)`,
    );
    record('ha_revocation_cross_replica_p99_ms', round2(pct(fromReturn, 99)), `ms (same; ${what})`);
    record(
      'ha_revocation_cross_replica_from_call_p50_ms',
      round2(pct(fromCall, 50)),
      `ms (Revoke called on replica 1 → subscriber on replica 3 has it; ${what})`,
    );
    record('ha_revocation_cross_replica_from_call_p99_ms', round2(pct(fromCall, 99)), `ms (same; ${what})`);
    record('ha_revocation_fanout_all_p99_ms', round2(pct(all, 99)), `ms (Revoke returned → every subscriber on every replica has it; ${what})`);
  } finally {
    source?.close();
    for (const p of children) p.kill('SIGTERM');
    await Promise.all(children.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((res) => p.once('exit', res)))));
    await c.stop();
    await db.drop();
  }
}
