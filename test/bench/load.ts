/**
 * The load driver shared by every handshake benchmark (in this process or a client process):
 * `concurrency` clients run `total` operations between them, back to back. A series is several
 * such batches, interleaved with the other series' batches; its rate counts all its operations
 * over the wall time of all its batches, so every series sees the same mix of machine load.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

/** One batch, as measured by the process that ran its clients. */
export interface LoadResult {
  readonly n: number;
  /** Wall time of the batch, seconds. */
  readonly secs: number;
  /** Latency of each operation, ms. */
  readonly latencies: readonly number[];
  /** CPU time (user + system) of this process over the batch, ms. */
  readonly cpuMs: number;
}

/** Runs `one(i)` for i = 0..total-1 from `concurrency` concurrent loops. */
export async function runLoad(total: number, concurrency: number, one: (i: number, worker: number) => Promise<void>): Promise<LoadResult> {
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (next < total) {
        const i = next++;
        const s0 = performance.now();
        await one(i, worker);
        latencies.push(performance.now() - s0);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { n: latencies.length, secs, latencies, cpuMs: (cpu.user + cpu.system) / 1000 };
}

export interface SeriesStats {
  /** Operations per second over all batches of the series (total operations / total wall time). */
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly n: number;
  /** CPU ms per operation of the process that ran the clients. */
  readonly cpuMs: number;
  /** CPU ms per operation of the server process, when the clients ran in another process. */
  readonly serverCpuMs?: number;
  /** The rate of each batch. */
  readonly batchRates: readonly number[];
}

/** One series from its batches (each optionally with the server process's CPU ms over it). */
export function combine(batches: ReadonlyArray<LoadResult & { serverCpuMs?: number }>): SeriesStats {
  const lat = batches.flatMap((b) => b.latencies).sort((a, b) => a - b);
  const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]!;
  const n = lat.length;
  const sum = (f: (b: (typeof batches)[number]) => number) => batches.reduce((a, b) => a + f(b), 0);
  const server = batches.every((b) => b.serverCpuMs !== undefined) ? { serverCpuMs: sum((b) => b.serverCpuMs!) / n } : {};
  return {
    rate: n / sum((b) => b.secs),
    p50: pct(50),
    p99: pct(99),
    n,
    cpuMs: sum((b) => b.cpuMs) / n,
    ...server,
    batchRates: batches.map((b) => b.n / b.secs),
  };
}

/** CPU time (ms) of this process while `fn` runs. */
export async function withCpu<T>(fn: () => Promise<T>): Promise<{ value: T; cpuMs: number }> {
  const cpu0 = process.cpuUsage();
  const value = await fn();
  const cpu = process.cpuUsage(cpu0);
  return { value, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/**
 * With BENCH_PROFILE=DIR, runs `fn` under the V8 CPU profiler (the inspector, this process
 * only) and writes DIR/<name>.cpuprofile; `node dist/test/bench/profile-summary.js FILE`
 * turns one into a table. Without it, just runs `fn`.
 */
export async function profiled<T>(name: string | undefined, fn: () => Promise<T>): Promise<T> {
  const dir = process.env.BENCH_PROFILE;
  if (!dir || !name) return fn();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}
