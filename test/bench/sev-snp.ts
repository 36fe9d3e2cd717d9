/**
 * `make bench`, SEV-SNP: the relying party's (and the issuer's) verification of one report with
 * its certificate table, warm, against the raw signature floor measured in the same run (one
 * ECDSA P-384 SHA-384 verification of the 672 signed bytes, IEEE P1363). The evidence is
 * synthetic in the real format with AMD's key sizes (RSA-4096 ARK and ASK, P-384 VCEK).
 * Then spawn to SVID over gRPC/TLS on loopback with a fake producer (a report signed in
 * software over each handshake's nonce, as the AMD-SP would), p50 and p99 of sequential runs.
 */
import { generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { attest } from '../../src/agent/attest-client.js';
import { encodeCertTable } from '../../src/attestation/sev-snp/certs.js';
import { selectorsKey } from '../../src/registration/entry.js';
import { WritServer } from '../../src/server/server.js';
import { serverSettings } from '../../src/server/settings.js';
import { snpPlugin, trustFromChain } from '../../src/attestation/sev-snp/plugin.js';
import { DEFAULT_SNP_POLICY } from '../../src/attestation/sev-snp/verify.js';
import { makeAmdRoots, makeLeaf, makeReport, snpEvidence } from '../helpers/snp-fake.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;

export async function snpBench(record: Record, rate: (fn: () => unknown) => number): Promise<void> {
  const roots = makeAmdRoots('Milan', 'vcek', { rsaBits: 4096 });
  const leaf = makeLeaf(roots);
  const binding = Buffer.alloc(32, 0x42);
  const report = makeReport(leaf.key, { reportData: Buffer.concat([binding, Buffer.alloc(32)]) });
  const ev = snpEvidence(report, [
    { kind: 'vcek', der: leaf.der },
    { kind: 'ask', der: roots.ask },
    { kind: 'ark', der: roots.ark },
  ]);
  const rv = snpPlugin.relyingParty!.reverifier({ trust: trustFromChain([roots.ask, roots.ark]), policy: DEFAULT_SNP_POLICY });
  const ctx = { binding, agentJkt: '', at: new Date() };
  rv.reverify(ev, ctx);
  const signed = report.subarray(0, 0x2a0);
  const r = Buffer.from(report.subarray(0x2a0, 0x2a0 + 48)).reverse();
  const s = Buffer.from(report.subarray(0x2e8, 0x2e8 + 48)).reverse();
  const sig = Buffer.concat([r, s]);
  const key = leaf.key;
  const pub = (await import('node:crypto')).createPublicKey(key);
  if (!verify('sha384', signed, { key: pub, dsaEncoding: 'ieee-p1363' }, sig)) throw new Error('bench: floor signature does not verify');
  const floor = rate(() => verify('sha384', signed, { key: pub, dsaEncoding: 'ieee-p1363' }, sig));
  const value = rate(() => rv.reverify(ev, ctx));
  record('sev_snp_verify_warm', value, 'ops/s (report + VCEK/ASK/ARK, chain cached; floor: one ECDSA P-384 verify)', floor);
}

export async function snpHandshakeBench(record: Record): Promise<void> {
  const roots = makeAmdRoots('Milan', 'vcek', { rsaBits: 4096 });
  const leaf = makeLeaf(roots);
  const table = encodeCertTable([
    { kind: 'vcek', der: leaf.der },
    { kind: 'ask', der: roots.ask },
    { kind: 'ark', der: roots.ark },
  ]);
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-bench-snp-'));
  writeFileSync(join(dataDir, 'cert_chain.pem'), roots.chainPem);
  const settings = serverSettings({
    data_dir: dataDir,
    listen: '127.0.0.1:0',
    trust_domain: 'example.org',
    attestation: { sev_snp: { roots: [join(dataDir, 'cert_chain.pem')] } },
  });
  const server = await WritServer.start(settings, { logger: pino({ level: 'silent' }), env: {} });
  try {
    const sels = [{ type: 'sev_snp', value: 'product:Milan' }];
    await server.store.createEntry(
      { id: 'snp', spiffeId: 'spiffe://example.org/agent/snp', selectors: sels, x509SvidTtl: 0, jwtSvidTtl: 0, scopeCeiling: [], hint: '', createdAt: 0 },
      selectorsKey(sels),
    );
    const bundlePem = readFileSync(server.bundlePemPath, 'utf8');
    const agentKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const respond = async (c: { nonce: Uint8Array }) => {
      const rd = Buffer.alloc(64);
      rd.set(c.nonce);
      return Buffer.concat([makeReport(leaf.key, { reportData: rd }), table]);
    };
    const one = async () => {
      const t0 = performance.now();
      await attest({ server: server.address, bundlePem, evidenceType: 'sev_snp', key: agentKey, respond });
      return performance.now() - t0;
    };
    const first = await one();
    const n = Number(process.env.BENCH_SNP_HANDSHAKES ?? 60);
    const lat: number[] = [];
    for (let i = 0; i < n; i++) lat.push(await one());
    lat.sort((a, b) => a - b);
    const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]!;
    record('sev_snp_handshake_first', first, 'ms (cold chain cache)');
    record('sev_snp_handshake_p50', pct(50), `ms (spawn to SVID: fake producer, report + VCEK/ASK/ARK, gRPC/TLS; ${n} sequential)`);
    record('sev_snp_handshake_p99', pct(99), 'ms');
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
