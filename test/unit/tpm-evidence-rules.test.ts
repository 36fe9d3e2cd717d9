/**
 * TPM evidence beyond the quote (src/attestation/tpm/ek.ts, replay.ts, evidence-check.ts): the EK
 * certificate profile and its chain, event-log replay against quoted PCRs, the agent-code
 * measurement, and the whole evidence check as the issuer and relying parties run it — on keys,
 * certificates, logs and quotes made in software (`make mutate`, docs/testing.md).
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyEk, OID_TCG_EK_CERTIFICATE } from '../../src/attestation/tpm/ek.js';
import { checkTpmEvidence } from '../../src/attestation/tpm/evidence-check.js';
import { agentCodeDigest, replayLog } from '../../src/attestation/tpm/replay.js';
import * as der from '../../src/der/der.js';
import * as t from '../../src/svid/template.js';
import { TPM_ALG } from '../../src/tpm/constants.js';
import { EK_TEMPLATES } from '../../src/tpm/ek-templates.js';
import { AGENT_CODE_EVENT, EV_IPL, EV_NO_ACTION, encodeEventLog, type LogEvent } from '../../src/tpm/eventlog.js';
import type { TpmEvidence } from '../../src/tpm/evidence.js';
import { objectName, publicKeyOf, residentKeyTemplate, type PcrSelection } from '../../src/tpm/structures.js';
import { OID } from '../../src/x509/oids.js';
import { NONCE, ak, attest, softKey, tpmSign, type SoftKey } from '../helpers/soft-tpm.js';
import { makeCert, type TestCert } from '../helpers/testca.js';

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}
const tpmErr = (m: string) => ({ code: 'ERR_EVIDENCE_INVALID', message: `attestation(tpm): ${m}` });

const NOW = new Date();
const tpmAttr = (oid: string, v: string) => der.set(der.seq(der.oid(oid), der.utf8(v)));
/** The TCG EK certificate SAN: a directoryName with the TPM manufacturer, model and version. */
const tpmSan = (attrs: Buffer[]) => t.extension(OID.subjectAltName, true, der.seq(der.ctx(4, true, der.seq(...attrs))));

interface Ek {
  ek: SoftKey;
  root: TestCert;
  mid: TestCert;
  cert: TestCert;
}

function ekWorld(o: { extra?: Buffer[]; ca?: boolean; ek?: SoftKey } = {}): Ek {
  const ek = o.ek ?? softKey(EK_TEMPLATES[0]!.template);
  const root = makeCert({ subjectCn: 'tpm root', ca: true });
  const mid = makeCert({ subjectCn: 'tpm intermediate', ca: true, issuer: root });
  const spki = publicKeyOf(ek.pub).export({ type: 'spki', format: 'der' });
  const cert = makeCert({
    subjectCn: 'ek',
    issuer: mid,
    key: { privateKey: ek.key, spki },
    ...(o.ca ? { ca: true } : {}),
    extraExtensions: o.extra ?? [tpmSan([tpmAttr('2.23.133.2.1', 'id:53544D20'), tpmAttr('2.23.133.2.2', 'SLB9670'), tpmAttr('2.23.133.2.3', 'id:00070002')])],
  });
  return { ek, root, mid, cert };
}

describe('EK certificates', () => {
  it('accepts an EK of a TCG template whose certificate chains to a root, and reads the TPM identity', () => {
    const w = ekWorld();
    const id = verifyEk(w.ek.pub, w.cert.der, [w.mid.der], [w.root.der], NOW);
    expect(id.ekHash).toBe(
      createHash('sha256')
        .update(publicKeyOf(w.ek.pub).export({ type: 'spki', format: 'der' }))
        .digest('hex'),
    );
    expect(id).toMatchObject({ manufacturer: 'id:53544D20', model: 'SLB9670', version: 'id:00070002' });
    expect(id.certificate.der).toEqual(w.cert.der);
  });

  it('accepts the ECC P-384 template (H-3) too', () => {
    const w = ekWorld({ ek: softKey(EK_TEMPLATES[1]!.template, {}, 'secp384r1') });
    expect(verifyEk(w.ek.pub, w.cert.der, [w.mid.der], [w.root.der], NOW).ekHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('ignores identity attributes that are not printable or too long, and unknown attributes', () => {
    const w = ekWorld({
      extra: [
        tpmSan([tpmAttr('2.23.133.2.1', 'bad\u0001'), tpmAttr('2.23.133.2.2', 'm'.repeat(65)), tpmAttr('2.23.133.2.9', 'x'), tpmAttr('2.23.133.2.3', '7')]),
      ],
    });
    const id = verifyEk(w.ek.pub, w.cert.der, [w.mid.der], [w.root.der], NOW);
    expect(id.manufacturer).toBeUndefined();
    expect(id.model).toBeUndefined();
    expect(id.version).toBe('7');
    const none = ekWorld({ extra: [] });
    expect(verifyEk(none.ek.pub, none.cert.der, [none.mid.der], [none.root.der], NOW)).not.toHaveProperty('manufacturer');
  });

  it('refuses an EK public area that is not a TCG default template (another key kind, or changed attributes)', () => {
    const w = ekWorld();
    const msg = tpmErr('EK public area does not match a TCG default EK template');
    expect(refusal(() => verifyEk(ak().pub, w.cert.der, [w.mid.der], [w.root.der], NOW))).toMatchObject(msg);
    const tweaked = softKey(EK_TEMPLATES[0]!.template, { attributes: EK_TEMPLATES[0]!.template.attributes | (1 << 6) });
    expect(refusal(() => verifyEk(tweaked.pub, w.cert.der, [w.mid.der], [w.root.der], NOW))).toMatchObject(msg);
  });

  it('refuses a malformed certificate or intermediate, saying why', () => {
    const w = ekWorld();
    expect(refusal(() => verifyEk(w.ek.pub, Buffer.from('junk'), [w.mid.der], [w.root.der], NOW)).message).toMatch(
      /^attestation\(tpm\): EK certificate is malformed: /,
    );
    expect(refusal(() => verifyEk(w.ek.pub, w.cert.der, [Buffer.from([0x30, 0x00])], [w.root.der], NOW)).message).toMatch(
      /^attestation\(tpm\): EK certificate is malformed: /,
    );
  });

  it('refuses a certificate for another key than the EK', () => {
    const w = ekWorld();
    const other = softKey(EK_TEMPLATES[0]!.template);
    expect(refusal(() => verifyEk(other.pub, w.cert.der, [w.mid.der], [w.root.der], NOW))).toMatchObject(
      tpmErr('EK certificate is for another key than the EK public area'),
    );
  });

  it('refuses a CA certificate as an EK certificate', () => {
    const w = ekWorld({ ca: true });
    expect(refusal(() => verifyEk(w.ek.pub, w.cert.der, [w.mid.der], [w.root.der], NOW))).toMatchObject(tpmErr('EK certificate is a CA certificate'));
  });

  it('refuses an EKU without tcg-kp-EKCertificate, accepts one with it', () => {
    const bad = ekWorld({ extra: [t.extKeyUsage([OID.clientAuth])] });
    expect(refusal(() => verifyEk(bad.ek.pub, bad.cert.der, [bad.mid.der], [bad.root.der], NOW))).toMatchObject(
      tpmErr('EK certificate EKU lacks tcg-kp-EKCertificate'),
    );
    const good = ekWorld({ extra: [t.extKeyUsage([OID.clientAuth, OID_TCG_EK_CERTIFICATE])] });
    expect(verifyEk(good.ek.pub, good.cert.der, [good.mid.der], [good.root.der], NOW).ekHash).toMatch(/^[0-9a-f]{64}$/);
    expect(OID_TCG_EK_CERTIFICATE).toBe('2.23.133.8.1');
  });

  it('refuses an unknown critical extension, naming it', () => {
    const w = ekWorld({ extra: [t.extension('1.3.6.1.4.1.99999.7', true, der.seq())] });
    expect(refusal(() => verifyEk(w.ek.pub, w.cert.der, [w.mid.der], [w.root.der], NOW))).toMatchObject(
      tpmErr('EK certificate has unknown critical extension 1.3.6.1.4.1.99999.7'),
    );
  });

  it('refuses with no roots configured, and a chain to no configured root', () => {
    const w = ekWorld();
    expect(refusal(() => verifyEk(w.ek.pub, w.cert.der, [w.mid.der], [], NOW))).toMatchObject(tpmErr('no TPM manufacturer roots are configured'));
    expect(refusal(() => verifyEk(w.ek.pub, w.cert.der, [], [w.root.der], NOW))).toMatchObject(
      tpmErr('EK certificate does not chain to a trusted manufacturer root: certificate signed by unknown authority'),
    );
    const late = new Date(NOW.getTime() + 2 * 3600_000);
    expect(refusal(() => verifyEk(w.ek.pub, w.cert.der, [w.mid.der], [w.root.der], late)).message).toMatch(/current time is after notAfter/);
  });
});

const SHA256 = TPM_ALG.SHA256;
const ev = (pcr: number, data: string | Buffer, type = EV_IPL, digest?: Buffer): LogEvent => {
  const d = Buffer.isBuffer(data) ? data : Buffer.from(data, 'latin1');
  return { pcr, type, digests: new Map([[SHA256, digest ?? createHash('sha256').update(d).digest()]]), data: d };
};
const extend = (events: LogEvent[], start = Buffer.alloc(32)) =>
  events.reduce((v, e) => createHash('sha256').update(v).update(e.digests.get(SHA256)!).digest(), start);
const log = (events: LogEvent[]) => encodeEventLog(new Map([[SHA256, 32]]), events);
const pcrValues = (m: Record<number, Buffer>) => new Map([[SHA256, new Map(Object.entries(m).map(([k, v]) => [Number(k), v]))]]);

describe('event-log replay', () => {
  const sel: PcrSelection[] = [{ hash: SHA256, pcrs: [0, 4, 7] }];

  it('replays each quoted PCR and trusts its events; events in unquoted PCRs are not trusted', () => {
    const e0 = [ev(0, 'crtm'), ev(0, 'bios')];
    const e4 = [ev(4, 'bootloader')];
    const e9 = [ev(9, 'unquoted')];
    const trusted = replayLog(log([...e0, ...e4, ...e9]), sel, pcrValues({ 0: extend(e0), 4: extend(e4), 7: Buffer.alloc(32) }));
    expect(trusted.map((e) => e.data.toString())).toEqual(['crtm', 'bios', 'bootloader']);
  });

  it('refuses a log that does not replay to a quoted value, naming the PCR', () => {
    const e4 = [ev(4, 'bootloader')];
    expect(refusal(() => replayLog(log(e4), sel, pcrValues({ 4: Buffer.alloc(32, 1) })))).toMatchObject(
      tpmErr('event log replay does not match quoted PCR sha256:4'),
    );
    expect(refusal(() => replayLog(log(e4), sel, pcrValues({ 0: Buffer.alloc(32) })))).toMatchObject(
      tpmErr('event log replay does not match quoted PCR sha256:4'),
    );
  });

  it('refuses a log without a digest of the quoted bank for an event in a quoted PCR', () => {
    const sha1Only: LogEvent = { pcr: 4, type: EV_IPL, digests: new Map([[TPM_ALG.SHA1, Buffer.alloc(20)]]), data: Buffer.from('x') };
    const l = encodeEventLog(
      new Map([
        [TPM_ALG.SHA1, 20],
        [SHA256, 32],
      ]),
      [sha1Only],
    );
    expect(refusal(() => replayLog(l, sel, pcrValues({ 4: Buffer.alloc(32) })))).toMatchObject(tpmErr('event log has no sha256 digest for an event in PCR 4'));
  });

  it('applies the H-CRTM StartupLocality event to PCR 0 only, and never trusts EV_NO_ACTION events', () => {
    const locality = Buffer.concat([Buffer.from('StartupLocality\0', 'latin1'), Buffer.from([3])]);
    const e0 = [ev(0, locality, EV_NO_ACTION, Buffer.alloc(32)), ev(0, 'crtm')];
    const start = Buffer.alloc(32);
    start[31] = 3;
    const trusted = replayLog(log(e0), sel, pcrValues({ 0: extend([e0[1]!], start) }));
    expect(trusted.map((e) => e.data.toString('latin1'))).toEqual(['crtm']);
    // The same event elsewhere, or with other data, changes nothing.
    const other = [ev(0, Buffer.concat([Buffer.from('StartupLocality\0', 'latin1'), Buffer.from([3, 0])]), EV_NO_ACTION, Buffer.alloc(32)), ev(0, 'crtm')];
    expect(replayLog(log(other), sel, pcrValues({ 0: extend([other[1]!]) }))).toHaveLength(1);
    const in4 = [ev(4, locality, EV_NO_ACTION, Buffer.alloc(32)), ev(4, 'boot')];
    expect(replayLog(log(in4), sel, pcrValues({ 4: extend([in4[1]!]) }))).toHaveLength(1);
    const wrongLabel = [ev(0, Buffer.concat([Buffer.from('StartupLocalitY\0', 'latin1'), Buffer.from([3])]), EV_NO_ACTION, Buffer.alloc(32)), ev(0, 'crtm')];
    expect(replayLog(log(wrongLabel), sel, pcrValues({ 0: extend([wrongLabel[1]!]) }))).toHaveLength(1);
  });

  it('agentCodeDigest: the last agent-code event in the agent PCR, among trusted events only', () => {
    const a1 = ev(23, `${AGENT_CODE_EVENT}/usr/bin/agent-v1`, EV_IPL, Buffer.alloc(32, 1));
    const a2 = ev(23, `${AGENT_CODE_EVENT}/usr/bin/agent-v2`, EV_IPL, Buffer.alloc(32, 2));
    const other = ev(23, 'something else', EV_IPL, Buffer.alloc(32, 3));
    const elsewhere = ev(22, `${AGENT_CODE_EVENT}x`, EV_IPL, Buffer.alloc(32, 4));
    expect(agentCodeDigest([a1, a2, other, elsewhere], 23, SHA256)).toEqual(Buffer.alloc(32, 2));
    expect(agentCodeDigest([other, elsewhere], 23, SHA256)).toBeUndefined();
    expect(agentCodeDigest([], 23, SHA256)).toBeUndefined();
    expect(agentCodeDigest([a1], 23, TPM_ALG.SHA384)).toBeUndefined();
  });
});

describe('the whole TPM evidence check', () => {
  const SEL23: PcrSelection[] = [{ hash: SHA256, pcrs: [0, 23] }];

  function evidence(o: { appEvents?: LogEvent[]; fwEvents?: LogEvent[]; resident?: SoftKey; certifyNonce?: Buffer; nonce?: Buffer } = {}) {
    const w = ekWorld();
    const k = ak();
    const fw = o.fwEvents ?? [ev(0, 'crtm')];
    const app = o.appEvents;
    const values = pcrValues({ 0: extend(fw.filter((e) => e.pcr === 0)), 23: extend((app ?? []).filter((e) => e.pcr === 23)) });
    const { pcrDigest } = {
      pcrDigest: createHash('sha256')
        .update(Buffer.concat([values.get(SHA256)!.get(0)!, values.get(SHA256)!.get(23)!]))
        .digest(),
    };
    const a = attest(k, { sel: SEL23, digest: pcrDigest, nonce: o.nonce ?? NONCE });
    const e: TpmEvidence = {
      ekPublic: w.ek.pub.bytes,
      ekCertificate: w.cert.der,
      ekIntermediates: [w.mid.der],
      akPublic: k.pub.bytes,
      attest: a,
      signature: tpmSign(k, a),
      pcrs: values,
      eventLog: log(fw),
      ...(app ? { appLog: log(app) } : {}),
      ...(o.resident
        ? (() => {
            const c = attest(k, { type: 0x8017, name: objectName(o.resident.pub), nonce: o.certifyNonce ?? NONCE });
            return { certify: { public: o.resident.pub.bytes, attest: c, signature: tpmSign(k, c) } };
          })()
        : {}),
    };
    return { e, w, k };
  }
  const check = (x: ReturnType<typeof evidence>, over: Partial<Parameters<typeof checkTpmEvidence>[1]> = {}) =>
    checkTpmEvidence(x.e, {
      nonce: NONCE,
      selection: SEL23,
      agentPcr: 23,
      verifyEk: (ek) => verifyEk(ek, x.w.cert.der, [x.w.mid.der], [x.w.root.der], NOW),
      residentKeyIs: () => false,
      ...over,
    });

  it('derives the selectors: EK hash, agent code, TPM identity, every quoted PCR', () => {
    const code = ev(23, `${AGENT_CODE_EVENT}/usr/bin/agent`, EV_IPL, Buffer.alloc(32, 7));
    const x = evidence({ appEvents: [code] });
    const c = check(x);
    const v = x.e.pcrs.get(SHA256)!;
    expect(c.selectors).toEqual([
      { type: 'tpm', value: `ek_hash:${c.identity.ekHash}` },
      { type: 'tpm', value: `agent_code:sha256:${'07'.repeat(32)}` },
      { type: 'tpm', value: 'manufacturer:id:53544D20' },
      { type: 'tpm', value: 'model:SLB9670' },
      { type: 'tpm', value: 'version:id:00070002' },
      { type: 'tpm', value: `pcr:sha256:0:${v.get(0)!.toString('hex')}` },
      { type: 'tpm', value: `pcr:sha256:23:${v.get(23)!.toString('hex')}` },
    ]);
    expect(c.resident).toBe(false);
    expect(c.ak.bytes).toEqual(x.k.pub.bytes);
    expect(c.ek.bytes).toEqual(x.w.ek.pub.bytes);
  });

  it('has no agent-code selector without an agent log', () => {
    const c = check(evidence());
    expect(c.selectors.some((s) => s.value.startsWith('agent_code:'))).toBe(false);
  });

  it('refuses an agent log with events outside the agent PCR (they would be trusted as firmware)', () => {
    const x = evidence({ appEvents: [ev(23, `${AGENT_CODE_EVENT}a`), ev(0, 'forged firmware event')] });
    expect(refusal(() => check(x))).toMatchObject(tpmErr('the agent measurement log may only hold events for PCR 23'));
  });

  it('refuses a firmware log that does not replay, and a quote over another nonce', () => {
    const x = evidence();
    const bad = { ...x, e: { ...x.e, eventLog: log([ev(0, 'other')]) } };
    expect(refusal(() => check(bad))).toMatchObject(tpmErr('event log replay does not match quoted PCR sha256:0'));
    expect(refusal(() => check(evidence({ nonce: randomBytes(32) })))).toMatchObject(tpmErr('quote nonce mismatch'));
  });

  it('a certified resident key must be the agent’s key; then the selectors say so', () => {
    const resident = softKey(residentKeyTemplate());
    const x = evidence({ resident });
    const seen: unknown[] = [];
    const c = check(x, {
      residentKeyIs: (k) => {
        seen.push(k.export({ type: 'spki', format: 'der' }));
        return true;
      },
    });
    expect(seen).toEqual([publicKeyOf(resident.pub).export({ type: 'spki', format: 'der' })]);
    expect(c.resident).toBe(true);
    expect(c.selectors.at(-1)).toEqual({ type: 'tpm', value: 'key:resident' });
    expect(refusal(() => check(x))).toMatchObject(tpmErr('the certified TPM key is not the key in the hello'));
    expect(refusal(() => check(evidence({ resident, certifyNonce: randomBytes(32) }), { residentKeyIs: () => true }))).toMatchObject(
      tpmErr('certify nonce mismatch'),
    );
  });

  it('uses the EK verifier it is given', () => {
    const x = evidence();
    expect(
      refusal(() =>
        check(x, {
          verifyEk: () => {
            throw new Error('ek refused');
          },
        }),
      ).message,
    ).toBe('ek refused');
  });
});
