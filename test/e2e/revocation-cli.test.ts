/**
 * Revocation through the real executable: `writ server` as a child process killed with SIGKILL
 * right after Revoke returned keeps the revocation and its sequence; `writ revocation watch`
 * prints them, follows live events, and resumes by itself across a restart of the issuer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adminClients } from '../../src/cli/admin-client.js';
import { revokeAsOperator } from '../helpers/revocation.js';
import { REPO_ROOT } from '../helpers/shared.js';

const WRIT = join(REPO_ROOT, 'bin', 'writ');
if (!existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `make build` (make test does) before the CLI tests');

const dir = mkdtempSync(join(tmpdir(), 'writ-revocation-cli-'));
const data = join(dir, 'data');
const socket = join(data, 'admin.sock');
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `writ server` on `listen`; resolves with its address once it says it is running. */
async function server(listen = '127.0.0.1:0'): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(WRIT, ['server', '--data-dir', data, '--listen', listen, '--trust-domain', 'example.org', '--config', join(dir, 'writ.yaml')], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  const address = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 30_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /public gRPC \(TLS\) : (\S+)/.exec(stderr);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    child.once('exit', (c) => reject(new Error(`server exited with ${c}: ${stderr}`)));
  });
  return { child, address };
}

function kill9(c: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    c.once('exit', () => resolve());
    c.kill('SIGKILL');
  });
}

/** Runs `writ revocation watch ...` to completion. */
function watchOnce(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const c = spawn(WRIT, ['revocation', 'watch', '--bundle', join(data, 'bundle.pem'), ...args], { cwd: dir });
  children.push(c);
  let out = '';
  let err = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => c.once('exit', (code) => resolve({ code, out, err })));
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('revocation with the real binary', () => {
  it('SIGKILL right after Revoke returned: after a restart the revocation and its sequence are there; writ revocation watch prints them and follows', async () => {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'writ.yaml'), 'revocation:\n  heartbeat: 200ms\n');
    const first = await server();
    const entries = [];
    for (const name of ['one', 'two'])
      entries.push(await adminClients(socket).admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org/agent/${name}` }));
    const r1 = await revokeAsOperator(socket, 'entry', entries[0]!.entryId, 'first');
    const r2 = await revokeAsOperator(socket, 'entry', entries[1]!.entryId, 'second, then the lights went out');
    await kill9(first.child);
    expect([Number(r1.sequence), Number(r2.sequence)]).toEqual([1, 2]);

    const port = first.address.split(':').pop()!;
    const second = await server(`127.0.0.1:${port}`);
    const once = await watchOnce('--server', second.address, '--once', '--json');
    expect(once.code).toBe(0);
    const lines = once.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      { type: 'revocation', sequence: 1, kind: 'entry', target: entries[0]!.entryId, reason: 'first', at: Number(r1.at), actor: 'operator', principal: '' },
      {
        type: 'revocation',
        sequence: 2,
        kind: 'entry',
        target: entries[1]!.entryId,
        reason: 'second, then the lights went out',
        at: Number(r2.at),
        actor: 'operator',
        principal: '',
      },
      { type: 'heartbeat', sequence: 2, at: expect.any(Number) },
    ]);
    expect(once.err).toBe(`watching ${second.address}: in sync at sequence 2\n`);

    // Following: live events as text, and a restart of the issuer survived by resuming.
    const follow = spawn(WRIT, ['revocation', 'watch', '--bundle', join(data, 'bundle.pem'), '--server', second.address, '--since', '2'], { cwd: dir });
    children.push(follow);
    let out = '';
    let err = '';
    follow.stdout.on('data', (d: Buffer) => (out += d.toString()));
    follow.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await until(() => err.includes('in sync at sequence 2'), 15_000, 'watch in sync');
    const e3 = await adminClients(socket).admin.createJoinToken({ ttl: 600, spiffeId: 'spiffe://example.org/agent/three' });
    const r3 = await revokeAsOperator(socket, 'entry', e3.entryId, 'a "quoted" reason');
    await until(() => out.includes('\n'), 10_000, 'first live line');
    expect(out).toBe(`3 entry ${e3.entryId} revoked at ${new Date(Number(r3.at)).toISOString()} by operator: "a \\"quoted\\" reason"\n`);

    await kill9(second.child);
    await until(() => /lost 127\.0\.0\.1:\d+: .*; resuming from 3 in \d+ ms/.test(err), 10_000, 'disconnect noticed');
    const third = await server(`127.0.0.1:${port}`);
    await until(() => (err.match(/in sync at sequence 3/g) ?? []).length === 1, 20_000, 'resumed in sync');
    const e4 = await adminClients(socket).admin.createJoinToken({ ttl: 600, spiffeId: 'spiffe://example.org/agent/four' });
    await revokeAsOperator(socket, 'entry', e4.entryId, 'after the restart');
    await until(() => out.split('\n').length === 3, 10_000, 'line after the restart');
    expect(out.split('\n')[1]).toMatch(new RegExp(`^4 entry ${e4.entryId} revoked at \\S+ by operator: "after the restart"$`));
    const exited = new Promise<number | null>((r) => follow.once('exit', (c) => r(c)));
    follow.kill('SIGTERM');
    expect(await exited).toBe(0);
    third.child.kill('SIGTERM');
  }, 120_000);

  it('refuses a bad --since and a bare port before connecting', async () => {
    const a = await watchOnce('--server', '127.0.0.1:1', '--since', 'abc');
    expect(a).toMatchObject({ code: 2, err: expect.stringContaining('--since must be a sequence number') });
    const b = await watchOnce('--server', '8443');
    expect(b).toMatchObject({ code: 2, err: expect.stringContaining('--server must be HOST:PORT') });
  });
});
