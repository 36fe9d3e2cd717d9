/**
 * The sidecar's revocation guard over an in-memory issuer (test/fakes/watch-issuer.ts: the real
 * RevocationFeed) and a clock the test moves: it fires once, only for what matches, fails closed
 * on an identity it cannot read, re-checks an identity that arrived while it could not answer at
 * the next heartbeat, and reports its freshness through disconnects.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parseGrant } from '../../src/delegation/grant.js';
import { keySigner } from '../../src/jose/jws.js';
import { RevocationGuard } from '../../src/sidecar/revocation-guard.js';
import type { SidecarIdentity } from '../../src/sidecar/state.js';
import { FakeSidecarState } from '../fakes/sidecar-state.js';
import { FakeWatchConnector, FakeWatchIssuer } from '../fakes/watch-issuer.js';
import { FakeIssuer, agent } from '../helpers/writ-fixture.js';

const T0 = 1_790_000_000_000;

function world() {
  const clock = new ManualClock(T0);
  const issuer = new FakeWatchIssuer(() => clock.now().getTime());
  const connector = new FakeWatchConnector({ 'issuer:1': issuer });
  const state = new FakeSidecarState();
  const reasons: string[] = [];
  const guard = new RevocationGuard({
    addresses: ['issuer:1'],
    connector,
    state,
    clock,
    maxStalenessMs: 15_000,
    onRevoked: (r) => {
      reasons.push(r);
      state.revoke(r);
    },
  });
  const iss = new FakeIssuer();
  const a = agent('planner');
  const root = iss.rootGrant(a, { now: T0 / 1000 - 60, taskId: 'task-7' });
  const writ = iss.writ(a, [root], { now: T0 / 1000 - 10 }).writ;
  const identity = (o: Partial<SidecarIdentity> = {}): SidecarIdentity => ({
    spiffeId: a.spiffeId,
    svidChain: [],
    signer: keySigner(a.key),
    bundle: { trustDomain: 'example.org', x509Authorities: [], jwks: '{"keys":[]}', pem: '' },
    notAfter: T0 + 3_600_000,
    writ,
    obtainedAt: T0,
    ...o,
  });
  return { clock, issuer, connector, state, guard, reasons, a, root, writ, identity };
}

describe('RevocationGuard', () => {
  it('fires once, for the first revocation that matches, and not for one that does not', async () => {
    const w = world();
    w.state.serve(w.identity());
    w.guard.start();
    w.issuer.heartbeat();
    await w.guard.synced();
    w.issuer.revoke('task', 'another-task');
    expect(w.reasons).toEqual([]);
    expect(w.guard.freshness().sequence).toBe(1);
    w.issuer.revoke('task', 'task-7', { reason: 'done' });
    w.issuer.revoke('agent', w.a.spiffeId);
    expect(w.reasons).toEqual(['task task-7 revoked at sequence 2 (done)']);
    expect(w.guard.revoked).toBe('task task-7 revoked at sequence 2 (done)');
    w.guard.close();
  });

  it('fails closed on a served identity whose revocation facts cannot be read', () => {
    const w = world();
    w.state.serve(w.identity({ writ: 'not.a.writ' }));
    w.guard.start();
    expect(w.reasons).toHaveLength(1);
    expect(w.reasons[0]).toMatch(/^the served identity cannot be matched against revocations/);
    w.guard.close();
  });

  it('checks an identity that appeared while the view was stale at the next heartbeat', async () => {
    const w = world();
    w.guard.start();
    w.issuer.heartbeat();
    await w.guard.synced();
    // Revoked while this sidecar had no identity: nothing to kill yet.
    w.issuer.revoke('grant', parseGrant(w.root).claims.jti);
    expect(w.reasons).toEqual([]);
    // The view goes stale (no heartbeat for longer than the limit), and only then the identity arrives.
    w.clock.advance(15_001);
    w.state.serve(w.identity());
    expect(w.reasons).toEqual([]);
    w.issuer.heartbeat();
    expect(w.reasons).toHaveLength(1);
    expect(w.reasons[0]).toMatch(/^grant .* revoked at sequence 1/);
    w.guard.close();
  });

  it('screens a new identity before it is served: what it holds refuses it even when stale, and fires once', async () => {
    const w = world();
    w.guard.start();
    // Nothing held, never synced: nothing to refuse (the identity is checked again once served).
    expect(w.guard.screen(w.identity())).toBeUndefined();
    w.issuer.heartbeat();
    await w.guard.synced();
    w.issuer.revoke('task', 'another-task');
    expect(w.guard.screen(w.identity())).toBeUndefined();
    w.issuer.revoke('grant', parseGrant(w.root).claims.jti);
    w.clock.advance(15_001);
    const reason = w.guard.screen(w.identity());
    expect(reason).toMatch(/^grant .* revoked at sequence 2; the new identity was not served$/);
    expect(w.reasons).toEqual([reason]);
    expect(w.guard.screen(w.identity())).toBe(reason);
    expect(w.reasons).toHaveLength(1);
    w.guard.close();
  });

  it('screening an identity whose revocation facts cannot be read fails closed', () => {
    const w = world();
    w.guard.start();
    expect(w.guard.screen(w.identity({ writ: 'not.a.writ' }))).toMatch(/^the new identity cannot be matched against revocations/);
    expect(w.reasons).toHaveLength(1);
    w.guard.close();
  });

  // An identity without a writ is recognized by the entry and selectors the issuer's answer named.
  const bare = { writ: undefined, entryId: '6f1c2a34-0b7d-4e5f-9a81-2c3d4e5f6a7b', selectors: ['tpm:ek_hash:ab12', 'tpm:pcr:7:cd34'] } as const;

  it.each([
    ['entry', '6f1c2a34-0b7d-4e5f-9a81-2c3d4e5f6a7b'],
    ['platform', 'tpm:ek_hash:ab12'],
    ['platform', 'tpm:pcr:7:cd34'],
  ] as const)('an identity without a writ: revoking its %s %s fires', async (kind, id) => {
    const w = world();
    w.state.serve(w.identity(bare));
    w.guard.start();
    w.issuer.heartbeat();
    await w.guard.synced();
    w.issuer.revoke(kind, kind === 'entry' ? '6f1c2a34-0b7d-4e5f-9a81-2c3d4e5f6a7c' : 'tpm:ek_hash:ab13');
    w.issuer.revoke('task', 'task-7');
    expect(w.reasons).toEqual([]);
    w.issuer.revoke(kind, id);
    expect(w.reasons).toEqual([`${kind} ${id} revoked at sequence 3 (test)`]);
    w.guard.close();
  });

  it('an identity without a writ: an entry or platform revocation already held refuses it at screening', async () => {
    for (const [kind, id] of [
      ['entry', '6f1c2a34-0b7d-4e5f-9a81-2c3d4e5f6a7b'],
      ['platform', 'tpm:ek_hash:ab12'],
    ] as const) {
      const w = world();
      w.guard.start();
      w.issuer.heartbeat();
      await w.guard.synced();
      w.issuer.revoke(kind, id);
      expect(w.guard.screen(w.identity({ writ: undefined }))).toBeUndefined();
      expect(w.guard.screen(w.identity(bare))).toMatch(new RegExp(`^${kind} ${id} revoked at sequence 1; the new identity was not served$`));
      w.guard.close();
    }
  });

  it('reports freshness: confirmed by heartbeats, not connected after a drop, its sequence kept', async () => {
    const w = world();
    w.guard.start();
    expect(w.guard.freshness()).toEqual({ sequence: 0, confirmedAt: 0, connected: false });
    w.issuer.heartbeat();
    await w.guard.synced();
    w.issuer.revoke('task', 'x-1');
    expect(w.guard.freshness()).toEqual({ sequence: 1, confirmedAt: T0, connected: true });
    w.clock.advance(5_000);
    w.issuer.heartbeat();
    expect(w.guard.freshness().confirmedAt).toBe(T0 + 5_000);
    w.connector.down.add('issuer:1');
    w.connector.kill();
    expect(w.guard.freshness()).toEqual({ sequence: 1, confirmedAt: T0 + 5_000, connected: false });
    w.guard.close();
  });
});
