/**
 * `writ agent run` as a real process (dist/, join token): it prints its SPIFFE ID once serving,
 * serves the Workload API on an owner-only socket named by SPIFFE_ENDPOINT_SOCKET, refuses to
 * start on a socket another sidecar answers on, refuses a key file others can read, and on
 * SIGTERM ends its streams, removes the socket and exits 0.
 */
import * as grpc from '@grpc/grpc-js';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClients } from '../../src/cli/admin-client.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { startServer } from '../helpers/server.js';
import { nextMessages, securityHeader, unary, workloadClient } from '../helpers/sidecar.js';

const WRIT = join(REPO_ROOT, 'bin', 'writ');
if (!existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `make build` before the CLI tests');
const run = promisify(execFile);
const ID = 'spiffe://example.org/agent/cli-sidecar';

let s: Awaited<ReturnType<typeof startServer>>;
let dir: string;
let bundle: string;
const children: ChildProcess[] = [];

async function token(spiffeId: string): Promise<string> {
  return (await adminClients(s.adminSocket).admin.createJoinToken({ ttl: 600, spiffeId })).token;
}

/** Starts `writ agent run`; resolves once it printed its SPIFFE ID (serving). */
function startAgent(args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; stdout: string; stderr: () => string }> {
  const child = spawn(WRIT, ['agent', 'run', '--server', s.address, '--bundle', bundle, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve({ child, stdout: out, stderr: () => err });
    });
    child.once('exit', (c) => reject(new Error(`writ agent run exited with ${c}: ${err}`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((r) => child.once('exit', (c) => r(c)));
}

beforeAll(async () => {
  s = await startServer();
  dir = mkdtempSync(join(tmpdir(), 'wcl-'));
  bundle = join(dir, 'bundle.pem');
  writeFileSync(bundle, s.bundlePem);
}, 60_000);
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
  await s?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('writ agent run', () => {
  it('serves on SPIFFE_ENDPOINT_SOCKET (0600), refuses a second sidecar on it, and stops cleanly on SIGTERM', async () => {
    const sock = join(dir, 'agent.sock');
    const a = await startAgent(['--join-token', await token(ID), '--jwt-audience', 'https://rp.example'], { SPIFFE_ENDPOINT_SOCKET: `unix://${sock}` });
    expect(a.stdout).toBe(`${ID}\n`);
    expect(lstatSync(sock).mode & 0o777).toBe(0o600);
    // Logs are JSON lines.
    for (const line of a.stderr().trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();

    const client = workloadClient(sock);
    const stream = client.FetchX509SVID({}, securityHeader());
    const received: Array<{ svids: Array<{ spiffe_id: string; x509_svid: Buffer }> }> = [];
    stream.on('data', (x: (typeof received)[number]) => received.push(x));
    const [m] = (await nextMessages(stream, 1)) as typeof received;
    expect(m!.svids[0]!.spiffe_id).toBe(ID);
    // The JWT-SVID minted with the attestation, from the cache.
    const jwt = await unary<unknown, { svids: Array<{ spiffe_id: string }> }>(client, 'FetchJWTSVID', { audience: ['https://rp.example'] });
    expect(jwt.svids[0]!.spiffe_id).toBe(ID);
    // A new audience: a join token cannot be shown twice, so the sidecar renews by its SVID (x509_svid) to get it.
    const other = await unary<unknown, { svids: Array<{ spiffe_id: string; svid: string }> }>(client, 'FetchJWTSVID', { audience: ['https://other.example'] });
    expect(other.svids[0]!.spiffe_id).toBe(ID);
    // That renewal superseded the SVID held: the stream gets the new one at once.
    for (let i = 0; i < 100 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect(received).toHaveLength(2);
    expect(received[1]!.svids[0]!.spiffe_id).toBe(ID);
    expect(received[1]!.svids[0]!.x509_svid.equals(received[0]!.svids[0]!.x509_svid)).toBe(false);

    const second = await run(WRIT, ['agent', 'run', '--server', s.address, '--bundle', bundle, '--join-token', await token(ID), '--socket', sock]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain(`another process is serving on ${sock}`);

    // The container probe: serving while an identity is served; nothing to ask once stopped.
    const probe = await run(WRIT, ['agent', 'healthcheck'], { env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: `unix://${sock}` } });
    expect(probe.stdout).toBe(`serving (${sock})\n`);

    const ended = new Promise<grpc.ServiceError>((r) => stream.on('error', r));
    a.child.kill('SIGTERM');
    expect(await exited(a.child)).toBe(0);
    const e = await ended;
    expect(e.code).toBe(grpc.status.UNAVAILABLE);
    expect(existsSync(sock)).toBe(false);
    const gone = await run(WRIT, ['agent', 'healthcheck', '--socket', sock]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`no sidecar answers on ${sock}`);
    client.close();
  }, 60_000);

  it('refuses a key file others can read, and a --scope without --parent-socket', async () => {
    const key = join(dir, 'agent.key');
    writeFileSync(key, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o644 });
    const r = await run(WRIT, [
      'agent',
      'run',
      '--server',
      s.address,
      '--bundle',
      bundle,
      '--join-token',
      'x',
      '--socket',
      join(dir, 'k.sock'),
      '--key',
      key,
    ]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('must be 0600');
    const q = await run(WRIT, [
      'agent',
      'run',
      '--server',
      s.address,
      '--bundle',
      bundle,
      '--join-token',
      'x',
      '--socket',
      join(dir, 'k.sock'),
      '--scope',
      'read=x',
    ]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(q.code).toBe(2);
    expect(q.stderr).toContain('--scope needs --parent-socket');
    expect(existsSync(join(dir, 'k.sock'))).toBe(false);
  }, 60_000);

  it('stops serving at once when its SPIFFE ID is revoked, and exits 1', async () => {
    const sock = join(dir, 'rev.sock');
    const id = 'spiffe://example.org/agent/cli-revoked';
    const a = await startAgent(['--join-token', await token(id), '--socket', sock]);
    const client = workloadClient(sock);
    const stream = client.FetchX509SVID({}, securityHeader());
    await nextMessages(stream, 1);
    const ended = new Promise<grpc.ServiceError>((r) => stream.on('error', r));
    await adminClients(s.adminSocket).revocation.revoke({ kind: 'agent', target: id, reason: 'test' });
    const e = await ended;
    expect(e.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(e.details).toContain('revoked');
    expect(await exited(a.child)).toBe(1);
    client.close();
  }, 60_000);
});
