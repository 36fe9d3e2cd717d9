/**
 * `writ escalate --wait` through bin/writ (dist/, `npm run build` first) against a real issuer:
 * how the wait ends when the approver denies (exit 1, who and why on stderr), when the request
 * expires (exit 1), and on Ctrl-C (SIGINT: exit 130 at once, the approval id and how to resume
 * on stderr, no --out file written, the request still pending; the same command resumes it); and
 * approved, the README walkthrough's commands: --out, `writ agent attest --step-up`, `writ verify --deep`.
 */
import { spawn } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approvalClient } from '../../src/agent/approval-client.js';
import { attest } from '../../src/agent/attest-client.js';
import { createGrant } from '../../src/agent/grant-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

const WRIT = join(import.meta.dirname, '../../bin/writ');
const APPROVE = `${POLICY}
@id("sec-oncall-approves")
permit(principal, action == Writ::Action::"approve", resource) when { principal.groups.contains("sec-oncall") };
`;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WRIT, ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

interface Running {
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  /** Resolves once stderr contains `text`. */
  stderrHas(text: string): Promise<void>;
  kill(sig: NodeJS.Signals): void;
  /** What it wrote to stderr so far. */
  stderr(): string;
}

function run(args: string[]): Running {
  const child = spawn(process.execPath, [WRIT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    for (const w of waiters.splice(0))
      if (stderr.includes(w.text)) w.resolve();
      else waiters.push(w);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return {
    done: new Promise((resolve) =>
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      }),
    ),
    stderrHas: (text) => (stderr.includes(text) ? Promise.resolve() : new Promise((resolve) => waiters.push({ text, resolve }))),
    kill: (sig) => void child.kill(sig),
    stderr: () => stderr,
  };
}

const b64 = (b: Buffer) => b.toString('base64url');

describe('writ escalate --wait: denied, expired, interrupted', { timeout: 120_000 }, () => {
  let w: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  let bob: string;
  const dir = mkdtempSync(join(tmpdir(), 'writ-escalate-wait-'));
  const f = (n: string) => join(dir, n);

  /** A one-time join token for the SPIFFE ID of `taskId`'s agent (an entry each). */
  async function joinToken(taskId: string): Promise<string> {
    const admin = adminClients(w.adminSocket).admin;
    const tok = await admin.createJoinToken({ ttl: 600 });
    await admin.createEntry({ entry: { spiffeId: `spiffe://example.org/agent/${taskId}`, selectors: [{ type: 'join_token', value: tok.id }] } });
    return tok.token;
  }

  /** A join-token agent with a writ for `taskId`, its key and writ in files named after the task. */
  async function agentWrit(taskId: string, ttlSeconds = 0): Promise<void> {
    const key: KeyObject = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    writeFileSync(f(`${taskId}.key`), key.export({ type: 'pkcs8', format: 'pem' }));
    const root = await createGrant(w.address, w.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId,
      goal: 'ship the fix',
      scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
      maxDepth: 1,
      ttlSeconds,
      delegateJkt: jwkThumbprint(createPublicKey(key)),
    });
    const admin = adminClients(w.adminSocket).admin;
    const tok = await admin.createJoinToken({ ttl: 600 });
    await admin.createEntry({ entry: { spiffeId: `spiffe://example.org/agent/${taskId}`, selectors: [{ type: 'join_token', value: tok.id }] } });
    const r = await attest({
      server: w.address,
      bundlePem: w.bundlePem,
      evidenceType: 'join_token',
      key,
      respond: () => Buffer.from(tok.token),
      grants: [root.grant],
    });
    writeFileSync(f(`${taskId}.writ`), r.writ!);
    writeFileSync(f(`${taskId}.grant`), `${root.grant}\n`);
  }

  const escalateWait = (taskId: string, resource: string, extra: string[] = []) =>
    run([
      'escalate',
      '--server',
      w.address,
      '--bundle',
      f('bundle.pem'),
      '--writ',
      f(`${taskId}.writ`),
      '--key',
      f(`${taskId}.key`),
      '--action',
      'repo:write',
      '--resource',
      resource,
      '--reason',
      'push the fix',
      '--wait',
      ...extra,
    ]);

  /** The id in "approval ID: pending, waiting for an approver". */
  const idIn = (stderr: string): string => /approval ([A-Za-z0-9_-]{22}): pending, waiting/.exec(stderr)?.[1] ?? '';

  beforeAll(async () => {
    oidc = await startOidc();
    w = await startServer({
      principals: [{ issuer: oidc.issuer, audience: 'writ' }],
      approvals: { rp_id: 'console.example', origin: 'https://console.example', retry_after: '1s' },
    });
    writeFileSync(f('bundle.jwks'), readFileSync(w.bundleJwksPath));
    await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: APPROVE }] });
    writeFileSync(f('bundle.pem'), w.bundlePem);
    bob = oidc.token('bob', { groups: ['sec-oncall'] });
  });
  afterAll(async () => {
    await w?.stop();
    await oidc?.stop();
  });

  it('denied: exits 1 with the approver and the reason on stderr, writes no --out file', async () => {
    await agentWrit('task-deny');
    const p = escalateWait('task-deny', 'repo://acme/app', ['--out', f('deny.grant')]);
    await p.stderrHas('waiting for an approver');
    const client = approvalClient(w.address, w.bundlePem);
    const id = idIn(p.stderr());
    expect((await client.listApprovals({ approverToken: bob, taskId: 'task-deny' })).approvals.map((a) => a.id)).toEqual([id]);
    await client.deny({ id, approverToken: bob, reason: 'change freeze' });
    const r = await p.done;
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`writ: approval ${id} denied by ${oidc.issuer}#bob: change freeze\n`);
    expect(existsSync(f('deny.grant'))).toBe(false);
  });

  it('expired: a request that outlives its task ends the wait with exit 1', async () => {
    // The request never outlives its task: a task of 3 s makes a request of at most 3 s.
    await agentWrit('task-expire', 3);
    const started = Date.now();
    const p = escalateWait('task-expire', 'repo://acme/app');
    const r = await p.done;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/writ: approval [A-Za-z0-9_-]{22} expired\n$/);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('Ctrl-C: exits 130 promptly, prints the id and how to resume, leaves nothing written; the same command resumes the same request', async () => {
    await agentWrit('task-int');
    const p = escalateWait('task-int', 'repo://acme/app', ['--out', f('int.grant')]);
    await p.stderrHas('waiting for an approver');
    const id = idIn(p.stderr());
    expect(id).not.toBe('');
    const t0 = Date.now();
    p.kill('SIGINT');
    const r = await p.done;
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(130);
    expect(r.stderr).toContain(`writ: approval ${id}: stopped waiting; the request is still pending. Run the same command again to resume waiting for it\n`);
    expect(existsSync(f('int.grant'))).toBe(false);
    const client = approvalClient(w.address, w.bundlePem);
    expect((await client.getApproval({ id, credential: { case: 'approverToken', value: bob } })).approval!.state).toBe('pending');
    // Resume: the same command answers the same pending request and waits for it.
    const again = escalateWait('task-int', 'repo://acme/app', ['--out', f('int.grant')]);
    await again.stderrHas(`approval ${id}: pending, waiting for an approver`);
    await client.deny({ id, approverToken: bob, reason: 'not today' });
    const r2 = await again.done;
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain(`writ: approval ${id} denied by ${oidc.issuer}#bob: not today\n`);
    expect(existsSync(f('int.grant'))).toBe(false);
  });
  it('approved: the step-up grant in --out; `writ agent attest --step-up` gets a writ carrying it; `writ verify --deep` names the approver (the README walkthrough)', async () => {
    await agentWrit('task-ok');
    const p = escalateWait('task-ok', 'repo://acme/widgets', ['--out', f('ok.grant')]);
    await p.stderrHas('waiting for an approver');
    const id = idIn(p.stderr());
    const client = approvalClient(w.address, w.bundlePem);
    const auth = new SoftAuthenticator('ES256', 'console.example');
    const origin = 'https://console.example';
    const reg = JSON.parse((await client.beginPasskeyRegistration({ approverToken: bob })).optionsJson) as { challenge: string };
    const made = auth.makeCredential({ challenge: Buffer.from(reg.challenge, 'base64url'), origin });
    await client.finishPasskeyRegistration({
      approverToken: bob,
      responseJson: JSON.stringify({
        id: b64(made.credentialId),
        rawId: b64(made.credentialId),
        type: 'public-key',
        response: { attestationObject: b64(made.attestationObject), clientDataJSON: b64(made.clientDataJSON) },
        clientExtensionResults: {},
      }),
    });
    const begun = await client.beginApproval({ id, approverToken: bob });
    const a = auth.getAssertion({ challenge: Buffer.from((JSON.parse(begun.optionsJson) as { challenge: string }).challenge, 'base64url'), origin });
    await client.approve({
      id,
      approverToken: bob,
      assertionJson: JSON.stringify({
        id: b64(a.credentialId),
        rawId: b64(a.credentialId),
        type: 'public-key',
        response: {
          authenticatorData: b64(a.authenticatorData),
          clientDataJSON: b64(a.clientDataJSON),
          signature: b64(a.signature),
          userHandle: b64(a.userHandle),
        },
        clientExtensionResults: {},
      }),
    });
    const r = await p.done;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`approval ${id}: approved by ${oidc.issuer}#bob, step-up grant in ${f('ok.grant')}\n`);
    const issuer = ['--server', w.address, '--bundle', f('bundle.pem')];
    const att = await cli([
      'agent',
      'attest',
      ...issuer,
      '--join-token',
      await joinToken('task-ok'),
      '--key',
      f('task-ok.key'),
      '--grant',
      f('task-ok.grant'),
      '--step-up',
      f('ok.grant'),
      '--out',
      f('ok-creds'),
    ]);
    expect(att.stderr).toBe('');
    expect(att.code).toBe(0);
    const proof = await cli([
      'proof',
      'create',
      '--writ',
      f('ok-creds/writ.jws'),
      '--key',
      f('task-ok.key'),
      '--audience',
      'spiffe://example.org/tool',
      '--method',
      'PUT /x',
    ]);
    expect(proof.code).toBe(0);
    writeFileSync(f('ok.proof'), proof.stdout);
    const verify = [
      'verify',
      '--bundle',
      f('bundle.jwks'),
      '--audience',
      'spiffe://example.org/tool',
      '--method',
      'PUT /x',
      '--writ',
      f('ok-creds/writ.jws'),
      '--proof',
      f('ok.proof'),
      '--action',
      'repo:write',
      '--resource',
      'repo://acme/widgets',
      '--deep',
      '--approval-rp-id',
      'console.example',
      '--approval-origin',
      origin,
    ];
    const v = await cli(verify);
    expect(v.stderr).toBe('');
    expect(v.code).toBe(0);
    expect(v.stdout).toContain(`approval ${id} (repo:write on repo://acme/widgets) by ${oidc.issuer}#bob: WebAuthn ES256 assertion over the approval request`);
    expect(v.stdout).toContain('repo:write on repo://acme/widgets: allow (by step-up grant');
    // Without the approval the same write is refused: the permission came from the step-up grant.
    const bareProof = await cli([
      'proof',
      'create',
      '--writ',
      f('task-ok.writ'),
      '--key',
      f('task-ok.key'),
      '--audience',
      'spiffe://example.org/tool',
      '--method',
      'PUT /x',
    ]);
    writeFileSync(f('bare.proof'), bareProof.stdout);
    const bare = await cli([...verify.slice(0, 8), f('task-ok.writ'), '--proof', f('bare.proof'), ...verify.slice(11)]);
    expect(bare.stderr).toMatch(/repo:write on repo:\/\/acme\/widgets is not allowed/);
    expect(bare.code).toBe(1);
    // --step-up without a grant chain is a usage error.
    const usage = await cli(['agent', 'attest', ...issuer, '--join-token', 'x', '--step-up', f('ok.grant'), '--out', f('nope')]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--step-up needs --grant/);
  });
});
