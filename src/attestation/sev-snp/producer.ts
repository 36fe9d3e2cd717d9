/**
 * The `sev_snp` evidence type's agent side (`writ agent attest --evidence sev-snp`): a report
 * from the guest's configfs-tsm interface (provider `sev_guest`) whose REPORT_DATA is the
 * challenge nonce (the binding digest B) then zero bytes; the certificates from `auxblob` (the
 * host's GHCB certificate table) or, where the host provides none, from a file fetched from
 * AMD KDS. The evidence sent is the report followed by a canonical certificate table.
 */
import { certificatesInFile } from '../../config/files.js';
import { stringOption, UsageError, type OptionValues } from '../../config/options.js';
import { AttestationError } from '../../errors.js';
import { tsmReport, type TsmOptions } from '../enclave/configfs-tsm.js';
import type { EvidenceProducer } from '../plugin.js';
import { encodeCertTable, parseAmdCertificate, parseCertTable, type TableEntry } from './certs.js';
import { expectedReportData, SEV_SNP_CLI_NAME } from './plugin.js';
import { parseSnpReport, REPORT_SIZE } from './report.js';
import { MAX_SNP_EVIDENCE_BYTES, SEV_SNP_TYPE } from './verify.js';

/** The configfs-tsm provider name of the SEV guest driver. */
export const SEV_GUEST_PROVIDER = 'sev_guest';

const fail = (m: string) => new AttestationError('ERR_EVIDENCE_INVALID', `attestation(${SEV_SNP_TYPE}): ${m}`);

/** Sorts certificates of unknown role (a KDS download) by their names: VCEK, VLEK, ARK (self-signed), else ASK/ASVK. */
export function classifyCertificates(ders: readonly Buffer[]): TableEntry[] {
  return ders.map((der, i) => {
    const c = parseAmdCertificate(der, `certificate ${i + 1}`);
    const kind = c.commonName === 'SEV-VCEK' ? 'vcek' : c.commonName === 'SEV-VLEK' ? 'vlek' : c.issuer.equals(c.subject) ? 'ark' : 'ask';
    return { kind, der };
  });
}

/**
 * writ's evidence from what the kernel returned: the report, then the table entries writ knows
 * (the host's, else `fallback`), each kind once, in a canonical table.
 */
export function snpEvidenceFrom(outblob: Buffer, auxblob: Buffer | undefined, fallback: readonly TableEntry[], reportData: Buffer): Buffer {
  if (outblob.length !== REPORT_SIZE) throw fail(`the kernel returned a ${outblob.length}-byte report, not ${REPORT_SIZE}`);
  const report = parseSnpReport(outblob);
  if (!report.reportData.equals(reportData)) throw fail('the report does not carry the REPORT_DATA written to inblob');
  const host = auxblob?.length ? parseCertTable(auxblob, false) : [];
  const entries: TableEntry[] = [];
  for (const e of [...host, ...fallback]) if (!entries.some((x) => x.kind === e.kind)) entries.push(e);
  if (!entries.some((e) => e.kind === report.signingKey))
    throw fail(
      `no ${report.signingKey.toUpperCase()} certificate: the host's certificate table has none; fetch it from AMD KDS and give it with --sev-snp-certs`,
    );
  const evidence = Buffer.concat([outblob, encodeCertTable(entries)]);
  if (evidence.length > MAX_SNP_EVIDENCE_BYTES) throw fail(`the evidence would be ${evidence.length} bytes, above ${MAX_SNP_EVIDENCE_BYTES}`);
  return evidence;
}

function tsmOptions(values: OptionValues): TsmOptions {
  const dir = stringOption(values, 'sev-snp-tsm-dir');
  const vmpl = stringOption(values, 'sev-snp-vmpl');
  if (vmpl !== undefined && !/^[0-3]$/.test(vmpl)) throw new UsageError('--sev-snp-vmpl must be 0..3');
  return { provider: SEV_GUEST_PROVIDER, ...(dir ? { dir } : {}), ...(vmpl !== undefined ? { privlevel: Number(vmpl) } : {}) };
}

export const snpProducer: EvidenceProducer = {
  type: SEV_SNP_TYPE,
  selectedBy: 'sev-snp-tsm-dir',
  cliName: SEV_SNP_CLI_NAME,
  options: {
    'sev-snp-tsm-dir': {
      type: 'string',
      value: 'DIR',
      help: 'an existing configfs-tsm report directory for SEV-SNP (default: a fresh one under /sys/kernel/config/tsm/report)',
    },
    'sev-snp-vmpl': { type: 'string', value: 'N', help: 'the VMPL to request the SEV-SNP report at, 0..3 (default: the kernel default)' },
    'sev-snp-certs': { type: 'string', value: 'FILE', help: 'VCEK or VLEK (and ASK, ARK) from AMD KDS, DER or PEM, when the host gives no certificates' },
  },
  async open(values) {
    const tsm = tsmOptions(values);
    const certsFile = stringOption(values, 'sev-snp-certs');
    const fallback = certsFile ? classifyCertificates(certificatesInFile(certsFile, '--sev-snp-certs')) : [];
    return {
      async respond(c) {
        const rd = expectedReportData(c.nonce);
        const r = await tsmReport(rd, tsm);
        return snpEvidenceFrom(r.outblob, r.auxblob, fallback, rd);
      },
      close: async () => {},
    };
  },
};
