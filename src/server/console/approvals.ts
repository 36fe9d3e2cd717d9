/**
 * writ.v1.ApprovalService for the web console, over Connect on the HTTPS listener: the approver's
 * calls (list, get, deny, passkey registration, begin/approve) through the same Approvals logic
 * the gRPC service uses (issuance/approvals.ts, which verifies the approver's OIDC token, the
 * Cedar `approve` policy and the WebAuthn assertion), with the token taken from the console
 * session (kept server-side) instead of the request. An `approver_token` in a request is
 * refused: the browser never holds one. Escalate and WatchApproval are the agents', on the gRPC
 * port only (Unimplemented here).
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import type { Logger } from 'pino';
import {
  type ApprovalService,
  ApproveResponseSchema,
  BeginApprovalResponseSchema,
  DenyResponseSchema,
  GetApprovalResponseSchema,
  ListApprovalsResponseSchema,
} from '../../gen/writ/v1/approval_pb.js';
import type { Approvals } from '../../issuance/approvals.js';
import { listFilter, toApprovalPb } from '../services/approval.js';
import { mapped } from './service.js';
import { kSession } from './service.js';

function tokenOf(ctx: HandlerContext, sent: string): string {
  const s = ctx.values.get(kSession);
  if (!s) throw new ConnectError('console: sign in first', Code.Unauthenticated);
  if (sent !== '') throw new ConnectError('console: the session is the approver; send no approver_token', Code.InvalidArgument);
  return s.idToken;
}

export function consoleApprovalService(deps: { approvals: Approvals; logger: Logger }): Partial<ServiceImpl<typeof ApprovalService>> {
  const { approvals, logger } = deps;
  const retry = (state: string) => (state === 'pending' ? approvals.retryAfterSeconds : 0);
  return {
    listApprovals: mapped(logger, 'ListApprovals', async (req, ctx) => {
      const page = await approvals.list(tokenOf(ctx, req.approverToken), listFilter(req));
      return create(ListApprovalsResponseSchema, { approvals: page.approvals.map((v) => toApprovalPb(v, false)), nextPageToken: page.nextPageToken });
    }),
    getApproval: mapped(logger, 'GetApproval', async (req, ctx) => {
      if (req.credential.case) throw new ConnectError('console: the session is the approver; send no credential', Code.InvalidArgument);
      const v = await approvals.get(req.id, { kind: 'approver', token: tokenOf(ctx, '') });
      return create(GetApprovalResponseSchema, { approval: toApprovalPb(v, false), retryAfterSeconds: retry(v.state) });
    }),
    deny: mapped(logger, 'Deny', async (req, ctx) => {
      const v = await approvals.deny(req.id, tokenOf(ctx, req.approverToken), req.reason);
      logger.info({ approval: v.record.id, by: v.record.decidedBy }, 'console: escalation denied');
      return create(DenyResponseSchema, { approval: toApprovalPb(v, false) });
    }),
    beginPasskeyRegistration: mapped(logger, 'BeginPasskeyRegistration', async (req, ctx) => {
      const b = await approvals.beginRegistration(tokenOf(ctx, req.approverToken));
      return { optionsJson: b.options, authorizationOptionsJson: b.authorization?.options ?? '', registrationStatement: b.authorization?.statement ?? '' };
    }),
    finishPasskeyRegistration: mapped(logger, 'FinishPasskeyRegistration', async (req, ctx) => {
      const id = await approvals.finishRegistration(tokenOf(ctx, req.approverToken), req.responseJson, req.authorizationJson);
      logger.info({ credential: id }, 'console: passkey registered');
      return { credentialId: id };
    }),
    beginApproval: mapped(logger, 'BeginApproval', async (req, ctx) => {
      const { options, view } = await approvals.beginApproval(req.id, tokenOf(ctx, req.approverToken));
      return create(BeginApprovalResponseSchema, { optionsJson: options, approval: toApprovalPb(view, false) });
    }),
    approve: mapped(logger, 'Approve', async (req, ctx) => {
      const v = await approvals.approve(req.id, tokenOf(ctx, req.approverToken), req.assertionJson);
      logger.info({ approval: v.record.id, by: v.record.decidedBy, credential: v.record.credentialId }, 'console: escalation approved');
      return create(ApproveResponseSchema, { approval: toApprovalPb(v, false) });
    }),
  };
}
