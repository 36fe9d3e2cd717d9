/**
 * `make bench`, Nitro evidence: the issuer's verification of one attestation document (genuine
 * format, test PKI made here: root → regional → zonal → instance → leaf, P-384) with its chain
 * cache warm, as a ratio to the raw signature floor measured in the same run (one ECDSA P-384
 * verification, p1363, over the same Sig_structure bytes); and cold (no cache: the document's
 * signature plus the four certificate signatures of its chain), against the same floor; and
 * spawn-to-writ: sequential handshakes with a grant over gRPC/TLS on loopback (a new channel
 * each, as `writ agent attest` makes) whose evidence a fake producer in this process signs for
 * the challenge nonce, p50/p99, interleaved with the same handshakes on join tokens as the
 * reference (`floor` column: the join-token latency; ratio > 1 is slower); BENCH_NITRO_HANDSHAKES
 * of each (default 200).
 */
import { X509Certificate, createPublicKey, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { attest } from '../../src/agent/attest-client.js';
import { createGrant } from '../../src/agent/grant-client.js';
import { newJoinToken } from '../../src/attestation/join-token/join-token.js';
import { parseNitroDocument } from '../../src/attestation/nitro/document.js';
import { NitroChainCache, verifyNitroDocument } from '../../src/attestation/nitro/verify.js';
import { encodePem } from '../../src/der/pem.js';
import { PolicySnapshots } from '../../src/issuance/policies.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { selectorsKey } from '../../src/registration/entry.js';
import { WritServer } from '../../src/server/server.js';
import { serverSettings } from '../../src/server/settings.js';
import { nitroDocument, nitroPki, productionPcrs } from '../helpers/nitro-doc.js';
import { startOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;
const RUN_MS = Number(process.env.BENCH_MS ?? 1000);

/** ops/s of one timed run of a synchronous op. */
function once(fn: () => unknown): number {
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < RUN_MS) {
    for (let i = 0; i < 10; i++) fn();
    n += 10;
  }
  return n / ((performance.now() - start) / 1000);
}

/** Best of five runs of each op, the runs interleaved so that a loaded machine slows all alike. */
function rates(fns: ReadonlyArray<() => unknown>): number[] {
  for (const fn of fns) for (let i = 0; i < 50; i++) fn();
  const best = fns.map(() => 0);
  for (let r = 0; r < 5; r++) for (const [i, fn] of fns.entries()) best[i] = Math.max(best[i]!, once(fn));
  return best;
}

export async function nitroBench(record: Record): Promise<void> {
  const now = new Date();
  const pki = nitroPki(now);
  const nonce = randomBytes(32);
  const doc = nitroDocument({ pki, timestamp: now.getTime(), nonce, userData: randomBytes(32) });
  const cose = parseNitroDocument(doc);
  const leafKey = new X509Certificate(cose.document.certificate).publicKey;
  const cache = new NitroChainCache();
  const o = {
    anchors: [pki.root.der],
    at: now,
    allowDebug: false,
    nonce,
    timestampWindow: { notBefore: now.getTime() - 300_000, notAfter: now.getTime() + 60_000 },
  };
  const [floor, warm, cold] = rates([
    () => verify('sha384', cose.toBeSigned, { key: leafKey, dsaEncoding: 'ieee-p1363' }, cose.signature),
    () => verifyNitroDocument(doc, { ...o, chainCache: cache }),
    () => verifyNitroDocument(doc, o),
  ]);
  record('nitro_document_verify_warm', warm!, `ops/s (${doc.length} B document, chain and leaf key cached)`, floor);
  record('nitro_document_verify_cold', cold!, 'ops/s (no cache: 1 + 4 P-384 verifications)', floor);
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

export async function nitroHandshakeBench(record: Record): Promise<void> {
  const n = Number(process.env.BENCH_NITRO_HANDSHAKES ?? 200);
  const oidc = await startOidc();
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-bench-nitro-'));
  const pki = nitroPki(new Date());
  const pcrs = productionPcrs(5);
  writeFileSync(join(dataDir, 'nitro-root.pem'), encodePem('CERTIFICATE', pki.root.der));
  const settings = serverSettings({
    data_dir: dataDir,
    listen: '127.0.0.1:0',
    trust_domain: 'example.org',
    principals: [{ issuer: oidc.issuer, audience: 'writ' }],
    attestation: { nitro: { roots: [join(dataDir, 'nitro-root.pem')] } },
  });
  const server = await WritServer.start(settings, { logger: pino({ level: 'silent' }), env: {} });
  try {
    const bundlePem = readFileSync(server.bundlePemPath, 'utf8');
    await new PolicySnapshots({ store: server.store, clock: { now: () => new Date() } }).push([{ name: 'acme.cedar', text: POLICY }]);
    await server.core.admin.createEntry({
      spiffeId: 'spiffe://example.org/agent/enclave',
      selectors: [{ type: 'nitro', value: `pcr:0:${pcrs.get(0)!.toString('hex')}` }],
      x509SvidTtl: 0,
      jwtSvidTtl: 0,
      scopeCeiling: [],
      hint: '',
    });
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const root = await createGrant(server.address, bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: 'bench-nitro',
      goal: 'bench',
      ttlSeconds: 3600,
      scope: [{ action: 'repo:read', resource: 'repo://acme/widgets' }],
      maxDepth: 0,
      delegateJkt: jwkThumbprint(createPublicKey(key)),
    });
    // The reference: the same handshake with a join token (one per handshake, each with its entry).
    const tokens: string[] = [];
    await server.store.transaction(async (tx) => {
      for (let i = 0; i < n + 10; i++) {
        const { token, record: rec } = newJoinToken(new Date(), 3600_000);
        await tx.createJoinToken(rec);
        const sels = [{ type: 'join_token', value: rec.id }];
        await tx.createEntry(
          {
            id: `j${i}`,
            spiffeId: `spiffe://example.org/agent/j${i}`,
            selectors: sels,
            x509SvidTtl: 0,
            jwtSvidTtl: 0,
            scopeCeiling: [],
            hint: '',
            createdAt: i,
          },
          selectorsKey(sels),
        );
        tokens.push(token);
      }
    });
    const once = async (type: 'nitro' | 'join_token') => {
      const t = performance.now();
      const out = await attest({
        server: server.address,
        bundlePem,
        evidenceType: type,
        key,
        respond: (c) => (type === 'nitro' ? nitroDocument({ pki, pcrs, timestamp: Date.now(), nonce: Buffer.from(c.nonce) }) : Buffer.from(tokens.shift()!)),
        grants: [root.grant],
      });
      if (!out.writ) throw new Error('bench: no writ');
      return performance.now() - t;
    };
    for (let i = 0; i < 10; i++) {
      await once('nitro');
      await once('join_token');
    }
    // Interleaved, so that a loaded machine slows both alike.
    const ms = { nitro: [] as number[], join_token: [] as number[] };
    for (let i = 0; i < n; i++) {
      ms.nitro.push(await once('nitro'));
      ms.join_token.push(await once('join_token'));
    }
    const how = 'sequential, a new channel each, a grant chain of 1';
    record('nitro_handshake_writ_p50', pct(ms.nitro, 50), `ms (${how}; the document made in process for the challenge)`, pct(ms.join_token, 50));
    record('nitro_handshake_writ_p99', pct(ms.nitro, 99), 'ms', pct(ms.join_token, 99));
    record('join_token_handshake_writ_p50', pct(ms.join_token, 50), `ms (${how}; the reference the floor column above gives)`);
    record('join_token_handshake_writ_p99', pct(ms.join_token, 99), 'ms');
  } finally {
    await server.stop();
    await oidc.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
