/** Shared pieces of `writ escalate` and `writ approval …`: options, the approver token, output. */
import { readInputFile } from '../../../config/files.js';
import type { Approval } from '../../../gen/writ/v1/approval_pb.js';
import { oneLine } from '../task/format.js';
import { required } from '../../verb.js';
import type { OptionValues } from '../../../config/options.js';

export const ISSUER_OPTIONS = {
  server: { type: 'string', value: 'HOST:PORT[,HOST:PORT...]', help: "the issuer's public port; replicas separated by commas, tried in order" },
  bundle: { type: 'string', value: 'FILE', help: "the issuer's trust bundle, PEM" },
} as const;

export const TOKEN_OPTION = {
  'token-file': { type: 'string', value: 'F', help: "a file holding the approver's ID token (or JWT)" },
} as const;

export const approverToken = (values: OptionValues): string => readInputFile(required(values, 'token-file'), '--token-file').toString('utf8').trim();

const iso = (s: bigint): string => (s ? new Date(Number(s) * 1000).toISOString() : '-');

/** One line per approval; every string from the request is shown escaped (controls, bidi). */
export function approvalLine(a: Approval): string {
  return `${a.id}  ${a.state}  task ${oneLine(a.taskId)}  ${oneLine(a.permission?.action ?? '')} on ${oneLine(a.permission?.resource ?? '')}  ${JSON.stringify(oneLine(a.reason))}\n`;
}

export function approvalText(a: Approval): string {
  const lines = [
    `approval ${a.id}: ${a.state}`,
    `  task       ${oneLine(a.taskId)} ${JSON.stringify(oneLine(a.taskGoal))}`,
    `  principal  ${oneLine(a.principalIss)}#${oneLine(a.principalSub)}`,
    `  actor      ${oneLine(a.actor)}`,
    `  wants      ${oneLine(a.permission?.action ?? '')} on ${oneLine(a.permission?.resource ?? '')}`,
    `  reason     ${oneLine(a.reason)}`,
    `  policies   ${a.policies.map(oneLine).join(', ')}`,
    `  created    ${iso(a.createdAt)}, expires ${iso(a.expiresAt)}`,
  ];
  if (a.decidedBy) lines.push(`  decided    ${iso(a.decidedAt)} by ${oneLine(a.decidedBy)}${a.decisionReason ? `: ${oneLine(a.decisionReason)}` : ''}`);
  return `${lines.join('\n')}\n`;
}

export function approvalJson(a: Approval): Record<string, unknown> {
  return {
    id: a.id,
    state: a.state,
    taskId: a.taskId,
    taskGoal: a.taskGoal,
    principal: `${a.principalIss}#${a.principalSub}`,
    actor: a.actor,
    delegationPath: a.delegationPath,
    action: a.permission?.action,
    resource: a.permission?.resource,
    reason: a.reason,
    policies: a.policies,
    policySnapshot: a.policySnapshot,
    createdAt: Number(a.createdAt),
    expiresAt: Number(a.expiresAt),
    ...(a.decidedBy ? { decidedBy: a.decidedBy, decidedAt: Number(a.decidedAt), decisionReason: a.decisionReason } : {}),
    ...(a.stepUpGrant ? { stepUpGrant: a.stepUpGrant } : {}),
  };
}
