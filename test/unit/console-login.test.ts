/**
 * The console's OIDC sign-in (src/server/console/oidc-login.ts) against the development provider:
 * the ID token the token endpoint returns goes through the principal verifier, so a token from
 * an issuer writ does not trust, for another audience, without this sign-in's nonce, or forged,
 * signs no one in.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../src/dev/idp.js';
import { signJws } from '../../src/jose/jws.js';
import { PrincipalVerifier } from '../../src/principal/oidc.js';
import { OidcLogin } from '../../src/server/console/oidc-login.js';

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
    const { location, state } = await login.start();
    answered = token(new URL(location).searchParams.get('nonce')!);
    return login.finish(new URLSearchParams({ code: 'c', state }), state);
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
