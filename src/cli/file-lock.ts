/** An exclusive lock between processes on one file (the CLI's replay cache). */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';

/** Longest a lock may be held before another process treats it as abandoned, ms. */
export const LOCK_STALE_MS = 30_000;
/** Longest `withFileLock` waits for a lock, ms. */
export const LOCK_WAIT_MS = 10_000;

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function holderAlive(lockPath: string): boolean {
  try {
    const pid = Number(readFileSync(lockPath, 'utf8'));
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `fn` holding an exclusive lock on `path` (a `<path>.lock` file created with O_EXCL,
 * holding the owner's pid), so that concurrent processes read-modify-write `path` one at a time.
 * A lock whose holder has exited, or older than LOCK_STALE_MS, is broken.
 */
export function withFileLock<T>(path: string, fn: () => T): T {
  const lockPath = `${path}.lock`;
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      writeFileSync(lockPath, String(process.pid), { flag: 'wx', mode: 0o600 });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let stale = false;
      try {
        stale = Date.now() - statSync(lockPath).mtimeMs > LOCK_STALE_MS || !holderAlive(lockPath);
      } catch {
        continue; // released between our attempt and the stat
      }
      if (stale) rmSync(lockPath, { force: true });
      else if (Date.now() > until) throw new Error(`cannot lock ${path}: ${lockPath} is held by a running process`);
      else sleepSync(10 + Math.floor(Math.random() * 20));
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lockPath, { force: true });
  }
}
