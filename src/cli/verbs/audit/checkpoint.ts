/** `writ audit checkpoint`: the latest signed checkpoint of the audit log, from the admin socket. */
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';

export const auditCheckpointVerb: Verb = {
  name: ['audit', 'checkpoint'],
  summary: 'print the latest signed checkpoint of the audit log (a C2SP tlog-checkpoint signed note); signs one if records were appended since the last',
  options: { ...ADMIN_OPTIONS },
  async run({ values, env, io }) {
    const res = await adminClients(adminSocketPath(values, env)).audit.getCheckpoint({});
    io.out(res.checkpoint);
    return 0;
  },
};
