/** `writ approval list`: the escalation requests this approver may decide. */
import { stringOption } from '../../../config/options.js';
import { serverAddresses, withFailover } from '../../../agent/failover.js';
import { approvalClient } from '../../../agent/approval-client.js';
import { readPemBundle } from '../../bundle-file.js';
import { required, type Verb } from '../../verb.js';
import { approvalJson, approvalLine, approverToken, ISSUER_OPTIONS, TOKEN_OPTION } from './common.js';

export const approvalListVerb: Verb = {
  name: ['approval', 'list'],
  summary: 'list the escalation requests the approver (--token-file) may decide',
  required: ['server', 'bundle', 'token-file'],
  options: {
    ...ISSUER_OPTIONS,
    ...TOKEN_OPTION,
    task: { type: 'string', value: 'ID', help: 'only this task' },
    state: { type: 'string', value: 'S', help: 'pending, approved, denied or expired (default: all)' },
    json: { type: 'boolean', help: 'print JSON' },
  },
  async run({ values, io }) {
    const servers = serverAddresses([required(values, 'server')]);
    const bundlePem = readPemBundle(required(values, 'bundle'));
    const req = { approverToken: approverToken(values), taskId: stringOption(values, 'task') ?? '', state: stringOption(values, 'state') ?? '' };
    const res = await withFailover(servers, (s) => approvalClient(s, bundlePem).listApprovals(req));
    if (values.json) io.out(`${JSON.stringify(res.approvals.map(approvalJson))}\n`);
    else if (res.approvals.length === 0) io.out('no approvals\n');
    else io.out(res.approvals.map(approvalLine).join(''));
    return 0;
  },
};
