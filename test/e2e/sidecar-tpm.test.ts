/**
 * A sidecar whose agent key is resident in a TPM (swtpm): it serves the identity while the
 * private key stays in the TPM, so the Workload API cannot deliver an X.509-SVID with its key
 * (FAILED_PRECONDITION, saying why); JWT-SVIDs and bundles are still served.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate, createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tpmProducer } from '../../src/attestation/tpm/producer.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { renewingSource } from '../../src/sidecar/identity-source.js';
import { parseCertificate } from '../../src/x509/certificate.js';
import { startServer } from '../helpers/server.js';
import { nextMessages, securityHeader, startSidecar, unary, workloadClient } from '../helpers/sidecar.js';
import { HAVE_SWTPM, startSwtpm, type Swtpm } from '../helpers/swtpm.js';

const ID = 'spiffe://example.org/agent/tpm-sidecar';

describe.skipIf(!HAVE_SWTPM)('a sidecar with a TPM-resident key (swtpm)', () => {
  let tpm: Swtpm;
  let s: Awaited<ReturnType<typeof startServer>>;
  let sc: Awaited<ReturnType<typeof startSidecar>>;

  beforeAll(async () => {
    tpm = await startSwtpm();
    s = await startServer({
      attestation: { tpm: { manufacturer_roots: [tpm.rootPem], intermediates: [tpm.intermediatePem], pcr_selection: 'sha256:0,1,2,3,7' } },
    });
    const t = await tpm.open();
    const cert = new X509Certificate(await t.nvRead(0x01c00002));
    await t.close();
    const ekHash = createHash('sha256')
      .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex');
    await adminClients(s.adminSocket).admin.createEntry({ entry: { spiffeId: ID, selectors: [{ type: 'tpm', value: `ek_hash:${ekHash}` }] } });
    sc = await startSidecar(
      renewingSource(
        { server: s.address, bundlePem: s.bundlePem, producer: tpmProducer, values: { tpm: tpm.spec, 'tpm-key': true }, timeoutMs: 60_000 },
        Date.now,
      ),
      { jwtAudiences: ['https://rp.example'] },
    );
    await sc.sidecar.ready();
  }, 120_000);
  afterAll(async () => {
    await sc?.close();
    await s?.stop();
    await tpm?.stop();
  });

  it('serves the identity with no key in the process; FetchX509SVID says why it cannot deliver it; JWT-SVIDs still work', async () => {
    const st = sc.sidecar.current();
    if (st.state !== 'serving') throw new Error('not serving');
    expect(st.identity.privateKeyPkcs8).toBeUndefined();
    expect(parseCertificate(st.identity.svidChain[0]!).keyResidency).toBe('tpm');
    const client = workloadClient(sc.path);
    try {
      const e = await new Promise<grpc.ServiceError>((resolve, reject) => {
        const call = client.FetchX509SVID({}, securityHeader());
        call.on('data', () => reject(new Error('a key was delivered')));
        call.on('error', resolve);
      });
      expect(e.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(e.details).toContain('resident in a TPM');
      const jwt = await unary<unknown, { svids: Array<{ spiffe_id: string }> }>(client, 'FetchJWTSVID', { audience: ['https://rp.example'] });
      expect(jwt.svids[0]!.spiffe_id).toBe(ID);
      const b = client.FetchX509Bundles({}, securityHeader());
      const [m] = (await nextMessages(b, 1)) as Array<{ bundles: Record<string, Buffer> }>;
      b.cancel();
      expect(Object.keys(m!.bundles)).toEqual(['spiffe://example.org']);
    } finally {
      client.close();
    }
  }, 60_000);
});
