import { createHash, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, GrpcCallError } from '../../src/agent/attest-client.js';
import { TpmAttestor } from '../../src/agent/tpm-attestor.js';
import { adminCall } from '../../src/cli/admin-client.js';
import { AdminService, type CreateEntryResponse } from '../../src/gen/writ/v1/admin_pb.js';
import { HAVE_SWTPM, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { startServer } from '../helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;

describe.skipIf(!HAVE_SWTPM)('TPM attestation end to end (swtpm)', () => {
  let tpmA: Swtpm;
  let tpmB: Swtpm;
  let s: Started;
  let ekHashA: string;

  beforeAll(async () => {
    [tpmA, tpmB] = await Promise.all([startSwtpm(), startSwtpm()]);
    s = await startServer({
      attestation: { tpm: { manufacturer_roots: [tpmA.rootPem], intermediates: [tpmA.intermediatePem], pcr_selection: 'sha256:0,1,2,3,7' } },
    });
    const t = await tpmA.open();
    const cert = new X509Certificate(await t.nvRead(0x01c00002));
    await t.close();
    ekHashA = createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
    await adminCall<CreateEntryResponse>(s.adminSocket, AdminService, 'createEntry', {
      entry: { spiffeId: 'spiffe://example.org/agent/tpm-a', selectors: [{ type: 'tpm', value: `ek_hash:${ekHashA}` }, { type: 'tpm', value: 'model:swtpm' }] },
    });
  }, 60_000);

  afterAll(async () => {
    await s?.stop();
    await Promise.all([tpmA?.stop(), tpmB?.stop()]);
  });

  const agentKey = () => createPublicKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey).export({ type: 'spki', format: 'der' });

  async function attestWith(tpm: Swtpm, opts: ConstructorParameters<typeof TpmAttestor>[1] = {}) {
    const t = await tpm.open();
    const attestor = new TpmAttestor(t, opts);
    try {
      const res = await attest({ server: s.address, bundlePem: s.bundlePem, evidenceType: 'tpm', publicKey: agentKey(), respond: (c) => attestor.respond(c) });
      return { res, rounds: attestor.rounds };
    } finally {
      await attestor.close();
      await t.close();
    }
  }

  it('activates the AK on first contact, then quotes without re-activation', async () => {
    const first = await attestWith(tpmA);
    expect(first.res.spiffeId).toBe('spiffe://example.org/agent/tpm-a');
    expect(first.rounds).toBe(2);
    const second = await attestWith(tpmA);
    expect(second.res.spiffeId).toBe('spiffe://example.org/agent/tpm-a');
    expect(second.rounds).toBe(1);
    const rec = await s.server.store.getTpmRecord(ekHashA);
    expect(rec).toBeDefined();
  });

  it('a changed AK (RSA instead of ECC) is activated again', async () => {
    const r = await attestWith(tpmA, { ak: 'rsa' });
    expect(r.rounds).toBe(2);
    const back = await attestWith(tpmA, { ak: 'ecc' });
    expect(back.rounds).toBe(2);
  });

  it('works with the ECC P-384 EK too (a separate EK, so a separate identity)', async () => {
    const t = await tpmA.open();
    const cert = new X509Certificate(await t.nvRead(0x01c00016));
    await t.close();
    const eccHash = createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
    const before = await attestWith(tpmA, { ek: 'ecc384' }).catch((e) => e);
    expect((before as GrpcCallError).details).toMatch(/no registration entry matches/);
    await adminCall<CreateEntryResponse>(s.adminSocket, AdminService, 'createEntry', {
      entry: { spiffeId: 'spiffe://example.org/agent/tpm-a-ecc', selectors: [{ type: 'tpm', value: `ek_hash:${eccHash}` }] },
    });
    const r = await attestWith(tpmA, { ek: 'ecc384' });
    expect(r.res.spiffeId).toBe('spiffe://example.org/agent/tpm-a-ecc');
    expect(r.rounds).toBe(2);
  });

  it('refuses a TPM whose EK chains to no trusted root', async () => {
    const err = await attestWith(tpmB).catch((e) => e);
    expect(err).toBeInstanceOf(GrpcCallError);
    expect((err as GrpcCallError).writCode).toBe('ERR_EVIDENCE_INVALID');
    expect((err as GrpcCallError).details).toBe('attestation failed: evidence rejected');
  });
});
