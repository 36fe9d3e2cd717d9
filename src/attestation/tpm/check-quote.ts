/**
 * Offline quote checking for operators (`writ tpm check-quote`): everything tpm2_checkquote
 * does, plus the AK attribute and scheme checks it skips and, optionally, the EK certificate.
 * Inputs are files as tpm2-tools writes them. It cannot check the AK-to-EK binding: that needs
 * the online credential activation, and the report says so.
 */
import { HASHES } from '../../tpm/constants.js';
import { TpmReader } from '../../tpm/marshal.js';
import { formatPcrSelection, objectName, parsePublic, type PcrSelection, type TpmPublic } from '../../tpm/structures.js';
import { verifyEk } from './ek.js';
import { verifyQuote } from './quote.js';
import { replayLog } from './replay.js';

export interface OfflineQuoteInput {
  /** TPM2B_PUBLIC (tpm2-tools `-u`) or a bare TPMT_PUBLIC. */
  readonly akPublic: Buffer;
  /** TPMS_ATTEST (tpm2_quote `-m`). */
  readonly attest: Buffer;
  /** TPMT_SIGNATURE (tpm2_quote `-s`, tss format). */
  readonly signature: Buffer;
  /** PCR values concatenated in selection order (tpm2_pcrread `-o`). */
  readonly pcrValues: Buffer;
  readonly selection: readonly PcrSelection[];
  readonly nonce: Buffer;
  /** A TCG crypto-agile event log to replay against the quoted PCRs. */
  readonly eventLog?: Buffer;
  readonly ek?: {
    readonly certificate: Buffer;
    readonly public: Buffer;
    readonly roots: readonly Buffer[];
    readonly intermediates: readonly Buffer[];
    readonly at: Date;
  };
}

/** Accepts a TPM2B_PUBLIC or a bare TPMT_PUBLIC. */
export function readPublicFile(b: Buffer): TpmPublic {
  if (b.length >= 2 && b.readUInt16BE(0) === b.length - 2) {
    try {
      return parsePublic(Buffer.from(b.subarray(2)));
    } catch {
      /* fall through: maybe a bare TPMT_PUBLIC whose first u16 happened to match */
    }
  }
  return parsePublic(b);
}

/** Splits concatenated PCR values by the selection's bank sizes. */
export function splitPcrValues(raw: Buffer, selection: readonly PcrSelection[]): Map<number, Map<number, Buffer>> {
  const r = new TpmReader(raw, 'PCR values');
  const out = new Map<number, Map<number, Buffer>>();
  for (const bank of selection) {
    const m = new Map<number, Buffer>();
    for (const p of bank.pcrs) m.set(p, Buffer.from(r.bytes(HASHES.get(bank.hash)!.size, `PCR ${p}`)));
    out.set(bank.hash, m);
  }
  r.end();
  return out;
}

export interface OfflineQuoteReport {
  readonly checks: string[];
  readonly notChecked: string[];
}

export function checkQuoteOffline(i: OfflineQuoteInput): OfflineQuoteReport {
  const checks: string[] = [];
  const ak = readPublicFile(i.akPublic);
  checks.push(`AK public area parsed strictly; Name ${objectName(ak).toString('hex')} computed from it`);
  const values = splitPcrValues(i.pcrValues, i.selection);
  const { attest } = verifyQuote(ak, i.attest, i.signature, i.nonce, i.selection, values);
  checks.push(
    'AK is fixedTPM, fixedParent, sensitiveDataOrigin, restricted, sign, not decrypt; SHA-256+ scheme (tpm2_checkquote does not check this)',
    "signature by the AK over the exact TPMS_ATTEST, with the AK's own scheme and hash",
    'magic TPM_GENERATED_VALUE and type TPM_ST_ATTEST_QUOTE',
    'extraData equals the nonce',
    `PCR selection is exactly ${formatPcrSelection(i.selection)}`,
    'pcrDigest recomputed from the PCR values',
    'clock is safe',
    `TPM counters: resetCount ${attest.clockInfo.resetCount}, restartCount ${attest.clockInfo.restartCount}, clock ${attest.clockInfo.clock}, firmware ${attest.firmwareVersion}`,
  );
  if (i.eventLog) {
    const trusted = replayLog(i.eventLog, i.selection, values);
    const pcrs = [...new Set(trusted.map((e) => e.pcr))].sort((a, b) => a - b);
    checks.push(
      `event log replays to the quoted values of PCRs ${pcrs.join(',') || '(none with events)'}; ${trusted.length} events trusted, events in unquoted PCRs ignored`,
    );
  }
  const notChecked = [
    'AK-to-EK binding: only the online credential activation (MakeCredential/ActivateCredential) proves the AK lives in the TPM that holds the EK',
  ];
  if (i.ek) {
    const id = verifyEk(readPublicFile(i.ek.public), i.ek.certificate, i.ek.intermediates, i.ek.roots, i.ek.at);
    checks.push(
      'EK public area matches a TCG default EK template and the EK certificate',
      `EK certificate chains to a given root (by key): manufacturer ${id.manufacturer ?? '?'}, model ${id.model ?? '?'}, version ${id.version ?? '?'}, ek_hash ${id.ekHash}`,
    );
  } else notChecked.push('EK certificate (give --ek-cert, --ek-pub and --roots)');
  return { checks, notChecked };
}
