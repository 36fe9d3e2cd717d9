/**
 * The `tpm` evidence type's two verifiers (src/attestation/tpm/verifier.ts, reverify.ts) rule by
 * rule: the issuer's handshake (credential activation on first contact and for a changed AK,
 * counters and firmware of a known AK, the record committed in the issuance transaction, the
 * cache of verified EK chains) and a relying party's offline re-verification of embedded
 * evidence. Keys, certificates and quotes are made in software exactly as a TPM makes them, and
 * the TPM's side of ActivateCredential is done here independently (test/helpers/soft-tpm.ts)
 * (`make mutate`, docs/testing.md).
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { tpmReverifier } from '../../src/attestation/tpm/reverify.js';
import { ACTIVATION_SECRET_BYTES, EK_CACHE_TTL_MS, TPM_TYPE, tpmVerifier, type TpmVerifierSettings } from '../../src/attestation/tpm/verifier.js';
import type { AttestationContext, AttestationResult, VerifyStep } from '../../src/attestation/verifier.js';
import type { StoreTx, TpmRecord } from '../../src/store/store.js';
import { TPM_ALG, TPM_ST } from '../../src/tpm/constants.js';
import { EK_TEMPLATES } from '../../src/tpm/ek-templates.js';
import { AGENT_CODE_EVENT, EV_IPL, encodeEventLog, type LogEvent } from '../../src/tpm/eventlog.js';
import { MAX_TPM_EVIDENCE_BYTES, encodeChallenge1, encodeEvidence1, encodeEvidence2, parseChallenge2, type TpmEvidence } from '../../src/tpm/evidence.js';
import { objectName, publicKeyOf, residentKeyTemplate, type PcrSelection } from '../../src/tpm/structures.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { activate, ak, attest, softKey, tpmSign, type QuoteOpts, type SoftKey } from '../helpers/soft-tpm.js';
import { makeCert, type TestCert } from '../helpers/testca.js';

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}
function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}
const tpmErr = (m: string) => ({ code: 'ERR_EVIDENCE_INVALID', message: `attestation(tpm): ${m}` });

const T0 = Date.UTC(2030, 0, 1);
const MIN = 60_000;
const SHA256 = TPM_ALG.SHA256;
const SEL: PcrSelection[] = [{ hash: SHA256, pcrs: [0, 1, 7] }];
const SEL16: PcrSelection[] = [{ hash: SHA256, pcrs: [0, 1, 7, 16] }];
const pcrValue = (p: number) => createHash('sha256').update(`pcr${p}`).digest();

// One RSA EK and one AK for the whole file: key generation is the slow part.
const EK: SoftKey = softKey(EK_TEMPLATES[0]!.template);
const AK: SoftKey = ak();
const EK_SPKI = publicKeyOf(EK.pub).export({ type: 'spki', format: 'der' });
const EK_HASH = createHash('sha256').update(EK_SPKI).digest('hex');
const AK_NAME = objectName(AK.pub);

interface World {
  root: TestCert;
  mid: TestCert;
  cert: TestCert;
}

/** A manufacturer root, an intermediate and the EK certificate, with the validity windows given. */
function world(o: { ek?: SoftKey; ekFrom?: number; ekUntil?: number; midUntil?: number } = {}): World {
  const ek = o.ek ?? EK;
  const root = makeCert({ subjectCn: 'tpm root', ca: true, notBefore: new Date(T0 - 86_400_000), notAfter: new Date(T0 + 86_400_000) });
  const mid = makeCert({
    subjectCn: 'tpm intermediate',
    ca: true,
    issuer: root,
    notBefore: new Date(T0 - 86_400_000),
    notAfter: new Date(o.midUntil ?? T0 + 86_400_000),
  });
  const cert = makeCert({
    subjectCn: 'ek',
    issuer: mid,
    key: { privateKey: ek.key, spki: publicKeyOf(ek.pub).export({ type: 'spki', format: 'der' }) },
    notBefore: new Date(o.ekFrom ?? T0 - 3600_000),
    notAfter: new Date(o.ekUntil ?? T0 + 3600_000),
  });
  return { root, mid, cert };
}
const W = world();

const ev = (pcr: number, data: string): LogEvent => {
  const d = Buffer.from(data, 'latin1');
  return { pcr, type: EV_IPL, digests: new Map([[SHA256, createHash('sha256').update(d).digest()]]), data: d };
};

interface EvidenceOpts extends QuoteOpts {
  w?: World;
  ek?: SoftKey;
  ak?: SoftKey;
  intermediates?: Buffer[];
  /** Events of a sidecar agent log (all in one PCR); the PCR's value is their replay. */
  appEvents?: LogEvent[];
  resident?: SoftKey;
}

/** Evidence (round 1) as the sidecar sends it, quoted over `nonce`. */
function evidence(nonce: Buffer, o: EvidenceOpts = {}): { e: TpmEvidence; bytes: Buffer } {
  const w = o.w ?? W;
  const k = o.ak ?? AK;
  const sel = o.sel ?? SEL;
  const values = new Map([[SHA256, new Map(sel[0]!.pcrs.map((p) => [p, pcrValue(p)]))]]);
  if (o.appEvents?.length) {
    const pcr = o.appEvents[0]!.pcr;
    values.get(SHA256)!.set(
      pcr,
      o.appEvents.reduce((v, e) => createHash('sha256').update(v).update(e.digests.get(SHA256)!).digest(), Buffer.alloc(32)),
    );
  }
  const digest = createHash('sha256')
    .update(Buffer.concat(sel[0]!.pcrs.map((p) => values.get(SHA256)!.get(p)!)))
    .digest();
  const a = attest(k, { ...o, sel, digest, nonce });
  const e: TpmEvidence = {
    ekPublic: (o.ek ?? EK).pub.bytes,
    ekCertificate: w.cert.der,
    ekIntermediates: o.intermediates ?? [w.mid.der],
    akPublic: k.pub.bytes,
    attest: a,
    signature: tpmSign(k, a),
    pcrs: values,
    ...(o.appEvents ? { appLog: encodeEventLog(new Map([[SHA256, 32]]), o.appEvents) } : {}),
    ...(o.resident
      ? (() => {
          const c = attest(k, { type: TPM_ST.ATTEST_CERTIFY, name: objectName(o.resident.pub), nonce });
          return { certify: { public: o.resident.pub.bytes, attest: c, signature: tpmSign(k, c) } };
        })()
      : {}),
  };
  return { e, bytes: encodeEvidence1(e) };
}

/** The issuer's TPM records: the fake of the two StoreTx calls the verifier makes. */
class FakeRecords {
  readonly records = new Map<string, TpmRecord>();
  readonly puts: TpmRecord[] = [];
  async getTpmRecord(ekHash: string) {
    return this.records.get(ekHash);
  }
  async putTpmRecord(r: TpmRecord) {
    this.puts.push(r);
    this.records.set(r.ekHash, r);
  }
  get tx(): StoreTx {
    return this as unknown as StoreTx;
  }
}

const FIRMWARE = 0x0202020202020202n;
const enrolled = (over: Partial<TpmRecord> = {}): TpmRecord => ({
  ekHash: EK_HASH,
  akName: AK_NAME,
  firmwareVersion: FIRMWARE.toString(),
  resetCount: 3,
  restartCount: 0,
  clock: '1000',
  activatedAt: T0 - 86_400_000,
  updatedAt: T0 - 3600_000,
  ...over,
});

const settings = (over: Partial<TpmVerifierSettings> = {}): TpmVerifierSettings => ({
  roots: [W.root.der],
  intermediates: [],
  pcrSelection: 'sha256:0,1,7',
  agentPcr: 23,
  ...over,
});

/** The agent key of the hello (a key of the resident-key template, not certified unless a test says so). */
const AGENT = publicKeyOf(softKey(residentKeyTemplate()).pub);
function ctx(now = T0, agent = AGENT): AttestationContext {
  return { nonce: randomBytes(32), agentKey: { key: agent, spki: agent.export({ type: 'spki', format: 'der' }), kind: 'ec-p256' }, now: new Date(now) };
}

const attested = (s: VerifyStep): AttestationResult => {
  expect(s.kind).toBe('attested');
  return (s as { result: AttestationResult }).result;
};

/** Round 1 (and, when the verifier asks, activation with the EK's private key as a TPM would). */
async function handshake(v: ReturnType<typeof tpmVerifier>, o: EvidenceOpts & { now?: number; agent?: typeof AGENT; secret?: (s: Buffer) => Buffer } = {}) {
  const c = ctx(o.now, o.agent);
  const s = await v.begin(c);
  const { bytes } = evidence(c.nonce, o);
  const first = await s.respond(bytes);
  if (first.kind === 'attested') return { first, result: first.result, bytes, session: s, activated: false };
  const { credentialBlob, secret } = parseChallenge2(first.payload);
  const recovered = activate((o.ek ?? EK).pub, (o.ek ?? EK).key, objectName((o.ak ?? AK).pub), credentialBlob, secret);
  const second = await s.respond(encodeEvidence2(o.secret ? o.secret(recovered) : recovered));
  return { first, result: attested(second), bytes, session: s, activated: true };
}

describe('TPM verifier: first contact', () => {
  it('is type tpm, at most two rounds of MAX_TPM_EVIDENCE_BYTES, and first asks for the configured PCRs', async () => {
    const v = tpmVerifier({ records: new FakeRecords(), settings: settings({ pcrSelection: 'sha256:7,0,1' }) });
    expect(v).toMatchObject({ type: TPM_TYPE, maxRounds: 2, maxEvidenceBytes: MAX_TPM_EVIDENCE_BYTES });
    expect(TPM_TYPE).toBe('tpm');
    expect((await v.begin(ctx())).challenge).toEqual(encodeChallenge1('sha256:0,1,7'));
  });

  it('answers evidence from an unknown EK with a credential only the TPM holding that EK, with that AK loaded, can activate', async () => {
    const records = new FakeRecords();
    const v = tpmVerifier({ records, settings: settings() });
    const c = ctx();
    const s = await v.begin(c);
    const first = await s.respond(evidence(c.nonce).bytes);
    expect(first.kind).toBe('challenge');
    const { credentialBlob, secret } = parseChallenge2((first as { payload: Buffer }).payload);
    const recovered = activate(EK.pub, EK.key, AK_NAME, credentialBlob, secret);
    expect(recovered).toHaveLength(ACTIVATION_SECRET_BYTES);
    expect(ACTIVATION_SECRET_BYTES).toBe(32);
    // Made for this AK's Name: with another AK loaded the TPM refuses it.
    expect(() => activate(EK.pub, EK.key, objectName(ak().pub), credentialBlob, secret)).toThrow('integrity check failed');
    const result = attested(await s.respond(encodeEvidence2(recovered)));
    expect(result.platform).toBe(`tpm:ek_hash:${EK_HASH}`);
    expect(result.selectors[0]).toEqual({ type: 'tpm', value: `ek_hash:${EK_HASH}` });
    expect(result.selectors.slice(1)).toEqual(SEL[0]!.pcrs.map((p) => ({ type: 'tpm', value: `pcr:sha256:${p}:${pcrValue(p).toString('hex')}` })));
    expect(result.keyResidency).toBeUndefined();
    expect(records.puts).toEqual([]);
  });

  it('each handshake gets a fresh activation secret', async () => {
    const v = tpmVerifier({ records: new FakeRecords(), settings: settings() });
    const secrets: Buffer[] = [];
    const keep = (s: Buffer) => {
      secrets.push(s);
      return s;
    };
    for (let i = 0; i < 2; i++) await handshake(v, { secret: keep });
    expect(secrets).toHaveLength(2);
    expect(secrets[0]!.equals(secrets[1]!)).toBe(false);
  });

  it('the result carries the evidence digest and the evidence itself (for relying parties to re-verify)', async () => {
    const v = tpmVerifier({ records: new FakeRecords(), settings: settings() });
    const { result, bytes } = await handshake(v);
    expect(result.evidenceDigest).toEqual(createHash('sha256').update(bytes).digest());
    expect(result.publicEvidence).toEqual(bytes);
  });

  it('refuses an activation that returns any other secret: the AK is not resident in the TPM that holds this EK', async () => {
    const v = tpmVerifier({ records: new FakeRecords(), settings: settings() });
    const msg = tpmErr('credential activation failed: the AK is not resident in the TPM that holds this EK');
    for (const wrong of [(s: Buffer) => Buffer.from(s).fill(s[0]! ^ 1, 0, 1), (s: Buffer) => s.subarray(1), (s: Buffer) => Buffer.concat([s, s])]) {
      expect(await rejection(handshake(v, { secret: wrong }))).toMatchObject(msg);
    }
  });

  it('refuses a second evidence message the verifier did not ask for', async () => {
    const records = new FakeRecords();
    records.records.set(EK_HASH, enrolled());
    const v = tpmVerifier({ records, settings: settings() });
    const { session, first } = await handshake(v);
    expect(first.kind).toBe('attested');
    expect(await rejection(session.respond(encodeEvidence2(randomBytes(32))))).toMatchObject(tpmErr('unexpected second evidence message'));
  });

  it('commits the enrolment inside the issuance transaction: EK hash, AK Name, firmware, counters, activation time', async () => {
    const records = new FakeRecords();
    const v = tpmVerifier({ records, settings: settings() });
    const { result } = await handshake(v, { resetCount: 5, restartCount: 2, clock: 77n, firmware: 42n });
    await result.commit!(records.tx, new Date(T0 + 5000));
    expect(records.puts).toEqual([
      { ekHash: EK_HASH, akName: AK_NAME, firmwareVersion: '42', resetCount: 5, restartCount: 2, clock: '77', activatedAt: T0 + 5000, updatedAt: T0 + 5000 },
    ]);
  });
});

describe('TPM verifier: a known EK and AK', () => {
  it('needs no activation; the enrolment keeps its activation time and the counters move to the new quote', async () => {
    const records = new FakeRecords();
    records.records.set(EK_HASH, enrolled());
    const v = tpmVerifier({ records, settings: settings() });
    const { activated, result } = await handshake(v, { resetCount: 3, restartCount: 0, clock: 1000n });
    expect(activated).toBe(false);
    await result.commit!(records.tx, new Date(T0 + 9000));
    expect(records.puts).toEqual([enrolled({ clock: '1000', updatedAt: T0 + 9000 })]);
    const next = await handshake(v, { resetCount: 4, restartCount: 0, clock: 5n });
    expect(next.activated).toBe(false);
    await next.result.commit!(records.tx, new Date(T0 + 10_000));
    expect(records.puts.at(-1)).toEqual(enrolled({ resetCount: 4, clock: '5', updatedAt: T0 + 10_000 }));
  });

  it.each([
    ['resetCount', { resetCount: 2, restartCount: 9, clock: 5000n }, 'TPM resetCount went backwards (replayed quote)'],
    ['restartCount', { resetCount: 3, restartCount: 1, clock: 5000n }, 'TPM restartCount went backwards (replayed quote)'],
    ['clock', { resetCount: 3, restartCount: 2, clock: 999n }, 'TPM clock went backwards (replayed quote)'],
  ] as const)('refuses a quote whose %s is behind the enrolled one (a replayed quote)', async (_n, q, message) => {
    const records = new FakeRecords();
    records.records.set(EK_HASH, enrolled({ restartCount: 2 }));
    const v = tpmVerifier({ records, settings: settings() });
    expect(await rejection(handshake(v, q))).toMatchObject(tpmErr(message));
  });

  it('refuses a known AK whose TPM reports another firmware version', async () => {
    const records = new FakeRecords();
    records.records.set(EK_HASH, enrolled());
    const v = tpmVerifier({ records, settings: settings() });
    expect(await rejection(handshake(v, { firmware: 7n }))).toMatchObject(tpmErr(`TPM firmware version 7 differs from the enrolled ${FIRMWARE}`));
  });

  it('a changed AK for an enrolled EK is activated again; the old AK’s counters and firmware do not apply', async () => {
    const records = new FakeRecords();
    records.records.set(EK_HASH, enrolled({ akName: objectName(ak().pub), resetCount: 99, clock: '99999', firmwareVersion: '1' }));
    const v = tpmVerifier({ records, settings: settings() });
    const { activated, result } = await handshake(v, { resetCount: 1, clock: 5n, firmware: 9n });
    expect(activated).toBe(true);
    await result.commit!(records.tx, new Date(T0 + 1));
    expect(records.puts).toEqual([
      { ekHash: EK_HASH, akName: AK_NAME, firmwareVersion: '9', resetCount: 1, restartCount: 0, clock: '5', activatedAt: T0 + 1, updatedAt: T0 + 1 },
    ]);
  });

  it('an enrolled AK Name of another length is another AK (activated again), not a crash', async () => {
    const records = new FakeRecords();
    records.records.set(EK_HASH, enrolled({ akName: AK_NAME.subarray(2) }));
    expect((await handshake(tpmVerifier({ records, settings: settings() }))).activated).toBe(true);
  });

  it('the commit re-reads the record: a handshake that moved the counters meanwhile wins, for the same AK only', async () => {
    const records = new FakeRecords();
    records.records.set(EK_HASH, enrolled());
    const v = tpmVerifier({ records, settings: settings() });
    const { result } = await handshake(v, { clock: 2000n });
    const moved = new FakeRecords();
    moved.records.set(EK_HASH, enrolled({ clock: '3000' }));
    expect(await rejection(result.commit!(moved.tx, new Date(T0)))).toMatchObject(tpmErr('TPM clock went backwards (replayed quote)'));
    expect(moved.puts).toEqual([]);
    const reenrolled = new FakeRecords();
    reenrolled.records.set(EK_HASH, enrolled({ akName: objectName(ak().pub), clock: '3000', activatedAt: T0 - 5, firmwareVersion: '1' }));
    await result.commit!(reenrolled.tx, new Date(T0));
    expect(reenrolled.puts).toHaveLength(1);
    expect(reenrolled.puts[0]).toMatchObject({ ekHash: EK_HASH, akName: AK_NAME, clock: '2000', updatedAt: T0 });
  });

  it('the commit of a first contact starts a new enrolment even when a record appeared meanwhile', async () => {
    const records = new FakeRecords();
    const v = tpmVerifier({ records, settings: settings() });
    const { result } = await handshake(v, { clock: 50n });
    const raced = new FakeRecords();
    raced.records.set(EK_HASH, enrolled({ clock: '10', activatedAt: T0 - 5, firmwareVersion: '1' }));
    await result.commit!(raced.tx, new Date(T0 + 3));
    expect(raced.puts).toEqual([enrolled({ clock: '50', activatedAt: T0 + 3, updatedAt: T0 + 3 })]);
  });
});

describe('TPM verifier: settings and the evidence check', () => {
  it('refuses a quote over other PCRs than the configured selection', async () => {
    const v = tpmVerifier({ records: new FakeRecords(), settings: settings({ pcrSelection: 'sha256:0,1,2' }) });
    expect(await rejection(handshake(v))).toMatchObject(tpmErr('quote covers sha256:0,1,7, not the requested sha256:0,1,2'));
  });

  it('refuses a quote over another nonce than this handshake’s', async () => {
    const v = tpmVerifier({ records: new FakeRecords(), settings: settings() });
    const s = await v.begin(ctx());
    expect(await rejection(s.respond(evidence(randomBytes(32)).bytes))).toMatchObject(tpmErr('quote nonce mismatch'));
  });

  it('measures the agent in the configured agent PCR, not in whichever PCR the log names', async () => {
    const code = ev(16, `${AGENT_CODE_EVENT}/usr/bin/agent`);
    const at16 = tpmVerifier({ records: new FakeRecords(), settings: settings({ pcrSelection: 'sha256:0,1,7,16', agentPcr: 16 }) });
    const { result } = await handshake(at16, { sel: SEL16, appEvents: [code] });
    expect(result.selectors).toContainEqual({ type: 'tpm', value: `agent_code:sha256:${code.digests.get(SHA256)!.toString('hex')}` });
    const at23 = tpmVerifier({ records: new FakeRecords(), settings: settings({ pcrSelection: 'sha256:0,1,7,16' }) });
    expect(await rejection(handshake(at23, { sel: SEL16, appEvents: [code] }))).toMatchObject(
      tpmErr('the agent measurement log may only hold events for PCR 23'),
    );
  });

  it('the operator’s intermediates complete an EK chain the agent sent without them; the roots are the configured ones', async () => {
    const bare = tpmVerifier({ records: new FakeRecords(), settings: settings() });
    expect((await rejection(handshake(bare, { intermediates: [] }))).message).toBe(
      'attestation(tpm): EK certificate does not chain to a trusted manufacturer root: certificate signed by unknown authority',
    );
    const completed = tpmVerifier({ records: new FakeRecords(), settings: settings({ intermediates: [W.mid.der] }) });
    expect((await handshake(completed, { intermediates: [] })).activated).toBe(true);
    const otherRoot = tpmVerifier({ records: new FakeRecords(), settings: settings({ roots: [world().root.der] }) });
    expect((await rejection(handshake(otherRoot))).message).toMatch(/^attestation\(tpm\): EK certificate does not chain to a trusted manufacturer root/);
  });

  it('a certified TPM-resident key that is the hello’s key sets key residency; another key is refused', async () => {
    const resident = softKey(residentKeyTemplate());
    const key = publicKeyOf(resident.pub);
    const v = tpmVerifier({ records: new FakeRecords(), settings: settings() });
    const { result } = await handshake(v, { resident, agent: key });
    expect(result.keyResidency).toBe('tpm');
    expect(result.selectors.at(-1)).toEqual({ type: 'tpm', value: 'key:resident' });
    expect(await rejection(handshake(v, { resident }))).toMatchObject(tpmErr('the certified TPM key is not the key in the hello'));
  });
});

describe('TPM verifier: the cache of verified EK chains', () => {
  it('is never used for another EK certificate or intermediate list', async () => {
    const v = tpmVerifier({ records: new FakeRecords(), settings: settings() });
    await handshake(v);
    // The same EK, certified by a chain to a root this verifier does not trust.
    const foreign = world();
    expect((await rejection(handshake(v, { w: foreign }))).message).toMatch(/^attestation\(tpm\): EK certificate does not chain/);
    // The same certificate without the intermediate it needs.
    expect((await rejection(handshake(v, { intermediates: [] }))).message).toMatch(/^attestation\(tpm\): EK certificate does not chain/);
  });

  it('is never used for another EK public area', async () => {
    const v = tpmVerifier({ records: new FakeRecords(), settings: settings() });
    await handshake(v);
    const other = softKey(EK_TEMPLATES[0]!.template);
    // The cached certificate, presented with another EK: the certificate is for another key.
    expect(await rejection(handshake(v, { ek: other }))).toMatchObject(tpmErr('EK certificate is for another key than the EK public area'));
  });

  it('holds only inside the EK certificate’s validity: before notBefore and after notAfter the chain is checked again', async () => {
    const w = world({ ekFrom: T0 - MIN, ekUntil: T0 + 5 * MIN });
    const v = tpmVerifier({ records: new FakeRecords(), settings: settings({ roots: [w.root.der] }) });
    await handshake(v, { w, now: T0 });
    expect((await rejection(handshake(v, { w, now: T0 - 2 * MIN }))).message).toMatch(/current time is before notBefore/);
    expect((await rejection(handshake(v, { w, now: T0 + 6 * MIN }))).message).toMatch(/current time is after notAfter/);
  });

  // The name is a literal: a name computed from EK_CACHE_TTL_MS changes with its mutants, and
  // Stryker, which selects tests by name, would then run none.
  it('holds for EK_CACHE_TTL_MS (10 min) at most: an intermediate that expired meanwhile is then noticed', async () => {
    expect(EK_CACHE_TTL_MS).toBe(10 * MIN);
    const w = world({ midUntil: T0 + MIN });
    const v = tpmVerifier({ records: new FakeRecords(), settings: settings({ roots: [w.root.der] }) });
    await handshake(v, { w, now: T0 });
    expect((await handshake(v, { w, now: T0 + 2 * MIN })).activated).toBe(true);
    expect((await handshake(v, { w, now: T0 + EK_CACHE_TTL_MS })).activated).toBe(true);
    expect((await rejection(handshake(v, { w, now: T0 + EK_CACHE_TTL_MS + 1 }))).message).toMatch(/current time is after notAfter/);
    // Each verifier has its own cache.
    expect(
      (await rejection(handshake(tpmVerifier({ records: new FakeRecords(), settings: settings({ roots: [w.root.der] }) }), { w, now: T0 + 2 * MIN }))).message,
    ).toMatch(/current time is after notAfter/);
  });
});

describe('TPM re-verification by a relying party', () => {
  const BINDING = createHash('sha256').update('the writ binding digest').digest();
  const jkt = jwkThumbprint(AGENT);
  const rctx = (over: Partial<{ binding: Buffer; agentJkt: string; at: Date }> = {}) => ({ binding: BINDING, agentJkt: jkt, at: new Date(T0), ...over });

  it('re-verifies evidence quoted over the binding digest against its own roots, and says what it took on trust', () => {
    const r = tpmReverifier({ roots: [W.root.der], intermediates: [] });
    expect(r.type).toBe('tpm');
    const out = r.reverify(evidence(BINDING).bytes, rctx());
    expect(out.selectors).toEqual([
      { type: 'tpm', value: `ek_hash:${EK_HASH}` },
      ...SEL[0]!.pcrs.map((p) => ({ type: 'tpm', value: `pcr:sha256:${p}:${pcrValue(p).toString('hex')}` })),
    ]);
    expect(out.checked).toEqual([
      'tpm: EK certificate chains to a trusted manufacturer root and matches the EK public area',
      'tpm: AK is a restricted, fixedTPM, fixedParent signing key',
      'tpm: quote signed by the AK over the binding digest recomputed from the writ',
      'tpm: PCR values match the quoted digest; event logs replay to them',
    ]);
    expect(out.takenFromIssuer).toEqual([
      'tpm: the AK lives in the TPM that holds this EK (proven to the issuer by MakeCredential/ActivateCredential, an interactive exchange a relying party cannot replay)',
      'tpm: quote counters (reset/restart/clock) only moved forward for this TPM',
    ]);
  });

  it('refuses without roots, and evidence that does not chain to its roots or is checked after the EK certificate expired', () => {
    const bytes = evidence(BINDING).bytes;
    expect(refusal(() => tpmReverifier({ roots: [], intermediates: [] }).reverify(bytes, rctx()))).toMatchObject(
      tpmErr('deep verification needs the TPM manufacturer roots (--tpm-roots)'),
    );
    expect(() => tpmReverifier({ roots: [world().root.der], intermediates: [] }).reverify(bytes, rctx())).toThrow(
      /does not chain to a trusted manufacturer root/,
    );
    expect(() => tpmReverifier({ roots: [W.root.der], intermediates: [] }).reverify(bytes, rctx({ at: new Date(T0 + 2 * 3600_000) }))).toThrow(
      /current time is after notAfter/,
    );
  });

  it('its own intermediates complete the EK chain', () => {
    const bytes = evidence(BINDING, { intermediates: [] }).bytes;
    expect(() => tpmReverifier({ roots: [W.root.der], intermediates: [] }).reverify(bytes, rctx())).toThrow(/certificate signed by unknown authority/);
    expect(tpmReverifier({ roots: [W.root.der], intermediates: [W.mid.der] }).reverify(bytes, rctx()).selectors[0]!.value).toBe(`ek_hash:${EK_HASH}`);
  });

  it('refuses evidence quoted over anything but this writ’s binding digest', () => {
    const r = tpmReverifier({ roots: [W.root.der], intermediates: [] });
    expect(() => r.reverify(evidence(BINDING).bytes, rctx({ binding: randomBytes(32) }))).toThrow('attestation(tpm): quote nonce mismatch');
  });

  it('refuses a certification presented in place of the quote', () => {
    const e = evidence(BINDING).e;
    const c = attest(AK, { type: TPM_ST.ATTEST_CERTIFY, nonce: BINDING });
    const bytes = encodeEvidence1({ ...e, attest: c, signature: tpmSign(AK, c) });
    const r = tpmReverifier({ roots: [W.root.der], intermediates: [] });
    expect(refusal(() => r.reverify(bytes, rctx()))).toMatchObject(tpmErr('attest is not a quote'));
  });

  it('a TPM-resident key must be the writ’s key (by thumbprint); then it says so', () => {
    const resident = softKey(residentKeyTemplate());
    const bytes = evidence(BINDING, { resident }).bytes;
    const r = tpmReverifier({ roots: [W.root.der], intermediates: [] });
    const out = r.reverify(bytes, rctx({ agentJkt: jwkThumbprint(publicKeyOf(resident.pub)) }));
    expect(out.checked.at(-1)).toBe('tpm: the writ key is TPM-resident, certified by the AK');
    expect(out.checked).toHaveLength(5);
    expect(out.selectors.at(-1)).toEqual({ type: 'tpm', value: 'key:resident' });
    expect(() => r.reverify(bytes, rctx())).toThrow('attestation(tpm): the certified TPM key is not the key in the hello');
  });

  it('with the issuer’s agent PCR, refuses an agent log in another PCR; without it, takes the PCR the log names', () => {
    const code = ev(16, `${AGENT_CODE_EVENT}/usr/bin/agent`);
    const bytes = evidence(BINDING, { sel: SEL16, appEvents: [code] }).bytes;
    const told = tpmReverifier({ roots: [W.root.der], intermediates: [], agentPcr: 23 });
    expect(() => told.reverify(bytes, rctx())).toThrow('attestation(tpm): the agent measurement log may only hold events for PCR 23');
    const sixteen = tpmReverifier({ roots: [W.root.der], intermediates: [], agentPcr: 16 });
    const agentCode = { type: 'tpm', value: `agent_code:sha256:${code.digests.get(SHA256)!.toString('hex')}` };
    expect(sixteen.reverify(bytes, rctx()).selectors).toContainEqual(agentCode);
    const untold = tpmReverifier({ roots: [W.root.der], intermediates: [] });
    expect(untold.reverify(bytes, rctx()).selectors).toContainEqual(agentCode);
  });

  it('without the issuer’s agent PCR, the PCR the log names must be an application PCR (16..23)', () => {
    const untold = tpmReverifier({ roots: [W.root.der], intermediates: [] });
    const at = (pcr: number) => {
      const sel: PcrSelection[] = [{ hash: SHA256, pcrs: [0, 1, 7, pcr] }];
      return evidence(BINDING, { sel, appEvents: [ev(pcr, `${AGENT_CODE_EVENT}/usr/bin/agent`)] }).bytes;
    };
    expect(untold.reverify(at(23), rctx()).selectors.some((x) => x.value.startsWith('agent_code:sha256:'))).toBe(true);
    expect(refusal(() => untold.reverify(at(15), rctx()))).toMatchObject(tpmErr('the agent measurement log names PCR 15, outside 16..23'));
    expect(refusal(() => untold.reverify(at(8), rctx()))).toMatchObject(tpmErr('the agent measurement log names PCR 8, outside 16..23'));
  });
});
