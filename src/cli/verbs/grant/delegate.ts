/** `writ grant delegate`: a narrower part of this agent's writ, for a child key, signed by this agent's key. */
import { readInputFile, writeFileAtomic } from '../../../config/files.js';
import { listOption, stringOption, type OptionSpecs } from '../../../config/options.js';
import { parsePermissionFlag } from '../../../delegation/scope.js';
import { delegateFromWrit } from '../../../agent/delegate.js';
import { keyOptions, openAgentKey } from '../../../agent/keys.js';
import { seconds } from '../../durations.js';
import { required, type CliCatalog, type Verb } from '../../verb.js';
import { PERMISSION_OPTIONS } from './permissions.js';

function options(catalog: CliCatalog): OptionSpecs {
  return {
    writ: { type: 'string', value: 'F', help: "this agent's writ (writ.jws)" },
    ...keyOptions(catalog.producers),
    child: { type: 'string', value: 'THUMBPRINT', help: "the child's key thumbprint", takesNext: true },
    ...PERMISSION_OPTIONS,
    ttl: { type: 'string', value: 'D', help: "the hop's lifetime (at most what is left of the parent's)" },
    out: { type: 'string', value: 'FILE', help: 'where to write the whole chain, one grant per line, for the child --grant' },
  };
}

export const grantDelegateVerb: Verb = {
  name: ['grant', 'delegate'],
  summary:
    "delegate a narrower part of this writ's last grant to a child key, signed with this agent's key (refused before signing if it would widen anything)",
  required: ['writ', 'child', 'out'],
  options,
  async run({ values, catalog, io, now }) {
    const writ = readInputFile(required(values, 'writ'), '--writ').toString('utf8').trim();
    const perms = (flag: string) => listOption(values, flag).map(parsePermissionFlag);
    const ttl = stringOption(values, 'ttl');
    const opened = await openAgentKey(values, catalog.producers);
    try {
      const chain = await delegateFromWrit(writ, opened.key.signer, {
        childJkt: required(values, 'child'),
        scope: perms('scope'),
        boundaries: perms('boundary'),
        escalate: perms('escalate'),
        ...(ttl ? { ttlSeconds: seconds(ttl, '--ttl') } : {}),
        now: now(),
      });
      writeFileAtomic(required(values, 'out'), `${chain.join('\n')}\n`);
      io.out(`delegated to ${required(values, 'child')} at depth ${chain.length - 1} (chain of ${chain.length} grants)\n`);
      return 0;
    } finally {
      await opened.close();
    }
  },
};
