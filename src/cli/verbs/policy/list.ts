/** `writ policy list`. */
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';

export const policyListVerb: Verb = {
  name: ['policy', 'list'],
  summary: 'list policy snapshots, newest first',
  options: { json: { type: 'boolean', help: 'print JSON' }, ...ADMIN_OPTIONS },
  async run({ values, env, io }) {
    const r = await adminClients(adminSocketPath(values, env)).admin.listPolicies({});
    if (values.json)
      io.out(`${JSON.stringify(r.snapshots.map((s) => ({ digest: s.digest, createdAt: Number(s.createdAt), policies: s.policies, active: s.active })))}\n`);
    else
      for (const s of r.snapshots)
        io.out(`${s.digest}  ${new Date(Number(s.createdAt) * 1000).toISOString()}  ${s.policies} policies${s.active ? '  active' : ''}\n`);
    return 0;
  },
};
