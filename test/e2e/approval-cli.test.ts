/**
 * `writ escalate` and `writ approval …` through bin/writ (dist/, `npm run build` first) against a
 * real issuer (startServer, the test OIDC provider, a join-token agent): escalate → list shows it
 * pending → show → deny with a reason; approve prints the console link and exits 1; bad input.
 */
import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

const b64 = (b: Buffer) => b.toString('base64url');

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

describe('writ escalate / writ approval through bin/writ', { timeout: 120_000 }, () => {
  let w: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  const dir = mkdtempSync(join(tmpdir(), 'writ-approval-cli-'));
  const f = (n: string) => join(dir, n);

  beforeAll(async () => {
    oidc = await startOidc();
    w = await startServer({
      principals: [{ issuer: oidc.issuer, audience: 'writ' }],
      approvals: { rp_id: 'console.example', origin: 'https://console.example', retry_after: '1s' },
    });
    await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: APPROVE }] });
    writeFileSync(f('bundle.pem'), w.bundlePem);
    writeFileSync(f('bob.jwt'), oidc.token('bob', { groups: ['sec-oncall'] }));
    writeFileSync(f('eve.jwt'), oidc.token('eve', { groups: ['eng'] }));
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    writeFileSync(f('agent.key'), key.export({ type: 'pkcs8', format: 'pem' }));
    const root = await createGrant(w.address, w.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: 'task-cli',
      goal: 'ship the fix',
      scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
      maxDepth: 1,
      delegateJkt: jwkThumbprint(createPublicKey(key)),
    });
    const admin = adminClients(w.adminSocket).admin;
    const tok = await admin.createJoinToken({ ttl: 600 });
    await admin.createEntry({ entry: { spiffeId: 'spiffe://example.org/agent/cli', selectors: [{ type: 'join_token', value: tok.id }] } });
    const r = await attest({
      server: w.address,
      bundlePem: w.bundlePem,
      evidenceType: 'join_token',
      key,
      respond: () => Buffer.from(tok.token),
      grants: [root.grant],
    });
    writeFileSync(f('writ'), r.writ!);
  });
  afterAll(async () => {
    await w?.stop();
    await oidc?.stop();
  });

  const issuer = () => ['--server', w.address, '--bundle', f('bundle.pem')];

  it('escalate → list pending → show → deny with a reason (a bidi override refused)', async () => {
    const esc = await cli([
      'escalate',
      ...issuer(),
      '--writ',
      f('writ'),
      '--key',
      f('agent.key'),
      '--action',
      'repo:write',
      '--resource',
      'repo://acme/app',
      '--reason',
      'push the fix',
      '--json',
    ]);
    expect(esc.stderr).toBe('');
    expect(esc.code).toBe(0);
    const a = JSON.parse(esc.stdout) as { id: string; state: string };
    expect(a.state).toBe('pending');

    const list = await cli(['approval', 'list', ...issuer(), '--token-file', f('bob.jwt'), '--task', 'task-cli']);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(`${a.id}  pending`);
    const eve = await cli(['approval', 'list', ...issuer(), '--token-file', f('eve.jwt'), '--json']);
    expect(eve.code).toBe(0);
    expect(JSON.parse(eve.stdout)).toEqual([]);

    const show = await cli(['approval', 'show', a.id, ...issuer(), '--token-file', f('bob.jwt')]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('repo:write on repo://acme/app');

    // A reason with a bidi override is refused by the issuer (it would reorder what the agent and auditors read).
    const bidi = await cli(['approval', 'deny', a.id, ...issuer(), '--token-file', f('bob.jwt'), '--reason', 'freeze\u202e']);
    expect(bidi.code).toBe(1);
    expect(bidi.stderr).toMatch(/ERR_APPROVAL_INVALID|format \(bidi, zero-width\) characters/);
    const deny = await cli(['approval', 'deny', a.id, ...issuer(), '--token-file', f('bob.jwt'), '--reason', 'freeze']);
    expect(deny.code).toBe(0);
    const after = await cli(['approval', 'show', a.id, ...issuer(), '--token-file', f('bob.jwt'), '--json']);
    expect(JSON.parse(after.stdout).state).toBe('denied');
  });

  it('approve prints the console link and exits 1; bad input', async () => {
    const ap = await cli(['approval', 'approve', 'apr-x', '--console', 'https://writ.example']);
    expect(ap.code).toBe(1);
    expect(ap.stderr).toContain('https://writ.example/console/#/approvals');
    const noReason = await cli(['approval', 'deny', 'apr-x', ...issuer(), '--token-file', f('bob.jwt')]);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/--reason is required/);
    const unknown = await cli(['approval', 'show', 'apr-nope', ...issuer(), '--token-file', f('bob.jwt')]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
  });
  it('escalate --wait sees the approval (passkey through the service) and writes the step-up grant', async () => {
    const waiting = cli([
      'escalate',
      ...issuer(),
      '--writ',
      f('writ'),
      '--key',
      f('agent.key'),
      '--action',
      'repo:write',
      '--resource',
      'repo://acme/lib',
      '--reason',
      'release',
      '--wait',
      '--out',
      f('stepup'),
    ]);
    const client = approvalClient(w.address, w.bundlePem);
    const bob = readFileSync(f('bob.jwt'), 'utf8');
    let id = '';
    for (let i = 0; i < 100 && !id; i++) {
      id = (await client.listApprovals({ approverToken: bob, state: 'pending' })).approvals[0]?.id ?? '';
      if (!id) await new Promise((r) => setTimeout(r, 100));
    }
    expect(id).not.toBe('');
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
    const challenge = Buffer.from((JSON.parse(begun.optionsJson) as { challenge: string }).challenge, 'base64url');
    const a = auth.getAssertion({ challenge, origin });
    const done = await client.approve({
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
    const r = await waiting;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`approval ${id}: approved by`);
    expect(readFileSync(f('stepup'), 'utf8').trim()).toBe(done.approval!.stepUpGrant);
  });
});
