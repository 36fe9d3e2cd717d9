/**
 * End-to-end handshakes over gRPC/TLS on loopback against their floor, measured in the same run:
 * batches that interleave the floor (a bare bidi stream with the issuer's TLS setup and the
 * handshake's message sizes, on a new channel and on reused channels), join-token handshakes
 * and 3-grant-chain handshakes; each series once with the clients in this process (client and
 * server share the process, as before) and once with the clients in a forked process (this
 * process is then only the server). A series' rate is all its operations over all its batches'
 * wall time; p50/p99 over all its operations; CPU per operation of each process beside them.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { attest } from '../../src/agent/attest-client.js';
import { createGrant } from '../../src/agent/grant-client.js';
import { newJoinToken } from '../../src/attestation/join-token/join-token.js';
import { serverSettings as buildServerSettings } from '../../src/server/settings.js';
import { encodePem } from '../../src/der/pem.js';
import { delegateGrant } from '../../src/delegation/grant.js';
import { AttestRequestSchema, AttestResponseSchema } from '../../src/gen/writ/v1/attestation_pb.js';
import { PolicySnapshots } from '../../src/issuance/policies.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { selectorsKey } from '../../src/registration/entry.js';
import { SERVER_ID_PATH, WritServer } from '../../src/server/server.js';
import { spiffeIdFromParts } from '../../src/spiffe/id.js';
import { parseWrit } from '../../src/writ/writ.js';
import { startOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { ClientProcess, runJob, type ClientJob } from './client-process.js';
import { startFloorServer, type HandshakeSizes } from './grpc-floor.js';
import { combine, profiled, withCpu, type LoadResult, type SeriesStats } from './load.js';

/** Operations of each series each client process warms up with before the timed batches. */
const WARM_UP = 20;

export interface HandshakeBenchResults {
  readonly sizes: { readonly joinToken: HandshakeSizes; readonly chain: HandshakeSizes };
  /** Operations per series, split into `batches` interleaved batches. */
  readonly total: number;
  readonly batches: number;
  readonly concurrency: number;
  /** series name → result; names as in BENCH_OUT. */
  readonly series: ReadonlyMap<string, SeriesStats>;
}

/** The sizes of the four protobuf messages of one real handshake (what attest() and the issuer send). */
async function measureSizes(
  address: string,
  bundlePem: string,
  key: KeyObject,
  jwtAudiences: string[],
  grants: string[],
  token: string,
): Promise<HandshakeSizes> {
  let challenge: { nonce: Uint8Array; payload: Uint8Array } | undefined;
  const out = await attest({
    server: address,
    bundlePem,
    evidenceType: 'join_token',
    key,
    jwtAudiences,
    grants,
    respond: (c) => {
      challenge = c;
      return Buffer.from(token);
    },
  });
  if (!challenge) throw new Error('bench: no challenge');
  const publicKey = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const req = (step: Parameters<typeof create<typeof AttestRequestSchema>>[1]) => toBinary(AttestRequestSchema, create(AttestRequestSchema, step)).length;
  const res = (step: Parameters<typeof create<typeof AttestResponseSchema>>[1]) => toBinary(AttestResponseSchema, create(AttestResponseSchema, step)).length;
  return {
    hello: req({ step: { case: 'hello', value: { evidenceType: 'join_token', publicKey, jwtAudiences, grants, writAudiences: [] } } }),
    challenge: res({ step: { case: 'challenge', value: { nonce: challenge.nonce, payload: challenge.payload } } }),
    // The first evidence carries the key proof: an ES256 signature, 64 bytes.
    evidence: req({ step: { case: 'evidence', value: { payload: Buffer.from(token), keyProof: Buffer.alloc(64) } } }),
    result: res({
      step: {
        case: 'result',
        value: {
          spiffeId: out.spiffeId,
          svidChain: out.svidChain,
          bundleJwks: out.bundleJwks,
          bundlePem: out.bundlePem,
          jwtSvids: out.jwtSvids,
          writ: out.writ ?? '',
        },
      },
    }),
  };
}

/** A serving certificate and key for the floor server, minted as the issuer mints its own. */
async function floorServingCredentials(server: WritServer): Promise<{ cert: string; key: string }> {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const now = Date.now();
  const svid = await server.ca.x509Minter().mint({
    spiffeId: spiffeIdFromParts(server.settings.trustDomain, SERVER_ID_PATH),
    spki: createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' }),
    notBefore: new Date(now - 10_000),
    notAfter: new Date(now + server.settings.svid.x509TtlMs),
    dnsNames: server.settings.servingNames.dns,
    ipAddresses: server.settings.servingNames.ips,
  });
  return { cert: svid.chain.map((c) => encodePem('CERTIFICATE', c)).join(''), key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** One token (and an entry for it) per handshake; returned in creation order. */
async function makeTokens(server: WritServer, n: number): Promise<string[]> {
  const tokens: string[] = [];
  await server.store.transaction(async (tx) => {
    for (let i = 0; i < n; i++) {
      const { token, record: rec } = newJoinToken(new Date(), 3600_000);
      await tx.createJoinToken(rec);
      const sels = [{ type: 'join_token', value: rec.id }];
      await tx.createEntry(
        { id: `e${i}`, spiffeId: `spiffe://example.org/agent/${i}`, selectors: sels, x509SvidTtl: 0, jwtSvidTtl: 0, scopeCeiling: [], hint: '', createdAt: i },
        selectorsKey(sels),
      );
      tokens.push(token);
    }
  });
  return tokens;
}

export async function handshakeBenches(): Promise<HandshakeBenchResults> {
  const total = Number(process.env.BENCH_HANDSHAKES ?? 400);
  const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 8);
  const batches = Number(process.env.BENCH_BATCHES ?? 4);
  const perBatch = Math.ceil(total / batches);
  const oidc = await startOidc();
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-bench-'));
  const settings = buildServerSettings({
    data_dir: dataDir,
    listen: '127.0.0.1:0',
    trust_domain: 'example.org',
    principals: [{ issuer: oidc.issuer, audience: 'writ' }],
  });
  // Logging as in production (info: one line per handshake), written to /dev/null synchronously.
  const logger = pino({ level: 'info', base: { svc: 'writ-server' } }, pino.destination({ dest: '/dev/null', sync: true }));
  const server = await WritServer.start(settings, { logger, env: {} });
  const child = ClientProcess.start();
  let floorServer: Awaited<ReturnType<typeof startFloorServer>> | undefined;
  try {
    const address = server.address;
    const bundlePem = readFileSync(server.bundlePemPath, 'utf8');
    await new PolicySnapshots({ store: server.store, clock: { now: () => new Date() } }).push([{ name: 'acme.cedar', text: POLICY }]);
    // Two handshake series × 2 (in-process, client process), plus warm-ups and set-up.
    const tokens = await makeTokens(server, 4 * batches * perBatch + 4 * WARM_UP + 10);
    const take = (n: number) => tokens.splice(0, n);

    // The agent keys are made once: key generation is the agent's, not the issuer's, and the floor makes none.
    const keys: KeyObject[] = [0, 1, 2].map(() => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
    const pkcs8 = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'der' }).toString('base64');
    const jkt = (k: KeyObject) => jwkThumbprint(createPublicKey(k));
    const jwtAudiences = ['https://rp.example'];
    // A fresh agent key per join-token handshake, as agents do; made before the timed batch.
    const freshKeys = (n: number) =>
      Array.from({ length: n }, () =>
        generateKeyPairSync('ec', {
          namedCurve: 'prime256v1',
          publicKeyEncoding: { type: 'spki', format: 'der' },
          privateKeyEncoding: { type: 'pkcs8', format: 'der' },
        }).privateKey.toString('base64'),
      );
    const joinKey = createPrivateKey({ key: Buffer.from(freshKeys(1)[0]!, 'base64'), format: 'der', type: 'pkcs8' });

    // The chain: root grant for A (from alice's OIDC token), A → B, B → C; C presents all three.
    const root = await createGrant(address, bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: 'bench',
      goal: 'bench',
      ttlSeconds: 3600,
      scope: [{ action: 'repo:*', resource: 'repo://acme/*' }],
      maxDepth: 3,
      delegateJkt: jkt(keys[0]!),
    });
    const hs = (k: KeyObject, grants: string[]) =>
      attest({ server: address, bundlePem, evidenceType: 'join_token', key: k, respond: () => Buffer.from(take(1)[0]!), grants });
    const wa = parseWrit((await hs(keys[0]!, [root.grant])).writ!).claims;
    const now = Math.floor(Date.now() / 1000);
    const g1 = delegateGrant(root.grant, keys[0]!, { childJkt: jkt(keys[1]!), now, from: { sub: wa.sub, writ: wa.jti } });
    const wb = parseWrit((await hs(keys[1]!, [root.grant, g1])).writ!).claims;
    const g2 = delegateGrant(g1, keys[1]!, { childJkt: jkt(keys[2]!), now, from: { sub: wb.sub, writ: wb.jti } });
    const chain = [root.grant, g1, g2];
    const chainKey = keys[2]!;

    const sizes = {
      joinToken: await measureSizes(address, bundlePem, joinKey, jwtAudiences, [], take(1)[0]!),
      chain: await measureSizes(address, bundlePem, chainKey, [], chain, take(1)[0]!),
    };
    floorServer = await startFloorServer(await floorServingCredentials(server), sizes.joinToken);
    const floorAddress = floorServer.address;

    const jobs = {
      floorNew: (n: number): ClientJob => ({ kind: 'floor', address: floorAddress, bundlePem, sizes: sizes.joinToken, total: n, concurrency, reuse: false }),
      floorReused: (n: number): ClientJob => ({ kind: 'floor', address: floorAddress, bundlePem, sizes: sizes.joinToken, total: n, concurrency, reuse: true }),
      joinToken: (n: number): ClientJob => ({
        kind: 'attest',
        address,
        bundlePem,
        tokens: take(n),
        privateKeys: freshKeys(n),
        jwtAudiences,
        grants: [],
        concurrency,
      }),
      chain: (n: number): ClientJob => ({
        kind: 'attest',
        address,
        bundlePem,
        tokens: take(n),
        // The chain's last grant names this key: every chain handshake presents it.
        privateKeys: Array.from({ length: n }, () => pkcs8(chainKey)),
        jwtAudiences: [],
        grants: chain,
        concurrency,
      }),
    };
    const series: Array<[string, keyof typeof jobs]> = [
      ['floor_grpc_bidi_new_channel', 'floorNew'],
      ['handshake_join_token_grpc', 'joinToken'],
      ['floor_grpc_bidi_reused_channel', 'floorReused'],
      ['handshake_3grant_chain_grpc', 'chain'],
    ];
    // Warm-up of both client sides (JIT, the server's caches), untimed.
    for (const [, kind] of series) {
      await runJob(jobs[kind](WARM_UP));
      await child.run(jobs[kind](WARM_UP));
    }
    // A new channel per exchange must mean a new TLS connection, and a reused channel one per client.
    const fs = floorServer;
    const checked = async (name: string, kind: keyof typeof jobs, run: () => Promise<LoadResult>): Promise<LoadResult> => {
      const before = fs.connections();
      const r = await run();
      const made = fs.connections() - before;
      const expected = kind === 'floorNew' ? perBatch : kind === 'floorReused' ? concurrency : 0;
      if (made !== expected) throw new Error(`bench: ${name} made ${made} connections to the floor server, not ${expected}`);
      return r;
    };
    // Batches interleave: every series, in this process and then with the clients apart, once per
    // round, the order reversed every other round, so that drifting load falls on all alike.
    const done = new Map<string, Array<LoadResult & { serverCpuMs?: number }>>();
    const keep = (name: string, r: LoadResult & { serverCpuMs?: number }) => done.set(name, [...(done.get(name) ?? []), r]);
    for (let b = 0; b < batches; b++) {
      for (const [name, kind] of b % 2 ? [...series].reverse() : series) {
        const here = jobs[kind](perBatch);
        keep(name, await checked(name, kind, () => profiled(`${name}.batch${b}`, () => runJob(here))));
        const inChild = `${name}_client_process`;
        const apart = { ...jobs[kind](perBatch), profile: `${inChild}.batch${b}.client` };
        const u = await withCpu(() => checked(inChild, kind, () => profiled(`${inChild}.batch${b}.server`, () => child.run(apart))));
        keep(inChild, { ...u.value, serverCpuMs: u.cpuMs });
      }
    }
    return { sizes, total: batches * perBatch, batches, concurrency, series: new Map([...done].map(([k, v]) => [k, combine(v)])) };
  } finally {
    child.stop();
    await floorServer?.stop();
    await server.stop();
    await oidc.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
