/**
 * The sidecar (`writ agent run`) benchmarks, with in-process sidecars (each its own Unix socket,
 * Workload API server and state machine; the process start of a real `writ agent run` is not
 * counted) against one real issuer on loopback, join-token evidence:
 * - sidecar_spawn_to_svid_p50/p99_ms: from the daemon's start (socket bound, attestation begun)
 *   to the first FetchX509SVID message a Workload API client receives, one sidecar at a time;
 * - sidecar_spawn_storm_100_ms: 100 sidecars started at once, until every one has delivered its
 *   first FetchX509SVID message; sidecar_spawn_storm_100_p99_ms per sidecar within the storm;
 * - sidecar_fetch_jwt_svid_per_s: FetchJWTSVID calls answered from the cache, 16 in flight on
 *   one connection, against a floor: a bare grpc-js server on a Unix socket answering the same
 *   response bytes with no checks (same generated descriptors), measured interleaved with it.
 * - sidecar_spawn_to_svid_tpm_p50/p99_ms (with swtpm): the same as sidecar_spawn_to_svid_*, with
 *   TPM evidence (EK certificate, AK credential activation, quote) from one swtpm against an issuer
 *   trusting its manufacturer CA; the agent key in the process, so FetchX509SVID delivers it.
 * BENCH_SIDECAR_SPAWNS (default 50) and BENCH_SIDECAR_TPM_SPAWNS (default 20) set the sequential samples.
 */
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tpmProducer } from '../../src/attestation/tpm/producer.js';
import { joinTokenProducer } from '../../src/attestation/join-token/plugin.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { JWTSVIDResponseSchema, SpiffeWorkloadAPI } from '../../src/gen/spiffe/workload/workload_pb.js';
import { grpcServiceDefinition } from '../../src/rpc/grpc-adapter.js';
import { renewingSource } from '../../src/sidecar/identity-source.js';
import { runSidecar, type RunningSidecar } from '../../src/sidecar/run.js';
import { startServer } from '../helpers/server.js';
import { securityHeader, workloadClient, type WorkloadClient } from '../helpers/sidecar.js';
import { HAVE_SWTPM, startSwtpm } from '../helpers/swtpm.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;

const pct = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const round = (x: number) => Math.round(x * 10) / 10;

function firstX509(client: WorkloadClient): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = client.FetchX509SVID({}, securityHeader()) as grpc.ClientReadableStream<unknown>;
    call.on('data', () => {
      call.on('error', () => {});
      call.cancel();
      resolve();
    });
    call.on('error', reject);
  });
}

/** Calls per second with 16 in flight, after a warm-up. */
async function rateOf(call: () => Promise<unknown>, ms: number): Promise<number> {
  for (let i = 0; i < 200; i++) await call();
  let done = 0;
  const t0 = performance.now();
  const until = t0 + ms;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (performance.now() < until) {
        await call();
        done++;
      }
    }),
  );
  return Math.round(done / ((performance.now() - t0) / 1000));
}

/** The floor: grpc-js on a Unix socket answering FetchJWTSVID with a fixed response, nothing checked. */
async function bareFloor(path: string, spiffeId: string, token: string): Promise<{ client: WorkloadClient; close(): Promise<void> }> {
  const server = new grpc.Server();
  const response = create(JWTSVIDResponseSchema, { svids: [{ spiffeId, svid: token }] });
  server.addService(grpcServiceDefinition(SpiffeWorkloadAPI), {
    fetchJWTSVID: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, response),
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${path}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  const client = workloadClient(path);
  return {
    client,
    close: async () => {
      client.close();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
    },
  };
}

export async function sidecarBench(record: Record): Promise<void> {
  const s = await startServer({}, {});
  const dir = mkdtempSync(join(tmpdir(), 'wbs-'));
  const admin = adminClients(s.adminSocket).admin;
  let seq = 0;
  const token = async () => (await admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org/agent/bench-${seq++}` })).token;
  /** Starts one sidecar; resolves with it and its time to the first FetchX509SVID message. */
  const spawn = async (tok: string): Promise<{ sc: RunningSidecar; client: WorkloadClient; ms: number }> => {
    const path = join(dir, `s${seq++}.sock`);
    const t0 = performance.now();
    const sc = await runSidecar({
      source: renewingSource(
        { server: s.address, bundlePem: s.bundlePem, producer: joinTokenProducer, values: { 'join-token': tok }, timeoutMs: 60_000 },
        Date.now,
      ),
      now: Date.now,
      socketPath: path,
    });
    await sc.sidecar.ready();
    const client = workloadClient(path);
    await firstX509(client);
    return { sc, client, ms: performance.now() - t0 };
  };
  const stop = async (x: { sc: RunningSidecar; client: WorkloadClient }) => {
    x.client.close();
    await x.sc.close();
  };
  try {
    const n = Number(process.env.BENCH_SIDECAR_SPAWNS ?? 50);
    for (let i = 0; i < 5; i++) await stop(await spawn(await token()));
    const lat: number[] = [];
    for (let i = 0; i < n; i++) {
      const x = await spawn(await token());
      lat.push(x.ms);
      await stop(x);
    }
    lat.sort((a, b) => a - b);
    record('sidecar_spawn_to_svid_p50_ms', round(pct(lat, 50)), 'ms');
    record('sidecar_spawn_to_svid_p99_ms', round(pct(lat, 99)), 'ms');

    const tokens = await Promise.all(Array.from({ length: 100 }, () => token()));
    const t0 = performance.now();
    const storm = await Promise.all(tokens.map((t) => spawn(t)));
    const all = performance.now() - t0;
    const each = storm.map((x) => x.ms).sort((a, b) => a - b);
    record('sidecar_spawn_storm_100_ms', round(all), 'ms');
    record('sidecar_spawn_storm_100_p99_ms', round(pct(each, 99)), 'ms');
    const keep = storm.pop()!;
    await Promise.all(storm.map(stop));

    // FetchJWTSVID from the cache: the audience was minted once, then every call is a cache hit.
    const callOn = (client: WorkloadClient) => () =>
      new Promise<unknown>((resolve, reject) =>
        client.FetchJWTSVID({ audience: ['https://rp.example'] }, securityHeader(), (e: grpc.ServiceError | null, r: unknown) => (e ? reject(e) : resolve(r))),
      );
    const ours = callOn(keep.client);
    const sample = (await ours()) as { svids: Array<{ spiffe_id: string; svid: string }> };
    const floor = await bareFloor(join(dir, 'floor.sock'), sample.svids[0]!.spiffe_id, sample.svids[0]!.svid);
    const floorCall = callOn(floor.client);
    const r = { ours: [] as number[], floor: [] as number[] };
    for (let round = 0; round < 3; round++) {
      r.ours.push(await rateOf(ours, 1_000));
      r.floor.push(await rateOf(floorCall, 1_000));
    }
    const best = (xs: number[]) => Math.max(...xs);
    record('sidecar_fetch_jwt_svid_per_s', best(r.ours), 'calls/s', best(r.floor));
    await floor.close();
    await stop(keep);
  } finally {
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Spawn to first X.509-SVID with TPM evidence on swtpm, one sidecar at a time. */
export async function sidecarTpmBench(record: Record): Promise<void> {
  if (!HAVE_SWTPM) return;
  const tpm = await startSwtpm();
  const dir = mkdtempSync(join(tmpdir(), 'wbt-'));
  let s: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    s = await startServer({
      attestation: { tpm: { manufacturer_roots: [tpm.rootPem], intermediates: [tpm.intermediatePem], pcr_selection: 'sha256:0,1,2,3,7' } },
    });
    const t = await tpm.open();
    const ek = new X509Certificate(await t.nvRead(0x01c00002));
    await t.close();
    const ekHash = createHash('sha256')
      .update(ek.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex');
    await adminClients(s.adminSocket).admin.createEntry({
      entry: { spiffeId: 'spiffe://example.org/agent/bench-tpm', selectors: [{ type: 'tpm', value: `ek_hash:${ekHash}` }] },
    });
    const server = s;
    let seq = 0;
    const once = async (): Promise<number> => {
      const path = join(dir, `t${seq++}.sock`);
      const t0 = performance.now();
      const sc = await runSidecar({
        source: renewingSource(
          { server: server.address, bundlePem: server.bundlePem, producer: tpmProducer, values: { tpm: tpm.spec }, timeoutMs: 60_000 },
          Date.now,
        ),
        now: Date.now,
        socketPath: path,
      });
      const client = workloadClient(path);
      try {
        await sc.sidecar.ready();
        await firstX509(client);
        return performance.now() - t0;
      } finally {
        client.close();
        await sc.close();
      }
    };
    await once();
    const n = Number(process.env.BENCH_SIDECAR_TPM_SPAWNS ?? 20);
    const lat: number[] = [];
    for (let i = 0; i < n; i++) lat.push(await once());
    lat.sort((a, b) => a - b);
    record('sidecar_spawn_to_svid_tpm_p50_ms', round(pct(lat, 50)), 'ms');
    record('sidecar_spawn_to_svid_tpm_p99_ms', round(pct(lat, 99)), 'ms');
  } finally {
    await s?.stop();
    await tpm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
