/**
 * `writ audit verify-log`: the operator's full check, run by the server over its store:
 * recompute the tree from every record, compare it with the stored nodes and the last signed
 * checkpoint, and name the first record that does not match. Exit 1 when the log does not verify.
 */
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';

export const auditVerifyLogVerb: Verb = {
  name: ['audit', 'verify-log'],
  summary: 'recompute the whole audit tree from the stored records and name the first record that does not match (exit 1)',
  options: { ...ADMIN_OPTIONS },
  async run({ values, env, io }) {
    const r = await adminClients(adminSocketPath(values, env), 600_000).audit.verifyLog({});
    if (r.ok) {
      io.out(`audit log verified: ${r.treeSize} records, root ${Buffer.from(r.root).toString('base64')}\n`);
      return 0;
    }
    io.err(`writ: audit log does not verify${r.hasSeq ? ` at record ${r.seq}` : ''}: ${r.problem}\n`);
    return 1;
  },
};
