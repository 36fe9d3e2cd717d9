/**
 * The Watch-fed revocation source against the real feed (in memory): it fails closed until it
 * has synced and when it is stale, kills hop three for every kind a writ carries, resumes by
 * sequence, takes snapshots, fails over, and refuses what it cannot apply.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isWritError } from '../../src/errors.js';
import {
  PRUNE_MARGIN_MS,
  WatchRevocationSource,
  type WatchConnectionEvent,
  type WatchConnector,
  type WatchMessage,
  type WatchSourceOptions,
} from '../../src/revocation/watch-source.js';
import { ProofReplayCache, createProof } from '../../src/writ/proof.js';
import { verifyWrit } from '../../src/writ/verify.js';
import { FakeIssuer, agent, hop } from '../helpers/writ-fixture.js';
import { FakeWatchConnector, FakeWatchIssuer } from '../fakes/watch-issuer.js';

const NOW = 1_790_000_000;
const AUD = 'spiffe://example.org/tool/github';
const iss = new FakeIssuer();
const [A, B, C] = [agent('planner'), agent('researcher'), agent('reader')];
const ENTRY = randomUUID();

/** principal → A → B → C, with A's and B's writs named by the hops, as the issuer makes them. */
function world() {
  const root = iss.rootGrant(A, { now: NOW - 100, taskId: 'triage-42' });
  const wa = iss.writ(A, [root], { now: NOW - 95 }).claims;
  const g1 = hop(root, A, B, NOW - 90, { scope: [{ action: 'repo:read', resource: 'repo://acme/*' }], writ: wa.jti });
  const wb = iss.writ(B, [root, g1], { now: NOW - 85 }).claims;
  const g2 = hop(g1, B, C, NOW - 80, { scope: [{ action: 'repo:read', resource: 'repo://acme/widgets*' }], writ: wb.jti });
  const c = iss.writ(C, [root, g1, g2], { now: NOW - 75, sel: ['join_token:c0ffee', 'tpm:ek_hash:ab12'], override: { reg: ENTRY } });
  return { root, g1, g2, wa, wb, writ: c.writ, claims: c.claims };
}
const w = world();

const sources: WatchRevocationSource[] = [];
afterEach(() => {
  for (const s of sources.splice(0)) s.close();
});

function source(connector: WatchConnector, o: Partial<WatchSourceOptions> = {}, clock = new ManualClock(NOW * 1000)) {
  const s = new WatchRevocationSource({ addresses: ['issuer-a'], connector, clock, reconnectInitialMs: 1, reconnectMaxMs: 5, ...o });
  sources.push(s);
  return s.start();
}

function verify(src: WatchRevocationSource, writ = w.writ) {
  const at = new Date(NOW * 1000);
  return verifyWrit({
    writ,
    proof: createProof(writ, C.key, { audience: AUD, method: 'GET /repos', now: at }),
    trust: iss.trust,
    audience: AUD,
    now: at,
    replayCache: new ProofReplayCache(),
    revocation: src,
  });
}

function refusal(f: () => unknown): { code: string; message: string; cause?: { code?: string } } {
  try {
    f();
  } catch (e) {
    if (!isWritError(e)) throw e;
    return { code: e.code, message: e.message, cause: e.cause as { code?: string } };
  }
  throw new Error('expected a refusal');
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 2));
  }
}

function setup(o: Partial<WatchSourceOptions> = {}, clock?: ManualClock) {
  const issuer = new FakeWatchIssuer();
  const connector = new FakeWatchConnector({ 'issuer-a': issuer });
  const src = source(connector, o, clock);
  const messages: WatchMessage[] = [];
  src.onMessage((m) => messages.push(m));
  return { issuer, connector, src, messages };
}

describe('WatchRevocationSource', () => {
  it('fails closed until its first heartbeat, then reports the sequence and the heartbeat age', async () => {
    const issuer = new FakeWatchIssuer();
    const connector = new FakeWatchConnector({ 'issuer-a': issuer });
    connector.down.add('issuer-a');
    const src = source(connector);
    const r = refusal(() => verify(src));
    expect(r).toMatchObject({ code: 'ERR_WRIT_INVALID', cause: { code: 'ERR_REVOCATION_UNAVAILABLE' } });
    expect(r.message).toMatch(/^writ: revocation status unknown: revocation\(watch\): not synced yet with issuer-a/);
    await until(() => connector.opens.length >= 2);
    await expect(src.synced(30)).rejects.toThrow(/no heartbeat from issuer-a within 30 ms \(last error: issuer-a: unreachable: connection refused\)/);
    connector.down.delete('issuer-a');
    issuer.revoke('task', 'some-other-task');
    await src.synced();
    const v = verify(src);
    expect(v.checks).toContainEqual({
      by: 'verifier',
      check:
        'not revoked: not the writ, its lineage, task, principal, agents, keys or platform (watch stream at sequence 1 (heartbeat 0 ms ago from issuer-a))',
    });
  });

  // Every kind a writ three hops down carries, named at each level above it.
  const kills: Array<[string, string, string]> = [
    ['grant', w.wa.lineage[0]!, 'the root grant'],
    ['grant', w.claims.lineage[1]!, "A's hop to B"],
    ['grant', w.claims.lineage[2]!, "B's hop to C"],
    ['task', 'triage-42', 'the task'],
    ['principal', 'https://idp.example.com#alice', 'the principal'],
    ['agent', A.spiffeId, 'the first agent (a delegator)'],
    ['agent', C.spiffeId, 'the agent itself'],
    ['key', A.jkt, "the first agent's key"],
    ['key', C.jkt, 'its own key'],
    ['writ', w.wa.jti, "A's writ (an ancestor)"],
    ['writ', w.wb.jti, "B's writ (the parent)"],
    ['writ', w.claims.jti, 'the writ itself'],
    ['platform', 'tpm:ek_hash:ab12', 'its platform'],
    ['entry', ENTRY, 'its registration entry'],
  ];
  it.each(kills)('a %s revocation (%s: %s) kills the writ three hops down', async (kind, target) => {
    const { issuer, src } = setup();
    await src.synced();
    expect(verify(src).spiffeId).toBe(C.spiffeId);
    issuer.revoke(kind, target);
    const r = refusal(() => verify(src));
    expect(r).toMatchObject({ code: 'ERR_WRIT_REVOKED' });
    expect(r.message).toBe(`writ: revoked: ${kind} ${target} revoked at sequence 1 (watch stream at sequence 1 (heartbeat 0 ms ago from issuer-a))`);
  });

  // Mutated twins: one character off, or the right id under another kind, kills nothing.
  const misses: Array<[string, string]> = [
    ['grant', `${w.wa.lineage[0]!.slice(0, -1)}${w.wa.lineage[0]!.endsWith('A') ? 'B' : 'A'}`],
    ['task', 'triage-43'],
    ['principal', 'https://idp.example.com#alicf'],
    ['principal', 'https://idp.example.org#alice'],
    ['agent', `${C.spiffeId}x`],
    ['agent', 'spiffe://example.org/agent/someone'],
    ['writ', w.root.split('.')[2]!.slice(0, 22)],
    ['platform', 'tpm:ek_hash:ab13'],
    ['entry', randomUUID()],
    ['task', C.spiffeId.replace(/[^A-Za-z0-9]/g, '-').slice(0, 40)],
  ];
  it.each(misses)('a %s revocation of %s kills nothing here', async (kind, target) => {
    const { issuer, src } = setup();
    await src.synced();
    issuer.revoke(kind, target);
    issuer.heartbeat();
    expect(verify(src).checks.some((c) => /^not revoked: .* \(watch stream at sequence 1 /.test(c.check))).toBe(true);
  });

  it('is stale after its maximum staleness without a heartbeat, and fresh again at the next', async () => {
    const clock = new ManualClock(NOW * 1000);
    const { issuer, src } = setup({ maxStalenessMs: 15_000 }, clock);
    await src.synced();
    clock.advance(15_000);
    expect(verify(src).checks.map((c) => c.check)).toContainEqual(expect.stringContaining('(heartbeat 15000 ms ago from issuer-a)'));
    clock.advance(1);
    const r = refusal(() => verify(src));
    expect(r).toMatchObject({ code: 'ERR_WRIT_INVALID', cause: { code: 'ERR_REVOCATION_UNAVAILABLE' } });
    expect(r.message).toMatch(/the last heartbeat is 15001 ms old, more than the 15000 ms accepted \(at sequence 0\)/);
    issuer.heartbeat();
    expect(verify(src).spiffeId).toBe(C.spiffeId);
  });

  it('a subscriber disconnected while three revocations happen receives exactly those three when it resumes', async () => {
    const { issuer, connector, src, messages } = setup();
    await src.synced();
    issuer.revoke('task', 'before-1');
    issuer.revoke('task', 'before-2');
    expect(src.sequence).toBe(2);
    connector.hold();
    connector.kill();
    const missed = [issuer.revoke('task', 'missed-1'), issuer.revoke('grant', w.claims.lineage[0]!), issuer.revoke('task', 'missed-3')];
    expect(src.sequence).toBe(2);
    const before = messages.length;
    connector.release();
    await until(() => src.status().connected);
    expect(connector.opens.map((o) => o.since)).toEqual([0, 2]);
    const after = messages.slice(before);
    expect(after.filter((m) => m.type === 'revocation').map((m) => (m.type === 'revocation' ? m.revocation.sequence : 0))).toEqual(missed.map((r) => r.seq));
    expect(after[after.length - 1]).toMatchObject({ type: 'heartbeat', sequence: 5 });
    expect(refusal(() => verify(src)).code).toBe('ERR_WRIT_REVOKED');
  });

  it('moves to the next issuer address when one fails, and back when the other fails', async () => {
    const issuer = new FakeWatchIssuer();
    const connector = new FakeWatchConnector({ 'issuer-a': issuer, 'issuer-b': issuer });
    connector.down.add('issuer-a');
    const src = source(connector, { addresses: ['issuer-a', 'issuer-b'] });
    const events: WatchConnectionEvent[] = [];
    src.onConnection((e) => events.push(e));
    await src.synced();
    expect(connector.opens.map((o) => o.address)).toEqual(['issuer-a', 'issuer-b']);
    expect(verify(src).checks.map((c) => c.check)).toContainEqual(expect.stringContaining('from issuer-b)'));
    connector.down.delete('issuer-a');
    issuer.revoke('task', 'x');
    connector.kill('issuer-b went away');
    await until(() => src.status().connected && src.status().address === 'issuer-a');
    expect(connector.opens.slice(2)).toEqual([{ address: 'issuer-a', since: 1 }]);
    expect(events.map((e) => e.type)).toEqual(['disconnected', 'connecting', 'synced', 'disconnected', 'connecting', 'synced']);
  });

  it('takes a snapshot when it resumes from before what the issuer retains: the old set answers until it ends, then the snapshot alone', async () => {
    const { issuer, connector, src, messages } = setup();
    await src.synced();
    issuer.revoke('task', 'triage-42');
    issuer.revoke('task', 'old-2');
    connector.hold();
    connector.kill();
    issuer.revoke('task', 'pruned-3');
    issuer.revoke('task', 'kept-4');
    // The issuer forgets 1..3 (their targets expired): a subscriber at 2 cannot be caught up event by event.
    issuer.prune(4);
    const duringSnapshot: string[] = [];
    src.onRevoked((r) => {
      if (r.snapshot) duringSnapshot.push(`${r.sequence}:${refusal(() => verify(src)).code}`);
    });
    const before = messages.length;
    connector.release();
    await until(() => src.status().connected);
    expect(messages.slice(before)).toEqual([
      { type: 'snapshot-begin', oldestRetained: 4 },
      { type: 'revocation', revocation: expect.objectContaining({ sequence: 4, target: { kind: 'task', id: 'kept-4' }, snapshot: true }) },
      { type: 'snapshot-end', sequence: 4 },
      { type: 'heartbeat', sequence: 4, at: expect.any(Number) },
    ]);
    // While the snapshot came in, the task revocation seen before still refused the writ.
    expect(duringSnapshot).toEqual(['4:ERR_WRIT_REVOKED']);
    // Afterwards the source holds what the issuer holds: the pruned task revocation is gone.
    expect(src.size).toBe(1);
    expect(verify(src).spiffeId).toBe(C.spiffeId);
    expect(src.sequence).toBe(4);
  });

  it('resumes from its own sequence when a heartbeat claims events it did not get', async () => {
    const sent: Array<{ since: number }> = [];
    const connector: WatchConnector = {
      open(_a, since, on) {
        sent.push({ since });
        queueMicrotask(() => on.message({ type: 'heartbeat', sequence: since === 0 ? 3 : since, at: 0 }));
        return { close() {} };
      },
    };
    const src = source(connector);
    await until(() => sent.length >= 2);
    expect(sent.slice(0, 2)).toEqual([{ since: 0 }, { since: 0 }]);
    expect(src.status().synced).toBe(false);
    expect(refusal(() => verify(src)).message).toMatch(/not synced yet .*heartbeat at sequence 3, but events after 0 did not arrive/);
  });

  it('refuses an event whose sequence does not increase, and resumes from the last good one', async () => {
    let n = 0;
    const connector: WatchConnector = {
      open(_a, since, on) {
        n++;
        queueMicrotask(() => {
          if (n === 1) {
            on.message({ type: 'revocation', sequence: 1, kind: 'task', target: 'a', reason: '', at: 0, actor: 'operator', principal: '', derivedFrom: 0 });
            on.message({
              type: 'revocation',
              sequence: 1,
              kind: 'task',
              target: 'triage-42',
              reason: '',
              at: 0,
              actor: 'operator',
              principal: '',
              derivedFrom: 0,
            });
          }
          on.message({ type: 'heartbeat', sequence: Math.max(since, 1), at: 0 });
        });
        return { close() {} };
      },
    };
    const src = source(connector);
    await src.synced();
    expect(n).toBe(2);
    expect(src.sequence).toBe(1);
    expect(verify(src).spiffeId).toBe(C.spiffeId);
  });

  it('replays from 0 when the issuer is behind it (a restored backup), keeps what it held, and follows the new numbering', async () => {
    const { issuer, connector, src } = setup();
    await src.synced();
    issuer.revoke('task', 'a');
    issuer.revoke('task', 'triage-42');
    issuer.revoke('task', 'c');
    expect(src.sequence).toBe(3);
    connector.hold();
    connector.kill();
    issuer.restore(1);
    connector.release();
    await until(() => src.status().connected);
    expect(connector.opens.map((o) => o.since)).toEqual([0, 3, 0]);
    expect(src.sequence).toBe(1);
    // What the old log said still holds.
    expect(refusal(() => verify(src)).message).toMatch(/task triage-42 revoked at sequence 2/);
    issuer.revoke('key', C.jkt);
    expect(src.sequence).toBe(2);
  });

  it('forgets a revocation once the issuer says it can no longer match a valid writ (expires_at + margin), and frees room under its limit', async () => {
    const clock = new ManualClock(NOW * 1000);
    const { issuer, src } = setup({ maxRevocations: 3, maxStalenessMs: 1_000_000_000 }, clock);
    await src.synced();
    const gone = NOW * 1000 + 60_000;
    issuer.revoke('writ', 'AAAAAAAAAAAAAAAAAAAAAA', { expiresAt: gone }); // a derived one: its writs expire in a minute
    issuer.revoke('task', 'forever'); // no expiry
    issuer.revoke('writ', w.claims.jti, { expiresAt: gone + 3_600_000 }); // C's own, matters an hour longer
    await until(() => src.sequence === 3);
    expect(src.size).toBe(3);
    expect(src.prune()).toBe(0);
    // Past the first one's expiry plus the margin: it goes, the others stay.
    clock.advance(60_000 + PRUNE_MARGIN_MS + 1);
    expect(src.prune()).toBe(1);
    expect(src.size).toBe(2);
    expect(refusal(() => verify(src)).code).toBe('ERR_WRIT_REVOKED');
    // Room again: a fourth revocation is held, not over the limit.
    issuer.revoke('task', 'another');
    await until(() => src.sequence === 4);
    expect(src.size).toBe(3);
    expect(src.status().unusable).toBeUndefined();
  });

  it('fails closed past its limit rather than forget, and recovers when a snapshot fits', async () => {
    const { issuer, connector, src } = setup({ maxRevocations: 3 });
    await src.synced();
    for (const t of ['a', 'b', 'c']) issuer.revoke('task', t);
    expect(verify(src).spiffeId).toBe(C.spiffeId);
    issuer.revoke('task', 'd');
    const r = refusal(() => verify(src));
    expect(r).toMatchObject({ code: 'ERR_WRIT_INVALID', cause: { code: 'ERR_REVOCATION_UNAVAILABLE' } });
    expect(r.message).toMatch(/it holds more than 3 revocations, its limit; refusing rather than forgetting/);
    expect(src.sequence).toBe(4);
    // The issuer prunes what expired; a resubscription from before that gets a snapshot that fits.
    connector.hold();
    connector.kill();
    issuer.revoke('task', 'e');
    issuer.prune(5);
    const stale = new WatchRevocationSource({ addresses: ['issuer-a'], connector, since: 1, clock: new ManualClock(NOW * 1000) });
    sources.push(stale);
    stale.start();
    connector.release();
    await stale.synced();
    await until(() => src.status().connected);
    // src resumed from 4 (no snapshot: 5 follows 4) and is still over its limit...
    expect(() => verify(src)).toThrow(/more than 3 revocations/);
    // ...while a source that needed a snapshot holds exactly what is in force.
    expect(stale.size).toBe(1);
    expect(verify(stale).spiffeId).toBe(C.spiffeId);
  });

  it('stays unusable after a revocation it cannot apply (a kind newer than this verifier)', async () => {
    const { issuer, src } = setup();
    await src.synced();
    issuer.revoke('spaceship', 'enterprise');
    issuer.heartbeat();
    await new Promise((r) => setTimeout(r, 20));
    const r = refusal(() => verify(src));
    expect(r.message).toMatch(/the issuer sent a revocation this verifier cannot apply \(sequence 1: revocation: unknown target kind "spaceship"/);
    expect(src.status().unusable).toMatch(/upgrade the verifier/);
  });

  it('drops a connection that goes silent and resubscribes', async () => {
    const clock = new ManualClock(NOW * 1000);
    let opens = 0;
    const connector: WatchConnector = {
      open(_a, _since, on) {
        opens++;
        if (opens === 1) queueMicrotask(() => on.message({ type: 'heartbeat', sequence: 0, at: 0 }));
        return { close() {} };
      },
    };
    const src = source(connector, { maxStalenessMs: 40 }, clock);
    await src.synced();
    clock.advance(100);
    await until(() => opens >= 2);
    expect(src.status().unusable).toBeUndefined();
  });

  it('backs off exponentially with jitter between failures, up to its maximum', async () => {
    const connector: WatchConnector = {
      open(_a, _s, on) {
        queueMicrotask(() => on.end({ reason: 'unreachable' }));
        return { close() {} };
      },
    };
    const src = source(connector, { reconnectInitialMs: 4, reconnectMaxMs: 32 });
    const delays: number[] = [];
    src.onConnection((e) => {
      if (e.type === 'disconnected') delays.push(e.retryInMs);
    });
    await until(() => delays.length >= 6, 5000);
    const ceilings = [4, 8, 16, 32, 32, 32];
    delays.slice(0, 6).forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(ceilings[i]! / 2);
      expect(d).toBeLessThanOrEqual(ceilings[i]!);
    });
  });

  it('tells onRevoked listeners after applying: a check inside the listener already refuses', async () => {
    const { issuer, src } = setup();
    await src.synced();
    const seen: string[] = [];
    src.onRevoked((r) => seen.push(`${r.sequence} ${refusal(() => verify(src)).code}`));
    issuer.revoke('grant', w.claims.lineage[0]!);
    expect(seen).toEqual(['1 ERR_WRIT_REVOKED']);
  });
});
