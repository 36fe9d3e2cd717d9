/**
 * The web console's defences over real HTTPS (no browser): the sign-in (code + PKCE, state bound
 * to the browser, one-time codes), the session cookie's attributes, CSRF on every state-changing
 * call (origin and content type), sessions from elsewhere, forged or expired, who sees what, and
 * the headers every console reply carries.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsoleWorld, OPERATOR_GROUP, startConsoleWorld } from '../helpers/console.js';
import { threeHops } from '../helpers/revocation.js';

/** Real time plus an offset the tests move (TLS and OIDC tokens stay on real time). */
class OffsetClock {
  offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}

describe('web console security', () => {
  let c: ConsoleWorld;
  const clock = new OffsetClock();
  let alice: string;
  let bob: string;
  let ops: string;
  let taskA: string;

  beforeAll(async () => {
    c = await startConsoleWorld({ clock });
    await threeHops({ address: c.w.address, bundlePem: c.w.bundlePem, adminSocket: c.w.adminSocket }, c.oidc, { taskId: 'sec-alice', principal: 'alice' });
    taskA = 'sec-alice';
    alice = (await c.signIn('alice')).session!;
    bob = (await c.signIn('bob')).session!;
    ops = (await c.signIn('olga', [OPERATOR_GROUP])).session!;
  });
  afterAll(async () => {
    await c?.stop();
  });

  it('sets a __Host- session cookie: Secure, HttpOnly, SameSite=Strict, Path=/, short-lived', async () => {
    const s = await c.signIn('carol');
    expect(s.done.status).toBe(303);
    expect(s.done.headers.location).toBe('/console/');
    const cookie = (s.done.headers['set-cookie'] ?? []).find((x) => x.startsWith('__Host-writ-console='))!;
    // Short-lived: the session ends with the ID token (the development provider's 10 minutes), before the 15-minute session_ttl.
    expect(cookie).toMatch(/; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=(59\d|600)$/);
    expect(cookie).not.toMatch(/Domain=/i);
    // The login cookie is cleared once used.
    expect((s.done.headers['set-cookie'] ?? []).some((x) => /^__Host-writ-login=; .*Max-Age=0$/.test(x))).toBe(true);
    const who = await c.rpc('GetSession', {}, { cookie: s.session! });
    expect(who.status).toBe(200);
    expect(JSON.parse(who.body)).toMatchObject({ subject: 'carol', issuer: c.oidc.issuer });
  });

  it('sends the browser to the provider with PKCE S256, a state and a nonce', async () => {
    const r = await c.https('/console/login');
    expect(r.status).toBe(303);
    const u = new URL(String(r.headers.location));
    expect(`${u.origin}${u.pathname}`).toBe(`${c.oidc.issuer}/authorize`);
    expect(u.searchParams.get('code_challenge_method')).toBe('S256');
    expect(u.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(u.searchParams.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(u.searchParams.get('redirect_uri')).toBe(`${c.url}/console/callback`);
    const cookie = (r.headers['set-cookie'] ?? [])[0]!;
    // The sign-in in flight, sealed: not the state, nothing the issuer keeps (a flood of these evicts no one's).
    expect(cookie).toMatch(/^__Host-writ-login=[A-Za-z0-9_-]{100,1024}; Path=\/; Secure; HttpOnly; SameSite=Lax; Max-Age=600$/);
    expect(cookie).not.toContain(u.searchParams.get('state')!);
  });

  it('refuses a callback whose state this browser was not given (login CSRF), and a code used twice', async () => {
    const s = await c.signIn('dave');
    expect(s.session).toBeDefined();
    // The same callback again, with the same login cookie (a replayed code): the provider redeems a code once.
    const loginCookie = /^__Host-writ-login=([^;]*)/.exec((s.login.headers['set-cookie'] ?? [])[0] ?? '')![1]!;
    const again = await c.https(`${s.callback.pathname}${s.callback.search}`, { headers: { cookie: `__Host-writ-login=${loginCookie}` } });
    expect(again.status).toBe(403);
    expect(again.body).toMatch(/refused the code/);
    expect(again.headers['set-cookie']?.some((x) => x.startsWith('__Host-writ-console='))).toBeFalsy();
    // The raw state as the cookie (what a page that saw the redirect knows) opens nothing.
    const raw = await c.https(`${s.callback.pathname}${s.callback.search}`, {
      headers: { cookie: `__Host-writ-login=${s.callback.searchParams.get('state')}` },
    });
    expect(raw.status).toBe(403);
    expect(raw.body).toMatch(/not started in this browser/);
    // Someone else's callback in a browser without (or with another) login cookie.
    const login = await c.https('/console/login');
    const state = new URL(String(login.headers.location)).searchParams.get('state')!;
    const noCookie = await c.https(`/console/callback?code=x&state=${state}`);
    expect(noCookie.status).toBe(403);
    expect(noCookie.body).toMatch(/not started in this browser/);
    expect(noCookie.headers['set-cookie']?.some((x) => x.startsWith('__Host-writ-console='))).toBeFalsy();
  });

  it('refuses every call without a live session: none, forged, signed out, expired', async () => {
    expect((await c.rpc('GetSession', {})).status).toBe(401);
    expect((await c.rpc('GetSession', {}, { cookie: 'A'.repeat(43) })).status).toBe(401);
    expect((await c.rpc('GetSession', {}, { cookie: 'not a token' })).status).toBe(401);
    const s = (await c.signIn('erin')).session!;
    const out = await c.rpc('SignOut', {}, { cookie: s });
    expect(out.status).toBe(200);
    expect(out.headers['set-cookie']?.[0]).toMatch(/^__Host-writ-console=; .*Max-Age=0$/);
    expect((await c.rpc('GetSession', {}, { cookie: s })).status).toBe(401);
    const t = (await c.signIn('frank')).session!;
    expect((await c.rpc('GetSession', {}, { cookie: t })).status).toBe(200);
    clock.offsetMs = 16 * 60_000;
    try {
      expect((await c.rpc('GetSession', {}, { cookie: t })).status).toBe(401);
    } finally {
      clock.offsetMs = 0;
    }
  });

  describe('CSRF: every state-changing call needs the console origin and a Connect content type', () => {
    const calls: Array<[string, unknown, string]> = [
      ['Revoke', { kind: 'task', target: 'sec-alice', reason: 'csrf' }, 'ConsoleService'],
      ['SignOut', {}, 'ConsoleService'],
      ['Deny', { id: 'AAAAAAAAAAAAAAAAAAAAAA', reason: 'csrf' }, 'ApprovalService'],
      ['BeginApproval', { id: 'AAAAAAAAAAAAAAAAAAAAAA' }, 'ApprovalService'],
      ['Approve', { id: 'AAAAAAAAAAAAAAAAAAAAAA', assertionJson: '{}' }, 'ApprovalService'],
      ['BeginPasskeyRegistration', {}, 'ApprovalService'],
      ['FinishPasskeyRegistration', { responseJson: '{}' }, 'ApprovalService'],
    ];
    for (const [method, body, service] of calls) {
      it(`${method}: refused from another origin (a session cookie presented from elsewhere)`, async () => {
        const r = await c.rpc(method, body, { cookie: alice, origin: 'https://evil.example', service });
        expect(r.status).toBe(403);
        expect(JSON.parse(r.body).code).toBe('permission_denied');
      });
      it(`${method}: refused without an Origin`, async () => {
        expect((await c.rpc(method, body, { cookie: alice, origin: null, service })).status).toBe(403);
      });
      it(`${method}: refused without a Connect content type (a cross-site form's text/plain or form encoding)`, async () => {
        for (const ct of [null, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
          const r = await c.rpc(method, body, { cookie: alice, contentType: ct, service });
          expect(r.status).toBe(415);
        }
      });
    }
    it('agents’ approval calls are not served to the console', async () => {
      for (const m of ['Escalate', 'WatchApproval']) expect((await c.rpc(m, {}, { cookie: alice, service: 'ApprovalService' })).status).not.toBe(200);
    });
    it('nothing was revoked and no session ended by the refused calls', async () => {
      const t = await c.rpc('GetTaskTree', { taskId: taskA }, { cookie: alice });
      expect(t.status).toBe(200);
      expect(JSON.parse(t.body).task.endedAt ?? '0').toBe('0');
      expect((await c.rpc('GetSession', {}, { cookie: alice })).status).toBe(200);
    });
    it('a GET or a preflight is never a call', async () => {
      expect((await c.https('/writ.v1.ConsoleService/Revoke')).status).toBe(405);
      const pre = await c.https('/writ.v1.ConsoleService/Revoke', {
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      });
      expect(pre.status).toBe(405);
      expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    });
  });

  it('shows a principal only their own tasks, trees and records; an operator all of them', async () => {
    const mine = JSON.parse((await c.rpc('ListTasks', {}, { cookie: alice })).body);
    expect(mine.tasks.map((t: { id: string }) => t.id)).toEqual([taskA]);
    expect(JSON.parse((await c.rpc('ListTasks', {}, { cookie: bob })).body).tasks ?? []).toEqual([]);
    const other = await c.rpc('GetTaskTree', { taskId: taskA }, { cookie: bob });
    expect(other.status).toBe(404);
    const tree = JSON.parse((await c.rpc('GetTaskTree', { taskId: taskA }, { cookie: ops })).body);
    expect(tree.writs).toHaveLength(3);
    // Audit: bob cannot ask for alice's records, and gets none of them unasked.
    expect((await c.rpc('ListAuditRecords', { principal: `${c.oidc.issuer}#alice` }, { cookie: bob })).status).toBe(403);
    expect(JSON.parse((await c.rpc('ListAuditRecords', { task: taskA }, { cookie: bob })).body).records ?? []).toEqual([]);
    const aliceRecords = JSON.parse((await c.rpc('ListAuditRecords', { task: taskA }, { cookie: alice })).body).records;
    expect(aliceRecords.length).toBeGreaterThan(0);
    const seq = aliceRecords[0].seq;
    expect((await c.rpc('ProveAuditRecord', { seq }, { cookie: bob })).status).toBe(400);
    expect((await c.rpc('ProveAuditRecord', { seq }, { cookie: alice })).status).toBe(200);
    // The overview is the operators'.
    expect((await c.rpc('GetOverview', {}, { cookie: alice })).status).toBe(403);
    expect(JSON.parse((await c.rpc('GetOverview', {}, { cookie: ops })).body)).toMatchObject({ trustDomain: 'example.org' });
  });

  it('lets a principal revoke only what is theirs', async () => {
    const r = await c.rpc('Revoke', { kind: 'task', target: taskA, reason: 'not mine' }, { cookie: bob });
    expect(r.status).toBe(403);
    const agent = await c.rpc('Revoke', { kind: 'agent', target: 'spiffe://example.org/agent/sec-alice/reader', reason: 'x' }, { cookie: alice });
    expect(agent.status).toBe(403);
    expect((await c.rpc('Revoke', { kind: 'task', target: taskA, reason: '' }, { cookie: alice })).status).toBe(400);
  });

  it('serves the page under a strict CSP, never framed or sniffed; hashed assets cached for a year', async () => {
    const page = await c.https('/console/');
    expect(page.status).toBe(200);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['cache-control']).toBe('no-cache');
    // No inline script: every script is a file of this origin.
    expect(page.body).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
    const asset = /src="(\/console\/assets\/[^"]+\.js)"/.exec(page.body)![1]!;
    const js = await c.https(asset);
    expect(js.status).toBe(200);
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.headers['x-content-type-options']).toBe('nosniff');
    expect(js.headers['referrer-policy']).toBe('no-referrer');
    expect(String(js.headers['content-security-policy'])).toContain("default-src 'none'");
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    expect((await c.https('/console/assets/..%2F..%2Fpackage.json')).status).toBe(404);
    expect((await c.https('/console/assets/nope-123.js')).status).toBe(404);
  });

  it('bounds a call body', async () => {
    const r = await c.rpc('Revoke', { kind: 'task', target: taskA, reason: 'x'.repeat(70_000) }, { cookie: alice });
    expect(r.status).not.toBe(200);
  });
});
