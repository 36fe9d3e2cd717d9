/**
 * The store on the handshake path: N transactions of getJoinToken + consumeJoinToken (what a
 * join-token handshake does), best of RUNS, wall and CPU time. SQLite in a fresh temporary
 * file; with `postgres`, PostgreSQL (WRIT_TEST_PG, default the local server) in a fresh schema.
 *
 *   npm run build && node dist/test/store/bench.js [N] [RUNS] [sqlite|postgres]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PostgresStore } from '../../src/store/postgres.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { Store } from '../../src/store/store.js';

const N = Number(process.argv[2] ?? 10_000);
const RUNS = Number(process.argv[3] ?? 5);
const BACKEND = process.argv[4] ?? 'sqlite';
const PG_URL = process.env.WRIT_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

async function measure(store: Store): Promise<{ wall: number; cpu: number }> {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const ids = Array.from({ length: N }, () => randomBytes(8).toString('hex'));
    await store.transaction(async (tx) => {
      for (const id of ids) await tx.createJoinToken({ id, secretHash: randomBytes(32), expiresAt: 10_000, createdAt: 0, usedAt: null });
    });
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    for (const id of ids) {
      const ok = await store.transaction(async (tx) => {
        const t = await tx.getJoinToken(id);
        return t !== undefined && (await tx.consumeJoinToken(id, 5_000));
      });
      if (!ok) throw new Error(`token ${id} was not consumed`);
    }
    const c = process.cpuUsage(c0);
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    cpu.push((c.user + c.system) / 1000);
  }
  return { wall: Math.min(...wall), cpu: Math.min(...cpu) };
}

let result: { wall: number; cpu: number };
if (BACKEND === 'postgres') {
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  const schema = `writ_bench_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE SCHEMA ${schema}`);
  try {
    const store = await PostgresStore.open({ connectionString: PG_URL, schema });
    result = await measure(store);
    await store.close();
  } finally {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  }
} else {
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-'));
  try {
    const store = new SqliteStore(join(dir, 'w.db'));
    result = await measure(store);
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const { wall, cpu } = result;
console.log(
  `${BACKEND}: ${N} transactions (getJoinToken + consumeJoinToken), best of ${RUNS} runs: wall ${wall.toFixed(1)} ms (${((wall * 1000) / N).toFixed(1)} µs each, ${Math.round((N / wall) * 1000)}/s), cpu ${cpu.toFixed(1)} ms (${((cpu * 1000) / N).toFixed(1)} µs each)`,
);
