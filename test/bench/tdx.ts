/**
 * TDX quote verification (warm PCK chain cache, as the issuer's verifier runs it) against its raw
 * signature floor measured in the same run: two ECDSA P-256 verifications (the quote by the
 * attestation key, the QE report by the PCK key) over the same bytes. The quote is synthetic, in
 * the real v4 layout, from a test PKI (test/helpers/tdx-quote.ts); with the index's real quote and
 * its Intel collateral, the TCB evaluation is measured too, against the same floor.
 */
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collateralEvaluator, parseTdxCollateral } from '../../src/attestation/tdx/collateral.js';
import { newPckChainCache } from '../../src/attestation/tdx/pck.js';
import { parseTdxQuote } from '../../src/attestation/tdx/quote.js';
import { DEFAULT_TDX_ROOTS } from '../../src/attestation/tdx/roots.js';
import { p256FromRaw, reportDataFor, verifyTdxQuote } from '../../src/attestation/tdx/verify.js';
import { SHARED } from '../helpers/shared.js';
import { makeTestPki, makeTestQuote } from '../helpers/tdx-quote.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;
type Rate = (fn: () => unknown) => number;

export function tdxBench(record: Record, rate: Rate): void {
  const pki = makeTestPki();
  const rd = reportDataFor(randomBytes(32));
  const quote = makeTestQuote(pki, { reportData: rd });
  const q = parseTdxQuote(quote);
  const ak = p256FromRaw(q.attestationKey);
  const pckPub = { key: createPublicKey(pki.pckKey.privateKey), dsaEncoding: 'ieee-p1363' as const };
  const floorOnce = () =>
    verify('sha256', q.signed, { key: ak, dsaEncoding: 'ieee-p1363' }, q.signature) && verify('sha256', q.qeReport.raw, pckPub, q.qeReportSignature);
  if (!floorOnce()) throw new Error('bench: the floor does not verify');
  const floor = rate(floorOnce);
  const policy = { allowDebug: false, allowUnevaluatedTcb: true, acceptedTcbStatuses: ['UpToDate'] };
  const at = new Date('2030-01-01T00:00:00Z');
  const pckCache = newPckChainCache();
  record(
    'tdx_quote_verify',
    rate(() => verifyTdxQuote(quote, { anchors: [pki.root], at, policy, reportData: rd, pckCache })),
    'ops/s',
    floor,
  );
  const file = join(SHARED, 'vectors', 'enclave', 'tdx', 'dcapqvl_tdx_quote');
  if (existsSync(file)) {
    const real = readFileSync(file);
    const doc = parseTdxCollateral(readFileSync(`${file}_collateral.json`, 'utf8'));
    const tcb = collateralEvaluator([doc], DEFAULT_TDX_ROOTS);
    const realCache = newPckChainCache();
    const o = { anchors: DEFAULT_TDX_ROOTS, at: new Date('2025-07-19T10:00:34Z'), policy: { ...policy, allowUnevaluatedTcb: false }, pckCache: realCache, tcb };
    record(
      'tdx_quote_verify_with_collateral',
      rate(() => verifyTdxQuote(real, o)),
      'ops/s',
      floor,
    );
  }
}
