/**
 * TDX TCB evaluation from Intel collateral: the three quote/collateral pairs of the index at
 * their instants (UpToDate; no matching TCB level for the outdated v5 quote and for the SPR E4
 * quote), and mutated twins of the collateral (signed JSON texts, signatures, CRLs, issuer
 * chains, dates, FMSPC), each refused with a typed error, never a crash.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collateralEvaluator, convergeStatus, parseCrl, parseTdxCollateral, TCB_STATUSES, type TdxCollateral } from '../../src/attestation/tdx/collateral.js';
import { TdxError, type TdxFailure } from '../../src/attestation/tdx/errors.js';
import { DEFAULT_TDX_ROOTS } from '../../src/attestation/tdx/roots.js';
import { verifyTdxQuote, type TdxPolicy } from '../../src/attestation/tdx/verify.js';
import { runCli } from '../helpers/cli.js';
import { HAVE_SHARED, SHARED } from '../helpers/shared.js';
import { makeTestCollateral, makeTestPki, makeTestQuote } from '../helpers/tdx-quote.js';

const TDX = join(SHARED, 'vectors', 'enclave', 'tdx');
const read = (f: string) => readFileSync(join(TDX, f));
const ANY: TdxPolicy = { allowDebug: false, allowUnevaluatedTcb: false, acceptedTcbStatuses: TCB_STATUSES };

function run(quote: Buffer, docs: readonly TdxCollateral[], at: string, policy: TdxPolicy = ANY) {
  return verifyTdxQuote(quote, { anchors: DEFAULT_TDX_ROOTS, at: new Date(at), policy, tcb: collateralEvaluator(docs, DEFAULT_TDX_ROOTS) });
}
function reason(quote: Buffer, docs: readonly TdxCollateral[], at: string): TdxFailure | string {
  try {
    const v = run(quote, docs, at);
    return v.tcb.evaluated ? v.tcb.status : 'not evaluated';
  } catch (e) {
    if (e instanceof TdxError) return e.reason;
    throw e;
  }
}

describe.skipIf(!HAVE_SHARED)('TDX collateral (../shared/vectors/enclave/tdx)', () => {
  const UPTODATE = {
    quote: read('dcapqvl_tdx_quote'),
    doc: parseTdxCollateral(read('dcapqvl_tdx_quote_collateral.json').toString('utf8')),
    at: '2025-07-19T10:00:34Z',
  };

  it('evaluates dcap-qvl sample quote as UpToDate with no advisories at its instant, with the tcb_status selector', () => {
    const v = run(UPTODATE.quote, [UPTODATE.doc], UPTODATE.at, { ...ANY, acceptedTcbStatuses: ['UpToDate'] });
    expect(v.tcb).toEqual({ evaluated: true, status: 'UpToDate', advisories: [] });
    expect(v.selectors).toContainEqual({ type: 'tdx', value: 'tcb_status:UpToDate' });
    expect(v.checks).toContain('TCB status UpToDate from Intel collateral');
  });

  it('finds no matching TCB level for the outdated v5 quote, nor for the SPR E4 quote (the index says so)', () => {
    const outdated = parseTdxCollateral(read('dcapqvl_tdx_quote_outdated_collateral.json').toString('utf8'));
    expect(() => run(read('dcapqvl_tdx_quote_outdated'), [outdated], '2026-03-20T10:41:14Z')).toThrow(/no TCB level of the TCB info matches/);
    const gotdx = parseTdxCollateral(read('gotdx_collateral_v4.derived.json').toString('utf8'));
    expect(() => run(read('gotdx_tdx_prod_quote_SPR_E4.dat').subarray(0, 4935), [gotdx], '2023-07-01T01:00:00Z')).toThrow(
      /no TCB level of the TCB info matches/,
    );
  });

  it('leaves the TCB unevaluated when no document is for the FMSPC, and refuses collateral past its next update', () => {
    const other = parseTdxCollateral(read('dcapqvl_tdx_quote_outdated_collateral.json').toString('utf8'));
    expect(() => run(UPTODATE.quote, [other], UPTODATE.at)).toThrow(/TCB not evaluated: no Intel collateral was supplied for FMSPC b0c06f000000/);
    expect(reason(UPTODATE.quote, [UPTODATE.doc], '2025-07-19T10:20:00Z')).toBe('collateral');
    expect(() => run(UPTODATE.quote, [UPTODATE.doc], '2025-08-01T00:00:00Z')).toThrow(/not current at the verification instant/);
  });

  it('reuses a verified document only inside the window every part of it is current in', () => {
    const tcb = collateralEvaluator([UPTODATE.doc], DEFAULT_TDX_ROOTS);
    const o = (at: string) => ({ anchors: DEFAULT_TDX_ROOTS, at: new Date(at), policy: ANY, tcb });
    expect(verifyTdxQuote(UPTODATE.quote, o(UPTODATE.at)).tcb).toMatchObject({ evaluated: true, status: 'UpToDate' });
    expect(verifyTdxQuote(UPTODATE.quote, o('2025-07-19T10:00:00Z')).tcb).toMatchObject({ evaluated: true, status: 'UpToDate' });
    expect(() => verifyTdxQuote(UPTODATE.quote, o('2025-07-19T10:20:00Z'))).toThrow(/not current at the verification instant/);
    expect(() => verifyTdxQuote(UPTODATE.quote, o('2025-06-01T00:00:00Z'))).toThrow(/not current at the verification instant/);
  });

  it('parses the CRLs of the vectors (the gotdx PCK CRL lists revoked serials)', () => {
    const pckCrl = parseCrl(read('gotdx_pckcrl'), 'PCK CRL');
    expect(pckCrl.revoked.has('6fc34e5023e728923435d61aa4b83c618166ad35')).toBe(true);
    expect(parseCrl(read('gotdx_rootcrl.der'), 'root CRL').revoked.size).toBe(0);
    expect(() => parseCrl(Buffer.concat([read('gotdx_rootcrl.der'), Buffer.from([0])]), 'root CRL')).toThrow(TdxError);
  });

  const raw = JSON.parse(read('dcapqvl_tdx_quote_collateral.json').toString('utf8')) as Record<string, string>;
  const mutated = (k: string, f: (v: string) => string) => JSON.stringify({ ...raw, [k]: f(raw[k]!) });
  const flipChar = (v: string, i: number) => v.slice(0, i) + (v[i] === '0' ? '1' : v[i] === '"' ? "'" : '0') + v.slice(i + 1);

  it.each(['tcb_info', 'qe_identity'])('refuses %s with any character of its signed text changed', (k) => {
    const text = raw[k]!;
    const reasons = new Set<string>();
    for (let i = 0; i < text.length; i += k === 'tcb_info' ? 7 : 1) {
      let doc: TdxCollateral;
      try {
        doc = parseTdxCollateral(mutated(k, (v) => flipChar(v, i)));
      } catch (e) {
        expect(e).toBeInstanceOf(TdxError);
        reasons.add('collateral');
        continue;
      }
      const r = reason(UPTODATE.quote, [doc], UPTODATE.at);
      // A changed FMSPC leaves no document for the quote: not evaluated, which the strict policy refuses.
      expect(['collateral', 'policy'], `${k}[${i}] → ${r}`).toContain(r);
      reasons.add(r);
    }
    expect(reasons.has('collateral')).toBe(true);
  });

  it.each(['tcb_info_signature', 'qe_identity_signature', 'pck_crl', 'root_ca_crl'])('refuses %s with bytes flipped', (k) => {
    const hex = raw[k]!;
    for (let i = 0; i < hex.length; i += Math.max(1, Math.floor(hex.length / 97))) {
      const doc = (() => {
        try {
          return parseTdxCollateral(mutated(k, (v) => v.slice(0, i) + (Number.parseInt(v[i]!, 16) ^ 1).toString(16) + v.slice(i + 1)));
        } catch (e) {
          expect(e).toBeInstanceOf(TdxError);
          return undefined;
        }
      })();
      if (doc) expect(reason(UPTODATE.quote, [doc], UPTODATE.at), `${k}[${i}]`).toBe('collateral');
    }
  });

  it('refuses issuer chains that are not an Intel TCB Signing certificate to the pinned root', () => {
    const pckChain = raw.pck_crl_issuer_chain!;
    expect(reason(UPTODATE.quote, [parseTdxCollateral(mutated('tcb_info_issuer_chain', () => pckChain))], UPTODATE.at)).toBe('collateral');
    expect(reason(UPTODATE.quote, [parseTdxCollateral(mutated('qe_identity_issuer_chain', () => pckChain))], UPTODATE.at)).toBe('collateral');
    // The PCK CRL of another CA (the root CRL in its place).
    expect(reason(UPTODATE.quote, [parseTdxCollateral(mutated('pck_crl', () => raw.root_ca_crl!))], UPTODATE.at)).toBe('collateral');
    expect(() => parseTdxCollateral('{"tcb_info": 1}')).toThrow(TdxError);
    expect(() => parseTdxCollateral(`${JSON.stringify(raw).slice(0, -1)},"tcb_info":"x"}`)).toThrow(/strict JSON/);
  });

  it('writ enclave check --collateral prints the TCB status; an outdated platform fails', async () => {
    const ok = await runCli([
      'enclave',
      'check',
      '--type',
      'tdx',
      '--evidence',
      join(TDX, 'dcapqvl_tdx_quote'),
      '--at',
      UPTODATE.at,
      '--collateral',
      join(TDX, 'dcapqvl_tdx_quote_collateral.json'),
      '--require-tcb',
    ]);
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('ok        TCB status UpToDate from Intel collateral\n');
    const bad = await runCli([
      'enclave',
      'check',
      '--type',
      'tdx',
      '--evidence',
      join(TDX, 'dcapqvl_tdx_quote_outdated'),
      '--at',
      '2026-03-20T10:41:14Z',
      '--collateral',
      join(TDX, 'dcapqvl_tdx_quote_outdated_collateral.json'),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('FAILED    platform policy: no TCB level of the TCB info matches the platform and TD (TCB unrecognized)');
  });
});

describe('TCB status convergence', () => {
  it.each([
    ['UpToDate', 'UpToDate', 'UpToDate'],
    ['UpToDate', 'OutOfDate', 'OutOfDate'],
    ['ConfigurationNeeded', 'OutOfDate', 'OutOfDateConfigurationNeeded'],
    ['SWHardeningNeeded', 'UpToDate', 'SWHardeningNeeded'],
    ['UpToDate', 'Revoked', 'Revoked'],
  ])('%s with %s is %s', (a, b, c) => expect(convergeStatus(a, b)).toBe(c));
});

describe('TDX collateral from a test PKI: revocation, TCB levels, QE and module identities', () => {
  const pki = makeTestPki();
  const at = '2030-01-01T00:00:00Z';
  const quote = makeTestQuote(pki, { reportData: Buffer.alloc(64) });
  const evaluate = (o: Parameters<typeof makeTestCollateral>[1] = {}, policy: TdxPolicy = ANY) =>
    verifyTdxQuote(quote, {
      anchors: [pki.root],
      at: new Date(at),
      policy,
      tcb: collateralEvaluator([parseTdxCollateral(makeTestCollateral(pki, o))], [pki.root]),
    });
  const refusal = (o: Parameters<typeof makeTestCollateral>[1], policy: TdxPolicy = ANY) => {
    try {
      evaluate(o, policy);
    } catch (e) {
      if (e instanceof TdxError) return `${e.reason}: ${e.message}`;
      throw e;
    }
    return 'accepted';
  };

  it('evaluates UpToDate, and an OutOfDate level with its advisories (refused unless accepted)', () => {
    expect(evaluate().tcb).toEqual({ evaluated: true, status: 'UpToDate', advisories: [] });
    expect(evaluate({ status: 'OutOfDate' }).tcb).toEqual({ evaluated: true, status: 'OutOfDate', advisories: ['INTEL-SA-00001'] });
    expect(refusal({ status: 'OutOfDate' }, { ...ANY, acceptedTcbStatuses: ['UpToDate'] })).toBe(
      'policy: attestation(tdx): TCB status OutOfDate is not accepted (accepted: UpToDate)',
    );
  });

  it('refuses a PCK certificate on the PCK CRL and a PCK CA on the root CRL', () => {
    expect(refusal({ revokePck: true })).toBe('collateral: attestation(tdx): collateral: the PCK certificate is revoked');
    expect(refusal({ revokeCa: true })).toBe('collateral: attestation(tdx): collateral: the Intel SGX PCK Platform CA is revoked');
  });

  it('refuses a QE other than the identity names, and a TDX module signer other than the TCB info names', () => {
    expect(refusal({ qeMrSigner: Buffer.alloc(32, 1) })).toBe('qe: attestation(tdx): the QE is not signed by the key the QE identity names');
    expect(refusal({ moduleSigner: Buffer.alloc(48, 0x23) })).toBe('policy: attestation(tdx): MRSIGNERSEAM is not the tcb_info.tdxModule signer');
  });

  it('refuses collateral outside its window, and collateral signed under another root', () => {
    expect(refusal({ from: new Date('2030-01-02T00:00:00Z'), until: new Date('2030-03-01T00:00:00Z') })).toMatch(/^collateral: .*not current/);
    const other = makeTestPki();
    const foreign = parseTdxCollateral(makeTestCollateral(other));
    expect(() =>
      verifyTdxQuote(quote, {
        anchors: [pki.root],
        at: new Date(at),
        policy: ANY,
        tcb: collateralEvaluator([{ ...foreign, fmspc: pki.fmspc.toString('hex') }], [pki.root]),
      }),
    ).toThrow(TdxError);
  });
});
