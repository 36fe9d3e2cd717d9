/**
 * `make bench`: rates of writ's hot paths as ratios to raw-crypto floors measured in the same
 * run, and end-to-end handshakes over gRPC on loopback against a bare gRPC stream with the same
 * TLS setup and message sizes (handshakes.ts). Prints a table; writes JSON to $BENCH_OUT
 * (default bench-results.json): { name: { value, unit, floor?, ratio?, ... } }.
 * For rates, ratio = value / floor (1.0 = as fast as the floor).
 * BENCH_ONLY=crypto,writ,tpm-quote,tpm-handshake,handshake,sev-snp,nitro,nitro-handshake,tdx,tdx-spawn,audit,approvals,sidecar,sidecar-tpm,sidecar-revocation,ha,console picks groups
 * (audit: BENCH_AUDIT_RECORDS, default 1,000,000); BENCH_PROFILE=DIR
 * writes CPU profiles of the timed handshake batches (profile-summary.ts reads them).
 */
import 'reflect-metadata';
import { createPublicKey, generateKeyPairSync, sign, verify, webcrypto, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as px509 from '@peculiar/x509';
import pino from 'pino';
import { X509SvidMinter } from '../../src/svid/x509-mint.js';
import { mintJwtSvid, validateJwtSvid } from '../../src/svid/jwt-svid.js';
import { verifyX509Svid } from '../../src/svid/x509-svid.js';
import { BundleSet } from '../../src/spiffe/bundle.js';
import { parseSpiffeId } from '../../src/spiffe/id.js';
import { serverSettings as buildServerSettings } from '../../src/server/settings.js';
import { WritServer } from '../../src/server/server.js';
import { attest } from '../../src/agent/attest-client.js';
import { selectorsKey } from '../../src/registration/entry.js';
import { makeCert } from '../helpers/testca.js';
import { HAVE_SWTPM, startSwtpm } from '../helpers/swtpm.js';
import { TpmAttestor } from '../../src/attestation/tpm/attestor.js';
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from '../../src/tpm/constants.js';
import { TpmWriter } from '../../src/tpm/marshal.js';
import { akTemplate, marshalPcrSelection, marshalPublic, marshalSignature, objectName, parsePublic, type PublicTemplate } from '../../src/tpm/structures.js';
import { pcrDigest, verifyQuote } from '../../src/attestation/tpm/quote.js';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { FakeIssuer, agent, hop } from '../helpers/writ-fixture.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { verifyWrit } from '../../src/writ/verify.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { buildSnapshot, splitPolicies } from '../../src/policy/snapshot.js';
import { delegateRequests } from '../../src/policy/requests.js';
import { keySigner } from '../../src/jose/jws.js';
import { POLICY } from '../helpers/policies.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { handshakeBenches } from './handshakes.js';

px509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof px509.cryptoProvider.set>[0]);

interface Result {
  value: number;
  unit: string;
  floor?: number;
  ratio?: number;
  /** Handshake series: the rate of each batch (the value is all operations over all batches' time). */
  batches?: number[];
  /** Handshake series: CPU ms per operation of the process running the clients (in-process: client and server). */
  cpu_ms?: number;
  /** Handshake series with the clients in a child process: CPU ms per operation of the server process. */
  server_cpu_ms?: number;
  /** Handshakes: the floor's CPU per operation over this one's (server process alone when the clients run apart). */
  cpu_ratio?: number;
}
const results: Record<string, Result> = {};
const RUN_MS = Number(process.env.BENCH_MS ?? 1000);

/** Best of three timed runs of a synchronous op, ops/s. */
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

async function rateAsync(fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 50; i++) await fn();
  let best = 0;
  for (let r = 0; r < 3; r++) {
    let n = 0;
    const start = performance.now();
    const end = start + RUN_MS;
    while (performance.now() < end) {
      await fn();
      n++;
    }
    best = Math.max(best, n / ((performance.now() - start) / 1000));
  }
  return best;
}

function record(name: string, value: number, unit: string, floor?: number): void {
  results[name] = floor === undefined ? { value: keep(value), unit } : { value: keep(value), unit, floor: keep(floor), ratio: round(value / floor, 3) };
}
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
/** A recorded value: one decimal, or three below 10 (ratios such as audit_handshake_ratio, times under a millisecond). */
const keep = (x: number) => round(x, Math.abs(x) < 10 ? 3 : 1);

async function cryptoBenches(): Promise<void> {
  const ca = makeCert({ subjectCn: 'bench signing CA', ca: true, pathLen: 0, uris: ['spiffe://example.org'], notAfter: new Date(Date.now() + 86400_000) });
  const root = ca; // self-signed: acts as its own root for verification
  const minter = new X509SvidMinter({ certificate: ca.parsed, signer: keySigner(ca.key), chain: [ca.der] });
  const agent = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = createPublicKey(agent.privateKey).export({ type: 'spki', format: 'der' });
  const id = parseSpiffeId('spiffe://example.org/agent/bench');
  const now = new Date();
  const later = new Date(now.getTime() + 3600_000);

  // Floors: one raw ECDSA P-256 signature / verification over a certificate-sized message.
  const msg = randomBytes(450);
  const sig = sign('sha256', msg, ca.key);
  const signFloor = rate(() => sign('sha256', msg, ca.key));
  const caPub = createPublicKey(ca.key);
  const verifyFloor = rate(() => verify('sha256', msg, caPub, sig));
  record('floor_ecdsa_p256_sign', signFloor, 'ops/s');
  record('floor_ecdsa_p256_verify', verifyFloor, 'ops/s');

  record('x509_svid_mint', await rateAsync(() => minter.mint({ spiffeId: id, spki, notBefore: now, notAfter: later })), 'ops/s', signFloor);

  // The generic generator, for comparison (WebCrypto, async).
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const caKeys = await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify']);
  const agentKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const caCert = await px509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name: 'CN=bench', keys: caKeys, signingAlgorithm: alg });
  const generic = await rateAsync(() =>
    px509.X509CertificateGenerator.create({
      serialNumber: randomBytes(16)
        .toString('hex')
        .replace(/^[89a-f]/, '1'),
      subject: 'O=writ',
      issuer: caCert.subject,
      notBefore: now,
      notAfter: later,
      signingAlgorithm: alg,
      publicKey: agentKeys.publicKey,
      signingKey: caKeys.privateKey,
      extensions: [
        new px509.BasicConstraintsExtension(false, undefined, true),
        new px509.KeyUsagesExtension(px509.KeyUsageFlags.digitalSignature, true),
        new px509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']),
        new px509.SubjectAlternativeNameExtension([{ type: 'url', value: id.uri }]),
      ],
    }),
  );
  record('x509_generic_peculiar_create', generic, 'ops/s', signFloor);

  const signer = { kid: 'k1', signer: keySigner(ca.key) };
  const p1363 = sign('sha256', msg, { key: ca.key, dsaEncoding: 'ieee-p1363' });
  const jwtSignFloor = rate(() => sign('sha256', msg, { key: ca.key, dsaEncoding: 'ieee-p1363' }));
  const jwtVerifyFloor = rate(() => verify('sha256', msg, { key: caPub, dsaEncoding: 'ieee-p1363' }, p1363));
  record(
    'jwt_svid_sign',
    await rateAsync(() => mintJwtSvid(signer, { spiffeId: id, audience: ['https://rp.example'], issuedAt: now, expiresAt: later })),
    'ops/s',
    jwtSignFloor,
  );
  const token = (await mintJwtSvid(signer, { spiffeId: id, audience: ['https://rp.example'], issuedAt: now, expiresAt: later })).token;
  const bundles = new BundleSet([{ trustDomain: 'example.org', x509Authorities: [root.der], jwtAuthorities: new Map([['k1', caPub]]) }]);
  record(
    'jwt_svid_verify',
    rate(() => validateJwtSvid(token, bundles, ['https://rp.example'], now)),
    'ops/s',
    jwtVerifyFloor,
  );

  const leaf = (await minter.mint({ spiffeId: id, spki, notBefore: now, notAfter: later })).leaf;
  record(
    'x509_svid_verify',
    rate(() => verifyX509Svid([leaf], bundles, now)),
    'ops/s',
    verifyFloor,
  );
}

async function tpmQuoteBench(): Promise<void> {
  // A quote exactly as a TPM makes it, signed by a P-256 key in software (the verifier's work is
  // the same); the floor is one raw ECDSA P-256 verification (p1363) over the same bytes.
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = key.publicKey.export({ format: 'jwk' }) as { x: string; y: string };
  const ak = parsePublic(marshalPublic({ ...akTemplate('ecc'), x: Buffer.from(jwk.x, 'base64url'), y: Buffer.from(jwk.y, 'base64url') } as PublicTemplate));
  const sel = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }];
  const values = new Map([[TPM_ALG.SHA256, new Map(sel[0]!.pcrs.map((p) => [p, randomBytes(32)]))]]);
  const nonce = randomBytes(32);
  const attest = new TpmWriter()
    .u32(TPM_GENERATED_VALUE)
    .u16(TPM_ST.ATTEST_QUOTE)
    .tpm2b(objectName(ak))
    .tpm2b(nonce)
    .bytes(Buffer.alloc(8, 1))
    .u32(3)
    .u32(0)
    .u8(1)
    .bytes(Buffer.alloc(8, 2))
    .bytes(marshalPcrSelection(sel))
    .tpm2b(pcrDigest(TPM_ALG.SHA256, sel, values))
    .done();
  const p1363 = sign('sha256', attest, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  const signature = marshalSignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: p1363.subarray(0, 32), s: p1363.subarray(32) });
  const floor = rate(() => verify('sha256', attest, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, p1363));
  record(
    'tpm_quote_verify',
    rate(() => verifyQuote(ak, attest, signature, nonce, sel, values)),
    'ops/s',
    floor,
  );
}

async function tpmHandshakeBench(): Promise<void> {
  if (!HAVE_SWTPM) {
    console.warn('swtpm not installed: tpm_handshake_swtpm skipped');
    return;
  }
  const tpm = await startSwtpm();
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-bench-tpm-'));
  const settings = buildServerSettings({
    data_dir: dataDir,
    listen: '127.0.0.1:0',
    trust_domain: 'example.org',
    attestation: { tpm: { manufacturer_roots: [tpm.rootPem], intermediates: [tpm.intermediatePem], pcr_selection: 'sha256:0,1,2,3,4,5,6,7' } },
  });
  const server = await WritServer.start(settings, { logger: pino({ level: 'silent' }), env: {} });
  try {
    const sels = [{ type: 'tpm', value: 'model:swtpm' }];
    await server.store.createEntry(
      { id: 'tpm', spiffeId: 'spiffe://example.org/agent/tpm', selectors: sels, x509SvidTtl: 0, jwtSvidTtl: 0, scopeCeiling: [], hint: '', createdAt: 0 },
      selectorsKey(sels),
    );
    const bundlePem = readFileSync(server.bundlePemPath, 'utf8');
    const agentKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const one = async (): Promise<{ ms: number; rounds: number }> => {
      const t0 = performance.now();
      const t = await tpm.open();
      const a = new TpmAttestor(t);
      try {
        await attest({ server: server.address, bundlePem, evidenceType: 'tpm', key: agentKey, respond: (c) => a.respond(c) });
      } finally {
        await a.close();
        await t.close();
      }
      return { ms: performance.now() - t0, rounds: a.rounds };
    };
    const first = await one();
    const n = Number(process.env.BENCH_TPM_HANDSHAKES ?? 60);
    const lat: number[] = [];
    for (let i = 0; i < n; i++) lat.push((await one()).ms);
    lat.sort((a, b) => a - b);
    const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]!;
    record('tpm_handshake_first_contact', first.ms, `ms (with credential activation, ${first.rounds} rounds)`);
    record('tpm_handshake_swtpm_p50', pct(50), `ms (spawn to SVID: persistent EK, AK recreated, PCR read, quote, gRPC/TLS; ${n} sequential)`);
    record('tpm_handshake_swtpm_p99', pct(99), 'ms');
  } finally {
    await server.stop();
    await tpm.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Writ verification (3-hop chain, warm caches) against two raw ES256 verifications; Cedar decisions. */
async function writBenches(): Promise<void> {
  const iss = new FakeIssuer();
  const [A, B, C] = [agent('a'), agent('b'), agent('c')];
  const now = Math.floor(Date.now() / 1000);
  const root = iss.rootGrant(A, { now: now - 10 });
  const g1 = hop(root, A, B, now - 9, { scope: [{ action: 'repo:read', resource: 'repo://acme/*' }] });
  const g2 = hop(g1, B, C, now - 8, { scope: [{ action: 'repo:read', resource: 'repo://acme/widgets*' }] });
  const { writ } = iss.writ(C, [root, g1, g2], { now: now - 5 });
  const at = new Date();
  const pub = createPublicKey(iss.key);
  const msg = Buffer.from(writ.split('.').slice(0, 2).join('.'));
  const sig = sign('sha256', msg, { key: iss.key, dsaEncoding: 'ieee-p1363' });
  const one = rate(() => verify('sha256', msg, { key: pub, dsaEncoding: 'ieee-p1363' }, sig));
  record('floor_two_es256_verifications', one / 2, 'ops/s');
  // Proofs are made ahead (each has its own one-time id); only verification is timed.
  const proofs: string[] = [];
  const more = () => {
    while (proofs.length < 60_000) proofs.push(createProof(writ, C.key, { audience: 'rp', method: 'GET /x', now: at }));
  };
  more();
  const cache = new ProofReplayCache(1_000_000);
  const base = { writ, trust: iss.trust, audience: 'rp', method: 'GET /x', now: at, replayCache: cache };
  record(
    'writ_verify_standard_3hop',
    rate(() => verifyWrit({ ...base, proof: proofs.pop()! })),
    'ops/s',
    one / 2,
  );
  more();
  record(
    'writ_verify_deep_3hop',
    rate(() => verifyWrit({ ...base, proof: proofs.pop()!, level: 'deep' })),
    'ops/s',
    one / 2,
  );
  results.writ_verify_deep_3hop!.unit += ' (5 signatures: writ, proof, 3 grants; floor = 2 verifications)';
  const engine = new PolicyEngine();
  const snap = buildSnapshot(splitPolicies([{ name: 'acme.cedar', text: POLICY }]));
  const alice = { iss: 'https://idp', sub: 'alice', groups: ['eng'] };
  const task = { id: 't', goal: 'g', lifetimeSeconds: 600 };
  const allow = delegateRequests(alice, [{ action: 'repo:read', resource: 'repo://acme/w' }], task, 2);
  const esc = delegateRequests(alice, [{ action: 'deploy:prod', resource: 'repo://acme/w' }], task, 2);
  if (engine.decideAll(snap, allow).decision !== 'allow' || engine.decideAll(snap, esc).decision !== 'escalate')
    throw new Error('bench policy answers changed');
  record(
    'cedar_decision_allow',
    rate(() => engine.decideAll(snap, allow)),
    'decisions/s',
  );
  record(
    'cedar_decision_escalate',
    rate(() => engine.decideAll(snap, esc)),
    'decisions/s (two evaluations)',
  );
}

/** Handshakes against their floor (handshakes.ts), recorded with floor and ratio; p50/p99 side by side. */
async function handshakeRecords(): Promise<string[]> {
  const h = await handshakeBenches();
  const get = (name: string) => h.series.get(name)!;
  const how = `${h.concurrency} concurrent clients, ${h.total} operations per series in ${h.batches} interleaved batches`;
  const units: Record<string, string> = {
    floor_grpc_bidi_new_channel: `exchanges/s (bare gRPC bidi stream, issuer TLS setup, the join-token handshake's messages: ${Object.values(h.sizes.joinToken).join('/')} B, new channel each)`,
    floor_grpc_bidi_reused_channel: 'exchanges/s (the same on one reused channel per client)',
    handshake_join_token_grpc: 'handshakes/s (new TLS channel each, 1 X.509 + 1 JWT-SVID)',
    handshake_3grant_chain_grpc: 'handshakes/s (new TLS channel each, chain verified, Cedar decision, writ minted)',
  };
  const lines: string[] = [];
  for (const suffix of ['', '_client_process']) {
    const floor = get(`floor_grpc_bidi_new_channel${suffix}`);
    const cpuOf = (b: typeof floor) => b.serverCpuMs ?? b.cpuMs;
    for (const [base, unit] of Object.entries(units)) {
      const name = `${base}${suffix}`;
      const b = get(name);
      const isHandshake = base.startsWith('handshake_');
      const where = suffix ? 'clients in a child process' : 'clients in the server process';
      record(name, b.rate, `${unit}; ${where}; ${how}`, isHandshake ? floor.rate : undefined);
      const r = results[name]!;
      r.batches = b.batchRates.map((x) => round(x));
      r.cpu_ms = round(b.cpuMs, 3);
      if (b.serverCpuMs !== undefined) r.server_cpu_ms = round(b.serverCpuMs, 3);
      if (isHandshake) r.cpu_ratio = round(cpuOf(floor) / cpuOf(b), 3);
      record(`${name}_p50`, b.p50, 'ms');
      record(`${name}_p99`, b.p99, 'ms');
      const cols = [round(b.rate), round(b.p50), round(b.p99), round(b.cpuMs, 2), b.serverCpuMs === undefined ? '' : round(b.serverCpuMs, 2)];
      const ratios = isHandshake ? `${round(b.rate / floor.rate, 3)}`.padStart(6) + `${r.cpu_ratio}`.padStart(10) : '';
      lines.push(`${name.padEnd(48)} ${cols.map((c) => `${c}`.padStart(8)).join(' ')} ${ratios}`);
    }
  }
  const sz = (x: { hello: number; challenge: number; evidence: number; result: number }) =>
    `hello ${x.hello} B, challenge ${x.challenge} B, evidence ${x.evidence} B, result ${x.result} B`;
  return [
    `handshakes and their floor (${how}):`,
    '  ratio = rate / the new-channel floor rate of the same clients; cpu ms = CPU time per operation of the process running the clients',
    "  (in-process: client and server), srv cpu = of the server process when the clients run apart; cpu ratio = the floor's CPU per",
    "  operation / the handshake's (the server process alone for the child-process series), steadier than rates on a shared machine",
    `${'series'.padEnd(48)} ${['rate/s', 'p50 ms', 'p99 ms', 'cpu ms', 'srv cpu'].map((c) => c.padStart(8)).join(' ')}  ratio cpu ratio`,
    ...lines,
    `message sizes: join token: ${sz(h.sizes.joinToken)}; 3-grant chain: ${sz(h.sizes.chain)} (the floor uses the join token's)`,
  ];
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : undefined;
  const groups: Array<[string, () => Promise<void>]> = [
    ['crypto', cryptoBenches],
    ['writ', writBenches],
    ['tpm-quote', tpmQuoteBench],
    ['tpm-handshake', tpmHandshakeBench],
    ['revocation', async () => (await import('./revocation.js')).revocationBenches(record)],
    ['status-list', async () => (await import('./status-list.js')).statusListBench(record)],
    [
      'sev-snp',
      async () => {
        const b = await import('./sev-snp.js');
        await b.snpBench(record, rate);
        await b.snpHandshakeBench(record);
      },
    ],
    ['nitro', async () => (await import('./nitro.js')).nitroBench(record)],
    ['nitro-handshake', async () => (await import('./nitro.js')).nitroHandshakeBench(record)],
    ['tdx', async () => (await import('./tdx.js')).tdxBench(record, rate)],
    ['tdx-spawn', async () => (await import('./tdx.js')).tdxSpawnBench(record)],
    ['audit', async () => (await import('./audit.js')).auditBench(record)],
    ['approvals', async () => (await import('./approvals.js')).approvalsBench(record)],
    ['sidecar', async () => (await import('./sidecar.js')).sidecarBench(record)],
    ['sidecar-tpm', async () => (await import('./sidecar.js')).sidecarTpmBench(record)],
    ['sidecar-revocation', async () => (await import('./sidecar-revocation.js')).sidecarRevocationBench(record)],
    // Three `writ server` replicas on PostgreSQL (WRIT_TEST_PG): cross-replica revocation latency.
    ['ha', async () => (await import('./ha.js')).haBenches(record)],
    // The web console in chromium: a 1,000-agent task's tree, from entering the page to every node drawn.
    ['console', async () => (await import('./console.js')).consoleBench(record)],
  ];
  for (const [name, fn] of groups) if (!only || only.has(name)) await fn();
  const side = !only || only.has('handshake') ? await handshakeRecords() : [];
  const rows = Object.entries(results).map(([k, r]) => [
    k,
    `${r.value}`,
    r.unit,
    r.floor === undefined ? '' : `${r.floor}`,
    r.ratio === undefined ? '' : `${r.ratio}`,
  ]);
  const head = ['benchmark', 'value', 'unit', 'floor', 'ratio'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.min(r[i]!.length, 40))));
  const line = (r: string[]) => r.map((c, i) => (i === 2 ? c : c.padEnd(w[i]!))).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  const out = process.env.BENCH_OUT || 'bench-results.json';
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  if (side.length) console.log(`\n${side.join('\n')}`);
  console.log(`\nwrote ${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
