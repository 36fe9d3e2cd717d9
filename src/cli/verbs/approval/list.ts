/** `writ approval list`: the escalation requests this approver may decide, every page followed. */
import { stringOption } from '../../../config/options.js';
import { serverAddresses, withFailover } from '../../../agent/failover.js';
import { approvalClient } from '../../../agent/approval-client.js';
import type { Approval } from '../../../gen/writ/v1/approval_pb.js';
import { readPemBundle } from '../../bundle-file.js';
import { required, type Verb } from '../../verb.js';
import { approvalJson, approvalLine, approverToken, ISSUER_OPTIONS, TOKEN_OPTION } from './common.js';

/** Most requests one listing prints (pages of 500 followed until then); past it, narrow with --task/--principal/--state. */
export const MAX_LISTED_APPROVALS = 10_000;
/** Most pages one listing follows (a page may be empty when the issuer's scan budget ran out). */
const MAX_PAGES = 200;

export const approvalListVerb: Verb = {
  name: ['approval', 'list'],
  summary: 'list the escalation requests the approver (--token-file) may decide',
  required: ['server', 'bundle', 'token-file'],
  options: {
    ...ISSUER_OPTIONS,
    ...TOKEN_OPTION,
    task: { type: 'string', value: 'ID', help: 'only this task' },
    principal: { type: 'string', value: 'ISS#SUB', help: 'only requests on behalf of this principal' },
    state: { type: 'string', value: 'S', help: 'pending (default), approved, denied, expired or all' },
    json: { type: 'boolean', help: 'print JSON' },
  },
  async run({ values, io }) {
    const servers = serverAddresses([required(values, 'server')]);
    const bundlePem = readPemBundle(required(values, 'bundle'));
    const base = {
      approverToken: approverToken(values),
      taskId: stringOption(values, 'task') ?? '',
      principal: stringOption(values, 'principal') ?? '',
      state: stringOption(values, 'state') ?? '',
      pageSize: 500,
    };
    const all: Approval[] = [];
    let pageToken = '';
    let truncated = false;
    for (let pages = 0; ; pages++) {
      if (pages >= MAX_PAGES || all.length >= MAX_LISTED_APPROVALS) {
        truncated = true;
        break;
      }
      const res = await withFailover(servers, (s) => approvalClient(s, bundlePem).listApprovals({ ...base, pageToken }));
      all.push(...res.approvals);
      pageToken = res.nextPageToken;
      if (!pageToken) break;
    }
    const shown = all.slice(0, MAX_LISTED_APPROVALS);
    if (values.json) io.out(`${JSON.stringify(shown.map(approvalJson))}\n`);
    else if (shown.length === 0) io.out('no approvals\n');
    else io.out(shown.map(approvalLine).join(''));
    if (truncated) io.err(`writ: approval list: stopped after ${shown.length} requests; narrow it with --task, --principal or --state\n`);
    return 0;
  },
};
