/** `writ entry create`: a registration entry mapping selectors to a SPIFFE ID. */
import { listOption, stringOption, UsageError } from '../../../config/options.js';
import { parseSelector } from '../../../registration/entry.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import { seconds } from '../../durations.js';
import { required, type Verb } from '../../verb.js';
import { entryJson, entryText } from './format.js';

export const entryCreateVerb: Verb = {
  name: ['entry', 'create'],
  summary: 'create a registration entry: agents whose attested selectors include all of these get this SPIFFE ID',
  required: ['spiffe-id', 'selector'],
  options: {
    'spiffe-id': { type: 'string', value: 'ID', help: 'the SPIFFE ID to issue' },
    selector: { type: 'string', multiple: true, value: 'TYPE:VALUE', help: 'a selector the agent must have proven' },
    'x509-ttl': { type: 'string', value: 'D', help: 'X.509-SVID lifetime (default: the server setting)' },
    'jwt-ttl': { type: 'string', value: 'D', help: 'JWT-SVID lifetime (default: the server setting)' },
    scope: { type: 'string', multiple: true, value: 'PATTERN', help: 'scope ceiling for writs of this entry' },
    hint: { type: 'string', value: 'TEXT', help: 'a note for operators' },
    json: { type: 'boolean', help: 'print the entry as JSON' },
    ...ADMIN_OPTIONS,
  },
  async run({ values, env, io }) {
    const selectors = listOption(values, 'selector').map((s) => {
      try {
        return parseSelector(s);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    });
    if (selectors.length === 0) throw new UsageError('--selector is required');
    const res = await adminClients(adminSocketPath(values, env)).admin.createEntry({
      entry: {
        spiffeId: required(values, 'spiffe-id'),
        selectors,
        x509SvidTtl: seconds(stringOption(values, 'x509-ttl'), '--x509-ttl'),
        jwtSvidTtl: seconds(stringOption(values, 'jwt-ttl'), '--jwt-ttl'),
        scopeCeiling: listOption(values, 'scope'),
        hint: stringOption(values, 'hint') ?? '',
      },
    });
    io.out(values.json ? `${JSON.stringify(entryJson(res.entry!))}\n` : entryText(res.entry!));
    return 0;
  },
};
