/** `coalesced` (server/housekeeping.ts): the keys reload runs one at a time, and a wake-up during a run gets one run after it. */
import { describe, expect, it } from 'vitest';
import { coalesced } from '../../src/server/housekeeping.js';

describe('coalesced', () => {
  it('never overlaps runs, and folds every call made during a run into one run after it', async () => {
    let running = 0;
    let most = 0;
    let runs = 0;
    const release: Array<() => void> = [];
    const run = coalesced(async () => {
      running++;
      most = Math.max(most, running);
      runs++;
      await new Promise<void>((r) => release.push(r));
      running--;
    });
    const tick = () => new Promise((r) => setImmediate(r));
    const first = run();
    await tick();
    expect(runs).toBe(1);
    const second = [run(), run(), run()];
    expect(second[0]).toBe(second[1]);
    await tick();
    expect(runs).toBe(1);
    release.shift()!();
    await first;
    await tick();
    expect(runs).toBe(2);
    // A call during the second run queues a third.
    const third = run();
    release.shift()!();
    await Promise.all(second);
    await tick();
    release.shift()!();
    await third;
    expect(runs).toBe(3);
    expect(most).toBe(1);
  });

  it('runs again after a run that failed', async () => {
    let n = 0;
    const run = coalesced(async () => {
      if (++n === 1) throw new Error('first fails');
    });
    await expect(run()).rejects.toThrow('first fails');
    await run();
    expect(n).toBe(2);
  });
});
