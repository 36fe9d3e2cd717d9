/**
 * A sidecar whose agent key is resident in a TPM (swtpm): it serves the identity while the
 * private key stays in the TPM, so the Workload API cannot deliver an X.509-SVID with its key
 * (FAILED_PRECONDITION, saying why); JWT-SVIDs and bundles are still served.
 *
 * A TLS handshake signed inside the TPM: node:tls cannot take a key it does not hold. Its
 * `privateKeyEngine`/`privateKeyIdentifier` options load a key through an OpenSSL ENGINE only
 * (ENGINE_load_private_key), there is no option for an OpenSSL 3 provider key (tpm2-openssl is a
 * provider, and is not packaged on this machine), and node's OpenSSL is linked statically
 * (node_shared_openssl false), so a system provider or engine built against libcrypto.so.3 is not
 * the library node uses. So the test below builds a TLS 1.3 CertificateVerify (RFC 8446 §4.4.3)
 * over a handshake transcript it makes itself, has the TPM sign it, and verifies it with
 * node:crypto against the X.509-SVID's key, as a TLS peer would. It is NOT a node:tls handshake.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate, createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
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

  it('the TPM signs a TLS 1.3 CertificateVerify over a transcript built here (not a node:tls handshake), verifying with the X.509-SVID key', async () => {
    const st = sc.sidecar.current();
    if (st.state !== 'serving') throw new Error('not serving');
    const leaf = parseCertificate(st.identity.svidChain[0]!);
    const leafKey = createPublicKey({ key: leaf.spki, format: 'der', type: 'spki' });
    expect(leaf.keyResidency).toBe('tpm');
    expect(st.identity.signer.alg).toBe('ES256');
    // ClientHello ‖ ServerHello ‖ EncryptedExtensions ‖ CertificateRequest ‖ Certificate, stand-ins of this test.
    const handshake = [randomBytes(512), randomBytes(122), randomBytes(10), randomBytes(40), Buffer.concat(st.identity.svidChain)];
    const transcriptHash = createHash('sha256').update(Buffer.concat(handshake)).digest();
    // RFC 8446 §4.4.3: 64 spaces, the context string, a zero byte, the transcript hash.
    const content = (side: string, hash: Buffer) =>
      Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from(`TLS 1.3, ${side} CertificateVerify`), Buffer.from([0]), hash]);
    const p1363 = await st.identity.signer.sign(content('client', transcriptHash));
    expect(p1363).toHaveLength(64);
    const der = p1363ToDer(p1363);
    // The CertificateVerify message: type 15, ecdsa_secp256r1_sha256 (0x0403), the DER signature.
    const body = Buffer.concat([Buffer.from([0x04, 0x03, der.length >> 8, der.length & 0xff]), der]);
    const msg = Buffer.concat([Buffer.from([15, 0, body.length >> 8, body.length & 0xff]), body]);
    const sig = msg.subarray(8);
    expect(verify('sha256', content('client', transcriptHash), { key: leafKey, dsaEncoding: 'der' }, sig)).toBe(true);
    // Bound to the transcript and the side: another handshake or the server context does not verify.
    expect(verify('sha256', content('client', createHash('sha256').update('other').digest()), { key: leafKey, dsaEncoding: 'der' }, sig)).toBe(false);
    expect(verify('sha256', content('server', transcriptHash), { key: leafKey, dsaEncoding: 'der' }, sig)).toBe(false);
  }, 60_000);
});

/** IEEE P1363 r‖s → the DER ECDSA-Sig-Value TLS carries. */
function p1363ToDer(rs: Buffer): Buffer {
  const int = (b: Buffer) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const seq = Buffer.concat([int(rs.subarray(0, 32)), int(rs.subarray(32))]);
  return Buffer.concat([Buffer.from([0x30, seq.length]), seq]);
}
