/**
 * The Workload API's streams against a hand-driven SidecarState and fake server calls (no
 * socket): a client that never reads holds one pending message at most, and gets the latest on
 * drain; the stream limit; an identity past its notAfter is never sent, whatever the daemon's timer.
 * And AgentService.FetchX509SVID, which writes through the same latest-wins writer.
 */
import * as grpc from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LimitError } from '../../src/errors.js';
import { keySigner } from '../../src/jose/jws.js';
import type { SidecarIdentity } from '../../src/sidecar/state.js';
import { agentService } from '../../src/sidecar/agent-service/service.js';
import { MAX_STREAMS, workloadApiService } from '../../src/sidecar/workload-api/service.js';
import { FakeSidecarState } from '../fakes/sidecar-state.js';

const signer = keySigner(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
const now = 1_000_000;

function identity(n: number, notAfter = now + 60_000): SidecarIdentity {
  return {
    spiffeId: 'spiffe://example.org/agent/a',
    svidChain: [Buffer.from([0x30, 0x01, n])],
    signer,
    privateKeyPkcs8: Buffer.from('key'),
    bundle: { trustDomain: 'example.org', x509Authorities: [Buffer.from('root')], jwks: '{"keys":[]}', pem: 'pem' },
    notAfter,
    obtainedAt: now,
  };
}

/** A server stream whose client never reads: every write reports backpressure until `drain()`. */
class StuckCall extends EventEmitter {
  readonly metadata = new grpc.Metadata();
  readonly written: Array<{ svids: Array<{ x509Svid: Uint8Array }> }> = [];
  error?: { code: grpc.status; details: string };
  reading = false;
  constructor() {
    super();
    this.metadata.set('workload.spiffe.io', 'true');
    this.on('error', (e) => {
      this.error = e;
    });
  }
  write(m: { svids: Array<{ x509Svid: Uint8Array }> }): boolean {
    this.written.push(m);
    return this.reading;
  }
  drain(): void {
    this.emit('drain');
  }
}

function setup() {
  const state = new FakeSidecarState();
  const svc = workloadApiService();
  const impl = svc.implementation({ state, now: () => now, log: () => {} }) as unknown as Record<string, (call: StuckCall) => void>;
  return { state, svc, fetch: (call: StuckCall) => impl.fetchX509SVID!(call) };
}

const lastByte = (m: { svids: Array<{ x509Svid: Uint8Array }> }) => m.svids[0]!.x509Svid[2];

describe('Workload API streams', () => {
  it('a client that never reads holds one pending message at most, and gets the latest on drain', () => {
    const { state, fetch } = setup();
    state.serve(identity(1));
    const call = new StuckCall();
    fetch(call);
    expect(call.written.map(lastByte)).toEqual([1]);
    for (let n = 2; n <= 50; n++) state.serve(identity(n));
    // Nothing more was written while the client did not read.
    expect(call.written.map(lastByte)).toEqual([1]);
    call.reading = true;
    call.drain();
    // Only the latest complete message, not the 49 in between.
    expect(call.written.map(lastByte)).toEqual([1, 50]);
    state.serve(identity(51));
    expect(call.written.map(lastByte)).toEqual([1, 50, 51]);
    expect(state.subscribers).toBe(1);
    call.emit('cancelled');
    expect(state.subscribers).toBe(0);
  });

  it(`refuses stream ${MAX_STREAMS + 1} with RESOURCE_EXHAUSTED`, () => {
    const { state, fetch, svc } = setup();
    state.serve(identity(1));
    const calls: StuckCall[] = [];
    for (let i = 0; i < MAX_STREAMS; i++) {
      const c = new StuckCall();
      c.reading = true;
      fetch(c);
      calls.push(c);
    }
    expect(calls.every((c) => c.error === undefined)).toBe(true);
    const over = new StuckCall();
    fetch(over);
    expect(over.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    // Ending them all (revocation, shutdown) frees every slot and every state listener.
    svc.closeStreams?.({ code: grpc.status.PERMISSION_DENIED, details: 'revoked' });
    expect(calls.every((c) => c.error?.code === grpc.status.PERMISSION_DENIED)).toBe(true);
    expect(state.subscribers).toBe(0);
    const again = new StuckCall();
    fetch(again);
    expect(again.error).toBeUndefined();
  });

  it('never sends an identity past its notAfter, even when the state still says serving', () => {
    const { state, fetch } = setup();
    state.serve(identity(1, now - 1));
    const call = new StuckCall();
    fetch(call);
    expect(call.written).toEqual([]);
    expect(call.error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(call.error?.details).toContain('expired');
  });

  it('ends the stream with PERMISSION_DENIED when the identity expires or is revoked', () => {
    for (const end of ['expired', 'revoked'] as const) {
      const { state, fetch } = setup();
      state.serve(identity(1));
      const call = new StuckCall();
      call.reading = true;
      fetch(call);
      if (end === 'expired') state.set({ state: 'expired', reason: 'the X.509-SVID expired' });
      else state.revoke('grant g1 revoked');
      expect(call.error?.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(state.subscribers).toBe(0);
      state.serve(identity(2));
      expect(call.written).toHaveLength(1);
    }
  });
});

describe('FetchJWTSVID refusals', () => {
  it('a JWT-SVID refused by the audience cap (ERR_LIMIT_EXCEEDED) is RESOURCE_EXHAUSTED, not UNAVAILABLE', async () => {
    const state = new FakeSidecarState();
    state.serve(identity(1));
    state.jwtSvid = () => Promise.reject(new LimitError('sidecar: JWT-SVIDs for 64 distinct audiences were fetched in the last hour'));
    const impl = workloadApiService().implementation({ state, now: () => now, log: () => {} }) as unknown as Record<
      string,
      (call: unknown, cb: (e: { code: grpc.status; details: string } | null) => void) => void
    >;
    const metadata = new grpc.Metadata();
    metadata.set('workload.spiffe.io', 'true');
    const e = await new Promise<{ code: grpc.status; details: string } | null>((r) =>
      impl.fetchJWTSVID!({ metadata, request: { audience: ['new'], spiffeId: '' } }, (err) => r(err)),
    );
    expect(e?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(e?.details).toMatch(/distinct audiences/);
  });
});

describe('AgentService.FetchX509SVID writes latest-wins too', () => {
  it('a client that never reads holds one pending message at most, and gets the latest on drain', () => {
    const state = new FakeSidecarState();
    const impl = agentService().implementation({ state, now: () => now, log: () => {} }) as unknown as Record<string, (call: StuckCall) => void>;
    state.serve(identity(1));
    const call = new StuckCall();
    impl.fetchX509SVID!(call);
    const leafByte = (m: unknown) => (m as { x509Svid: Uint8Array[] }).x509Svid[0]![2];
    expect(call.written.map(leafByte)).toEqual([1]);
    for (let n = 2; n <= 50; n++) state.serve(identity(n));
    expect(call.written.map(leafByte)).toEqual([1]);
    call.reading = true;
    call.drain();
    expect(call.written.map(leafByte)).toEqual([1, 50]);
    state.serve(identity(51));
    expect(call.written.map(leafByte)).toEqual([1, 50, 51]);
    call.emit('cancelled');
    expect(state.subscribers).toBe(0);
  });
});
