/** `writ agent attest`: one handshake with any evidence type the agent builtins list, credentials written to a directory. */
import type { EvidenceProducer } from '../../../attestation/plugin.js';
import { listOption, stringOption, UsageError, type OptionSpecs, type OptionValues } from '../../../config/options.js';
import { serverAddresses } from '../../../agent/failover.js';
import { attestAgent } from '../../../agent/attest-once.js';
import { writeCredentials } from '../../../agent/credentials.js';
import { KEY_FILE_OPTION } from '../../../agent/keys.js';
import { readPemBundle } from '../../bundle-file.js';
import { readGrantFiles } from '../../grant-files.js';
import { readInputFile } from '../../../config/files.js';
import { required, type CliCatalog, type Verb } from '../../verb.js';

const CORE: OptionSpecs = {
  server: {
    type: 'string',
    value: 'HOST:PORT[,HOST:PORT...]',
    help: "the issuer's public port; replicas separated by commas, tried in order when one cannot serve",
  },
  bundle: { type: 'string', value: 'FILE', help: "the issuer's trust bundle, PEM (the server writes bundle.pem)" },
  out: { type: 'string', value: 'DIR', help: 'where to write svid.pem, svid.key, bundle.pem, bundle.jwks, jwt-svid.txt, writ.jws' },
  ...KEY_FILE_OPTION,
  grant: { type: 'string', multiple: true, value: 'FILE', help: 'grant chain files (compact grants, one per line, root first): the issuer returns a writ' },
  'writ-audience': { type: 'string', multiple: true, value: 'AUD', help: 'an audience the writ names (with --grant)' },
  'step-up': {
    type: 'string',
    multiple: true,
    value: 'FILE',
    help: 'a step-up grant (an approval, `writ escalate --wait --out`) for the writ to carry (with --grant)',
  },
  'jwt-audience': { type: 'string', multiple: true, value: 'AUD', help: 'also issue a JWT-SVID for this audience' },
  evidence: { type: 'string', value: 'TYPE', help: 'the evidence type, for types selected by name (see below)' },
};

function options(catalog: CliCatalog): OptionSpecs {
  return Object.assign({}, CORE, ...catalog.producers.map((p) => p.options));
}

/** The one producer the options select; every option given must belong to it or to the core. */
export function selectProducer(producers: readonly EvidenceProducer[], values: OptionValues, core: OptionSpecs): EvidenceProducer {
  const named = values.evidence;
  const names = producers.flatMap((p) => (p.cliName ? [p.cliName] : []));
  if (typeof named === 'string' && !names.includes(named))
    throw new UsageError(`--evidence ${named}: unknown; one of ${names.join(', ') || '(none: this build selects every type by its own option)'}`);
  const chosen = producers.filter((p) => values[p.selectedBy] !== undefined || (p.cliName !== undefined && named === p.cliName));
  if (chosen.length !== 1)
    throw new UsageError(`give exactly one of ${[...producers.map((p) => `--${p.selectedBy}`), ...names.map((n) => `--evidence ${n}`)].join(', ')}`);
  const p = chosen[0]!;
  for (const name of Object.keys(values)) {
    if (values[name] === undefined || name in core || name in p.options || name === 'help') continue;
    const owner = producers.find((q) => name in q.options);
    throw new UsageError(`--${name} is an option of ${owner?.type ?? 'another'} evidence, not ${p.type}`);
  }
  return p;
}

export const agentAttestVerb: Verb = {
  name: ['agent', 'attest'],
  summary: 'one-shot agent: attest with one evidence type, get the SVIDs (and, with --grant, the writ), write them to --out',
  required: ['server', 'bundle', 'out'],
  options,
  note: 'Evidence: exactly one of the evidence options below selects the type. Without --key or a key the evidence holds, a new P-256 key is made and written as svid.key (0600).',
  async run({ values, catalog, io }) {
    const producer = selectProducer(catalog.producers, values, CORE);
    const server = serverAddresses([required(values, 'server')]);
    const bundlePem = readPemBundle(required(values, 'bundle'));
    const out = required(values, 'out');
    const grants = readGrantFiles(listOption(values, 'grant'));
    const writAudiences = listOption(values, 'writ-audience');
    if (writAudiences.length && grants.length === 0) throw new UsageError('--writ-audience needs --grant');
    const stepUps = listOption(values, 'step-up').map((f) => readInputFile(f, '--step-up').toString('utf8').trim());
    if (stepUps.length && grants.length === 0) throw new UsageError('--step-up needs --grant');
    const keyFile = stringOption(values, 'key');
    const attested = await attestAgent({
      server,
      bundlePem,
      producer,
      values,
      ...(keyFile ? { keyFile } : {}),
      grants,
      stepUps,
      jwtAudiences: listOption(values, 'jwt-audience'),
      writAudiences,
      onFailover: (at, e) => io.err(`writ: ${at} could not serve the handshake (${(e as Error).message}); trying the next issuer\n`),
    });
    writeCredentials(out, attested);
    io.out(`${attested.outcome.spiffeId}\n`);
    return 0;
  },
};
