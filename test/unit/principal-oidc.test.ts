/**
 * OpenID Connect principals (src/principal/oidc.ts) against a fake provider behind the real
 * Fetcher interface: the rules on the discovery document's jwks_uri (https, the issuer's origin
 * or a configured one), the hard maximum age of fetched keys, and the refresh behaviour kept
 * within that bound (every 5 min, unknown kid with a cooldown, known keys during short outages).
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { signJws } from '../../src/jose/jws.js';
import { JWKS_MIN_REFRESH_MS, JWKS_TTL_MS, PrincipalVerifier, type PrincipalIssuerSettings } from '../../src/principal/oidc.js';
import { FakeProvider } from '../fakes/oidc-provider.js';
import { tmpDir } from '../helpers/tmp.js';

const T0 = Date.UTC(2030, 0, 1);
const HOUR = 3_600_000;
/** The default max_key_age. */
const DAY = 24 * HOUR;
const ID = 'urn:ietf:params:oauth:token-type:id_token';

function setup(issuer: string, over: Partial<PrincipalIssuerSettings> = {}, jwksUri?: string, refetchCooldownMs?: number) {
  const idp = new FakeProvider(issuer, jwksUri);
  let now = T0;
  const v = new PrincipalVerifier([{ issuer, audience: 'writ', groupsClaim: 'groups', ...over }], {
    fetcher: idp.fetcher,
    now: () => now,
    ...(refetchCooldownMs !== undefined ? { refetchCooldownMs } : {}),
  });
  return {
    idp,
    v,
    clock: {
      advance: (ms: number) => {
        now += ms;
      },
      get now() {
        return now;
      },
    },
    verify: (token = idp.token(now)) => v.verify(token, ID),
  };
}

const rejected = async (p: Promise<unknown>): Promise<Error & { code?: string }> => {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a rejection');
};

describe('principal: the jwks_uri of a discovery document', () => {
  it('is never fetched when it points at the cloud metadata address', async () => {
    const { idp, verify } = setup('https://idp.example.com', {}, 'http://169.254.169.254/latest/meta-data/iam/security-credentials/');
    const e = await rejected(verify());
    expect(e.code).toBe('ERR_PRINCIPAL_INVALID');
    expect(e.message).toMatch(/jwks_uri http:\/\/169\.254\.169\.254\/.* must be https \(http only on loopback\)/);
    expect(idp.fetched).toEqual(['https://idp.example.com/.well-known/openid-configuration']);
  });

  // The valid vector and its mutated twins, for an https issuer with no jwks_origins.
  it.each([
    ['https://idp.example.com/jwks', null],
    ['https://idp.example.com/oauth2/v3/certs?x=1', null],
    ['HTTPS://IDP.EXAMPLE.COM:443/keys', null],
    ['http://idp.example.com/jwks', /must be https/],
    ['https://keys.example.com/jwks', /not on the issuer's origin https:\/\/idp\.example\.com/],
    ['https://idp.example.com:8443/jwks', /not on the issuer's origin/],
    ['https://idp.example.com.evil.example/jwks', /not on the issuer's origin/],
    ['https://idp.example.com@169.254.169.254/jwks', /not on the issuer's origin/],
    ['https://sub.idp.example.com/jwks', /not on the issuer's origin/],
    ['/jwks', /not an absolute URL/],
    ['file:///etc/passwd', /must be https/],
    ['ftp://idp.example.com/jwks', /must be https/],
  ])('%s → %s', async (uri, err) => {
    const { idp, verify } = setup('https://idp.example.com', {}, uri);
    if (err === null) {
      await expect(verify()).resolves.toMatchObject({ sub: 'alice' });
      expect(idp.jwksFetches).toBe(1);
      return;
    }
    const e = await rejected(verify());
    expect(e).toMatchObject({ code: 'ERR_PRINCIPAL_INVALID', message: expect.stringMatching(err) });
    expect(idp.fetched).toHaveLength(1);
  });

  it('may be http on a loopback issuer, still on its origin', async () => {
    for (const [uri, ok] of [
      ['http://127.0.0.1:9000/jwks', true],
      ['http://127.0.0.2:9000/jwks', false],
      ['http://localhost:9000/jwks', false],
      ['http://127.0.0.1:9001/jwks', false],
      ['https://127.0.0.1:9000/jwks', false],
    ] as const) {
      const { verify } = setup('http://127.0.0.1:9000', {}, uri);
      if (ok) await expect(verify(), uri).resolves.toMatchObject({ sub: 'alice' });
      else expect((await rejected(verify())).message, uri).toMatch(/not on the issuer's origin http:\/\/127\.0\.0\.1:9000/);
    }
  });

  it('jwks_origins replaces the issuer origin as the allowed list', async () => {
    const jwksOrigins = ['https://keys.example.com', 'http://127.0.0.1:7000'];
    for (const [uri, err] of [
      ['https://keys.example.com/oauth2/certs', null],
      ['http://127.0.0.1:7000/jwks', null],
      ['https://idp.example.com/jwks', /not on an origin listed in jwks_origins \(https:\/\/keys\.example\.com, http:\/\/127\.0\.0\.1:7000\)/],
      ['http://keys.example.com/oauth2/certs', /must be https/],
      ['https://keys.example.com:444/oauth2/certs', /not on an origin listed in jwks_origins/],
    ] as const) {
      const { verify } = setup('https://idp.example.com', { jwksOrigins }, uri);
      if (err === null) await expect(verify(), uri).resolves.toMatchObject({ sub: 'alice' });
      else expect((await rejected(verify())).message, uri).toMatch(err);
    }
  });

  it('a provider that turns to a forbidden jwks_uri after a good fetch gets no new keys (known keys stay, within their age)', async () => {
    const { idp, verify, clock } = setup('https://idp.example.com');
    await verify();
    idp.jwksUri = 'http://169.254.169.254/jwks';
    clock.advance(JWKS_TTL_MS + 1);
    await expect(verify()).resolves.toMatchObject({ sub: 'alice' });
    expect(idp.fetched.filter((u) => u.includes('169.254'))).toEqual([]);
    clock.advance(DAY);
    expect((await rejected(verify())).message).toMatch(/older than max_key_age 24h .*unreachable.*must be https/);
  });
});

describe('principal: fetched keys have a hard maximum age', () => {
  it('known keys serve a short outage, and fail closed once older than 24 h since the last successful fetch', async () => {
    const { idp, verify, clock } = setup('https://idp.example.com');
    await expect(verify()).resolves.toMatchObject({ sub: 'alice' });
    idp.down = true;
    clock.advance(DAY - 1000);
    await expect(verify()).resolves.toMatchObject({ sub: 'alice' });
    clock.advance(2000);
    const e = await rejected(verify());
    expect(e.code).toBe('ERR_PRINCIPAL_INVALID');
    expect(e.message).toMatch(
      /^principal: keys of https:\/\/idp\.example\.com are older than max_key_age 24h and the provider is unreachable: connect ECONNREFUSED$/,
    );
    // The provider back: keys fetched again, tokens accepted, the age counts from this fetch.
    idp.down = false;
    await expect(verify()).resolves.toMatchObject({ sub: 'alice' });
    idp.down = true;
    clock.advance(DAY - 1000);
    await expect(verify()).resolves.toMatchObject({ sub: 'alice' });
  });

  it('a rotated-out key stops working after max_key_age while the provider is unreachable', async () => {
    const { idp, verify, clock } = setup('https://idp.example.com');
    const old = { key: idp.key, kid: idp.kid };
    await verify();
    idp.rotate('k2');
    idp.down = true; // the provider rotated k1 out, but writ cannot reach it
    const forged = () => idp.token(clock.now, 'mallory', old.key, old.kid);
    await expect(verify(forged())).resolves.toMatchObject({ sub: 'mallory' });
    clock.advance(DAY + 1);
    expect((await rejected(verify(forged()))).message).toMatch(/older than max_key_age/);
  });

  it('max_key_age is configurable per principal', async () => {
    const { idp, verify, clock } = setup('https://idp.example.com', { maxKeyAgeMs: HOUR });
    await verify();
    idp.down = true;
    clock.advance(HOUR);
    await expect(verify()).resolves.toMatchObject({ sub: 'alice' });
    clock.advance(1);
    expect((await rejected(verify())).message).toMatch(/older than max_key_age 1h and the provider is unreachable/);
  });

  it('a max_key_age shorter than the refresh interval still refreshes in time', async () => {
    const { idp, verify, clock } = setup('https://idp.example.com', { maxKeyAgeMs: 60_000 });
    await verify();
    clock.advance(61_000);
    await expect(verify()).resolves.toMatchObject({ sub: 'alice' });
    expect(idp.jwksFetches).toBe(2);
  });

  it('keys from a static jwks_file have no maximum age', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const file = join(tmpDir(), 'corp.jwks');
    writeFileSync(file, JSON.stringify({ keys: [{ ...key.export({ format: 'jwk' }), d: undefined, kid: 'static' }] }));
    let now = T0;
    const fetched: string[] = [];
    const v = new PrincipalVerifier([{ issuer: 'corp', audience: 'writ', groupsClaim: 'groups', jwksFile: file, maxKeyAgeMs: HOUR }], {
      fetcher: async (u) => {
        fetched.push(u);
        throw new Error('no network');
      },
      now: () => now,
    });
    const tok = () => {
      const iat = Math.floor(now / 1000);
      return signJws({ alg: 'ES256', typ: 'JWT', kid: 'static' }, { iss: 'corp', sub: 'bob', aud: 'writ', iat, exp: iat + 60 }, key);
    };
    await expect(v.verify(tok(), ID)).resolves.toMatchObject({ sub: 'bob' });
    now += 1000 * 24 * HOUR;
    await expect(v.verify(tok(), ID)).resolves.toMatchObject({ sub: 'bob' });
    expect(fetched).toEqual([]);
  });
});

describe('principal: refresh behaviour within the age bound', () => {
  it('refetches every 5 minutes, not sooner', async () => {
    const { idp, verify, clock } = setup('https://idp.example.com');
    await verify();
    clock.advance(JWKS_TTL_MS);
    await verify();
    expect(idp.jwksFetches).toBe(1);
    clock.advance(1);
    await verify();
    expect(idp.jwksFetches).toBe(2);
  });

  it('an unknown kid refetches at once, then not again within the cooldown', async () => {
    const { idp, verify, clock } = setup('https://idp.example.com');
    await verify();
    clock.advance(JWKS_MIN_REFRESH_MS + 1);
    idp.rotate('k2');
    await expect(verify()).resolves.toMatchObject({ sub: 'alice' });
    expect(idp.jwksFetches).toBe(2);
    const e = await rejected(verify(idp.token(clock.now, 'alice', idp.key, 'k3')));
    expect(e.message).toMatch(/signed by a key the issuer does not publish/);
    expect(idp.jwksFetches).toBe(2);
  });

  it('a cooldown of 0 refetches for an unknown kid even within the millisecond of the last fetch', async () => {
    const { idp, verify } = setup('https://idp.example.com', {}, undefined, 0);
    await verify();
    idp.rotate('k2');
    await expect(verify()).resolves.toMatchObject({ sub: 'alice' });
    expect(idp.jwksFetches).toBe(2);
  });

  it('without any keys yet, an unreachable provider fails closed', async () => {
    const { idp, verify } = setup('https://idp.example.com');
    idp.down = true;
    expect((await rejected(verify())).message).toMatch(/^principal: cannot fetch keys of https:\/\/idp\.example\.com: connect ECONNREFUSED$/);
  });
});
