/** `writ approval show ID`: one escalation request, as an approver sees it. */
import { UsageError } from '../../../config/options.js';
import { serverAddresses, withFailover } from '../../../agent/failover.js';
import { approvalClient } from '../../../agent/approval-client.js';
import { readPemBundle } from '../../bundle-file.js';
import { required, type Verb } from '../../verb.js';
import { approvalJson, approvalText, approverToken, ISSUER_OPTIONS, TOKEN_OPTION } from './common.js';

export const approvalShowVerb: Verb = {
  name: ['approval', 'show'],
  summary: 'show one escalation request: task, principal, agent, permission, reason, policies and decision',
  positionals: 'ID',
  maxPositionals: 1,
  required: ['server', 'bundle', 'token-file'],
  options: { ...ISSUER_OPTIONS, ...TOKEN_OPTION, json: { type: 'boolean', help: 'print JSON' } },
  async run({ values, positionals, io }) {
    const id = positionals[0];
    if (!id) throw new UsageError('the approval ID is required');
    const servers = serverAddresses([required(values, 'server')]);
    const bundlePem = readPemBundle(required(values, 'bundle'));
    const token = approverToken(values);
    const res = await withFailover(servers, (s) => approvalClient(s, bundlePem).getApproval({ id, credential: { case: 'approverToken', value: token } }));
    if (!res.approval) throw new Error(`approval ${id}: the issuer returned no approval`);
    io.out(values.json ? `${JSON.stringify(approvalJson(res.approval))}\n` : approvalText(res.approval));
    return 0;
  },
};
