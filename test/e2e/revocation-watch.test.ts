/**
 * The push side of revocation end to end: a real issuer, RevocationService.Watch over gRPC/TLS
 * on loopback, and relying parties fed by it (WatchRevocationSource over grpcWatchConnector).
 * Three hops made by the real issuer die for each kind of revocation; a subscriber resumes by
 * sequence; a snapshot replaces what was pruned; a slow subscriber is cut off without delaying
 * another; a thousand subscribers all receive an event.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { ManualClock } from '../../src/clock.js';
import { isWritError } from '../../src/errors.js';
import { WatchRequestSchema, WatchResponseSchema, type WatchResponse } from '../../src/gen/writ/v1/revocation_pb.js';
import { MAX_SUBSCRIBER_BACKLOG } from '../../src/server/services/revocation.js';
import { parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { WatchRevocationSource, type WatchConnector, type WatchMessage, type WatchStreamHandlers } from '../../src/revocation/watch-source.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { verifyWrit } from '../../src/writ/verify.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { revokeAsOperator, threeHops, type Hop } from '../helpers/revocation.js';
import { startServer } from '../helpers/server.js';
import { runCli } from '../helpers/cli.js';

const AUD = 'spiffe://example.org/tool/github';

async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The real connector, with a switch to drop every stream and hold reconnection (a network outage). */
class Outage implements WatchConnector {
  private readonly streams = new Set<{ close(): void; on: WatchStreamHandlers }>();
  private held?: Array<() => void>;
  constructor(private readonly inner: WatchConnector) {}
  open(address: string, since: number, on: WatchStreamHandlers) {
    let h: { close(): void } | undefined;
    let dropped = false;
    const entry = {
      on,
      close: () => {
        dropped = true;
        h?.close();
        this.streams.delete(entry);
      },
    };
    this.streams.add(entry);
    const start = () => {
      if (!dropped) h = this.inner.open(address, since, on);
    };
    if (this.held) this.held.push(start);
    else start();
    return { close: entry.close };
  }
  /** Drops every stream (the source sees them end) and holds new ones until `end()`. */
  begin(): void {
    this.held ??= [];
    for (const s of [...this.streams]) {
      s.close();
      s.on.end({ reason: 'test: network down' });
    }
  }
  end(): void {
    const h = this.held ?? [];
    this.held = undefined;
    for (const f of h) f();
  }
}

function verifier(trust: { issuer: string; writKeys: ReadonlyMap<string, import('node:crypto').KeyObject> }, source: WatchRevocationSource) {
  const cache = new ProofReplayCache();
  return (h: Hop) => {
    const now = new Date();
    return verifyWrit({
      writ: h.writ,
      proof: createProof(h.writ, h.key, { audience: AUD, method: 'GET /repos/acme/widgets', now }),
      trust,
      audience: AUD,
      now,
      replayCache: cache,
      revocation: source,
    });
  };
}

const codeOf = (f: () => unknown): string => {
  try {
    f();
    return 'valid';
  } catch (e) {
    if (isWritError(e)) return e.code;
    throw e;
  }
};

describe('Watch end to end (real issuer, gRPC over loopback TLS)', () => {
  let w: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  let trust: { issuer: string; writKeys: ReadonlyMap<string, import('node:crypto').KeyObject> };
  const sources: WatchRevocationSource[] = [];
  const watch = (connector: WatchConnector = grpcWatchConnector(w.bundlePem), since?: number) => {
    const s = new WatchRevocationSource({
      addresses: [w.address],
      connector,
      ...(since !== undefined ? { since } : {}),
      reconnectInitialMs: 20,
      reconnectMaxMs: 200,
    });
    sources.push(s);
    return s.start();
  };

  beforeAll(async () => {
    oidc = await startOidc();
    // 1,000 subscribers from loopback: one peer address, so the per-peer cap is raised here.
    w = await startServer({
      principals: [{ issuer: oidc.issuer, audience: 'writ' }],
      revocation: { heartbeat: '200ms', watch: { max_streams_per_peer: 2000 } },
    });
    await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    const b = parseSpiffeBundle('example.org', (await adminClients(w.adminSocket).bundle.getBundle({})).jwks);
    trust = { issuer: 'spiffe://example.org', writKeys: b.writAuthorities! };
  });
  afterAll(async () => {
    for (const s of sources) s.close();
    await w?.stop();
    await oidc?.stop();
  });

  // Each kind the issue lists, on a world of its own; the verifier knows only the Watch stream.
  const kinds: Array<[string, (x: { root: string; A: Hop; B: Hop; C: Hop }) => string]> = [
    ['grant', (x) => x.C.claims.lineage[0]!],
    ['task', (x) => x.C.claims.task.id],
    ['agent', (x) => x.B.claims.sub],
    ['key', (x) => x.A.jkt],
    ['writ', (x) => x.B.claims.jti],
    ['entry', (x) => x.B.entryId],
    ['principal', (x) => `${x.C.claims.principal.iss}#${x.C.claims.principal.sub}`],
  ];
  it.each(kinds)('revoking the %s above it: a Watch-fed verifier refuses the writ three hops down', async (kind, pick) => {
    const x = await threeHops(w, oidc, { taskId: `t-${kind}`, principal: kind === 'principal' ? 'dave' : 'alice' });
    const source = watch();
    await source.synced();
    const verify = verifier(trust, source);
    expect(verify(x.C).chain).toHaveLength(4);
    const r = await revokeAsOperator(w.adminSocket, kind, pick(x), `e2e ${kind}`);
    // A, B and C die, or B and C when the target is B's.
    expect(r.writs).toBe(['agent', 'writ', 'entry'].includes(kind) ? 2 : 3);
    await until(() => codeOf(() => verify(x.C)) !== 'valid', 5000, `refusal after a ${kind} revocation`);
    expect(codeOf(() => verify(x.C))).toBe('ERR_WRIT_REVOKED');
    expect(source.sequence).toBeGreaterThanOrEqual(Number(r.sequence));
  });

  it('a subscriber disconnected while three revocations happen receives exactly those three, by sequence, when it reconnects', async () => {
    const outage = new Outage(grpcWatchConnector(w.bundlePem));
    const source = watch(outage);
    await source.synced();
    const seen: WatchMessage[] = [];
    source.onMessage((m) => seen.push(m));
    const x = await threeHops(w, oidc, { taskId: 'resume' });
    const start = source.sequence;
    outage.begin();
    seen.length = 0;
    await until(() => !source.status().connected, 2000, 'disconnect');
    const missed = [
      await revokeAsOperator(w.adminSocket, 'key', x.C.jkt),
      await revokeAsOperator(w.adminSocket, 'writ', x.A.claims.jti),
      await revokeAsOperator(w.adminSocket, 'grant', x.C.claims.lineage[2]!),
    ].map((r) => Number(r.sequence));
    expect(missed).toEqual([start + 1, start + 2, start + 3]);
    expect(seen.filter((m) => m.type === 'revocation')).toEqual([]);
    outage.end();
    await until(() => source.status().connected, 5000, 'reconnect');
    const got = seen.filter((m) => m.type === 'revocation').map((m) => (m.type === 'revocation' ? m.revocation.sequence : 0));
    expect(got).toEqual(missed);
    expect(seen.find((m) => m.type === 'heartbeat')).toMatchObject({ sequence: start + 3 });
    expect(codeOf(() => verifier(trust, source)(x.C))).toBe('ERR_WRIT_REVOKED');
  });

  it('writ verify --watch subscribes, verifies once in sync, and refuses the writ once revoked', async () => {
    const x = await threeHops(w, oidc, { taskId: 'cli-verify' });
    const d = mkdtempSync(join(tmpdir(), 'writ-verify-watch-'));
    try {
      const f = (name: string, text: string) => {
        writeFileSync(join(d, name), text);
        return join(d, name);
      };
      const jwks = f('bundle.jwks', (await adminClients(w.adminSocket).bundle.getBundle({})).jwks);
      const writ = f('writ.jws', x.C.writ);
      const proof = () => f('proof', createProof(x.C.writ, x.C.key, { audience: AUD, method: 'GET /x', now: new Date() }));
      const verify = (...extra: string[]) => runCli(['verify', '--bundle', jwks, '--audience', AUD, '--writ', writ, '--proof', proof(), ...extra]);
      const ok = await verify('--watch', w.address, '--json');
      expect(ok.err).toBe('');
      expect(ok.code).toBe(0);
      const checks = (JSON.parse(ok.out) as { checks: Array<{ check: string; by: string }> }).checks;
      expect(checks).toContainEqual({
        by: 'verifier',
        check: expect.stringMatching(/^not revoked: .* \(watch stream at sequence \d+ \(heartbeat \d+ ms ago from 127\.0\.0\.1:\d+\)\)$/),
      });
      // Without a source the report says revocation was not checked.
      expect(JSON.parse((await verify('--json')).out).checks).toContainEqual({
        by: 'unchecked',
        check: expect.stringMatching(/^revocation: no revocation source/),
      });
      const r = await revokeAsOperator(w.adminSocket, 'task', 'cli-verify');
      const bad = await verify('--watch', w.address, '--json');
      expect(bad.code).toBe(1);
      expect(JSON.parse(bad.out)).toMatchObject({
        valid: false,
        code: 'ERR_WRIT_REVOKED',
        error: expect.stringContaining(`task cli-verify revoked at sequence ${r.sequence}`),
      });
      const text = await verify('--watch', w.address);
      expect(text.err).toMatch(/^writ: invalid: writ: revoked: task cli-verify revoked at sequence \d+ \(watch stream at sequence \d+/);
      const down = await verify('--watch', '127.0.0.1:1', '--watch-timeout', '300ms');
      expect(down.code).toBe(1);
      expect(down.err).toMatch(
        /^writ: revocation\(watch\): no heartbeat from 127\.0\.0\.1:1 within 300 ms \(last error: 127\.0\.0\.1:1: unreachable: connection refused/,
      );
      expect((await verify('--watch-timeout', '1s')).code).toBe(2);
      expect((await verify('--watch', '8443')).err).toMatch(/--watch must be HOST:PORT/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('1,000 subscribers on loopback (20 connections) all receive an event', async () => {
    const N = 1000;
    const connectors = Array.from({ length: 20 }, () => grpcWatchConnector(w.bundlePem));
    const many = Array.from({ length: N }, (_, i) => watch(connectors[i % connectors.length]));
    await Promise.all(many.map((s) => s.synced(30_000)));
    expect(w.server.core.feed.subscriberCount).toBeGreaterThanOrEqual(N);
    const x = await threeHops(w, oidc, { taskId: 'thousand' });
    const got = new Set<number>();
    const seq = { value: -1 };
    for (const [i, s] of many.entries()) {
      s.onRevoked((r) => {
        if (r.sequence === seq.value) got.add(i);
      });
    }
    const t0 = performance.now();
    const r = await revokeAsOperator(w.adminSocket, 'task', x.C.claims.task.id);
    seq.value = Number(r.sequence);
    // Events that arrived before the answer: count them from the sources' own sequence.
    for (const [i, s] of many.entries()) if (s.sequence >= seq.value) got.add(i);
    await until(() => got.size === N, 20_000, `${N} deliveries`);
    const ms = performance.now() - t0;
    expect(got.size).toBe(N);
    expect(codeOf(() => verifier(trust, many[N - 1]!)(x.C))).toBe('ERR_WRIT_REVOKED');
    for (const s of many) s.close();
    console.log(`1,000 subscribers: all received the event ${ms.toFixed(1)} ms after Revoke was called`);
  }, 120_000);
});

describe('Watch snapshot (short retention)', () => {
  it('a subscriber whose since is older than what the issuer retains gets a snapshot of what is in force, then live events', async () => {
    const oidc = await startOidc();
    const clock = new ManualClock(Date.now());
    const w = await startServer({ principals: [{ issuer: oidc.issuer, audience: 'writ' }], revocation: { heartbeat: '100ms', retention: '1s' } }, { clock });
    const sources: WatchRevocationSource[] = [];
    try {
      await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
      const task = async (id: string, ttlSeconds: number) => createTask(w, oidc, id, ttlSeconds).then(() => revokeAsOperator(w.adminSocket, 'task', id));
      const r1 = await task('short-1', 60);
      const outage = new Outage(grpcWatchConnector(w.bundlePem));
      const source = new WatchRevocationSource({ addresses: [w.address], connector: outage, reconnectInitialMs: 20, reconnectMaxMs: 100 });
      sources.push(source.start());
      await source.synced();
      expect(source.sequence).toBe(Number(r1.sequence));
      outage.begin();
      const r2 = await task('short-2', 60);
      const r3 = await task('long-3', 3600);
      // Both short tasks ended more than the retention ago: their revocations leave the event log.
      clock.advance(62_000);
      await w.server.tick();
      expect((await w.server.store.revocationBounds()).oldest).toBe(Number(r3.sequence));
      const seen: WatchMessage[] = [];
      source.onMessage((m) => seen.push(m));
      outage.end();
      await until(() => source.status().connected, 5000, 'reconnect');
      expect(seen.slice(0, 4)).toEqual([
        { type: 'snapshot-begin', oldestRetained: Number(r3.sequence) },
        { type: 'revocation', revocation: expect.objectContaining({ sequence: Number(r3.sequence), target: { kind: 'task', id: 'long-3' }, snapshot: true }) },
        { type: 'snapshot-end', sequence: Number(r3.sequence) },
        { type: 'heartbeat', sequence: Number(r3.sequence), at: expect.any(Number) },
      ]);
      expect(Number(r2.sequence)).toBe(Number(r1.sequence) + 1);
      // It holds what is in force: the long task, not the pruned short one.
      expect(source.size).toBe(1);
      // Then live events follow as usual.
      const r4 = await task('long-4', 3600);
      await until(() => source.sequence === Number(r4.sequence), 5000, 'live event after the snapshot');
      expect(source.size).toBe(2);
    } finally {
      for (const s of sources) s.close();
      await w.stop();
      await oidc.stop();
    }
  });
});

/** A task of its own (a root grant for a throwaway key). */
async function createTask(w: { address: string; bundlePem: string }, oidc: TestOidc, id: string, ttlSeconds: number) {
  const { createGrant } = await import('../../src/agent/grant-client.js');
  return createGrant(w.address, w.bundlePem, {
    subjectToken: oidc.token('alice', { groups: ['eng'] }),
    subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
    taskId: id,
    goal: 'g',
    ttlSeconds,
    scope: [{ action: 'repo:read', resource: 'repo://acme/widgets' }],
    maxDepth: 1,
    delegateJkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs',
  });
}

/**
 * A subscriber that never reads: a raw HTTP/2 client that opens Watch with a stream window of 0
 * bytes, so the issuer cannot send it a single DATA frame (grpc-js's client keeps reading into
 * its own buffer, so it cannot stall a stream on purpose). `open()` later gives it a window.
 */
function stalledWatch(address: string, bundlePem: string, o: { localAddress?: string; since?: number } = {}) {
  const session = http2.connect(`https://${address}`, {
    ca: bundlePem,
    ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    servername: 'writ-issuer',
    // The chain is checked against the bundle; the name is the issuer's SPIFFE ID.
    checkServerIdentity: (_h, cert) => ((cert.subjectaltname ?? '').includes('URI:spiffe://example.org/writ/server') ? undefined : new Error('not the issuer')),
    settings: { initialWindowSize: 0 },
  });
  session.on('error', () => {});
  const body = Buffer.from(toBinary(WatchRequestSchema, create(WatchRequestSchema, { since: BigInt(o.since ?? 0) })));
  const req = session.request({ ':method': 'POST', ':path': '/writ.v1.RevocationService/Watch', 'content-type': 'application/grpc', te: 'trailers' });
  req.end(Buffer.concat([Buffer.from([0, 0, 0, 0, body.length]), body]));
  const messages: WatchResponse[] = [];
  let buf = Buffer.alloc(0);
  req.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
      const n = buf.readUInt32BE(1);
      messages.push(fromBinary(WatchResponseSchema, buf.subarray(5, 5 + n)));
      buf = buf.subarray(5 + n);
    }
  });
  req.on('error', () => {});
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => req.on('trailers', resolve));
  /** How the stream ended: the RST_STREAM code (0 for a clean end) and the status, when it came. */
  const ended = new Promise<{ rstCode: number; headers: http2.IncomingHttpHeaders }>((resolve) => {
    let headers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      headers = { ...headers, ...h };
    });
    req.on('trailers', (h) => {
      headers = { ...headers, ...h };
    });
    req.on('close', () => resolve({ rstCode: req.rstCode ?? 0, headers }));
  });
  return {
    messages,
    trailers,
    ended,
    open: () => session.settings({ initialWindowSize: 65_535 }),
    close: () => session.destroy(),
  };
}

describe('a slow subscriber', () => {
  it('that never reads is cut off with RESOURCE_EXHAUSTED and writ-resume-since, and never delays another', async () => {
    const oidc = await startOidc();
    // Heartbeats every millisecond fill a stalled subscriber's backlog in seconds.
    const w = await startServer({ principals: [{ issuer: oidc.issuer, audience: 'writ' }], revocation: { heartbeat: '1ms' } });
    const fast = new WatchRevocationSource({ addresses: [w.address], connector: grpcWatchConnector(w.bundlePem, { ownConnection: true }) });
    let slow: ReturnType<typeof stalledWatch> | undefined;
    try {
      await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
      fast.start();
      await fast.synced();
      slow = stalledWatch(w.address, w.bundlePem);
      await until(() => w.server.core.feed.subscriberCount === 2, 5000, 'two subscribers');
      // While the slow one stalls, the fast one gets every revocation promptly.
      const tasks: string[] = [];
      for (let i = 0; i < 8; i++) {
        await createTask(w, oidc, `slow-${i}`, 600);
        tasks.push(`slow-${i}`);
      }
      const latencies: number[] = [];
      const deadline = Date.now() + 60_000;
      while (w.server.core.feed.subscriberCount === 2 || tasks.length > 5) {
        if (Date.now() > deadline) throw new Error('the slow subscriber was never cut off');
        const id = tasks.shift();
        if (id) {
          const t0 = performance.now();
          const r = await revokeAsOperator(w.adminSocket, 'task', id);
          await until(() => fast.sequence >= Number(r.sequence), 2000, 'fast subscriber');
          latencies.push(performance.now() - t0);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      // Cut off: its backlog is freed at once, not held until it reads.
      expect(w.server.core.feed.subscriberCount).toBe(1);
      expect(w.server.core.watchStreams.buffered).toBe(0);
      expect(slow.messages).toEqual([]);
      expect(Math.max(...latencies)).toBeLessThan(1000);
      // Its status waits only behind what its transport held; read within the grace, it arrives.
      slow.open();
      const t = await slow.trailers;
      expect(t['grpc-status']).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
      expect(decodeURIComponent(String(t['grpc-message']))).toMatch(/^revocation: this subscriber fell behind; resume with since=\d+$/);
      const revs = slow.messages
        .filter((m) => m.message.case === 'revocation')
        .map((m) => (m.message.case === 'revocation' ? Number(m.message.value.sequence) : 0));
      expect(Number(t['writ-resume-since'])).toBe(revs[revs.length - 1] ?? 0);
      // Bounded: a stream buffer's worth, not the backlog (4,096 and more before the fix).
      expect(slow.messages.length).toBeGreaterThan(0);
      expect(slow.messages.length).toBeLessThanOrEqual(64);
      expect(slow.messages.length).toBeLessThan(MAX_SUBSCRIBER_BACKLOG);
      await slow.ended;
      await until(() => w.server.core.watchStreams.open === 1, 5000, 'the cut stream to give its slot back');
      console.log(
        `slow subscriber cut after ${slow.messages.length} messages (resume since=${t['writ-resume-since']}); fast subscriber max ${Math.max(...latencies).toFixed(1)} ms over ${latencies.length} revocations`,
      );
    } finally {
      fast.close();
      slow?.close();
      await w.stop();
      await oidc.stop();
    }
  }, 90_000);
});

describe('what Watch streams may hold (no credential needed to open one)', () => {
  /** An entry with `count` live writs in the store, so that revoking it derives `count` events. */
  async function bulkEntry(w: Awaited<ReturnType<typeof startServer>>, count: number): Promise<string> {
    const entry = `0b0b0b0b-0000-4000-8000-${randomBytes(6).toString('hex')}`;
    const now = Date.now();
    await w.server.core.store.transaction(async (tx) => {
      for (let i = 0; i < count; i++)
        await tx.recordWrit({
          jti: randomBytes(16).toString('base64url'),
          spiffeId: 'spiffe://example.org/agent/x',
          jkt: randomBytes(32).toString('base64url').slice(0, 43),
          chainDigest: Buffer.alloc(32),
          lineage: [],
          taskId: 't-bulk',
          evidenceDigest: Buffer.alloc(32),
          issuedAt: now,
          expiresAt: now + 3_600_000,
          principal: 'https://idp#alice',
          parentJti: null,
          entryId: entry,
          platform: '',
          evidenceType: 'join_token',
          statusList: null,
          statusIdx: null,
          revokedAt: null,
          revokedSeq: null,
        });
    });
    return entry;
  }

  it('caps streams per peer address and overall with RESOURCE_EXHAUSTED; a closed stream gives its slot back', async () => {
    const w = await startServer({ revocation: { watch: { max_streams: 5, max_streams_per_peer: 3 } } });
    const streams: Array<ReturnType<typeof stalledWatch>> = [];
    try {
      const open = async (localAddress: string) => {
        const s = stalledWatch(w.address, w.bundlePem, { localAddress });
        streams.push(s);
        return s;
      };
      for (let i = 0; i < 3; i++) await open('127.0.0.1');
      await until(() => w.server.core.watchStreams.open === 3, 5000, 'three streams');
      const fourth = await (await open('127.0.0.1')).ended;
      expect(fourth.headers['grpc-status']).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
      expect(decodeURIComponent(String(fourth.headers['grpc-message']))).toBe(
        'revocation: at most 3 watch streams from one address; close one, or retry later',
      );
      // Another address has its own three, up to the overall five.
      await open('127.0.0.2');
      await open('127.0.0.2');
      await until(() => w.server.core.watchStreams.open === 5, 5000, 'five streams');
      const sixth = await (await open('127.0.0.2')).ended;
      expect(sixth.headers['grpc-status']).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
      expect(decodeURIComponent(String(sixth.headers['grpc-message']))).toBe('revocation: this issuer serves at most 5 watch streams; retry later');
      expect(w.server.core.watchStreams.open).toBe(5);
      streams[0]!.close();
      await until(() => w.server.core.watchStreams.open === 4, 5000, 'a slot given back');
      const again = await open('127.0.0.1');
      await until(() => w.server.core.watchStreams.open === 5, 5000, 'the slot taken again');
      expect(again.messages.length).toBe(0);
    } finally {
      for (const s of streams) s.close();
      await w.stop();
    }
  });

  it('stalled streams cut by a bulk revocation free their backlog at once and are reset; the shared byte budget holds', async () => {
    const BUDGET = 256 * 1024;
    const w = await startServer({ revocation: { watch: { max_streams_per_peer: 100, max_buffered_bytes: BUDGET } } });
    const core = w.server.core;
    const stalled: Array<ReturnType<typeof stalledWatch>> = [];
    try {
      const entry = await bulkEntry(w, 4500);
      const since = await core.feed.newest();
      for (let i = 0; i < 20; i++) stalled.push(stalledWatch(w.address, w.bundlePem, { since }));
      await until(() => core.feed.subscriberCount === 20, 10_000, 'twenty subscribers');
      let peak = 0;
      const sample = setInterval(() => {
        peak = Math.max(peak, core.watchStreams.buffered);
      }, 1);
      await revokeAsOperator(w.adminSocket, 'entry', entry, 'r'.repeat(500));
      await until(() => core.feed.subscriberCount === 0, 20_000, 'every stalled subscriber cut');
      clearInterval(sample);
      // Cut: nothing is queued for them any more, and the budget was never passed.
      expect(core.watchStreams.buffered).toBe(0);
      expect(peak).toBeLessThanOrEqual(BUDGET);
      // They never read: after the grace their HTTP/2 streams are reset (RST_STREAM
      // ENHANCE_YOUR_CALM, RESOURCE_EXHAUSTED to a gRPC client) and every slot is given back.
      const ends = await Promise.all(stalled.map((s) => s.ended));
      expect(ends.map((e) => e.rstCode)).toEqual(stalled.map(() => http2.constants.NGHTTP2_ENHANCE_YOUR_CALM));
      expect(core.watchStreams.open).toBe(0);
      // Nothing of the 4,500 events was held for them: a window now brings nothing.
      for (const s of stalled) s.open();
      await new Promise((r) => setTimeout(r, 300));
      expect(stalled.every((s) => s.messages.length === 0)).toBe(true);
    } finally {
      for (const s of stalled) s.close();
      await w.stop();
    }
  }, 60_000);
});
