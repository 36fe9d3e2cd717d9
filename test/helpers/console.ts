/**
 * The web console's test world: a real issuer with its HTTPS listener and the console on, the
 * development OIDC provider (with its authorization endpoint), the policy of the other e2e tests,
 * and helpers that sign in over plain HTTPS (the whole code + PKCE flow, no browser) and make
 * Connect calls with or without the session cookie, origin and content type the console demands.
 */
import { existsSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { adminClients } from '../../src/cli/admin-client.js';
import { startOidc, type TestOidc } from './oidc.js';
import { POLICY } from './policies.js';
import { startServer } from './server.js';
import { freePort } from './ports.js';
import { REPO_ROOT } from './shared.js';

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** Builds the console (dist/console) once when it is missing: the issuer serves it from disk. */
export function ensureConsoleBuilt(): void {
  if (existsSync(join(REPO_ROOT, 'dist', 'console', 'index.html'))) return;
  const r = spawnSync(join(REPO_ROOT, 'node_modules', '.bin', 'vite'), ['build', '--config', 'console/vite.config.ts'], { cwd: REPO_ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('console build failed');
}

export const OPERATOR_GROUP = 'writ-operators';

/**
 * `localhost`: the console at https://localhost:PORT, as WebAuthn needs (an IP address is no RP
 * ID). `policy`: the Cedar text pushed (default the e2e POLICY).
 */
export async function startConsoleWorld(o: { clock?: { now(): Date }; sessionTtl?: string; localhost?: boolean; policy?: string } = {}) {
  ensureConsoleBuilt();
  const oidc: TestOidc = await startOidc();
  const port = o.localhost ? await freePort() : 0;
  const w = await startServer(
    {
      http_listen: `127.0.0.1:${port}`,
      ...(o.localhost ? { http_public_url: `https://localhost:${port}`, approvals: { origin: `https://localhost:${port}`, rp_id: 'localhost' } } : {}),
      principals: [{ issuer: oidc.issuer, audience: 'writ' }],
      console: { operators: { groups: [OPERATOR_GROUP] }, ...(o.sessionTtl ? { session_ttl: o.sessionTtl } : {}) },
    },
    o.clock ? { clock: o.clock } : {},
  );
  await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: o.policy ?? POLICY }] });
  const url = w.server.http!.url;

  /** One HTTPS request to the issuer, trusting its CA. */
  const https = (path: string, opt: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const u = new URL(`${url}${path}`);
      // localhost worlds: connect to 127.0.0.1, the name the serving certificate holds.
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: u.port,
          path: `${u.pathname}${u.search}`,
          method: opt.method ?? 'GET',
          headers: { host: u.host, ...opt.headers },
          ca: w.bundlePem,
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(opt.body);
    });

  const http = (target: string, opt: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = httpRequest(target, { method: opt.method ?? 'GET', headers: opt.headers ?? {}, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(opt.body);
    });

  const cookieOf = (r: Reply, name: string): string | undefined => {
    for (const c of r.headers['set-cookie'] ?? []) if (c.startsWith(`${name}=`)) return c.slice(name.length + 1).split(';')[0];
    return undefined;
  };

  /** The whole sign-in over HTTP: login → the provider's form → its answer → callback. Returns every reply. */
  async function signIn(sub: string, groups: string[] = []) {
    const login = await https('/console/login');
    const state = cookieOf(login, '__Host-writ-login')!;
    const form = await http(String(login.headers.location));
    const requestId = /name="request" value="([^"]+)"/.exec(form.body)![1]!;
    const answer = await http(`${oidc.issuer}/authorize`, {
      method: 'POST',
      headers: { origin: new URL(oidc.issuer).origin, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ request: requestId, sub, groups: groups.join(',') }).toString(),
    });
    const callback = new URL(String(answer.headers.location));
    const done = await https(`${callback.pathname}${callback.search}`, { headers: { cookie: `__Host-writ-login=${state}` } });
    return { login, form, answer, callback, done, session: cookieOf(done, '__Host-writ-console') };
  }

  /** A Connect unary call; by default from the console's origin with a JSON body and `cookie`. */
  const rpc = (method: string, body: unknown, opt: { cookie?: string; origin?: string | null; contentType?: string | null; service?: string } = {}) => {
    const headers: Record<string, string> = {};
    if (opt.contentType !== null) headers['content-type'] = opt.contentType ?? 'application/json';
    if (opt.origin !== null) headers.origin = opt.origin ?? new URL(url).origin;
    if (opt.cookie) headers.cookie = `__Host-writ-console=${opt.cookie}`;
    return https(`/writ.v1.${opt.service ?? 'ConsoleService'}/${method}`, { method: 'POST', headers, body: JSON.stringify(body) });
  };

  return {
    w,
    oidc,
    url,
    https,
    http,
    signIn,
    rpc,
    async stop() {
      await w.stop();
      await oidc.stop();
    },
  };
}

export type ConsoleWorld = Awaited<ReturnType<typeof startConsoleWorld>>;
