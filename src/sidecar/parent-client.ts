/**
 * Spawning a child agent (issue 12 §4): ask the parent's sidecar, over its Unix socket, to
 * delegate a narrower part of its writ to the child's key (`AgentService.Delegate`), and get the
 * whole grant chain the child presents when it attests. `writ agent run --parent-socket` calls
 * this; so may an agent framework that spawns sub-agents in-process (src/sidecar/README.md).
 *
 * What the parent returns is UNTRUSTED until checked: the chain is parsed and its links,
 * attenuation, depth and times checked here (delegation/chain.ts, without the issuer's keys), and
 * its last grant must be for the child's key. The issuer checks it all again, signatures
 * included, when the child attests.
 */
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { systemClock } from '../clock.js';
import { verifyChain } from '../delegation/chain.js';
import { parseGrant } from '../delegation/grant.js';
import type { Permission } from '../delegation/scope.js';
import { ERROR_CODES, SidecarError, WritError, type WritErrorCode } from '../errors.js';
import { AgentService, DelegateRequestSchema, type DelegateResponse } from '../gen/writ/agent/v1/agent_pb.js';
import { isJkt } from '../jose/jws.js';
import { grpcClientConstructor } from '../rpc/grpc-adapter.js';
import { securityHeaderInterceptor } from './security-header.js';

/** Largest answer accepted from a parent: nine grants of a few KiB each, with room. */
const MAX_PARENT_RESPONSE_BYTES = 1024 * 1024;
const DEFAULT_DEADLINE_MS = 10_000;
/** Backoff between attempts while the parent answers UNAVAILABLE. */
const RETRY_BASE_MS = 25;
const RETRY_MAX_MS = 1_000;

export interface ParentDelegateRequest {
  /** The parent sidecar's socket: a path, or `unix:///path` as SPIFFE_ENDPOINT_SOCKET names it. */
  readonly socket: string;
  /** RFC 7638 thumbprint of the child's public key. */
  readonly childJkt: string;
  /** The child's scope; empty or absent: the parent's. */
  readonly scope?: readonly Permission[];
  /** Added to the parent's boundaries. */
  readonly boundaries?: readonly Permission[];
  /** Added to the parent's escalation rules. */
  readonly escalate?: readonly Permission[];
  /** Lifetime of the child's grant; absent: as long as the parent's. */
  readonly ttlSeconds?: number;
  /** For the whole call, retries included (default 10 s). */
  readonly deadlineMs?: number;
  /** Unix ms, for checking the chain (default: now). */
  readonly now?: number;
}

export interface ParentDelegation {
  /** Root first; the last grant is the child's. */
  readonly grants: readonly string[];
  readonly grantId: string;
  /** Unix ms. */
  readonly expiresAt: number;
}

/** The socket address grpc-js dials. */
export function socketTarget(socket: string): string {
  if (socket.startsWith('unix:///')) return `unix:${socket.slice('unix://'.length)}`;
  if (socket.startsWith('unix:')) return socket;
  if (!socket.startsWith('/'))
    throw new SidecarError(
      'ERR_SIDECAR_REQUEST_INVALID',
      `sidecar(parent): the socket must be an absolute path or unix:///path, not ${JSON.stringify(socket.slice(0, 80))}`,
    );
  return `unix:${socket}`;
}

/** The parent's refusal as the WritError it named in `writ-error-code`. */
function refusal(e: grpc.ServiceError, socket: string): WritError {
  const code = e.metadata?.get('writ-error-code')[0];
  if (typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code)) {
    return new WritError(code as WritErrorCode, `sidecar(parent): the parent sidecar refused: ${e.details}`, { cause: e });
  }
  return new SidecarError(
    'ERR_SIDECAR_NOT_SERVING',
    `sidecar(parent): no answer from the parent sidecar at ${socket}: ${grpc.status[e.code] ?? e.code}: ${e.details}`,
    { cause: e },
  );
}

/** Asks the parent sidecar for a grant chain for `childJkt`; checks it before returning it. */
export async function delegateFromParent(r: ParentDelegateRequest): Promise<ParentDelegation> {
  if (!isJkt(r.childJkt))
    throw new SidecarError('ERR_SIDECAR_REQUEST_INVALID', 'sidecar(parent): childJkt must be an RFC 7638 thumbprint (43 canonical base64url characters)');
  const ttl = r.ttlSeconds ?? 0;
  if (!Number.isSafeInteger(ttl) || ttl < 0 || ttl > 0xffffffff)
    throw new SidecarError('ERR_SIDECAR_REQUEST_INVALID', 'sidecar(parent): ttlSeconds must be a whole number of seconds');
  const Client = grpcClientConstructor(AgentService);
  const client = new Client(socketTarget(r.socket), grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_PARENT_RESPONSE_BYTES,
    interceptors: [securityHeaderInterceptor],
  });
  const req = create(DelegateRequestSchema, {
    childJkt: r.childJkt,
    scope: [...(r.scope ?? [])],
    boundaries: [...(r.boundaries ?? [])],
    escalate: [...(r.escalate ?? [])],
    ttlSeconds: ttl,
  });
  const deadline = systemClock.now().getTime() + (r.deadlineMs ?? DEFAULT_DEADLINE_MS);
  const once = () =>
    new Promise<DelegateResponse>((resolve, reject) => {
      (client as unknown as { delegate: (q: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: DelegateResponse) => void) => void }).delegate(
        req,
        { deadline: new Date(deadline) },
        (e, v) => (e ? reject(e) : resolve(v)),
      );
    });
  let res: DelegateResponse;
  try {
    // UNAVAILABLE is the parent saying "not yet" (no identity yet, its revocation view not yet
    // confirmed) or its socket not there yet: retried with backoff until the deadline, as gRPC
    // clients do. Every other refusal is final.
    for (let attempt = 0; ; attempt++) {
      try {
        res = await once();
        break;
      } catch (e) {
        const se = e as grpc.ServiceError;
        const wait = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt);
        if (se.code !== grpc.status.UNAVAILABLE || systemClock.now().getTime() + wait >= deadline) throw refusal(se, r.socket);
        await new Promise((done) => setTimeout(done, wait));
      }
    }
  } finally {
    client.close();
  }
  const grants = [...res.grants];
  let issuer: string;
  try {
    issuer = parseGrant(grants[0] ?? '').claims.iss;
  } catch (e) {
    throw new SidecarError('ERR_SIDECAR_REQUEST_INVALID', `sidecar(parent): the parent sidecar returned no usable chain: ${(e as Error).message}`, {
      cause: e,
    });
  }
  // Links, attenuation, depth, times, cycles and the binding to the child's key; signatures are the issuer's to check.
  const chain = verifyChain({ grants, issuer, now: Math.floor((r.now ?? systemClock.now().getTime()) / 1000), leafJkt: r.childJkt });
  return { grants, grantId: chain.leaf.claims.jti, expiresAt: chain.leaf.claims.exp * 1000 };
}
