/** `writ entry list`. */
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';
import { entryJson, entryText } from './format.js';

export const entryListVerb: Verb = {
  name: ['entry', 'list'],
  summary: 'list registration entries',
  options: { json: { type: 'boolean', help: 'print JSON' }, ...ADMIN_OPTIONS },
  async run({ values, env, io }) {
    const res = await adminClients(adminSocketPath(values, env)).admin.listEntries({});
    if (values.json) io.out(`${JSON.stringify(res.entries.map(entryJson))}\n`);
    else for (const e of res.entries) io.out(entryText(e));
    return 0;
  },
};
