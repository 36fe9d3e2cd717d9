/**
 * The console's OIDC sign-in (src/server/console/oidc-login.ts) against the development provider:
 * the ID token the token endpoint returns goes through the principal verifier, so a token from
 * an issuer writ does not trust, for another audience, without this sign-in's nonce, or forged,
 * signs no one in.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../src/dev/idp.js';
import { signJws } from '../../src/jose/jws.js';
import { PrincipalVerifier } from '../../src/principal/oidc.js';
import { LOGIN_TTL_MS, OidcLogin } from '../../src/server/console/oidc-login.js';

describe('console sign-in verifies the ID token', () => {
  let idp: DevIdp;
  let stranger: DevIdp;
  const clock = { now: () => new Date() };
  beforeAll(async () => {
    idp = await startDevIdp({ host: '127.0.0.1', port: 0, audience: 'writ', clock });
    stranger = await startDevIdp({ host: '127.0.0.1', port: 0, audience: 'writ', clock });
  });
  afterAll(async () => {
    await idp?.stop();
    await stranger?.stop();
  });

  /** A sign-in whose token endpoint answers `token(nonce)`. */
  async function signInWith(token: (nonce: string) => string) {
    const principals = new PrincipalVerifier([{ issuer: idp.issuer, audience: 'writ', groupsClaim: 'groups' }], { now: () => Date.now() });
    let answered = '';
    const login = new OidcLogin(
      { issuer: idp.issuer, clientId: 'writ', redirectUri: () => 'https://127.0.0.1:8444/console/callback' },
      {
        principals,
        now: () => Date.now(),
        post: (async () => new Response(JSON.stringify({ id_token: answered, token_type: 'Bearer' }), { status: 200 })) as typeof fetch,
      },
    );
    const { location, state, cookie } = await login.start();
    answered = token(new URL(location).searchParams.get('nonce')!);
    return login.finish(new URLSearchParams({ code: 'c', state }), cookie);
  }

  it('signs in with a token of the configured issuer, for the client, with the nonce', async () => {
    await expect(signInWith((nonce) => idp.token('alice', { nonce, groups: ['eng'] }))).resolves.toMatchObject({
      principal: { iss: idp.issuer, sub: 'alice', groups: ['eng'] },
      idToken: expect.any(String),
    });
  });

  it('refuses an ID token from another issuer', async () => {
    await expect(signInWith((nonce) => stranger.token('alice', { nonce }))).rejects.toThrow(/not trusted/);
  });

  it('refuses an ID token for another audience', async () => {
    await expect(signInWith((nonce) => idp.token('alice', { nonce, aud: 'another-client' }))).rejects.toThrow(/audience/);
  });

  it("refuses an ID token without this sign-in's nonce (a token replayed from another sign-in)", async () => {
    await expect(signInWith(() => idp.token('alice', { nonce: 'x'.repeat(43) }))).rejects.toThrow(/nonce/);
    await expect(signInWith(() => idp.token('alice'))).rejects.toThrow(/nonce/);
  });

  it('refuses a forged ID token (signed by another key under the provider’s kid)', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    await expect(
      signInWith((nonce) => {
        const [h, p] = idp.token('alice', { nonce }).split('.');
        const dec = (s: string) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Record<string, unknown>;
        const { alg: _a, ...header } = dec(h!);
        return signJws(header, dec(p!), key);
      }),
    ).rejects.toThrow(/signature/);
  });

  it('refuses an expired ID token', async () => {
    const iat = Math.floor(Date.now() / 1000) - 3600;
    await expect(signInWith((nonce) => idp.token('alice', { nonce, iat, exp: iat + 60 }))).rejects.toThrow(/expired/);
  });
});

describe('the sign-in in flight lives in a sealed cookie, not in the issuer', () => {
  let idp: DevIdp;
  const clock = { now: () => new Date() };
  beforeAll(async () => {
    idp = await startDevIdp({ host: '127.0.0.1', port: 0, audience: 'writ', clock });
  });
  afterAll(async () => {
    await idp?.stop();
  });

  /** A login whose token endpoint answers with a token for `sub` carrying the nonce it was sent (and records the verifier). */
  function loginFor(o: { now?: () => number; claims?: Record<string, unknown>; cookieKey?: Buffer } = {}) {
    const principals = new PrincipalVerifier([{ issuer: idp.issuer, audience: 'writ', groupsClaim: 'groups' }], { now: () => Date.now() });
    const nonces = new Map<string, string>();
    const seen: { verifier?: string } = {};
    const login = new OidcLogin(
      { issuer: idp.issuer, clientId: 'writ', redirectUri: () => 'https://127.0.0.1:8444/console/callback' },
      {
        principals,
        now: o.now ?? (() => Date.now()),
        ...(o.cookieKey ? { cookieKey: o.cookieKey } : {}),
        post: (async (_url: string, init: { body: string }) => {
          const f = new URLSearchParams(init.body);
          seen.verifier = f.get('code_verifier') ?? '';
          const id_token = idp.token('alice', { nonce: nonces.get(f.get('code')!), ...o.claims });
          return new Response(JSON.stringify({ id_token, token_type: 'Bearer' }), { status: 200 });
        }) as unknown as typeof fetch,
      },
    );
    const begin = async (fresh = false) => {
      const r = await login.start({ fresh });
      const u = new URL(r.location);
      const code = `code-${nonces.size}`;
      nonces.set(code, u.searchParams.get('nonce')!);
      return { ...r, url: u, code };
    };
    return { login, begin, seen };
  }

  it('a flood of sign-ins (unauthenticated GET /console/login) evicts no one’s sign-in in flight', async () => {
    const { login, begin } = loginFor();
    const mine = await begin();
    for (let i = 0; i < 5000; i++) await login.start();
    await expect(login.finish(new URLSearchParams({ code: mine.code, state: mine.state }), mine.cookie)).resolves.toMatchObject({
      principal: { sub: 'alice' },
    });
  });

  it('the cookie carries no readable state, verifier or nonce, and the token endpoint gets the verifier of the challenge sent', async () => {
    const { login, begin, seen } = loginFor();
    const b = await begin();
    expect(b.cookie).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(b.cookie.length).toBeLessThan(1024);
    const opened = Buffer.from(b.cookie, 'base64url').toString('latin1');
    expect(opened).not.toContain(b.state);
    expect(opened).not.toContain(b.url.searchParams.get('nonce')!);
    await login.finish(new URLSearchParams({ code: b.code, state: b.state }), b.cookie);
    expect(createHash('sha256').update(seen.verifier!).digest('base64url')).toBe(b.url.searchParams.get('code_challenge'));
  });

  it.each([
    ['no cookie', () => undefined],
    ['a cookie with one byte changed', (c: string) => `${c.slice(0, 20)}${c[20] === 'A' ? 'B' : 'A'}${c.slice(21)}`],
    ['a cookie cut short', (c: string) => c.slice(0, 30)],
    ['the raw state as the cookie', (_c: string, state: string) => state],
    ['a cookie too long', (c: string) => c.repeat(8)],
  ])('refuses %s', async (_what, bend) => {
    const { login, begin } = loginFor();
    const b = await begin();
    await expect(login.finish(new URLSearchParams({ code: b.code, state: b.state }), bend(b.cookie, b.state))).rejects.toThrow(/not started in this browser/);
  });

  it('refuses the cookie of another sign-in (its state differs from the callback’s), and one sealed by another issuer process', async () => {
    const { login, begin } = loginFor();
    const a = await begin();
    const b = await begin();
    await expect(login.finish(new URLSearchParams({ code: a.code, state: a.state }), b.cookie)).rejects.toThrow(/not started in this browser/);
    const other = loginFor();
    const c = await other.begin();
    await expect(login.finish(new URLSearchParams({ code: c.code, state: c.state }), c.cookie)).rejects.toThrow(/not started in this browser/);
  });

  it('refuses a sign-in older than LOGIN_TTL_MS', async () => {
    let t = Date.now();
    const { login, begin } = loginFor({ now: () => t, cookieKey: Buffer.alloc(32, 1) });
    const b = await begin();
    t += LOGIN_TTL_MS + 1;
    await expect(login.finish(new URLSearchParams({ code: b.code, state: b.state }), b.cookie)).rejects.toThrow(/expired/);
  });

  it('fresh: asks for prompt=login and max_age=0, and refuses a token whose auth_time is before the sign-in began', async () => {
    const stale = loginFor({ claims: { auth_time: Math.floor(Date.now() / 1000) - 3600 } });
    const b = await stale.begin(true);
    expect(b.url.searchParams.get('prompt')).toBe('login');
    expect(b.url.searchParams.get('max_age')).toBe('0');
    await expect(stale.login.finish(new URLSearchParams({ code: b.code, state: b.state }), b.cookie)).rejects.toThrow(/did not sign you in again/);
    const none = loginFor({ claims: { auth_time: undefined } });
    const n = await none.begin(true);
    await expect(none.login.finish(new URLSearchParams({ code: n.code, state: n.state }), n.cookie)).rejects.toThrow(/did not sign you in again/);
    const ok = loginFor();
    const o = await ok.begin(true);
    await expect(ok.login.finish(new URLSearchParams({ code: o.code, state: o.state }), o.cookie)).resolves.toMatchObject({
      principal: { authTime: expect.any(Number) },
    });
    // Without fresh, neither parameter is sent.
    const plain = await ok.begin();
    expect(plain.url.searchParams.has('prompt')).toBe(false);
    expect(plain.url.searchParams.has('max_age')).toBe(false);
  });
});
