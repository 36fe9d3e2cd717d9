/**
 * Revocation at the third hop, through sidecars (group `sidecar-revocation`, called from run.ts):
 *   sidecar_revocation_hop3_p50_ms / _p99_ms — from `Revoke` returning to the third-hop sidecar
 *     refusing to serve, as a client on its socket sees it: its open writ.agent.v1 FetchWrit
 *     stream ends with PERMISSION_DENIED (ERR_REVOKED). Each round: principal → A → B → C, three
 *     sidecars (runSidecar: Unix socket, AgentService, Workload API, each with its own revocation
 *     guard subscribed to Watch over loopback TLS), A with the principal's root grant, B and C
 *     chained through the parent's socket (delegateFromParent), each attested with a join token;
 *     then the operator revokes the root grant on the admin socket. The issuer is the real
 *     `writ server` in a child process; the three sidecars and the measuring client share this
 *     process. The issuer hands the event to every stream before it answers Revoke, so a refusal
 *     can come before the answer: counted as 0 ms (and counted in the unit text); hence also
 *   sidecar_revocation_hop3_from_call_p50_ms / _p99_ms — the same, from calling Revoke.
 * Knobs: BENCH_SIDECAR_ROUNDS (60), BENCH_DEBUG=1 (every latency, sorted).
 */
import { spawn } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { BUILTIN_PRODUCERS } from '../../src/agent/builtins.js';
import { createGrant } from '../../src/agent/grant-client.js';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { parseGrant } from '../../src/delegation/grant.js';
import { AgentService, type FetchWritResponse } from '../../src/gen/writ/agent/v1/agent_pb.js';
import { securityHeaderInterceptor } from '../../src/sidecar/security-header.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { grpcClientConstructor } from '../../src/rpc/grpc-adapter.js';
import { producerSource } from '../../src/sidecar/identity-source.js';
import { delegateFromParent } from '../../src/sidecar/parent-client.js';
import { runSidecar, type RunningSidecar } from '../../src/sidecar/run.js';
import { startOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { revokeAsOperator } from '../helpers/revocation.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;

const ROUNDS = Number(process.env.BENCH_SIDECAR_ROUNDS ?? 60);
const RUN_JS = fileURLToPath(new URL('../../src/cli/run.js', import.meta.url));
const joinToken = BUILTIN_PRODUCERS.find((p) => p.type === 'join_token')!;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const round2 = (x: number) => Math.round(x * 100) / 100;

export async function sidecarRevocationBench(record: Record): Promise<void> {
  const oidc = await startOidc();
  const dir = mkdtempSync(join(tmpdir(), 'wbsr-'));
  const data = join(dir, 'data');
  writeFileSync(join(dir, 'writ.yaml'), `principals:\n  - { issuer: ${oidc.issuer}, audience: writ }\n`);
  const child = spawn(
    process.execPath,
    [
      RUN_JS,
      'server',
      '--data-dir',
      data,
      '--listen',
      '127.0.0.1:0',
      '--trust-domain',
      'example.org',
      '--config',
      join(dir, 'writ.yaml'),
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const running: RunningSidecar[] = [];
  try {
    let stderr = '';
    const address = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`bench: writ server did not start: ${stderr}`)), 60_000);
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /public gRPC \(TLS\) : (\S+)/.exec(stderr);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
      child.once('exit', (c) => reject(new Error(`bench: writ server exited with ${c}: ${stderr}`)));
    });
    const adminSocket = join(data, 'admin.sock');
    const admin = adminClients(adminSocket).admin;
    await admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    const bundlePem = readFileSync(join(data, 'bundle.pem'), 'utf8');

    const sidecar = async (name: string, key: KeyObject, grants: readonly string[]): Promise<RunningSidecar & { path: string }> => {
      const tok = await admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org/agent/${name}` });
      const socket = join(dir, `${name}.sock`);
      const r = await runSidecar({
        source: producerSource({ server: address, bundlePem, producer: joinToken, values: { 'join-token': tok.token }, key, grants }, Date.now),
        now: Date.now,
        socketPath: socket,
        revocation: { addresses: [address], connector: grpcWatchConnector(bundlePem) },
      });
      running.push(r);
      await r.sidecar.ready();
      return { ...r, path: socket };
    };
    const newKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const jkt = (k: KeyObject) => jwkThumbprint(createPublicKey(k));
    const Client = grpcClientConstructor(AgentService);

    const fromReturn: number[] = [];
    const fromCall: number[] = [];
    let beforeReturn = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const [ka, kb, kc] = [newKey(), newKey(), newKey()];
      const root = await createGrant(address, bundlePem, {
        subjectToken: oidc.token('alice', { groups: ['eng'] }),
        subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
        taskId: `bench-sidecar-${i}`,
        goal: 'triage the open issues of acme/widgets',
        ttlSeconds: 1800,
        scope: [{ action: 'repo:*', resource: 'repo://acme/*' }],
        boundaries: [{ action: '*', resource: 'repo://acme/secrets*' }],
        maxDepth: 3,
        delegateJkt: jkt(ka),
      });
      const A = await sidecar(`r${i}-planner`, ka, [root.grant]);
      const gb = await delegateFromParent({ socket: A.path, childJkt: jkt(kb), scope: [{ action: 'repo:read', resource: 'repo://acme/*' }] });
      const B = await sidecar(`r${i}-researcher`, kb, gb.grants);
      const gc = await delegateFromParent({ socket: B.path, childJkt: jkt(kc), scope: [{ action: 'repo:read', resource: 'repo://acme/widgets*' }] });
      const C = await sidecar(`r${i}-reader`, kc, gc.grants);
      await Promise.all([A, B, C].map((s) => s.guard!.synced()));
      const client = new Client(`unix:${C.path}`, grpc.credentials.createInsecure(), { interceptors: [securityHeaderInterceptor] });
      const stream = (client as unknown as { fetchWrit(r: unknown): grpc.ClientReadableStream<FetchWritResponse> }).fetchWrit({});
      await new Promise<void>((resolve, reject) => {
        stream.once('data', () => resolve());
        stream.once('error', reject);
      });
      let refusedAt = 0;
      const refused = new Promise<void>((resolve) =>
        stream.once('error', (e: grpc.ServiceError) => {
          refusedAt = performance.now();
          if (e.code !== grpc.status.PERMISSION_DENIED) throw new Error(`bench: C's stream ended with ${grpc.status[e.code]}: ${e.details}`);
          resolve();
        }),
      );
      const t0 = performance.now();
      await revokeAsOperator(adminSocket, 'grant', parseGrant(root.grant).claims.jti, 'bench');
      const t1 = performance.now();
      await refused;
      if (refusedAt < t1) beforeReturn++;
      fromReturn.push(Math.max(0, refusedAt - t1));
      fromCall.push(refusedAt - t0);
      client.close();
      for (const s of running.splice(0)) await s.close();
    }
    if (process.env.BENCH_DEBUG)
      console.log(
        `sidecar-revocation: from return, sorted: ${[...fromReturn]
          .sort((a, b) => a - b)
          .map((x) => x.toFixed(1))
          .join(' ')}`,
      );
    const unit = (what: string) =>
      `ms, ${what}, ${ROUNDS} rounds, three sidecars per round (socket client on the third); ${beforeReturn} refusals came before Revoke returned (0 ms)`;
    record('sidecar_revocation_hop3_p50_ms', round2(pct(fromReturn, 50)), unit('from Revoke returning to the third-hop sidecar refusing'));
    record('sidecar_revocation_hop3_p99_ms', round2(pct(fromReturn, 99)), unit('from Revoke returning to the third-hop sidecar refusing; budget 50'));
    record('sidecar_revocation_hop3_from_call_p50_ms', round2(pct(fromCall, 50)), unit('from calling Revoke'));
    record('sidecar_revocation_hop3_from_call_p99_ms', round2(pct(fromCall, 99)), unit('from calling Revoke'));
  } finally {
    for (const s of running.splice(0)) await s.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await oidc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
