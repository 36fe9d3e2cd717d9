/** The one bounded cache, and cached parse results that no caller can change under later readers. */
import { describe, expect, it } from 'vitest';
import { BoundedCache, deepFreeze } from '../../src/cache/bounded.js';
import { parseGrantCached } from '../../src/delegation/grant.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { authorize, verifyWrit } from '../../src/writ/verify.js';
import { parseWritCached } from '../../src/writ/writ.js';
import { FakeIssuer, agent } from '../helpers/writ-fixture.js';

describe('BoundedCache', () => {
  it('holds at most max entries and drops the least recently used first', () => {
    const c = new BoundedCache<string, number>(2);
    c.set('a', 1);
    c.set('b', 2);
    expect(c.get('a')).toBe(1); // a is now the most recent
    c.set('c', 3);
    expect(c.size).toBe(2);
    expect(c.has('b')).toBe(false);
    expect(c.get('a')).toBe(1);
    expect(c.get('c')).toBe(3);
  });
  it('peek does not refresh recency; set of a present key does not evict', () => {
    const c = new BoundedCache<string, number>(2);
    c.set('a', 1);
    c.set('b', 2);
    expect(c.peek('a')).toBe(1);
    c.set('b', 20);
    c.set('c', 3);
    expect([c.has('a'), c.get('b'), c.get('c')]).toEqual([false, 20, 3]);
  });
  it('getOrSet makes a value once', () => {
    const c = new BoundedCache<string, object>(4);
    let made = 0;
    const make = () => ({ n: ++made });
    expect(c.getOrSet('k', make)).toBe(c.getOrSet('k', make));
    expect(made).toBe(1);
  });
  it('refuses a size that bounds nothing', () => {
    expect(() => new BoundedCache(0)).toThrow(/positive integer/);
    expect(() => new BoundedCache(Number.POSITIVE_INFINITY)).toThrow(/positive integer/);
  });
});

describe('deepFreeze', () => {
  it('freezes plain objects and arrays all the way down, leaving buffers alone', () => {
    const buf = Buffer.from([1, 2]);
    const o = deepFreeze({ a: [{ b: 1 }], buf });
    expect(Object.isFrozen(o) && Object.isFrozen(o.a) && Object.isFrozen(o.a[0])).toBe(true);
    buf[0] = 9; // typed arrays cannot be frozen; writ never mutates them
    expect(o.buf[0]).toBe(9);
  });
});

describe('cached parse results are immutable to callers', () => {
  const iss = new FakeIssuer();
  const A = agent('a');
  const now = Math.floor(Date.now() / 1000);
  const root = iss.rootGrant(A, { now: now - 10, scope: [{ action: 'repo:read', resource: 'repo://acme/*' }], escalate: [], boundaries: [] });
  const { writ } = iss.writ(A, [root], { now: now - 5 });
  const base = { writ, trust: iss.trust, audience: 'rp', method: 'GET /x', replayCache: new ProofReplayCache() };
  const proof = () => createProof(writ, A.key, { audience: 'rp', method: 'GET /x', now: new Date() });

  it('a relying party that edits a verification result cannot widen what a later verification of the same writ allows', () => {
    const v = verifyWrit({ ...base, proof: proof(), now: new Date() });
    expect(authorize(v, 'repo:delete', 'repo://acme/widgets').decision).toBe('deny');
    // The attack: make the cached scope allow everything.
    expect(() => (v.constraints.scope as Array<{ action: string; resource: string }>).push({ action: '*', resource: '*' })).toThrow(TypeError);
    expect(() => {
      (v.claims.task as { exp: number }).exp = now + 86_400;
    }).toThrow(TypeError);
    const again = verifyWrit({ ...base, proof: proof(), now: new Date() });
    expect(again.constraints.scope).toEqual([{ action: 'repo:read', resource: 'repo://acme/*' }]);
    expect(authorize(again, 'repo:delete', 'repo://acme/widgets').decision).toBe('deny');
  });

  it('parsed writs and grants from the caches are frozen', () => {
    expect(Object.isFrozen(parseWritCached(writ).claims.att)).toBe(true);
    expect(Object.isFrozen(parseGrantCached(root).claims.scope)).toBe(true);
  });
});
