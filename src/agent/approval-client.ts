/**
 * The agent's side of escalation over the issuer's public port (TLS checked against the bundle
 * and the issuer's SPIFFE ID): Escalate with the writ and a proof bound to the permission, then
 * wait for the decision on WatchApproval (polling GetApproval every retry_after_seconds if the
 * stream breaks). Approvers' calls (List, Deny, passkeys) go through `approvalClient`.
 */
import type * as grpc from '@grpc/grpc-js';
import type { KeyObject } from 'node:crypto';
import { keySigner, type JwsSigner } from '../jose/jws.js';
import { create } from '@bufbuild/protobuf';
import { ApprovalService, WatchApprovalRequestSchema, type Approval, type WatchApprovalResponse } from '../gen/writ/v1/approval_pb.js';
import { grpcClientConstructor, unaryCall, unaryClient, type UnaryClient } from '../rpc/grpc-adapter.js';
import { createProofWith } from '../writ/proof.js';
import { escalateMethod, getApprovalMethod, watchApprovalMethod } from '../writ/proof-methods.js';
import { issuerCallError, issuerChannelCredentials } from './attest-client.js';

const CHANNEL = { 'grpc.ssl_target_name_override': 'writ-issuer' };

/** A typed unary client of ApprovalService (one fresh channel per call, 15 s deadline). */
export function approvalClient(server: string, bundlePem: string): UnaryClient<typeof ApprovalService.method> {
  return unaryClient(ApprovalService, async (m, req) => {
    try {
      return await unaryCall(server, issuerChannelCredentials(bundlePem), ApprovalService, m.localName, req, {
        deadline: new Date(Date.now() + 15_000),
        channelOptions: CHANNEL,
      });
    } catch (e) {
      const err = e as grpc.ServiceError;
      throw typeof err.code === 'number' ? issuerCallError(server, err) : e;
    }
  });
}

export interface AgentAuth {
  readonly writ: string;
  /** The writ's key, here or behind a signer (a TPM). */
  readonly key: KeyObject | JwsSigner;
  /** The issuer's trust domain ID, the proof's audience. */
  readonly audience: string;
}

const proofFor = async (a: AgentAuth, method: string) => ({
  writ: a.writ,
  proof: await createProofWith(a.writ, 'sign' in a.key ? a.key : keySigner(a.key), { audience: a.audience, method, now: new Date() }),
});

/** Escalate: a pending approval request (or the refusal, as a GrpcCallError). */
export async function escalate(server: string, bundlePem: string, a: AgentAuth, req: { action: string; resource: string; reason: string }) {
  return approvalClient(server, bundlePem).escalate({ credential: await proofFor(a, escalateMethod(req.action, req.resource)), ...req });
}

/** GetApproval as the requesting agent. */
export async function getApproval(server: string, bundlePem: string, a: AgentAuth, id: string) {
  return approvalClient(server, bundlePem).getApproval({ id, credential: { case: 'agent', value: await proofFor(a, getApprovalMethod(id)) } });
}

/** Streams WatchApproval until the request is decided or expires; resolves with its last state. */
export async function watchApproval(
  server: string,
  bundlePem: string,
  a: AgentAuth,
  id: string,
  o: { timeoutMs?: number; onUpdate?: (x: Approval) => void; signal?: AbortSignal } = {},
): Promise<Approval> {
  const req = create(WatchApprovalRequestSchema, { id, credential: { case: 'agent', value: await proofFor(a, watchApprovalMethod(id)) } });
  const Client = grpcClientConstructor(ApprovalService);
  const client = new Client(server, issuerChannelCredentials(bundlePem), CHANNEL);
  return new Promise<Approval>((resolve, reject) => {
    let last: Approval | undefined;
    const deadline = o.timeoutMs ? new Date(Date.now() + o.timeoutMs) : undefined;
    const call = (
      client as unknown as Record<string, (r: unknown, opts: grpc.CallOptions) => grpc.ClientReadableStream<WatchApprovalResponse>>
    ).watchApproval!.call(client, req, deadline ? { deadline } : {});
    // Aborted (Ctrl-C): the stream is cancelled and the channel closed, so nothing keeps the process alive.
    const abort = () => {
      call.cancel();
      client.close();
      reject(o.signal?.reason ?? new Error(`approval ${id}: stopped waiting`));
    };
    if (o.signal?.aborted) abort();
    o.signal?.addEventListener('abort', abort, { once: true });
    call.on('close', () => o.signal?.removeEventListener('abort', abort));
    call.on('data', (m: WatchApprovalResponse) => {
      if (!m.approval) return;
      last = m.approval;
      o.onUpdate?.(m.approval);
    });
    call.on('error', (e: grpc.ServiceError) => {
      client.close();
      reject(issuerCallError(server, e));
    });
    call.on('end', () => {
      client.close();
      if (last && last.state !== 'pending') resolve(last);
      else reject(new Error(`approval ${id}: the watch ended while still pending`));
    });
  });
}
