/**
 * Escalation and approval end to end: a real issuer (gRPC on loopback, SQLite), the development
 * OIDC provider, a join-token agent, and a software WebAuthn authenticator for the approver.
 * escalate → WatchApproval pending → passkey registration → BeginApproval → Approve → the
 * agent's watch ends approved with the step-up grant → renewal carries it → a relying party
 * allows the escalated action. Deny → the watch ends denied with the reason, the agent refused.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approvalClient, escalate, watchApproval, type AgentAuth } from '../../src/agent/approval-client.js';
import { attest } from '../../src/agent/attest-client.js';
import { createGrant } from '../../src/agent/grant-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { authorize, verifyWrit } from '../../src/writ/verify.js';
import { parseWrit } from '../../src/writ/writ.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';
import { SoftAuthenticator, type SoftAssertion } from '../helpers/soft-authenticator.js';

const RP_ID = 'console.example';
const ORIGIN = 'https://console.example';
const ISSUER = 'spiffe://example.org';
const APPROVE = `${POLICY}
@id("sec-oncall-approves")
permit(principal, action == Writ::Action::"approve", resource) when { principal.groups.contains("sec-oncall") };
`;
const b64 = (b: Buffer) => b.toString('base64url');

describe('approvals over gRPC', () => {
  let w: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  let writKeys: ReadonlyMap<string, KeyObject>;

  beforeAll(async () => {
    oidc = await startOidc();
    w = await startServer({ principals: [{ issuer: oidc.issuer, audience: 'writ' }], approvals: { rp_id: RP_ID, origin: ORIGIN, retry_after: '1s' } });
    const admin = adminClients(w.adminSocket);
    await admin.admin.pushPolicy({ files: [{ name: 'acme.cedar', text: APPROVE }] });
    writKeys = parseSpiffeBundle('example.org', (await admin.bundle.getBundle({})).jwks).writAuthorities!;
  });
  afterAll(async () => {
    await w?.stop();
    await oidc?.stop();
  });

  /** One join-token attestation of `path` with `key` over `grants` (and step-up grants). */
  async function attestAs(path: string, key: KeyObject, grants: string[], stepUps: string[] = []) {
    const admin = adminClients(w.adminSocket).admin;
    const tok = await admin.createJoinToken({ ttl: 600 });
    await admin.createEntry({ entry: { spiffeId: `spiffe://example.org${path}`, selectors: [{ type: 'join_token', value: tok.id }] } });
    const r = await attest({
      server: w.address,
      bundlePem: w.bundlePem,
      evidenceType: 'join_token',
      key,
      respond: () => Buffer.from(tok.token),
      grants,
      stepUps,
    });
    return r.writ!;
  }

  async function agent(taskId: string) {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const root = await createGrant(w.address, w.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId,
      goal: 'ship the fix',
      scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
      maxDepth: 1,
      delegateJkt: jwkThumbprint(createPublicKey(key)),
    });
    const path = `/agent/${taskId}`;
    const writ = await attestAs(path, key, [root.grant]);
    return { key, grant: root.grant, path, writ, auth: { writ, key, audience: ISSUER } satisfies AgentAuth };
  }

  const rp = (writ: string, key: KeyObject) =>
    verifyWrit({
      writ,
      proof: createProof(writ, key, { audience: 'https://rp.example', method: 'POST /push', now: new Date() }),
      trust: { issuer: ISSUER, writKeys },
      audience: 'https://rp.example',
      method: 'POST /push',
      now: new Date(),
      replayCache: new ProofReplayCache(),
    });

  const assertionJson = (a: SoftAssertion) =>
    JSON.stringify({
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
    });

  it('escalate → pending → approve with a passkey → the renewed writ carries it → the relying party allows', async () => {
    const a = await agent('task-e2e-approve');
    expect(authorize(rp(a.writ, a.key), 'repo:write', 'repo://acme/app').decision).toBe('deny');
    const esc = await escalate(w.address, w.bundlePem, a.auth, { action: 'repo:write', resource: 'repo://acme/app', reason: 'push the fix' });
    expect(esc.approval!.state).toBe('pending');
    expect(esc.retryAfterSeconds).toBe(1);
    const updates: string[] = [];
    const watched = watchApproval(w.address, w.bundlePem, a.auth, esc.approval!.id, { timeoutMs: 30_000, onUpdate: (x) => updates.push(x.state) });

    const client = approvalClient(w.address, w.bundlePem);
    const bob = oidc.token('bob', { groups: ['sec-oncall'] });
    const listed = await client.listApprovals({ approverToken: bob });
    expect(listed.approvals.map((x) => x.id)).toContain(esc.approval!.id);
    expect(listed.approvals.find((x) => x.id === esc.approval!.id)!.delegationPath).toEqual([
      `${oidc.issuer}#alice`,
      'spiffe://example.org/agent/task-e2e-approve',
    ]);

    const auth = new SoftAuthenticator('ES256', RP_ID);
    const reg = JSON.parse((await client.beginPasskeyRegistration({ approverToken: bob })).optionsJson) as { challenge: string };
    const made = auth.makeCredential({ challenge: Buffer.from(reg.challenge, 'base64url'), origin: ORIGIN });
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
    const begun = await client.beginApproval({ id: esc.approval!.id, approverToken: bob });
    const challenge = Buffer.from((JSON.parse(begun.optionsJson) as { challenge: string }).challenge, 'base64url');
    expect(JSON.parse(begun.approvalRequest)).toMatchObject({ id: esc.approval!.id, approver: { sub: 'bob' }, permission: { action: 'repo:write' } });
    const done = await client.approve({
      id: esc.approval!.id,
      approverToken: bob,
      assertionJson: assertionJson(auth.getAssertion({ challenge, origin: ORIGIN })),
    });
    expect(done.approval!.state).toBe('approved');

    const final = await watched;
    expect(final.state).toBe('approved');
    expect(updates).toEqual(['pending', 'approved']);
    expect(final.stepUpGrant).toBe(done.approval!.stepUpGrant);

    const renewed = await attestAs(a.path, a.key, [a.grant], [final.stepUpGrant]);
    expect(parseWrit(renewed).claims.stepup).toEqual([final.stepUpGrant]);
    const v = rp(renewed, a.key);
    expect(authorize(v, 'repo:write', 'repo://acme/app').decision).toBe('allow');
    expect(authorize(v, 'repo:write', 'repo://acme/other').decision).not.toBe('allow');
  });

  it('deny → the watch ends denied with who and why, and the agent stays refused', async () => {
    const a = await agent('task-e2e-deny');
    const esc = await escalate(w.address, w.bundlePem, a.auth, { action: 'repo:write', resource: 'repo://acme/app', reason: 'push' });
    const watched = watchApproval(w.address, w.bundlePem, a.auth, esc.approval!.id, { timeoutMs: 30_000 });
    await approvalClient(w.address, w.bundlePem).deny({ id: esc.approval!.id, approverToken: oidc.token('bob', { groups: ['sec-oncall'] }), reason: 'freeze' });
    const final = await watched;
    expect(final).toMatchObject({ state: 'denied', decisionReason: 'freeze', stepUpGrant: '' });
    expect(final.decidedBy).toBe(`${oidc.issuer}#bob`);
    expect(authorize(rp(a.writ, a.key), 'repo:write', 'repo://acme/app').decision).toBe('deny');
  });

  it('refuses an escalation no permit could cover with PERMISSION_DENIED, and another agent watching a request', async () => {
    const a = await agent('task-e2e-refuse');
    await expect(escalate(w.address, w.bundlePem, a.auth, { action: 'repo:write', resource: 'repo://other/x', reason: 'r' })).rejects.toMatchObject({
      writCode: 'ERR_POLICY_DENIED',
    });
    const esc = await escalate(w.address, w.bundlePem, a.auth, { action: 'repo:write', resource: 'repo://acme/x', reason: 'r' });
    const b = await agent('task-e2e-other');
    await expect(watchApproval(w.address, w.bundlePem, b.auth, esc.approval!.id, { timeoutMs: 10_000 })).rejects.toMatchObject({
      writCode: 'ERR_APPROVAL_NOT_FOUND',
    });
  });

  it('a passkey is added over gRPC only with an assertion of one already registered; the first only after a fresh sign-in', async () => {
    const client = approvalClient(w.address, w.bundlePem);
    const regJson = (auth: SoftAuthenticator, optionsJson: string) => {
      const made = auth.makeCredential({ challenge: Buffer.from((JSON.parse(optionsJson) as { challenge: string }).challenge, 'base64url'), origin: ORIGIN });
      return JSON.stringify({
        id: b64(made.credentialId),
        rawId: b64(made.credentialId),
        type: 'public-key',
        response: { attestationObject: b64(made.attestationObject), clientDataJSON: b64(made.clientDataJSON) },
        clientExtensionResults: {},
      });
    };
    // A token from a sign-in an hour ago cannot add a first passkey; one without auth_time neither.
    const old = oidc.token('carol', { auth_time: Math.floor(Date.now() / 1000) - 3600 });
    await expect(client.beginPasskeyRegistration({ approverToken: old })).rejects.toMatchObject({ writCode: 'ERR_APPROVAL_DENIED' });
    await expect(client.beginPasskeyRegistration({ approverToken: oidc.token('carol', { auth_time: undefined }) })).rejects.toMatchObject({
      writCode: 'ERR_APPROVAL_DENIED',
    });
    const carol = oidc.token('carol');
    const firstKey = new SoftAuthenticator('ES256', RP_ID);
    const b1 = await client.beginPasskeyRegistration({ approverToken: carol });
    expect(b1.authorizationOptionsJson).toBe('');
    await client.finishPasskeyRegistration({ approverToken: carol, responseJson: regJson(firstKey, b1.optionsJson) });

    // The second: the token alone is refused; with the first passkey's assertion over the statement it is added.
    const b2 = await client.beginPasskeyRegistration({ approverToken: old });
    expect(JSON.parse(b2.registrationStatement)).toMatchObject({ typ: 'writ-passkey-registration', owner: { iss: oidc.issuer, sub: 'carol' } });
    await expect(
      client.finishPasskeyRegistration({ approverToken: old, responseJson: regJson(new SoftAuthenticator('ES256', RP_ID), b2.optionsJson) }),
    ).rejects.toMatchObject({ writCode: 'ERR_APPROVAL_DENIED' });
    const b3 = await client.beginPasskeyRegistration({ approverToken: old });
    const challenge = Buffer.from((JSON.parse(b3.authorizationOptionsJson) as { challenge: string }).challenge, 'base64url');
    const done = await client.finishPasskeyRegistration({
      approverToken: old,
      responseJson: regJson(new SoftAuthenticator('ES256', RP_ID), b3.optionsJson),
      authorizationJson: assertionJson(firstKey.getAssertion({ challenge, origin: ORIGIN })),
    });
    expect(done.credentialId).toMatch(/^[A-Za-z0-9_-]+$/);
  });
});
