/**
 * The sidecar's state machine (src/sidecar/daemon.ts) with a scripted identity source, a manual
 * clock and manual timers: renewal at half the lifetime ±10%, backoff, expiry, recovery,
 * revocation as a terminal state, and the JWT-SVID cache. And the checks every issuer answer
 * passes before it is served (src/sidecar/identity-source.ts `identityFrom`).
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { GrpcCallError } from '../../src/agent/attest-client.js';
import { jwkThumbprint as jwkThumbprintOf, keySigner } from '../../src/jose/jws.js';
import {
  JWT_REFRESH_WAIT_MS,
  MAX_JWT_CACHE_ENTRIES,
  MAX_JWT_HANDSHAKES_PER_MINUTE,
  MAX_NEW_JWT_AUDIENCES_PER_HOUR,
  RETRY_CAP_MS,
  Sidecar,
  checkAudiences,
  renewalAt,
  retryDelay,
  type Timers,
} from '../../src/sidecar/daemon.js';
import { identityFrom, type IdentitySource, type ObtainRequest, type Obtained } from '../../src/sidecar/identity-source.js';
import type { SidecarIdentity, SidecarStatus } from '../../src/sidecar/state.js';
import { parseSpiffeId } from '../../src/spiffe/id.js';
import { mintJwtSvid } from '../../src/svid/jwt-svid.js';
import { encodePem } from '../../src/der/pem.js';
import { expectWritError } from '../helpers/errors.js';
import { ecKey, makeCert, rootAndLeaf } from '../helpers/testca.js';
import { FakeIssuer, agent } from '../helpers/writ-fixture.js';

const ID = 'spiffe://example.org/agent/a';
const signer = keySigner(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
const jwtKey = { kid: 'k1', signer: keySigner(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey) };

class ManualTimers implements Timers {
  now = 1_000_000;
  private seq = 0;
  private readonly due = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const h = ++this.seq;
    this.due.set(h, { at: this.now + ms, fn });
    return h;
  }
  clearTimeout(h: unknown): void {
    this.due.delete(h as number);
  }
  /** Moves time forward, running each timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      const next = [...this.due.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.due.delete(next[0]);
      this.now = Math.max(this.now, next[1].at);
      next[1].fn();
      await flush();
    }
    this.now = end;
    await flush();
  }
  get pending(): number {
    return this.due.size;
  }
}

const refused = (writCode: string) => new GrpcCallError(grpc.status.PERMISSION_DENIED, `refused (${writCode})`, writCode);

const flush = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

async function jwt(aud: string, iat: number, exp: number): Promise<string> {
  return (await mintJwtSvid(jwtKey, { spiffeId: parseSpiffeId(ID), audience: [aud], issuedAt: new Date(iat), expiresAt: new Date(exp) })).token;
}

/** A source whose answers the test scripts: each obtain waits for `answer` or `fail`. */
class ScriptedSource implements IdentitySource {
  readonly requests: ObtainRequest[] = [];
  readonly released: SidecarIdentity[] = [];
  private waiting: Array<{ resolve: (o: Obtained) => void; reject: (e: Error) => void }> = [];
  constructor(
    private readonly timers: ManualTimers,
    private readonly ttlMs: number,
    private readonly jwtTtlMs = 60_000,
  ) {}
  obtain(req: ObtainRequest): Promise<Obtained> {
    this.requests.push(req);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }
  get open(): number {
    return this.waiting.length;
  }
  async answer(spiffeId = ID): Promise<SidecarIdentity> {
    await flush();
    const w = this.waiting.shift();
    if (!w) throw new Error('no obtain is waiting');
    const now = this.timers.now;
    const req = this.requests[this.requests.length - 1 - this.waiting.length]!;
    const identity: SidecarIdentity = {
      spiffeId,
      svidChain: [Buffer.from(`svid-${now}`)],
      signer,
      privateKeyPkcs8: Buffer.from('k'),
      bundle: { trustDomain: 'example.org', x509Authorities: [], jwks: '{"keys":[]}', pem: '' },
      notAfter: now + this.ttlMs,
      obtainedAt: now,
    };
    const jwtSvids = await Promise.all(req.jwtAudiences.map(async (a) => ({ audience: a, token: await jwt(a, now, now + this.jwtTtlMs) })));
    w.resolve({ identity, jwtSvids, release: async () => void this.released.push(identity) });
    await flush();
    return identity;
  }
  async fail(msg: string | Error = 'connection refused'): Promise<void> {
    await flush();
    const w = this.waiting.shift();
    if (!w) throw new Error('no obtain is waiting');
    w.reject(typeof msg === 'string' ? new Error(msg) : msg);
    await flush();
  }
}

function setup(ttlMs = 10_000, random = 0.5, jwtAudiences: string[] = [], jwtTtlMs = 60_000, maxNewJwtAudiencesPerHour?: number) {
  const timers = new ManualTimers();
  const source = new ScriptedSource(timers, ttlMs, jwtTtlMs);
  const sc = new Sidecar({
    source,
    now: () => timers.now,
    random: () => random,
    timers,
    jwtAudiences,
    ...(maxNewJwtAudiencesPerHour !== undefined ? { maxNewJwtAudiencesPerHour } : {}),
  });
  const seen: SidecarStatus[] = [];
  sc.subscribe((s) => seen.push(s));
  return { timers, source, sc, seen };
}

describe('renewal schedule', () => {
  it('renews at half the lifetime, ±10%', () => {
    expect(renewalAt(0, 10_000, 0.5)).toBe(5_000);
    expect(renewalAt(0, 10_000, 0)).toBe(4_500);
    expect(renewalAt(0, 10_000, 0.999999)).toBe(5_499);
    for (let i = 0; i < 100; i++) {
      const at = renewalAt(1000, 101_000, Math.random());
      expect(at).toBeGreaterThanOrEqual(1000 + 45_000);
      expect(at).toBeLessThan(1000 + 55_000);
    }
  });

  it('backs off exponentially with jitter, up to the cap', () => {
    expect(retryDelay(0, 0)).toBe(250);
    expect(retryDelay(0, 0.999)).toBeLessThan(500);
    expect(retryDelay(3, 0)).toBe(2_000);
    expect(retryDelay(50, 0.999)).toBeLessThanOrEqual(RETRY_CAP_MS);
    expect(retryDelay(50, 0)).toBe(RETRY_CAP_MS / 2);
  });
});

describe('the sidecar state machine', () => {
  it('is pending until the first attestation, retries it with backoff, then serves', async () => {
    const { source, sc, timers, seen } = setup();
    sc.start();
    expect(sc.current().state).toBe('pending');
    await expectWritError(sc.jwtSvid(['a']), 'ERR_SIDECAR_NOT_SERVING', 'no identity yet');
    await source.fail();
    expect(sc.current()).toEqual({ state: 'pending', reason: 'connection refused' });
    expect(source.open).toBe(0);
    await timers.advance(400); // retryDelay(0, 0.5) = 375
    expect(source.open).toBe(1);
    expect(source.requests[1]!.current).toBeUndefined();
    const id = await source.answer();
    expect(sc.current()).toEqual({ state: 'serving', identity: id });
    expect(seen.map((s) => s.state)).toEqual(['pending', 'serving']);
    expect(sc.failures).toBe(1);
  });

  it('renews at half the lifetime with the current identity, and a renewal replaces the identity whole', async () => {
    const { source, sc, timers } = setup(10_000);
    sc.start();
    const first = await source.answer();
    await timers.advance(4_999);
    expect(source.open).toBe(0);
    await timers.advance(1);
    expect(source.open).toBe(1);
    expect(source.requests[1]!.current).toBe(first);
    const second = await source.answer();
    expect(sc.current()).toEqual({ state: 'serving', identity: second });
    expect(sc.renewals).toBe(1);
    // The previous identity's key session is released once it is replaced, not before.
    expect(source.released).toEqual([first]);
  });

  it('with a writ that ends before the SVID, renews at half of what is left of the writ', async () => {
    const timers = new ManualTimers();
    const writSource: IdentitySource = {
      obtain: async () => ({
        identity: {
          spiffeId: ID,
          svidChain: [Buffer.from('svid')],
          signer,
          bundle: { trustDomain: 'example.org', x509Authorities: [], jwks: '{"keys":[]}', pem: '' },
          notAfter: timers.now + 3_600_000,
          writ: 'w',
          writExpiresAt: timers.now + 60_000,
          obtainedAt: timers.now,
        },
        jwtSvids: [],
      }),
    };
    let calls = 0;
    const counting: IdentitySource = {
      obtain: (r) => {
        calls++;
        return writSource.obtain(r);
      },
    };
    const sc = new Sidecar({ source: counting, now: () => timers.now, random: () => 0.5, timers });
    sc.start();
    await flush();
    expect(sc.current().state).toBe('serving');
    await timers.advance(29_999);
    expect(calls).toBe(1);
    await timers.advance(1);
    expect(calls).toBe(2);
  });

  it('keeps serving while renewals fail, expires at notAfter, and recovers when the issuer answers', async () => {
    const { source, sc, timers, seen } = setup(10_000);
    sc.start();
    const id = await source.answer();
    await timers.advance(5_000);
    await source.fail();
    // Failing renewals do not drop the identity.
    expect(sc.current()).toEqual({ state: 'serving', identity: id });
    for (let i = 0; i < 3 && timers.now < id.notAfter - 1000; i++) {
      await timers.advance(Math.min(retryDelay(i + 1, 0.5), id.notAfter - 1 - timers.now));
      if (source.open) await source.fail();
    }
    expect(sc.current().state).toBe('serving');
    await timers.advance(id.notAfter - timers.now);
    expect(sc.current().state).toBe('expired');
    await expectWritError(sc.jwtSvid(['a']), 'ERR_SIDECAR_NOT_SERVING', 'expired');
    // It keeps trying (without the expired identity) and comes back by itself.
    await timers.advance(RETRY_CAP_MS);
    expect(source.open).toBe(1);
    expect(source.requests[source.requests.length - 1]!.current).toBeUndefined();
    const back = await source.answer();
    expect(sc.current()).toEqual({ state: 'serving', identity: back });
    expect(seen.map((s) => s.state)).toEqual(['serving', 'expired', 'serving']);
  });

  it('revocation is terminal: nothing served, a renewal in flight is discarded, nothing renewed again', async () => {
    const { source, sc, timers, seen } = setup(10_000, 0.5, ['aud']);
    sc.start();
    await source.answer();
    await sc.jwtSvid(['aud']);
    await timers.advance(5_000);
    expect(source.open).toBe(1);
    sc.revoke('grant g1 revoked');
    expect(sc.current()).toMatchObject({ state: 'revoked', reason: 'grant g1 revoked' });
    const late = await source.answer();
    expect(sc.current().state).toBe('revoked');
    // The identity obtained after the revocation is released, never served.
    expect(source.released).toContain(late);
    await expectWritError(sc.jwtSvid(['aud']), 'ERR_SIDECAR_NOT_SERVING', 'revoked');
    await timers.advance(3_600_000);
    expect(source.open).toBe(0);
    expect(timers.pending).toBe(0);
    expect(seen.map((s) => s.state)).toEqual(['serving', 'revoked']);
    sc.revoke('again');
    expect(seen).toHaveLength(2);
  });

  it('a renewal the issuer refuses with ERR_REVOKED is terminal: revoked at once, nothing retried or served until notAfter', async () => {
    const { source, sc, timers, seen } = setup(10_000);
    sc.start();
    await source.answer();
    await timers.advance(5_000);
    await source.fail(refused('ERR_REVOKED'));
    expect(sc.current()).toMatchObject({ state: 'revoked', reason: expect.stringMatching(/ERR_REVOKED: refused/) });
    expect(sc.renewalCounts()).toEqual({ renewals: 0, failures: { unavailable: 0, refused: 0, terminal: 1, error: 0 } });
    await timers.advance(3_600_000);
    expect(source.open).toBe(0);
    expect(timers.pending).toBe(0);
    expect(seen.map((s) => s.state)).toEqual(['serving', 'revoked']);
  });

  it('the first attestation refused with ERR_REVOKED is terminal too', async () => {
    const { source, sc, timers } = setup(10_000);
    sc.start();
    await source.fail(refused('ERR_REVOKED'));
    expect(sc.current().state).toBe('revoked');
    await timers.advance(RETRY_CAP_MS);
    expect(source.open).toBe(0);
  });

  it('ERR_NO_MATCHING_ENTRY: terminal on a renewal (the entry is gone), retried on the first attestation (not registered yet)', async () => {
    const first = setup(10_000);
    first.sc.start();
    await first.source.fail(refused('ERR_NO_MATCHING_ENTRY'));
    expect(first.sc.current().state).toBe('pending');
    await first.timers.advance(RETRY_CAP_MS);
    expect(first.source.open).toBe(1);
    await first.source.answer();
    await first.timers.advance(5_000);
    await first.source.fail(refused('ERR_NO_MATCHING_ENTRY'));
    expect(first.sc.current()).toMatchObject({ state: 'revoked', reason: expect.stringMatching(/ERR_NO_MATCHING_ENTRY/) });
    await first.timers.advance(3_600_000);
    expect(first.source.open).toBe(0);
  });

  it('other refusals (ERR_INTERNAL, unreachable) are still retried while the identity is served', async () => {
    const { source, sc, timers } = setup(10_000);
    sc.start();
    await source.answer();
    await timers.advance(5_000);
    await source.fail(refused('ERR_INTERNAL'));
    expect(sc.current().state).toBe('serving');
    await timers.advance(RETRY_CAP_MS);
    expect(source.open).toBe(1);
  });

  it('a JWT-SVID handshake refused with ERR_REVOKED revokes the sidecar', async () => {
    const { source, sc } = setup(3_600_000);
    sc.start();
    await source.answer();
    const p = sc.jwtSvid(['new-aud']);
    await source.fail(refused('ERR_REVOKED'));
    await expectWritError(p, 'ERR_SIDECAR_NOT_SERVING', 'ERR_REVOKED');
    expect(sc.current().state).toBe('revoked');
  });

  it('a revocation while a JWT-SVID is being fetched: the caller gets nothing', async () => {
    const { source, sc } = setup();
    sc.start();
    await source.answer();
    const p = sc.jwtSvid(['new-aud']);
    p.catch(() => {});
    await flush();
    expect(source.open).toBe(1);
    sc.revoke('key revoked');
    await source.answer();
    await expectWritError(p, 'ERR_SIDECAR_NOT_SERVING', 'revoked');
    // Revoked before its turn: no handshake at all.
    const q = sc.jwtSvid(['later']);
    await expectWritError(q, 'ERR_SIDECAR_NOT_SERVING', 'revoked');
    expect(source.open).toBe(0);
  });

  it('the revocation screen refuses a new identity before any listener, the JWT-SVID cache or a caller sees it', async () => {
    const { source, sc, seen } = setup(10_000, 0.5, ['aud-1']);
    const screened: SidecarIdentity[] = [];
    let refuse = false;
    sc.setRevocationScreen((id) => {
      screened.push(id);
      return refuse ? 'grant g-1 revoked at sequence 3' : undefined;
    });
    sc.start();
    const first = await source.answer();
    expect(screened).toEqual([first]);
    refuse = true;
    // An on-demand JWT-SVID's handshake renews the X.509-SVID too: the screen refuses that identity.
    const p = sc.jwtSvid(['aud-2']);
    p.catch(() => {});
    const renewed = await source.answer();
    await expectWritError(p, 'ERR_SIDECAR_NOT_SERVING', 'revoked');
    expect(screened).toEqual([first, renewed]);
    expect(sc.current()).toMatchObject({ state: 'revoked', reason: 'grant g-1 revoked at sequence 3' });
    expect(seen.map((s) => s.state)).toEqual(['serving', 'revoked']);
    expect(seen.some((s) => s.state === 'serving' && s.identity === renewed)).toBe(false);
    await expectWritError(sc.jwtSvid(['aud-1']), 'ERR_SIDECAR_NOT_SERVING', 'revoked');
    // Its key session is released: it is never served.
    expect(source.released).toContain(renewed);
    expect(sc.renewals).toBe(0);
  });

  it('a screen that throws fails closed: the identity is refused', async () => {
    const { source, sc, seen } = setup();
    sc.setRevocationScreen(() => {
      throw new Error('unreadable writ');
    });
    sc.start();
    await source.answer();
    expect(sc.current()).toMatchObject({ state: 'revoked', reason: expect.stringMatching(/could not be checked against revocations \(unreadable writ\)/) });
    expect(seen.map((s) => s.state)).toEqual(['revoked']);
  });

  it('a listener that revokes the identity it is told about: the listeners after it never see that identity', async () => {
    const { source, sc, seen } = setup();
    const early: string[] = [];
    // `seen` (subscribed in setup) runs before these two; `late` runs after the one that revokes.
    sc.subscribe((s) => {
      early.push(s.state);
      if (s.state === 'serving') sc.revoke('revoked by a listener');
    });
    const late: string[] = [];
    sc.subscribe((s) => late.push(s.state));
    sc.start();
    await source.answer();
    expect(early).toEqual(['serving', 'revoked']);
    expect(late).toEqual(['revoked']);
    expect(seen.map((s) => s.state)).toEqual(['serving', 'revoked']);
  });
});

describe('the JWT-SVID cache', () => {
  it('serves from the cache while more than half the lifetime is left, then fetches a fresh one', async () => {
    const { source, sc, timers } = setup(3_600_000, 0.5, ['aud']);
    sc.start();
    await source.answer();
    const a = await sc.jwtSvid(['aud']);
    expect(source.requests).toHaveLength(1);
    await timers.advance(29_000);
    expect((await sc.jwtSvid(['aud'])).token).toBe(a.token);
    expect(source.open).toBe(0);
    await timers.advance(2_000);
    const p = sc.jwtSvid(['aud']);
    await flush();
    expect(source.open).toBe(1);
    expect(source.requests[1]!.jwtAudiences).toEqual(['aud']);
    await source.answer();
    const b = await p;
    expect(b.token).not.toBe(a.token);
  });

  it('makes one request for concurrent callers of one audience', async () => {
    const { source, sc } = setup();
    sc.start();
    await source.answer();
    const calls = [sc.jwtSvid(['x']), sc.jwtSvid(['x']), sc.jwtSvid(['x'])];
    await flush();
    expect(source.open).toBe(1);
    await source.answer();
    const got = await Promise.all(calls);
    expect(new Set(got.map((g) => g.token)).size).toBe(1);
  });

  it(`holds at most ${MAX_JWT_CACHE_ENTRIES} audiences, dropping the oldest`, async () => {
    // Long-lived X.509- and JWT-SVIDs, time moving so the handshake rate limit is never hit, and
    // the cap on new audiences an hour above the cache size (that cap has its own test).
    const { source, sc, timers } = setup(30 * 86_400_000, 0.5, [], 30 * 86_400_000, MAX_JWT_CACHE_ENTRIES + 10);
    sc.start();
    await source.answer();
    for (let i = 0; i <= MAX_JWT_CACHE_ENTRIES; i++) {
      await timers.advance(1_001);
      const p = sc.jwtSvid([`aud-${i}`]);
      await flush();
      await source.answer();
      await p;
    }
    const before = source.requests.length;
    await sc.jwtSvid([`aud-${MAX_JWT_CACHE_ENTRIES}`]);
    await sc.jwtSvid(['aud-1']);
    expect(source.requests.length).toBe(before);
    await timers.advance(60_000);
    const p = sc.jwtSvid(['aud-0']);
    await flush();
    expect(source.requests.length).toBe(before + 1);
    await source.answer();
    await p;
  });

  it(`starts at most ${MAX_JWT_HANDSHAKES_PER_MINUTE} handshakes a minute for audiences not in the cache`, async () => {
    const { source, sc, timers } = setup(3_600_000);
    sc.start();
    await source.answer();
    for (let i = 0; i < MAX_JWT_HANDSHAKES_PER_MINUTE; i++) {
      const p = sc.jwtSvid([`aud-${i}`]);
      await source.answer();
      await p;
    }
    await expectWritError(sc.jwtSvid(['one-more']), 'ERR_SIDECAR_NOT_SERVING', 'in a minute');
    // Cached ones are still served.
    await sc.jwtSvid(['aud-0']);
    await timers.advance(60_000);
    const p = sc.jwtSvid(['one-more']);
    await source.answer();
    expect((await p).spiffeId).toBe(ID);
  });

  it(`fetches JWT-SVIDs for at most ${MAX_NEW_JWT_AUDIENCES_PER_HOUR} distinct on-demand audiences an hour (RESOURCE_EXHAUSTED past it), however slowly they are cycled`, async () => {
    const { source, sc, timers } = setup(3 * 3_600_000, 0.5, ['pre']);
    sc.start();
    await source.answer();
    for (let i = 0; i < MAX_NEW_JWT_AUDIENCES_PER_HOUR; i++) {
      // Slower than the per-minute limit: only the hourly cap stops this.
      await timers.advance(2_000);
      const p = sc.jwtSvid([`aud-${i}`]);
      await source.answer();
      await p;
    }
    const opened = source.requests.length;
    await expectWritError(sc.jwtSvid(['one-more']), 'ERR_LIMIT_EXCEEDED', 'distinct audiences');
    expect(source.requests.length).toBe(opened);
    // One fetched in the hour is fetched again once its cached JWT-SVID is past half its life.
    await timers.advance(40_000);
    const again = sc.jwtSvid(['aud-0']);
    await source.answer();
    await expect(again).resolves.toMatchObject({ spiffeId: ID });
    // Once the first ones age out of the hour, new audiences are fetched again.
    await timers.advance(3_600_000 - MAX_NEW_JWT_AUDIENCES_PER_HOUR * 2_000);
    const later = sc.jwtSvid(['one-more']);
    await source.answer();
    await expect(later).resolves.toMatchObject({ spiffeId: ID });
  });

  it('the hourly audience cap is configurable, and --jwt-audience ones do not count against it', async () => {
    const timers = new ManualTimers();
    const source = new ScriptedSource(timers, 3 * 3_600_000);
    const sc = new Sidecar({ source, now: () => timers.now, random: () => 0.5, timers, jwtAudiences: ['pre'], maxNewJwtAudiencesPerHour: 2 });
    sc.start();
    await source.answer();
    for (const a of ['x', 'y']) {
      const p = sc.jwtSvid([a]);
      await source.answer();
      await p;
    }
    await expectWritError(sc.jwtSvid(['z']), 'ERR_LIMIT_EXCEEDED', 'for 2 distinct audiences');
    // The pre-minted audience, past half its life, is still re-fetched.
    await timers.advance(40_000);
    const p = sc.jwtSvid(['pre']);
    await source.answer();
    await expect(p).resolves.toMatchObject({ spiffeId: ID });
    expect(() => new Sidecar({ source, now: () => 0, maxNewJwtAudiencesPerHour: -1 })).toThrow(/whole number/);
  });

  it('refuses audiences the issuer would refuse, before any handshake', async () => {
    for (const [aud, msg] of [
      [[], 'audience must be specified'],
      [[''], 'empty'],
      [['a', 'b'], 'one audience per JWT-SVID'],
      [['x'.repeat(257)], 'longer than 256 bytes'],
      [['a\nb'], 'control character'],
    ] as const)
      await expectWritError(() => checkAudiences(aud), 'ERR_SIDECAR_REQUEST_INVALID', msg);
    checkAudiences(['x'.repeat(256)]);
  });

  it('an issuer outage past the renewal point: the cached JWT-SVID is served until exp, refreshed with backoff one at a time, never after exp', async () => {
    const { source, sc, timers } = setup(3_600_000, 0.5, ['aud']);
    sc.start();
    await source.answer();
    const a = await sc.jwtSvid(['aud']);
    const exp = timers.now + 60_000;
    await timers.advance(31_000);
    // Concurrent callers past the renewal point: one refresh; it fails; both get the cached token.
    const calls = [sc.jwtSvid(['aud']), sc.jwtSvid(['aud'])];
    await flush();
    expect(source.open).toBe(1);
    await source.fail('14 UNAVAILABLE: connection refused');
    expect((await Promise.all(calls)).map((g) => g.token)).toEqual([a.token, a.token]);
    // An on-demand handshake renews the X.509-SVID too: its failure is a failed renewal (here not a gRPC status: `error`).
    expect(sc.renewalCounts().failures.error).toBe(1);
    // Within the backoff: served from the cache, no handshake.
    const opened = source.requests.length;
    expect((await sc.jwtSvid(['aud'])).token).toBe(a.token);
    expect(source.requests.length).toBe(opened);
    // After it: retried, and on failure again the cached token; the backoff grows.
    await timers.advance(retryDelay(0, 0.5));
    const retry = sc.jwtSvid(['aud']);
    await flush();
    expect(source.requests.length).toBe(opened + 1);
    await source.fail();
    expect((await retry).token).toBe(a.token);
    await timers.advance(retryDelay(0, 0.5));
    expect((await sc.jwtSvid(['aud'])).token).toBe(a.token);
    expect(source.requests.length).toBe(opened + 1);
    // At exp: never the expired token, whatever the backoff.
    await timers.advance(exp - timers.now);
    const late = sc.jwtSvid(['aud']);
    await source.fail();
    await expectWritError(late, 'ERR_SIDECAR_NOT_SERVING', 'connection refused');
    // The issuer back: a fresh one.
    const back = sc.jwtSvid(['aud']);
    await source.answer();
    expect((await back).token).not.toBe(a.token);
  });

  it(`an issuer that does not answer a refresh: the cached JWT-SVID is served after ${JWT_REFRESH_WAIT_MS} ms, and the refresh's answer when it comes is cached`, async () => {
    const { source, sc, timers } = setup(3_600_000, 0.5, ['aud']);
    sc.start();
    await source.answer();
    const a = await sc.jwtSvid(['aud']);
    await timers.advance(31_000);
    let served: string | undefined;
    const call = sc.jwtSvid(['aud']).then((g) => {
      served = g.token;
    });
    await flush();
    expect(source.open).toBe(1);
    await timers.advance(JWT_REFRESH_WAIT_MS - 1);
    expect(served).toBeUndefined();
    await timers.advance(1);
    await call;
    expect(served).toBe(a.token);
    // The refresh was not given up: its answer is what the next caller gets, with no handshake.
    await source.answer();
    await flush();
    const opened = source.requests.length;
    const b = await sc.jwtSvid(['aud']);
    expect(b.token).not.toBe(a.token);
    expect(source.requests.length).toBe(opened);
  });

  it('a refresh answered within the wait gives the caller the new JWT-SVID', async () => {
    const { source, sc, timers } = setup(3_600_000, 0.5, ['aud']);
    sc.start();
    await source.answer();
    const a = await sc.jwtSvid(['aud']);
    await timers.advance(31_000);
    const call = sc.jwtSvid(['aud']);
    await flush();
    await source.answer();
    expect((await call).token).not.toBe(a.token);
  });

  it('the handshake limits refusing a refresh: the cached JWT-SVID is served while valid', async () => {
    const { source, sc, timers } = setup(3_600_000, 0.5, ['aud']);
    sc.start();
    await source.answer();
    const a = await sc.jwtSvid(['aud']);
    for (let i = 0; i < MAX_JWT_HANDSHAKES_PER_MINUTE; i++) {
      const p = sc.jwtSvid([`aud-${i}`]);
      await source.answer();
      await p;
    }
    await timers.advance(31_000);
    // Every refresh was past the limit: still a's token, no handshake.
    const opened = source.requests.length;
    await expect(sc.jwtSvid(['aud'])).resolves.toMatchObject({ token: a.token });
    expect(source.requests.length).toBe(opened);
    await expectWritError(sc.jwtSvid(['new']), 'ERR_SIDECAR_NOT_SERVING', 'in a minute');
  });

  it('a failed refresh serves nothing after a terminal refusal, or once the SPIFFE ID changed', async () => {
    const revoked = setup(3_600_000, 0.5, ['aud']);
    revoked.sc.start();
    await revoked.source.answer();
    await revoked.sc.jwtSvid(['aud']);
    await revoked.timers.advance(31_000);
    const p = revoked.sc.jwtSvid(['aud']);
    await revoked.source.fail(refused('ERR_REVOKED'));
    await expectWritError(p, 'ERR_SIDECAR_NOT_SERVING', 'ERR_REVOKED');
    expect(revoked.sc.current().state).toBe('revoked');

    // An on-demand audience served stale through an outage, then a renewal maps the agent elsewhere.
    const moved = setup(100_000, 0.5, [], 60_000);
    moved.sc.start();
    await moved.source.answer();
    const x = moved.sc.jwtSvid(['x']);
    await moved.source.answer();
    const tx = (await x).token;
    await moved.timers.advance(31_000);
    const stale = moved.sc.jwtSvid(['x']);
    await moved.source.fail();
    expect((await stale).token).toBe(tx);
    await moved.timers.advance(50_000 - 31_000);
    await moved.source.answer('spiffe://example.org/agent/b');
    const after = moved.sc.jwtSvid(['x']);
    await moved.source.fail();
    await expectWritError(after, 'ERR_SIDECAR_NOT_SERVING', 'connection refused');
  });

  it('never serves a cached JWT-SVID of another SPIFFE ID after a renewal maps the agent elsewhere', async () => {
    const { source, sc, timers } = setup(10_000, 0.5, ['aud']);
    sc.start();
    await source.answer();
    const a = await sc.jwtSvid(['aud']);
    await timers.advance(5_000);
    await source.answer('spiffe://example.org/agent/b');
    // The renewal also minted 'aud' for the new ID; the old token is gone.
    const b = await sc.jwtSvid(['aud']);
    expect(b.token).not.toBe(a.token);
    expect(b.spiffeId).toBe('spiffe://example.org/agent/b');
  });
});

const jkt = (k: { privateKey: import('node:crypto').KeyObject }) => jwkThumbprintOf(createPublicKey(k.privateKey));

describe('identityFrom: what the sidecar refuses to serve', () => {
  const key = ecKey();
  const agentSigner = keySigner(key.privateKey);
  const { root, leaf } = rootAndLeaf('example.org', ID, { key });
  const pem = encodePem('CERTIFICATE', root.der);
  const outcome = (o: Partial<{ spiffeId: string; svidChain: Buffer[]; bundlePem: string; writ: string }> = {}) => ({
    spiffeId: ID,
    svidChain: [leaf.der],
    bundleJwks: '{"keys":[]}',
    bundlePem: pem,
    jwtSvids: [],
    ...o,
  });

  it('accepts a chain to the returned bundle for our key and SPIFFE ID', () => {
    const id = identityFrom(outcome(), agentSigner, Buffer.from('pkcs8'), Date.now());
    expect(id.spiffeId).toBe(ID);
    expect(id.notAfter).toBe(leaf.parsed.notAfter.getTime());
    expect(id.bundle.trustDomain).toBe('example.org');
    expect(id.bundle.x509Authorities).toEqual([root.der]);
  });

  it('refuses an SVID for another key', () => {
    expect(() => identityFrom(outcome(), keySigner(ecKey().privateKey), undefined, Date.now())).toThrow('carries another key');
  });

  it('refuses an answer whose SPIFFE ID is not the leaf’s', () => {
    expect(() => identityFrom(outcome({ spiffeId: 'spiffe://example.org/agent/admin' }), agentSigner, undefined, Date.now())).toThrow('names');
  });

  it('refuses a chain that does not verify to the bundle', () => {
    const other = makeCert({ subjectCn: 'other root', ca: true, uris: ['spiffe://example.org'] });
    expect(() => identityFrom(outcome({ bundlePem: encodePem('CERTIFICATE', other.der) }), agentSigner, undefined, Date.now())).toThrow(/x509svid|verify/);
  });

  it('keeps a writ bound to our key with its task and expiry, and refuses one bound to another key', () => {
    const iss = new FakeIssuer();
    const now = Math.floor(Date.now() / 1000);
    const mine = agent('a');
    const minted = iss.writ({ ...mine, key: key.privateKey, jkt: jkt(key) }, [iss.rootGrant({ ...mine, jkt: jkt(key) }, { now: now - 10 })], { now: now - 5 });
    const id = identityFrom(outcome({ writ: minted.writ }), agentSigner, undefined, Date.now());
    expect(id.writ).toBe(minted.writ);
    expect(id.writExpiresAt).toBe(minted.claims.exp * 1000);
    expect(id.task).toBe(minted.claims.task.id);
    const stranger = agent('b');
    const theirs = iss.writ(stranger, [iss.rootGrant(stranger, { now: now - 10 })], { now: now - 5 });
    expect(() => identityFrom(outcome({ writ: theirs.writ }), agentSigner, undefined, Date.now())).toThrow('bound to another key');
  });

  it('refuses an SVID that has already expired', () => {
    expect(() => identityFrom(outcome(), agentSigner, undefined, leaf.parsed.notAfter.getTime() + 1000)).toThrow(/expired|x509/);
  });
});
