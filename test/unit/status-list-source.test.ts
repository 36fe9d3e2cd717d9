/**
 * The relying party's status list source with a fake fetcher and an injected clock: caching for
 * min(ttl, maxAge), failing closed (no status claim, never fetched, too old, expired, index
 * outside, an unknown status), a held copy kept through a failed refresh until maxAge, replayed
 * older tokens ignored, concurrent prepares sharing one fetch, and verifyWrit's report.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keySigner } from '../../src/jose/jws.js';
import { RevocationError, isWritError } from '../../src/errors.js';
import { StatusList, signStatusListToken } from '../../src/revocation/status-list.js';
import { StatusListSource } from '../../src/revocation/status-list-source.js';
import { createProof } from '../../src/writ/proof.js';
import { verifyWrit } from '../../src/writ/verify.js';
import { parseWrit } from '../../src/writ/writ.js';
import { FakeIssuer, agent } from '../helpers/writ-fixture.js';
import { expectWritErrorSync } from './status-list-helpers.js';

const URI = 'https://issuer.example/status/1';
const T0 = Date.parse('2026-12-01T12:00:00Z');
const S0 = T0 / 1000;

function setup(o: { idx?: number; uri?: string | null; maxAgeMs?: number } = {}) {
  const issuer = new FakeIssuer();
  const a = agent('reader');
  const grant = issuer.rootGrant(a, { now: S0 - 60 });
  const status = o.uri === null ? {} : { status: { status_list: { idx: o.idx ?? 5, uri: o.uri ?? URI } } };
  const { writ } = issuer.writ(a, [grant], { now: S0 - 30, override: status });
  let t = T0;
  const list = StatusList.empty(64);
  const served: { token?: string; error?: Error; calls: number } = { calls: 0 };
  const sign = (c: { iat?: number; exp?: number; ttl?: number; sub?: string; list?: StatusList } = {}) => {
    const iat = c.iat ?? Math.floor(t / 1000);
    return signStatusListToken({ sub: c.sub ?? URI, iat, exp: c.exp ?? iat + 3600, ttl: c.ttl ?? 60, list: c.list ?? list }, keySigner(issuer.key), issuer.kid);
  };
  const source = new StatusListSource({
    writKeys: issuer.trust.writKeys,
    now: () => new Date(t),
    ...(o.maxAgeMs !== undefined ? { maxAgeMs: o.maxAgeMs } : {}),
    fetch: async (uri) => {
      served.calls++;
      expect(uri).toBe(o.uri ?? URI);
      if (served.error) throw served.error;
      return served.token ?? (await sign());
    },
  });
  const parsed = parseWrit(writ);
  const check = () => source.check({ claims: parsed.claims, grants: [] }, new Date(t));
  return {
    issuer,
    a,
    writ,
    list,
    source,
    served,
    sign,
    check,
    advance: (ms: number) => {
      t += ms;
    },
    now: () => new Date(t),
  };
}

describe('status list source', () => {
  it('answers from the list after prepare, and names the list and its iat as its freshness', async () => {
    const s = setup();
    await s.source.prepare(s.writ);
    expect(s.check()).toEqual({ revoked: false, source: `status list ${URI} issued 2026-12-01T12:00:00.000Z (ttl 60 s)` });
    s.list.set(5, 1);
    s.served.token = await s.sign();
    s.advance(61_000);
    await s.source.prepare(s.writ);
    expect(s.check()).toMatchObject({ revoked: true, reason: 'status list entry 5 is INVALID' });
    s.list.set(5, 0);
    const two = StatusList.empty(32, 2);
    two.set(5, 2);
    s.served.token = await s.sign({ list: two });
    s.advance(61_000);
    await s.source.prepare(s.writ);
    expect(s.check()).toMatchObject({ revoked: true, reason: 'status list entry 5 is SUSPENDED' });
    two.set(5, 3);
    s.served.token = await s.sign({ list: two });
    s.advance(61_000);
    await s.source.prepare(s.writ);
    expectWritErrorSync(() => s.check(), 'ERR_STATUS_LIST_INVALID', /entry 5 of .* has status 3, which this relying party does not know/);
  });

  it('caches by URI for min(ttl, maxAge) and shares one fetch between concurrent prepares', async () => {
    const s = setup({ maxAgeMs: 30_000 });
    await Promise.all([s.source.prepare(s.writ), s.source.prepare(s.writ), s.source.prepare(s.writ)]);
    expect(s.served.calls).toBe(1);
    s.advance(29_000);
    await s.source.prepare(s.writ);
    expect(s.served.calls).toBe(1);
    s.advance(1_000); // maxAge (30 s) is shorter than ttl (60 s): due now
    await s.source.prepare(s.writ);
    expect(s.served.calls).toBe(2);
  });

  it('fails closed: no status claim, never fetched, older than maxAge, expired, index outside the list', async () => {
    const none = setup({ uri: null });
    await none.source.prepare(none.writ);
    expect(none.served.calls).toBe(0);
    expectWritErrorSync(() => none.check(), 'ERR_STATUS_LIST_INVALID', /names no status list/);

    const s = setup({ maxAgeMs: 120_000 });
    // Cannot answer (no usable list): unavailable, which an HTTP relying party answers with 503.
    expectWritErrorSync(() => s.check(), 'ERR_REVOCATION_UNAVAILABLE', /was never fetched/);
    await s.source.prepare(s.writ);
    s.advance(121_000);
    expectWritErrorSync(() => s.check(), 'ERR_REVOCATION_UNAVAILABLE', /is 121 s old; at most 120 s accepted/);

    const e = setup();
    e.served.token = await e.sign({ exp: S0 + 10 });
    await e.source.prepare(e.writ);
    e.advance(20_000);
    expectWritErrorSync(() => e.check(), 'ERR_REVOCATION_UNAVAILABLE', /has expired/);

    const far = setup({ idx: 64 });
    await far.source.prepare(far.writ);
    expectWritErrorSync(() => far.check(), 'ERR_STATUS_LIST_INVALID', /index 64 is outside the list \(64 entries\)/);
  });

  it('refuses a list for another sub, signed by another key, or tampered with; a failed first fetch is said by check', async () => {
    const s = setup();
    s.served.token = await s.sign({ sub: 'https://issuer.example/status/2' });
    await expect(s.source.prepare(s.writ)).rejects.toThrow(/made for https:\/\/issuer.example\/status\/2, not https:\/\/issuer.example\/status\/1/);
    expectWritErrorSync(() => s.check(), 'ERR_REVOCATION_UNAVAILABLE', /never fetched \(status list: made for/);

    const k = setup();
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    k.served.token = await signStatusListToken({ sub: URI, iat: S0, exp: S0 + 600, ttl: 60, list: k.list }, keySigner(other), k.issuer.kid);
    await expect(k.source.prepare(k.writ)).rejects.toThrow(/signature does not verify/);

    const t = setup();
    const good = await t.sign();
    const [h, p, sig] = good.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
    payload.ttl = 86400;
    t.served.token = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${sig}`;
    await expect(t.source.prepare(t.writ)).rejects.toThrow(/signature does not verify/);
  });

  it('keeps a held list through failed refreshes until maxAge, then says why it is refused', async () => {
    const s = setup({ maxAgeMs: 180_000 });
    await s.source.prepare(s.writ);
    s.served.error = new RevocationError('ERR_STATUS_LIST_INVALID', 'status list: GET https://issuer.example/status/1: HTTP 503');
    s.advance(90_000);
    await s.source.prepare(s.writ); // no throw: the held copy is 90 s old
    expect(s.served.calls).toBe(2);
    expect(s.check().revoked).toBe(false);
    s.advance(91_000);
    await expect(s.source.prepare(s.writ)).rejects.toThrow(/HTTP 503/);
    expectWritErrorSync(
      () => s.check(),
      'ERR_REVOCATION_UNAVAILABLE',
      /181 s old; at most 180 s accepted \(the last refresh failed: status list: GET .*HTTP 503\)/,
    );
  });

  it('a replayed older token does not replace a newer one (it cannot undo a revocation)', async () => {
    const s = setup();
    const old = await s.sign();
    s.advance(61_000);
    s.list.set(5, 1);
    await s.source.prepare(s.writ);
    expect(s.check().revoked).toBe(true);
    s.served.token = old;
    s.advance(61_000);
    await s.source.prepare(s.writ);
    expect(s.check().revoked).toBe(true);
  });

  it('fetches nothing for a writ that is not signed by a writ key (its URI is not the issuer’s)', async () => {
    const s = setup();
    const forger = new FakeIssuer();
    const { writ } = forger.writ(s.a, [forger.rootGrant(s.a, { now: S0 - 60 })], {
      now: S0 - 30,
      override: { status: { status_list: { idx: 1, uri: 'https://169.254.169.254/latest' } } },
    });
    await s.source.prepare(writ);
    await s.source.prepare('not a writ');
    expect(s.served.calls).toBe(0);
  });

  it('loads a saved token, and verifyWrit reports the check with the list as its source, or refuses the revoked writ', async () => {
    const s = setup();
    s.source.load(await s.sign());
    const proof = () => createProof(s.writ, s.a.key, { audience: 'rp', method: 'GET /x', now: s.now() });
    const v = verifyWrit({ writ: s.writ, proof: proof(), trust: s.issuer.trust, audience: 'rp', now: s.now(), revocation: s.source });
    expect(v.checks).toContainEqual({
      by: 'verifier',
      check: `not revoked: not the writ, its lineage, task, principal, agents, keys or platform (status list ${URI} issued 2026-12-01T12:00:00.000Z (ttl 60 s))`,
    });
    s.list.set(5, 1);
    s.advance(1000);
    s.source.load(await s.sign());
    let err: unknown;
    try {
      verifyWrit({ writ: s.writ, proof: proof(), trust: s.issuer.trust, audience: 'rp', now: s.now(), revocation: s.source });
    } catch (e) {
      err = e;
    }
    expect(isWritError(err) && err.code).toBe('ERR_WRIT_REVOKED');
    expect((err as Error).message).toBe(`writ: revoked: status list entry 5 is INVALID (status list ${URI} issued 2026-12-01T12:00:01.000Z (ttl 60 s))`);
    expectWritErrorSync(() => s.source.load('a.b.c'), 'ERR_STATUS_LIST_INVALID', /not a status list token/);
  });
});
