/**
 * `writ enclave check --type tdx`: an offline check of a TDX quote as the kernel (configfs-tsm
 * `outblob`), the Intel DCAP libraries or go-tdx-guest write it: raw bytes, possibly zero-padded,
 * or the same in hex (with or without `0x`) or base64. Every check it makes is printed; the TCB, which needs
 * Intel collateral, is evaluated with --collateral (a dcap-qvl JSON file, or a directory of them)
 * and printed as unchecked otherwise (failed with --require-tcb).
 */
import { readInputFile } from '../../config/files.js';
import { stringOption, UsageError, type OptionValues } from '../../config/options.js';
import { printChecks, type CheckLine } from '../enclave/report.js';
import type { OfflineCheck } from '../plugin.js';
import { TdxError, type TdxFailure } from './errors.js';
import { collateralEvaluator, readCollateralFiles, TCB_STATUSES, type TdxCollateral } from './collateral.js';
import { MAX_TDX_QUOTE_BYTES } from './quote.js';
import { anchorsInFile, DEFAULT_TDX_ROOTS } from './roots.js';
import { verifyTdxQuote } from './verify.js';

const FAILED_CHECK: Record<TdxFailure, string> = {
  format: 'quote structure (v4/v5, ECDSA P-256, certification data types 6 and 5, zero padding only)',
  signature: 'signatures (quote by the attestation key, QE report by the PCK key)',
  chain: 'PCK certificate chain to the Intel SGX root',
  qe: 'QE report data binds the attestation key',
  policy: 'platform policy',
  binding: 'report data equals --report-data',
  collateral: 'Intel collateral',
};

/** The quote from a file: raw bytes, hex text (as dcap-qvl and many tools print it), or base64. */
export function readQuoteFile(path: string): Buffer {
  const data = readInputFile(path, '--evidence');
  if (data.length > 2 * MAX_TDX_QUOTE_BYTES + 4) throw new UsageError(`--evidence: ${path} is larger than any TDX quote`);
  const text = data.toString('latin1').trim();
  if (/^(0x)?[0-9a-fA-F]+$/.test(text) && text.length % 2 === 0) return Buffer.from(text.replace(/^0x/, ''), 'hex');
  // Base64 (as cloud attestation APIs return quotes): a v4/v5 quote starts with BAAC or BQAC.
  const b64 = text.replace(/\s+/g, '');
  if (/^B[AQ]AC[A-Za-z0-9+/]*={0,2}$/.test(b64) && b64.length % 4 === 0) return Buffer.from(b64, 'base64');
  return data;
}

/** `--report-data HEX`: up to 64 bytes, zero-filled to 64 as the kernel fills `inblob` (so B alone is B ‖ 32 zeros). */
export function reportDataOption(values: OptionValues): Buffer | undefined {
  const hex = stringOption(values, 'report-data');
  if (hex === undefined) return undefined;
  const h = hex.replace(/^0x/, '');
  if (!/^([0-9a-fA-F]{2}){1,64}$/.test(h)) throw new UsageError('--report-data: want 1..64 bytes in hex');
  return Buffer.concat([Buffer.from(h, 'hex'), Buffer.alloc(64 - h.length / 2)]);
}

export function instantOption(values: OptionValues, now: Date): Date {
  const at = stringOption(values, 'at');
  if (at === undefined) return now;
  const d = new Date(at);
  if (!/^\d{4}-\d\d-\d\dT/.test(at) || Number.isNaN(d.getTime())) throw new UsageError(`--at ${at}: want an ISO 8601 instant, e.g. 2025-07-19T10:00:34Z`);
  return d;
}

export const tdxOfflineCheck: OfflineCheck = {
  name: 'tdx',
  async run({ values, io, now }) {
    if (stringOption(values, 'certs') !== undefined) throw new UsageError('--certs: a TDX quote carries its PCK certificate chain inside');
    const collateralPath = stringOption(values, 'collateral');
    let collateral: TdxCollateral[] = [];
    if (collateralPath !== undefined) {
      try {
        collateral = readCollateralFiles([collateralPath], '--collateral');
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
    const rootsFile = stringOption(values, 'roots');
    let anchors: readonly Buffer[] = DEFAULT_TDX_ROOTS;
    if (rootsFile !== undefined) {
      try {
        anchors = anchorsInFile(rootsFile, '--roots');
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
    const raw = readQuoteFile(stringOption(values, 'evidence')!);
    const reportData = reportDataOption(values);
    const at = instantOption(values, now());
    const requireTcb = values['require-tcb'] === true;
    const progress: string[] = [];
    const lines: CheckLine[] = [];
    const extra: Record<string, unknown> = {};
    try {
      const v = verifyTdxQuote(raw, {
        anchors,
        at,
        policy: { allowDebug: values['allow-debug'] === true, allowUnevaluatedTcb: true, acceptedTcbStatuses: TCB_STATUSES },
        ...(collateral.length ? { tcb: collateralEvaluator(collateral, anchors) } : {}),
        ...(reportData ? { reportData } : {}),
        progress,
      });
      for (const c of progress) if (!c.startsWith('TCB not evaluated')) lines.push({ status: 'ok', check: c });
      if (!reportData) lines.push({ status: 'unchecked', check: 'report data', detail: 'no --report-data given' });
      if (!v.tcb.evaluated)
        lines.push({
          status: requireTcb ? 'failed' : 'unchecked',
          check: 'TCB status from Intel collateral (TCB info, QE identity, CRLs)',
          detail: `TCB not evaluated: ${v.tcb.why}`,
        });
      else if (v.tcb.status !== 'UpToDate') lines.push({ status: 'failed', check: 'TCB status is UpToDate', detail: `it is ${v.tcb.status}` });
      Object.assign(extra, {
        version: v.quote.version,
        bodyType: v.quote.bodyType,
        debug: v.debug,
        fmspc: v.pck.fmspc.toString('hex'),
        tcbStatus: v.tcb.evaluated ? v.tcb.status : 'not evaluated',
        ...(v.tcb.evaluated ? { advisories: v.tcb.advisories } : {}),
        reportData: v.quote.body.reportData.toString('hex'),
        selectors: v.selectors.map((s) => `${s.type}:${s.value}`),
      });
    } catch (e) {
      if (!(e instanceof TdxError)) throw e;
      for (const c of progress) lines.push({ status: 'ok', check: c });
      lines.push({ status: 'failed', check: FAILED_CHECK[e.reason], detail: e.message.replace(/^attestation\(tdx\): /, '') });
    }
    return printChecks(io, lines, values.json === true, extra);
  },
};
