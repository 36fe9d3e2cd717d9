/**
 * A sidecar serving a bare X.509-SVID (no grants, so no writ) learns of its entry's or its
 * platform's revocation from RevocationService.Watch at once, not at its next renewal: the issuer's AttestResult names
 * the registration entry and the attested selectors (attestation.proto `entry_id`, `selectors`),
 * and the guard matches entry and platform revocations against them. The SVIDs live 120 s, so
 * the first renewal is ~54 s away: a refusal within the test came through the Watch.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { revokeAsOperator } from '../helpers/revocation.js';
import { hsmSource, nextMessages, securityHeader, startHsmIssuer, startSidecar, unary, workloadClient, type HsmIssuer } from '../helpers/sidecar.js';

const ID = 'spiffe://example.org/agent/bare';

describe.each(['entry', 'platform'] as const)('a sidecar without a writ, its %s revoked', (kind) => {
  let issuer: HsmIssuer;
  let sc: Awaited<ReturnType<typeof startSidecar>>;
  let entryId: string;

  beforeAll(async () => {
    issuer = await startHsmIssuer();
    await issuer.entry(ID, 120, 60);
    const { entries } = await adminClients(issuer.s.adminSocket).admin.listEntries({});
    entryId = entries.find((e) => e.spiffeId === ID)!.id;
    sc = await startSidecar(hsmSource({ address: issuer.s.address, bundlePem: issuer.s.bundlePem, deviceKey: issuer.deviceKey }), {
      jwtAudiences: ['https://rp.example'],
      revocation: { addresses: [issuer.s.address], connector: grpcWatchConnector(issuer.s.bundlePem), reconnectInitialMs: 20, reconnectMaxMs: 200 },
    });
    await sc.sidecar.ready();
  }, 60_000);
  afterAll(async () => {
    await sc?.close();
    await issuer?.stop();
  });

  it(`holds the entry and selectors the issuer named, and stops serving as soon as the ${kind} is revoked`, async () => {
    const st = sc.sidecar.current();
    if (st.state !== 'serving') throw new Error(`not serving: ${st.state}`);
    expect(st.identity.writ).toBeUndefined();
    expect(st.identity.entryId).toBe(entryId);
    expect(st.identity.selectors).toHaveLength(1);
    expect(st.identity.selectors![0]).toMatch(/^fake_hsm:device:[0-9a-f]{64}$/);
    const renewals = sc.sidecar.renewals;

    const client = workloadClient(sc.path);
    try {
      const stream = client.FetchX509SVID({}, securityHeader());
      const [first] = (await nextMessages(stream, 1)) as Array<{ svids: Array<{ spiffe_id: string }> }>;
      expect(first!.svids[0]!.spiffe_id).toBe(ID);
      const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
      const t0 = performance.now();
      const target = kind === 'entry' ? entryId : st.identity.selectors![0]!;
      await revokeAsOperator(issuer.s.adminSocket, kind, target, 'e2e: decommissioned');
      const e = await ended;
      const ms = performance.now() - t0;
      expect(e.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(e.details).toContain(`${kind} ${target} revoked`);
      // Far below the ~54 s to the first renewal: the Watch carried it (make bench measures the latency).
      expect(ms).toBeLessThan(5_000);
      const after = sc.sidecar.current();
      expect(after.state).toBe('revoked');
      await expect(unary(client, 'FetchJWTSVID', { audience: ['https://rp.example'] })).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });
      // Nothing was renewed in between: the refusal came through the Watch, not a renewal's ERR_REVOKED.
      expect(sc.sidecar.renewals).toBe(renewals);
      expect(sc.sidecar.renewalCounts().failures.terminal).toBe(0);
    } finally {
      client.close();
    }
  }, 30_000);
});
