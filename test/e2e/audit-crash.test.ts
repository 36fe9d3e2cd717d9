/**
 * Crash: a real `writ server` process is SIGKILLed during sustained issuance (several
 * concurrent join-token handshakes). After a restart on the same data directory every handshake
 * a client saw succeed has its `handshake.issued` record (naming the SVID serial the client
 * holds), `writ audit verify-log` passes (every record parses as canonical bytes, the tree and
 * the checkpoint match, so none is half-written), and the log keeps growing and verifying.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { attest } from '../../src/agent/attest-client.js';
import { parseRecord } from '../../src/audit/record.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { runCli } from '../helpers/cli.js';
import { REPO_ROOT } from '../helpers/shared.js';

const WRIT = join(REPO_ROOT, 'bin', 'writ');
if (!existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `make build` before the e2e tests');

/** Concurrent handshakes, and how many must have succeeded before the kill. */
const WORKERS = 6;
const TOKENS = 240;
const KILL_AFTER = 40;

const dir = mkdtempSync(join(tmpdir(), 'writ-audit-crash-'));
const data = join(dir, 'data');
const socket = join(data, 'admin.sock');
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `writ server` on the data directory; resolves with the child and its public address once it serves. */
function startServer(): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(WRIT, ['server', '--data-dir', data, '--listen', '127.0.0.1:0', '--trust-domain', 'example.org'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /public gRPC \(TLS\) : (\S+)/.exec(stderr);
      if (m) {
        clearTimeout(t);
        resolve({ child, address: m[1]! });
      }
    });
    child.once('exit', (c, s) => {
      clearTimeout(t);
      reject(new Error(`server exited (${c ?? s}): ${stderr}`));
    });
  });
}

const serialHex = (der: Buffer) => new X509Certificate(der).serialNumber.toLowerCase().replace(/^0+/, '');

describe('SIGKILL during sustained issuance', () => {
  it('every acknowledged handshake is in the log after a restart, and the log verifies', async () => {
    const first = await startServer();
    const bundlePem = readFileSync(join(data, 'bundle.pem'), 'utf8');
    const { admin } = adminClients(socket);
    const tokens: { token: string; spiffeId: string }[] = [];
    for (let i = 0; i < TOKENS; i++) {
      const spiffeId = `spiffe://example.org/agent/crash-${i}`;
      tokens.push({ token: (await admin.createJoinToken({ ttl: 600, spiffeId })).token, spiffeId });
    }

    // Acknowledged: the client holds the SVIDs. Each worker takes the next token until the server is gone.
    const acked: { spiffeId: string; serial: string }[] = [];
    let next = 0;
    let killed = false;
    let exited: Promise<unknown> | undefined;
    const worker = async () => {
      while (next < tokens.length) {
        const t = tokens[next++]!;
        try {
          const out = await attest({
            server: first.address,
            bundlePem,
            evidenceType: 'join_token',
            key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
            respond: () => Buffer.from(t.token),
            timeoutMs: 30_000,
          });
          acked.push({ spiffeId: out.spiffeId, serial: serialHex(out.svidChain[0]!) });
          expect(out.spiffeId).toBe(t.spiffeId);
        } catch (e) {
          // Only after the kill may a handshake fail.
          if (!killed) throw e;
          return;
        }
        if (!killed && acked.length >= KILL_AFTER) {
          killed = true;
          exited = new Promise((r) => first.child.once('exit', r));
          first.child.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    expect(killed).toBe(true);
    await exited;
    expect(first.child.signalCode).toBe('SIGKILL');
    expect(acked.length).toBeGreaterThanOrEqual(KILL_AFTER);

    await startServer();
    const { audit } = adminClients(socket, 60_000);
    // Every handshake the clients saw succeed, by its SVID serial.
    for (const a of acked) {
      const res = await audit.listRecords({ actor: a.spiffeId, task: '', principal: '', since: 0n, limit: 10 });
      const issued = res.records.map((b) => parseRecord(b)).filter((r) => r.event === 'handshake.issued');
      expect(issued, a.spiffeId).toHaveLength(1);
      expect(issued[0]!.created.map((c) => c.replace(/^0+/, ''))).toContain(a.serial);
    }
    // The whole log recomputes, and the checkpoint made now covers it.
    const v = await runCli(['audit', 'verify-log', '--admin-socket', socket]);
    expect(v.code, v.err).toBe(0);
    const cp = await runCli(['audit', 'checkpoint', '--admin-socket', socket]);
    expect(cp.code, cp.err).toBe(0);
    // Nothing is issued without its record: each join-token entry that was used has exactly one handshake.issued.
    const all = await audit.listRecords({ actor: '', task: '', principal: '', since: 0n, limit: 1000 });
    const handshakes = all.records.map((b) => parseRecord(b)).filter((r) => r.event === 'handshake.issued');
    expect(new Set(handshakes.map((r) => r.actor.kind === 'agent' && r.actor.spiffeId)).size).toBe(handshakes.length);
    expect(handshakes.length).toBeGreaterThanOrEqual(acked.length);
  }, 300_000);
});
