/**
 * TDX quotes: every real quote of ../shared/vectors classified as its index says at its pinned
 * instant, mutated twins of them (every byte flipped, truncations, trailing bytes), and synthetic
 * quotes from a test PKI for what no real vector shows (debug TDs, wrong-product CAs, fake roots).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TdxError, type TdxFailure } from '../../src/attestation/tdx/errors.js';
import { newPckChainCache } from '../../src/attestation/tdx/pck.js';
import { parseTdxQuote } from '../../src/attestation/tdx/quote.js';
import { DEFAULT_TDX_ROOTS, INTEL_SGX_ROOT_CA_SHA256, sha256Hex } from '../../src/attestation/tdx/roots.js';
import { reportDataFor, verifyTdxQuote, type TdxPolicy, type VerifyTdxOptions } from '../../src/attestation/tdx/verify.js';
import { decodePem } from '../../src/der/pem.js';
import { HAVE_SHARED, SHARED } from '../helpers/shared.js';
import { intelName, makeTestPki, makeTestQuote, p256, testCert, withChain } from '../helpers/tdx-quote.js';

const ENCLAVE = join(SHARED, 'vectors', 'enclave');
const tdxFile = (name: string) => readFileSync(join(ENCLAVE, 'tdx', name));
const hexFile = (name: string) => Buffer.from(tdxFile(name).toString('latin1').trim().replace(/^0x/, ''), 'hex');

const LENIENT: TdxPolicy = { allowDebug: false, allowUnevaluatedTcb: true, acceptedTcbStatuses: ['UpToDate'] };
const STRICT: TdxPolicy = { allowDebug: false, allowUnevaluatedTcb: false, acceptedTcbStatuses: ['UpToDate'] };

const opts = (at: string, extra: Partial<VerifyTdxOptions> = {}): VerifyTdxOptions => ({
  anchors: DEFAULT_TDX_ROOTS,
  at: new Date(at),
  policy: LENIENT,
  ...extra,
});

/** The refusal reason, or 'accepted'; anything but a TdxError is a crash and fails the test. */
function verdict(raw: Uint8Array, o: VerifyTdxOptions): TdxFailure | 'accepted' {
  try {
    verifyTdxQuote(raw, o);
    return 'accepted';
  } catch (e) {
    if (e instanceof TdxError) return e.reason;
    throw e;
  }
}

/** The real quotes, each with the instant the index pins and the quote's own length. */
const REAL = [
  { name: 'gotdx_quote_v5_sample.dat', at: '2026-02-03T01:00:00Z', version: 5, bodyType: 3, length: 5006 },
  { name: 'dcapqvl_tdx_quote', at: '2025-07-19T10:00:34Z', version: 4, bodyType: 2, length: 4936 },
  { name: 'dcapqvl_tdx_quote_outdated', at: '2026-03-20T10:41:14Z', version: 5, bodyType: 3, length: 5006 },
  { name: 'gotdx_ccel_cos-113-tdx-quote.dat', at: '2026-01-01T00:00:00Z', version: 4, bodyType: 2, length: 4935 },
] as const;

describe.skipIf(!HAVE_SHARED)('real TDX quotes (../shared/vectors/enclave/tdx)', () => {
  it('pins the Intel SGX Root CA the index names, by fingerprint', () => {
    const vectorRoot = decodePem(readFileSync(join(ENCLAVE, 'roots', 'intel_sgx_root_ca.pem'), 'latin1'))[0]!.der;
    expect(sha256Hex(vectorRoot)).toBe(INTEL_SGX_ROOT_CA_SHA256);
    expect(DEFAULT_TDX_ROOTS[0]!.equals(vectorRoot)).toBe(true);
    expect(readFileSync(join(SHARED, 'vectors', 'tdx', 'intel-sgx-root-ca.pem')).equals(readFileSync(join(ENCLAVE, 'roots', 'intel_sgx_root_ca.pem')))).toBe(
      true,
    );
  });

  it.each(REAL)('$name verifies at its pinned instant (v$version, body type $bodyType)', ({ name, at, version, bodyType, length }) => {
    const raw = tdxFile(name);
    const v = verifyTdxQuote(raw, opts(at));
    expect(v.quote.version).toBe(version);
    expect(v.quote.bodyType).toBe(bodyType);
    expect(v.quote.length).toBe(length);
    expect(v.pck.caName).toBe('Intel SGX PCK Platform CA');
    expect(v.pck.anchorSha256).toBe(INTEL_SGX_ROOT_CA_SHA256);
    expect(v.debug).toBe(false);
    expect(v.tcb.evaluated).toBe(false);
    expect(v.selectors.map((s) => s.value)).toContain(`mrtd:${v.quote.body.mrTd.toString('hex')}`);
    expect(v.checks.some((c) => c.startsWith('TCB not evaluated'))).toBe(true);
  });

  it('the FMSPCs are those the index gives', () => {
    expect(verifyTdxQuote(tdxFile('dcapqvl_tdx_quote'), opts('2025-07-19T10:00:34Z')).pck.fmspc.toString('hex')).toBe('b0c06f000000');
    expect(verifyTdxQuote(tdxFile('gotdx_quote_v5_sample.dat'), opts('2026-02-03T01:00:00Z')).pck.fmspc.toString('hex')).toBe('90c06f000000');
  });

  it('the zero-padded v4 quotes in hex verify (PCK valid 2024-08-02 .. 2031-08-02)', () => {
    for (const f of ['dcapqvl_quote-from-tappd.hex', 'dcapqvl_tdx-quote.hex']) {
      const raw = hexFile(f);
      expect(raw.length - parseTdxQuote(raw).length).toBe(70);
      expect(verdict(raw, opts('2025-01-01T00:00:00Z'))).toBe('accepted');
    }
  });

  it('the GCE quote padded to 8000 bytes carries the CCEL nonce as report data', () => {
    const nonce = tdxFile('gotdx_ccel_nonce.dat');
    expect(verdict(tdxFile('gotdx_ccel_cos-113-tdx-quote.dat'), opts('2026-01-01T00:00:00Z', { reportData: nonce }))).toBe('accepted');
    const other = Buffer.from(nonce);
    other[63]! ^= 1;
    expect(verdict(tdxFile('gotdx_ccel_cos-113-tdx-quote.dat'), opts('2026-01-01T00:00:00Z', { reportData: other }))).toBe('binding');
  });

  it('refuses the SPR E4 quote as shipped (39 non-zero trailing bytes); the quote alone verifies at 2023-07-01 and not at 2053-07-01', () => {
    for (const dir of ['enclave/tdx/gotdx_tdx_prod_quote_SPR_E4.dat', 'tdx/tdx_prod_quote_SPR_E4.dat']) {
      const raw = readFileSync(join(SHARED, 'vectors', dir));
      expect(() => verifyTdxQuote(raw, opts('2023-07-01T01:00:00Z'))).toThrow(/byte 4935 after the 4935-byte quote is not zero padding/);
      const quote = raw.subarray(0, 4935);
      const v = verifyTdxQuote(quote, opts('2023-07-01T01:00:00Z'));
      expect(v.quote.body.tdAttributes.readBigUInt64LE(0)).toBe(0x40000000n);
      expect(v.pck.fmspc.toString('hex')).toBe('50806f000000');
      expect(() => verifyTdxQuote(quote, opts('2053-07-01T00:00:00Z'))).toThrow(/current time is after notAfter/);
    }
  });

  it('the v5 sample under ../shared/vectors/tdx is the same quote and verifies', () => {
    expect(verdict(readFileSync(join(SHARED, 'vectors', 'tdx', 'quote_v5_sample.dat')), opts('2026-02-03T01:00:00Z'))).toBe('accepted');
  });

  it('refuses every real quote when the TCB is not evaluated and the policy requires it', () => {
    for (const r of REAL) expect(() => verifyTdxQuote(tdxFile(r.name), opts(r.at, { policy: STRICT }))).toThrow(/TCB not evaluated/);
  });

  it('refuses the quotes years after their PCK certificates expire', () => {
    for (const r of REAL) expect(verdict(tdxFile(r.name), opts('2060-01-01T00:00:00Z'))).toBe('chain');
  });

  it('refuses an SGX v3 quote as not a TDX quote', () => {
    expect(() => verifyTdxQuote(readFileSync(join(ENCLAVE, 'sgx', 'dcapqvl_sgx_quote')), opts('2025-07-19T10:01:17Z'))).toThrow(/version 3 is not 4 or 5/);
  });

  it('gotdx TestNegativeVerification edits are refused for their reasons', () => {
    const quote = tdxFile('gotdx_tdx_prod_quote_SPR_E4.dat').subarray(0, 4935);
    const edit = (off: number, value?: number) => {
      const b = Buffer.from(quote);
      b[off] = value ?? b[off]! ^ 0x01;
      return verdict(b, opts('2023-07-01T01:00:00Z'));
    };
    expect(edit(0x00, 3)).toBe('format');
    expect(edit(0x278, 0x10)).toBe('format');
    expect(edit(0x1e)).toBe('signature');
    expect(edit(0x3c)).toBe('signature');
    for (const off of [0x1343, 0x1329, 0xf5f, 0xb77]) expect(edit(off)).toBe('chain');
  });

  // Every byte before the PCK chain (header, body, signature, attestation key, certification data
  // headers, QE report and its signature, QE auth data), every 5th byte of the chain's PEM text
  // (each certificate, every field), and the zero padding: flipped, each refused, never a crash.
  it.each([
    { name: 'gotdx_quote_v5_sample.dat', at: '2026-02-03T01:00:00Z' },
    { name: 'dcapqvl_tdx_quote', at: '2025-07-19T10:00:34Z' },
    { name: 'dcapqvl_tdx_quote_outdated', at: '2026-03-20T10:41:14Z' },
    { name: 'gotdx_ccel_cos-113-tdx-quote.dat', at: '2026-01-01T00:00:00Z' },
  ] as const)('refuses $name with any byte flipped, never crashing', ({ name, at }) => {
    const raw = tdxFile(name);
    const q = parseTdxQuote(raw);
    const pemStart = q.length - q.pckChainPem.length;
    const o = opts(at);
    const accepted: number[] = [];
    const reasons = new Map<string, Set<string>>();
    for (let i = 0; i < raw.length; i += i >= pemStart && i < q.length ? 5 : 1) {
      const b = Buffer.from(raw);
      b[i]! ^= i % 2 ? 0x01 : 0x80;
      const r = verdict(b, o);
      if (r === 'accepted') accepted.push(i);
      const region = i < q.signed.length ? 'signed' : i < pemStart ? 'signature data' : i < q.length ? 'chain' : 'padding';
      reasons.set(region, (reasons.get(region) ?? new Set()).add(r));
    }
    expect(accepted).toEqual([]);
    expect([...reasons.get('signed')!].sort()).toEqual(['format', 'signature']);
    expect([...reasons.get('chain')!].sort()).toEqual(['chain']);
    expect([...reasons.get('signature data')!].sort()).toEqual(['format', 'qe', 'signature']);
    if (raw.length > q.length) expect(reasons.get('padding')).toEqual(new Set(['format']));
  });

  it('refuses every truncation and any non-zero trailing byte; accepts extra zero padding', () => {
    const raw = tdxFile('gotdx_quote_v5_sample.dat');
    const o = opts('2026-02-03T01:00:00Z');
    for (let n = 0; n < raw.length; n += 11) expect(verdict(raw.subarray(0, n), o), `truncated to ${n}`).toBe('format');
    expect(verdict(raw.subarray(0, raw.length - 1), o)).toBe('format');
    expect(verdict(Buffer.concat([raw, Buffer.alloc(3000)]), o)).toBe('accepted');
    for (const tail of [[1], [0, 0, 0x20], [0xff]]) expect(verdict(Buffer.concat([raw, Buffer.from(tail)]), o)).toBe('format');
    expect(verdict(Buffer.concat([raw, Buffer.alloc(40 * 1024)]), o)).toBe('format');
  });

  it('refuses the real chain when its root is replaced by a self-signed root with the real name', () => {
    const raw = tdxFile('gotdx_quote_v5_sample.dat');
    const realRoot = DEFAULT_TDX_ROOTS[0]!;
    const fake = testCert({
      subject: intelName('Intel SGX Root CA'),
      key: p256(),
      ca: true,
      pathLen: 1,
      notBefore: new Date('2018-01-01'),
      notAfter: new Date('2049-01-01'),
    });
    const v = parseTdxQuote(raw);
    const [pck, ca] = decodePem(v.pckChainPem.subarray(0, -1).toString('latin1')).map((b) => b.der);
    expect(withChain(raw, [pck!, ca!, realRoot]).equals(raw)).toBe(true); // the helper rebuilds the quote exactly
    const swapped = withChain(raw, [pck!, ca!, fake]);
    expect(swapped.equals(raw)).toBe(false);
    expect(() => verifyTdxQuote(swapped, opts('2026-02-03T01:00:00Z'))).toThrow(/root certificate inside the quote is not the pinned root/);
    // And with the fake as the only anchor, the real PCK CA does not chain to it.
    expect(verdict(swapped, opts('2026-02-03T01:00:00Z', { anchors: [fake] }))).toBe('chain');
  });
});

describe('synthetic TDX quotes from a test PKI', () => {
  const pki = makeTestPki();
  const B = Buffer.alloc(32, 0xab);
  const rd = reportDataFor(B);
  const at = '2030-01-01T00:00:00Z';
  const mine = (extra: Partial<VerifyTdxOptions> = {}) => opts(at, { anchors: [pki.root], reportData: rd, ...extra });

  it.each([
    [4, 2],
    [5, 2],
    [5, 3],
  ] as const)('accepts v%i with body type %i carrying B ‖ 32 zero bytes', (version, bodyType) => {
    const q = makeTestQuote(pki, { version, bodyType, reportData: rd, padding: 100 });
    const v = verifyTdxQuote(q, mine());
    expect(v.quote.bodyType).toBe(bodyType);
    expect(v.platform).toBe(`tdx:ppid:${pki.ppid.toString('hex')}`);
    expect(v.selectors.map((s) => `${s.type}:${s.value}`)).toEqual(
      expect.arrayContaining([
        `tdx:mrtd:${'33'.repeat(48)}`,
        `tdx:rtmr:0:${'40'.repeat(48)}`,
        `tdx:rtmr:3:${'43'.repeat(48)}`,
        `tdx:mrsignerseam:${'22'.repeat(48)}`,
      ]),
    );
    expect(v.selectors.some((s) => s.value.startsWith('tcb_status:'))).toBe(false);
  });

  it('refuses a debug TD unless debug is allowed', () => {
    const q = makeTestQuote(pki, { reportData: rd, tdAttributes: 0x10000001n });
    expect(() => verifyTdxQuote(q, mine())).toThrow(/debug TD/);
    expect(verdict(q, mine())).toBe('policy');
    expect(verifyTdxQuote(q, mine({ policy: { ...LENIENT, allowDebug: true } })).debug).toBe(true);
  });

  it('refuses report data other than B ‖ 32 zero bytes', () => {
    const other = Buffer.concat([B, Buffer.alloc(31), Buffer.from([1])]);
    expect(verdict(makeTestQuote(pki, { reportData: other }), mine())).toBe('binding');
    expect(() => reportDataFor(Buffer.alloc(31))).toThrow(TdxError);
  });

  it('refuses the same quote at the default Intel root (a test root is not Intel)', () => {
    expect(verdict(makeTestQuote(pki, { reportData: rd }), opts(at))).toBe('chain');
  });

  it('refuses a whole fake PKI whose root copies the real name, even when the quote embeds it', () => {
    const fake = makeTestPki();
    const q = makeTestQuote(fake, { reportData: rd });
    expect(verdict(q, mine())).toBe('chain');
    // The same quote only verifies when its own embedded root is taken as anchor, which writ never does.
    expect(verdict(q, mine({ anchors: [fake.root] }))).toBe('accepted');
  });

  it('refuses an intermediate of another Intel product (a TCB signing CA, a Processor CA of another root)', () => {
    const rootName = intelName('Intel SGX Root CA');
    const tcbKey = p256();
    const tcbCa = testCert({
      subject: intelName('Intel SGX TCB Signing'),
      issuer: { subject: rootName, key: pki.rootKey.privateKey },
      key: tcbKey,
      ca: true,
      pathLen: 0,
      notBefore: new Date('2020-01-01'),
      notAfter: new Date('2040-01-01'),
    });
    const pck = testCert({
      subject: intelName('Intel SGX PCK Certificate'),
      issuer: { subject: intelName('Intel SGX TCB Signing'), key: tcbKey.privateKey },
      key: pki.pckKey,
      notBefore: new Date('2020-01-01'),
      notAfter: new Date('2040-01-01'),
    });
    expect(() => verifyTdxQuote(makeTestQuote(pki, { reportData: rd, chain: [pck, tcbCa, pki.root] }), mine())).toThrow(/not a PCK Platform or Processor CA/);
  });

  it('refuses a PCK certificate without the SGX extensions, and a leaf that is not a PCK certificate', () => {
    const caName = intelName('Intel SGX PCK Platform CA');
    const bare = testCert({
      subject: intelName('Intel SGX PCK Certificate'),
      issuer: { subject: caName, key: pki.caKey.privateKey },
      key: pki.pckKey,
      notBefore: new Date('2020-01-01'),
      notAfter: new Date('2040-01-01'),
    });
    expect(() => verifyTdxQuote(makeTestQuote(pki, { reportData: rd, chain: [bare, pki.ca, pki.root] }), mine())).toThrow(/no SGX extensions/);
    expect(() => verifyTdxQuote(makeTestQuote(pki, { reportData: rd, chain: [pki.ca, pki.root] }), mine())).toThrow(/not an Intel SGX PCK Certificate/);
  });

  it('refuses a QE report whose report data does not bind the attestation key', () => {
    const q = makeTestQuote(pki, { reportData: rd });
    const parsed = parseTdxQuote(q);
    // Rebuild with the QE report made for another attestation key: a valid PCK signature, a wrong binding.
    const other = makeTestQuote(pki, { reportData: rd });
    const spliced = Buffer.from(q);
    const at0 = parsed.signed.length + 4 + 128 + 6;
    parseTdxQuote(other).qeReport.raw.copy(spliced, at0);
    parseTdxQuote(other).qeReportSignature.copy(spliced, at0 + 384);
    expect(verdict(spliced, mine())).toBe('qe');
  });

  it('refuses a chain of one or four certificates, a non-canonical PEM, and a chain expired at the instant', () => {
    expect(verdict(makeTestQuote(pki, { reportData: rd, chain: [pki.pck] }), mine())).toBe('chain');
    expect(verdict(makeTestQuote(pki, { reportData: rd, chain: [pki.pck, pki.ca, pki.root, pki.root] }), mine())).toBe('chain');
    expect(verdict(makeTestQuote(pki, { reportData: rd }), mine({ at: new Date('2041-01-01T00:00:00Z') }))).toBe('chain');
    const q = makeTestQuote(pki, { reportData: rd });
    const crlf = Buffer.from(q.toString('latin1').replace('-----BEGIN CERTIFICATE-----\n', '-----BEGIN CERTIFICATE-----\r'), 'latin1');
    expect(verdict(crlf, mine())).toBe('chain');
  });

  it('reuses a verified PCK chain only inside the validity of every certificate of its path', () => {
    const cache = newPckChainCache();
    const q = makeTestQuote(pki, { reportData: rd });
    const first = verifyTdxQuote(q, mine({ pckCache: cache }));
    expect(verifyTdxQuote(makeTestQuote(pki, { reportData: rd }), mine({ pckCache: cache })).pck).toBe(first.pck);
    expect(verdict(q, mine({ pckCache: cache, at: new Date('2041-01-01T00:00:00Z') }))).toBe('chain');
    expect(verdict(q, mine({ pckCache: cache, at: new Date('2019-01-01T00:00:00Z') }))).toBe('chain');
    // Another chain (another PKI whose root is not the anchor) is not a hit.
    expect(verdict(makeTestQuote(makeTestPki(), { reportData: rd }), mine({ pckCache: cache }))).toBe('chain');
  });

  it('accepts the chain without the root (the anchor comes from configuration anyway)', () => {
    expect(verdict(makeTestQuote(pki, { reportData: rd, chain: [pki.pck, pki.ca] }), mine())).toBe('accepted');
  });
});
