/** `writ entry show ID`. */
import { UsageError } from '../../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';
import { entryJson, entryText } from './format.js';

export const entryShowVerb: Verb = {
  name: ['entry', 'show'],
  summary: 'show one registration entry',
  positionals: 'ID',
  maxPositionals: 1,
  options: { json: { type: 'boolean', help: 'print JSON' }, ...ADMIN_OPTIONS },
  async run({ values, positionals, env, io }) {
    const id = positionals[0];
    if (!id) throw new UsageError('the entry ID is required');
    const res = await adminClients(adminSocketPath(values, env)).admin.getEntry({ id });
    io.out(values.json ? `${JSON.stringify(entryJson(res.entry!))}\n` : entryText(res.entry!));
    return 0;
  },
};
