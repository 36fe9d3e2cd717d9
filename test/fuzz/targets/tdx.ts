/** Target: TDX quote verification (src/attestation/tdx/quote.ts, pck.ts, verify.ts). */
import { existsSync, readFileSync } from 'node:fs';
import { parseTdxQuote } from '../../../src/attestation/tdx/quote.js';
import { DEFAULT_TDX_ROOTS } from '../../../src/attestation/tdx/roots.js';
import { verifyTdxQuote } from '../../../src/attestation/tdx/verify.js';
import type { FuzzTarget } from '../engine/contract.js';
import { HAVE_VECTORS, vectorPath } from '../engine/paths.js';

/** Real quotes whose PCK chains are all valid at AT. */
const QUOTES = ['gotdx_quote_v5_sample.dat', 'dcapqvl_tdx_quote', 'dcapqvl_tdx_quote_outdated', 'gotdx_ccel_cos-113-tdx-quote.dat'];
const AT = new Date('2026-06-01T00:00:00Z');

export const tdxQuoteTarget: FuzzTarget = {
  name: 'tdx-quote',
  signed: true,
  parsers: 'src/attestation/tdx/verify.ts: verifyTdxQuote (quote v4/v5, QE report, PCK chain to the Intel SGX root, at a fixed instant, TCB not evaluated)',
  contract: 'accepts only the real quotes, byte for byte up to zero padding; else throws a WritError (ERR_EVIDENCE_INVALID)',
  maxLen: 12 * 1024,
  sources: ['src/attestation/tdx/quote.ts', 'src/attestation/tdx/pck.ts'],
  setup: () => {
    const seeds = HAVE_VECTORS
      ? QUOTES.map((f) => vectorPath(`enclave/tdx/${f}`))
          .filter(existsSync)
          .map((p) => readFileSync(p))
      : [];
    // The quote part of each seed (trusted: computed once from the vectors); zero padding after it is valid too.
    const quotes = seeds.map((s) => s.subarray(0, parseTdxQuote(s).length));
    const policy = { allowDebug: false, allowUnevaluatedTcb: true, acceptedTcbStatuses: [] };
    return {
      seeds,
      isValid: (data) => quotes.some((q) => data.length >= q.length && data.subarray(0, q.length).equals(q) && data.subarray(q.length).every((b) => b === 0)),
      run(data) {
        verifyTdxQuote(data, { anchors: DEFAULT_TDX_ROOTS, at: AT, policy });
        return 'accepted';
      },
    };
  },
};
