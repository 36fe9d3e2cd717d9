/**
 * Proof of possession (src/writ/proof.ts), rule by rule: every check is shown refusing the
 * attack it exists for, next to the boundary value it must still accept, so that deleting or
 * loosening any one of them fails a test (`make mutate`, docs/testing.md). Proofs are signed
 * with real keys through the same JWS code the agent uses; the writ comes from the test issuer.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keySigner, publicJwk, sha256b64url, signJws } from '../../src/jose/jws.js';
import {
  DEFAULT_PROOF_LIFETIME_S,
  MAX_PROOF_BYTES,
  MAX_PROOF_LIFETIME_S,
  PROOF_SKEW_S,
  PROOF_TYP,
  MAX_PROOFS_PER_KEY,
  ProofReplayCache,
  type ReplayCache,
  createProof,
  createProofWith,
  verifyProof,
  type ProofCheck,
} from '../../src/writ/proof.js';
import { FakeIssuer, agent, type Agent } from '../helpers/writ-fixture.js';

const NOW = 1_790_000_000;
const at = (s: number) => new Date(s * 1000);
const AUD = 'spiffe://example.org/tool/github';
const METHOD = 'GET /repos';

function world(): { holder: Agent; writ: string } {
  const iss = new FakeIssuer();
  const holder = agent('holder');
  const root = iss.rootGrant(holder, { now: NOW - 100 });
  return { holder, writ: iss.writ(holder, [root], { now: NOW - 10 }).writ };
}

const jti = () => randomBytes(16).toString('base64url');

/** A proof with exactly these claims (defaults: valid for `writ` now), signed by `key` with its jwk header. */
function proofWith(writ: string, key: KeyObject, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): string {
  const base = { aud: AUD, htm: METHOD, iat: NOW, exp: NOW + 60, jti: jti(), wth: sha256b64url(writ) };
  return signJws({ typ: PROOF_TYP, jwk: publicJwk(createPublicKey(key)), ...header }, { ...base, ...claims }, key);
}

type Check = ProofCheck & { readonly cache: ReplayCache };

function check(writ: string, holder: Agent, over: Partial<Check> = {}): Check {
  return { writCompact: writ, jkt: holder.jkt, audience: AUD, now: at(NOW), cache: new ProofReplayCache(), ...over };
}

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}

describe('proof of possession: who signed it', () => {
  it('refuses a proof whose signature does not verify even when the jwk header holds the cnf key', () => {
    const { holder, writ } = world();
    // The attacker copied the cnf key into the jwk header and signed with a key of their own.
    const thief = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const forged = signJws({ typ: PROOF_TYP, jwk: publicJwk(createPublicKey(holder.key)) }, JSON.parse(b64(proofWith(writ, holder.key), 1)), thief);
    expect(refusal(() => verifyProof(forged, check(writ, holder)))).toMatchObject({ code: 'ERR_PROOF_INVALID', message: 'proof: signature does not verify' });
    // The same claims signed by the holder pass.
    expect(verifyProof(proofWith(writ, holder.key), check(writ, holder)).method).toBe(METHOD);
  });

  it('refuses a proof by another key, whatever its claims say, with the cnf-key message', () => {
    const { holder, writ } = world();
    const other = agent('other');
    expect(refusal(() => verifyProof(proofWith(writ, other.key), check(writ, holder)))).toMatchObject({
      code: 'ERR_PROOF_INVALID',
      message: "proof: signed by a key other than the writ's cnf key",
    });
  });

  it('refuses a proof that names its key by kid or x5c beside the jwk', () => {
    const { holder, writ } = world();
    for (const extra of [{ kid: 'k1' }, { x5c: ['MIIB'] }]) {
      expect(refusal(() => verifyProof(proofWith(writ, holder.key, {}, extra), check(writ, holder))).message).toBe(
        'proof: the proof names its key only in the jwk header',
      );
    }
  });

  it('refuses a writ presented with no proof: never a bearer token', () => {
    const { holder, writ } = world();
    for (const none of ['', undefined as unknown as string, 42 as unknown as string]) {
      expect(refusal(() => verifyProof(none, check(writ, holder)))).toMatchObject({
        code: 'ERR_PROOF_INVALID',
        message: 'proof: a proof of possession is required: writs are never accepted as bearer tokens',
      });
    }
  });

  it(`refuses a proof longer than MAX_PROOF_BYTES (${MAX_PROOF_BYTES}) before parsing it, and takes one at the limit`, () => {
    const { holder, writ } = world();
    // Pad with an extra claim, one character at a time, to the last proof within the limit and the first beyond it.
    const padded = (n: number) => proofWith(writ, holder.key, { htm: 'x', pad: 'p'.repeat(n) });
    let n = Math.floor(((MAX_PROOF_BYTES - padded(0).length) * 3) / 4) - 4;
    while (padded(n + 1).length <= MAX_PROOF_BYTES) n++;
    const atLimit = padded(n);
    const over = padded(n + 1);
    expect(over.length).toBeGreaterThan(MAX_PROOF_BYTES);
    expect(refusal(() => verifyProof(over, check(writ, holder))).message).toBe(`jws: longer than ${MAX_PROOF_BYTES} bytes`);
    expect(atLimit.length).toBeGreaterThan(MAX_PROOF_BYTES - 3);
    // Parsed (so not refused for size): it fails later, on its unknown `pad` claim.
    expect(refusal(() => verifyProof(atLimit, check(writ, holder))).message).toBe('proof: unknown claims pad');
  });

  it('refuses a proof with another typ (a writ or a grant presented as a proof)', () => {
    const { holder, writ } = world();
    const p = proofWith(writ, holder.key, {}, { typ: 'writ+jwt' });
    expect(refusal(() => verifyProof(p, check(writ, holder))).message).toBe('jws: typ must be "writ-pop+jwt"');
  });
});

describe('proof of possession: what it is bound to', () => {
  it('refuses claims it does not know, naming them (at most 60 characters of names)', () => {
    const { holder, writ } = world();
    const long = { [`x${'y'.repeat(70)}`]: 1 };
    expect(refusal(() => verifyProof(proofWith(writ, holder.key, long), check(writ, holder))).message).toBe(`proof: unknown claims x${'y'.repeat(59)}`);
    expect(refusal(() => verifyProof(proofWith(writ, holder.key, { nonce: 'x', scope: 'admin' }), check(writ, holder))).message).toBe(
      'proof: unknown claims nonce, scope',
    );
  });

  it('refuses a proof made for another writ, and checks wth against the writ itself when no hash is given', () => {
    const { holder, writ } = world();
    const other = world().writ;
    const p = () => proofWith(writ, holder.key, { wth: sha256b64url(other) });
    expect(refusal(() => verifyProof(p(), check(writ, holder))).message).toBe('proof: made for another writ (wth does not match)');
    // A caller-supplied hash is what is compared.
    expect(refusal(() => verifyProof(proofWith(writ, holder.key), check(writ, holder, { writHash: sha256b64url(other) }))).message).toMatch(/another writ/);
    expect(verifyProof(proofWith(writ, holder.key), check(writ, holder, { writHash: sha256b64url(writ) })).method).toBe(METHOD);
  });

  it('refuses a proof made for another audience', () => {
    const { holder, writ } = world();
    expect(refusal(() => verifyProof(proofWith(writ, holder.key, { aud: 'spiffe://example.org/tool/other' }), check(writ, holder))).message).toBe(
      'proof: made for another audience',
    );
  });

  it('refuses a proof without a method (absent, empty, not a string, longer than 256), accepts one of 256 characters', () => {
    const { holder, writ } = world();
    for (const htm of [undefined, '', 7, 'm'.repeat(257)]) {
      expect(refusal(() => verifyProof(proofWith(writ, holder.key, { htm }), check(writ, holder))).message).toBe('proof: htm (method) is missing');
    }
    expect(verifyProof(proofWith(writ, holder.key, { htm: 'm'.repeat(256) }), check(writ, holder)).method).toBe('m'.repeat(256));
  });

  it('refuses a proof made for another method when the relying party names one, and takes any method when it does not', () => {
    const { holder, writ } = world();
    const p = proofWith(writ, holder.key, { htm: 'DELETE /repos' });
    expect(refusal(() => verifyProof(p, check(writ, holder, { method: METHOD }))).message).toBe('proof: made for another method');
    expect(verifyProof(p, check(writ, holder)).method).toBe('DELETE /repos');
    expect(verifyProof(proofWith(writ, holder.key), check(writ, holder, { method: METHOD })).method).toBe(METHOD);
  });
});

describe('proof of possession: its time window', () => {
  it('refuses iat or exp that are not integers (strings, fractions; beyond 2^53 the strict JSON parser refuses them first)', () => {
    const { holder, writ } = world();
    for (const bad of [{ iat: String(NOW) }, { exp: String(NOW + 60) }, { iat: NOW + 0.5 }, { exp: NOW + 60.5 }]) {
      expect(refusal(() => verifyProof(proofWith(writ, holder.key, bad), check(writ, holder))).message, JSON.stringify(bad)).toBe(
        'proof: iat and exp must be integers',
      );
    }
  });

  it(`refuses a proof living longer than MAX_PROOF_LIFETIME_S (${MAX_PROOF_LIFETIME_S} s) or not at all, accepts exactly the maximum`, () => {
    const { holder, writ } = world();
    const life = `proof: lifetime must be 1..${MAX_PROOF_LIFETIME_S} seconds`;
    expect(refusal(() => verifyProof(proofWith(writ, holder.key, { exp: NOW + MAX_PROOF_LIFETIME_S + 1 }), check(writ, holder))).message).toBe(life);
    expect(refusal(() => verifyProof(proofWith(writ, holder.key, { exp: NOW }), check(writ, holder))).message).toBe(life);
    expect(refusal(() => verifyProof(proofWith(writ, holder.key, { iat: NOW + 1, exp: NOW }), check(writ, holder))).message).toBe(life);
    expect(verifyProof(proofWith(writ, holder.key, { exp: NOW + MAX_PROOF_LIFETIME_S }), check(writ, holder)).method).toBe(METHOD);
    expect(verifyProof(proofWith(writ, holder.key, { iat: NOW, exp: NOW + 1 }), check(writ, holder)).method).toBe(METHOD);
  });

  it(`refuses a proof issued more than PROOF_SKEW_S (${PROOF_SKEW_S} s) in the future, accepts one at the skew`, () => {
    const { holder, writ } = world();
    const iat = NOW + PROOF_SKEW_S;
    expect(refusal(() => verifyProof(proofWith(writ, holder.key, { iat: iat + 1, exp: iat + 61 }), check(writ, holder))).message).toBe(
      'proof: issued in the future',
    );
    expect(verifyProof(proofWith(writ, holder.key, { iat, exp: iat + 60 }), check(writ, holder)).method).toBe(METHOD);
  });

  it('refuses an expired proof (exp at now), accepts one that expires a second later', () => {
    const { holder, writ } = world();
    expect(refusal(() => verifyProof(proofWith(writ, holder.key, { iat: NOW - 60, exp: NOW }), check(writ, holder))).message).toBe('proof: expired');
    expect(verifyProof(proofWith(writ, holder.key, { iat: NOW - 60, exp: NOW + 1 }), check(writ, holder)).method).toBe(METHOD);
  });
});

describe('proof of possession: its one-time id', () => {
  it('refuses a jti that is too short, too long, not base64url, or has anything around it', () => {
    const { holder, writ } = world();
    const good = 'A'.repeat(22);
    // A list holding a well-formed id reads as that id when turned into a string: refused as not a string.
    for (const bad of [
      ['A'.repeat(22)],
      'A'.repeat(21),
      'A'.repeat(65),
      `${'A'.repeat(21)}+`,
      `${'A'.repeat(21)}=`,
      `!${good}`,
      `${good}!`,
      12345,
      undefined,
    ]) {
      expect(refusal(() => verifyProof(proofWith(writ, holder.key, { jti: bad }), check(writ, holder))).message, String(bad)).toBe(
        'proof: jti must be 22..64 base64url characters (at least 128 random bits)',
      );
    }
    for (const ok of [good, `${'a'.repeat(30)}-_${'9'.repeat(32)}`]) {
      expect(verifyProof(proofWith(writ, holder.key, { jti: ok }), check(writ, holder)).jti).toBe(ok);
    }
  });

  it('refuses a proof presented twice, as replayed and not as invalid', () => {
    const { holder, writ } = world();
    const c = check(writ, holder);
    const p = proofWith(writ, holder.key);
    verifyProof(p, c);
    expect(refusal(() => verifyProof(p, c))).toMatchObject({
      code: 'ERR_PROOF_REPLAYED',
      message: 'proof: this proof was already used (one-time id seen before)',
    });
  });

  it("keeps one agent's ids apart from another's: the same jti from two keys is two proofs", () => {
    const { holder, writ } = world();
    const second = world();
    const cache = new ProofReplayCache();
    const id = jti();
    verifyProof(proofWith(writ, holder.key, { jti: id }), check(writ, holder, { cache }));
    expect(verifyProof(proofWith(second.writ, second.holder.key, { jti: id }), check(second.writ, second.holder, { cache })).jti).toBe(id);
    expect(cache.size).toBe(2);
  });

  it('a full replay cache never forgets an id whose proof can still be presented: it refuses new proofs instead', () => {
    const { holder, writ } = world();
    const cache = new ProofReplayCache(1);
    const first = proofWith(writ, holder.key, { iat: NOW, exp: NOW + 60 });
    verifyProof(first, check(writ, holder, { cache }));
    // Four seconds before the first proof expires it is still live: the cache, full, must keep it.
    const later = at(NOW + 56);
    const fresh = proofWith(writ, holder.key, { iat: NOW + 56, exp: NOW + 116 });
    expect(refusal(() => verifyProof(fresh, check(writ, holder, { cache, now: later })))).toMatchObject({
      code: 'ERR_PROOF_INVALID',
      message: 'proof: replay cache is full; refusing rather than forgetting',
    });
    expect(refusal(() => verifyProof(first, check(writ, holder, { cache, now: later }))).code).toBe('ERR_PROOF_REPLAYED');
    // Past its expiry plus the skew the first id is dropped to make room.
    const past = at(NOW + 60 + PROOF_SKEW_S);
    const fresher = proofWith(writ, holder.key, { iat: NOW + 65, exp: NOW + 125 });
    expect(verifyProof(fresher, check(writ, holder, { cache, now: past })).method).toBe(METHOD);
    expect(cache.size).toBe(1);
  });

  it('a proof that fails any check leaves no id behind', () => {
    const { holder, writ } = world();
    const cache = new ProofReplayCache();
    expect(() => verifyProof(proofWith(writ, holder.key, { aud: 'other' }), check(writ, holder, { cache }))).toThrow();
    expect(() => verifyProof(proofWith(writ, holder.key, { exp: NOW }), check(writ, holder, { cache }))).toThrow();
    expect(cache.size).toBe(0);
  });
});

describe('ProofReplayCache', () => {
  it('accepts an id once, then refuses it', () => {
    const c = new ProofReplayCache();
    expect(c.checkAndRecord('a', 100, 0)).toBe(true);
    expect(c.checkAndRecord('a', 100, 0)).toBe(false);
    expect(c.checkAndRecord('b', 100, 0)).toBe(true);
    expect([...c.entries()]).toEqual([
      ['a', 100, ''],
      ['b', 100, ''],
    ]);
  });

  it('holds at most `max` live ids and refuses a new one rather than forgetting a live one', () => {
    const c = new ProofReplayCache(2);
    c.checkAndRecord('a', 100, 0);
    c.checkAndRecord('b', 100, 0);
    expect(() => c.checkAndRecord('c', 100, 99)).toThrow('proof: replay cache is full; refusing rather than forgetting');
    expect(c.size).toBe(2);
    expect(c.checkAndRecord('a', 100, 99)).toBe(false);
  });

  it('when full, drops the ids that have expired (expiry at or before now), and only those', () => {
    const c = new ProofReplayCache(3);
    c.checkAndRecord('old', 50, 0);
    c.checkAndRecord('edge', 60, 0);
    c.checkAndRecord('live', 61, 0);
    expect(c.checkAndRecord('new', 120, 60)).toBe(true);
    expect([...c.entries()].map(([k]) => k)).toEqual(['live', 'new']);
    // The live one is still remembered.
    expect(c.checkAndRecord('live', 61, 60)).toBe(false);
  });

  it(`holds ${MAX_PROOFS_PER_KEY} live ids per key by default, and another key has its own quota`, () => {
    const c = new ProofReplayCache();
    for (let i = 0; i < MAX_PROOFS_PER_KEY; i++) c.checkAndRecord(`id${i}`, 100, 0, 'k1');
    expect(c.size).toBe(MAX_PROOFS_PER_KEY);
    expect(() => c.checkAndRecord('one-more', 100, 0, 'k1')).toThrow(
      `proof: this key has ${MAX_PROOFS_PER_KEY} live proofs in the replay cache; refusing rather than forgetting`,
    );
    expect(c.checkAndRecord('one-more', 100, 0, 'k2')).toBe(true);
  });
});

describe('createProof and createProofWith', () => {
  it(`make a ${DEFAULT_PROOF_LIFETIME_S} s proof by default, honour a lifetime up to ${MAX_PROOF_LIFETIME_S} s and refuse a longer one`, async () => {
    const { holder, writ } = world();
    const claims = (p: string) => JSON.parse(b64(p, 1)) as Record<string, unknown>;
    const now = at(NOW + 0.9);
    const d = claims(createProof(writ, holder.key, { audience: AUD, method: METHOD, now }));
    expect(d).toMatchObject({ aud: AUD, htm: METHOD, iat: NOW, exp: NOW + DEFAULT_PROOF_LIFETIME_S, wth: sha256b64url(writ) });
    expect(d.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(Object.keys(d).sort()).toEqual(['aud', 'exp', 'htm', 'iat', 'jti', 'wth']);
    expect(claims(createProof(writ, holder.key, { audience: AUD, method: METHOD, now, lifetimeS: 10 })).exp).toBe(NOW + 10);
    expect(claims(createProof(writ, holder.key, { audience: AUD, method: METHOD, now, lifetimeS: MAX_PROOF_LIFETIME_S })).exp).toBe(NOW + MAX_PROOF_LIFETIME_S);
    // A longer one is refused, not cut: the caller asked for something it will not get.
    expect(() => createProof(writ, holder.key, { audience: AUD, method: METHOD, now, lifetimeS: 3600 })).toThrow(
      `proof: a proof lives 1..${MAX_PROOF_LIFETIME_S} seconds; 3600 asked for`,
    );
    await expect(async () => createProofWith(writ, keySigner(holder.key), { audience: AUD, method: METHOD, now, lifetimeS: 3600 })).rejects.toThrow(
      /a proof lives/,
    );
    const w = claims(await createProofWith(writ, keySigner(holder.key), { audience: AUD, method: METHOD, now, lifetimeS: 60 }));
    expect(w).toMatchObject({ aud: AUD, htm: METHOD, iat: NOW, exp: NOW + 60, wth: sha256b64url(writ) });
  });

  it('put the documented typ "writ-pop+jwt" and the public jwk (no private members) in the header, and verify', async () => {
    expect(PROOF_TYP).toBe('writ-pop+jwt');
    const { holder, writ } = world();
    const expected = { typ: PROOF_TYP, jwk: publicJwk(createPublicKey(holder.key)), alg: 'ES256' };
    const p1 = createProof(writ, holder.key, { audience: AUD, method: METHOD, now: at(NOW) });
    const p2 = await createProofWith(writ, keySigner(holder.key), { audience: AUD, method: METHOD, now: at(NOW) });
    for (const p of [p1, p2]) {
      expect(JSON.parse(b64(p, 0))).toEqual(expected);
      expect(verifyProof(p, check(writ, holder)).method).toBe(METHOD);
    }
  });

  it('give every proof a fresh one-time id', () => {
    const { holder, writ } = world();
    const ids = new Set(
      Array.from({ length: 20 }, () => verifyProof(createProof(writ, holder.key, { audience: AUD, method: METHOD, now: at(NOW) }), check(writ, holder)).jti),
    );
    expect(ids.size).toBe(20);
  });
});

function b64(jws: string, part: number): string {
  return Buffer.from(jws.split('.')[part]!, 'base64url').toString('utf8');
}
