/**
 * The sidecar's revocation guard (src/sidecar/revocation-guard.ts) against a real issuer: three
 * hops made by `writ server` (principal → A → B → C, join tokens), one guard per hop subscribed to
 * RevocationService.Watch over loopback TLS, and `Revoke` as the operator. Each kind of
 * revocation kills exactly the hops the verifier's matcher says (the registration-entry and
 * platform kinds too: a platform is named only by hardware evidence, so those hops attest with the
 * fake HSM of test/fakes/evidence-fake); a revocation made before the
 * sidecar started, or before its identity existed, is caught too; an AgentService over the
 * guarded state stops serving at once.
 */
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest } from '../../src/agent/attest-client.js';
import { createGrant } from '../../src/agent/grant-client.js';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { BUILTIN_EVIDENCE } from '../../src/attestation/builtins.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { delegateGrant, parseGrant } from '../../src/delegation/grant.js';
import { jwkThumbprint, keySigner } from '../../src/jose/jws.js';
import { RevocationGuard } from '../../src/sidecar/revocation-guard.js';
import type { SidecarIdentity } from '../../src/sidecar/state.js';
import { parseWrit } from '../../src/writ/writ.js';
import { FAKE_TYPE, fakePlugin, fakeProducer } from '../fakes/evidence-fake/plugin.js';
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

  // Fake HSM devices (test/fakes/evidence-fake): evidence naming a platform, `fake_hsm:device:<hash>`,
  // as a TPM's names `tpm:ek_hash:<hex>`; a join token names none (the issuer refuses to revoke
  // `join_token:<id>` as a platform: no writ was issued on one), so platform revocations need these.
  let dir: string;
  const devices: Array<{ file: string; platform: string; used: boolean }> = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wrg-'));
    const pubs: string[] = [];
    for (let i = 0; i < 2; i++) {
      const d = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const file = join(dir, `device${i}.key`);
      writeFileSync(file, d.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      writeFileSync(`${file}.pub`, d.publicKey.export({ type: 'spki', format: 'pem' }));
      pubs.push(`${file}.pub`);
      const hash = createHash('sha256')
        .update(d.publicKey.export({ type: 'spki', format: 'der' }))
        .digest('hex');
      devices.push({ file, platform: `${FAKE_TYPE}:device:${hash}`, used: false });
    }
    oidc = await startOidc();
    w = await startServer(
      { principals: [{ issuer: oidc.issuer, audience: 'writ' }], revocation: { heartbeat: '200ms' }, attestation: { [FAKE_TYPE]: { devices: pubs } } },
      { evidence: [...BUILTIN_EVIDENCE, fakePlugin] },
    );
    await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
  });
  afterAll(async () => {
    for (const g of guards) g.close();
    await w?.stop();
    await oidc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * principal → A → B, A attested by a fake HSM device of its own (its writ's `att.sel` names the
   * device, and the issuer records it as A's platform), B by a join token with a grant from A.
   */
  async function hsmHops(name: string): Promise<{ A: Hop; B: Hop; platform: string }> {
    const device = devices.find((d) => !d.used)!;
    device.used = true;
    const admin = adminClients(w.adminSocket).admin;
    const spiffeId = `spiffe://example.org/agent/${name}/planner`;
    const created = await admin.createEntry({ entry: { spiffeId, selectors: [{ type: FAKE_TYPE, value: device.platform.slice(FAKE_TYPE.length + 1) }] } });
    const newKey = () => {
      const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
      return { key, jkt: jwkThumbprint(createPublicKey(key)) };
    };
    const hop = (k: { key: KeyObject; jkt: string }, writ: string, entryId: string, selector: string): Hop => ({
      ...k,
      writ,
      claims: parseWrit(writ).claims,
      entryId,
      selector,
    });
    const a = newKey();
    const root = await createGrant(w.address, w.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: name,
      goal: 'triage the open issues of acme/widgets',
      ttlSeconds: 1800,
      scope: [{ action: 'repo:*', resource: 'repo://acme/*' }],
      maxDepth: 3,
      delegateJkt: a.jkt,
    });
    const session = await fakeProducer.open({ 'fake-hsm': device.file });
    const ra = await attest({
      server: w.address,
      bundlePem: w.bundlePem,
      evidenceType: FAKE_TYPE,
      key: a.key,
      respond: (c) => session.respond(c),
      grants: [root.grant],
    });
    await session.close();
    const A = hop(a, ra.writ!, created.entry!.id, device.platform);
    const b = newKey();
    const g1 = delegateGrant(root.grant, A.key, {
      childJkt: b.jkt,
      now: Math.floor(Date.now() / 1000),
      from: { sub: A.claims.sub, writ: A.claims.jti },
      scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
    });
    const tok = await admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org/agent/${name}/researcher` });
    const rb = await attest({
      server: w.address,
      bundlePem: w.bundlePem,
      evidenceType: 'join_token',
      key: b.key,
      respond: () => Buffer.from(tok.token),
      grants: [root.grant, g1],
    });
    return { A, B: hop(b, rb.writ!, tok.entryId, tok.selector), platform: device.platform };
  }

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

  // A writ names its registration entry (`reg`) and attested selectors (`att.sel`); the issuer
  // also publishes every writ under the entry or platform by jti, which kills those below them.
  it("revoking B's registration entry kills B (its writ names it) and C (delegated from B's writ), not A", async () => {
    const { x, reasons } = await kills((x) => ['entry', x.B.entryId], ['B', 'C']);
    expect(x.B.claims.reg).toBe(x.B.entryId);
    expect(reasons[0]).toMatch(new RegExp(`^entry ${x.B.entryId} revoked at sequence \\d+ \\(e2e\\)$`));
    expect(reasons[1]).toMatch(new RegExp(`^writ ${x.B.claims.jti} revoked at sequence \\d+ \\(e2e\\)$`));
  });

  it("revoking C's registration entry kills C only", async () => {
    await kills((x) => ['entry', x.C.entryId], ['C']);
  });

  it("revoking A's platform (the HSM device it attested with) kills A and B (delegated from A's writ); a join-token world lives on", async () => {
    const { A, B, platform } = await hsmHops('guard-platform');
    expect(A.claims.att.sel).toContain(platform);
    const other = await hops();
    const g = { A: guard(identityOf(A)), B: guard(identityOf(B)), other: guard(identityOf(other.C)) };
    await Promise.all(Object.values(g).map((s) => s.guard.synced()));
    // A join token names no platform: the issuer knows none by its selector.
    await expect(revokeAsOperator(w.adminSocket, 'platform', other.C.selector)).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    const res = await revokeAsOperator(w.adminSocket, 'platform', platform, 'e2e');
    expect(await g.A.revoked).toMatch(new RegExp(`^platform ${platform} revoked at sequence \\d+ \\(e2e\\)$`));
    expect(await g.B.revoked).toMatch(new RegExp(`^writ ${A.claims.jti} revoked at sequence \\d+ \\(e2e\\)$`));
    await expect.poll(() => g.other.guard.freshness().sequence).toBeGreaterThanOrEqual(Number(res.sequence));
    expect(g.other.state.current().state).toBe('serving');
    for (const d of [g.A, g.B]) {
      expect(d.state.current().state).toBe('revoked');
      expect(d.calls).toBe(1);
    }
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

  /** A hop holding a writ that may delegate, and the revocation that kills it directly. */
  type Case = () => Promise<{ hop: Hop; target: [string, string] }>;
  it.each<[string, Case]>([
    [
      "C's root grant is revoked",
      async () => {
        const x = await hops();
        return { hop: x.C, target: ['grant', parseGrant(x.root).claims.jti] };
      },
    ],
    [
      "C's registration entry is revoked",
      async () => {
        const x = await hops();
        return { hop: x.C, target: ['entry', x.C.entryId] };
      },
    ],
    [
      "the hop's platform (an HSM device) is revoked",
      async () => {
        const x = await hsmHops('guard-platform-service');
        return { hop: x.A, target: ['platform', x.platform] };
      },
    ],
  ])('an AgentService over a guarded state ends FetchWrit with PERMISSION_DENIED and refuses Delegate once %s', async (_what, world) => {
    const { hop, target } = await world();
    const g = guard(identityOf(hop));
    await g.guard.synced();
    const h = await harness({}, g.state);
    try {
      const s = fetchWrit(h);
      expect((await s.messages(1))[0]?.writ).toBe(hop.writ);
      // Live authority: the hop may delegate while the view is fresh (at depth 2 at most, the root allows 3).
      await expect(call(h, 'delegate', { childJkt: agent('d').jkt })).resolves.toBeDefined();
      const [kind, id] = target;
      await revokeAsOperator(w.adminSocket, kind, id);
      expect(await g.revoked).toMatch(new RegExp(`^${kind} ${id} revoked at sequence`));
      const e = await s.ended();
      expect({ code: e.code, writCode: e.metadata.get('writ-error-code')[0] }).toEqual({ code: grpc.status.PERMISSION_DENIED, writCode: 'ERR_REVOKED' });
      await expectStatus(
        call(h, 'delegate', { childJkt: agent('e').jkt }),
        grpc.status.PERMISSION_DENIED,
        'ERR_REVOKED',
        /revoked: [a-z]+ .* revoked at sequence/,
      );
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
