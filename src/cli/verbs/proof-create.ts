/** `writ proof create`: a proof of possession for presenting a writ to one audience and method. */
import { readInputFile } from '../../config/files.js';
import { stringOption, type OptionSpecs } from '../../config/options.js';
import { proveWrit } from '../../agent/delegate.js';
import { keyOptions, openAgentKey } from '../../agent/keys.js';
import { seconds } from '../durations.js';
import { required, type CliCatalog, type Verb } from '../verb.js';

function options(catalog: CliCatalog): OptionSpecs {
  return {
    writ: { type: 'string', value: 'F', help: 'the writ to present' },
    ...keyOptions(catalog.producers),
    audience: { type: 'string', value: 'A', help: 'the relying party' },
    method: { type: 'string', value: 'M', help: 'the HTTP method and target, or the RPC, the proof is for' },
    ttl: { type: 'string', value: 'D', help: 'lifetime (default 60s, at most 5m)' },
  };
}

export const proofCreateVerb: Verb = {
  name: ['proof', 'create'],
  summary: "print a proof of possession for presenting the writ to an audience for a method, signed with the writ's cnf key",
  required: ['writ', 'audience', 'method'],
  options,
  async run({ values, catalog, io, now }) {
    const writ = readInputFile(required(values, 'writ'), '--writ').toString('utf8').trim();
    const ttl = stringOption(values, 'ttl');
    const opened = await openAgentKey(values, catalog.producers);
    try {
      const proof = await proveWrit(writ, opened.key.signer, {
        audience: required(values, 'audience'),
        method: required(values, 'method'),
        now: now(),
        ...(ttl ? { lifetimeS: seconds(ttl, '--ttl') } : {}),
      });
      io.out(`${proof}\n`);
      return 0;
    } finally {
      await opened.close();
    }
  },
};
