/**
 * The agent side of the `tpm` evidence type (src/attestation/tpm/attestor.ts, measure.ts) against
 * a TPM in software (test/fakes/soft-tpm-device.ts), and the whole handshake in one process: the
 * attestor's evidence through the issuer's verifier, activation included. What the sidecar
 * must get right: which EK it presents (persistent or recreated, never flushing a persistent
 * one), a resident agent key certified in the same TPM, signatures in JWS form, and a
 * measurement log that replays (`make mutate`, docs/testing.md).
 */
import { createHash, randomBytes, sign, verify } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TpmAttestor } from '../../src/attestation/tpm/attestor.js';
import { measureAgent } from '../../src/attestation/tpm/measure.js';
import { tpmVerifier } from '../../src/attestation/tpm/verifier.js';
import type { AttestationContext, AttestationResult } from '../../src/attestation/verifier.js';
import type { StoreTx, TpmRecord } from '../../src/store/store.js';
import { TPM_ALG, TPM_RH } from '../../src/tpm/constants.js';
import { EK_TEMPLATES } from '../../src/tpm/ek-templates.js';
import { AGENT_CODE_EVENT, EV_IPL, parseEventLog } from '../../src/tpm/eventlog.js';
import { parseEvidence1 } from '../../src/tpm/evidence.js';
import { akTemplate, parsePublic, publicKeyOf } from '../../src/tpm/structures.js';
import { SoftTpmDevice } from '../fakes/soft-tpm-device.js';
import { makeCert } from '../helpers/testca.js';
import { tmpDir } from '../helpers/tmp.js';

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}

const [RSA_EK, ECC_EK] = [EK_TEMPLATES[0]!, EK_TEMPLATES[1]!];
const root = makeCert({ subjectCn: 'tpm root', ca: true });
const mid = makeCert({ subjectCn: 'tpm intermediate', ca: true, issuer: root });

/** A TPM with its EK certificates in NV, as manufacturers ship them. */
function device(): SoftTpmDevice {
  const d = new SoftTpmDevice();
  for (const t of [RSA_EK, ECC_EK]) {
    const ek = d.primary(TPM_RH.ENDORSEMENT, t.template);
    const spki = publicKeyOf(ek.pub).export({ type: 'spki', format: 'der' });
    d.nv.set(t.nvIndex, makeCert({ subjectCn: `ek ${t.name}`, issuer: mid, key: { privateKey: ek.key, spki } }).der);
  }
  return d;
}

class Records {
  readonly records = new Map<string, TpmRecord>();
  async getTpmRecord(h: string) {
    return this.records.get(h);
  }
  async putTpmRecord(r: TpmRecord) {
    this.records.set(r.ekHash, r);
  }
}

/** One handshake of `attestor` with `verifier`; the number of rounds it took and the result. */
async function handshake(attestor: TpmAttestor, verifier: ReturnType<typeof tpmVerifier>, agentSpki: Buffer = Buffer.alloc(0)) {
  const ctx: AttestationContext = { nonce: randomBytes(32), agentKey: { spki: agentSpki } as never, now: new Date() };
  const s = await verifier.begin(ctx);
  let step = await s.respond(await attestor.respond({ nonce: ctx.nonce, payload: s.challenge }));
  let rounds = 1;
  while (step.kind === 'challenge') {
    step = await s.respond(await attestor.respond({ nonce: ctx.nonce, payload: step.payload }));
    rounds++;
  }
  return { rounds, result: step.result as AttestationResult };
}

const verifierFor = (records = new Records(), agentPcr = 23) =>
  tpmVerifier({ records, settings: { roots: [root.der], intermediates: [mid.der], pcrSelection: 'sha256:0,1,7', agentPcr } });

describe('the TPM attestor against the issuer’s verifier', () => {
  it('first contact takes two rounds (activation), the next handshake of the same TPM one; the selectors name the EK', async () => {
    const d = device();
    const records = new Records();
    const v = verifierFor(records);
    const a = new TpmAttestor(d.tpm);
    const first = await handshake(a, v);
    expect(first.rounds).toBe(2);
    expect(a.rounds).toBe(2);
    expect(d.calls).toContain('activateCredential');
    const { ekHash } = await a.endorsementKey();
    expect(first.result.platform).toBe(`tpm:ek_hash:${ekHash}`);
    await first.result.commit!(records as unknown as StoreTx, new Date());
    await a.close();
    // The AK is a primary: the same TPM makes the same AK, which is now enrolled.
    const again = await handshake(new TpmAttestor(d.tpm), v);
    expect(again.rounds).toBe(1);
    // Another TPM is another EK: activated on its own.
    expect((await handshake(new TpmAttestor(device().tpm), v)).rounds).toBe(2);
  });

  it('sends the EK certificate from NV with the intermediates it was given, and quotes the PCRs asked for over the nonce', async () => {
    const d = device();
    const a = new TpmAttestor(d.tpm, { ekIntermediates: [mid.der] });
    const nonce = randomBytes(32);
    const ev = parseEvidence1(await a.respond({ nonce, payload: Buffer.from(JSON.stringify({ pcr_selection: 'sha256:7,0' })) }));
    expect(ev.ekCertificate).toEqual(d.nv.get(RSA_EK.nvIndex));
    expect(ev.ekIntermediates).toEqual([mid.der]);
    expect(ev.ekPublic).toEqual(d.primary(TPM_RH.ENDORSEMENT, RSA_EK.template).pub.bytes);
    expect(ev.akPublic).toEqual(d.primary(TPM_RH.OWNER, akTemplate('ecc')).pub.bytes);
    expect([...ev.pcrs.get(TPM_ALG.SHA256)!.keys()]).toEqual([0, 7]);
    expect(ev.pcrs.get(TPM_ALG.SHA256)!.get(7)).toEqual(d.pcrs[7]);
    expect(ev.attest.includes(nonce)).toBe(true);
    expect(ev.certify).toBeUndefined();
    expect(ev.appLog).toBeUndefined();
    expect(ev.eventLog).toBeUndefined();
    await expect(new TpmAttestor(device().tpm).respond({ nonce, payload: Buffer.from('{}') })).rejects.toThrow('pcr_selection must be a string');
  });

  it('the ECC P-384 EK and an RSA AK when asked, and the firmware log it was given', async () => {
    const d = device();
    const eventLog = Buffer.from('firmware log bytes');
    const a = new TpmAttestor(d.tpm, { ek: 'ecc384', ak: 'rsa', eventLog });
    const ev = parseEvidence1(await a.respond({ nonce: randomBytes(32), payload: Buffer.from('{"pcr_selection":"sha256:0"}') }));
    expect(ev.ekPublic).toEqual(d.primary(TPM_RH.ENDORSEMENT, ECC_EK.template).pub.bytes);
    expect(ev.ekCertificate).toEqual(d.nv.get(ECC_EK.nvIndex));
    expect(parsePublic(ev.akPublic).type).toBe(TPM_ALG.RSA);
    expect(ev.eventLog).toEqual(eventLog);
    const { spki, ekHash } = await a.endorsementKey();
    expect(spki).toEqual(publicKeyOf(d.primary(TPM_RH.ENDORSEMENT, ECC_EK.template).pub).export({ type: 'spki', format: 'der' }));
    expect(ekHash).toBe(createHash('sha256').update(spki).digest('hex'));
    // An explicit AK template overrides the kind.
    const b = new TpmAttestor(device().tpm, { ak: 'rsa', akTemplate: akTemplate('ecc') });
    const ev2 = parseEvidence1(await b.respond({ nonce: randomBytes(32), payload: Buffer.from('{"pcr_selection":"sha256:0"}') }));
    expect(parsePublic(ev2.akPublic).type).toBe(TPM_ALG.ECC);
  });

  it('uses a persistent EK that is an instance of the template, and never flushes it; recreates it otherwise', async () => {
    const d = device();
    const ek = d.primary(TPM_RH.ENDORSEMENT, RSA_EK.template);
    d.persistent.set(RSA_EK.persistentHandle, ek);
    const a = new TpmAttestor(d.tpm);
    const { rounds } = await handshake(a, verifierFor());
    expect(rounds).toBe(2);
    expect(d.calls.filter((c) => c === 'createPrimary')).toHaveLength(1); // the AK only
    await a.close();
    expect(d.flushed).not.toContain(RSA_EK.persistentHandle);
    expect(d.flushed).toHaveLength(1);

    // --recreate-ek: the template, not the persistent copy.
    const r = new SoftTpmDevice();
    r.persistent.set(RSA_EK.persistentHandle, ek);
    const re = new TpmAttestor(r.tpm, { recreateEk: true });
    await re.endorsementKey();
    expect(r.calls).toEqual(['createPrimary']);
    await re.close();
    expect(r.flushed).toHaveLength(1);

    // A persistent object at the EK handle that is not the template's: not the EK.
    const o = new SoftTpmDevice();
    o.persistent.set(RSA_EK.persistentHandle, o.primary(TPM_RH.OWNER, akTemplate('rsa')));
    const odd = new TpmAttestor(o.tpm);
    const { spki } = await odd.endorsementKey();
    expect(spki).toEqual(publicKeyOf(o.primary(TPM_RH.ENDORSEMENT, RSA_EK.template).pub).export({ type: 'spki', format: 'der' }));
    expect(o.calls).toEqual(['readPublic', 'createPrimary']);
  });

  it('a TPM failure reading the persistent EK other than a missing handle is not taken for “no EK”', async () => {
    const d = device();
    d.readPublic = async () => {
      throw new Error('transport closed');
    };
    await expect(new TpmAttestor(d.tpm).endorsementKey()).rejects.toThrow('transport closed');
  });

  it('refuses an activation challenge before the first evidence', async () => {
    const a = new TpmAttestor(device().tpm);
    a.rounds = 1;
    const challenge2 = Buffer.from(JSON.stringify({ credential_blob: 'AAAA', secret: 'AAAA' }));
    expect(await rejection(a.respond({ nonce: randomBytes(32), payload: challenge2 }))).toMatchObject({
      code: 'ERR_TPM_COMMAND',
      message: 'tpm: activation challenge before the first evidence',
    });
  });

  it('close flushes the transient EK, the AK and the resident key, and forgets them', async () => {
    const d = device();
    const a = new TpmAttestor(d.tpm);
    await a.createResidentKey();
    await a.respond({ nonce: randomBytes(32), payload: Buffer.from('{"pcr_selection":"sha256:0"}') });
    const before = d.flushed.length;
    await a.close();
    expect(d.flushed.length - before).toBe(3);
    expect(() => a.residentSigner()).toThrow('tpm: no resident key is loaded (createResidentKey or loadResidentKey first)');
    await a.close();
    expect(d.flushed.length - before).toBe(3);
  });
});

describe('TPM-resident agent keys', () => {
  it('are made under the SRK (flushed after), certified by the AK in the evidence, and then the writ says key residency tpm', async () => {
    const d = device();
    const a = new TpmAttestor(d.tpm);
    const made = await a.createResidentKey();
    expect(d.calls).toEqual(['createPrimary', 'create', 'load', 'flush']);
    expect(made.spki).toEqual(publicKeyOf(parsePublic(made.public)).export({ type: 'spki', format: 'der' }));
    const { result } = await handshake(a, verifierFor(), Buffer.from(made.spki));
    expect(result.keyResidency).toBe('tpm');
    expect(result.selectors.at(-1)).toEqual({ type: 'tpm', value: 'key:resident' });
    // Reloaded from its blobs by the same TPM: the same key.
    const b = new TpmAttestor(d.tpm);
    expect(await b.loadResidentKey(made.public, made.private)).toEqual(made.spki);
    expect(d.calls.slice(-3)).toEqual(['createPrimary', 'load', 'flush']);
    // Another TPM cannot load it.
    await expect(new TpmAttestor(device().tpm).loadResidentKey(made.public, made.private)).rejects.toThrow('tpm: the blob is not this TPM’s');
  });

  it('sign with TPM2_Sign over the SHA-256 of the input, and return IEEE P1363 r‖s padded to 32 bytes each', async () => {
    const d = device();
    const a = new TpmAttestor(d.tpm);
    await a.createResidentKey();
    const signer = a.residentSigner();
    expect(signer.alg).toBe('ES256');
    const input = Buffer.from('header.payload');
    let r = Buffer.alloc(0);
    d.onSign = (k, digest) => {
      expect(digest).toEqual(createHash('sha256').update(input).digest());
      // Until r has a leading zero byte, which a TPM leaves out.
      for (;;) {
        const rs = sign('sha256', input, { key: k.key, dsaEncoding: 'ieee-p1363' });
        if (rs[0] !== 0) continue;
        r = rs.subarray(0, 32);
        return { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: rs.subarray(1, 32), s: rs.subarray(32) };
      }
    };
    const sig = await signer.sign(input);
    expect(sig).toHaveLength(64);
    expect(sig.subarray(0, 32)).toEqual(r);
    expect(verify('sha256', input, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
  });

  it('refuse what is not a P-256 ECDSA signature', async () => {
    const d = device();
    const a = new TpmAttestor(d.tpm);
    await a.createResidentKey();
    const signer = a.residentSigner();
    const msg = { code: 'ERR_TPM_COMMAND', message: 'tpm: the resident key did not return a P-256 ECDSA signature' };
    for (const answer of [
      { sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256, sig: Buffer.alloc(256) },
      { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: Buffer.alloc(33, 1), s: Buffer.alloc(32, 1) },
      { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: Buffer.alloc(32, 1), s: Buffer.alloc(33, 1) },
    ] as const) {
      d.onSign = () => answer;
      expect(await rejection(signer.sign(Buffer.from('x')))).toMatchObject(msg);
    }
    d.onSign = () => ({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: Buffer.alloc(32, 1), s: Buffer.alloc(32, 2) });
    expect(await signer.sign(Buffer.from('x'))).toEqual(Buffer.concat([Buffer.alloc(32, 1), Buffer.alloc(32, 2)]));
  });
});

describe('measured agent code', () => {
  const agentFile = () => {
    const dir = tmpDir();
    const path = join(dir, 'agent');
    writeFileSync(path, 'the agent binary');
    return { dir, path, log: join(dir, 'agent-pcr.log'), digest: createHash('sha256').update('the agent binary').digest() };
  };
  const replay = (digests: Buffer[]) => digests.reduce((v, x) => createHash('sha256').update(v).update(x).digest(), Buffer.alloc(32));

  it('extends the agent’s SHA-256 into PCR 23 and keeps a log (mode 0600) that replays to it', async () => {
    const d = device();
    const f = agentFile();
    const m = await measureAgent(d.tpm, { path: f.path, logFile: f.log });
    expect(m.digest).toEqual(f.digest);
    expect(d.pcrs[23]).toEqual(replay([f.digest]));
    expect(readFileSync(f.log)).toEqual(m.log);
    expect(statSync(f.log).mode & 0o777).toBe(0o600);
    const { events } = parseEventLog(m.log);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ pcr: 23, type: EV_IPL, data: Buffer.from(`${AGENT_CODE_EVENT}${f.path}`) });
    expect(events[0]!.digests.get(TPM_ALG.SHA256)).toEqual(f.digest);
    expect(d.calls).not.toContain('pcrReset');
  });

  it('appends to a log that still replays; starts afresh (resetting the PCR) when it does not, or cannot be read', async () => {
    const d = device();
    const f = agentFile();
    await measureAgent(d.tpm, { path: f.path, logFile: f.log });
    const second = await measureAgent(d.tpm, { path: f.path, logFile: f.log });
    expect(parseEventLog(second.log).events).toHaveLength(2);
    expect(d.pcrs[23]).toEqual(replay([f.digest, f.digest]));
    expect(d.calls).not.toContain('pcrReset');
    // Someone else extended the PCR (or the machine rebooted): the log no longer replays.
    d.pcrs[23] = randomBytes(32);
    const fresh = await measureAgent(d.tpm, { path: f.path, logFile: f.log });
    expect(d.calls).toContain('pcrReset');
    expect(parseEventLog(fresh.log).events).toHaveLength(1);
    expect(d.pcrs[23]).toEqual(replay([f.digest]));
    writeFileSync(f.log, 'not an event log');
    const again = await measureAgent(d.tpm, { path: f.path, logFile: f.log });
    expect(parseEventLog(again.log).events).toHaveLength(1);
    expect(d.pcrs[23]).toEqual(replay([f.digest]));
  });

  it('measures into the PCR asked for; the issuer’s verifier then selects on the agent code', async () => {
    const d = device();
    const f = agentFile();
    await measureAgent(d.tpm, { path: f.path, logFile: f.log, pcr: 16 });
    expect(d.pcrs[16]).toEqual(replay([f.digest]));
    expect(d.pcrs[23]).toEqual(Buffer.alloc(32));
    const g = agentFile();
    const a = new TpmAttestor(device().tpm, { measure: { path: g.path, logFile: g.log } });
    const v = tpmVerifier({ records: new Records(), settings: { roots: [root.der], intermediates: [mid.der], pcrSelection: 'sha256:0,1,7,23', agentPcr: 23 } });
    const { result } = await handshake(a, v);
    expect(result.selectors).toContainEqual({ type: 'tpm', value: `agent_code:sha256:${g.digest.toString('hex')}` });
  });
});
