/**
 * The load driver shared by every handshake benchmark (in this process or a client process):
 * `concurrency` clients run `total` operations between them, back to back; the rate counts
 * completed operations over the wall time of the whole batch.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

export interface LoadResult {
  /** Operations per second over the batch. */
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly n: number;
  /** CPU time (user + system) of this process per operation, ms. */
  readonly cpuMs: number;
  /** Event-loop utilisation of this process over the batch (1 = never idle). */
  readonly elu: number;
}

/** Runs `one(i)` for i = 0..total-1 from `concurrency` concurrent loops; latencies in ms. */
export async function runLoad(total: number, concurrency: number, one: (i: number, worker: number) => Promise<void>): Promise<LoadResult> {
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
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
  const elu = performance.eventLoopUtilization(elu0).utilization;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!;
  return { rate: latencies.length / secs, p50: pct(50), p99: pct(99), n: latencies.length, cpuMs: (cpu.user + cpu.system) / 1000 / latencies.length, elu };
}

/** CPU time per operation (ms) and event-loop utilisation of this process while `fn` runs `ops` operations. */
export async function usage<T>(ops: () => number, fn: () => Promise<T>): Promise<{ value: T; cpuMs: number; elu: number }> {
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const value = await fn();
  const cpu = process.cpuUsage(cpu0);
  return { value, cpuMs: (cpu.user + cpu.system) / 1000 / ops(), elu: performance.eventLoopUtilization(elu0).utilization };
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
