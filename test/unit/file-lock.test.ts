/**
 * The stale-lock race of `withFileLock` made deterministic (review finding 10): a process that
 * judged the lock stale must not remove it once another process has broken it and taken it.
 * test/e2e/file-lock.test.ts runs the race between real processes.
 */
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { breakStale, withFileLock } from '../../src/cli/file-lock.js';
import { tmpDir } from '../helpers/tmp.js';

describe('breaking a stale lock', () => {
  it('removes a lock whose holder is gone, and not one a live process took after it was judged stale', () => {
    const lock = join(tmpDir('writ-lock-'), 'cache.json.lock');
    writeFileSync(lock, '999999999'); // no such process
    expect(breakStale(lock)).toBe(true);
    expect(existsSync(lock)).toBe(false);
    // Another process broke it and took it (our pid stands for a live one) after we judged it stale.
    writeFileSync(lock, String(process.pid));
    expect(breakStale(lock)).toBe(true);
    expect(readFileSync(lock, 'utf8')).toBe(String(process.pid));
  });

  it('does nothing while another process is breaking (its breaker held), and clears a breaker left by a crash', () => {
    const lock = join(tmpDir('writ-lock-'), 'cache.json.lock');
    writeFileSync(lock, '999999999');
    writeFileSync(`${lock}.break`, String(process.pid));
    expect(breakStale(lock)).toBe(false);
    expect(existsSync(lock)).toBe(true);
    // The breaker's holder crashed inside it: once old, it is cleared, and the next try breaks the lock.
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${lock}.break`, old, old);
    expect(breakStale(lock)).toBe(false);
    expect(existsSync(`${lock}.break`)).toBe(false);
    expect(breakStale(lock)).toBe(true);
    expect(existsSync(lock)).toBe(false);
  });

  it('withFileLock enters over a dead holder and leaves no lock behind', () => {
    const target = join(tmpDir('writ-lock-'), 'cache.json');
    writeFileSync(`${target}.lock`, '999999999');
    expect(withFileLock(target, () => 'in')).toBe('in');
    expect(existsSync(`${target}.lock`)).toBe(false);
  });
});
