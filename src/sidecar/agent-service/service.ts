/**
 * writ's own service on the sidecar's Unix socket (`writ.agent.v1.AgentService`,
 * proto/writ/agent/v1/agent.proto): the agent reads its writ, has the sidecar sign proofs of
 * possession and delegate to child keys, and asks how the sidecar stands. A view of
 * `SidecarState` only: it never renews, attests or watches revocations (sidecar/daemon.ts and
 * sidecar/revocation-guard.ts do), and it signs with the identity's signer, so the agent process
 * never holds the key.
 *
 * Every request must carry the SPIFFE security header `workload.spiffe.io: true`, as on the
 * Workload API (sidecar/security-header.ts); without it: INVALID_ARGUMENT, before anything else.
 * Every request is UNTRUSTED input (from whoever can open the socket) and is checked field by
 * field before anything is signed. Every refusal fails closed: a sidecar that is pending,
 * expired or revoked signs nothing; one whose revocation view is stale delegates nothing.
 */
import { create, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { delegateFromWrit, proveWrit } from '../../agent/delegate.js';
import { parseGrant } from '../../delegation/grant.js';
import { parsePermissions, type Permission } from '../../delegation/scope.js';
import { DelegationError, LimitError, RevocationError, SidecarError } from '../../errors.js';
import {
  AgentService,
  EscalateRequestSchema,
  CreateProofResponseSchema,
  DelegateResponseSchema,
  FetchWritResponseSchema,
  FetchX509SVIDResponseSchema,
  KeyResidency,
  State,
  StatusResponseSchema,
  file_writ_agent_v1_agent,
  type CreateProofRequest,
  type CreateProofResponse,
  type DelegateRequest,
  type DelegateResponse,
  type FetchWritRequest,
  type FetchWritResponse,
  type FetchX509SVIDRequest,
  type FetchX509SVIDResponse,
  type StatusRequest,
  type StatusResponse,
} from '../../gen/writ/agent/v1/agent_pb.js';
import { isJkt, jwkThumbprint } from '../../jose/jws.js';
import { DEFAULT_MAX_STALENESS_MS } from '../../revocation/watch-source.js';
import { DEFAULT_PROOF_LIFETIME_S, MAX_PROOF_LIFETIME_S } from '../../writ/proof.js';
import { parseWritCached } from '../../writ/writ.js';
import { parseCertificate } from '../../x509/certificate.js';
import { notServing } from '../workload-api/service.js';
import { SECURITY_HEADER_MISSING, securityHeaderMissing } from '../security-header.js';
import { latestWins, type SocketService, type SocketServiceContext } from '../socket-service.js';
import type { RevocationFreshness, SidecarIdentity, SidecarState, SidecarStatus } from '../state.js';
import { agentFailure } from './status.js';
import { escalate as escalateRemote, watchApproval } from '../../agent/approval-client.js';
import type { StepUpHolder } from '../step-ups.js';
import { EscalateResponseSchema, type EscalateRequest, type EscalateResponse } from '../../gen/writ/agent/v1/agent_pb.js';

/**
 * Largest AgentService request, bytes (re-encoded). The biggest legitimate one is a Delegate
 * with a few dozen permissions; the socket server's transport limit should not be above this
 * much by more than the Workload API needs.
 */
export const MAX_AGENT_REQUEST_BYTES = 64 * 1024;
/** Longest audience and method a proof may be asked for, bytes. */
export const MAX_PROOF_FIELD_BYTES = 512;
/** Longest a Node timer can wait (~24.8 days); atDeadline waits again for a later deadline. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `fire` when `deadline` (ms, on the clock `now`) comes, on an unref'd timer. A deadline
 * further than one timer can wait (an SVID may live as long as its CA) is waited for in steps:
 * each full step reads the clock again and waits for what is left. `cancel` stops it.
 */
export function atDeadline(deadline: number, now: () => number, fire: () => void): { cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const wait = () => {
    const left = Math.max(0, deadline - now());
    const step = Math.min(left, MAX_TIMER_MS);
    timer = setTimeout(() => (step < left ? wait() : fire()), step);
    timer.unref?.();
  };
  wait();
  return { cancel: () => clearTimeout(timer) };
}
/** Most FetchWrit streams open at once on one sidecar: each holds a listener on the state. */
export const MAX_WRIT_STREAMS = 1024;
/** Most FetchX509SVID streams open at once on one sidecar (apart from FetchWrit's): each holds a listener on the state. */
export const MAX_SVID_STREAMS = 1024;

export interface AgentServiceOptions {
  /**
   * Delegate refuses (UNAVAILABLE, ERR_REVOCATION_UNAVAILABLE) when the issuer last confirmed the
   * sidecar's revocation view longer ago than this, or never: a sidecar that may have missed a
   * revocation does not mint new authority. FetchWrit and CreateProof keep serving the current,
   * unexpired writ through an outage (relying parties check revocation themselves). Default 15 s,
   * the watch source's own staleness limit.
   */
  readonly maxRevocationStalenessMs?: number;
  /** Most FetchWrit streams open at once (default MAX_WRIT_STREAMS). */
  readonly maxWritStreams?: number;
  /** Most FetchX509SVID streams open at once (default MAX_SVID_STREAMS). */
  readonly maxSvidStreams?: number;
  /** Where Escalate asks (the issuer) and keeps what approvers grant; absent: Escalate is refused. */
  readonly escalation?: { readonly server: string; readonly bundlePem: () => string; readonly stepUps: StepUpHolder };
}

const invalid = (msg: string): never => {
  throw new SidecarError('ERR_SIDECAR_REQUEST_INVALID', `sidecar(agent): ${msg}`);
};

/** First in every method: a request without `workload.spiffe.io: true` (a forging proxy, a browser) is refused before anything else. */
function requireSecurityHeader(metadata: grpc.Metadata): void {
  if (securityHeaderMissing(metadata)) invalid(SECURITY_HEADER_MISSING);
}

/** The identity being served now, or the refusal for the state the sidecar is in. */
function servingIdentity(s: SidecarStatus, now: number): SidecarIdentity {
  switch (s.state) {
    case 'serving':
      // The daemon flips the state at expiry; an identity past it is never used, whatever its timer did.
      if (s.identity.notAfter <= now) throw new SidecarError('ERR_SIDECAR_NOT_SERVING', 'sidecar(agent): the X.509-SVID has expired and has not been renewed');
      return s.identity;
    case 'pending':
      throw new SidecarError('ERR_SIDECAR_NOT_SERVING', `sidecar(agent): no identity yet${s.reason ? ` (${s.reason})` : ''}; retry`);
    case 'expired':
      throw new SidecarError('ERR_SIDECAR_NOT_SERVING', `sidecar(agent): the identity expired and has not been renewed (${s.reason})`);
    case 'revoked':
      throw new RevocationError('ERR_REVOKED', `sidecar(agent): this identity is revoked: ${s.reason}`);
  }
}

/** The identity's writ, unexpired (by what the daemon recorded and by the writ's own `exp`). */
function currentWrit(id: SidecarIdentity, now: number): string {
  if (id.writ === undefined) throw new SidecarError('ERR_SIDECAR_NO_WRIT', 'sidecar(agent): this sidecar was started without a grant chain and holds no writ');
  const exp = Math.min(id.writExpiresAt ?? Number.POSITIVE_INFINITY, parseWritCached(id.writ).claims.exp * 1000);
  if (exp <= now) throw new SidecarError('ERR_SIDECAR_NOT_SERVING', 'sidecar(agent): the writ has expired and has not been renewed');
  return id.writ;
}

function bounded<D extends DescMessage>(schema: D, req: MessageShape<D>): void {
  const n = toBinary(schema, req).length;
  if (n > MAX_AGENT_REQUEST_BYTES) invalid(`the request is ${n} bytes, more than the ${MAX_AGENT_REQUEST_BYTES} accepted`);
}

/** Printable ASCII; `spaces` allows inner spaces (an HTTP method and target). */
function proofField(v: string, what: string, spaces: boolean): string {
  const re = spaces ? /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/ : /^[\x21-\x7e]+$/;
  if (v.length === 0) invalid(`${what} is required`);
  if (v.length > MAX_PROOF_FIELD_BYTES) invalid(`${what} is longer than ${MAX_PROOF_FIELD_BYTES} bytes`);
  if (!re.test(v)) invalid(`${what} must be printable ASCII${spaces ? ' (inner spaces allowed)' : ' without spaces'}`);
  return v;
}

function permissions(list: readonly { action: string; resource: string }[], what: string): Permission[] {
  try {
    return parsePermissions(
      list.map((p) => ({ action: p.action, resource: p.resource })),
      what,
    );
  } catch (e) {
    return invalid((e as Error).message.replace(/^delegation: /, ''));
  }
}

function isStale(f: RevocationFreshness, now: number, maxMs: number): boolean {
  return f.confirmedAt === 0 || now - f.confirmedAt > maxMs;
}

const STATE: Record<SidecarStatus['state'], State> = {
  pending: State.PENDING,
  serving: State.SERVING,
  expired: State.EXPIRED,
  revoked: State.REVOKED,
};

interface OpenStream {
  end(status: { code: grpc.status; details: string; metadata?: grpc.Metadata }): void;
}

/** A refusal with its `writ-error-code` trailer. */
const withCode = (code: grpc.status, details: string, writCode: string) => {
  const metadata = new grpc.Metadata();
  metadata.set('writ-error-code', writCode);
  return { code, details, metadata };
};

/**
 * Why no X.509-SVID is served now, as the Workload API's FetchX509SVID says it (the same status
 * codes, so one client logic serves both streams): UNAVAILABLE before the first identity,
 * PERMISSION_DENIED once expired or revoked; undefined while serving an unexpired identity.
 */
function svidRefusal(s: SidecarStatus, now: number): ReturnType<typeof withCode> | undefined {
  const r = notServing(s, now);
  if (!r) return undefined;
  return withCode(r.code, `sidecar(agent): ${r.details}`, s.state === 'revoked' ? 'ERR_REVOKED' : 'ERR_SIDECAR_NOT_SERVING');
}

// One frozen message per identity: built (and its leaf parsed) once however many streams send it.
const svidMessages = new WeakMap<SidecarIdentity, FetchX509SVIDResponse>();
/** The SVID message for an identity: chain and bundle, never a key (whether or not the sidecar holds one). */
function svidMessage(id: SidecarIdentity): FetchX509SVIDResponse {
  let m = svidMessages.get(id);
  if (m) return m;
  const residency =
    id.privateKeyPkcs8 !== undefined
      ? KeyResidency.SIDECAR
      : id.svidChain.length > 0 && parseCertificate(id.svidChain[0]!).keyResidency === 'tpm'
        ? KeyResidency.TPM
        : KeyResidency.UNSPECIFIED;
  m = Object.freeze(
    create(FetchX509SVIDResponseSchema, {
      spiffeId: id.spiffeId,
      x509Svid: id.svidChain.map((c) => new Uint8Array(c)),
      bundle: id.bundle.x509Authorities.map((c) => new Uint8Array(c)),
      expiresAt: BigInt(id.notAfter),
      keyResidency: residency,
    }),
  );
  svidMessages.set(id, m);
  return m;
}

/** The AgentService as one of the sidecar's socket services. */
export function agentService(o: AgentServiceOptions = {}): SocketService {
  const maxStale = o.maxRevocationStalenessMs ?? DEFAULT_MAX_STALENESS_MS;
  const streams = new Set<OpenStream>();
  const maxStreams = o.maxWritStreams ?? MAX_WRIT_STREAMS;
  const svidStreams = new Set<OpenStream>();
  const maxSvidStreams = o.maxSvidStreams ?? MAX_SVID_STREAMS;

  const implementation = (ctx: SocketServiceContext): grpc.UntypedServiceImplementation => {
    const state: SidecarState = ctx.state;

    /** One unary handler: refusals become statuses with `writ-error-code`, logged once. */
    const unary =
      <Req, Res>(name: string, fn: (req: Req) => Promise<Res>) =>
      (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
        let run: Promise<Res>;
        try {
          requireSecurityHeader(call.metadata);
          run = fn(call.request);
        } catch (e) {
          run = Promise.reject(e);
        }
        run.then(
          (res) => cb(null, res),
          (e) => {
            const f = agentFailure(e);
            ctx.log(`agent-service: ${name} refused: ${f.writCode}: ${f.internal}`);
            cb({ code: f.code, details: f.details, metadata: f.metadata });
          },
        );
      };

    /** After an await: the state may have changed (revoked while a TPM signed); nothing signed before is handed out then. */
    const stillServing = (writ: string): void => {
      const id = servingIdentity(state.current(), ctx.now());
      if (id.writ !== writ) throw new SidecarError('ERR_SIDECAR_NOT_SERVING', 'sidecar(agent): the writ changed while signing; retry');
    };

    const fetchWrit = (call: grpc.ServerWritableStream<FetchWritRequest, FetchWritResponse>) => {
      const fail = (e: unknown) => {
        const f = agentFailure(e);
        ctx.log(`agent-service: FetchWrit ended: ${f.writCode}: ${f.internal}`);
        call.emit('error', { code: f.code, details: f.details, metadata: f.metadata });
      };
      let sent: string;
      try {
        requireSecurityHeader(call.metadata);
        if (streams.size >= maxStreams) throw new LimitError(`sidecar(agent): ${maxStreams} FetchWrit streams are open already`);
        sent = currentWrit(servingIdentity(state.current(), ctx.now()), ctx.now());
      } catch (e) {
        fail(e);
        return;
      }
      const message = (writ: string): FetchWritResponse => {
        const c = parseWritCached(writ).claims;
        return create(FetchWritResponseSchema, { writ, spiffeId: c.sub, expiresAt: BigInt(c.exp) * 1000n, taskId: c.task.id });
      };
      let over = false;
      let expiry: { cancel(): void } | undefined;
      const close = () => {
        over = true;
        expiry?.cancel();
        unsubscribe();
        streams.delete(entry);
      };
      const entry: OpenStream = {
        end: (st) => {
          if (over) return;
          close();
          call.emit('error', st);
        },
      };
      const finish = (e: unknown) => {
        if (over) return;
        close();
        fail(e);
      };
      // A writ that reaches its exp without a renewal ends the stream, as an expired identity does.
      const arm = (writ: string) => {
        expiry?.cancel();
        expiry = atDeadline(parseWritCached(writ).claims.exp * 1000, ctx.now, () =>
          finish(new SidecarError('ERR_SIDECAR_NOT_SERVING', 'sidecar(agent): the writ has expired and has not been renewed')),
        );
      };
      const unsubscribe = state.subscribe((s) => {
        if (over) return;
        try {
          const writ = currentWrit(servingIdentity(s, ctx.now()), ctx.now());
          if (writ === sent) return;
          sent = writ;
          arm(writ);
          call.write(message(writ));
        } catch (e) {
          finish(e);
        }
      });
      streams.add(entry);
      call.on('cancelled', () => {
        if (!over) close();
      });
      arm(sent);
      call.write(message(sent));
    };

    /**
     * FetchX509SVID: the current SVID at once, then one complete message per new identity (a
     * renewal is one), latest-wins while the client does not read (one message pending at most).
     * Ends as the Workload API's stream does (svidRefusal), also at the SVID's notAfter by its own
     * timer, whatever the daemon's did.
     */
    const fetchX509Svid = (call: grpc.ServerWritableStream<FetchX509SVIDRequest, FetchX509SVIDResponse>) => {
      const refuse = (st: ReturnType<typeof withCode>) => {
        ctx.log(`agent-service: FetchX509SVID ended: ${st.metadata.get('writ-error-code')[0]}: ${st.details}`);
        call.emit('error', st);
      };
      if (securityHeaderMissing(call.metadata))
        return refuse(withCode(grpc.status.INVALID_ARGUMENT, `sidecar(agent): ${SECURITY_HEADER_MISSING}`, 'ERR_SIDECAR_REQUEST_INVALID'));
      const first = svidRefusal(state.current(), ctx.now());
      if (first) return refuse(first);
      if (svidStreams.size >= maxSvidStreams)
        return refuse(
          withCode(grpc.status.RESOURCE_EXHAUSTED, `sidecar(agent): ${maxSvidStreams} FetchX509SVID streams are open already`, 'ERR_LIMIT_EXCEEDED'),
        );
      let over = false;
      let sent: SidecarIdentity | undefined;
      let expiry: { cancel(): void } | undefined;
      const close = () => {
        over = true;
        expiry?.cancel();
        unsubscribe();
        svidStreams.delete(entry);
      };
      const entry: OpenStream = {
        end: (st) => {
          if (over) return;
          close();
          call.emit('error', st);
        },
      };
      const finish = (st: ReturnType<typeof withCode>) => {
        if (over) return;
        close();
        refuse(st);
      };
      const send = latestWins(call, () => over);
      const onStatus = (s: SidecarStatus) => {
        if (over) return;
        const r = svidRefusal(s, ctx.now());
        if (r) return finish(r);
        if (s.state !== 'serving' || s.identity === sent) return;
        sent = s.identity;
        expiry?.cancel();
        expiry = atDeadline(sent.notAfter, ctx.now, () => finish(svidRefusal(state.current(), Number.POSITIVE_INFINITY)!));
        send(svidMessage(sent));
      };
      const unsubscribe = state.subscribe(onStatus);
      svidStreams.add(entry);
      call.on('cancelled', () => {
        if (!over) close();
      });
      onStatus(state.current());
    };

    const createProof = async (req: CreateProofRequest): Promise<CreateProofResponse> => {
      bounded(AgentService.method.createProof.input, req);
      const audience = proofField(req.audience, 'audience', false);
      const method = proofField(req.method, 'method', true);
      const lifetimeS = req.lifetimeSeconds === 0 ? DEFAULT_PROOF_LIFETIME_S : req.lifetimeSeconds;
      if (lifetimeS > MAX_PROOF_LIFETIME_S) invalid(`a proof lives at most ${MAX_PROOF_LIFETIME_S} seconds; ${lifetimeS} asked for`);
      const now = ctx.now();
      const id = servingIdentity(state.current(), now);
      const writ = currentWrit(id, now);
      const proof = await proveWrit(writ, id.signer, { audience, method, now: new Date(now), lifetimeS });
      stillServing(writ);
      return create(CreateProofResponseSchema, { proof, writ, expiresAt: BigInt(Math.floor(now / 1000) + lifetimeS) * 1000n });
    };

    const delegate = async (req: DelegateRequest): Promise<DelegateResponse> => {
      bounded(AgentService.method.delegate.input, req);
      if (!isJkt(req.childJkt)) invalid('child_jkt must be an RFC 7638 SHA-256 thumbprint (43 canonical base64url characters)');
      const scope = permissions(req.scope, 'scope');
      const boundaries = permissions(req.boundaries, 'boundaries');
      const escalate = permissions(req.escalate, 'escalate');
      const now = ctx.now();
      const id = servingIdentity(state.current(), now);
      const writ = currentWrit(id, now);
      const fresh = state.revocationFreshness();
      if (isStale(fresh, now, maxStale)) {
        throw new RevocationError(
          'ERR_REVOCATION_UNAVAILABLE',
          fresh.confirmedAt === 0
            ? 'sidecar(agent): the revocation view was never confirmed by the issuer; not delegating until it is'
            : `sidecar(agent): the issuer last confirmed the revocation view ${now - fresh.confirmedAt} ms ago, more than the ${maxStale} ms accepted for delegating (at sequence ${fresh.sequence})`,
        );
      }
      const claims = parseWritCached(writ).claims;
      const nowS = Math.floor(now / 1000);
      const parent = parseGrant(claims.grants[claims.grants.length - 1]!).claims;
      if (claims.task.exp <= nowS) throw new RevocationError('ERR_REVOKED', `sidecar(agent): the task ${claims.task.id} has ended`);
      // Said here in words; hopClaims (delegation/grant.ts) refuses the same again before signing.
      if (req.ttlSeconds > 0) {
        const exp = nowS + req.ttlSeconds;
        if (exp > claims.task.exp)
          throw new DelegationError(
            `sidecar(agent): a ttl of ${req.ttlSeconds} s would end after the task (${new Date(claims.task.exp * 1000).toISOString()})`,
          );
        if (exp > parent.exp)
          throw new DelegationError(
            `sidecar(agent): a ttl of ${req.ttlSeconds} s would end after the parent grant (${new Date(parent.exp * 1000).toISOString()})`,
          );
      }
      // A key already in the chain would make a cycle every verifier refuses.
      const held = [...claims.grants.map((g) => parseGrant(g).claims.dlg.jkt), jwkThumbprint(id.signer.publicKey)];
      if (held.includes(req.childJkt)) throw new DelegationError('sidecar(agent): the child key already holds a grant in this chain (a cycle)');
      const chain = await delegateFromWrit(writ, id.signer, {
        childJkt: req.childJkt,
        scope,
        boundaries,
        escalate,
        ...(req.ttlSeconds > 0 ? { ttlSeconds: req.ttlSeconds } : {}),
        now: new Date(now),
      });
      stillServing(writ);
      const hop = parseGrant(chain[chain.length - 1]!).claims;
      ctx.log(`agent-service: delegated grant ${hop.jti} to key ${hop.dlg.jkt} (depth ${hop.depth}, until ${new Date(hop.exp * 1000).toISOString()})`);
      return create(DelegateResponseSchema, { grants: chain, grantId: hop.jti, expiresAt: BigInt(hop.exp) * 1000n });
    };

    const status = async (_req: StatusRequest): Promise<StatusResponse> => {
      const now = ctx.now();
      const s = state.current();
      const f = state.revocationFreshness();
      const revocation = { sequence: BigInt(f.sequence), confirmedAt: BigInt(f.confirmedAt), connected: f.connected, stale: isStale(f, now, maxStale) };
      switch (s.state) {
        case 'serving': {
          const i = s.identity;
          // Past notAfter nothing is served, whatever the daemon's timer did: say so.
          if (i.notAfter <= now)
            return create(StatusResponseSchema, {
              state: State.EXPIRED,
              reason: 'the X.509-SVID has expired and has not been renewed',
              spiffeId: i.spiffeId,
              revocation,
            });
          return create(StatusResponseSchema, {
            state: State.SERVING,
            spiffeId: i.spiffeId,
            ...(i.task !== undefined ? { taskId: i.task } : {}),
            svidExpiresAt: BigInt(i.notAfter),
            writExpiresAt: BigInt(i.writExpiresAt ?? 0),
            obtainedAt: BigInt(i.obtainedAt),
            revocation,
          });
        }
        case 'revoked':
          return create(StatusResponseSchema, { state: STATE[s.state], reason: s.reason, revokedAt: BigInt(s.at), revocation });
        default:
          return create(StatusResponseSchema, { state: STATE[s.state], reason: s.reason ?? '', revocation });
      }
    };

    /**
     * Escalate: the issuer's Escalate with this writ (the sidecar signs the proof), then with
     * `wait` its WatchApproval until decided. An approval's step-up grant is kept and a renewal
     * started at once, so FetchWrit streams the writ that carries it.
     */
    const escalate = async (req: EscalateRequest): Promise<EscalateResponse> => {
      bounded(EscalateRequestSchema, req);
      const esc = o.escalation;
      if (!esc) throw new SidecarError('ERR_SIDECAR_NO_WRIT', 'sidecar(agent): this sidecar has no issuer to escalate to');
      const id = servingIdentity(state.current(), ctx.now());
      const writ = currentWrit(id, ctx.now());
      proofField(req.action, 'action', false);
      proofField(req.resource, 'resource', false);
      if (req.reason.trim() === '' || Buffer.byteLength(req.reason) > 1024) invalid('reason must be 1..1024 bytes');
      const auth = { writ, key: id.signer, audience: `spiffe://${id.bundle.trustDomain}` };
      const asked = await escalateRemote(esc.server, esc.bundlePem(), auth, { action: req.action, resource: req.resource, reason: req.reason });
      let a = asked.approval!;
      ctx.log(`agent-service: escalation ${a.id} for ${req.action} on ${req.resource}: ${a.state}`);
      if (req.wait && a.state === 'pending') a = await watchApproval(esc.server, esc.bundlePem(), auth, a.id);
      if (a.state === 'approved' && a.stepUpGrant) {
        esc.stepUps.add(a.stepUpGrant);
        state.renewNow?.();
      }
      return create(EscalateResponseSchema, {
        approvalId: a.id,
        state: a.state,
        decidedBy: a.decidedBy,
        decisionReason: a.decisionReason,
        expiresAt: a.expiresAt,
      });
    };

    return {
      fetchWrit,
      fetchX509SVID: fetchX509Svid,
      escalate: unary('Escalate', escalate),
      createProof: unary('CreateProof', createProof),
      delegate: unary('Delegate', delegate),
      status: unary('Status', status),
    };
  };

  return {
    service: AgentService,
    file: file_writ_agent_v1_agent,
    implementation,
    closeStreams(st) {
      for (const s of [...streams, ...svidStreams]) {
        const metadata = new grpc.Metadata();
        if (st.code === grpc.status.PERMISSION_DENIED) metadata.set('writ-error-code', 'ERR_REVOKED');
        else if (st.code === grpc.status.UNAVAILABLE) metadata.set('writ-error-code', 'ERR_SIDECAR_NOT_SERVING');
        s.end({ ...st, metadata });
      }
    },
  };
}
