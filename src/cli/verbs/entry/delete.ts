/** `writ entry delete ID`. */
import { UsageError } from '../../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';

export const entryDeleteVerb: Verb = {
  name: ['entry', 'delete'],
  summary: 'delete a registration entry',
  positionals: 'ID',
  maxPositionals: 1,
  options: ADMIN_OPTIONS,
  async run({ values, positionals, env, io }) {
    const id = positionals[0];
    if (!id) throw new UsageError('the entry ID is required');
    await adminClients(adminSocketPath(values, env)).admin.deleteEntry({ id });
    io.err(`deleted entry ${id}\n`);
    return 0;
  },
};
