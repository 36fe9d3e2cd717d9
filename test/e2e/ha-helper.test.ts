/**
 * test/helpers/ha.ts `terminate` (what Replica.stop and Cluster.stop use): a replica frozen by
 * SIGSTOP (ha-pg-restart freezes one) still ends, and one that ignores SIGTERM is killed after
 * the grace period, so a failed test cannot leave afterAll waiting for ever.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { terminate } from '../helpers/ha.js';

const child = (code: string) => {
  const p = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise<typeof p>((r) => p.stdout!.once('data', () => r(p)));
};

describe('terminate', () => {
  it('ends a process frozen by SIGSTOP (SIGTERM, then SIGCONT)', async () => {
    const p = await child("console.log('up'); setInterval(() => {}, 1000)");
    p.kill('SIGSTOP');
    const started = Date.now();
    await terminate(p, 20_000);
    expect(p.signalCode).toBe('SIGTERM');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('kills one that ignores SIGTERM once the grace period is over', async () => {
    const p = await child("process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000)");
    await terminate(p, 500);
    expect(p.signalCode).toBe('SIGKILL');
  });
});
