/**
 * Approvals in the web console, in chromium with a virtual authenticator (CDP WebAuthn): a real
 * agent (the reader, three hops down) escalates over gRPC; the approver signs in, registers a
 * passkey, sees the request with its context and approves it with the passkey (the issuer checks
 * the assertion over the SHA-256 of the canonical request and mints a step-up grant); a second
 * request is denied with a reason and the agent sees why. The console runs at https://localhost
 * (WebAuthn takes no IP address as RP ID).
 */
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issuerChannelCredentials } from '../../src/agent/attest-client.js';
import { ApprovalService, type EscalateResponse, type GetApprovalResponse } from '../../src/gen/writ/v1/approval_pb.js';
import { escalateMethod, getApprovalMethod } from '../../src/writ/proof-methods.js';
import { unaryCall } from '../../src/rpc/grpc-adapter.js';
import { createProof } from '../../src/writ/proof.js';
import { HAVE_CHROMIUM, launchChromium, screenshotDir } from '../helpers/browser.js';
import { type ConsoleWorld, startConsoleWorld } from '../helpers/console.js';
import { POLICY } from '../helpers/policies.js';
import { type Hop, threeHops } from '../helpers/revocation.js';

/** The e2e policy (its prod-deploys-need-approval asks for an approval) and who may give one. */
const APPROVAL_POLICY = `${POLICY}
@id("oncall-approves")
permit(principal, action == Writ::Action::"approve", resource)
when { principal.groups.contains("sec-oncall") };
`;

/** Real time plus an offset a test moves (TLS and OIDC tokens stay on real time). */
class OffsetClock {
  offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}

describe.skipIf(!HAVE_CHROMIUM)('web console approvals (chromium, virtual authenticator)', { timeout: 180_000 }, () => {
  let c: ConsoleWorld;
  const clock = new OffsetClock();
  let chrome: Awaited<ReturnType<typeof launchChromium>>;
  let browser: Browser;
  let reader: Hop;
  const shots = screenshotDir();
  const shot = (page: Page, name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const TD = 'spiffe://example.org';

  const call = <R>(method: string, req: unknown) =>
    unaryCall<R>(c.w.address, issuerChannelCredentials(c.w.bundlePem), ApprovalService, method, req, {
      deadline: new Date(Date.now() + 15_000),
      channelOptions: { 'grpc.ssl_target_name_override': 'writ-issuer' },
    });
  const escalate = (resource: string, reason: string) =>
    call<EscalateResponse>('escalate', {
      credential: {
        writ: reader.writ,
        proof: createProof(reader.writ, reader.key, { audience: TD, method: escalateMethod('deploy:prod', resource), now: new Date() }),
      },
      action: 'deploy:prod',
      resource,
      reason,
    });
  const agentGets = (id: string) =>
    call<GetApprovalResponse>('getApproval', {
      id,
      credential: {
        case: 'agent',
        value: { writ: reader.writ, proof: createProof(reader.writ, reader.key, { audience: TD, method: getApprovalMethod(id), now: new Date() }) },
      },
    });

  beforeAll(async () => {
    c = await startConsoleWorld({ localhost: true, policy: APPROVAL_POLICY, clock });
    ({ C: reader } = await threeHops({ address: c.w.address, bundlePem: c.w.bundlePem, adminSocket: c.w.adminSocket }, c.oidc, {
      taskId: 'ship-9',
      principal: 'alice',
    }));
    chrome = await launchChromium();
    browser = chrome.browser;
  });
  afterAll(async () => {
    await chrome?.close();
    await c?.stop();
  });

  it('registers a passkey, approves one escalation with it and denies another', async () => {
    const first = await escalate('repo://acme/widgets', 'ship the hotfix for the login outage');
    const second = await escalate('repo://acme/gadgets', 'also ship gadgets while I am at it');
    expect(first.approval?.state).toBe('pending');

    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 900 } });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const authenticator = { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true } as const;
    const firstAuthenticator = (await cdp.send('WebAuthn.addVirtualAuthenticator', { options: authenticator })) as { authenticatorId: string };
    await page.goto(`${c.url}/console/`);
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.getByLabel('Subject').fill('sam');
    await page.getByLabel('Groups (comma-separated)').fill('sec-oncall');
    await page.getByRole('button', { name: 'Sign in (development)' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();

    await page.goto(`${c.url}/console/#/passkeys`);
    await page.getByRole('button', { name: 'Register a passkey' }).click();
    await page.locator('[data-passkey]').waitFor();
    expect(await page.locator('[data-passkey]').getAttribute('data-passkey')).toBe('registered');
    await shot(page, '11-passkey-registered');

    // A second passkey, on a second authenticator: the session alone cannot add it. The console
    // first has the registered passkey confirm (a WebAuthn get over the registration statement),
    // then, on a second click, the new authenticator creates its passkey.
    const firstKey = (await cdp.send('WebAuthn.getCredentials', { authenticatorId: firstAuthenticator.authenticatorId })) as { credentials: unknown[] };
    expect(firstKey.credentials).toHaveLength(1);
    await page.getByRole('button', { name: 'Register a passkey' }).click();
    await page.locator('[data-step="create"]').waitFor();
    // The user puts the first authenticator away (it holds an excluded credential) and uses the new one.
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: firstAuthenticator.authenticatorId });
    const secondAuthenticator = (await cdp.send('WebAuthn.addVirtualAuthenticator', { options: authenticator })) as { authenticatorId: string };
    await page.getByRole('button', { name: 'Create the new passkey' }).click();
    await page.locator('[data-passkey]').waitFor();
    const secondStatus = await page.locator('[data-passkey]').textContent();
    expect(await page.locator('[data-passkey]').getAttribute('data-passkey'), secondStatus ?? '').toBe('registered');
    const onSecond = (await cdp.send('WebAuthn.getCredentials', { authenticatorId: secondAuthenticator.authenticatorId })) as { credentials: unknown[] };
    expect(onSecond.credentials).toHaveLength(1);

    await page.goto(`${c.url}/console/#/approvals`);
    const req1 = page.locator(`[data-approval="${first.approval!.id}"]`);
    await req1.waitFor();
    const context = await req1.textContent();
    expect(context).toContain('spiffe://example.org/agent/ship-9/reader');
    expect(context).toContain('deploy:prod repo://acme/widgets');
    expect(context).toContain('ship the hotfix for the login outage');
    expect(context).toContain('prod-deploys-need-approval');
    await shot(page, '12-approvals-pending');
    await req1.getByRole('button', { name: 'Approve with passkey' }).click();
    await page.locator(`[data-decided="${first.approval!.id}"][data-state="approved"]`).waitFor();

    const req2 = page.locator(`[data-approval="${second.approval!.id}"]`);
    await req2.getByLabel('Reason to deny').fill('one deploy at a time');
    await req2.getByRole('button', { name: 'Deny' }).click();
    await page.locator(`[data-decided="${second.approval!.id}"][data-state="denied"]`).waitFor();
    await shot(page, '13-approvals-decided');

    // The agent's side: the approved one carries a step-up grant; the denied one says why.
    const a1 = await agentGets(first.approval!.id);
    expect(a1.approval?.state).toBe('approved');
    expect(a1.approval?.decidedBy).toBe(`${c.oidc.issuer}#sam`);
    expect(a1.approval?.stepUpGrant).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const a2 = await agentGets(second.approval!.id);
    expect(a2.approval?.state).toBe('denied');
    expect(a2.approval?.decisionReason).toBe('one deploy at a time');
    await ctx.close();

    // The principal's tree shows, on the node that asked, both escalations and what became of them.
    const actx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 900 } });
    const ap = await actx.newPage();
    await ap.goto(`${c.url}/console/`);
    await ap.getByRole('link', { name: 'Sign in' }).click();
    await ap.getByLabel('Subject').fill('alice');
    await ap.getByRole('button', { name: 'Sign in (development)' }).click();
    await ap.getByRole('button', { name: 'Sign out' }).waitFor();
    await ap.goto(`${c.url}/console/#/tasks/ship-9`);
    const readerNode = ap.locator('.node[data-jti]', { hasText: 'spiffe://example.org/agent/ship-9/reader' }).last();
    await readerNode.locator('[data-approval-state="approved"]').waitFor();
    expect(await readerNode.locator('[data-approval-state="denied"]').count()).toBe(1);
    expect(await readerNode.locator('[data-approval-state="approved"]').textContent()).toContain('deploy:prod repo://acme/widgets');
    await shot(ap, '14-tree-approvals');
    await actx.close();
  });

  it('refuses an approver_token sent by the browser (the session is the approver)', async () => {
    const s = (await c.signIn('sam', ['sec-oncall'])).session!;
    const r = await c.https('/writ.v1.ApprovalService/ListApprovals', {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: new URL(c.url).origin, cookie: `__Host-writ-console=${s}` },
      body: JSON.stringify({ approverToken: c.oidc.token('mallory', { groups: ['sec-oncall'] }) }),
    });
    expect(r.status).toBe(400);
    const csrf = await c.https('/writ.v1.ApprovalService/Deny', {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://evil.example', cookie: `__Host-writ-console=${s}` },
      body: JSON.stringify({ id: 'x', reason: 'csrf' }),
    });
    expect(csrf.status).toBe(403);
    const noType = await c.https('/writ.v1.ApprovalService/Approve', {
      method: 'POST',
      headers: { 'content-type': 'text/plain', origin: new URL(c.url).origin, cookie: `__Host-writ-console=${s}` },
      body: '{}',
    });
    expect(noType.status).toBe(415);
  });

  it('a first passkey needs a recent sign-in: a session signed in 6 minutes ago is refused and offered a fresh sign-in', async () => {
    const s = (await c.signIn('gina')).session!;
    clock.offsetMs = 6 * 60_000;
    try {
      const r = await c.rpc('BeginPasskeyRegistration', {}, { cookie: s, service: 'ApprovalService' });
      expect(r.status).toBe(403);
      expect(JSON.parse(r.body).message).toMatch(/sign in again/);
      // Adding without an existing passkey's assertion is refused too, whatever the body says.
      const f = await c.rpc('FinishPasskeyRegistration', { responseJson: '{}', authorizationJson: '{}' }, { cookie: s, service: 'ApprovalService' });
      expect(f.status).not.toBe(200);
    } finally {
      clock.offsetMs = 0;
    }
    const fresh = await c.https('/console/login?fresh=1');
    expect(fresh.status).toBe(303);
    const u = new URL(String(fresh.headers.location));
    expect(u.searchParams.get('prompt')).toBe('login');
    expect(u.searchParams.get('max_age')).toBe('0');
    // Just signed in: the ceremony begins (the dev provider's auth_time is the form's answer).
    const now = (await c.signIn('gina')).session!;
    const ok = await c.rpc('BeginPasskeyRegistration', {}, { cookie: now, service: 'ApprovalService' });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).authorizationOptionsJson ?? '').toBe('');
  });
});
