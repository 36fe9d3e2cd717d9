/** `writ policy decisions`: recent decisions, actor apart from principal. */
import { stringOption, UsageError } from '../../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';

export const policyDecisionsVerb: Verb = {
  name: ['policy', 'decisions'],
  summary: 'list recent policy decisions with actor, principal, snapshot and determining policies',
  options: {
    limit: { type: 'string', value: 'N', help: 'how many (default 50, at most 1000)' },
    json: { type: 'boolean', help: 'one JSON object per line' },
    ...ADMIN_OPTIONS,
  },
  async run({ values, env, io }) {
    const limit = Number(stringOption(values, 'limit') ?? 50);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
    const r = await adminClients(adminSocketPath(values, env)).admin.listDecisions({ limit });
    for (const d of r.decisions) {
      const line = {
        at: new Date(Number(d.at)).toISOString(),
        actor: d.actor,
        principal: d.principal,
        action: d.action,
        decision: d.decision,
        snapshot: d.snapshot,
        policies: d.policies,
        reason: d.reason,
      };
      io.out(
        values.json
          ? `${JSON.stringify(line)}\n`
          : `${line.at} ${d.decision.padEnd(8)} ${d.actor} for ${d.principal}: ${d.action} (${d.policies.join(', ') || '-'}) ${d.reason}\n`,
      );
    }
    return 0;
  },
};
