/**
 * Renewal by X.509-SVID with a TPM-resident agent key (swtpm): the agent attests with a TPM quote
 * and a key made inside the TPM; it renews by SVID with that key's signer (TPM2_Sign: the private
 * key never enters the process), and the renewed SVID keeps its key-residency extension. The
 * operator opts `tpm` in to SVID renewal (the default requires a fresh quote, also checked here).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcCallError } from '../../src/agent/attest-client.js';
import { attestAgent } from '../../src/agent/attest-once.js';
import { renewWithSvid } from '../../src/agent/renew.js';
import { tpmProducer } from '../../src/attestation/tpm/producer.js';
import { adminClients } from '../../src/cli/admin-client.js';
import type { JwsSigner } from '../../src/jose/jws.js';
import { parseCertificate } from '../../src/x509/certificate.js';
import { startServer } from '../helpers/server.js';
import { HAVE_SWTPM, startSwtpm, type Swtpm } from '../helpers/swtpm.js';

describe.skipIf(!HAVE_SWTPM)('renewal by X.509-SVID with a TPM-resident key (swtpm)', () => {
  let tpm: Swtpm;
  let optedIn: Awaited<ReturnType<typeof startServer>>;
  let byDefault: Awaited<ReturnType<typeof startServer>>;
  let dir: string;

  beforeAll(async () => {
    tpm = await startSwtpm();
    dir = mkdtempSync(join(tmpdir(), 'writ-renew-tpm-'));
    const trust = { manufacturer_roots: [tpm.rootPem], intermediates: [tpm.intermediatePem], pcr_selection: 'sha256:0,1,2,3,7' };
    optedIn = await startServer({ attestation: { tpm: trust, x509_svid: { require_fresh_evidence: [] } } });
    byDefault = await startServer({ attestation: { tpm: trust } });
    const t = await tpm.open();
    const ek = new X509Certificate(await t.nvRead(0x01c00002));
    await t.close();
    const ekHash = createHash('sha256')
      .update(ek.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex');
    for (const s of [optedIn, byDefault])
      await adminClients(s.adminSocket).admin.createEntry({
        entry: { spiffeId: 'spiffe://example.org/agent/tpm', selectors: [{ type: 'tpm', value: `ek_hash:${ekHash}` }] },
      });
  }, 120_000);
  afterAll(async () => {
    await optedIn?.stop();
    await byDefault?.stop();
    await tpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Attests on `s` with a new TPM-resident key; returns the SVID and the key blob's file. */
  async function attestResident(s: Awaited<ReturnType<typeof startServer>>, name: string) {
    const a = await attestAgent({ server: s.address, bundlePem: s.bundlePem, producer: tpmProducer, values: { tpm: tpm.spec, 'tpm-key': true } });
    const blob = join(dir, `${name}.key.tpm`);
    writeFileSync(blob, a.keyFiles.find((f) => f.name === 'svid.key.tpm')!.text);
    return { chain: a.outcome.svidChain, blob };
  }

  /** Opens the resident key for one use, as the sidecar holds it. */
  async function withKey<T>(blob: string, f: (signer: JwsSigner) => Promise<T>): Promise<T> {
    const opened = await tpmProducer.keys!.open({ tpm: tpm.spec, 'tpm-key-file': blob });
    try {
      return await f(opened.key.signer);
    } finally {
      await opened.close();
    }
  }

  it('renews twice with the key inside the TPM, keeping the key-residency extension', async () => {
    const first = await attestResident(optedIn, 'opted-in');
    expect(parseCertificate(first.chain[0]!).keyResidency).toBe('tpm');
    let chain = first.chain;
    for (let i = 0; i < 2; i++) {
      const r = await withKey(first.blob, (signer) =>
        renewWithSvid({ server: optedIn.address, bundlePem: optedIn.bundlePem, current: { svidChain: chain, signer } }),
      );
      expect(r.spiffeId).toBe('spiffe://example.org/agent/tpm');
      const leaf = parseCertificate(r.svidChain[0]!);
      expect(leaf.keyResidency).toBe('tpm');
      expect(leaf.spki.equals(parseCertificate(first.chain[0]!).spki)).toBe(true);
      chain = r.svidChain;
    }
    const rec = await optedIn.server.store.getAttestedAgentBySerial(parseCertificate(chain[0]!).serial.toString('hex'));
    expect(rec).toMatchObject({ evidenceType: 'tpm', keyResidency: 'tpm', renewals: 2 });
  }, 120_000);

  it('by default refuses to renew a TPM identity by SVID: it must bring a fresh quote', async () => {
    const first = await attestResident(byDefault, 'default');
    const e = await withKey(first.blob, (signer) =>
      renewWithSvid({ server: byDefault.address, bundlePem: byDefault.bundlePem, current: { svidChain: first.chain, signer } }).then(
        () => undefined,
        (err: unknown) => err,
      ),
    );
    expect(e).toBeInstanceOf(GrpcCallError);
    expect([(e as GrpcCallError).code, (e as GrpcCallError).writCode]).toEqual([grpc.status.FAILED_PRECONDITION, 'ERR_FRESH_EVIDENCE_REQUIRED']);
  }, 120_000);
});
