/**
 * Options the enclave evidence types share on `writ verify --deep`: `--enclave-roots TYPE=FILE`
 * (repeatable) replaces the shipped vendor roots of one type with a PEM file of the vendor's
 * chain as it ships it. Each enclave plug-in declares this same option and reads its own TYPE.
 */
import { listOption, UsageError, type OptionSpec, type OptionValues } from '../../config/options.js';

export const ENCLAVE_ROOTS_OPTION: Readonly<Record<'enclave-roots', OptionSpec>> = {
  'enclave-roots': {
    type: 'string',
    multiple: true,
    value: 'TYPE=FILE',
    help: "an enclave type's vendor chain (PEM, as the vendor ships it) instead of the pinned defaults, e.g. sev-snp=ask_ark.pem",
  },
};

/** The files `--enclave-roots` names for `type`, and a usage error for a malformed one. */
export function enclaveRootFiles(values: OptionValues, type: string): string[] {
  const out: string[] = [];
  for (const v of listOption(values, 'enclave-roots')) {
    const eq = v.indexOf('=');
    if (eq <= 0 || eq === v.length - 1) throw new UsageError(`--enclave-roots ${v}: want TYPE=FILE`);
    if (v.slice(0, eq) === type) out.push(v.slice(eq + 1));
  }
  return out;
}
