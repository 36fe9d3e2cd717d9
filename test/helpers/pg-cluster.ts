/**
 * A private PostgreSQL cluster for one test: `initdb` into a fresh temporary directory (0700;
 * trust auth, superuser `postgres`), listening on no TCP address at all, only on its Unix socket
 * in that directory: trust auth then admits no other local user (the directory keeps them out),
 * and no other test can take its "port" while it is stopped (the number only names the socket
 * file, `.s.PGSQL.<port>`, inside the directory). A test may stop it (`pg_ctl stop -m fast`),
 * crash it (`-m immediate`) and start it again on the same socket and data directory without
 * touching the system PostgreSQL. `url()` points at the socket (`?host=<dir>`), which pg and
 * writ's datastore settings accept as they are. PostgreSQL refuses to run as root: when the
 * tests run as root (CI), every command runs as the `postgres` user (`runuser -u postgres --`)
 * and the directory is handed to it.
 *
 * `destroy()` always ends the cluster (pg_ctl, else SIGKILL of the postmaster by the PID in
 * postmaster.pid) and removes the directory. pg_ctl detaches the postmaster, so a test process
 * that never calls it would leave it running: vitest stops its forks with SIGTERM, and Node then
 * runs no 'exit' listener. So SIGTERM/SIGINT here send every live postmaster SIGQUIT (immediate
 * shutdown) before the process goes, and the run's globalTeardown (test/helpers/pg-teardown.ts)
 * sweeps whatever is left of this run's clusters (directories `writ-pgc-<run>-*`).
 *
 * No initdb: `PG_CLUSTER_UNAVAILABLE` says why; tests skip loudly, unless CI is set.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PG_CLUSTER_DIR_PREFIX } from './pg-teardown.js';

const PG_ROOT = '/usr/lib/postgresql';

/** The newest PostgreSQL bin directory holding initdb, pg_ctl and pg_isready. */
function findBin(): string | undefined {
  const complete = (bin: string) => ['initdb', 'pg_ctl', 'postgres'].every((x) => existsSync(join(bin, x)));
  if (process.env.WRIT_TEST_PG_BIN) return complete(process.env.WRIT_TEST_PG_BIN) ? process.env.WRIT_TEST_PG_BIN : undefined;
  if (!existsSync(PG_ROOT)) return undefined;
  const versions = readdirSync(PG_ROOT)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(PG_ROOT, v, 'bin')).find(complete);
}

/** The uid/gid the cluster runs as when we are root (PostgreSQL will not), from /etc/passwd. */
function postgresUser(): { uid: number; gid: number } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

const PG_BIN = findBin();
const AS_ROOT = userInfo().uid === 0;
const RUN_AS = AS_ROOT ? postgresUser() : undefined;

function unavailable(): string | undefined {
  if (!PG_BIN)
    return process.env.WRIT_TEST_PG_BIN
      ? `no initdb/pg_ctl/postgres in WRIT_TEST_PG_BIN=${process.env.WRIT_TEST_PG_BIN}`
      : `no initdb/pg_ctl/postgres under ${PG_ROOT}/*/bin (set WRIT_TEST_PG_BIN)`;
  if (AS_ROOT && !RUN_AS) return 'running as root and there is no postgres user to run the cluster as';
  if (AS_ROOT && !existsSync('/usr/sbin/runuser') && !existsSync('/sbin/runuser') && !existsSync('/usr/bin/runuser')) return 'running as root without runuser';
  return undefined;
}

export const PG_CLUSTER_UNAVAILABLE = unavailable();
if (PG_CLUSTER_UNAVAILABLE !== undefined) {
  if (process.env.CI) throw new Error(`a private PostgreSQL cluster cannot be started and CI is set: ${PG_CLUSTER_UNAVAILABLE}`);
  console.warn(`\n*** a private PostgreSQL cluster cannot be started (${PG_CLUSTER_UNAVAILABLE}): the database restart tests are SKIPPED ***\n`);
}

interface Run {
  readonly code: number;
  readonly out: string;
}

/** Runs a PostgreSQL binary (as the postgres user when we are root); never throws. */
function run(tool: string, args: string[], timeoutMs = 60_000): Promise<Run> {
  const exe = join(PG_BIN!, tool);
  const [file, argv] = AS_ROOT ? ['runuser', ['-u', 'postgres', '--', exe, ...args]] : [exe, args];
  return new Promise((resolve) => {
    execFile(file, argv, { timeout: timeoutMs, env: { PATH: process.env.PATH, LANG: 'C', LC_ALL: 'C' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code as number) : -1) : 0;
      resolve({ code, out: `${stdout}${stderr}${err && code === -1 ? err.message : ''}` });
    });
  });
}

/** Names the socket file only (`<dir>/.s.PGSQL.5432`): no TCP port is bound. */
const SOCKET_PORT = 5432;

export type StopMode = 'fast' | 'immediate';

export interface PgCluster {
  readonly dir: string;
  /** The number in the socket's name (`<dir>/.s.PGSQL.<port>`); no TCP port is bound. */
  readonly port: number;
  /** `postgres://postgres@localhost:<port>/<db>?host=<dir>`: the Unix socket in `dir`. */
  url(db?: string): string;
  /** Whether the postmaster runs now (as far as this helper knows). */
  readonly running: boolean;
  /** `pg_ctl stop -m <mode>`: `fast` rolls back and disconnects every session and checkpoints; `immediate` is a crash (recovery at the next start). */
  stop(mode: StopMode): Promise<void>;
  /** Starts it again on the same socket and data directory; resolves once it accepts connections. */
  start(): Promise<void>;
  /** The server's log so far. */
  log(): string;
  /** Ends it whatever its state and removes its directory; never throws. */
  destroy(): Promise<void>;
}

const live = new Set<string>();
/**
 * SIGTERM (how vitest stops a fork) or SIGINT: every live postmaster gets SIGQUIT (immediate
 * shutdown) first; Node runs no 'exit' listener then, and pg_ctl detached the postmaster.
 */
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  const onSignal = () => {
    for (const dir of live) {
      const pid = postmasterPid(dir);
      if (pid) {
        try {
          process.kill(pid, 'SIGQUIT');
        } catch {
          // Already gone.
        }
      }
    }
    process.off(sig, onSignal);
    // Nobody else handles it: end as the signal would have.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  process.on(sig, onSignal);
}

function postmasterPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isSafeInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** initdb, then start on the Unix socket in its directory. */
export async function startPgCluster(): Promise<PgCluster> {
  if (PG_CLUSTER_UNAVAILABLE !== undefined) throw new Error(`private PostgreSQL cluster: ${PG_CLUSTER_UNAVAILABLE}`);
  // As root, under /tmp whatever TMPDIR says: the postgres user must reach the directory.
  const dir = mkdtempSync(join(AS_ROOT ? '/tmp' : tmpdir(), PG_CLUSTER_DIR_PREFIX));
  if (RUN_AS) chownSync(dir, RUN_AS.uid, RUN_AS.gid);
  live.add(dir);
  const data = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const port = SOCKET_PORT;
  let running = false;
  const cluster: PgCluster = {
    dir,
    get port() {
      return port;
    },
    get running() {
      return running;
    },
    url: (db = 'postgres') => `postgres://postgres@localhost:${port}/${db}?host=${encodeURIComponent(dir)}`,
    log: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    async start() {
      const r = await run('pg_ctl', [
        '-D',
        data,
        '-l',
        logFile,
        '-w',
        '-t',
        '60',
        '-o',
        // fsync off: a crash here is of the server processes, never of the machine, so the page cache keeps every commit.
        `-p ${port} -c listen_addresses='' -c unix_socket_directories=${dir} -c fsync=off -c shared_buffers=16MB -c max_connections=100`,
        'start',
      ]);
      if (r.code !== 0) throw new Error(`pg_ctl start (socket ${dir}) failed (${r.code}): ${r.out}\n${cluster.log().slice(-2000)}`);
      running = true;
      // pg_ctl -w waited for the socket; a real connection proves it.
      const end = Date.now() + 60_000;
      for (;;) {
        const c = new pg.Client({ connectionString: cluster.url(), connectionTimeoutMillis: 2_000 });
        try {
          await c.connect();
          await c.query('SELECT 1');
          return;
        } catch (e) {
          if (Date.now() > end) throw new Error(`the private PostgreSQL on ${dir} does not accept connections: ${(e as Error).message}`);
          await new Promise((res) => setTimeout(res, 100));
        } finally {
          await c.end().catch(() => undefined);
        }
      }
    },
    async stop(mode) {
      const r = await run('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
      if (r.code !== 0) throw new Error(`pg_ctl stop -m ${mode} failed (${r.code}): ${r.out}`);
      running = false;
    },
    async destroy() {
      if (live.has(dir)) {
        const pid = postmasterPid(dir);
        const r = await run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'], 30_000);
        if (r.code !== 0 && pid && alive(pid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone meanwhile.
          }
        }
        live.delete(dir);
        running = false;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const init = await run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-locale', '--no-sync'], 120_000);
    if (init.code !== 0) throw new Error(`initdb failed (${init.code}): ${init.out}`);
    await cluster.start();
    return cluster;
  } catch (e) {
    await cluster.destroy();
    throw e;
  }
}
