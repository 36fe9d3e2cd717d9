/**
 * gRPC ApprovalService (public port; docs/policy.md §Approvals): protobuf ↔ the Approvals
 * domain object. WatchApproval streams a request until it is decided or expires; each stream
 * holds a slot of the shared watch budget (per peer and overall) until it closes.
 */
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  ApproveResponseSchema,
  ApprovalSchema,
  BeginApprovalResponseSchema,
  BeginPasskeyRegistrationResponseSchema,
  DenyResponseSchema,
  EscalateResponseSchema,
  FinishPasskeyRegistrationResponseSchema,
  GetApprovalResponseSchema,
  ListApprovalsResponseSchema,
  WatchApprovalResponseSchema,
  type Approval,
  type ApproveRequest,
  type BeginApprovalRequest,
  type BeginPasskeyRegistrationRequest,
  type DenyRequest,
  type EscalateRequest,
  type FinishPasskeyRegistrationRequest,
  type GetApprovalRequest,
  type ListApprovalsRequest,
  type WatchApprovalRequest,
  type WatchApprovalResponse,
} from '../../gen/writ/v1/approval_pb.js';
import { ApprovalError } from '../../errors.js';
import type { ApprovalCaller, Approvals, ApprovalView } from '../../issuance/approvals.js';
import { getApprovalMethod, watchApprovalMethod } from '../../writ/proof-methods.js';
import { toGrpcFailure } from '../status.js';
import { unary } from '../unary.js';
import { peerHost, type RateLimiter } from '../rate-limit.js';
import type { WatchStreams } from '../watch-streams.js';

/** How often a watched request is read again when no change wakes it (another replica's feed lost, or expiry). */
export const WATCH_POLL_MS = 1_000;

export function toApprovalPb(v: ApprovalView, withGrant: boolean): Approval {
  const r = v.record;
  return create(ApprovalSchema, {
    id: r.id,
    taskId: r.taskId,
    taskGoal: v.taskGoal,
    principalIss: r.principalIss,
    principalSub: r.principalSub,
    actor: r.actor,
    delegationPath: [...v.delegationPath],
    lineage: [...r.lineage],
    permission: { action: r.action, resource: r.resource },
    reason: r.reason,
    policies: [...r.policies],
    policySnapshot: r.snapshot,
    createdAt: BigInt(r.createdAt),
    expiresAt: BigInt(r.expiresAt),
    state: v.state,
    decidedBy: r.decidedBy ?? '',
    decidedAt: BigInt(r.decidedAt ?? 0),
    decisionReason: r.decisionReason ?? '',
    stepUpGrant: withGrant ? (r.stepUp ?? '') : '',
    request: r.request,
    challenge: v.challenge,
  });
}

/** A ListApprovals request's filter and page (the deprecated `limit` when `page_size` is 0). */
export function listFilter(req: ListApprovalsRequest) {
  return { state: req.state, taskId: req.taskId, principal: req.principal, pageSize: req.pageSize || req.limit, pageToken: req.pageToken };
}

type Cred = GetApprovalRequest['credential'] | WatchApprovalRequest['credential'];

function callerOf(c: Cred, method: string): ApprovalCaller {
  if (c.case === 'agent') return { kind: 'agent', writ: c.value.writ, proof: c.value.proof, method };
  if (c.case === 'approverToken') return { kind: 'approver', token: c.value };
  throw new ApprovalError('ERR_APPROVAL_INVALID', 'approval: an agent credential (writ and proof) or an approver token is required');
}

export function approvalService(deps: {
  approvals: Approvals;
  logger: Logger;
  limiter?: RateLimiter;
  watchStreams: WatchStreams;
}): grpc.UntypedServiceImplementation {
  const { approvals, logger, limiter } = deps;
  const retry = (v: ApprovalView) => (v.state === 'pending' ? approvals.retryAfterSeconds : 0);
  return {
    escalate: unary(
      logger,
      'Escalate',
      async (req: EscalateRequest) => {
        const v = await approvals.escalate({
          writ: req.credential?.writ ?? '',
          proof: req.credential?.proof ?? '',
          action: req.action,
          resource: req.resource,
          reason: req.reason,
        });
        logger.info(
          { approval: v.record.id, task: v.record.taskId, actor: v.record.actor, action: v.record.action, resource: v.record.resource },
          'escalation requested',
        );
        return create(EscalateResponseSchema, { approval: toApprovalPb(v, false), retryAfterSeconds: retry(v) });
      },
      limiter,
    ),
    getApproval: unary(
      logger,
      'GetApproval',
      async (req: GetApprovalRequest) => {
        const v = await approvals.get(req.id, callerOf(req.credential, getApprovalMethod(req.id)));
        return create(GetApprovalResponseSchema, { approval: toApprovalPb(v, true), retryAfterSeconds: retry(v) });
      },
      limiter,
    ),
    listApprovals: unary(
      logger,
      'ListApprovals',
      async (req: ListApprovalsRequest) => {
        const page = await approvals.list(req.approverToken, listFilter(req));
        return create(ListApprovalsResponseSchema, { approvals: page.approvals.map((v) => toApprovalPb(v, true)), nextPageToken: page.nextPageToken });
      },
      limiter,
    ),
    deny: unary(
      logger,
      'Deny',
      async (req: DenyRequest) => {
        const v = await approvals.deny(req.id, req.approverToken, req.reason);
        logger.info({ approval: v.record.id, by: v.record.decidedBy }, 'escalation denied');
        return create(DenyResponseSchema, { approval: toApprovalPb(v, false) });
      },
      limiter,
    ),
    beginPasskeyRegistration: unary(
      logger,
      'BeginPasskeyRegistration',
      async (req: BeginPasskeyRegistrationRequest) => {
        const b = await approvals.beginRegistration(req.approverToken);
        return create(BeginPasskeyRegistrationResponseSchema, {
          optionsJson: b.options,
          authorizationOptionsJson: b.authorization?.options ?? '',
          registrationStatement: b.authorization?.statement ?? '',
        });
      },
      limiter,
    ),
    finishPasskeyRegistration: unary(
      logger,
      'FinishPasskeyRegistration',
      async (req: FinishPasskeyRegistrationRequest) => {
        const id = await approvals.finishRegistration(req.approverToken, req.responseJson, req.authorizationJson);
        logger.info({ credential: id }, 'passkey registered');
        return create(FinishPasskeyRegistrationResponseSchema, { credentialId: id });
      },
      limiter,
    ),
    beginApproval: unary(
      logger,
      'BeginApproval',
      async (req: BeginApprovalRequest) => {
        const { options, request, view } = await approvals.beginApproval(req.id, req.approverToken);
        return create(BeginApprovalResponseSchema, { optionsJson: options, approval: toApprovalPb(view, false), approvalRequest: request });
      },
      limiter,
    ),
    approve: unary(
      logger,
      'Approve',
      async (req: ApproveRequest) => {
        const v = await approvals.approve(req.id, req.approverToken, req.assertionJson);
        logger.info({ approval: v.record.id, by: v.record.decidedBy, credential: v.record.credentialId }, 'escalation approved');
        return create(ApproveResponseSchema, { approval: toApprovalPb(v, true) });
      },
      limiter,
    ),
    watchApproval(call: grpc.ServerWritableStream<WatchApprovalRequest, WatchApprovalResponse>) {
      const slot = deps.watchStreams.acquire(peerHost(call.getPeer()));
      if ('refused' in slot) {
        call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `approval: ${slot.refused}` });
        return;
      }
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      let unsubscribe: (() => void) | undefined;
      let last = '';
      const finish = (e?: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        unsubscribe?.();
        slot.release();
        if (e) {
          const f = toGrpcFailure(e);
          logger.warn({ rpc: 'WatchApproval', code: f.writCode, reason: f.internal, requestId: f.requestId }, 'call failed');
          const metadata = new grpc.Metadata();
          metadata.set('writ-error-code', f.writCode);
          call.emit('error', { code: f.code, details: f.details, metadata });
        } else call.end();
      };
      call.on('cancelled', () => finish());
      call.on('close', () => {
        if (!done) finish();
      });
      const id = call.request.id;
      const caller = callerOf(call.request.credential, watchApprovalMethod(id));
      // The credential is checked once, at the start; later reads are by id for that caller.
      let reading = false;
      let again = false;
      const read = async (first: boolean): Promise<void> => {
        if (done) return;
        if (reading) {
          again = true;
          return;
        }
        reading = true;
        try {
          const v = first ? await approvals.get(id, caller) : await approvals.refresh(id);
          const key = `${v.state}`;
          if (key !== last) {
            last = key;
            call.write(create(WatchApprovalResponseSchema, { approval: toApprovalPb(v, true) }));
          }
          if (v.state !== 'pending') return finish();
          clearTimeout(timer);
          timer = setTimeout(() => void read(false), WATCH_POLL_MS);
        } catch (e) {
          return finish(e);
        } finally {
          reading = false;
        }
        if (again) {
          again = false;
          void read(false);
        }
      };
      unsubscribe = approvals.onChange(() => void read(false));
      void read(true);
    },
  };
}
