/** `writ policy show [DIGEST]`: a snapshot (the active one by default). */
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';

export const policyShowVerb: Verb = {
  name: ['policy', 'show'],
  summary: 'show a policy snapshot (the active one by default)',
  positionals: '[DIGEST]',
  maxPositionals: 1,
  options: { json: { type: 'boolean', help: 'print JSON' }, ...ADMIN_OPTIONS },
  async run({ values, positionals, env, io }) {
    const r = await adminClients(adminSocketPath(values, env)).admin.getPolicy({ digest: positionals[0] ?? '' });
    if (values.json) {
      const policies = r.policies.map((p) => ({ id: p.id, effect: p.effect, escalate: p.escalate || undefined, text: p.text }));
      io.out(`${JSON.stringify({ digest: r.digest, createdAt: Number(r.createdAt), active: r.active, policies }, null, 2)}\n`);
    } else {
      io.out(`# snapshot ${r.digest}${r.active ? ' (active)' : ''}, created ${new Date(Number(r.createdAt) * 1000).toISOString()}\n`);
      for (const p of r.policies) io.out(`\n// ${p.id}\n${p.text}\n`);
    }
    return 0;
  },
};
