/**
 * Two sidecars starting at once on the same stale socket path (src/sidecar/socket.ts
 * `lockSocketPath`): exactly one serves, the other refuses with a clear error, and the winner's
 * socket still answers once the loser is gone. The worst interleaving is forced: the loser's
 * liveness check is made while the path is still stale and its answer arrives only after the
 * winner has linked its socket into place (node:net's `connect` is wrapped for socket.ts alone;
 * the probes here use the real one). Without the lock the loser then unlinks the winner's socket.
 */
import { spawn, spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, lstatSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import type * as Net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { SOCKET_LOCK_STALE_MS, SOCKET_LOCK_WAIT_MS, lockSocketPath, startSocketServer, type SocketServer } from '../../src/sidecar/socket.js';
import { FakeSidecarState } from '../fakes/sidecar-state.js';

/** Liveness answers socket.ts receives, delayed until `gate` resolves (the n-th connect, 1-based). */
const slow = vi.hoisted(() => ({ nth: 0, calls: 0, gate: undefined as undefined | (() => Promise<void>) }));

vi.mock('node:net', async (importOriginal) => {
  const real = await importOriginal<typeof Net>();
  const connect = (path: string) => {
    const s = real.connect(path);
    if (++slow.calls !== slow.nth || !slow.gate) return s;
    // The answer is what the socket said now; the caller hears it only once the gate opens.
    const late = Object.assign(new EventEmitter(), { destroy: () => s.destroy() });
    const gate = slow.gate;
    s.once('connect', () => void gate().then(() => late.emit('connect')));
    s.once('error', (e) => void gate().then(() => late.emit('error', e)));
    return late;
  };
  return { ...real, connect, default: { ...real, connect } };
});

const { connect: realConnect } = await vi.importActual<typeof Net>('node:net');

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = realConnect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A socket bound by a process that has exited (what a crash leaves): nobody answers on it. */
function staleSocket(path: string): void {
  const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`]);
  expect(r.status).toBe(0);
  expect(lstatSync(path).isSocket()).toBe(true);
}

/** This process's pid namespace, as the lock records it. */
const ns = (() => {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return 'none';
  }
})();

const dirs: string[] = [];
afterEach(() => {
  slow.nth = 0;
  slow.calls = 0;
  slow.gate = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function start(path: string): Promise<SocketServer> {
  return startSocketServer({ path, services: [], ctx: { state: new FakeSidecarState(), now: Date.now, log: () => {} } });
}

describe('two sidecars starting at once on a stale socket', () => {
  it('exactly one serves, the other refuses clearly, and the winner still answers after the loser is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsl-'));
    dirs.push(dir);
    const path = join(dir, 'agent.sock');
    staleSocket(path);
    // The second liveness check's answer is heard only once a live socket is at the path.
    slow.nth = 2;
    slow.gate = async () => {
      const until = Date.now() + 2_000;
      while (Date.now() < until && !(await answers(path))) await new Promise((r) => setTimeout(r, 5));
    };
    const results = await Promise.allSettled([start(path), start(path)]);
    const won = results.filter((r): r is PromiseFulfilledResult<SocketServer> => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    try {
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect((lost[0]!.reason as Error).message).toBe(`sidecar: another process is serving on ${path}; refusing to start`);
      // The loser has exited (its start failed, nothing of it is left): the winner's socket answers.
      expect(await answers(path)).toBe(true);
      expect(existsSync(`${path}.lock`)).toBe(false);
    } finally {
      for (const w of won) await w.value.close();
    }
    expect(existsSync(path)).toBe(false);
  });

  it('three at once without any forced interleaving: one serves, two refuse, none with an unexplained error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsl-'));
    dirs.push(dir);
    const path = join(dir, 'agent.sock');
    staleSocket(path);
    const results = await Promise.allSettled([start(path), start(path), start(path)]);
    const won = results.filter((r): r is PromiseFulfilledResult<SocketServer> => r.status === 'fulfilled');
    try {
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect((r.reason as Error).message).toMatch(/^sidecar: another process is serving on /);
      expect(await answers(path)).toBe(true);
    } finally {
      for (const w of won) await w.value.close();
    }
  });
});

describe('the start lock (<socket>.lock)', () => {
  it('a start waits for a live holder, and refuses clearly when it never lets go', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsl-'));
    dirs.push(dir);
    const path = join(dir, 'agent.sock');
    const release = await lockSocketPath(path);
    const clock = new ManualClock(Date.now());
    const p = lockSocketPath(path, clock);
    clock.advance(SOCKET_LOCK_WAIT_MS + 1);
    await expect(p).rejects.toThrow(`sidecar: another sidecar is starting on ${path} (${path}.lock is held by process ${process.pid}); refusing to start`);
    const q = lockSocketPath(path);
    release();
    const again = await q;
    again();
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it('breaks a lock whose holder has exited, or one older than its limit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsl-'));
    dirs.push(dir);
    const path = join(dir, 'agent.sock');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(`${path}.lock`, `${dead} ${ns} ${'0'.repeat(32)}`);
    (await lockSocketPath(path))();
    // A holder still alive (this process), but the lock is older than SOCKET_LOCK_STALE_MS.
    writeFileSync(`${path}.lock`, `${process.pid} ${ns} ${'0'.repeat(32)}`);
    (await lockSocketPath(path, new ManualClock(Date.now() + SOCKET_LOCK_STALE_MS + 1_000)))();
    expect(existsSync(`${path}.lock`)).toBe(false);
    expect(existsSync(`${path}.lock.break`)).toBe(false);
  });

  it("a pid written in another pid namespace (another container) is not judged: only the lock's age breaks it", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsl-'));
    dirs.push(dir);
    const path = join(dir, 'agent.sock');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(`${path}.lock`, `${dead} pid:[1] ${'0'.repeat(32)}`);
    const clock = new ManualClock(Date.now());
    const p = lockSocketPath(path, clock);
    clock.advance(SOCKET_LOCK_WAIT_MS + 1);
    await expect(p).rejects.toThrow(`(${path}.lock is held by process ${dead}); refusing to start`);
    (await lockSocketPath(path, new ManualClock(Date.now() + SOCKET_LOCK_STALE_MS + 1_000)))();
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it('an abandoned lock whose breaker another start keeps holding: waits without spinning, and refuses at the deadline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsl-'));
    dirs.push(dir);
    const path = join(dir, 'agent.sock');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(`${path}.lock`, `${dead} ${ns} ${'0'.repeat(32)}`);
    writeFileSync(`${path}.lock.break`, '1');
    // The other breaker stays fresh; each tick also shows the event loop still turns.
    let ticks = 0;
    const t = setInterval(() => {
      ticks++;
      const now = new Date();
      utimesSync(`${path}.lock.break`, now, now);
    }, 100);
    const started = Date.now();
    try {
      await expect(lockSocketPath(path)).rejects.toThrow(
        `sidecar: another sidecar is starting on ${path} (${path}.lock is held by process ${dead}); refusing to start`,
      );
    } finally {
      clearInterval(t);
    }
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(SOCKET_LOCK_WAIT_MS);
    expect(took).toBeLessThan(SOCKET_LOCK_WAIT_MS + 3_000);
    expect(ticks).toBeGreaterThan(SOCKET_LOCK_WAIT_MS / 100 / 2);
    expect(existsSync(`${path}.lock`)).toBe(true); // never broken under someone else's breaker
  });

  it('a FIFO at the lock path is refused at once, never opened (a read would block the event loop)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsl-'));
    dirs.push(dir);
    const path = join(dir, 'agent.sock');
    expect(spawnSync('mkfifo', [`${path}.lock`]).status).toBe(0);
    // A writer that answers every open with a byte (for 20 s at most): a read of the FIFO (what
    // this guards against) then returns instead of hanging the test for ever.
    const writer = spawn(process.execPath, [
      '-e',
      `const fs=require('fs');setTimeout(()=>process.exit(0),20000);(function w(){fs.open(${JSON.stringify(`${path}.lock`)},'w',(e,fd)=>{if(e)return;fs.write(fd,'x',()=>fs.close(fd,w))})})()`,
    ]);
    try {
      const started = Date.now();
      await expect(lockSocketPath(path)).rejects.toThrow(
        `sidecar: ${path}.lock is not a regular file (no sidecar lock is); refusing to start until it is removed`,
      );
      expect(Date.now() - started).toBeLessThan(500);
      expect(lstatSync(`${path}.lock`).isFIFO()).toBe(true);
    } finally {
      writer.kill('SIGKILL');
    }
  });

  it('a symlink at the lock path is refused at once, neither followed nor removed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsl-'));
    dirs.push(dir);
    const path = join(dir, 'agent.sock');
    symlinkSync('/dev/zero', `${path}.lock`);
    const started = Date.now();
    await expect(lockSocketPath(path)).rejects.toThrow(
      `sidecar: ${path}.lock is not a regular file (no sidecar lock is); refusing to start until it is removed`,
    );
    expect(Date.now() - started).toBeLessThan(500);
    expect(lstatSync(`${path}.lock`).isSymbolicLink()).toBe(true);
    // A symlink to a lock-shaped regular file is refused as well: the lock is only ever a file.
    rmSync(`${path}.lock`);
    writeFileSync(join(dir, 'elsewhere'), `${process.pid} ${ns} ${'0'.repeat(32)}`);
    symlinkSync(join(dir, 'elsewhere'), `${path}.lock`);
    await expect(lockSocketPath(path)).rejects.toThrow(`${path}.lock is not a regular file`);
  });
});
