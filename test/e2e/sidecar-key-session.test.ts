/**
 * The identity source's key session (src/sidecar/identity-source.ts `producerSource`), against a
 * real issuer: evidence that holds the agent key (as a TPM does) attests afresh through the
 * session it opened (`restart`), never a second one while an identity it signs for is held; a
 * session whose restart fails (here a TpmError: its connection lost) is closed once and the next
 * attestation opens a new one; the issuer being unreachable leaves it as it was. The producer is
 * the fake HSM's with a key it "holds" (a software key standing in for a TPM-resident one).
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcCallError } from '../../src/agent/attest-client.js';
import type { EvidenceProducer } from '../../src/attestation/plugin.js';
import { TpmError } from '../../src/errors.js';
import { keySigner } from '../../src/jose/jws.js';
import { producerSource, type Obtained } from '../../src/sidecar/identity-source.js';
import { parseCertificate } from '../../src/x509/certificate.js';
import { fakeProducer } from '../fakes/evidence-fake/plugin.js';
import { startHsmIssuer, type HsmIssuer } from '../helpers/sidecar.js';

const ID = 'spiffe://example.org/agent/key-session';

describe('a key the evidence holds: one session, restarted for fresh evidence, replaced when it fails', () => {
  let issuer: HsmIssuer;
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const spki = keySigner(key).publicKey.export({ type: 'spki', format: 'der' });
  const counts = { opens: 0, restarts: 0, closes: 0 };
  let failNextRestart = false;
  const holding: EvidenceProducer = {
    ...fakeProducer,
    async open(values) {
      const inner = await fakeProducer.open(values);
      counts.opens++;
      return {
        key: { signer: keySigner(key), spki },
        respond: (c) => inner.respond(c),
        async restart() {
          counts.restarts++;
          if (failNextRestart) {
            failNextRestart = false;
            throw new TpmError('ERR_TPM_TRANSPORT', 'tpm: the connection to the TPM was lost');
          }
        },
        async close() {
          counts.closes++;
          await inner.close();
        },
      };
    },
  };

  beforeAll(async () => {
    issuer = await startHsmIssuer();
    await issuer.entry(ID, 600);
  }, 60_000);
  afterAll(async () => {
    await issuer?.stop();
  });

  it('reuses the session while an identity it made is held, closes it once on a TPM failure, and keeps it through an issuer outage', async () => {
    const source = producerSource(
      { server: issuer.s.address, bundlePem: issuer.s.bundlePem, producer: holding, values: { 'fake-hsm': issuer.deviceKey } },
      Date.now,
    );
    const first: Obtained = await source.obtain({ jwtAudiences: [] });
    expect(counts).toEqual({ opens: 1, restarts: 0, closes: 0 });
    expect(first.release).toBeDefined();
    expect(parseCertificate(first.identity.svidChain[0]!).spki).toEqual(spki);

    // Fresh evidence while `first` is held: the same session, restarted.
    const second = await source.obtain({ jwtAudiences: [], current: first.identity });
    expect(counts).toEqual({ opens: 1, restarts: 1, closes: 0 });
    expect(second.sameKeySession).toBe(true);
    expect(second.identity.svidChain[0]!.equals(first.identity.svidChain[0]!)).toBe(false);

    // The issuer unreachable: an error, and the session stays (the identity still signs through it).
    await issuer.halt();
    await expect(source.obtain({ jwtAudiences: [], current: second.identity })).rejects.toBeInstanceOf(GrpcCallError);
    expect(counts).toEqual({ opens: 1, restarts: 2, closes: 0 });
    await issuer.restart();

    // The TPM fails: the session is closed, and the next attestation opens a new one.
    failNextRestart = true;
    await expect(source.obtain({ jwtAudiences: [], current: second.identity })).rejects.toBeInstanceOf(TpmError);
    expect(counts).toEqual({ opens: 1, restarts: 3, closes: 1 });
    const third = await source.obtain({ jwtAudiences: [], current: second.identity });
    expect(counts).toEqual({ opens: 2, restarts: 3, closes: 1 });
    expect(third.sameKeySession).toBeUndefined();
    expect(third.release).toBeDefined();

    // The first session's release (the daemon's, when `third` replaces it) does not close it again.
    await first.release!();
    expect(counts.closes).toBe(1);
    await third.release!();
    expect(counts.closes).toBe(2);
    // Released: the next attestation opens a session of its own.
    await source.obtain({ jwtAudiences: [] }).then((o) => o.release?.());
    expect(counts).toEqual({ opens: 3, restarts: 3, closes: 3 });
  }, 60_000);
});
