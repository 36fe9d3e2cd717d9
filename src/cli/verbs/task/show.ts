/** `writ task show ID`: the task and its delegation tree. */
import { UsageError } from '../../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';
import { taskTree, taskTreeJson } from './format.js';

export const taskShowVerb: Verb = {
  name: ['task', 'show'],
  summary: 'show a task and its delegation tree: principal → agent → sub-agent, each with SPIFFE ID, key, evidence type, scope and state',
  positionals: 'ID',
  maxPositionals: 1,
  options: { json: { type: 'boolean', help: 'print JSON' }, ...ADMIN_OPTIONS },
  async run({ values, positionals, env, io, now }) {
    const id = positionals[0];
    if (!id) throw new UsageError('the task ID is required');
    const res = await adminClients(adminSocketPath(values, env)).admin.getTask({ id });
    io.out(values.json ? `${JSON.stringify(taskTreeJson(res))}\n` : taskTree(res, now()));
    return 0;
  },
};
