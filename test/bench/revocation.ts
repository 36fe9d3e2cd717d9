/**
 * Revocation benchmarks (called from run.ts):
 *   writ_verify_standard_3hop_with_revocation — standard verification of a three-hop writ with a
 *     Watch-fed revocation source attached (holding 10,000 unrelated revocations), against the
 *     same floor as writ_verify_standard_3hop: two raw ES256 verifications; the unit text gives
 *     the rate without the source measured just before, in the same run.
 *   revocation_hop3_p50_ms / _p99_ms — from Revoke returning to a relying party refusing the
 *     writ three hops down (principal → A → B → C) that it re-verifies on each event, with 1,000
 *     relying parties subscribed to Watch on loopback, each on a TLS connection of its own. The
 *     issuer is the real `writ server` in a child process; 999 relying parties run in another
 *     child process (relying parties live elsewhere, not in the measuring process); the measured
 *     one subscribes last, so it is the 1,000th in the issuer's fan-out. Each round revokes the
 *     root grant of a fresh chain, as the operator, on the admin socket. The issuer hands the
 *     event to every stream before it answers Revoke, so a refusal can come before the answer
 *     (counted as 0 ms, and counted in the unit text); hence also
 *   revocation_hop3_from_call_p50_ms / _p99_ms — the same, from calling Revoke;
 *   revocation_fanout_all_p99_ms — from Revoke returning until every one of the 1,000 had it;
 *   revocation_issuer_cpu_per_event_ms — the issuer's CPU per revocation (what the last
 *     subscriber waits for even on an idle core), against floor_http2_tls_fanout_cpu_ms: raw
 *     node:http2 over TLS writing one small frame to as many sessions (h2-fanout-floor.ts).
 * Knobs: BENCH_SUBSCRIBERS (1000), BENCH_REVOCATIONS (100 rounds), BENCH_DEBUG=1 (one line per
 * round), BENCH_PROFILE_DIR (a CPU profile of the issuer).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, sign, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { isWritError } from '../../src/errors.js';
import { WatchRevocationSource } from '../../src/revocation/watch-source.js';
import { parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { verifyWrit, type WritTrust } from '../../src/writ/verify.js';
import { FakeWatchConnector, FakeWatchIssuer } from '../fakes/watch-issuer.js';
import { h2FanoutFloor } from './h2-fanout-floor.js';
import { startOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { revokeAsOperator, threeHops, type Hop } from '../helpers/revocation.js';
import { FakeIssuer, agent, hop } from '../helpers/writ-fixture.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;

const RUN_MS = Number(process.env.BENCH_MS ?? 1000);
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
const ROUNDS = Number(process.env.BENCH_REVOCATIONS ?? 100);
const RUN_JS = fileURLToPath(new URL('../../src/cli/run.js', import.meta.url));
/** BENCH_PROFILE_DIR: write a CPU profile of the issuer there (Node --cpu-prof), to see where a revocation's time goes. */
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;
const SUBSCRIBERS_JS = fileURLToPath(new URL('./revocation-subscribers.js', import.meta.url));

/** Best of three timed runs of a synchronous op, ops/s (as run.ts measures). */
function rate(fn: () => unknown): number {
  for (let i = 0; i < 200; i++) fn();
  let best = 0;
  for (let r = 0; r < 3; r++) {
    let n = 0;
    const end = performance.now() + RUN_MS;
    while (performance.now() < end) {
      for (let i = 0; i < 20; i++) fn();
      n += 20;
    }
    best = Math.max(best, n / (RUN_MS / 1000));
  }
  return best;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

/** CPU time (user + system) of a process so far, ms, from /proc (undefined elsewhere). */
function cpuMs(pid: number | undefined): number | undefined {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`bench: ${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function verifyWithRevocation(record: Record): Promise<void> {
  const iss = new FakeIssuer();
  const [A, B, C] = [agent('a'), agent('b'), agent('c')];
  const now = Math.floor(Date.now() / 1000);
  const root = iss.rootGrant(A, { now: now - 10 });
  const g1 = hop(root, A, B, now - 9, { scope: [{ action: 'repo:read', resource: 'repo://acme/*' }] });
  const g2 = hop(g1, B, C, now - 8, { scope: [{ action: 'repo:read', resource: 'repo://acme/widgets*' }] });
  const { writ } = iss.writ(C, [root, g1, g2], { now: now - 5 });
  const pub = createPublicKey(iss.key);
  const msg = Buffer.from(writ.split('.').slice(0, 2).join('.'));
  const sig = sign('sha256', msg, { key: iss.key, dsaEncoding: 'ieee-p1363' });
  const floor = rate(() => verify('sha256', msg, { key: pub, dsaEncoding: 'ieee-p1363' }, sig)) / 2;

  const issuer = new FakeWatchIssuer(() => Date.now());
  for (let i = 0; i < 10_000; i++) issuer.revoke('task', `unrelated-${i}`);
  // The timed loop blocks the event loop for seconds, so no heartbeat can arrive meanwhile: a
  // staleness limit that outlasts it (the check itself costs the same).
  const source = new WatchRevocationSource({ addresses: ['issuer'], connector: new FakeWatchConnector({ issuer }), maxStalenessMs: 600_000 }).start();
  await source.synced();
  const heartbeats = setInterval(() => issuer.heartbeat(), 1000);
  try {
    const at = new Date();
    const proofs: string[] = [];
    while (proofs.length < 60_000) proofs.push(createProof(writ, C.key, { audience: 'rp', method: 'GET /x', now: at }));
    // Each run its own cache, with room for every proof of one key (the default quota is 30,000 per key).
    const bare = { writ, trust: iss.trust, audience: 'rp', method: 'GET /x', now: at, replayCache: new ProofReplayCache(1_000_000, 1_000_000) };
    const base = { ...bare, replayCache: new ProofReplayCache(1_000_000, 1_000_000), revocation: source };
    if (!verifyWrit({ ...base, proof: proofs.pop()! }).checks.some((c) => c.check.startsWith('not revoked:'))) throw new Error('bench: revocation not checked');
    // The same verification without the source, just before, so the source's own cost shows apart from the machine's mood.
    const without = rate(() => verifyWrit({ ...bare, proof: proofs.pop()! }));
    while (proofs.length < 60_000) proofs.push(createProof(writ, C.key, { audience: 'rp', method: 'GET /x', now: at }));
    const withSource = rate(() => verifyWrit({ ...base, proof: proofs.pop()! }));
    record(
      'writ_verify_standard_3hop_with_revocation',
      withSource,
      `ops/s (Watch-fed source holding 10,000 revocations; floor = 2 ES256 verifications; without the source in the same run: ${Math.round(without)} ops/s)`,
      floor,
    );
  } finally {
    clearInterval(heartbeats);
    source.close();
  }
}

/** Returns the issuer's CPU per revocation, ms (undefined without /proc). */
async function hop3Latency(record: Record): Promise<number | undefined> {
  const oidc = await startOidc();
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-revocation-'));
  const data = join(dir, 'data');
  // Every subscriber is on loopback: one peer address, so the per-peer Watch cap is raised.
  writeFileSync(join(dir, 'writ.yaml'), `principals:\n  - { issuer: ${oidc.issuer}, audience: writ }\nrevocation:\n  watch: { max_streams_per_peer: 20000 }\n`);
  const child = spawn(
    process.execPath,
    [
      ...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []),
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
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const sources: WatchRevocationSource[] = [];
  const children: ChildProcess[] = [child];
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
    const admin = adminClients(adminSocket);
    await admin.admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    const bundlePem = readFileSync(join(data, 'bundle.pem'), 'utf8');
    const b = parseSpiffeBundle('example.org', (await admin.bundle.getBundle({})).jwks);
    const trust: WritTrust = { issuer: 'spiffe://example.org', writKeys: b.writAuthorities! };
    const w = { address, bundlePem, adminSocket };

    // Fresh three-hop chains, one per round (a revoked chain stays revoked).
    const chains: Hop[] = [];
    for (let i = 0; i < ROUNDS; i += 4) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(4, ROUNDS - i) }, (_, j) => threeHops(w, oidc, { taskId: `bench-${i + j}`, name: `b${i + j}` }).then((x) => x.C)),
      );
      chains.push(...batch);
    }

    // The other relying parties: a process of their own, subscribed first.
    const passive = spawn(process.execPath, [SUBSCRIBERS_JS, address, join(data, 'bundle.pem'), String(SUBSCRIBERS - 1)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(passive);
    const allHad = new Map<number, number>();
    let passiveSynced = false;
    let lines = '';
    passive.stdout.on('data', (d: Buffer) => {
      lines += d.toString();
      for (let i = lines.indexOf('\n'); i >= 0; i = lines.indexOf('\n')) {
        const line = lines.slice(0, i);
        lines = lines.slice(i + 1);
        if (line === 'synced') passiveSynced = true;
        else {
          const [seq, wall] = line.split(' ').map(Number);
          allHad.set(seq!, wall! - performance.timeOrigin);
        }
      }
    });
    await until(() => passiveSynced, 300_000, `${SUBSCRIBERS - 1} subscribers in sync`);
    // The measured one subscribes last: it is the last in the issuer's fan-out.
    const measured = new WatchRevocationSource({ addresses: [address], connector: grpcWatchConnector(bundlePem, { ownConnection: true }) }).start();
    sources.push(measured);
    await measured.synced(60_000);
    const cache = new ProofReplayCache();
    const proofs = new Map<Hop, string[]>();
    const recheck = (c: Hop): string => {
      try {
        verifyWrit({
          writ: c.writ,
          proof: proofs.get(c)!.pop()!,
          trust,
          audience: 'rp',
          method: 'GET /x',
          now: new Date(),
          replayCache: cache,
          revocation: measured,
        });
        return 'valid';
      } catch (e) {
        if (isWritError(e)) return e.code;
        throw e;
      }
    };
    let current: { hop: Hop; refusedAt?: number } | undefined;
    // The relying party three hops down re-verifies its writ on each event.
    measured.onRevoked(() => {
      if (current && current.refusedAt === undefined && recheck(current.hop) === 'ERR_WRIT_REVOKED') current.refusedAt = performance.now();
    });

    const hop3: number[] = [];
    const fromCall: number[] = [];
    const fanout: number[] = [];
    let beforeAnswer = 0;
    const cpu0 = cpuMs(child.pid);
    for (const c of chains) {
      proofs.set(
        c,
        Array.from({ length: 8 }, () => createProof(c.writ, c.key, { audience: 'rp', method: 'GET /x', now: new Date() })),
      );
      if (recheck(c) !== 'valid') throw new Error('bench: a fresh chain does not verify');
      current = { hop: c };
      const t0 = performance.now();
      const r = await revokeAsOperator(adminSocket, 'grant', c.claims.lineage[0]!, 'bench');
      const t1 = performance.now();
      const seq = Number(r.sequence);
      await until(() => current!.refusedAt !== undefined && allHad.has(seq), 30_000, 'every relying party');
      const refused = current.refusedAt!;
      if (refused < t1) beforeAnswer++;
      hop3.push(Math.max(0, refused - t1));
      fromCall.push(refused - t0);
      fanout.push(Math.max(0, Math.max(allHad.get(seq)!, refused) - t1));
      if (process.env.BENCH_DEBUG)
        console.log(`call→return ${(t1 - t0).toFixed(1)} measured ${(refused - t0).toFixed(1)} all ${(allHad.get(seq)! - t0).toFixed(1)}`);
      current = undefined;
      await new Promise((r) => setTimeout(r, 20));
    }
    const cpu1 = cpuMs(child.pid);
    const what = `${SUBSCRIBERS} subscribed relying parties, each on its own TLS connection, the measured one last in the fan-out; issuer and ${SUBSCRIBERS - 1} others in child processes; ${chains.length} revocations of a fresh root grant`;
    record('revocation_hop3_p50_ms', pct(hop3, 50), `ms (Revoke returning → hop-3 writ refused on re-verification; ${what})`);
    record(
      'revocation_hop3_p99_ms',
      pct(hop3, 99),
      `ms (${SUBSCRIBERS} subscribers; ${beforeAnswer} of ${hop3.length} refusals came before Revoke's answer reached the caller, counted as 0)`,
    );
    record('revocation_hop3_from_call_p50_ms', pct(fromCall, 50), `ms (from calling Revoke: transaction, fan-out, refusal; ${SUBSCRIBERS} subscribers)`);
    record('revocation_hop3_from_call_p99_ms', pct(fromCall, 99), `ms (from calling Revoke; ${SUBSCRIBERS} subscribers)`);
    record('revocation_fanout_all_p99_ms', pct(fanout, 99), `ms (Revoke returning → the event at every one of the ${SUBSCRIBERS})`);
    return cpu0 !== undefined && cpu1 !== undefined ? (cpu1 - cpu0) / chains.length : undefined;
  } finally {
    for (const s of sources) s.close();
    for (const c of children.reverse()) {
      await new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once('exit', () => resolve());
        c.kill('SIGTERM');
      });
    }
    await oidc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function revocationBenches(record: Record): Promise<void> {
  await verifyWithRevocation(record);
  const issuerCpu = await hop3Latency(record);
  // The platform's floor for the same fan-out: raw node:http2 over TLS to as many sessions.
  const floor = await h2FanoutFloor(SUBSCRIBERS, 20);
  const floorCpu = pct(floor.cpuMs, 50);
  record(
    'floor_http2_tls_fanout_cpu_ms',
    floorCpu,
    `ms of server CPU to write one 120-byte DATA frame to each of ${SUBSCRIBERS} TLS sessions with raw node:http2 (median of 20; all received p50 ${pct(floor.allMs, 50).toFixed(1)} ms)`,
  );
  if (issuerCpu !== undefined) {
    record(
      'revocation_issuer_cpu_per_event_ms',
      issuerCpu,
      `ms of the issuer's CPU (user+sys) per revocation with ${SUBSCRIBERS} subscribers, transaction and heartbeats included; floor = raw node:http2 fan-out (ratio > 1: slower)`,
      floorCpu,
    );
  }
}
