/**
 * The sidecar's Unix socket (the SPIFFE Workload Endpoint): one gRPC server with every
 * `SocketService` of `SOCKET_SERVICES`, plus health and reflection derived from that list.
 * The socket is created owner-only (0600; 0660 with a group) in a private directory and linked into place, a socket another process still
 * answers on is never taken over, a stale one is replaced, and it is removed on close.
 */
import * as grpc from '@grpc/grpc-js';
import { chmodSync, chownSync, linkSync, lstatSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
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

/** Refuses a live socket or a non-socket at `path`; removes a stale socket. */
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
  let ino: number;
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
    ino = lstatSync(o.path).ino;
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
        // Only our own socket: a successor may already have bound the path.
        try {
          if (lstatSync(o.path).ino === ino) unlinkSync(o.path);
        } catch {
          // already gone
        }
      })();
      return closed;
    },
  };
}
