/**
 * The store on the handshake path: N transactions of getJoinToken + consumeJoinToken (what a
 * join-token handshake does), on SQLite in a fresh temporary file. Prints the best of RUNS.
 *
 *   npm run build && node dist/test/store/bench.js [N] [RUNS]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite.js';

const N = Number(process.argv[2] ?? 10_000);
const RUNS = Number(process.argv[3] ?? 5);

const dir = mkdtempSync(join(tmpdir(), 'writ-bench-'));
try {
  const store = new SqliteStore(join(dir, 'w.db'));
  const best: number[] = [];
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
    best.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  await store.close();
  const ms = Math.min(...best);
  const cpuMs = Math.min(...cpu);
  console.log(
    `sqlite: ${N} transactions (getJoinToken + consumeJoinToken), best of ${RUNS} runs: wall ${ms.toFixed(1)} ms (${((ms * 1000) / N).toFixed(1)} µs each, ${Math.round((N / ms) * 1000)}/s), cpu ${cpuMs.toFixed(1)} ms (${((cpuMs * 1000) / N).toFixed(1)} µs each)`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
