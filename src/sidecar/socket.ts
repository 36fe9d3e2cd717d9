/**
 * The sidecar's Unix socket (the SPIFFE Workload Endpoint): one gRPC server with every
 * `SocketService` of `SOCKET_SERVICES`, plus health and reflection derived from that list.
 * The socket is created owner-only (0600; 0660 with a group) in a private directory and linked into place, a socket another process still
 * answers on is never taken over, a stale one is replaced (one start at a time, under `<path>.lock`),
 * and it is removed on close.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants as fsConstants,
  fstatSync,
  linkSync,
  lstatSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readlinkSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import { systemClock, type Clock } from '../clock.js';
import { UsageError } from '../config/options.js';
import { HealthState, Serving } from '../rpc/health.js';
import { markAll, mountWithHealthAndReflection } from '../rpc/mount.js';
import type { SocketService, SocketServiceContext } from './socket-service.js';
import type { SidecarStatus } from './state.js';

/** Largest request on the socket: Workload API requests are an audience or a JWT (16 KiB at most). */
export const MAX_SOCKET_REQUEST_BYTES = 64 * 1024;
/** sun_path holds 108 bytes with its terminating NUL (Linux unix(7)). */
const MAX_SOCKET_PATH_BYTES = 107;
/** How long a shutdown waits for calls in flight before cutting them off. */
export const SHUTDOWN_GRACE_MS = 5_000;

/**
 * The socket path: `--socket PATH`, else `SPIFFE_ENDPOINT_SOCKET` as `unix:///path` or
 * `unix:/path` (SPIFFE Workload Endpoint §4). Only absolute Unix paths are accepted.
 */
export function socketPath(option: string | undefined, env: Record<string, string | undefined>): string {
  if (option !== undefined) {
    if (!isAbsolute(option) || option.includes('\0')) throw new UsageError(`--socket must be an absolute path (got ${JSON.stringify(option.slice(0, 80))})`);
    return option;
  }
  const v = env.SPIFFE_ENDPOINT_SOCKET;
  if (v === undefined || v === '') throw new UsageError('name the socket with --socket PATH or SPIFFE_ENDPOINT_SOCKET=unix:///PATH');
  // unix:///path or unix:/path; never an authority (unix://host/path), a query or a fragment.
  const m = /^unix:(?:\/\/(\/[^?#\0]*)|(\/(?!\/)[^?#\0]*))$/.exec(v);
  if (!m) throw new UsageError(`SPIFFE_ENDPOINT_SOCKET must be unix:///ABSOLUTE/PATH (got ${JSON.stringify(v.slice(0, 80))})`);
  return (m[1] ?? m[2])!;
}

/** A group name from /etc/group, or a numeric gid. */
export function resolveGroup(group: string): number {
  if (/^\d{1,10}$/.test(group)) return Number(group);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new UsageError(`--socket-group: no group ${JSON.stringify(group.slice(0, 64))}`);
}

/** True when something accepts connections on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Longest a start waits for another sidecar starting on the same path, ms. */
export const SOCKET_LOCK_WAIT_MS = 5_000;
/**
 * Age past which a start lock counts as abandoned whoever holds it, ms. It is held only from
 * the liveness check to the link into place (milliseconds); a holder that is still alive keeps
 * it until then, one that has exited loses it at once.
 */
export const SOCKET_LOCK_STALE_MS = 30_000;
/** Age past which a breaker left by a process that crashed inside it is removed, ms. */
const SOCKET_LOCK_BREAKER_STALE_MS = 5_000;

/**
 * This process's pid namespace (`pid:[INODE]` on Linux): a holder's pid means something here only
 * when it was written in the same one (sidecars in two containers may share a socket directory).
 */
const PID_NAMESPACE = (() => {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return 'none';
  }
})();

/** Longest lock text read: a holder's line is at most 10 + 1 + 64 + 1 + 32 bytes. */
const MAX_LOCK_BYTES = 128;

/**
 * The lock (or its breaker) at `lockPath` when it is a regular file: its mtime; undefined when
 * it is gone. Anything else there (a FIFO, a symlink, a directory) is refused, never followed,
 * read, broken or removed: no start of ours made it.
 */
function lockStat(lockPath: string): { mtimeMs: number } | undefined {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(lockPath);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  if (!st.isFile()) throw new Error(`sidecar: ${lockPath} is not a regular file (no sidecar lock is); refusing to start until it is removed`);
  return { mtimeMs: st.mtimeMs };
}

/**
 * A lock's holder: pid, pid namespace, and the whole text, unique to one start (two sidecars in
 * one process share a pid). Undefined when the lock is gone or not in this shape. Read without
 * following a symlink or blocking on a FIFO, and at most MAX_LOCK_BYTES of it.
 */
function lockHolder(lockPath: string): { pid: number; namespace: string; token: string } | undefined {
  let fd: number;
  try {
    fd = openSync(lockPath, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') lockStat(lockPath); // a symlink: refused by name
    throw e;
  }
  let text: string;
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`sidecar: ${lockPath} is not a regular file (no sidecar lock is); refusing to start until it is removed`);
    const buf = Buffer.alloc(MAX_LOCK_BYTES);
    const n = readSync(fd, buf, 0, MAX_LOCK_BYTES, 0);
    text = buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
  const m = /^(\d{1,10}) (\S{1,64}) ([0-9a-f]{32})$/.exec(text);
  return m ? { pid: Number(m[1]), namespace: m[2]!, token: text } : undefined;
}

function lockAbandoned(lockPath: string, now: number): boolean {
  const st = lockStat(lockPath);
  if (!st) return false; // gone: nothing to break
  if (now - st.mtimeMs > SOCKET_LOCK_STALE_MS) return true;
  const holder = lockHolder(lockPath);
  // Not in our shape, or from another pid namespace: only its age can tell (a lock is written
  // whole, by link, so a lock being taken is never seen half-written).
  if (!holder || holder.namespace !== PID_NAMESPACE) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code !== 'EPERM';
  }
}

/**
 * Removes an abandoned lock, judged again while holding `<lock>.break` (O_EXCL), so that two
 * starts that both saw it abandoned cannot both remove something: the second would remove the
 * lock the first has just taken.
 */
function breakAbandoned(lockPath: string, now: number): void {
  const breaker = `${lockPath}.break`;
  try {
    writeFileSync(breaker, String(process.pid), { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // Another start is breaking it: wait (the caller sleeps), unless that one crashed inside.
    const st = lockStat(breaker);
    if (st && now - st.mtimeMs > SOCKET_LOCK_BREAKER_STALE_MS) rmSync(breaker, { force: true });
    return;
  }
  try {
    if (lockAbandoned(lockPath, now)) rmSync(lockPath, { force: true });
  } finally {
    rmSync(breaker, { force: true });
  }
}

/**
 * Takes `<path>.lock` for one start on `path`, so that two sidecars starting at once on a stale
 * socket check and replace it one after the other: without it both could judge it stale, and
 * the later one's unlink would remove the socket the other had just linked into place. The lock
 * is written whole to a private file and hard-linked into place (link fails when it exists);
 * one whose holder has exited (a pid of our pid namespace that is gone), or older than
 * SOCKET_LOCK_STALE_MS, is broken. Returns the
 * release, which removes the lock only if it is still this start's. `clock` is what ages are
 * measured on (file times are the system's).
 */
export async function lockSocketPath(path: string, clock: Clock = systemClock): Promise<() => void> {
  const lockPath = `${path}.lock`;
  const token = `${process.pid} ${PID_NAMESPACE} ${randomBytes(16).toString('hex')}`;
  const until = clock.now().getTime() + SOCKET_LOCK_WAIT_MS;
  for (;;) {
    const tmp = `${lockPath}.${randomBytes(6).toString('hex')}`;
    writeFileSync(tmp, token, { flag: 'wx', mode: 0o600 });
    try {
      linkSync(tmp, lockPath);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      rmSync(tmp, { force: true });
    }
    const now = clock.now().getTime();
    // A break attempt is followed by the same sleep and deadline as any wait: when another
    // start holds the breaker, retrying at once would spin without yielding, for ever.
    if (lockAbandoned(lockPath, now)) breakAbandoned(lockPath, now);
    if (now > until && lockStat(lockPath)) {
      const holder = lockHolder(lockPath);
      throw new Error(`sidecar: another sidecar is starting on ${path} (${lockPath} is held${holder ? ` by process ${holder.pid}` : ''}); refusing to start`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10 + Math.floor(Math.random() * 20)));
  }
  return () => {
    try {
      if (lockHolder(lockPath)?.token === token) rmSync(lockPath, { force: true });
    } catch {
      // Replaced by something that is not a regular file: not ours, left alone.
    }
  };
}

/**
 * Refuses a live socket or a non-socket at `path`; removes a stale socket. Call it holding
 * `lockSocketPath(path)`: between the check and the unlink another sidecar could otherwise link
 * its live socket into place, and this would remove it.
 */
export async function claimSocketPath(path: string): Promise<void> {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) throw new Error(`sidecar: ${path} exists and is not a socket; refusing to replace it`);
  if (await answers(path)) throw new Error(`sidecar: another process is serving on ${path}; refusing to start`);
  unlinkSync(path);
}

export interface SocketServerOptions {
  readonly path: string;
  /** Group allowed to connect (mode 0660); without it the socket is 0600. */
  readonly gid?: number;
  readonly services: readonly SocketService[];
  readonly ctx: SocketServiceContext;
}

export interface SocketServer {
  readonly path: string;
  readonly health: HealthState;
  /** Ends every stream with UNAVAILABLE, stops the server, removes the socket. */
  close(): Promise<void>;
}

export async function startSocketServer(o: SocketServerOptions): Promise<SocketServer> {
  // From the liveness check to the link into place, one start at a time on this path: a
  // contender then finds the winner's socket answering and refuses (claimSocketPath).
  const unlock = await lockSocketPath(o.path);
  try {
    return await startLocked(o);
  } finally {
    unlock();
  }
}

async function startLocked(o: SocketServerOptions): Promise<SocketServer> {
  await claimSocketPath(o.path);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_SOCKET_REQUEST_BYTES,
    'grpc.max_concurrent_streams': 1_000,
  });
  const health = new HealthState();
  const names = mountWithHealthAndReflection(
    server,
    o.services.map((s) => ({ service: s.service, file: s.file, impl: s.implementation(o.ctx) })),
    health,
  );
  const healthFor = (s: SidecarStatus) => (s.state === 'serving' ? Serving.SERVING : Serving.NOT_SERVING);
  health.set('', Serving.SERVING);
  markAll(health, names, healthFor(o.ctx.state.current()));
  health.set('', Serving.SERVING);
  const off = o.ctx.state.subscribe((s) => {
    for (const n of names) health.set(n, healthFor(s));
  });
  // Bound inside a fresh 0700 directory beside the path, given its mode there, then hard-linked
  // into place: no other user can reach it before its mode is set, the process umask (global
  // state) is never touched, and link() refuses a path someone created since it was claimed.
  const staging = mkdtempSync(join(dirname(o.path), '.ws-'));
  const staged = join(staging, 's');
  let ours: { dev: number; ino: number };
  try {
    if (Buffer.byteLength(staged) > MAX_SOCKET_PATH_BYTES) throw new UsageError(`--socket: ${o.path} is too long for a Unix socket`);
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${staged}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())),
    );
    if (o.gid !== undefined) {
      chownSync(staged, process.getuid?.() ?? -1, o.gid);
      chmodSync(staged, 0o660);
    } else chmodSync(staged, 0o600);
    try {
      linkSync(staged, o.path);
    } catch (e) {
      server.forceShutdown();
      if ((e as NodeJS.ErrnoException).code === 'EEXIST')
        throw new Error(`sidecar: ${o.path} was created by another process while starting; refusing to replace it`);
      throw e;
    }
    const st = lstatSync(o.path);
    ours = { dev: st.dev, ino: st.ino };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  let closed: Promise<void> | undefined;
  return {
    path: o.path,
    health,
    close() {
      closed ??= (async () => {
        off();
        for (const n of ['', ...names]) health.set(n, Serving.NOT_SERVING);
        for (const s of o.services) s.closeStreams?.({ code: grpc.status.UNAVAILABLE, details: 'the sidecar is shutting down' });
        // Only our own socket: a successor may already have bound the path. Compared while the
        // server is still bound, which keeps our inode allocated (even if the path was unlinked),
        // so a successor's socket cannot carry the same device and inode numbers.
        try {
          const st = lstatSync(o.path);
          if (st.dev === ours.dev && st.ino === ours.ino) unlinkSync(o.path);
        } catch {
          // already gone
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, SHUTDOWN_GRACE_MS);
          t.unref();
          server.tryShutdown(() => {
            clearTimeout(t);
            resolve();
          });
        });
      })();
      return closed;
    },
  };
}
