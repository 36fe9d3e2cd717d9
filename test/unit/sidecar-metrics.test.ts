/** `writ agent run --metrics-listen`: the sidecar's Prometheus metrics, a view of its state (src/sidecar/metrics.ts). */
import { generateKeyPairSync } from 'node:crypto';
import { request } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { GrpcCallError } from '../../src/agent/attest-client.js';
import { ManualClock } from '../../src/clock.js';
import { keySigner } from '../../src/jose/jws.js';
import { Sidecar } from '../../src/sidecar/daemon.js';
import type { IdentitySource, Obtained } from '../../src/sidecar/identity-source.js';
import { SidecarMetrics } from '../../src/sidecar/metrics.js';
import { RevocationGuard } from '../../src/sidecar/revocation-guard.js';
import type { SidecarIdentity } from '../../src/sidecar/state.js';
import { FakeSidecarState } from '../fakes/sidecar-state.js';
import { FakeWatchConnector, FakeWatchIssuer } from '../fakes/watch-issuer.js';

const T0 = 1_800_000_000_000;
const identity = (notAfter: number): SidecarIdentity => ({
  spiffeId: 'spiffe://example.org/agent/m',
  svidChain: [],
  signer: keySigner(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey),
  bundle: { trustDomain: 'example.org', x509Authorities: [], jwks: '{"keys":[]}', pem: '' },
  notAfter,
  obtainedAt: T0,
});

const httpGet = (port: number, method: string, path: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, method, path }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    r.on('error', reject);
    r.end();
  });

const value = (text: string, name: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
};

describe('SidecarMetrics', () => {
  it('counts identities (first and renewals), expirations, and reports expiry and revocation staleness', async () => {
    const st = new FakeSidecarState();
    let now = T0;
    const m = new SidecarMetrics(st, () => now);
    let text = await m.registry.metrics();
    expect(text).toContain('writ_sidecar_state{state="pending"} 1');
    expect(value(text, 'writ_sidecar_x509_svid_expiry_seconds')).toBeNaN();
    expect(value(text, 'writ_sidecar_revocation_staleness_seconds')).toBeNaN();

    st.serve(identity(T0 + 60_000));
    now = T0 + 15_000;
    st.freshness = { sequence: 3, confirmedAt: T0 + 10_000, connected: true };
    text = await m.registry.metrics();
    expect(value(text, 'writ_sidecar_identities_total')).toBe(1);
    expect(value(text, 'writ_sidecar_x509_svid_expiry_seconds')).toBe(45);
    expect(value(text, 'writ_sidecar_revocation_staleness_seconds')).toBe(5);
    expect(value(text, 'writ_sidecar_revocation_connected')).toBe(1);
    expect(text).toContain('writ_sidecar_state{state="serving"} 1');

    st.serve(identity(T0 + 120_000)); // a renewal
    st.set({ state: 'expired', reason: 'not renewed' } as never);
    st.set({ state: 'expired', reason: 'still not renewed' } as never);
    text = await m.registry.metrics();
    expect(value(text, 'writ_sidecar_identities_total')).toBe(2);
    expect(value(text, 'writ_sidecar_expirations_total')).toBe(1);
    expect(value(text, 'writ_sidecar_x509_svid_expiry_seconds')).toBeNaN();
    st.revoke('gone');
    expect(await m.registry.metrics()).toContain('writ_sidecar_state{state="revoked"} 1');
    m.close();
    expect(st.subscribers).toBe(0);
  });

  it('serves GET /metrics only', async () => {
    const m = new SidecarMetrics(new FakeSidecarState(), () => T0);
    const { server, port } = await m.serve('127.0.0.1', 0);
    const get = (method: string, path: string) => httpGet(port, method, path);
    try {
      const ok = await get('GET', '/metrics');
      expect(ok.status).toBe(200);
      expect(ok.body).toContain('writ_sidecar_state');
      expect((await get('POST', '/metrics')).status).toBe(404);
      expect((await get('GET', '/')).status).toBe(404);
    } finally {
      m.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('scraped: renewals (the first attestation not one), renewal failures by reason, and the revocation lag', async () => {
    // A daemon whose source answers as scripted: an identity, or an error; nothing more is answered.
    const script: Array<Error | undefined> = [undefined, undefined, refusal(grpc.status.PERMISSION_DENIED, 'ERR_INTERNAL'), refusal(grpc.status.UNAVAILABLE)];
    const tick = () => new Promise((r) => setTimeout(r, 5));
    const source: IdentitySource = {
      obtain: () => {
        if (script.length === 0) return new Promise<Obtained>(() => {});
        const next = script.shift();
        return next ? Promise.reject(next) : Promise.resolve({ identity: { ...identity(Date.now() + 3_600_000), obtainedAt: Date.now() }, jwtSvids: [] });
      },
    };
    const sc = new Sidecar({ source, now: () => Date.now(), random: () => 0.5 });
    // The guard, on an issuer whose clock is 2.5 s behind this one: each revocation is 2.5 s late.
    const clock = new ManualClock(T0);
    const issuer = new FakeWatchIssuer(() => clock.now().getTime() - 2_500);
    const guard = new RevocationGuard({
      addresses: ['issuer:1'],
      connector: new FakeWatchConnector({ 'issuer:1': issuer }),
      state: new FakeSidecarState(),
      clock,
      onRevoked: () => {},
    });
    const m = new SidecarMetrics(sc, () => Date.now(), guard);
    const { server, port } = await m.serve('127.0.0.1', 0);
    const scrape = async () => (await httpGet(port, 'GET', '/metrics')).body;
    try {
      sc.start();
      await sc.ready();
      let text = await scrape();
      expect(value(text, 'writ_sidecar_identities_total')).toBe(1);
      expect(value(text, 'writ_sidecar_renewals_total')).toBe(0);
      for (const reason of ['unavailable', 'refused', 'terminal', 'error']) expect(text).toContain(`writ_sidecar_renewal_failures_total{reason="${reason}"} 0`);
      expect(value(text, 'writ_sidecar_revocation_lag_seconds_count')).toBe(0);

      sc.renewNow(); // forced renewal: succeeds
      await tick();
      sc.renewNow(); // refused (retried)
      await tick();
      sc.renewNow(); // unreachable
      await tick();
      text = await scrape();
      expect(value(text, 'writ_sidecar_identities_total')).toBe(2);
      expect(value(text, 'writ_sidecar_renewals_total')).toBe(1);
      expect(text).toContain('writ_sidecar_renewal_failures_total{reason="refused"} 1');
      expect(text).toContain('writ_sidecar_renewal_failures_total{reason="unavailable"} 1');
      expect(text).toContain('writ_sidecar_renewal_failures_total{reason="terminal"} 0');
      expect(sc.current().state).toBe('serving');
      // Counters stay where they are between scrapes.
      expect(value(await scrape(), 'writ_sidecar_renewals_total')).toBe(1);

      guard.start();
      issuer.heartbeat();
      await guard.synced();
      issuer.revoke('task', 'another-task');
      text = await scrape();
      expect(value(text, 'writ_sidecar_revocation_lag_seconds_count')).toBe(1);
      expect(value(text, 'writ_sidecar_revocation_lag_seconds_sum')).toBe(2.5);
      expect(text).toContain('writ_sidecar_revocation_lag_seconds_bucket{le="2.5"} 1');
      expect(text).toContain('writ_sidecar_revocation_lag_seconds_bucket{le="1"} 0');
    } finally {
      m.close();
      guard.close();
      await sc.stop();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

function refusal(code: grpc.status, writCode?: string): GrpcCallError {
  return new GrpcCallError(code, `refused${writCode ? ` (${writCode})` : ''}`, writCode);
}
