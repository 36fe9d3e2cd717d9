/** `writ token create`: a one-time join token (and, with --spiffe-id, its entry in the same transaction). */
import { stringOption } from '../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../admin-client.js';
import { seconds } from '../durations.js';
import type { Verb } from '../verb.js';

export const tokenCreateVerb: Verb = {
  name: ['token', 'create'],
  summary: 'print a one-time join token (default TTL 10m, at most 24h); with --spiffe-id also the entry that maps it',
  options: {
    'spiffe-id': { type: 'string', value: 'ID', help: 'create the entry <token selector> → ID too' },
    ttl: { type: 'string', value: 'D', help: 'how long the token is valid' },
    ...ADMIN_OPTIONS,
  },
  async run({ values, env, io }) {
    const spiffeId = stringOption(values, 'spiffe-id') ?? '';
    const res = await adminClients(adminSocketPath(values, env)).admin.createJoinToken({ ttl: seconds(stringOption(values, 'ttl'), '--ttl'), spiffeId });
    io.out(`${res.token}\n`);
    io.err(
      `join token ${res.id} expires ${new Date(Number(res.expiresAt) * 1000).toISOString()}; selector ${res.selector}` +
        (res.entryId ? `; entry ${res.entryId} maps it to ${spiffeId}` : '') +
        '\n',
    );
    return 0;
  },
};
