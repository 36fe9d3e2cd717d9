/** An exclusive lock between processes on one file (the CLI's replay cache). */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';

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

/** Longest a process may hold the breaker lock (it only re-checks and removes a stale lock) before it counts as crashed, ms. */
export const BREAKER_STALE_MS = 5_000;

function ownedBy(lockPath: string, pid: number): boolean {
  try {
    return readFileSync(lockPath, 'utf8') === String(pid);
  } catch {
    return false;
  }
}

/**
 * Removes `lockPath` if it is still stale, judged again while holding `<lock>.break` (O_EXCL):
 * two processes that both saw a stale lock cannot both remove something, the second would
 * otherwise remove the lock the first has just taken. Returns false when the breaker is busy.
 */
export function breakStale(lockPath: string): boolean {
  const breaker = `${lockPath}.break`;
  try {
    writeFileSync(breaker, String(process.pid), { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // A breaker left by a process that crashed inside it (a few statements long): remove it.
    try {
      if (Date.now() - statSync(breaker).mtimeMs > BREAKER_STALE_MS) rmSync(breaker, { force: true });
    } catch {}
    return false;
  }
  try {
    if (isStale(lockPath)) rmSync(lockPath, { force: true });
  } finally {
    rmSync(breaker, { force: true });
  }
  return true;
}

function isStale(lockPath: string): boolean {
  try {
    return Date.now() - statSync(lockPath).mtimeMs > LOCK_STALE_MS || !holderAlive(lockPath);
  } catch {
    return false; // gone: nothing to break
  }
}

/**
 * Creates `lockPath` holding our pid, atomically: the pid is written to a private file first and
 * hard-linked into place (link fails with EEXIST when the lock exists). Created in place with
 * O_EXCL, the lock would exist empty for a moment, and a contender reading it then would find
 * no live holder and break a lock that was just taken.
 */
function createLock(lockPath: string): void {
  const tmp = `${lockPath}.${process.pid}.${randomBytes(6).toString('hex')}`;
  writeFileSync(tmp, String(process.pid), { flag: 'wx', mode: 0o600 });
  try {
    linkSync(tmp, lockPath);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * Runs `fn` holding an exclusive lock on `path` (a `<path>.lock` file created with O_EXCL,
 * holding the owner's pid), so that concurrent processes read-modify-write `path` one at a time.
 * A lock whose holder has exited, or older than LOCK_STALE_MS, is broken, under a second lock
 * (`breakStale`) so that only a lock still stale is removed.
 */
export function withFileLock<T>(path: string, fn: () => T): T {
  const lockPath = `${path}.lock`;
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      createLock(lockPath);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (isStale(lockPath) && breakStale(lockPath)) continue;
      if (Date.now() > until) throw new Error(`cannot lock ${path}: ${lockPath} is held by a running process`);
      sleepSync(10 + Math.floor(Math.random() * 20));
    }
  }
  try {
    return fn();
  } finally {
    // Only our own: a lock broken as too old and taken by another process stays theirs.
    if (ownedBy(lockPath, process.pid)) rmSync(lockPath, { force: true });
  }
}
