/** `writ task list`. */
import { stringOption, UsageError } from '../../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';
import { taskJson, taskLine } from './format.js';

export const taskListVerb: Verb = {
  name: ['task', 'list'],
  summary: 'list tasks, newest first',
  options: {
    json: { type: 'boolean', help: 'print JSON' },
    limit: { type: 'string', value: 'N', help: 'at most this many (default 100, at most 1000)' },
    ...ADMIN_OPTIONS,
  },
  async run({ values, env, io }) {
    const limit = Number(stringOption(values, 'limit') ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--limit must be an integer from 1 to 1000');
    const res = await adminClients(adminSocketPath(values, env)).admin.listTasks({ limit });
    if (values.json) io.out(`${JSON.stringify(res.tasks.map(taskJson))}\n`);
    else for (const t of res.tasks) io.out(`${taskLine(t)}\n`);
    return 0;
  },
};
