/**
 * Attacks on TPM attestation that must be refused, each against a real swtpm: the honest
 * sidecar's evidence is produced by the real TPM and then tampered with, spliced or forged.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, GrpcCallError } from '../../src/agent/attest-client.js';
import { TpmAttestor } from '../../src/attestation/tpm/attestor.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { TpmError } from '../../src/errors.js';
import { TPMA_OBJECT, TPM_ALG, TPM_RH, TPM_ST, TPM_GENERATED_VALUE } from '../../src/tpm/constants.js';
import { TpmWriter } from '../../src/tpm/marshal.js';
import { akTemplate, marshalPcrSelection, marshalPublic, marshalSignature, parsePublic, objectName, type PublicTemplate } from '../../src/tpm/structures.js';
import { parseEvidence1, encodeEvidence1, parseChallenge2, encodeEvidence2 } from '../../src/tpm/evidence.js';
import { pcrDigest } from '../../src/attestation/tpm/quote.js';
import * as t from '../../src/svid/template.js';
import { parseCertificate } from '../../src/x509/certificate.js';
import { HAVE_SWTPM, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { EK_TEMPLATES } from '../../src/tpm/ek-templates.js';
import { startServer } from '../helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;
type Challenge = { nonce: Uint8Array; payload: Uint8Array };

describe.skipIf(!HAVE_SWTPM)('TPM attestation refuses attacks (swtpm)', () => {
  let A: Swtpm;
  let B: Swtpm;
  let s: Started;

  beforeAll(async () => {
    [A, B] = await Promise.all([startSwtpm(), startSwtpm()]);
    s = await startServer({
      attestation: {
        tpm: { manufacturer_roots: [A.rootPem, B.rootPem], intermediates: [A.intermediatePem, B.intermediatePem], pcr_selection: 'sha256:0,1,2,3,7' },
      },
    });
    // Any attested swtpm maps to an entry, so refusals below come from the evidence checks.
    await adminClients(s.adminSocket).admin.createEntry({
      entry: { spiffeId: 'spiffe://example.org/agent/any-swtpm', selectors: [{ type: 'tpm', value: 'model:swtpm' }] },
    });
  }, 60_000);

  afterAll(async () => {
    await s?.stop();
    await Promise.all([A?.stop(), B?.stop()]);
  });

  const agentKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

  /** Runs a handshake whose answers come from `respond`; returns the error or the SPIFFE ID. */
  async function handshake(respond: (c: Challenge) => Promise<Buffer>): Promise<GrpcCallError | string> {
    try {
      const r = await attest({ server: s.address, bundlePem: s.bundlePem, evidenceType: 'tpm', key: agentKey(), respond });
      return r.spiffeId;
    } catch (e) {
      if (e instanceof GrpcCallError) return e;
      throw e;
    }
  }

  /** An honest attestor on `tpm` whose first evidence passes through `mutate`. */
  async function withAttestor<T>(tpm: Swtpm, opts: ConstructorParameters<typeof TpmAttestor>[1], f: (a: TpmAttestor) => Promise<T>): Promise<T> {
    const tp = await tpm.open();
    const a = new TpmAttestor(tp, opts);
    try {
      return await f(a);
    } finally {
      await a.close();
      await tp.close();
    }
  }

  const rejected = (r: GrpcCallError | string) => {
    expect(r, 'the handshake must be refused').toBeInstanceOf(GrpcCallError);
    expect((r as GrpcCallError).writCode).toBe('ERR_EVIDENCE_INVALID');
  };

  /** The server's last logged reason is not visible to clients; the store tells us nothing was written. */
  type Mutable = { -readonly [K in keyof ReturnType<typeof parseEvidence1>]: ReturnType<typeof parseEvidence1>[K] };
  async function mutated(mutate: (e: Mutable, c: Challenge) => void, challenge?: (c: Challenge) => Challenge) {
    return withAttestor(A, {}, (a) =>
      handshake(async (c) => {
        if (a.rounds === 0) {
          const out = parseEvidence1(await a.respond(challenge ? challenge(c) : c));
          mutate(out, c);
          return encodeEvidence1(out);
        }
        return a.respond(c);
      }),
    );
  }

  it('the honest sidecar is accepted (control)', async () => {
    expect(await withAttestor(A, {}, (a) => handshake((c) => a.respond(c)))).toBe('spiffe://example.org/agent/any-swtpm');
  });

  it('a quote over another nonce', async () => {
    rejected(
      await mutated(
        () => undefined,
        (c) => ({ ...c, nonce: randomBytes(32) }),
      ),
    );
  });

  it('a flipped byte anywhere in the attest (sampled across its length)', async () => {
    const len = await withAttestor(
      A,
      {},
      async (a) => parseEvidence1(await a.respond({ nonce: randomBytes(32), payload: Buffer.from('{"pcr_selection":"sha256:0,1,2,3,7"}') })).attest.length,
    );
    for (const i of [0, 4, 6, 10, 40, len - 40, len - 1]) {
      rejected(await mutated((e) => (e.attest[i]! ^= 0x01)));
    }
  });

  it('altered PCR values', async () => {
    rejected(await mutated((e) => e.pcrs.get(TPM_ALG.SHA256)!.set(7, Buffer.alloc(32, 0xaa))));
  });

  it('a quote over a different PCR selection', async () => {
    rejected(
      await mutated(
        () => undefined,
        (c) => ({ ...c, payload: Buffer.from('{"pcr_selection":"sha256:0,1,2,3"}') }),
      ),
    );
  });

  it('truncated and padded structures', async () => {
    rejected(await mutated((e) => (e.attest = e.attest.subarray(0, e.attest.length - 1))));
    rejected(await mutated((e) => (e.attest = Buffer.concat([e.attest, Buffer.from([0])]))));
    rejected(await mutated((e) => (e.akPublic = Buffer.concat([e.akPublic, Buffer.from([0])]))));
    rejected(await mutated((e) => (e.signature = e.signature.subarray(0, e.signature.length - 2))));
    rejected(await mutated((e) => (e.ekPublic = e.ekPublic.subarray(0, 100))));
  });

  it("a genuine TPM's EK presented with another TPM's AK (the activation fails)", async () => {
    let tpmRefused = false;
    const r = await withAttestor(A, {}, (a) =>
      withAttestor(B, {}, (b) =>
        handshake(async (c) => {
          if (a.rounds === 0) {
            const honestA = parseEvidence1(await a.respond(c));
            const bq = parseEvidence1(await b.respond(c));
            // A's EK and certificate, B's AK and quote (with the right nonce).
            return encodeEvidence1({ ...bq, ekPublic: honestA.ekPublic, ekCertificate: honestA.ekCertificate });
          }
          // B cannot activate a credential made for A's EK; A does not hold B's AK.
          try {
            return await b.respond(c);
          } catch (e) {
            expect(e).toBeInstanceOf(TpmError);
            tpmRefused = true;
            return encodeEvidence2(randomBytes(32));
          }
        }),
      ),
    );
    expect(tpmRefused).toBe(true);
    rejected(r);
  });

  it('a quote signed by a non-restricted key (tpm2_checkquote would accept it)', async () => {
    const unrestricted: PublicTemplate = { ...akTemplate('ecc'), attributes: akTemplate('ecc').attributes & ~TPMA_OBJECT.restricted };
    rejected(await withAttestor(A, { akTemplate: unrestricted }, (a) => handshake((c) => a.respond(c))));
  });

  it('a software key dressed up as an AK (forged quote) cannot be activated, even via LoadExternal', async () => {
    const soft = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const jwk = soft.publicKey.export({ format: 'jwk' }) as { x: string; y: string };
    const fakeTemplate = { ...akTemplate('ecc'), x: Buffer.from(jwk.x, 'base64url'), y: Buffer.from(jwk.y, 'base64url') } as PublicTemplate;
    const fakeAk = parsePublic(marshalPublic(fakeTemplate));
    const tp = await A.open();
    let loadExternal: 'refused' | number = 'refused';
    try {
      loadExternal = await tp.loadExternalPublic(fakeTemplate, TPM_RH.NULL);
    } catch (e) {
      expect(e).toBeInstanceOf(TpmError);
    }
    if (loadExternal !== 'refused') await tp.flush(loadExternal);
    await tp.close();

    let activationViaLoadExternal: 'refused' | 'activated' = 'refused';
    let reachedActivation = false;
    const tpm = await A.open();
    const a = new TpmAttestor(tpm);
    const r = await handshake(async (c) => {
      try {
        return await forge(c);
      } catch (e) {
        await a.close();
        throw e;
      }
    }).finally(async () => {
      await a.close();
      await tpm.close();
    });
    async function forge(c: Challenge): Promise<Buffer> {
      if (a.rounds === 0) {
        const honest = parseEvidence1(await a.respond(c));
        const sel = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 7] }];
        const attest = new TpmWriter()
          .u32(TPM_GENERATED_VALUE)
          .u16(TPM_ST.ATTEST_QUOTE)
          .tpm2b(objectName(fakeAk))
          .tpm2b(Buffer.from(c.nonce))
          .bytes(Buffer.alloc(8))
          .u32(1)
          .u32(0)
          .u8(1)
          .bytes(Buffer.alloc(8))
          .bytes(marshalPcrSelection(sel))
          .tpm2b(pcrDigest(TPM_ALG.SHA256, sel, honest.pcrs))
          .done();
        const p1363 = sign('sha256', attest, { key: soft.privateKey, dsaEncoding: 'ieee-p1363' });
        const signature = marshalSignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: p1363.subarray(0, 32), s: p1363.subarray(32) });
        return encodeEvidence1({ ...honest, akPublic: fakeAk.bytes, attest, signature });
      }
      // The forger gets a credential bound to the fake AK's Name. Its best move: load the fake
      // AK's public area into the genuine TPM with LoadExternal and ask for activation.
      const { credentialBlob, secret } = parseChallenge2(c.payload);
      reachedActivation = true; // the forged quote itself passed: only activation stands in the way
      await a.close(); // free the TPM's object slots: the forger does not need the honest AK
      {
        const h = await tpm.loadExternalPublic(fakeTemplate, TPM_RH.NULL);
        const ek = await tpm.createPrimary(TPM_RH.ENDORSEMENT, EK_TEMPLATES[0]!.template);
        try {
          const got = await tpm.activateCredential(h, ek.handle, credentialBlob, secret);
          activationViaLoadExternal = 'activated';
          return encodeEvidence2(got);
        } catch (e) {
          expect(e).toBeInstanceOf(TpmError);
          return encodeEvidence2(randomBytes(32));
        } finally {
          await tpm.flush(h).catch(() => undefined);
          await tpm.flush(ek.handle).catch(() => undefined);
        }
      }
    }
    rejected(r);
    // The TPM lets a public area with AK attributes be loaded externally...
    expect(loadExternal).not.toBe('refused');
    // ...but will not activate a credential for it: it has no sensitive part to authorise with.
    expect(reachedActivation).toBe(true);
    expect(activationViaLoadExternal).toBe('refused');
  });

  it('a replayed activation secret', async () => {
    // Two handshakes that both need activation (a fresh RSA AK each time is still the same key,
    // so use the ECC AK on B's first contact and then change AK type to force another round).
    let captured: Buffer | undefined;
    const first = await withAttestor(B, { ak: 'rsa' }, (b) =>
      handshake(async (c) => {
        const out = await b.respond(c);
        if (b.rounds === 2) captured = Buffer.from(JSON.parse(out.toString()).activated_secret, 'base64');
        return out;
      }),
    );
    expect(first).toBe('spiffe://example.org/agent/any-swtpm');
    const r = await withAttestor(B, { ak: 'ecc' }, (b) =>
      handshake(async (c) => {
        if (b.rounds === 0) return b.respond(c);
        return encodeEvidence2(captured!);
      }),
    );
    rejected(r);
  });

  it('an EK certificate under a rogue root with the same names as the real one', async () => {
    const realRoot = parseCertificate(Buffer.from(readFileSync(A.rootPem, 'utf8').split('-----')[2]!.replace(/\s+/g, ''), 'base64'));
    const realInter = parseCertificate(Buffer.from(readFileSync(A.intermediatePem, 'utf8').split('-----')[2]!.replace(/\s+/g, ''), 'base64'));
    const rogueRootKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const rogueInterKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const spkiOf = (k: KeyObject) => createPublicKey(k).export({ type: 'spki', format: 'der' });
    const mk = (subject: Buffer, issuer: Buffer, spki: Buffer, signer: KeyObject, ca: boolean, extra: Buffer[] = []) => {
      const scheme = t.signatureSchemeFor(signer);
      const tbs = t.encodeTbs({
        serial: t.randomSerial(),
        algorithm: scheme.algorithm,
        issuer,
        notBefore: new Date(Date.now() - 3600_000),
        notAfter: new Date(Date.now() + 3600_000),
        subject,
        spki,
        extensions: [t.basicConstraints(ca), t.keyUsage(ca ? [5, 6] : [2]), ...extra],
      });
      return t.signCertificate(tbs, scheme.algorithm, scheme.hash, signer);
    };
    const rogueInter = mk(realInter.subject, realRoot.subject, spkiOf(rogueInterKey.privateKey), rogueRootKey.privateKey, true);
    const r = await mutated((e) => {
      const ekCert = parseCertificate(e.ekCertificate);
      e.ekCertificate = mk(ekCert.subject, realInter.subject, ekCert.spki, rogueInterKey.privateKey, false);
      e.ekIntermediates = [rogueInter];
    });
    rejected(r);
  });

  it('a quote from before a reboot: counters that go backwards are refused', async () => {
    const tp = await A.open();
    const cert = new X509Certificate(await tp.nvRead(0x01c00002));
    await tp.close();
    const ekHash = createHash('sha256')
      .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex');
    const rec = await s.server.store.getTpmRecord(ekHash);
    expect(rec, 'the control handshake enrolled A').toBeDefined();
    await s.server.store.putTpmRecord({ ...rec!, resetCount: rec!.resetCount + 1 });
    rejected(await withAttestor(A, {}, (a) => handshake((c) => a.respond(c))));
    await s.server.store.putTpmRecord(rec!);
    expect(await withAttestor(A, {}, (a) => handshake((c) => a.respond(c)))).toBe('spiffe://example.org/agent/any-swtpm');
  });
});
