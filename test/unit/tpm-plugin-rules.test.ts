/**
 * The `tpm` evidence type's settings and trust (src/attestation/tpm/plugin.ts: `attestation.tpm`,
 * the `writ verify --deep` options, the same agent PCR for the issuer's verifier and its own
 * re-verifier) and the offline quote check operators run on tpm2-tools files
 * (src/attestation/tpm/check-quote.ts) (`make mutate`, docs/testing.md).
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkQuoteOffline, readPublicFile, splitPcrValues } from '../../src/attestation/tpm/check-quote.js';
import { DEFAULT_AGENT_PCR } from '../../src/attestation/tpm/evidence-check.js';
import { DEFAULT_PCR_SELECTION, parseTpmSettings, tpmPlugin, type TpmSettings } from '../../src/attestation/tpm/plugin.js';
import { Section } from '../../src/config/section.js';
import { encodePem } from '../../src/der/pem.js';
import { TPM_ALG } from '../../src/tpm/constants.js';
import { EK_TEMPLATES } from '../../src/tpm/ek-templates.js';
import { EV_IPL, encodeEventLog, type LogEvent } from '../../src/tpm/eventlog.js';
import { objectName, publicKeyOf, type PcrSelection } from '../../src/tpm/structures.js';
import { NONCE, ak, attest, softKey, tpmSign } from '../helpers/soft-tpm.js';
import { makeCert } from '../helpers/testca.js';
import { tmpDir } from '../helpers/tmp.js';

const SHA256 = TPM_ALG.SHA256;

function parse(raw: unknown): { settings: TpmSettings; problems: string[] } {
  const problems: string[] = [];
  const settings = parseTpmSettings(Section.of('attestation.tpm', raw, problems));
  return { settings, problems };
}

const root = makeCert({ subjectCn: 'tpm root', ca: true });
const mid = makeCert({ subjectCn: 'tpm intermediate', ca: true, issuer: root });

describe('attestation.tpm settings', () => {
  it('defaults: no roots, no intermediates, PCRs 0-7 of sha256, agent PCR 23', () => {
    expect(parse(undefined)).toEqual({
      settings: { rootFiles: [], roots: [], intermediates: [], pcrSelection: 'sha256:0,1,2,3,4,5,6,7', agentPcr: 23 },
      problems: [],
    });
    expect(DEFAULT_PCR_SELECTION).toBe('sha256:0,1,2,3,4,5,6,7');
    expect(DEFAULT_AGENT_PCR).toBe(23);
  });

  it('reads roots and intermediates from PEM or DER files, every certificate of a PEM file', () => {
    const d = tmpDir();
    writeFileSync(join(d, 'roots.pem'), encodePem('CERTIFICATE', root.der) + encodePem('CERTIFICATE', mid.der));
    writeFileSync(join(d, 'mid.der'), mid.der);
    const { settings, problems } = parse({
      manufacturer_roots: [join(d, 'roots.pem')],
      intermediates: [join(d, 'mid.der')],
      pcr_selection: 'sha256:0,7',
      agent_pcr: 16,
    });
    expect(problems).toEqual([]);
    expect(settings).toEqual({
      rootFiles: [join(d, 'roots.pem')],
      roots: [root.der, mid.der],
      intermediates: [mid.der],
      pcrSelection: 'sha256:0,7',
      agentPcr: 16,
    });
    expect(tpmPlugin.describe!(settings)).toBe('2 manufacturer root(s) from 1 file(s), 1 intermediate(s), PCRs sha256:0,7, agent PCR 16');
  });

  it('reports every problem: unknown keys, unreadable or empty files, files that are not certificates, a bad selection, an agent PCR outside 16..23', () => {
    const d = tmpDir();
    writeFileSync(join(d, 'empty.pem'), '# no certificates here\n-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n');
    writeFileSync(join(d, 'junk.der'), Buffer.from('not a certificate'));
    const { problems, settings } = parse({
      manufacturer_roots: [join(d, 'empty.pem'), join(d, 'missing.pem')],
      intermediates: [join(d, 'junk.der')],
      pcr_selection: 'sha256:0,99',
      agent_pcr: 24,
      pcrs: 'x',
    });
    expect(problems).toHaveLength(6);
    expect(problems[0]).toBe('unknown key attestation.tpm.pcrs');
    expect(problems[1]).toBe('attestation.tpm.pcr_selection: tpm: PCR index beyond 23');
    expect(problems[2]).toBe(`attestation.tpm.manufacturer_roots: ${join(d, 'empty.pem')} holds no certificate`);
    expect(problems[3]).toBe(
      `attestation.tpm.manufacturer_roots: ${join(d, 'missing.pem')}: certificate file: cannot read ${join(d, 'missing.pem')}: no such file`,
    );
    expect(problems[4]).toMatch(new RegExp(`^attestation\\.tpm\\.intermediates: ${join(d, 'junk.der').replace(/[.]/g, '\\.')}: `));
    expect(problems[5]).toBe('attestation.tpm.agent_pcr must be an integer 16..23');
    expect(settings.roots).toEqual([]);
    expect(settings.intermediates).toEqual([]);
    expect(parse({ agent_pcr: 15 }).problems).toEqual(['attestation.tpm.agent_pcr must be an integer 16..23']);
    expect(parse({ agent_pcr: 16 }).problems).toEqual([]);
  });

  it('the issuer’s own re-verifier gets the issuer’s trust and agent PCR (not the default)', () => {
    const s: TpmSettings = { rootFiles: [], roots: [root.der], intermediates: [mid.der], pcrSelection: DEFAULT_PCR_SELECTION, agentPcr: 16 };
    expect(tpmPlugin.relyingParty!.fromSettings(s)).toEqual({ roots: [root.der], intermediates: [mid.der], agentPcr: 16 });
    expect(tpmPlugin.type).toBe('tpm');
    expect(tpmPlugin.relyingParty!.reverifier({ roots: [], intermediates: [] }).type).toBe('tpm');
    const v = tpmPlugin.verifier(s, { store: {} as never });
    expect(v).toMatchObject({ type: 'tpm', maxRounds: 2 });
  });
});

describe('writ verify --deep options for tpm', () => {
  const fromOptions = tpmPlugin.relyingParty!.fromOptions;

  it('declares --tpm-roots, --tpm-intermediates (repeatable files) and --tpm-agent-pcr', () => {
    const o = tpmPlugin.relyingParty!.options;
    expect(Object.keys(o)).toEqual(['tpm-roots', 'tpm-intermediates', 'tpm-agent-pcr']);
    expect(o['tpm-roots']).toMatchObject({ type: 'string', multiple: true });
    expect(o['tpm-intermediates']).toMatchObject({ type: 'string', multiple: true });
    expect(o['tpm-agent-pcr']).toMatchObject({ type: 'string' });
    expect(o['tpm-agent-pcr']!.multiple).toBeUndefined();
  });

  it('reads every certificate of every file; a file with none is a usage error', () => {
    const d = tmpDir();
    writeFileSync(join(d, 'a.pem'), encodePem('CERTIFICATE', root.der) + encodePem('CERTIFICATE', mid.der));
    writeFileSync(join(d, 'b.der'), mid.der);
    writeFileSync(join(d, 'none.pem'), '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n');
    expect(fromOptions({ 'tpm-roots': [join(d, 'a.pem'), join(d, 'b.der')], 'tpm-intermediates': join(d, 'b.der') })).toEqual({
      roots: [root.der, mid.der, mid.der],
      intermediates: [mid.der],
    });
    expect(fromOptions({})).toEqual({ roots: [], intermediates: [] });
    expect(() => fromOptions({ 'tpm-roots': [join(d, 'none.pem')] })).toThrow(`--tpm-roots: ${join(d, 'none.pem')} holds no certificate`);
    expect(() => fromOptions({ 'tpm-intermediates': [join(d, 'none.pem')] })).toThrow(`--tpm-intermediates: ${join(d, 'none.pem')} holds no certificate`);
    expect(() => fromOptions({ 'tpm-roots': [join(d, 'missing')] })).toThrow(`--tpm-roots: cannot read ${join(d, 'missing')}: no such file`);
  });

  it('--tpm-agent-pcr: an integer 16..23, absent when not given', () => {
    expect(fromOptions({ 'tpm-agent-pcr': '16' })).toEqual({ roots: [], intermediates: [], agentPcr: 16 });
    expect(fromOptions({ 'tpm-agent-pcr': '23' }).agentPcr).toBe(23);
    expect('agentPcr' in fromOptions({})).toBe(false);
    for (const bad of ['15', '24', '16.5', 'x', '', '-1']) {
      expect(() => fromOptions({ 'tpm-agent-pcr': bad }), bad).toThrow('--tpm-agent-pcr must be an integer 16..23');
    }
  });
});

describe('offline quote check (writ tpm check-quote)', () => {
  const k = ak();
  const sel: PcrSelection[] = [{ hash: SHA256, pcrs: [0, 7] }];
  const v0 = createHash('sha256').update('pcr0').digest();
  const v7 = createHash('sha256').update('pcr7').digest();
  const values = new Map([
    [
      SHA256,
      new Map([
        [0, v0],
        [7, v7],
      ]),
    ],
  ]);
  const digest = createHash('sha256')
    .update(Buffer.concat([v0, v7]))
    .digest();
  const a = attest(k, { sel, digest, resetCount: 4, restartCount: 1, clock: 99n });
  const input = { akPublic: k.pub.bytes, attest: a, signature: tpmSign(k, a), pcrValues: Buffer.concat([v0, v7]), selection: sel, nonce: NONCE };

  it('readPublicFile: a TPM2B_PUBLIC (size-prefixed) or a bare TPMT_PUBLIC', () => {
    const tpm2b = Buffer.concat([Buffer.from([k.pub.bytes.length >> 8, k.pub.bytes.length & 0xff]), k.pub.bytes]);
    expect(readPublicFile(tpm2b).bytes).toEqual(k.pub.bytes);
    expect(readPublicFile(k.pub.bytes).bytes).toEqual(k.pub.bytes);
    expect(() => readPublicFile(Buffer.concat([tpm2b, Buffer.alloc(1)]))).toThrow();
    expect(() => readPublicFile(Buffer.alloc(1))).toThrow();
  });

  it('splitPcrValues: the selection’s bank sizes, in order, with nothing left over', () => {
    expect(splitPcrValues(Buffer.concat([v0, v7]), sel)).toEqual(values);
    expect(() => splitPcrValues(Buffer.concat([v0, v7, Buffer.alloc(1)]), sel)).toThrow(/1 trailing bytes/);
    expect(() => splitPcrValues(v0, sel)).toThrow();
    const two: PcrSelection[] = [
      { hash: TPM_ALG.SHA1, pcrs: [1] },
      { hash: SHA256, pcrs: [2] },
    ];
    const raw = Buffer.concat([Buffer.alloc(20, 1), Buffer.alloc(32, 2)]);
    expect(splitPcrValues(raw, two)).toEqual(
      new Map([
        [TPM_ALG.SHA1, new Map([[1, Buffer.alloc(20, 1)]])],
        [SHA256, new Map([[2, Buffer.alloc(32, 2)]])],
      ]),
    );
  });

  it('reports each check made, the counters, and that the AK-to-EK binding and the EK were not checked', () => {
    const r = checkQuoteOffline(input);
    expect(r.checks).toEqual([
      `AK public area parsed strictly; Name ${objectName(k.pub).toString('hex')} computed from it`,
      'AK is fixedTPM, fixedParent, sensitiveDataOrigin, restricted, sign, not decrypt; SHA-256+ scheme (tpm2_checkquote does not check this)',
      "signature by the AK over the exact TPMS_ATTEST, with the AK's own scheme and hash",
      'magic TPM_GENERATED_VALUE and type TPM_ST_ATTEST_QUOTE',
      'extraData equals the nonce',
      'PCR selection is exactly sha256:0,7',
      'pcrDigest recomputed from the PCR values',
      'clock is safe',
      `TPM counters: resetCount 4, restartCount 1, clock 99, firmware ${0x0202020202020202n}`,
    ]);
    expect(r.notChecked).toEqual([
      'AK-to-EK binding: only the online credential activation (MakeCredential/ActivateCredential) proves the AK lives in the TPM that holds the EK',
      'EK certificate (give --ek-cert, --ek-pub and --roots)',
    ]);
  });

  it('refuses what the online verifier refuses: another nonce, other PCR values, a foreign signature', () => {
    expect(() => checkQuoteOffline({ ...input, nonce: Buffer.alloc(32) })).toThrow('attestation(tpm): quote nonce mismatch');
    expect(() => checkQuoteOffline({ ...input, pcrValues: Buffer.concat([v7, v0]) })).toThrow('attestation(tpm): PCR values do not match the quoted digest');
    expect(() => checkQuoteOffline({ ...input, signature: tpmSign(ak(), a) })).toThrow('attestation(tpm): signature does not verify with the AK');
    expect(() => checkQuoteOffline({ ...input, selection: [{ hash: SHA256, pcrs: [0] }], pcrValues: v0 })).toThrow(/quote covers sha256:0,7/);
  });

  it('replays an event log against the quoted values and says how many events it trusted', () => {
    const e = (pcr: number, d: string): LogEvent => ({
      pcr,
      type: EV_IPL,
      digests: new Map([[SHA256, createHash('sha256').update(d).digest()]]),
      data: Buffer.from(d),
    });
    const events = [e(7, 'sb'), e(0, 'a'), e(0, 'b'), e(9, 'unquoted')];
    const ext = (xs: LogEvent[]) => xs.reduce((v, x) => createHash('sha256').update(v).update(x.digests.get(SHA256)!).digest(), Buffer.alloc(32));
    const p0 = ext([events[1]!, events[2]!]);
    const p7 = ext([events[0]!]);
    const d2 = createHash('sha256')
      .update(Buffer.concat([p0, p7]))
      .digest();
    const a2 = attest(k, { sel, digest: d2 });
    const eventLog = encodeEventLog(new Map([[SHA256, 32]]), events);
    const r = checkQuoteOffline({ ...input, attest: a2, signature: tpmSign(k, a2), pcrValues: Buffer.concat([p0, p7]), eventLog });
    expect(r.checks.at(-1)).toBe('event log replays to the quoted values of PCRs 0,7; 3 events trusted, events in unquoted PCRs ignored');
    const none = encodeEventLog(new Map([[SHA256, 32]]), [e(9, 'unquoted')]);
    expect(checkQuoteOffline({ ...input, eventLog: none }).checks.at(-1)).toBe(
      'event log replays to the quoted values of PCRs (none with events); 0 events trusted, events in unquoted PCRs ignored',
    );
    expect(() => checkQuoteOffline({ ...input, eventLog })).toThrow('attestation(tpm): event log replay does not match quoted PCR sha256:0');
  });

  it('with --ek-cert, --ek-pub and --roots: checks the EK certificate chain and reports the TPM identity', () => {
    const ek = softKey(EK_TEMPLATES[0]!.template);
    const spki = publicKeyOf(ek.pub).export({ type: 'spki', format: 'der' });
    const cert = makeCert({ subjectCn: 'ek', issuer: mid, key: { privateKey: ek.key, spki } });
    const at = new Date();
    const r = checkQuoteOffline({ ...input, ek: { certificate: cert.der, public: ek.pub.bytes, roots: [root.der], intermediates: [mid.der], at } });
    expect(r.checks.slice(-2)).toEqual([
      'EK public area matches a TCG default EK template and the EK certificate',
      `EK certificate chains to a given root (by key): manufacturer ?, model ?, version ?, ek_hash ${createHash('sha256').update(spki).digest('hex')}`,
    ]);
    expect(r.notChecked).toHaveLength(1);
    expect(() => checkQuoteOffline({ ...input, ek: { certificate: cert.der, public: ek.pub.bytes, roots: [root.der], intermediates: [], at } })).toThrow(
      /does not chain to a trusted manufacturer root/,
    );
    expect(() =>
      checkQuoteOffline({
        ...input,
        ek: { certificate: cert.der, public: ek.pub.bytes, roots: [root.der], intermediates: [mid.der], at: new Date(at.getTime() + 7200_000) },
      }),
    ).toThrow(/current time is after notAfter/);
  });
});
