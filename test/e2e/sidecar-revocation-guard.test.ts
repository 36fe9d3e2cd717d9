/**
 * The sidecar's revocation guard (src/sidecar/revocation-guard.ts) against a real issuer: three
 * hops made by `writ server` (principal → A → B → C, join tokens), one guard per hop subscribed to
 * RevocationService.Watch over loopback TLS, and `Revoke` as the operator. Each kind of
 * revocation kills exactly the hops the verifier's matcher says; a revocation made before the
 * sidecar started, or before its identity existed, is caught too; an AgentService over the
 * guarded state stops serving at once.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { parseGrant } from '../../src/delegation/grant.js';
import { keySigner } from '../../src/jose/jws.js';
import { RevocationGuard } from '../../src/sidecar/revocation-guard.js';
import type { SidecarIdentity } from '../../src/sidecar/state.js';
import { FakeSidecarState } from '../fakes/sidecar-state.js';
import { call, expectStatus, fetchWrit, harness } from '../helpers/agent-socket.js';
import { agent } from '../helpers/writ-fixture.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { revokeAsOperator, threeHops, type Hop } from '../helpers/revocation.js';
import { startServer } from '../helpers/server.js';

function identityOf(h: Hop, o: { writ?: boolean } = {}): SidecarIdentity {
  return {
    spiffeId: h.claims.sub,
    svidChain: [],
    signer: keySigner(h.key),
    bundle: { trustDomain: 'example.org', x509Authorities: [], jwks: '{"keys":[]}', pem: '' },
    notAfter: h.claims.exp * 1000,
    ...(o.writ === false ? {} : { writ: h.writ, writExpiresAt: h.claims.exp * 1000, task: h.claims.task.id }),
    obtainedAt: Date.now(),
  };
}

/** A sidecar's state, its guard, and a promise of the revocation reason. */
interface Guarded {
  readonly state: FakeSidecarState;
  readonly guard: RevocationGuard;
  readonly revoked: Promise<string>;
  /** How many times onRevoked was called. */
  calls: number;
}

describe('RevocationGuard against a real issuer', () => {
  let w: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  const guards: RevocationGuard[] = [];
  let n = 0;

  const guard = (identity?: SidecarIdentity): Guarded => {
    const state = new FakeSidecarState();
    if (identity) state.serve(identity);
    let resolve!: (r: string) => void;
    const revoked = new Promise<string>((r) => {
      resolve = r;
    });
    const g: Guarded = { state, revoked, calls: 0 } as Guarded;
    const rg = new RevocationGuard({
      addresses: [w.address],
      connector: grpcWatchConnector(w.bundlePem),
      state,
      onRevoked: (reason) => {
        g.calls++;
        state.revoke(reason);
        resolve(reason);
      },
      reconnectInitialMs: 20,
      reconnectMaxMs: 200,
    });
    (g as { guard: RevocationGuard }).guard = rg;
    guards.push(rg);
    state.freshnessFrom = () => rg.freshness();
    rg.start();
    return g;
  };

  const hops = () => threeHops(w, oidc, { taskId: `guard-${++n}` });

  beforeAll(async () => {
    oidc = await startOidc();
    w = await startServer({ principals: [{ issuer: oidc.issuer, audience: 'writ' }], revocation: { heartbeat: '200ms' } });
    await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
  });
  afterAll(async () => {
    for (const g of guards) g.close();
    await w?.stop();
    await oidc?.stop();
  });

  /** Guards on A, B and C; revokes `target(world)`; then the hops in `dead` die and the others live on. */
  async function kills(target: (x: Awaited<ReturnType<typeof hops>>) => [string, string], dead: Array<'A' | 'B' | 'C'>) {
    const x = await hops();
    const g = { A: guard(identityOf(x.A)), B: guard(identityOf(x.B)), C: guard(identityOf(x.C)) };
    await Promise.all(Object.values(g).map((s) => s.guard.synced()));
    const [kind, id] = target(x);
    const res = await revokeAsOperator(w.adminSocket, kind, id, 'e2e');
    const reasons = await Promise.all(dead.map((d) => g[d].revoked));
    for (const r of reasons) expect(r).toContain(`revoked at sequence`);
    // The live ones have applied the same event (and nothing killed them): their sequence has passed it.
    for (const live of (['A', 'B', 'C'] as const).filter((h) => !dead.includes(h))) {
      await expect.poll(() => g[live].guard.freshness().sequence).toBeGreaterThanOrEqual(Number(res.sequence));
      expect(g[live].state.current().state, live).toBe('serving');
      expect(g[live].guard.revoked).toBeUndefined();
    }
    for (const d of dead) {
      expect(g[d].state.current().state).toBe('revoked');
      expect(g[d].calls).toBe(1);
    }
    return { x, g, reasons };
  }

  it('revoking the root grant kills A, B and C, naming the grant', async () => {
    const { x, reasons } = await kills((x) => ['grant', parseGrant(x.root).claims.jti], ['A', 'B', 'C']);
    for (const r of reasons) expect(r).toMatch(new RegExp(`^grant ${parseGrant(x.root).claims.jti} revoked at sequence \\d+ \\(e2e\\)$`));
  });

  it('revoking the task kills the three hops', async () => {
    await kills((x) => ['task', x.A.claims.task.id], ['A', 'B', 'C']);
  });

  it("revoking C's key kills C only", async () => {
    await kills((x) => ['key', x.C.jkt], ['C']);
  });

  it("revoking B's key kills B and C (a key above C), not A", async () => {
    await kills((x) => ['key', x.B.jkt], ['B', 'C']);
  });

  it("revoking B's SPIFFE ID kills B and C (its delegator), not A", async () => {
    await kills((x) => ['agent', x.B.claims.sub], ['B', 'C']);
  });

  it("revoking B's writ kills B and C (delegated from it), not A", async () => {
    await kills((x) => ['writ', x.B.claims.jti], ['B', 'C']);
  });

  it("revoking A's hop grant to B kills B and C, not A", async () => {
    await kills((x) => ['grant', x.B.claims.lineage[1]!], ['B', 'C']);
  });

  it('a revocation made before the sidecar subscribed kills it as it catches up', async () => {
    const x = await hops();
    await revokeAsOperator(w.adminSocket, 'grant', parseGrant(x.root).claims.jti, 'before');
    const g = guard(identityOf(x.C));
    expect(await g.revoked).toMatch(/^grant .* revoked at sequence \d+ \(before\)$/);
  });

  it('an identity obtained after its lineage was revoked is killed when it appears (a renewal, a late first identity)', async () => {
    const x = await hops();
    const g = guard();
    await g.guard.synced();
    const res = await revokeAsOperator(w.adminSocket, 'task', x.C.claims.task.id, 'late');
    await expect.poll(() => g.guard.freshness().sequence).toBeGreaterThanOrEqual(Number(res.sequence));
    expect(g.calls).toBe(0);
    g.state.serve(identityOf(x.C));
    expect(await g.revoked).toMatch(/task .* revoked at sequence/);
  });

  it('guards a sidecar without a writ by its SPIFFE ID and key', async () => {
    const x = await hops();
    const byAgent = guard(identityOf(x.B, { writ: false }));
    const byKey = guard(identityOf(x.C, { writ: false }));
    await Promise.all([byAgent.guard.synced(), byKey.guard.synced()]);
    await revokeAsOperator(w.adminSocket, 'agent', x.B.claims.sub);
    expect(await byAgent.revoked).toMatch(/^agent spiffe:\/\/example.org\/agent\/.*\/researcher revoked/);
    expect(byKey.calls).toBe(0);
    await revokeAsOperator(w.adminSocket, 'key', x.C.jkt);
    expect(await byKey.revoked).toMatch(/^key .* revoked/);
  });

  it('reports its freshness: connected, confirmed by heartbeats, at the last sequence', async () => {
    const g = guard();
    await g.guard.synced();
    await expect.poll(() => g.guard.freshness().connected).toBe(true);
    const f = g.guard.freshness();
    expect(f.confirmedAt).toBeGreaterThan(0);
    expect(f.confirmedAt).toBeLessThanOrEqual(Date.now());
  });

  it("an AgentService over C's guarded state ends FetchWrit with PERMISSION_DENIED and refuses Delegate once the root grant is revoked", async () => {
    const x = await hops();
    const g = guard(identityOf(x.C));
    await g.guard.synced();
    const h = await harness({}, g.state);
    try {
      const s = fetchWrit(h);
      expect((await s.messages(1))[0]?.writ).toBe(x.C.writ);
      // Live authority: C may delegate while the view is fresh (C is at depth 2, the root allows 3).
      await expect(call(h, 'delegate', { childJkt: agent('d').jkt })).resolves.toBeDefined();
      await revokeAsOperator(w.adminSocket, 'grant', parseGrant(x.root).claims.jti);
      await g.revoked;
      const e = await s.ended();
      expect({ code: e.code, writCode: e.metadata.get('writ-error-code')[0] }).toEqual({ code: grpc.status.PERMISSION_DENIED, writCode: 'ERR_REVOKED' });
      await expectStatus(call(h, 'delegate', { childJkt: x.A.jkt }), grpc.status.PERMISSION_DENIED, 'ERR_REVOKED', /revoked: grant .* revoked at sequence/);
      await expectStatus(
        call(h, 'createProof', { audience: 'spiffe://example.org/x', method: 'GET /' }),
        grpc.status.PERMISSION_DENIED,
        'ERR_REVOKED',
        /revoked/,
      );
    } finally {
      await h.stop();
    }
  });
});
