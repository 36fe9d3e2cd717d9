/** `writ audit key`: the audit verifier key (C2SP signed-note verifier key string). */
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';

export const auditKeyVerb: Verb = {
  name: ['audit', 'key'],
  summary: 'print the audit verifier key, <origin>+<key ID>+<base64 key>, that relying parties and witnesses pin (also in audit.vkey in the data directory)',
  options: { ...ADMIN_OPTIONS },
  async run({ values, env, io }) {
    const res = await adminClients(adminSocketPath(values, env)).audit.getCheckpoint({});
    io.out(`${res.verifierKey}\n`);
    return 0;
  },
};
