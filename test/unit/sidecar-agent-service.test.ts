/**
 * writ.agent.v1.AgentService over a real Unix socket (grpc-js server and client), against a
 * SidecarState driven by hand (test/fakes/sidecar-state.ts) and writs from an in-memory issuer:
 * FetchWrit follows renewals and ends on revocation and expiry; CreateProof signs proofs a
 * verifier accepts; Delegate returns chains the issuer's rules accept and refuses every wider,
 * longer, malformed or unlive request with a clear status and `writ-error-code`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { verifyChain } from '../../src/delegation/chain.js';
import { parseGrant } from '../../src/delegation/grant.js';
import { ERROR_CODES, isWritError } from '../../src/errors.js';
import {
  AgentService,
  DelegateResponseSchema,
  FetchX509SVIDResponseSchema,
  KeyResidency,
  State,
  type CreateProofResponse,
  type StatusResponse,
} from '../../src/gen/writ/agent/v1/agent_pb.js';
import { keySigner, type JwsSigner } from '../../src/jose/jws.js';
import { grpcClientConstructor, grpcServiceDefinition } from '../../src/rpc/grpc-adapter.js';
import { STATUS_BY_CODE } from '../../src/server/status.js';
import { AGENT_STATUS_BY_CODE, agentFailure, ISSUER_REFUSALS_PASSED_ON } from '../../src/sidecar/agent-service/status.js';
import { GrpcCallError } from '../../src/agent/attest-client.js';
import { MAX_AGENT_REQUEST_BYTES, MAX_TIMER_MS, agentService, atDeadline } from '../../src/sidecar/agent-service/service.js';
import { delegateFromParent, socketTarget } from '../../src/sidecar/parent-client.js';
import { SECURITY_HEADER } from '../../src/sidecar/security-header.js';
import type { SidecarIdentity } from '../../src/sidecar/state.js';
import { ProofReplayCache } from '../../src/writ/proof.js';
import { parseWrit } from '../../src/writ/writ.js';
import { verifyWrit } from '../../src/writ/verify.js';
import { call, expectStatus, fetchWrit, fetchX509Svid, harness, type AgentClient, type Harness } from '../helpers/agent-socket.js';
import { generateKeyPairSync } from 'node:crypto';
import * as der from '../../src/der/der.js';
import * as t from '../../src/svid/template.js';
import { OID } from '../../src/x509/oids.js';
import { FakeIssuer, agent, hop, rawHop, type Agent } from '../helpers/writ-fixture.js';

const AUD = 'spiffe://example.org/tool/github';
const NOW_S = Math.floor(Date.now() / 1000);

interface World {
  readonly iss: FakeIssuer;
  readonly a: Agent;
  readonly root: string;
  readonly writ: string;
  identity(o?: Partial<SidecarIdentity>): SidecarIdentity;
}

function world(o: { maxDepth?: number; grantTtl?: number; taskTtl?: number } = {}): World {
  const iss = new FakeIssuer();
  const a = agent('planner');
  const taskExp = NOW_S + (o.taskTtl ?? 7200);
  const root = iss.rootGrant(a, {
    now: NOW_S - 60,
    ttl: (o.grantTtl ?? 3600) + 60,
    maxDepth: o.maxDepth ?? 3,
    override: { task: { id: 'task-1', goal: 'triage open issues', exp: taskExp } },
  });
  const writ = iss.writ(a, [root], { now: NOW_S - 10, ttl: 900 }).writ;
  const identity = (x: Partial<SidecarIdentity> = {}): SidecarIdentity => ({
    spiffeId: a.spiffeId,
    svidChain: [],
    signer: keySigner(a.key),
    bundle: { trustDomain: 'example.org', x509Authorities: [], jwks: '{"keys":[]}', pem: '' },
    notAfter: Date.now() + 3_600_000,
    writ,
    writExpiresAt: (NOW_S + 890) * 1000,
    task: 'task-1',
    obtainedAt: Date.now(),
    ...x,
  });
  return { iss, a, root, writ, identity };
}

const fresh = () => ({ sequence: 7, confirmedAt: Date.now(), connected: true });

/** A certificate for the SVID stream's tests (parsed, never verified there), with the key-residency extension when given. */
function leafDer(serial: number, residency?: string): Buffer {
  const spki = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
  const alg = der.seq(der.oid(OID.ecdsaSha256));
  const name = t.encodeName([{ oid: OID.commonName, value: 'svid' }]);
  const exts = [t.basicConstraints(false), ...(residency ? [t.extension(OID.writKeyResidency, false, der.utf8(residency))] : [])];
  const validity = der.seq(der.time(new Date(Date.UTC(2030, 0, 1))), der.time(new Date(Date.UTC(2031, 0, 1))));
  const tbs = der.seq(der.ctx(0, true, der.smallInt(2)), der.uint(Buffer.from([serial])), alg, name, validity, name, spki, der.ctx(3, true, der.seq(...exts)));
  return der.seq(tbs, alg, der.bitString(Buffer.alloc(64, 1)));
}

/** closeStreams with the shutdown status ends each of `streams` with it (UNAVAILABLE, ERR_SIDECAR_NOT_SERVING). */
async function expectShutdown(h: Harness, streams: ReadonlyArray<{ ended(): Promise<grpc.ServiceError> }>): Promise<void> {
  h.svc.closeStreams!({ code: grpc.status.UNAVAILABLE, details: 'sidecar: shutting down' });
  for (const s of streams) {
    const e = await s.ended();
    expect({ code: e.code, details: e.details, writCode: e.metadata.get('writ-error-code')[0] }).toEqual({
      code: grpc.status.UNAVAILABLE,
      details: 'sidecar: shutting down',
      writCode: 'ERR_SIDECAR_NOT_SERVING',
    });
  }
}

describe('AgentService over a Unix socket', () => {
  let h: Harness;
  let w: World;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(async () => {
    await h.stop();
  });
  afterEach(() => {
    h.now = Date.now();
    h.state.freshness = fresh();
  });
  const serve = (o: Partial<SidecarIdentity> = {}, wo?: Parameters<typeof world>[0]) => {
    w = world(wo);
    h.state.serve(w.identity(o));
    h.state.freshness = fresh();
  };

  describe('the SPIFFE security header', () => {
    // A client without the interceptor the harness adds: what a request-forging proxy sends.
    const bare = () => new (grpcClientConstructor(AgentService))(`unix:${h.socket}`, grpc.credentials.createInsecure()) as AgentClient;
    const headers = (v?: string[]) => {
      const m = new grpc.Metadata();
      for (const x of v ?? []) m.add(SECURITY_HEADER, x);
      return m;
    };
    const unaryWithout = (c: AgentClient, method: string, req: unknown, md: grpc.Metadata) =>
      new Promise((resolve, reject) => {
        const m = AgentService.methods.find((x) => x.localName === method)!;
        (c[method] as (r: unknown, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: unknown, v: unknown) => void) => void).call(
          c,
          create(m.input, req as never),
          md,
          { deadline: new Date(Date.now() + 10_000) },
          (e, v) => (e ? reject(e) : resolve(v)),
        );
      });
    const requests: Record<string, unknown> = {
      status: {},
      createProof: { audience: AUD, method: 'GET /' },
      delegate: { childJkt: agent('c').jkt },
      escalate: { action: 'read', resource: 'repo', reason: 'r' },
    };
    for (const md of [undefined, ['false'], ['true', 'true']]) {
      for (const method of Object.keys(requests)) {
        it(`${method} with the header ${md ? JSON.stringify(md) : 'absent'}: INVALID_ARGUMENT before anything else`, async () => {
          serve();
          const c = bare();
          try {
            await expectStatus(
              unaryWithout(c, method, requests[method], headers(md)),
              grpc.status.INVALID_ARGUMENT,
              'ERR_SIDECAR_REQUEST_INVALID',
              /security header missing from request/,
            );
          } finally {
            c.close();
          }
        });
      }
      it.each(['fetchWrit', 'fetchX509SVID'])(`%s with the header ${md ? JSON.stringify(md) : 'absent'}: INVALID_ARGUMENT, nothing sent`, async (method) => {
        serve({ svidChain: [leafDer(1)] });
        const c = bare();
        try {
          const got: unknown[] = [];
          const st = (c[method] as (r: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<unknown>).call(c, {}, headers(md));
          st.on('data', (m) => got.push(m));
          const e = await new Promise<grpc.ServiceError>((r) => st.on('error', r));
          expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
          expect(e.details).toMatch(/security header missing from request/);
          expect(e.metadata.get('writ-error-code')).toEqual(['ERR_SIDECAR_REQUEST_INVALID']);
          expect(got).toEqual([]);
        } finally {
          c.close();
        }
      });
    }
    it('with the header (the harness client), Status answers', async () => {
      serve();
      await expect(call<StatusResponse>(h, 'status', {})).resolves.toMatchObject({ state: State.SERVING });
    });
  });

  describe('Status', () => {
    it('answers before any identity: pending, with the reason and the revocation view', async () => {
      h.state.set({ state: 'pending', reason: 'attesting' });
      h.state.freshness = { sequence: 0, confirmedAt: 0, connected: false };
      const s = await call<StatusResponse>(h, 'status', {});
      expect({ state: s.state, reason: s.reason, spiffeId: s.spiffeId }).toEqual({ state: State.PENDING, reason: 'attesting', spiffeId: '' });
      expect(s.revocation).toMatchObject({ sequence: 0n, confirmedAt: 0n, connected: false, stale: true });
    });

    it('names the identity, task, expiries and revocation freshness while serving', async () => {
      serve();
      const id = (h.state.current() as { identity: SidecarIdentity }).identity;
      const s = await call<StatusResponse>(h, 'status', {});
      expect(s).toMatchObject({
        state: State.SERVING,
        spiffeId: w.a.spiffeId,
        taskId: 'task-1',
        svidExpiresAt: BigInt(id.notAfter),
        writExpiresAt: BigInt(id.writExpiresAt!),
        obtainedAt: BigInt(id.obtainedAt),
      });
      expect(s.revocation).toMatchObject({ sequence: 7n, connected: true, stale: false });
    });

    it('says expired for an identity past its notAfter, even before the daemon marks it', async () => {
      serve({ notAfter: h.now - 1 });
      const s = await call<StatusResponse>(h, 'status', {});
      expect({ state: s.state, reason: s.reason }).toEqual({ state: State.EXPIRED, reason: 'the X.509-SVID has expired and has not been renewed' });
    });

    it('says revoked, why and when', async () => {
      h.state.revoke('grant X revoked at sequence 9', 1_790_000_000_000);
      const s = await call<StatusResponse>(h, 'status', {});
      expect(s).toMatchObject({ state: State.REVOKED, reason: 'grant X revoked at sequence 9', revokedAt: 1_790_000_000_000n });
    });
  });

  describe('FetchWrit', () => {
    it('sends the current writ, then each renewed writ once (an SVID-only renewal sends nothing), and unsubscribes on cancel', async () => {
      serve();
      const before = h.state.subscribers;
      const s = fetchWrit(h);
      expect((await s.messages(1))[0]).toMatchObject({ writ: w.writ, spiffeId: w.a.spiffeId, taskId: 'task-1' });
      const w2 = w.iss.writ(w.a, [w.root], { now: NOW_S, ttl: 900 }).writ;
      const w3 = w.iss.writ(w.a, [w.root], { now: NOW_S + 1, ttl: 900 }).writ;
      h.state.serve(w.identity({ writ: w.writ, notAfter: Date.now() + 7_200_000 }));
      h.state.serve(w.identity({ writ: w2 }));
      h.state.serve(w.identity({ writ: w3 }));
      expect((await s.messages(3)).map((m) => m.writ)).toEqual([w.writ, w2, w3]);
      expect(h.state.subscribers).toBe(before + 1);
      s.call.cancel();
      expect((await s.ended()).code).toBe(grpc.status.CANCELLED);
      await expect.poll(() => h.state.subscribers).toBe(before);
    });

    it('ends with PERMISSION_DENIED and ERR_REVOKED when the identity is revoked, and drops its listener', async () => {
      serve();
      const before = h.state.subscribers;
      const s = fetchWrit(h);
      await s.messages(1);
      h.state.revoke('task task-1 revoked at sequence 3');
      const e = await s.ended();
      expect({ code: e.code, writCode: e.metadata.get('writ-error-code')[0] }).toEqual({ code: grpc.status.PERMISSION_DENIED, writCode: 'ERR_REVOKED' });
      expect(e.details).toMatch(/revoked: task task-1 revoked at sequence 3/);
      expect(h.state.subscribers).toBe(before);
    });

    it('ends with UNAVAILABLE and ERR_SIDECAR_NOT_SERVING when the identity expires', async () => {
      serve();
      const s = fetchWrit(h);
      await s.messages(1);
      h.state.set({ state: 'expired', reason: 'the X.509-SVID expired at ...' });
      const e = await s.ended();
      expect({ code: e.code, writCode: e.metadata.get('writ-error-code')[0] }).toEqual({ code: grpc.status.UNAVAILABLE, writCode: 'ERR_SIDECAR_NOT_SERVING' });
    });

    it('refuses at once before an identity exists (UNAVAILABLE), after revocation (PERMISSION_DENIED), and without a writ (FAILED_PRECONDITION)', async () => {
      const cases: Array<[() => void, grpc.status, string]> = [
        [() => h.state.set({ state: 'pending' }), grpc.status.UNAVAILABLE, 'ERR_SIDECAR_NOT_SERVING'],
        [() => h.state.revoke('key revoked'), grpc.status.PERMISSION_DENIED, 'ERR_REVOKED'],
        [() => serve({ writ: undefined, writExpiresAt: undefined }), grpc.status.FAILED_PRECONDITION, 'ERR_SIDECAR_NO_WRIT'],
        [() => serve({ writExpiresAt: h.now - 1 }), grpc.status.UNAVAILABLE, 'ERR_SIDECAR_NOT_SERVING'],
      ];
      for (const [setup, code, writCode] of cases) {
        setup();
        const s = fetchWrit(h);
        const e = await s.ended();
        expect(s.got).toEqual([]);
        expect({ code: grpc.status[e.code], writCode: e.metadata.get('writ-error-code')[0] }).toEqual({ code: grpc.status[code], writCode });
      }
    });

    it('ends with UNAVAILABLE when the writ reaches its exp without a renewal, whatever the SVID', async () => {
      serve({ notAfter: Date.now() + 7_200_000 });
      const exp = parseWrit(w.writ).claims.exp * 1000;
      // The sidecar's clock 40 ms before the writ's exp: the stream's expiry fires on its own.
      h.now = exp - 40;
      const s = fetchWrit(h);
      await s.messages(1);
      const e = await s.ended();
      expect({ code: e.code, writCode: e.metadata.get('writ-error-code')[0] }).toEqual({ code: grpc.status.UNAVAILABLE, writCode: 'ERR_SIDECAR_NOT_SERVING' });
      expect(e.details).toMatch(/the writ has expired/);
    });

    it('closeStreams ends every open stream with the status given (shutdown)', async () => {
      serve();
      const streams = [fetchWrit(h), fetchWrit(h), fetchWrit(h)];
      await Promise.all(streams.map((s) => s.messages(1)));
      await expectShutdown(h, streams);
    });
  });

  describe('FetchX509SVID', () => {
    const pkcs8 = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'der' });

    it('sends the current SVID (chain leaf first, bundle, expiry, residency; no key), then each new identity once, and unsubscribes on cancel', async () => {
      const key = pkcs8();
      const chain = [leafDer(1), leafDer(2)];
      serve({ svidChain: chain, privateKeyPkcs8: key, bundle: { trustDomain: 'example.org', x509Authorities: [leafDer(9)], jwks: '{"keys":[]}', pem: '' } });
      const first = (h.state.current() as { identity: SidecarIdentity }).identity;
      const before = h.state.subscribers;
      const s = fetchX509Svid(h);
      const [m] = await s.messages(1);
      expect(m).toMatchObject({ spiffeId: w.a.spiffeId, expiresAt: BigInt(first.notAfter), keyResidency: KeyResidency.SIDECAR });
      expect(m!.x509Svid.map((c) => Buffer.from(c))).toEqual(chain);
      expect(m!.bundle.map((c) => Buffer.from(c))).toEqual(first.bundle.x509Authorities);
      // The same identity again (a revocation-view change, a re-publish): nothing new.
      h.state.serve(first);
      const chain2 = [leafDer(3, 'tpm'), leafDer(2)];
      const chain3 = [leafDer(4), leafDer(2)];
      h.state.serve(w.identity({ svidChain: chain2, notAfter: Date.now() + 7_200_000 }));
      h.state.serve(w.identity({ svidChain: chain3 }));
      const got = await s.messages(3);
      expect(got.map((x) => Buffer.from(x.x509Svid[0]!))).toEqual([chain[0], chain2[0], chain3[0]]);
      // Without PKCS#8 in the sidecar: TPM as the leaf says, else not known.
      expect(got.map((x) => x.keyResidency)).toEqual([KeyResidency.SIDECAR, KeyResidency.TPM, KeyResidency.UNSPECIFIED]);
      expect(h.state.subscribers).toBe(before + 1);
      s.call.cancel();
      expect((await s.ended()).code).toBe(grpc.status.CANCELLED);
      await expect.poll(() => h.state.subscribers).toBe(before);
    });

    it('never carries a private key: the message has no field for one, and the bytes sent hold none even when the sidecar has one', async () => {
      expect(FetchX509SVIDResponseSchema.fields.map((f) => f.name)).toEqual(['spiffe_id', 'x509_svid', 'bundle', 'expires_at', 'key_residency']);
      const key = pkcs8();
      serve({ svidChain: [leafDer(1)], privateKeyPkcs8: key });
      const s = fetchX509Svid(h);
      const [m] = await s.messages(1);
      s.call.cancel();
      await s.ended();
      const bytes = Buffer.from(toBinary(FetchX509SVIDResponseSchema, m!));
      // The PKCS#8 key's private scalar (the 32 bytes after its OCTET STRING header) appears nowhere.
      const scalar = key.subarray(key.indexOf(Buffer.from([0x04, 0x20])) + 2).subarray(0, 32);
      expect(bytes.includes(scalar)).toBe(false);
      expect(bytes.includes(key)).toBe(false);
    });

    it('ends as the Workload API stream does: PERMISSION_DENIED with ERR_REVOKED on revocation, with ERR_SIDECAR_NOT_SERVING on expiry', async () => {
      for (const [end, writCode, details] of [
        [() => h.state.revoke('task task-1 revoked at sequence 3'), 'ERR_REVOKED', /revoked: task task-1 revoked at sequence 3/],
        [() => h.state.set({ state: 'expired', reason: 'the X.509-SVID expired at ...' }), 'ERR_SIDECAR_NOT_SERVING', /the X.509-SVID expired at/],
      ] as const) {
        serve({ svidChain: [leafDer(1)] });
        await expect.poll(() => h.state.subscribers).toBe(0);
        const s = fetchX509Svid(h);
        await s.messages(1);
        end();
        const e = await s.ended();
        expect({ code: grpc.status[e.code], writCode: e.metadata.get('writ-error-code')[0] }).toEqual({ code: 'PERMISSION_DENIED', writCode });
        expect(e.details).toMatch(details);
        expect(h.state.subscribers).toBe(0);
      }
    });

    it("ends at the SVID's notAfter by its own timer when no renewal comes, whatever the daemon does", async () => {
      serve({ svidChain: [leafDer(1)], notAfter: h.now + 40 });
      const s = fetchX509Svid(h);
      await s.messages(1);
      const e = await s.ended();
      expect({ code: grpc.status[e.code], writCode: e.metadata.get('writ-error-code')[0] }).toEqual({
        code: 'PERMISSION_DENIED',
        writCode: 'ERR_SIDECAR_NOT_SERVING',
      });
      expect(e.details).toMatch(/expired and was not renewed/);
    });

    it('refuses at once with the Workload API codes: pending UNAVAILABLE, revoked or past notAfter PERMISSION_DENIED; a sidecar without a writ still serves the SVID', async () => {
      const cases: Array<[() => void, grpc.status, string]> = [
        [() => h.state.set({ state: 'pending' }), grpc.status.UNAVAILABLE, 'ERR_SIDECAR_NOT_SERVING'],
        [() => h.state.revoke('key revoked'), grpc.status.PERMISSION_DENIED, 'ERR_REVOKED'],
        [() => serve({ svidChain: [leafDer(1)], notAfter: h.now - 1 }), grpc.status.PERMISSION_DENIED, 'ERR_SIDECAR_NOT_SERVING'],
      ];
      for (const [setup, code, writCode] of cases) {
        setup();
        const s = fetchX509Svid(h);
        const e = await s.ended();
        expect(s.got).toEqual([]);
        expect({ code: grpc.status[e.code], writCode: e.metadata.get('writ-error-code')[0] }).toEqual({ code: grpc.status[code], writCode });
      }
      serve({ svidChain: [leafDer(1)], writ: undefined, writExpiresAt: undefined });
      const s = fetchX509Svid(h);
      expect(await s.messages(1)).toHaveLength(1);
      s.call.cancel();
      await s.ended();
    });

    it('closeStreams ends every open SVID stream with the status given (shutdown), beside the FetchWrit ones', async () => {
      serve({ svidChain: [leafDer(1)] });
      const streams = [fetchX509Svid(h), fetchX509Svid(h), fetchWrit(h)];
      await Promise.all(streams.map((s) => s.messages(1)));
      await expectShutdown(h, streams);
    });
  });

  describe('CreateProof', () => {
    it('signs a proof of possession of the current writ that a relying party accepts once', async () => {
      serve();
      const r = await call<CreateProofResponse>(h, 'createProof', { audience: AUD, method: 'GET /repos/acme/widgets' });
      expect(r.writ).toBe(w.writ);
      const cache = new ProofReplayCache();
      const v = () =>
        verifyWrit({ writ: r.writ, proof: r.proof, trust: w.iss.trust, audience: AUD, method: 'GET /repos/acme/widgets', now: new Date(), replayCache: cache });
      expect(v().claims.sub).toBe(w.a.spiffeId);
      expect(() => v()).toThrow(/replay|already/i);
      expect(Number(r.expiresAt)).toBe((Math.floor(h.now / 1000) + 60) * 1000);
    });

    it.each([
      ['no audience', { audience: '', method: 'GET /' }, /audience is required/],
      ['an audience with a space', { audience: 'a b', method: 'GET /' }, /audience must be printable ASCII without spaces/],
      ['a method with a control character', { audience: AUD, method: 'GET /\n' }, /method must be printable ASCII/],
      ['a method with a leading space', { audience: AUD, method: ' GET /' }, /method must be printable ASCII/],
      ['a 513-byte audience', { audience: 'a'.repeat(513), method: 'GET /' }, /audience is longer than 512 bytes/],
      ['a lifetime past the verifier limit', { audience: AUD, method: 'GET /', lifetimeSeconds: 301 }, /at most 300 seconds; 301 asked for/],
      ['a request over the size limit', { audience: 'a'.repeat(MAX_AGENT_REQUEST_BYTES), method: 'GET /' }, /more than the 65536 accepted/],
    ])('refuses %s with INVALID_ARGUMENT, signing nothing', async (_n, req, msg) => {
      let signed = 0;
      serve();
      const inner = w.identity().signer;
      const counting: JwsSigner = {
        alg: inner.alg,
        publicKey: inner.publicKey,
        sign: (i) => {
          signed++;
          return inner.sign(i);
        },
      };
      h.state.serve(w.identity({ signer: counting }));
      await expectStatus(call(h, 'createProof', req), grpc.status.INVALID_ARGUMENT, 'ERR_SIDECAR_REQUEST_INVALID', msg);
      expect(signed).toBe(0);
    });

    it('refuses while pending, expired, revoked, without a writ, or with an SVID past its notAfter', async () => {
      const req = { audience: AUD, method: 'GET /' };
      h.state.set({ state: 'pending' });
      await expectStatus(call(h, 'createProof', req), grpc.status.UNAVAILABLE, 'ERR_SIDECAR_NOT_SERVING', /no identity yet/);
      h.state.set({ state: 'expired', reason: 'expired' });
      await expectStatus(call(h, 'createProof', req), grpc.status.UNAVAILABLE, 'ERR_SIDECAR_NOT_SERVING', /expired and has not been renewed/);
      h.state.revoke('grant g revoked');
      await expectStatus(call(h, 'createProof', req), grpc.status.PERMISSION_DENIED, 'ERR_REVOKED', /revoked: grant g revoked/);
      serve({ writ: undefined });
      await expectStatus(call(h, 'createProof', req), grpc.status.FAILED_PRECONDITION, 'ERR_SIDECAR_NO_WRIT', /without a grant chain/);
      serve({ notAfter: h.now - 1 });
      await expectStatus(call(h, 'createProof', req), grpc.status.UNAVAILABLE, 'ERR_SIDECAR_NOT_SERVING', /X\.509-SVID has expired/);
    });

    it('hands out nothing signed while the identity was revoked during signing', async () => {
      serve();
      const inner = w.identity().signer;
      const revoking: JwsSigner = {
        alg: inner.alg,
        publicKey: inner.publicKey,
        sign: async (i) => {
          h.state.revoke('grant g revoked while signing');
          return inner.sign(i);
        },
      };
      h.state.serve(w.identity({ signer: revoking }));
      await expectStatus(call(h, 'createProof', { audience: AUD, method: 'GET /' }), grpc.status.PERMISSION_DENIED, 'ERR_REVOKED', /while signing/);
      h.state.serve(w.identity({ signer: revoking }));
      h.state.freshness = fresh();
      await expectStatus(call(h, 'delegate', { childJkt: agent('c').jkt }), grpc.status.PERMISSION_DENIED, 'ERR_REVOKED', /while signing/);
    });
  });

  describe('Delegate', () => {
    it('returns the whole chain for the child, narrowed as asked, which the issuer rules accept for the child key', async () => {
      serve();
      const child = agent('researcher');
      const d = await delegateFromParent({
        socket: `unix://${h.socket}`,
        childJkt: child.jkt,
        scope: [{ action: 'repo:read', resource: 'repo://acme/widgets*' }],
        boundaries: [{ action: 'repo:read', resource: 'repo://acme/widgets/private*' }],
        ttlSeconds: 600,
      });
      expect(d.grants.slice(0, 1)).toEqual([w.root]);
      const chain = verifyChain({
        grants: d.grants,
        issuer: w.iss.issuer,
        issuerKeys: w.iss.trust.writKeys,
        now: Math.floor(h.now / 1000),
        leafJkt: child.jkt,
      });
      const leaf = chain.leaf.claims;
      expect(leaf).toMatchObject({
        depth: 1,
        jti: d.grantId,
        dlg: { jkt: child.jkt },
        from: { sub: w.a.spiffeId },
        scope: [{ action: 'repo:read', resource: 'repo://acme/widgets*' }],
        exp: Math.floor(h.now / 1000) + 600,
      });
      expect(leaf.boundaries).toContainEqual({ action: '*', resource: 'repo://acme/secrets*' });
      expect(leaf.boundaries).toContainEqual({ action: 'repo:read', resource: 'repo://acme/widgets/private*' });
      expect(d.expiresAt).toBe(leaf.exp * 1000);
      expect(h.logs.at(-1)).toMatch(new RegExp(`delegated grant ${d.grantId} to key ${child.jkt}`));
    });

    it('defaults to the parent scope and the parent grant lifetime', async () => {
      serve();
      const child = agent('c');
      const d = await delegateFromParent({ socket: h.socket, childJkt: child.jkt });
      const leaf = parseGrant(d.grants[1]!).claims;
      expect(leaf.scope).toEqual(parseGrant(w.root).claims.scope);
      expect(leaf.exp).toBe(parseGrant(w.root).claims.exp);
    });

    const refusals: Array<[string, Record<string, unknown>, grpc.status, string, RegExp, Parameters<typeof world>[0]?]> = [
      [
        'a wider scope',
        { scope: [{ action: 'repo:*', resource: 'repo://*' }] },
        grpc.status.PERMISSION_DENIED,
        'ERR_GRANT_INVALID',
        /widens the scope: repo:\*=repo:\/\/\* is not inside/,
      ],
      [
        'another action',
        { scope: [{ action: 'deploy:prod', resource: 'repo://acme/x' }] },
        grpc.status.PERMISSION_DENIED,
        'ERR_GRANT_INVALID',
        /widens the scope/,
      ],
      [
        'a ttl past the parent grant',
        { ttlSeconds: 3700 },
        grpc.status.PERMISSION_DENIED,
        'ERR_GRANT_INVALID',
        /would end after the parent grant/,
        { grantTtl: 3600, taskTtl: 7200 },
      ],
      [
        'a ttl past the task',
        { ttlSeconds: 7300 },
        grpc.status.PERMISSION_DENIED,
        'ERR_GRANT_INVALID',
        /would end after the task/,
        { grantTtl: 3600, taskTtl: 7200 },
      ],
      ['one hop past the root depth limit', {}, grpc.status.PERMISSION_DENIED, 'ERR_GRANT_INVALID', /would exceed the root's limit of 0/, { maxDepth: 0 }],
      [
        'a malformed child thumbprint',
        { childJkt: 'not-a-thumbprint' },
        grpc.status.INVALID_ARGUMENT,
        'ERR_SIDECAR_REQUEST_INVALID',
        /child_jkt must be an RFC 7638/,
      ],
      [
        'a thumbprint with a non-canonical last character',
        { childJkt: `${'A'.repeat(42)}B` },
        grpc.status.INVALID_ARGUMENT,
        'ERR_SIDECAR_REQUEST_INVALID',
        /child_jkt/,
      ],
      [
        'a malformed pattern',
        { scope: [{ action: 'Repo Read', resource: 'x' }] },
        grpc.status.INVALID_ARGUMENT,
        'ERR_SIDECAR_REQUEST_INVALID',
        /scope action "Repo Read" is not a valid pattern/,
      ],
      [
        'a wildcard inside a resource',
        { boundaries: [{ action: 'x', resource: 'a*b' }] },
        grpc.status.INVALID_ARGUMENT,
        'ERR_SIDECAR_REQUEST_INVALID',
        /boundaries resource/,
      ],
      [
        '65 permissions',
        { scope: Array.from({ length: 65 }, (_, i) => ({ action: 'repo:read', resource: `repo://acme/${i}` })) },
        grpc.status.INVALID_ARGUMENT,
        'ERR_SIDECAR_REQUEST_INVALID',
        /more than 64 permissions/,
      ],
      [
        'a request over the size limit',
        { scope: [{ action: 'repo:read', resource: 'r'.repeat(MAX_AGENT_REQUEST_BYTES) }] },
        grpc.status.INVALID_ARGUMENT,
        'ERR_SIDECAR_REQUEST_INVALID',
        /more than the 65536 accepted/,
      ],
    ];
    it.each(refusals)('refuses %s, with the status and writ error code the issuer would give', async (_n, over, code, writCode, msg, wo) => {
      serve({}, wo);
      await expectStatus(call(h, 'delegate', { childJkt: agent('c').jkt, ...over }), code, writCode, msg);
    });

    it("refuses the parent's own key and any key above it (a cycle)", async () => {
      serve();
      await expectStatus(call(h, 'delegate', { childJkt: w.a.jkt }), grpc.status.PERMISSION_DENIED, 'ERR_GRANT_INVALID', /already holds a grant in this chain/);
      // B, holding A's hop, may not delegate back to A.
      const b = agent('b');
      const g1 = hop(w.root, w.a, b, NOW_S);
      const wb = w.iss.writ(b, [w.root, g1], { now: NOW_S - 5 }).writ;
      h.state.serve(w.identity({ spiffeId: b.spiffeId, signer: keySigner(b.key), writ: wb }));
      await expectStatus(call(h, 'delegate', { childJkt: w.a.jkt }), grpc.status.PERMISSION_DENIED, 'ERR_GRANT_INVALID', /already holds a grant in this chain/);
    });

    it('refuses while pending, expired or revoked, without a writ, and once the writ has expired', async () => {
      const req = { childJkt: agent('c').jkt };
      h.state.set({ state: 'pending' });
      await expectStatus(call(h, 'delegate', req), grpc.status.UNAVAILABLE, 'ERR_SIDECAR_NOT_SERVING', /no identity yet/);
      h.state.set({ state: 'expired', reason: 'svid expired' });
      await expectStatus(call(h, 'delegate', req), grpc.status.UNAVAILABLE, 'ERR_SIDECAR_NOT_SERVING', /svid expired/);
      h.state.revoke('grant g revoked at sequence 4');
      await expectStatus(call(h, 'delegate', req), grpc.status.PERMISSION_DENIED, 'ERR_REVOKED', /revoked: grant g revoked at sequence 4/);
      serve({ writ: undefined });
      await expectStatus(call(h, 'delegate', req), grpc.status.FAILED_PRECONDITION, 'ERR_SIDECAR_NO_WRIT', /holds no writ/);
      serve();
      h.now = (NOW_S + 900) * 1000;
      await expectStatus(call(h, 'delegate', req), grpc.status.UNAVAILABLE, 'ERR_SIDECAR_NOT_SERVING', /the writ has expired/);
    });

    it('fails closed when the revocation view was never confirmed or is older than the maximum staleness', async () => {
      const req = { childJkt: agent('c').jkt };
      serve();
      h.state.freshness = { sequence: 0, confirmedAt: 0, connected: false };
      await expectStatus(call(h, 'delegate', req), grpc.status.UNAVAILABLE, 'ERR_REVOCATION_UNAVAILABLE', /never confirmed by the issuer/);
      h.state.freshness = { sequence: 12, confirmedAt: h.now - 15_001, connected: false };
      await expectStatus(
        call(h, 'delegate', req),
        grpc.status.UNAVAILABLE,
        'ERR_REVOCATION_UNAVAILABLE',
        /15001 ms ago, more than the 15000 ms accepted for delegating \(at sequence 12\)/,
      );
      // Proofs of the current writ are still made: an outage does not take a valid identity away.
      await expect(call(h, 'createProof', { audience: AUD, method: 'GET /' })).resolves.toBeDefined();
      h.state.freshness = { sequence: 12, confirmedAt: h.now - 15_000, connected: false };
      await expect(call(h, 'delegate', req)).resolves.toBeDefined();
    });
  });
});

describe('the staleness limit is configurable', () => {
  it('refuses to delegate past the configured maximum', async () => {
    const h = await harness({ maxRevocationStalenessMs: 1000 });
    try {
      const w = world();
      h.state.serve(w.identity());
      h.state.freshness = { sequence: 1, confirmedAt: h.now - 1001, connected: true };
      await expectStatus(call(h, 'delegate', { childJkt: agent('c').jkt }), grpc.status.UNAVAILABLE, 'ERR_REVOCATION_UNAVAILABLE', /more than the 1000 ms/);
      const s = await call<StatusResponse>(h, 'status', {});
      expect(s.revocation?.stale).toBe(true);
    } finally {
      await h.stop();
    }
  });
});

describe('FetchX509SVID streams are bounded', () => {
  it('refuses a stream past the limit with RESOURCE_EXHAUSTED (ERR_LIMIT_EXCEEDED), apart from FetchWrit streams, and admits one again once a stream closes', async () => {
    const h = await harness({ maxSvidStreams: 2, maxWritStreams: 1 });
    try {
      h.state.serve(world().identity({ svidChain: [leafDer(1)] }));
      const [s1, s2] = [fetchX509Svid(h), fetchX509Svid(h)];
      await Promise.all([s1.messages(1), s2.messages(1)]);
      const e = await fetchX509Svid(h).ended();
      expect({ code: e.code, writCode: e.metadata.get('writ-error-code')[0] }).toEqual({
        code: grpc.status.RESOURCE_EXHAUSTED,
        writCode: 'ERR_LIMIT_EXCEEDED',
      });
      expect(e.details).toMatch(/2 FetchX509SVID streams are open already/);
      expect(await fetchWrit(h).messages(1)).toHaveLength(1);
      s1.call.cancel();
      await s1.ended();
      await expect.poll(() => h.state.subscribers).toBe(2);
      expect(await fetchX509Svid(h).messages(1)).toHaveLength(1);
    } finally {
      await h.stop();
    }
  });
});

describe('FetchWrit streams are bounded', () => {
  it('refuses a stream past the limit with RESOURCE_EXHAUSTED (ERR_LIMIT_EXCEEDED), and admits one again once a stream closes', async () => {
    const h = await harness({ maxWritStreams: 2 });
    try {
      h.state.serve(world().identity());
      const [s1, s2] = [fetchWrit(h), fetchWrit(h)];
      await Promise.all([s1.messages(1), s2.messages(1)]);
      const e = await fetchWrit(h).ended();
      expect({ code: e.code, writCode: e.metadata.get('writ-error-code')[0] }).toEqual({
        code: grpc.status.RESOURCE_EXHAUSTED,
        writCode: 'ERR_LIMIT_EXCEEDED',
      });
      expect(e.details).toMatch(/2 FetchWrit streams are open already/);
      s1.call.cancel();
      await s1.ended();
      await expect.poll(() => h.state.subscribers).toBe(1);
      expect(await fetchWrit(h).messages(1)).toHaveLength(1);
    } finally {
      await h.stop();
    }
  });

  it("refuses a writ past its own exp even when the daemon's record says otherwise", async () => {
    const h = await harness();
    try {
      const w = world();
      h.state.serve(w.identity({ writExpiresAt: undefined }));
      h.state.freshness = fresh();
      h.now = (NOW_S + 900) * 1000;
      await expectStatus(
        call(h, 'createProof', { audience: AUD, method: 'GET /' }),
        grpc.status.UNAVAILABLE,
        'ERR_SIDECAR_NOT_SERVING',
        /the writ has expired/,
      );
    } finally {
      await h.stop();
    }
  });
});

describe('delegateFromParent checks what the parent returns', () => {
  /** A parent sidecar that answers Delegate with whatever the test says. */
  async function lyingParent(answer: (req: { childJkt: string }) => string[]) {
    const dir = mkdtempSync(join(tmpdir(), 'writ-lp-'));
    const socket = join(dir, 'p.sock');
    const server = new grpc.Server();
    server.addService(grpcServiceDefinition(AgentService), {
      // As a real sidecar does: a request without the security header is refused, so delegateFromParent must send it.
      delegate: (c: grpc.ServerUnaryCall<{ childJkt: string }, unknown>, cb: grpc.sendUnaryData<unknown>) =>
        c.metadata.get(SECURITY_HEADER)[0] !== 'true'
          ? cb({ code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' })
          : cb(null, create(DelegateResponseSchema, { grants: answer(c.request) })),
    });
    await new Promise<void>((res, rej) => server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
    return {
      socket,
      stop: async () => {
        await new Promise<void>((res) => server.tryShutdown(() => res()));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  const codeOf = async (p: Promise<unknown>) => {
    try {
      await p;
      return 'accepted';
    } catch (e) {
      return isWritError(e) ? `${e.code}: ${e.message}` : String(e);
    }
  };

  it('refuses a chain for another key, a chain that widens the scope, and no chain', async () => {
    const w = world();
    const child = agent('child');
    const other = agent('other');
    const cases: Array<[string[], RegExp]> = [
      [[w.root, hop(w.root, w.a, other, NOW_S)], /ERR_GRANT_INVALID: .*delegated to another key/],
      [[w.root, rawHop(w.root, w.a.key, { scope: [{ action: '*', resource: '*' }] }, child, w.a.spiffeId)], /ERR_GRANT_INVALID: .*widens the scope/],
      [[hop(w.root, w.a, child, NOW_S)], /ERR_GRANT_INVALID: delegation: grant 0/],
      [[], /ERR_SIDECAR_REQUEST_INVALID: .*no usable chain/],
    ];
    for (const [grants, re] of cases) {
      const p = await lyingParent(() => grants);
      try {
        expect(await codeOf(delegateFromParent({ socket: p.socket, childJkt: child.jkt }))).toMatch(re);
      } finally {
        await p.stop();
      }
    }
  });

  it('retries while the parent answers UNAVAILABLE (not attested yet, revocation view not confirmed), then gets the chain', async () => {
    const h = await harness();
    try {
      const w = world();
      h.state.set({ state: 'pending' });
      const child = agent('c');
      const p = delegateFromParent({ socket: h.socket, childJkt: child.jkt });
      await expect.poll(() => h.logs.filter((l) => /Delegate refused: ERR_SIDECAR_NOT_SERVING/.test(l)).length).toBeGreaterThan(0);
      h.state.freshness = { sequence: 0, confirmedAt: 0, connected: false };
      h.state.serve(w.identity());
      await expect.poll(() => h.logs.filter((l) => /Delegate refused: ERR_REVOCATION_UNAVAILABLE/.test(l)).length).toBeGreaterThan(0);
      h.state.freshness = fresh();
      const d = await p;
      expect(parseGrant(d.grants.at(-1)!).claims.dlg.jkt).toBe(child.jkt);
    } finally {
      await h.stop();
    }
  });

  it("surfaces the parent's refusal as its writ error code, and an absent parent as not serving", async () => {
    const h = await harness();
    try {
      h.state.revoke('grant g revoked');
      expect(await codeOf(delegateFromParent({ socket: h.socket, childJkt: agent('c').jkt }))).toMatch(
        /^ERR_REVOKED: sidecar\(parent\): the parent sidecar refused: .*grant g revoked/,
      );
    } finally {
      await h.stop();
    }
    expect(await codeOf(delegateFromParent({ socket: '/nonexistent/writ.sock', childJkt: agent('c').jkt, deadlineMs: 2000 }))).toMatch(
      /^ERR_SIDECAR_NOT_SERVING: .*no answer/,
    );
    expect(await codeOf(delegateFromParent({ socket: '/x.sock', childJkt: 'short' }))).toMatch(/^ERR_SIDECAR_REQUEST_INVALID: .*childJkt/);
    expect(() => socketTarget('relative.sock')).toThrow(/absolute path/);
    expect(socketTarget('unix:///run/writ.sock')).toBe('unix:/run/writ.sock');
  });
});

describe('the AgentService contract', () => {
  it('maps each code it raises to the status the issuer gives it', () => {
    for (const [code, st] of Object.entries(AGENT_STATUS_BY_CODE)) {
      expect(ERROR_CODES).toContain(code);
      expect(grpc.status[st!], code).toBe(grpc.status[STATUS_BY_CODE[code as keyof typeof STATUS_BY_CODE].status]);
    }
  });

  it('passes on the issuer’s escalation refusals with their status and code (ERR_APPROVAL_LIMIT: RESOURCE_EXHAUSTED), and nothing else', () => {
    for (const [code, st] of Object.entries(ISSUER_REFUSALS_PASSED_ON)) {
      expect(grpc.status[st!], code).toBe(grpc.status[STATUS_BY_CODE[code as keyof typeof STATUS_BY_CODE].status]);
    }
    const limit = agentFailure(new GrpcCallError(grpc.status.RESOURCE_EXHAUSTED, 'approval: writ w already has 16 escalations pending', 'ERR_APPROVAL_LIMIT'));
    expect(limit).toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      writCode: 'ERR_APPROVAL_LIMIT',
      details: 'issuer: approval: writ w already has 16 escalations pending',
    });
    expect(limit.metadata.get('writ-error-code')).toEqual(['ERR_APPROVAL_LIMIT']);
    // A code outside the table, or a status that does not match it: INTERNAL, the reason in the log only.
    expect(agentFailure(new GrpcCallError(grpc.status.UNAVAILABLE, 'datastore unavailable', 'ERR_STORE')).code).toBe(grpc.status.INTERNAL);
    expect(agentFailure(new GrpcCallError(grpc.status.OK, 'x', 'ERR_APPROVAL_LIMIT')).code).toBe(grpc.status.INTERNAL);
  });

  it('refuses Escalate without an issuer to ask (FAILED_PRECONDITION, ERR_SIDECAR_NO_WRIT)', async () => {
    const h = await harness();
    try {
      await expectStatus(
        call(h, 'escalate', { action: 'repo:write', resource: 'repo://acme/app', reason: 'r', wait: false }),
        grpc.status.FAILED_PRECONDITION,
        'ERR_SIDECAR_NO_WRIT',
        /no issuer to escalate to/,
      );
    } finally {
      await h.stop();
    }
  });

  it('is reflection-visible: its file declares writ.agent.v1.AgentService and its dependency on writ/v1/grant.proto', () => {
    const svc = agentService();
    expect(svc.service.typeName).toBe('writ.agent.v1.AgentService');
    expect(svc.file.services.map((s) => s.typeName)).toContain('writ.agent.v1.AgentService');
    expect(svc.file.dependencies.map((d) => d.proto.name)).toContain('writ/v1/grant.proto');
    expect(svc.service.methods.map((m) => `${m.name}:${m.methodKind}`)).toEqual([
      'FetchWrit:server_streaming',
      'CreateProof:unary',
      'Delegate:unary',
      'Status:unary',
      'Escalate:unary',
      'FetchX509SVID:server_streaming',
    ]);
  });
});

describe("atDeadline (the streams' expiry timers)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('waits for a deadline further than one Node timer can (an SVID of 60 days) in steps, and fires once, at it', () => {
    vi.useFakeTimers();
    const t0 = Date.now();
    const deadline = t0 + 60 * 86_400_000;
    let fired = 0;
    atDeadline(deadline, Date.now, () => fired++);
    vi.advanceTimersByTime(MAX_TIMER_MS + 1);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(deadline - Date.now() - 1);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(1);
    vi.advanceTimersByTime(10 * MAX_TIMER_MS);
    expect(fired).toBe(1);
  });

  it('fires at once for a deadline passed, never after cancel', () => {
    vi.useFakeTimers();
    let fired = 0;
    atDeadline(Date.now() - 5, Date.now, () => fired++);
    vi.advanceTimersByTime(0);
    expect(fired).toBe(1);
    const t = atDeadline(Date.now() + 1000, Date.now, () => fired++);
    t.cancel();
    vi.advanceTimersByTime(5000);
    expect(fired).toBe(1);
  });
});
