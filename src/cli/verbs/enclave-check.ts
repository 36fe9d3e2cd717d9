/**
 * `writ enclave check --type NAME`: offline check of enclave evidence as vendors and tools
 * write it, dispatched to the evidence plug-in whose `offlineCheck.name` is NAME. The common
 * options are declared here once; each checker adds its own and refuses those it cannot use.
 */
import { stringOption, UsageError, type OptionSpecs } from '../../config/options.js';
import type { CliCatalog, Verb } from '../verb.js';

export const ENCLAVE_CHECK_OPTIONS: OptionSpecs = {
  type: { type: 'string', value: 'NAME', help: 'the evidence type (see the list below)' },
  evidence: { type: 'string', value: 'FILE', help: 'the evidence as the vendor or tool writes it' },
  certs: { type: 'string', value: 'FILE', help: 'certificates that come with it (DER or PEM), when not inside the evidence' },
  roots: { type: 'string', value: 'FILE', help: "the vendor's chain as it ships it, PEM (default: the pinned vendor roots)" },
  collateral: { type: 'string', value: 'DIR', help: 'vendor collateral (TCB info, identities, CRLs) to evaluate the TCB with' },
  'report-data': { type: 'string', value: 'HEX', help: 'the report data or nonce the evidence must carry' },
  at: { type: 'string', value: 'INSTANT', help: 'verify at this ISO 8601 instant (default now)' },
  'allow-debug': { type: 'boolean', help: 'accept debug enclaves' },
  'require-tcb': { type: 'boolean', help: 'fail when the TCB cannot be evaluated (no collateral)' },
  json: { type: 'boolean', help: 'print the checks as JSON' },
};

const checkers = (catalog: CliCatalog) => catalog.evidence.flatMap((p) => (p.offlineCheck ? [p.offlineCheck] : []));

export const enclaveCheckVerb: Verb = {
  name: ['enclave', 'check'],
  summary: 'offline check of enclave evidence: every check printed, exit 0 only when every check it can make passes',
  required: ['type', 'evidence'],
  options: (catalog) => Object.assign({}, ENCLAVE_CHECK_OPTIONS, ...checkers(catalog).map((c) => c.options ?? {})),
  note: 'Types: the enclave evidence types this build knows (writ enclave check --type NAME --help).',
  async run({ values, positionals, io, now, catalog }) {
    const name = stringOption(values, 'type');
    const all = checkers(catalog);
    const checker = all.find((c) => c.name === name);
    if (!checker) throw new UsageError(`--type ${name ?? ''}: unknown; one of ${all.map((c) => c.name).join(', ') || '(none in this build)'}`);
    const mine = new Set([...Object.keys(ENCLAVE_CHECK_OPTIONS), ...Object.keys(checker.options ?? {}), 'help']);
    for (const [k, v] of Object.entries(values)) {
      if (v !== undefined && !mine.has(k)) throw new UsageError(`--${k} is an option of another evidence type, not ${checker.name}`);
    }
    return checker.run({ values, positionals, io, now });
  },
};
