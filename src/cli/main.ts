/**
 * The `writ` executable: argv → the verb table (verbs/index.ts) → one verb's run. No domain
 * logic. Exit codes: 0 success, 1 failure (one line on stderr), 2 usage error, 130 a wait
 * stopped by Ctrl-C (`writ escalate --wait`).
 */
import { BUILTIN_EVIDENCE } from '../attestation/builtins.js';
import type { CommandIo } from '../attestation/plugin.js';
import { BUILTIN_PRODUCERS } from '../agent/builtins.js';
import { GrpcCallError } from '../agent/attest-client.js';
import { UsageError } from '../config/options.js';
import { ConfigError, isWritError } from '../errors.js';
import { allVerbs } from './verbs/index.js';
import { optionsOf, parseVerbArgs, usageLine, verbHelp, wrapUsage, type CliCatalog, type Verb } from './verb.js';

export const VERSION = '0.1.0';

export const BUILTIN_CATALOG: CliCatalog = { evidence: BUILTIN_EVIDENCE, producers: BUILTIN_PRODUCERS };

export interface CliOptions {
  readonly catalog?: CliCatalog;
  readonly io?: CommandIo;
  readonly env?: NodeJS.ProcessEnv;
}

const stdio: CommandIo = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

/** The whole usage text, generated from the verb table. */
export function usage(catalog: CliCatalog): string {
  const lines = allVerbs(catalog).map((v) => wrapUsage(`  ${usageLine(v, catalog)}`));
  return `writ ${VERSION} — attestation-bound credentials for AI agents

Usage:
${lines.join('\n')}

Run 'writ help VERB...' or 'writ VERB... --help' for what each option means.
Operator verbs reach the running server through --data-dir DIR (default ./.writ, or
WRIT_DATA_DIR) or --admin-socket PATH. Durations look like 90s, 5m, 1h30m.
`;
}

/** The verb whose words start `argv`, longest match first. */
function findVerb(verbs: readonly Verb[], argv: readonly string[]): Verb | undefined {
  return [...verbs].sort((a, b) => b.name.length - a.name.length).find((v) => v.name.every((w, i) => argv[i] === w));
}

export async function main(argv: readonly string[], opts: CliOptions = {}): Promise<number> {
  const catalog = opts.catalog ?? BUILTIN_CATALOG;
  const io = opts.io ?? stdio;
  const env = opts.env ?? process.env;
  try {
    const [cmd] = argv;
    if (cmd === '--version' || cmd === 'version') {
      io.out(`writ ${VERSION}\n`);
      return 0;
    }
    const verbs = allVerbs(catalog);
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      const asked = cmd === 'help' ? findVerb(verbs, argv.slice(1)) : undefined;
      io.out(asked ? verbHelp(asked, catalog) : usage(catalog));
      return 0;
    }
    const verb = findVerb(verbs, argv);
    if (!verb) {
      const group = verbs.filter((v) => v.name[0] === cmd);
      if (group.length) throw new UsageError(`unknown ${cmd} command ${argv[1] ?? '(none)'}; want ${group.map((v) => v.name.slice(1).join(' ')).join(', ')}`);
      throw new UsageError(`unknown command ${cmd}`);
    }
    const { values, positionals } = parseVerbArgs(optionsOf(verb, catalog), argv.slice(verb.name.length), verb.maxPositionals ?? 0);
    if (values.help) {
      io.out(verbHelp(verb, catalog));
      return 0;
    }
    return await verb.run({ values, positionals, env, catalog, io, now: () => new Date() });
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`writ: ${e.message}\nRun 'writ help' for usage.\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      io.err(`writ: invalid configuration: ${e.problems.join('; ')}\n`);
      return 1;
    }
    const msg = e instanceof GrpcCallError ? e.details : isWritError(e) ? e.message : ((e as Error)?.message ?? String(e));
    io.err(`writ: ${msg.replace(/\s*\n\s*/g, ' ')}\n`);
    return 1;
  }
}
