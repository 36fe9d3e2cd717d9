/** JOSE building blocks: RFC 7638 thumbprints, strict JSON, untrusted JWKs, the algorithm allow-list. */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeJws, jwkThumbprint, publicKeyFromJwk, signJws, verifyJws } from '../../src/jose/jws.js';
import { parseStrictJson } from '../../src/jose/strict-json.js';
import { patternCovers, patternMatches, checkAttenuation, authorizeAction, parsePermissions } from '../../src/delegation/scope.js';

// RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
const RFC7638_N =
  '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw';

describe('RFC 7638 thumbprints', () => {
  it('reproduces the RFC 7638 §3.1 example', () => {
    const key = publicKeyFromJwk({ kty: 'RSA', n: RFC7638_N, e: 'AQAB' });
    expect(jwkThumbprint(key)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });
  it('a one-character change of the key changes the thumbprint', () => {
    const key = publicKeyFromJwk({ kty: 'RSA', n: RFC7638_N.replace(/^0/, '1'), e: 'AQAB' });
    expect(jwkThumbprint(key)).not.toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });
});

describe('untrusted JWKs', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = ec.publicKey.export({ format: 'jwk' });
  it.each([
    ['private material', { ...ec.privateKey.export({ format: 'jwk' }) }, /private key material/],
    ['a symmetric key', { kty: 'oct', k: 'AAAA' }, /private key material|kty/],
    ['a short coordinate', { ...jwk, x: Buffer.from(jwk.x!, 'base64url').subarray(1).toString('base64url') }, /coordinate length/],
    ['an unknown curve', { ...jwk, crv: 'P-192' }, /bad EC members/],
    ['a small RSA key', { kty: 'RSA', ...generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }) }, /1024 bits/],
    ['a point off the curve', { ...jwk, y: Buffer.alloc(32, 7).toString('base64url') }, /acceptable/],
  ])('refuses %s', (_n, j, re) => {
    expect(() => publicKeyFromJwk(j)).toThrow(re);
  });
});

describe('strict JSON', () => {
  it.each([
    ['{"a":1,"a":2}', /duplicate member name "a"/],
    ['{"a":"\\ud800"}', /lone surrogate/],
    ['{"a":1} x', /trailing/],
    ['{"a":12345678901234567890}', /out of range/],
    ['[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]', /too deep/],
    ['{"a":01}', /expected/],
    ["{'a':1}", /member name/],
  ])('refuses %s', (text, re) => {
    expect(() => parseStrictJson(text)).toThrow(re);
  });
  // Integers beyond 2^53 are refused on purpose (they do not round-trip); everything else must agree.
  const safe = (v: unknown): boolean =>
    typeof v === 'number'
      ? !Number.isInteger(v) || Number.isSafeInteger(v)
      : Array.isArray(v)
        ? v.every(safe)
        : v !== null && typeof v === 'object'
          ? Object.values(v).every(safe)
          : true;
  it('agrees with JSON.parse on every JSON value without duplicate keys', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }).filter(safe), (v) => {
        const text = JSON.stringify(v);
        expect(parseStrictJson(text)).toEqual(JSON.parse(text));
      }),
      { numRuns: 300 },
    );
  });
  it('keeps __proto__ as data, never as a prototype', () => {
    const v = parseStrictJson('{"__proto__":{"polluted":true}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(v)).toEqual(['__proto__']);
  });
});

describe('JWS allow-list', () => {
  const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const t = signJws({ typ: 'x' }, { a: 1 }, k);
  it('verifies with the right key and typ only', () => {
    expect(verifyJws(decodeJws(t, 'x'), createPublicKey(k))).toBe(true);
    expect(() => decodeJws(t, 'y')).toThrow(/typ must be "y"/);
    expect(verifyJws(decodeJws(t, 'x'), generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey)).toBe(false);
  });
  it('refuses padding, non-canonical base64url and extra parts', () => {
    expect(() => decodeJws(`${t}=`, 'x')).toThrow(/base64url/);
    expect(() => decodeJws(`${t}.x`, 'x')).toThrow(/three/);
  });
});

describe('scope language', () => {
  const pattern = fc.tuple(fc.stringMatching(/^[a-c:/]{0,6}$/), fc.boolean()).map(([s, star]) => (star ? `${s}*` : s || 'a'));
  const value = fc.stringMatching(/^[a-c:/]{1,8}$/);
  it('covers(outer, inner) is sound: whatever inner matches, outer matches', () => {
    fc.assert(
      fc.property(pattern, pattern, value, (outer, inner, v) => {
        if (patternCovers(outer, inner) && patternMatches(inner, v)) expect(patternMatches(outer, v)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
  it('attenuation: narrowing passes; widening, dropping a boundary or an escalation rule fails', () => {
    const parent = {
      scope: parsePermissions([{ action: 'repo:*', resource: 'repo://acme/*' }], 's'),
      boundaries: [{ action: '*', resource: 'repo://acme/secrets*' }],
      escalate: [],
    };
    expect(() => checkAttenuation(parent, { ...parent, scope: [{ action: 'repo:read', resource: 'repo://acme/w' }] }, 1)).not.toThrow();
    expect(() => checkAttenuation(parent, { ...parent, scope: [{ action: 'repo:*', resource: 'repo://*' }] }, 1)).toThrow(/widens/);
    expect(() => checkAttenuation(parent, { ...parent, boundaries: [] }, 1)).toThrow(/drops the boundary/);
    expect(() => checkAttenuation(parent, { ...parent, boundaries: [{ action: '*', resource: 'repo://acme/*' }] }, 1)).not.toThrow(); // a wider boundary is fine
    expect(() => checkAttenuation({ ...parent, escalate: [{ action: 'repo:delete', resource: '*' }] }, parent, 1)).toThrow(/escalation rule/);
  });
  it.each([['*x'], ['a b'], [''], ['A:read']])('refuses the action pattern %j', (a) => {
    expect(() => parsePermissions([{ action: a, resource: 'r' }], 'scope')).toThrow(/not a valid pattern/);
  });
  it('authorize needs concrete values', () => {
    expect(() => authorizeAction({ scope: [], boundaries: [], escalate: [] }, 'repo:*', 'x')).toThrow(/concrete/);
  });
});
