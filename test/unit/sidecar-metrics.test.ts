/** `writ agent run --metrics-listen`: the sidecar's Prometheus metrics, a view of its state (src/sidecar/metrics.ts). */
import { generateKeyPairSync } from 'node:crypto';
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { keySigner } from '../../src/jose/jws.js';
import { SidecarMetrics } from '../../src/sidecar/metrics.js';
import type { SidecarIdentity } from '../../src/sidecar/state.js';
import { FakeSidecarState } from '../fakes/sidecar-state.js';

const T0 = 1_800_000_000_000;
const identity = (notAfter: number): SidecarIdentity => ({
  spiffeId: 'spiffe://example.org/agent/m',
  svidChain: [],
  signer: keySigner(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey),
  bundle: { trustDomain: 'example.org', x509Authorities: [], jwks: '{"keys":[]}', pem: '' },
  notAfter,
  obtainedAt: T0,
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
    const get = (method: string, path: string) =>
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
});
