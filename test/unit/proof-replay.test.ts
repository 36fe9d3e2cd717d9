/**
 * The one-time id of a proof is recorded only after every other check passed, each cnf key has
 * its own quota in the replay cache, and a verifier without a cache says it made no replay check.
 */
import { describe, expect, it } from 'vitest';
import { ProofReplayCache, createProof } from '../../src/writ/proof.js';
import { verifyWrit, type VerifyWritOptions } from '../../src/writ/verify.js';
import { FakeIssuer, agent } from '../helpers/writ-fixture.js';

const NOW = 1_790_000_000;
const at = new Date(NOW * 1000);
const AUD = 'rp';
const iss = new FakeIssuer();
const A = agent('a');
const B = agent('b');

const writFor = (who: typeof A, o: { now: number; ttl?: number }) => iss.writ(who, [iss.rootGrant(who, { now: o.now - 5 })], o).writ;
const opts = (writ: string, key: typeof A.key, now: Date, cache: ProofReplayCache): VerifyWritOptions => ({
  writ,
  proof: createProof(writ, key, { audience: AUD, method: 'GET /x', now: new Date(Math.min(now.getTime(), at.getTime())) }),
  trust: iss.trust,
  audience: AUD,
  now,
  replayCache: cache,
});

describe('proof one-time ids', () => {
  it('a proof refused for another reason is not used up: the same proof passes once the writ is acceptable', () => {
    const writ = writFor(A, { now: NOW });
    const cache = new ProofReplayCache();
    const o = opts(writ, A.key, at, cache);
    // A relying party whose clock is behind sees the writ as issued in the future…
    expect(() => verifyWrit({ ...o, now: new Date((NOW - 60) * 1000) })).toThrow(/issued in the future/);
    expect(cache.size).toBe(0);
    // …and, with its clock right, accepts the very same presentation.
    expect(verifyWrit(o).jti).toBeDefined();
    expect(() => verifyWrit(o)).toThrow(expect.objectContaining({ code: 'ERR_PROOF_REPLAYED' }));
  });

  // Every check after the proof's own is a reason the same proof may pass later (the source
  // catches up, the relying party fixes its configuration): none of them may use the id up.
  const revokedNow = { check: () => ({ revoked: true, reason: 'grant revoked by operator', source: 'test source' }) };
  const notYetSynced = {
    check: () => {
      throw new Error('not synced yet');
    },
  };
  const cleanSource = { check: () => ({ revoked: false, source: 'test source' }) };
  it.each([
    ['a revocation source that says revoked', { revocation: revokedNow }, /revoked/],
    ['a revocation source that cannot answer yet', { revocation: notYetSynced }, /revocation status unknown/],
    ['a relying-party requirement the writ does not meet', { requirements: { selectors: ['tpm:ek_hash:00'] } }, /required selector/],
    [
      'a deep verification without the evidence it needs',
      { level: 'deep' as const, reverifiers: new Map([['join_token', { reverify: () => ({ selectors: [], checked: [], takenFromIssuer: [] }) }]]) },
      /deep verification needs the join_token evidence/,
    ],
  ])('a proof refused by %s is not used up', (_name, late, message) => {
    const writ = writFor(A, { now: NOW });
    const cache = new ProofReplayCache();
    const o = opts(writ, A.key, at, cache);
    expect(() => verifyWrit({ ...o, ...late } as VerifyWritOptions)).toThrow(message);
    expect(cache.size).toBe(0);
    expect(verifyWrit({ ...o, revocation: cleanSource }).jti).toBeDefined();
    expect(cache.size).toBe(1);
  });

  it('a flood of proofs for expired writs does not fill the cache and lock out a valid writ', () => {
    const cache = new ProofReplayCache(1000);
    const expired = writFor(A, { now: NOW - 7200, ttl: 60 });
    for (let i = 0; i < 1000; i++) {
      const o = { ...opts(expired, A.key, at, cache), proof: createProof(expired, A.key, { audience: AUD, method: 'GET /x', now: at }) };
      expect(() => verifyWrit(o)).toThrow(/expired/);
    }
    expect(cache.size).toBe(0);
    expect(verifyWrit(opts(writFor(B, { now: NOW }), B.key, at, cache)).spiffeId).toBe(B.spiffeId);
  });

  it("each cnf key has its own quota: one key's flood of live proofs does not refuse another key", () => {
    const cache = new ProofReplayCache(1000, 10);
    const wa = writFor(A, { now: NOW });
    for (let i = 0; i < 10; i++) verifyWrit(opts(wa, A.key, at, cache));
    expect(() => verifyWrit(opts(wa, A.key, at, cache))).toThrow(/this key has 10 live proofs/);
    expect(verifyWrit(opts(writFor(B, { now: NOW }), B.key, at, cache)).spiffeId).toBe(B.spiffeId);
    // Once A's proofs expire, A has room again.
    const later = new Date(at.getTime() + 400_000);
    const fresh = writFor(A, { now: NOW + 400, ttl: 600 });
    expect(
      verifyWrit({ ...opts(fresh, A.key, later, cache), proof: createProof(fresh, A.key, { audience: AUD, method: 'GET /x', now: later }) }).spiffeId,
    ).toBe(A.spiffeId);
  });

  it('without a replay cache, the report says the replay check was not made (never "recorded")', () => {
    const writ = writFor(A, { now: NOW });
    const { replayCache: _none, ...o } = opts(writ, A.key, at, new ProofReplayCache());
    const v = verifyWrit(o);
    expect(v.checks).toContainEqual({ check: 'proof one-time id: no replay cache was given (a replayed proof would be accepted)', by: 'unchecked' });
    expect(v.checks.some((c) => /recorded/.test(c.check) && c.by !== 'unchecked')).toBe(false);
    // With one, it is recorded and says so.
    expect(verifyWrit(opts(writ, A.key, at, new ProofReplayCache())).checks).toContainEqual({
      check: 'proof one-time id recorded (not seen before)',
      by: 'verifier',
    });
  });

  it('without a revocation source, the report says revocation was not checked', () => {
    const v = verifyWrit(opts(writFor(A, { now: NOW }), A.key, at, new ProofReplayCache()));
    expect(v.checks).toContainEqual({ check: 'revocation: no revocation source was given (a watch stream or a status list)', by: 'unchecked' });
  });
});
