/**
 * A renewed identity is checked against the revocations the sidecar's guard already holds
 * before it is published (src/sidecar/daemon.ts `adopt`, revocation-guard.ts `screen`): a
 * running sidecar (runSidecar: state machine, guard, socket) over an in-memory Watch issuer and
 * an identity source that answers the renewal with an identity under a lineage the guard knows
 * is revoked (the real issuer would refuse it with ERR_REVOKED; this stands for one that did
 * not). The Workload API stream on the socket and every state listener never see it, and the
 * sidecar is revoked as on a Watch event, whether the guard's view is fresh or stale.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { parseGrant } from '../../src/delegation/grant.js';
import { keySigner } from '../../src/jose/jws.js';
import type { IdentitySource, ObtainRequest, Obtained } from '../../src/sidecar/identity-source.js';
import { runSidecar } from '../../src/sidecar/run.js';
import type { SidecarIdentity, SidecarStatus } from '../../src/sidecar/state.js';
import { FakeWatchConnector, FakeWatchIssuer } from '../fakes/watch-issuer.js';
import { securityHeader, workloadClient } from '../helpers/sidecar.js';
import { FakeIssuer, agent } from '../helpers/writ-fixture.js';

const T0 = 1_790_000_000_000;

/** Answers each obtain with the next identity of the list. */
class ListSource implements IdentitySource {
  readonly requests: ObtainRequest[] = [];
  constructor(private readonly answers: SidecarIdentity[]) {}
  async obtain(req: ObtainRequest): Promise<Obtained> {
    this.requests.push(req);
    const identity = this.answers.shift();
    if (!identity) throw new Error('no more identities');
    return { identity, jwtSvids: [], sameKeySession: true };
  }
}

describe.each([
  { view: 'fresh', staleByMs: 0 },
  // Past --revocation-max-staleness (15 s): the guard cannot say "not revoked", but what it holds still counts.
  { view: 'stale', staleByMs: 15_001 },
])('a renewal under a lineage the guard knows is revoked ($view view)', ({ staleByMs }) => {
  it('is never served: the stream and listeners see only the first identity, then the revocation', async () => {
    let now = T0;
    const watch = new FakeWatchIssuer(() => now);
    const connector = new FakeWatchConnector({ 'issuer:1': watch });
    const iss = new FakeIssuer();
    const a = agent('planner');
    const rootA = iss.rootGrant(a, { now: T0 / 1000 - 60, taskId: 'task-a' });
    const rootB = iss.rootGrant(a, { now: T0 / 1000 - 60, taskId: 'task-b' });
    const identity = (root: string, tag: string): SidecarIdentity => {
      const writ = iss.writ(a, [root], { now: T0 / 1000 - 10 }).writ;
      return {
        spiffeId: a.spiffeId,
        svidChain: [Buffer.from(`svid-${tag}`)],
        signer: keySigner(a.key),
        privateKeyPkcs8: a.key.export({ type: 'pkcs8', format: 'der' }) as Buffer,
        bundle: { trustDomain: 'example.org', x509Authorities: [Buffer.from('ca')], jwks: '{"keys":[]}', pem: '' },
        notAfter: T0 + 3_600_000,
        writ,
        obtainedAt: T0,
      };
    };
    const first = identity(rootA, 'first');
    const renewed = identity(rootB, 'renewed');
    const source = new ListSource([first, renewed]);
    const dir = mkdtempSync(join(tmpdir(), 'wss-'));
    const r = await runSidecar({
      source,
      now: () => now,
      socketPath: join(dir, 'agent.sock'),
      revocation: { addresses: ['issuer:1'], connector },
    });
    const client = workloadClient(join(dir, 'agent.sock'));
    try {
      watch.heartbeat();
      await r.guard!.synced();
      expect(await r.sidecar.ready()).toBe(first);

      const seen: SidecarStatus[] = [];
      r.sidecar.subscribe((s) => seen.push(s));
      const call = client.FetchX509SVID({}, securityHeader());
      const svids: string[] = [];
      call.on('data', (m: { svids: Array<{ x509_svid: Buffer }> }) => svids.push(Buffer.from(m.svids[0]!.x509_svid).toString()));
      const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
      while (svids.length === 0) await new Promise((res) => setTimeout(res, 5));

      // Lineage B is revoked; the identity served (lineage A) is not: the sidecar serves on.
      watch.revoke('grant', parseGrant(rootB).claims.jti, { reason: 'compromised' });
      expect(r.sidecar.current().state).toBe('serving');
      now += staleByMs;

      r.sidecar.renewNow();
      const revoked = await new Promise<SidecarStatus>((resolve) => {
        const s = r.sidecar.current();
        if (s.state === 'revoked') return resolve(s);
        const off = r.sidecar.subscribe((n) => {
          if (n.state !== 'revoked') return;
          off();
          resolve(n);
        });
      });
      expect(source.requests).toHaveLength(2);
      expect(revoked).toMatchObject({ state: 'revoked', reason: expect.stringMatching(/^grant .* revoked at sequence 1/) });
      expect(r.guard!.revoked).toBe((revoked as { reason: string }).reason);

      const err = await ended;
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(svids).toEqual(['svid-first']);
      expect(seen.map((s) => s.state)).toEqual(['revoked']);
      expect(seen.some((s) => s.state === 'serving' && s.identity === renewed)).toBe(false);
      await expect(r.sidecar.jwtSvid(['https://rp.example'])).rejects.toThrow(/revoked/);
    } finally {
      client.close();
      await r.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
