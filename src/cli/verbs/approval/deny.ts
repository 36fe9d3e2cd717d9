/** `writ approval deny ID --reason TEXT`: refuse an escalation request, as its approver. */
import { UsageError } from '../../../config/options.js';
import { serverAddresses, withFailover } from '../../../agent/failover.js';
import { approvalClient } from '../../../agent/approval-client.js';
import { readPemBundle } from '../../bundle-file.js';
import { oneLine } from '../task/format.js';
import { required, type Verb } from '../../verb.js';
import { approverToken, ISSUER_OPTIONS, TOKEN_OPTION } from './common.js';

export const approvalDenyVerb: Verb = {
  name: ['approval', 'deny'],
  summary: 'deny an escalation request; the agent sees the reason',
  positionals: 'ID',
  maxPositionals: 1,
  required: ['server', 'bundle', 'token-file', 'reason'],
  options: { ...ISSUER_OPTIONS, ...TOKEN_OPTION, reason: { type: 'string', value: 'TEXT', help: 'why, shown to the agent' } },
  async run({ values, positionals, io }) {
    const id = positionals[0];
    if (!id) throw new UsageError('the approval ID is required');
    const reason = required(values, 'reason');
    const servers = serverAddresses([required(values, 'server')]);
    const bundlePem = readPemBundle(required(values, 'bundle'));
    const token = approverToken(values);
    await withFailover(servers, (s) => approvalClient(s, bundlePem).deny({ id, approverToken: token, reason }));
    io.out(`denied ${id}: ${oneLine(reason)}\n`);
    return 0;
  },
};
