/**
 * The `tpm` evidence type's issuer side: its settings (`attestation.tpm`), the verifier, and
 * the relying party's re-verification with the same trust (README.md in this folder).
 */
import { certificatesInFile } from '../../config/files.js';
import { listOption, stringOption, UsageError, type OptionValues } from '../../config/options.js';
import type { Section } from '../../config/section.js';
import { parsePcrSelectionSpec } from '../../tpm/structures.js';
import { parseCertificate } from '../../x509/certificate.js';
import type { EvidencePlugin } from '../plugin.js';
import { AGENT_PCR_RANGE, DEFAULT_AGENT_PCR } from './evidence-check.js';
import { tpmReverifier, type TpmTrust } from './reverify.js';
import { TPM_TYPE, tpmVerifier, type TpmVerifierSettings } from './verifier.js';

export const DEFAULT_PCR_SELECTION = 'sha256:0,1,2,3,4,5,6,7';

export interface TpmSettings extends TpmVerifierSettings {
  /** The files the roots came from, for the startup log. */
  readonly rootFiles: readonly string[];
}

/** Certificates (DER) from files, each checked to be an X.509 certificate; problems recorded. */
function certificates(files: readonly string[], name: string, problem: (m: string) => void): Buffer[] {
  const out: Buffer[] = [];
  for (const f of files) {
    try {
      const certs = certificatesInFile(f);
      if (certs.length === 0) problem(`${name}: ${f} holds no certificate`);
      for (const c of certs) {
        parseCertificate(c);
        out.push(c);
      }
    } catch (e) {
      problem(`${name}: ${f}: ${(e as Error).message}`);
    }
  }
  return out;
}

export function parseTpmSettings(s: Section): TpmSettings {
  s.only(['manufacturer_roots', 'intermediates', 'pcr_selection', 'agent_pcr']);
  const rootFiles = s.files('manufacturer_roots');
  const pcrSelection = s.str('pcr_selection', DEFAULT_PCR_SELECTION);
  try {
    parsePcrSelectionSpec(pcrSelection);
  } catch (e) {
    s.problem(`${s.name('pcr_selection')}: ${(e as Error).message}`);
  }
  return {
    rootFiles,
    roots: certificates(rootFiles, s.name('manufacturer_roots'), (m) => s.problem(m)),
    intermediates: certificates(s.files('intermediates'), s.name('intermediates'), (m) => s.problem(m)),
    pcrSelection,
    agentPcr: s.int('agent_pcr', DEFAULT_AGENT_PCR, AGENT_PCR_RANGE[0], AGENT_PCR_RANGE[1]),
  };
}

function trustFromOptions(values: OptionValues): TpmTrust {
  const files = (flag: string) =>
    listOption(values, flag).flatMap((f) => {
      const certs = certificatesInFile(f, `--${flag}`);
      if (certs.length === 0) throw new UsageError(`--${flag}: ${f} holds no certificate`);
      return certs;
    });
  const pcr = stringOption(values, 'tpm-agent-pcr');
  let agentPcr: number | undefined;
  if (pcr !== undefined) {
    agentPcr = Number(pcr);
    if (!Number.isInteger(agentPcr) || agentPcr < AGENT_PCR_RANGE[0] || agentPcr > AGENT_PCR_RANGE[1])
      throw new UsageError(`--tpm-agent-pcr must be an integer ${AGENT_PCR_RANGE.join('..')}`);
  }
  return { roots: files('tpm-roots'), intermediates: files('tpm-intermediates'), ...(agentPcr !== undefined ? { agentPcr } : {}) };
}

export const tpmPlugin: EvidencePlugin<TpmSettings, TpmTrust> = {
  type: TPM_TYPE,
  settings: parseTpmSettings,
  describe: (s) =>
    `${s.roots.length} manufacturer root(s) from ${s.rootFiles.length} file(s), ${s.intermediates.length} intermediate(s), PCRs ${s.pcrSelection}, agent PCR ${s.agentPcr}`,
  verifier: (settings, deps) => tpmVerifier({ records: deps.store, settings }),
  relyingParty: {
    options: {
      'tpm-roots': { type: 'string', multiple: true, value: 'FILE', help: 'TPM manufacturer root certificates (PEM or DER) for --deep' },
      'tpm-intermediates': { type: 'string', multiple: true, value: 'FILE', help: 'intermediates completing EK certificate chains' },
      'tpm-agent-pcr': { type: 'string', value: 'N', help: "the issuer's attestation.tpm.agent_pcr (default: the PCR the agent log names)" },
    },
    fromOptions: trustFromOptions,
    fromSettings: (s) => ({ roots: s.roots, intermediates: s.intermediates, agentPcr: s.agentPcr }),
    reverifier: tpmReverifier,
  },
};
