/**
 * The `tdx` plug-in's pieces: its settings section, the issuer verifier over a handshake nonce,
 * the relying party's re-verifier, and `writ enclave check --type tdx` over the real quotes.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Section } from '../../src/config/section.js';
import { readCollateralFiles } from '../../src/attestation/tdx/collateral.js';
import { TdxError } from '../../src/attestation/tdx/errors.js';
import { parseTdxSettings, tdxPlugin, tdxReverifier, tdxVerifier } from '../../src/attestation/tdx/plugin.js';
import { DEFAULT_TDX_ROOTS } from '../../src/attestation/tdx/roots.js';
import { reportDataFor } from '../../src/attestation/tdx/verify.js';
import { encodePem } from '../../src/der/pem.js';
import { parsePublicKey } from '../../src/svid/public-key.js';
import { runCli } from '../helpers/cli.js';
import { HAVE_SHARED, SHARED } from '../helpers/shared.js';
import { makeTestPki, makeTestQuote } from '../helpers/tdx-quote.js';

const dir = mkdtempSync(join(tmpdir(), 'writ-tdx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const pki = makeTestPki();
const rootFile = join(dir, 'root.pem');
writeFileSync(rootFile, encodePem('CERTIFICATE', pki.ca) + encodePem('CERTIFICATE', pki.root));

const settingsOf = (raw: Record<string, unknown>) => {
  const problems: string[] = [];
  const s = parseTdxSettings(Section.of('attestation.tdx', raw, problems));
  return { s, problems };
};

describe('attestation.tdx settings', () => {
  it('defaults to the shipped Intel root, debug refused, unevaluated TCB refused', () => {
    const { s, problems } = settingsOf({});
    expect(problems).toEqual([]);
    expect(s.roots).toBe(DEFAULT_TDX_ROOTS);
    expect(s.policy).toEqual({ allowDebug: false, allowUnevaluatedTcb: false, acceptedTcbStatuses: ['UpToDate'] });
    expect(tdxPlugin.describe!(s)).toMatch(
      /^roots 44a0196b2b99f889 from the shipped Intel SGX Root CA; debug TDs refused; 0 collateral document\(s\); TCB not evaluated refused$/,
    );
  });

  it('takes only the self-signed certificates of a roots file as anchors, and reports every problem', () => {
    expect(settingsOf({ roots: [rootFile] }).s.roots).toEqual([pki.root]);
    const caOnly = join(dir, 'ca.pem');
    writeFileSync(caOnly, encodePem('CERTIFICATE', pki.ca));
    const { problems } = settingsOf({ roots: [caOnly, join(dir, 'missing.pem')], allow_debug: 'yes', colour: 1 });
    expect(problems.join('\n')).toMatch(/unknown key attestation.tdx.colour/);
    expect(problems.join('\n')).toMatch(/ca.pem holds no self-signed root certificate/);
    expect(problems.join('\n')).toMatch(/missing.pem: no such file/);
    expect(problems.join('\n')).toMatch(/attestation.tdx.allow_debug must be true or false/);
  });

  it.skipIf(!HAVE_SHARED)('reads collateral files and directories, and refuses unknown TCB statuses', () => {
    const file = join(SHARED, 'vectors', 'enclave', 'tdx', 'dcapqvl_tdx_quote_collateral.json');
    const { s, problems } = settingsOf({ collateral: [file], accepted_tcb_statuses: ['UpToDate', 'SWHardeningNeeded'] });
    expect(problems).toEqual([]);
    expect(s.collateral.map((c) => c.fmspc)).toEqual(['b0c06f000000']);
    expect(settingsOf({ collateral: [file, file] }).problems).toEqual(['attestation.tdx.collateral: two documents for FMSPC b0c06f000000']);
    const bad = settingsOf({ collateral: [join(dir, 'root.pem'), join(dir, 'nope.json')], accepted_tcb_statuses: ['Great'] }).problems.join('\n');
    expect(bad).toMatch(/attestation.tdx.collateral: .*root.pem: attestation\(tdx\): collateral: the collateral is not strict JSON/);
    expect(bad).toMatch(/nope.json: no such file/);
    expect(bad).toMatch(/accepted_tcb_statuses: Great is not a TCB status/);
  });
});

describe('the tdx verifier and re-verifier', () => {
  const B = Buffer.alloc(32, 7);
  const agentKey = parsePublicKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' }));
  const now = new Date('2030-01-01T00:00:00Z');
  const settings = {
    roots: [pki.root],
    rootSource: 'test',
    policy: { allowDebug: false, allowUnevaluatedTcb: true, acceptedTcbStatuses: ['UpToDate'] },
    collateral: [],
  };
  const attest = async (evidence: Buffer, s = settings) => {
    const session = await tdxVerifier(s).begin({ nonce: B, agentKey, now });
    return session.respond(evidence);
  };

  it('accepts a quote over B ‖ 32 zero bytes, embedding it without its padding', async () => {
    const q = makeTestQuote(pki, { reportData: reportDataFor(B), padding: 500 });
    const step = await attest(q);
    if (step.kind !== 'attested') throw new Error('expected attested');
    expect(step.result.publicEvidence).toEqual(q.subarray(0, q.length - 500));
    expect(step.result.platform).toBe(`tdx:ppid:${pki.ppid.toString('hex')}`);
    const rv = tdxReverifier({ roots: [pki.root], allowDebug: false }).reverify(step.result.publicEvidence!, { binding: B, agentJkt: 'x', at: now });
    expect(rv.selectors).toEqual(step.result.selectors);
    expect(rv.takenFromIssuer.join('\n')).toMatch(/TCB status/);
  });

  it('refuses a quote over another handshake nonce, at the issuer and at deep verification', async () => {
    const q = makeTestQuote(pki, { reportData: reportDataFor(Buffer.alloc(32, 8)) });
    await expect(attest(q)).rejects.toThrow(TdxError);
    await expect(attest(q)).rejects.toThrow(/report data is not the expected value/);
    expect(() => tdxReverifier({ roots: [pki.root], allowDebug: false }).reverify(q, { binding: B, agentJkt: 'x', at: now })).toThrow(/report data/);
  });

  it('refuses when the TCB is not evaluated, unless the operator accepts that', async () => {
    const q = makeTestQuote(pki, { reportData: reportDataFor(B) });
    await expect(attest(q, { ...settings, policy: { ...settings.policy, allowUnevaluatedTcb: false } })).rejects.toThrow(/TCB not evaluated/);
  });

  it('the re-verifier refuses a debug TD unless its trust allows debug, and uses its own roots', () => {
    const q = makeTestQuote(pki, { reportData: reportDataFor(B), tdAttributes: 1n });
    expect(() => tdxReverifier({ roots: [pki.root], allowDebug: false }).reverify(q, { binding: B, agentJkt: 'x', at: now })).toThrow(/debug TD/);
    expect(tdxReverifier({ roots: [pki.root], allowDebug: true }).reverify(q, { binding: B, agentJkt: 'x', at: now }).checked).toContain(
      'tdx: the TD is a debug TD (accepted: debug allowed)',
    );
    expect(() => tdxReverifier({ roots: DEFAULT_TDX_ROOTS, allowDebug: true }).reverify(q, { binding: B, agentJkt: 'x', at: now })).toThrow(/PCK chain/);
  });
});

describe.skipIf(!HAVE_SHARED)('the re-verifier over a real quote whose report data is 32 bytes then 32 zeros', () => {
  const f = (n: string) => join(SHARED, 'vectors', 'enclave', 'tdx', n);
  const quote = readFileSync(f('dcapqvl_tdx_quote_outdated'));
  const binding = quote.subarray(54 + 520, 54 + 552);
  const at = new Date('2026-03-20T10:41:14Z');

  it('re-verifies it to the shipped Intel root, the TCB taken from the issuer; with its collateral it is refused (no TCB level)', () => {
    const rv = tdxReverifier({ roots: DEFAULT_TDX_ROOTS, allowDebug: false }).reverify(quote, { binding, agentJkt: 'x', at });
    expect(rv.selectors).toContainEqual({ type: 'tdx', value: 'fmspc:90c06f000000' });
    expect(rv.takenFromIssuer).toEqual([
      "tdx: the platform's TCB status (Intel collateral) as the issuer's policy judged it; not evaluated here",
      'tdx: the QE identity and the TDX module identity (Intel collateral); not evaluated here',
    ]);
    // Without collateral the writ's tdx:tcb_status is the issuer's (deep verification of a writ minted with collateral passes).
    expect(rv.issuerSelectorTypes).toEqual(['tdx:tcb_status']);
    const other = Buffer.from(binding);
    other[0]! ^= 1;
    expect(() => tdxReverifier({ roots: DEFAULT_TDX_ROOTS, allowDebug: false }).reverify(quote, { binding: other, agentJkt: 'x', at })).toThrow(/report data/);
    const collateral = readCollateralFiles([f('dcapqvl_tdx_quote_outdated_collateral.json')], 'test');
    expect(() => tdxReverifier({ roots: DEFAULT_TDX_ROOTS, allowDebug: false, collateral }).reverify(quote, { binding, agentJkt: 'x', at })).toThrow(
      /no TCB level of the TCB info matches/,
    );
  });
});

describe.skipIf(!HAVE_SHARED)('writ enclave check --type tdx', () => {
  const v = (f: string) => join(SHARED, 'vectors', 'enclave', 'tdx', f);
  const check = (...args: string[]) => runCli(['enclave', 'check', '--type', 'tdx', ...args]);

  it('passes a real v5 quote at its instant, printing every check and the TCB as unchecked', async () => {
    const r = await check('--evidence', v('gotdx_quote_v5_sample.dat'), '--at', '2026-02-03T01:00:00Z');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ok {8}quote v5 parsed strictly \(5006 bytes\)/);
    expect(r.out).toContain('ok        quote signature by the attestation key over header and TD report body\n');
    expect(r.out).toContain('ok        PCK certificate chain (Intel SGX PCK Platform CA) to the pinned Intel SGX root 44a0196b2b99f889…');
    expect(r.out).toContain('unchecked report data: no --report-data given\n');
    expect(r.out).toContain('unchecked TCB status from Intel collateral (TCB info, QE identity, CRLs): TCB not evaluated');
  });

  it('fails with --require-tcb, and at an instant after the PCK certificate expired', async () => {
    expect((await check('--evidence', v('gotdx_quote_v5_sample.dat'), '--at', '2026-02-03T01:00:00Z', '--require-tcb')).code).toBe(1);
    const late = await check('--evidence', v('gotdx_quote_v5_sample.dat'), '--at', '2040-01-01T00:00:00Z', '--json');
    expect(late.code).toBe(1);
    const j = JSON.parse(late.out) as { valid: boolean; checks: { status: string; check: string; detail?: string }[] };
    expect(j.valid).toBe(false);
    expect(j.checks.at(-1)).toEqual({
      status: 'failed',
      check: 'PCK certificate chain to the Intel SGX root',
      detail: expect.stringMatching(/after notAfter/),
    });
  });

  it('reads hex quotes, checks --report-data, and takes --roots as the anchor', async () => {
    const nonce = '7148f47ef58b475fce69b386e2d6b4c964a9533c';
    const ok = await check('--evidence', v('dcapqvl_tdx-quote.hex'), '--at', '2025-01-01T00:00:00Z', '--json');
    expect(ok.code).toBe(0);
    const rd = (JSON.parse(ok.out) as { reportData: string }).reportData;
    expect(rd.startsWith(nonce)).toBe(true);
    expect((await check('--evidence', v('dcapqvl_tdx-quote.hex'), '--at', '2025-01-01T00:00:00Z', '--report-data', rd)).code).toBe(0);
    const wrong = await check('--evidence', v('dcapqvl_tdx-quote.hex'), '--at', '2025-01-01T00:00:00Z', '--report-data', `${rd.slice(0, -2)}00`);
    expect(wrong.code).toBe(1);
    expect(wrong.out).toContain('FAILED    report data equals --report-data');
    const other = await check('--evidence', v('dcapqvl_tdx-quote.hex'), '--at', '2025-01-01T00:00:00Z', '--roots', rootFile);
    expect(other.code).toBe(1);
    expect(other.out).toContain('FAILED    PCK certificate chain to the Intel SGX root');
  });

  it('reads a base64 quote (wrapped at 76 columns) as the same quote', async () => {
    const b64 = join(dir, 'quote.b64');
    writeFileSync(
      b64,
      `${readFileSync(v('gotdx_quote_v5_sample.dat'))
        .toString('base64')
        .match(/.{1,76}/g)!
        .join('\n')}\n`,
    );
    const r = await check('--evidence', b64, '--at', '2026-02-03T01:00:00Z');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ok {8}quote v5 parsed strictly \(5006 bytes\)/);
  });

  it('refuses a debug TD unless --allow-debug, and options it has no use for', async () => {
    const quote = join(dir, 'debug.quote');
    writeFileSync(quote, makeTestQuote(pki, { reportData: Buffer.alloc(64), tdAttributes: 1n }));
    const base = ['--evidence', quote, '--roots', rootFile, '--at', '2030-01-01T00:00:00Z'];
    const refused = await check(...base);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('FAILED    platform policy: the TD is a debug TD');
    expect((await check(...base, '--allow-debug')).code).toBe(0);
    expect((await check(...base, '--certs', rootFile)).code).toBe(2);
    expect((await check(...base, '--at', 'yesterday')).code).toBe(2);
  });
});
