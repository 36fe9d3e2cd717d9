import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { jwtVerify, importJWK } from 'jose';
import { mintJwtSvid, validateJwtSvid, type JwtAlg } from '../../src/svid/jwt-svid.js';
import { keySigner } from '../../src/jose/jws.js';
import { BundleSet } from '../../src/spiffe/bundle.js';
import { parseSpiffeId } from '../../src/spiffe/id.js';
import { SvidError } from '../../src/errors.js';
import { HAVE_SHARED, vector } from '../helpers/shared.js';

const TD = 'trustdomain';
const ID = parseSpiffeId('spiffe://trustdomain/host');
const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
const now = new Date();
const later = new Date(now.getTime() + 300_000);

function bundles(keys: Record<string, KeyObject>, td = TD): BundleSet {
  return new BundleSet([{ trustDomain: td, x509Authorities: [], jwtAuthorities: new Map(Object.entries(keys)) }]);
}
const trusted = bundles({ k1: ec.publicKey, r1: rsa.publicKey, p1: p384.publicKey });

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
/** Hand-signs a token with arbitrary header and claims (ES256 by default). */
function forge(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject = ec.privateKey): string {
  const input = `${b64(header)}.${b64(claims)}`;
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}
const goodClaims = () => ({ sub: ID.uri, aud: ['audience'], exp: Math.floor(later.getTime() / 1000), iat: Math.floor(now.getTime() / 1000) });

function errOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SvidError);
    expect((e as SvidError).code).toBe('ERR_JWT_SVID_INVALID');
    return (e as Error).message;
  }
  throw new Error('expected validation to fail');
}

describe('JWT-SVID minting', () => {
  it.each([
    ['ES256', ec.privateKey, 'k1'],
    ['ES384', p384.privateKey, 'p1'],
    ['RS256', rsa.privateKey, 'r1'],
    ['PS256', rsa.privateKey, 'r1'],
  ] as const)('%s tokens validate with our validator and with jose', async (alg, key, kid) => {
    const svid = await mintJwtSvid({ kid, signer: keySigner(key, alg as JwtAlg) }, { spiffeId: ID, audience: ['audience'], issuedAt: now, expiresAt: later });
    const [h] = svid.token.split('.');
    expect(JSON.parse(Buffer.from(h!, 'base64url').toString())).toEqual({ alg, kid, typ: 'JWT' });
    expect(validateJwtSvid(svid.token, trusted, ['audience'], now).id.uri).toBe(ID.uri);
    const pub = trusted.get(TD)!.jwtAuthorities.get(kid)!;
    const jwk = await importJWK({ ...(pub.export({ format: 'jwk' }) as object), alg } as never, alg);
    const { payload } = await jwtVerify(svid.token, jwk, { audience: 'audience', algorithms: [alg], currentDate: now });
    expect(payload.sub).toBe(ID.uri);
  });
  it('refuses to mint with a signer whose key does not fit its algorithm', async () => {
    // A custody signer claiming ES256 over an RSA key (keySigner itself refuses to build one).
    const lying = { ...keySigner(rsa.privateKey), alg: 'ES256' as const };
    await expect(mintJwtSvid({ kid: 'x', signer: lying }, { spiffeId: ID, audience: ['a'], issuedAt: now, expiresAt: later })).rejects.toThrow(SvidError);
    expect(() => keySigner(rsa.privateKey, 'ES256')).toThrow(/does not fit ES256/);
  });
  it('refuses to mint without an audience', async () => {
    await expect(mintJwtSvid({ kid: 'x', signer: keySigner(ec.privateKey) }, { spiffeId: ID, audience: [], issuedAt: now, expiresAt: later })).rejects.toThrow(
      /audience/,
    );
  });
});

// go-spiffe svid/jwtsvid/svid_test.go ParseAndValidate cases (vectors/spiffe/INDEX.md).
describe('JWT-SVID validation (go-spiffe cases)', () => {
  it('malformed token', () => {
    expect(errOf(() => validateJwtSvid('not-a-token', trusted, ['audience'], now))).toContain('jwtsvid: unable to parse JWT token');
  });
  it.skipIf(!HAVE_SHARED)('HS256 vector (hs256-token.jwt) is refused', () => {
    const tok = vector('spiffe/svid/jwtsvid/hs256-token.jwt').toString().trim();
    expect(errOf(() => validateJwtSvid(tok, trusted, ['audience'], now))).toContain('jwtsvid: unable to parse JWT token');
  });
  it('no sub', () => {
    const { sub: _s, ...c } = goodClaims();
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256', kid: 'k1', typ: 'JWT' }, c), trusted, ['audience'], now))).toContain(
      'jwtsvid: token missing subject claim',
    );
  });
  it('no exp', () => {
    const { exp: _e, ...c } = goodClaims();
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256', kid: 'k1' }, c), trusted, ['audience'], now))).toContain('jwtsvid: token missing exp claim');
  });
  it('expired', () => {
    const c = { ...goodClaims(), exp: Math.floor(now.getTime() / 1000) - 1 };
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256', kid: 'k1' }, c), trusted, ['audience'], now))).toContain('jwtsvid: token has expired');
  });
  it('wrong audience', () => {
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256', kid: 'k1' }, goodClaims()), trusted, ['another'], now))).toContain(
      'jwtsvid: expected audience in ["another"] (audience=["audience"])',
    );
  });
  it('sub not a SPIFFE ID', () => {
    const c = { ...goodClaims(), sub: 'not-spiffe' };
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256', kid: 'k1' }, c), trusted, ['audience'], now))).toContain(
      'jwtsvid: token has an invalid subject claim: scheme is missing or invalid',
    );
  });
  it('header without kid', () => {
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256' }, goodClaims()), trusted, ['audience'], now))).toContain('jwtsvid: token header missing key id');
  });
  it('no bundle for the trust domain', () => {
    const c = { ...goodClaims(), sub: 'spiffe://another.domain/host' };
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256', kid: 'k1' }, c), trusted, ['audience'], now))).toContain(
      'jwtsvid: no bundle found for trust domain "another.domain"',
    );
  });
  it('kid not in the bundle', () => {
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256', kid: 'noKey' }, goodClaims()), trusted, ['audience'], now))).toContain(
      'jwtsvid: no JWT authority "noKey" found for trust domain "trustdomain"',
    );
  });
  it('signed by another key', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256', kid: 'k1' }, goodClaims(), other.privateKey), trusted, ['audience'], now))).toContain(
      'jwtsvid: unable to get claims from token',
    );
  });
  it('typ neither JWT nor JOSE', () => {
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' }, goodClaims()), trusted, ['audience'], now))).toContain(
      'jwtsvid: token header type not equal to either JWT or JOSE',
    );
  });
  it('typ JOSE is accepted', () => {
    expect(validateJwtSvid(forge({ alg: 'ES256', kid: 'k1', typ: 'JOSE' }, goodClaims()), trusted, ['audience'], now).id.uri).toBe(ID.uri);
  });
});

describe('JWT-SVID algorithm confusion', () => {
  it('alg none is refused', () => {
    const tok = `${b64({ alg: 'none', kid: 'k1' })}.${b64(goodClaims())}.`;
    expect(errOf(() => validateJwtSvid(tok, trusted, ['audience'], now))).toContain('unable to parse JWT token');
  });
  it('HS256 signed with the public key as the secret is refused', () => {
    const secret = rsa.publicKey.export({ type: 'spki', format: 'pem' });
    const input = `${b64({ alg: 'HS256', kid: 'r1' })}.${b64(goodClaims())}`;
    const tok = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
    expect(errOf(() => validateJwtSvid(tok, trusted, ['audience'], now))).toContain('unable to parse JWT token');
  });
  it('an ES256 header naming an RSA key is refused before any verification', () => {
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256', kid: 'r1' }, goodClaims()), trusted, ['audience'], now))).toContain('cannot verify ES256');
  });
  it('an ES384 header naming a P-256 key is refused', () => {
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES384', kid: 'k1' }, goodClaims()), trusted, ['audience'], now))).toContain('cannot verify ES384');
  });
  it('duplicate claim names are refused (strict JSON), not read as the first or the last', () => {
    const claims = JSON.stringify(goodClaims()).replace(/^\{/, '{"sub":"spiffe://trustdomain/other",');
    const input = `${b64({ alg: 'ES256', kid: 'k1', typ: 'JWT' })}.${Buffer.from(claims).toString('base64url')}`;
    const tok = `${input}.${sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    expect(errOf(() => validateJwtSvid(tok, trusted, ['audience'], now))).toContain(
      'unable to parse JWT token: payload is not strict base64url JSON: duplicate member name "sub"',
    );
  });
  it('a crit header is refused', () => {
    expect(errOf(() => validateJwtSvid(forge({ alg: 'ES256', kid: 'k1', crit: ['b64'], b64: false }, goodClaims()), trusted, ['audience'], now))).toContain(
      'crit',
    );
  });
  it('every single-character change of a valid token is rejected', async () => {
    const tok = (await mintJwtSvid({ kid: 'k1', signer: keySigner(ec.privateKey) }, { spiffeId: ID, audience: ['audience'], issuedAt: now, expiresAt: later }))
      .token;
    const alphabet = ['A', 'Q', 'g', 'w', '_', '-'];
    for (let i = 0; i < tok.length; i++) {
      if (tok[i] === '.') continue;
      const c = alphabet.find((a) => a !== tok[i])!;
      const m = tok.slice(0, i) + c + tok.slice(i + 1);
      // Includes flips of unused trailing bits: non-canonical base64url is refused too.
      expect(() => validateJwtSvid(m, trusted, ['audience'], now), `char ${i}`).toThrow(SvidError);
    }
  });
});
