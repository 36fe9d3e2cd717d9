/**
 * The writ's structure (src/writ/writ.ts, docs/writ-format.md §The writ): the strict parser every
 * verifier runs before any signature, claim by claim, with the documented messages (`make mutate`,
 * docs/testing.md). Writs are signed for real; the parser must refuse what a verifier must never read.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keySigner } from '../../src/jose/jws.js';
import { publicJwk, sha256b64url, signJws } from '../../src/jose/jws.js';
import { WRIT_TYP, parseWrit, parseWritCached, signWrit, type WritClaims } from '../../src/writ/writ.js';
import { FakeIssuer, agent } from '../helpers/writ-fixture.js';

const NOW = 1_790_000_000;
const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

function base(): WritClaims {
  const iss = new FakeIssuer();
  const a = agent('a');
  return iss.writ(a, [iss.rootGrant(a, { now: NOW - 100 })], { now: NOW - 10 }).claims;
}

/** A writ with these claims (over the valid ones; `undefined` deletes a claim) and header members. */
function writWith(over: Record<string, unknown> = {}, header: Record<string, unknown> = { kid: 'k1' }, from: WritClaims = base()): string {
  const c: Record<string, unknown> = { ...from, ...over };
  for (const [k, v] of Object.entries(over)) if (v === undefined) delete c[k];
  return signJws({ typ: WRIT_TYP, ...header }, c, key);
}

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}
const bad = (over: Record<string, unknown>, header?: Record<string, unknown>) => refusal(() => parseWrit(writWith(over, header)));
const writErr = (message: string) => ({ code: 'ERR_WRIT_INVALID', message });
const b43 = 'A'.repeat(43);

describe('writ parsing: the header', () => {
  it('accepts a writ with a kid and no key material, and hashes the exact compact form', () => {
    const w = writWith();
    const p = parseWrit(w);
    expect(p.hash).toBe(sha256b64url(w));
    expect(p.jws.header).toEqual({ typ: WRIT_TYP, kid: 'k1', alg: 'ES256' });
  });

  it('refuses a writ without a kid (absent, empty, not a string)', () => {
    for (const h of [{}, { kid: '' }, { kid: 7 }]) expect(bad({}, h)).toMatchObject(writErr('writ: the header has no kid'));
  });

  it.each([['jwk'], ['x5c'], ['jku'], ['x5u']])('refuses a writ whose header carries %s: the key comes from the trust bundle only', (m) => {
    const value = m === 'jwk' ? publicJwk(key) : m === 'x5c' ? ['MIIB'] : 'https://evil.example/keys';
    expect(bad({}, { kid: 'k1', [m]: value })).toMatchObject(
      writErr('writ: the header may not carry keys or key locations: the issuer key comes from the trust bundle'),
    );
  });

  it('refuses another document type presented as a writ', () => {
    expect(refusal(() => parseWrit(signJws({ typ: 'writ-grant+jwt', kid: 'k' }, { ...base() }, key))).message).toBe('jws: typ must be "writ+jwt"');
  });
});

describe('writ parsing: att.renewed', () => {
  const withRenewed = (renewed: unknown) => writWith({ att: { ...base().att, renewed } });
  it('accepts a well-formed att.renewed and absent one', () => {
    expect(parseWrit(withRenewed({ via: 'x509_svid', serial: '0a1b2c' })).claims.att.renewed).toEqual({ via: 'x509_svid', serial: '0a1b2c' });
    expect(parseWrit(writWith()).claims.att.renewed).toBeUndefined();
  });
  it.each<[string, unknown, string]>([
    ['not an object', 'x509_svid', 'writ: att.renewed must be an object'],
    ['another via', { via: 'tpm', serial: '0a' }, 'writ: att.renewed.via must be "x509_svid"'],
    ['no serial', { via: 'x509_svid' }, 'writ: att.renewed.serial must be a non-empty string of at most 40 bytes'],
    ['an upper-case serial', { via: 'x509_svid', serial: '0A' }, 'writ: att.renewed.serial must be lower-case hex'],
    ['a serial over 20 bytes', { via: 'x509_svid', serial: 'a'.repeat(41) }, 'writ: att.renewed.serial must be a non-empty string of at most 40 bytes'],
    ['another member', { via: 'x509_svid', serial: '0a', at: 1 }, 'writ: att.renewed has unknown members at'],
  ])('refuses att.renewed that is %s', (_n, renewed, message) => {
    expect(refusal(() => parseWrit(withRenewed(renewed)))).toMatchObject(writErr(message));
  });
});

describe('writ parsing: the claims', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['an unknown claim', { scope: 'admin' }, 'writ: claims has unknown members scope'],
    ['an issuer that is not a string', { iss: 5 }, 'writ: iss must be a non-empty string of at most 2048 bytes'],
    ['an empty subject', { sub: '' }, 'writ: sub must be a non-empty string of at most 2048 bytes'],
    ['more than 16 audiences', { aud: Array.from({ length: 17 }, (_, i) => `a${i}`) }, 'writ: aud must be an array of at most 16 non-empty strings'],
    ['a jti over 64 characters', { jti: 'j'.repeat(65) }, 'writ: jti must be a non-empty string of at most 64 bytes'],
    ['a jti that is not base64url', { jti: 'ab+cd' }, 'writ: jti is malformed'],
    ['a jti with a character before', { jti: '!abcd' }, 'writ: jti is malformed'],
    ['a jti with a character after', { jti: 'abcd!' }, 'writ: jti is malformed'],
    ['a negative iat', { iat: -1 }, 'writ: iat must be a non-negative integer'],
    ['a fractional exp', { exp: NOW + 0.5 }, 'writ: exp must be a non-negative integer'],
    ['cnf that is not an object', { cnf: 'jkt' }, 'writ: cnf must be an object'],
    ['cnf with another member', { cnf: { jkt: agent('x').jkt, x5t: 'y' } }, 'writ: cnf has unknown members x5t'],
    [
      'a cnf thumbprint that is not canonical',
      { cnf: { jkt: `${agent('y').jkt.slice(0, 42)}B` } },
      'writ: cnf.jkt must be an RFC 7638 thumbprint (43 canonical base64url characters)',
    ],
    ['svid with another member', { svid: { 'x5t#S256': b43, x5t: 'y' } }, 'writ: svid has unknown members x5t'],
    ['an SVID thumbprint of 44 characters', { svid: { 'x5t#S256': `${b43}A` } }, 'writ: svid.x5t#S256 must be a non-empty string of at most 43 bytes'],
    ['an SVID thumbprint of 42 characters', { svid: { 'x5t#S256': b43.slice(1) } }, 'writ: svid.x5t#S256 is malformed'],
    ['an act with another member', { act: { sub: 'alice', iss: 'https://idp.example.com', scope: 'x' } }, 'writ: act has unknown members scope'],
    ['an act without a subject', { act: { iss: 'https://idp.example.com' } }, 'writ: act.sub must be a non-empty string of at most 2048 bytes'],
    ['an act issuer that is not a string', { act: { sub: 'alice', iss: 1 } }, 'writ: act.iss must be a non-empty string of at most 2048 bytes'],
    ['more than 9 grants', { grants: Array(10).fill('g'), lineage: Array(10).fill('l') }, 'writ: grants must be an array of at most 9 non-empty strings'],
    ['more than 9 lineage ids', { lineage: Array(10).fill('l') }, 'writ: lineage must be an array of at most 9 non-empty strings'],
    ['no grants', { grants: [], lineage: [] }, 'writ: grants and lineage must be non-empty and of equal length'],
    ['a lineage longer than the grants', { lineage: ['a', 'b'] }, 'writ: grants and lineage must be non-empty and of equal length'],
    ['exp at iat', { iat: NOW, exp: NOW }, 'writ: exp must be after iat'],
    ['a principal with another member', { principal: { iss: 'i', sub: 's', email: 'e' } }, 'writ: delegation: principal has unknown members email'],
    [
      'a task id with a look-alike character',
      { task: { id: 'tаsk-1', goal: 'g', exp: NOW + 3600 } },
      'writ: delegation: task.id must be 1..128 ASCII letters, digits or . _ : - (starting with a letter or digit)',
    ],
    ['pol with another member', { pol: { snap: 'a'.repeat(64), decision: 'allow', policies: [], iat: 1, note: 'x' } }, 'writ: pol has unknown members note'],
    [
      'a policy digest that is not hex',
      { pol: { snap: 'z'.repeat(64), decision: 'allow', policies: [], iat: 1 } },
      'writ: delegation: pol.snap must be a hex SHA-256',
    ],
    [
      'a policy time that is not an integer',
      { pol: { snap: 'a'.repeat(64), decision: 'allow', policies: [], iat: '1' } },
      'writ: pol.iat must be a non-negative integer',
    ],
  ])('refuses %s', (_n, over, message) => {
    expect(bad(over)).toMatchObject(writErr(message));
  });

  it('reports a delegation-level refusal (principal, task, policy) as an invalid writ, with the original error as its cause', () => {
    const e = bad({ task: { id: '.x', goal: 'g', exp: NOW + 3600 } }) as { cause?: { code?: string; message?: string } };
    expect(e.cause).toMatchObject({
      code: 'ERR_GRANT_INVALID',
      message: 'delegation: task.id must be 1..128 ASCII letters, digits or . _ : - (starting with a letter or digit)',
    });
  });

  it.each<[string, keyof WritClaims['att'], unknown, string]>([
    ['att with another member', 'type' as never, undefined, 'writ: att has unknown members extra'],
    ['an evidence type over 64 bytes', 'type', 't'.repeat(65), 'writ: att.type must be a non-empty string of at most 64 bytes'],
    ['more than 256 selectors', 'sel', Array(257).fill('s:v'), 'writ: att.sel must be an array of at most 256 non-empty strings'],
    ['a binding digest of 42 characters', 'bind', b43.slice(1), 'writ: att.bind is malformed'],
    ['a binding digest of 44 characters', 'bind', `${b43}A`, 'writ: att.bind must be a non-empty string of at most 43 bytes'],
    ['a nonce of 42 characters', 'nonce', b43.slice(1), 'writ: att.nonce is malformed'],
    ['an evidence digest of 42 characters', 'ev_sha256', b43.slice(1), 'writ: att.ev_sha256 is malformed'],
    ['embedded evidence that is not base64url', 'ev', 'ab==', 'writ: att.ev is malformed'],
  ])('refuses %s', (_n, member, value, message) => {
    const att = { ...base().att, ...(value === undefined ? { extra: 1 } : { [member]: value }) };
    expect(bad({ att })).toMatchObject(writErr(message));
  });

  it('accepts the limits themselves: 16 audiences, a 64-character jti, 9 grants, 256 selectors; evidence up to what fits in a JWS', () => {
    const c = base();
    const w = parseWrit(
      writWith({
        aud: Array.from({ length: 16 }, (_, i) => `a${i}`),
        jti: 'j'.repeat(64),
        att: { ...c.att, sel: Array(256).fill('s:v'), ev: 'e'.repeat(40_000) },
      }),
    );
    expect(w.claims.aud).toHaveLength(16);
    expect(w.claims.att.ev).toHaveLength(40_000);
    // att.ev may hold 64 KiB, but a writ is at most MAX_JWS_BYTES (64 KiB) of base64url: the JWS limit refuses first.
    expect(refusal(() => parseWrit(writWith({ att: { ...c.att, ev: 'e'.repeat(64 * 1024) } }))).message).toBe('jws: longer than 65536 bytes');
    const nine = parseWrit(writWith({ grants: Array(9).fill('g'), lineage: Array(9).fill('l') }));
    expect(nine.claims.grants).toHaveLength(9);
  });

  it('keeps aud and ev absent when they are absent, and freezes the grants', () => {
    const c = base();
    const w = parseWrit(writWith({ aud: undefined, att: { ...c.att, ev: undefined } }, { kid: 'k1' }, c));
    expect('aud' in w.claims).toBe(false);
    expect('ev' in w.claims.att).toBe(false);
    expect(Object.isFrozen(w.claims.grants)).toBe(true);
    expect(w.claims).toEqual({ ...c, att: { ...c.att } });
  });

  it('parses an act chain of a root, 9 hops and the principal (11 levels), and refuses one level more', () => {
    const nest = (n: number) => {
      let a: Record<string, unknown> = { sub: 'alice', iss: 'https://idp.example.com' };
      for (let i = 1; i < n; i++) a = { sub: `spiffe://example.org/agent/${i}`, act: a };
      return a;
    };
    expect(parseWrit(writWith({ act: nest(11) })).claims.act.sub).toBe('spiffe://example.org/agent/10');
    expect(bad({ act: nest(12) })).toMatchObject(writErr('writ: act is nested too deeply'));
    const parsed = parseWrit(writWith({ act: nest(3) })).claims.act;
    expect(parsed).toEqual({
      sub: 'spiffe://example.org/agent/2',
      act: { sub: 'spiffe://example.org/agent/1', act: { sub: 'alice', iss: 'https://idp.example.com' } },
    });
  });
});

describe('writ signing and the parse cache', () => {
  it('signWrit names the kid and the documented writ typ "writ+jwt", and the claims come back as signed', async () => {
    expect(WRIT_TYP).toBe('writ+jwt');
    const c = base();
    const w = await signWrit(c, keySigner(key), 'kid-7');
    const p = parseWrit(w);
    expect(p.jws.header).toEqual({ typ: WRIT_TYP, kid: 'kid-7', alg: 'ES256' });
    expect(p.claims).toEqual(c);
  });

  it('parseWritCached returns the parse of the exact bytes, and refuses what parseWrit refuses', () => {
    const w = writWith();
    expect(parseWritCached(w)).toBe(parseWritCached(w));
    expect(parseWritCached(w).claims).toEqual(parseWrit(w).claims);
    expect(refusal(() => parseWritCached(writWith({ iat: NOW, exp: NOW })))).toMatchObject(writErr('writ: exp must be after iat'));
  });
});
