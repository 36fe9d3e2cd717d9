/**
 * `writ audit list`: audit records from the admin socket, newest first, filtered by task,
 * principal, actor and time (all at once): "everything alice's agents did under task triage-42,
 * and which policy allowed each step". Each record is parsed from its canonical bytes.
 */
import { parseRecord } from '../../../audit/record.js';
import { stringOption, UsageError } from '../../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';
import { oneLine } from '../task/format.js';
import { actorText } from './verify.js';

export const auditListVerb: Verb = {
  name: ['audit', 'list'],
  summary: 'list audit records, newest first: each with its actor and principal apart, decision and the policies that decided',
  options: {
    task: { type: 'string', value: 'ID', help: 'only records of this task' },
    principal: { type: 'string', value: 'ISS#SUB', help: 'only records on behalf of this principal' },
    actor: { type: 'string', value: 'SPIFFE_ID', help: 'only records whose actor is this agent (or ISS#SUB, or "operator admin")' },
    since: { type: 'string', value: 'INSTANT', help: 'only records at or after this ISO 8601 instant' },
    limit: { type: 'string', value: 'N', help: 'at most N records (1..1000, default 50)' },
    json: { type: 'boolean', help: 'print the records as JSON, one per line' },
    ...ADMIN_OPTIONS,
  },
  async run({ values, env, io }) {
    const since = stringOption(values, 'since');
    const sinceMs = since === undefined ? 0 : Date.parse(since);
    if (Number.isNaN(sinceMs) || sinceMs < 0) throw new UsageError('--since must be an ISO 8601 instant');
    const limitText = stringOption(values, 'limit') ?? '50';
    if (!/^[1-9][0-9]{0,3}$/.test(limitText) || Number(limitText) > 1000) throw new UsageError('--limit must be 1..1000');
    const res = await adminClients(adminSocketPath(values, env)).audit.listRecords({
      task: stringOption(values, 'task') ?? '',
      principal: stringOption(values, 'principal') ?? '',
      actor: stringOption(values, 'actor') ?? '',
      since: BigInt(sinceMs),
      limit: Number(limitText),
    });
    const records = res.records.map((b) => parseRecord(b));
    if (values.json) {
      io.out(records.map((r) => `${JSON.stringify(r)}\n`).join(''));
      return 0;
    }
    const rows = records.map((r) => [
      String(r.seq),
      new Date(r.at).toISOString(),
      r.event,
      actorText(r),
      r.principal ? `${r.principal.iss}#${r.principal.sub}` : '-',
      r.task ?? '-',
      r.decision ?? '-',
      r.policies.join(',') || '-',
    ]);
    const head = ['SEQ', 'AT', 'EVENT', 'ACTOR', 'PRINCIPAL', 'TASK', 'DECISION', 'POLICIES'];
    // Record strings may hold controls, line separators and bidi overrides: shown escaped.
    const cells = [head, ...rows].map((r) => r.map((c) => oneLine(c)));
    const w = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
    io.out(cells.map((r) => `${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ')}\n`).join(''));
    return 0;
  },
};
