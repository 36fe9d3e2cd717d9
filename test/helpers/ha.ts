/**
 * Several real `writ server` processes (bin/writ, so dist/ must be built) on one PostgreSQL
 * database of their own: each replica its own data directory, admin socket and serving
 * certificate, all sharing the key-encryption key (one passphrase, one salt). A TCP proxy
 * (node:net) can stand between a replica and PostgreSQL to cut it from the database without
 * touching the server. Every process is stopped by its PID.
 *
 * PostgreSQL unreachable: `PG_UNREACHABLE` says why; tests skip loudly, unless CI is set.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { REPO_ROOT } from './shared.js';

export const PG_URL = process.env.WRIT_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const WRIT = join(REPO_ROOT, 'bin', 'writ');

async function reachable(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3_000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => undefined);
  }
}

export const PG_UNREACHABLE = await reachable();
if (PG_UNREACHABLE !== undefined) {
  if (process.env.CI) throw new Error(`PostgreSQL at ${PG_URL} is unreachable and CI is set: ${PG_UNREACHABLE}`);
  console.warn(`\n*** PostgreSQL at ${PG_URL} is unreachable (${PG_UNREACHABLE}): the HA tests are SKIPPED (set WRIT_TEST_PG) ***\n`);
}

/** The URL of database `db` on the server PG_URL names. */
export function urlOf(db: string, port?: number): string {
  const u = new URL(PG_URL);
  u.pathname = `/${db}`;
  if (port !== undefined) {
    u.hostname = '127.0.0.1';
    u.port = String(port);
  }
  return u.toString();
}

/** A new empty database; `drop()` removes it (connections forced off). */
export async function freshDatabase(): Promise<{
  name: string;
  url: string;
  query: (sql: string, params?: unknown[]) => Promise<pg.QueryResult>;
  drop(): Promise<void>;
}> {
  const name = `writ_ha_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const pool = new pg.Pool({ connectionString: urlOf(name), max: 2 });
  return {
    name,
    url: urlOf(name),
    query: (sql, params) => pool.query(sql, params),
    async drop() {
      await pool.end();
      const a = new pg.Client({ connectionString: PG_URL });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** A TCP proxy to PostgreSQL that can cut every connection and refuse new ones, then let them through again. */
export class PgProxy {
  private readonly sockets = new Set<Socket>();
  private server?: Server;
  private cut = false;
  port = 0;

  async start(): Promise<number> {
    const target = new URL(PG_URL);
    this.server = createServer((client) => {
      if (this.cut) {
        client.destroy();
        return;
      }
      const upstream = connect(Number(target.port || 5432), target.hostname);
      this.sockets.add(client).add(upstream);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    const a = this.server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
    return this.port;
  }

  /** Drops every connection through the proxy and refuses new ones. */
  down(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  up(): void {
    this.cut = false;
  }

  async stop(): Promise<void> {
    this.down();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

export interface Replica {
  readonly name: string;
  readonly dataDir: string;
  readonly address: string;
  readonly adminSocket: string;
  readonly metricsUrl: string;
  readonly proc: ChildProcess;
  /** What it printed on stderr and stdout (the log). */
  log(): string;
  bundlePem(): string;
  bundleJwks(): string;
  /** SIGTERM (and SIGCONT, in case it is frozen), SIGKILL after a grace period; waits for the exit. */
  stop(): Promise<void>;
  /** SIGKILL, waits for the exit. */
  kill(): Promise<void>;
}

export interface Cluster {
  readonly dir: string;
  readonly replicas: Replica[];
  /**
   * Starts one more replica on the database (through `port` instead of PostgreSQL's when given;
   * on `connectionString`, whole, when given: a private cluster's socket URL).
   */
  start(o?: { pgPort?: number; connectionString?: string; extraConfig?: string; env?: NodeJS.ProcessEnv }): Promise<Replica>;
  stop(): Promise<void>;
}

/** Resolves once `p` has exited, or after `ms` (false then). */
const exited = (p: ChildProcess, ms = 30_000): Promise<boolean> =>
  p.exitCode !== null || p.signalCode !== null
    ? Promise.resolve(true)
    : new Promise<boolean>((r) => {
        const t = setTimeout(() => r(false), ms);
        p.once('exit', () => {
          clearTimeout(t);
          r(true);
        });
      });

/**
 * SIGTERM, then SIGCONT (a process frozen by SIGSTOP acts on its SIGTERM only once it runs
 * again), then SIGKILL if it has not exited within `graceMs`; resolves once it has exited.
 */
export async function terminate(p: ChildProcess, graceMs = 15_000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  p.kill('SIGCONT');
  if (await exited(p, graceMs)) return;
  p.kill('SIGKILL');
  if (!(await exited(p, 10_000))) throw new Error(`process ${p.pid} did not exit after SIGKILL`);
}

/** Replicas of one issuer on database `db` (with `sqlite`, one server on its own SQLite file instead); `config` is YAML added to every replica's configuration. */
export function cluster(db: string, o: { config?: string; trustDomain?: string; sqlite?: boolean } = {}): Cluster {
  const dir = mkdtempSync(join(tmpdir(), 'writ-ha-'));
  const salt = randomBytes(16);
  const passphrase = randomBytes(24).toString('base64url');
  const replicas: Replica[] = [];
  let started = 0;
  /** Every process spawned, started or not, so that `stop` ends each by its PID. */
  const procs: ChildProcess[] = [];
  const start = async (s: { pgPort?: number; connectionString?: string; extraConfig?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Replica> => {
    const name = `r${++started}`;
    const dataDir = join(dir, name);
    mkdirSync(dataDir, { mode: 0o700 });
    // The same key-encryption key on every replica: one passphrase, one salt (docs/operations.md).
    writeFileSync(join(dataDir, 'kek.salt'), salt, { mode: 0o600 });
    const cfg = join(dataDir, 'writ.yaml');
    writeFileSync(
      cfg,
      [
        `trust_domain: ${o.trustDomain ?? 'example.org'}`,
        'log_level: info',
        'metrics_listen: 127.0.0.1:0',
        ...(o.sqlite
          ? []
          : [
              'datastore:',
              '  type: postgres',
              `  connection_string: ${s.connectionString ?? urlOf(db, s.pgPort)}`,
              '  password_env: WRIT_TEST_PG_PASSWORD',
              '  pool_size: 8',
              '  statement_timeout: 5s',
            ]),
        o.config ?? '',
        s.extraConfig ?? '',
      ].join('\n'),
    );
    const proc = spawn(process.execPath, [WRIT, 'server', '--config', cfg, '--data-dir', dataDir, '--listen', '127.0.0.1:0'], {
      cwd: dataDir,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        WRIT_KEY_PASSPHRASE: passphrase,
        // Trust auth ignores it; the tests check it never reaches the log.
        WRIT_TEST_PG_PASSWORD: 'ha-test-password-never-logged',
        ...s.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    procs.push(proc);
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const { address, metrics } = await new Promise<{ address: string; metrics: string }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`replica ${name} did not start within 60 s:\n${out}`)), 60_000);
      const check = () => {
        const a = /public gRPC \(TLS\) : (\S+)/.exec(out);
        const m = /metrics {11}: (\S+)/.exec(out);
        if (a && m) {
          clearTimeout(t);
          proc.stderr!.off('data', check);
          resolve({ address: a[1]!, metrics: m[1]! });
        }
      };
      proc.stderr!.on('data', check);
      proc.once('exit', (c, sig) => {
        clearTimeout(t);
        reject(new Error(`replica ${name} exited (${c ?? sig}) before it started:\n${out}`));
      });
    });
    const r: Replica = {
      name,
      dataDir,
      address,
      adminSocket: join(dataDir, 'admin.sock'),
      metricsUrl: metrics,
      proc,
      log: () => out,
      bundlePem: () => readFileSync(join(dataDir, 'bundle.pem'), 'utf8'),
      bundleJwks: () => readFileSync(join(dataDir, 'bundle.jwks'), 'utf8'),
      stop: () => terminate(proc),
      async kill() {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
        await exited(proc);
      },
    };
    replicas.push(r);
    return r;
  };
  return {
    dir,
    replicas,
    start,
    async stop() {
      await Promise.all(procs.map((p) => terminate(p)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `cond` (no timing asserted: the deadline only bounds a hung test). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what}: not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
