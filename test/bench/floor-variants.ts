/**
 * `node dist/test/bench/floor-variants.js`: what "a new channel" costs depending on how the
 * client makes its credentials, with the floor's server and messages (grpc-floor.ts).
 *   per-channel credentials   what attest() does (and the floor in make bench): a new TLS
 *                             connection per channel, and a new secure context for it
 *   shared, local pool        one credentials object, 'grpc.use_local_subchannel_pool': a new
 *                             TLS connection per channel, one secure context
 *   shared, global pool       one credentials object, grpc-js defaults: a new channel finds the
 *                             previous channel's still-connected subchannel and reuses it
 * The last is not a new channel in any sense that matters (count the connections); a floor
 * measured that way makes every real handshake look several times slower than it is.
 */
import * as grpc from '@grpc/grpc-js';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ISSUER_CHANNEL_OPTIONS, issuerChannelCredentials } from '../../src/agent/attest-client.js';
import { serverSettings as buildServerSettings } from '../../src/server/settings.js';
import { encodePem } from '../../src/der/pem.js';
import { SERVER_ID_PATH, WritServer } from '../../src/server/server.js';
import { spiffeIdFromParts } from '../../src/spiffe/id.js';
import { FloorClient, startFloorServer } from './grpc-floor.js';
import { combine, runLoad, type LoadResult } from './load.js';

async function main(): Promise<void> {
  const total = Number(process.env.BENCH_HANDSHAKES ?? 400);
  const batches = Number(process.env.BENCH_BATCHES ?? 4);
  const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 8);
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-bench-'));
  const server = await WritServer.start(buildServerSettings({ data_dir: dataDir, listen: '127.0.0.1:0', trust_domain: 'example.org' }), {
    logger: pino({ level: 'silent' }),
    env: {},
  });
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
  const tls = { cert: svid.chain.map((c) => encodePem('CERTIFICATE', c)).join(''), key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
  const sizes = { hello: 127, challenge: 36, evidence: 64, result: 3770 };
  const floor = await startFloorServer(tls, sizes);
  try {
    const bundlePem = readFileSync(server.bundlePemPath, 'utf8');
    const fc = new FloorClient(floor.address, bundlePem, sizes);
    const shared = issuerChannelCredentials(bundlePem);
    const on = async (client: grpc.Client) => {
      try {
        await fc.exchange(client);
      } finally {
        client.close();
      }
    };
    const variants: Array<[string, () => Promise<void>]> = [
      ['per-channel credentials', () => fc.once()],
      [
        'shared credentials, local subchannel pool',
        () => on(new grpc.Client(floor.address, shared, { ...ISSUER_CHANNEL_OPTIONS, 'grpc.use_local_subchannel_pool': 1 })),
      ],
      ['shared credentials, global subchannel pool', () => on(new grpc.Client(floor.address, shared, ISSUER_CHANNEL_OPTIONS))],
    ];
    for (const [, f] of variants) for (let i = 0; i < 20; i++) await f();
    const done = new Map<string, LoadResult[]>();
    const connections = new Map<string, number>();
    const per = Math.ceil(total / batches);
    for (let b = 0; b < batches; b++) {
      for (const [name, f] of b % 2 ? [...variants].reverse() : variants) {
        const before = floor.connections();
        done.set(name, [...(done.get(name) ?? []), await runLoad(per, concurrency, f)]);
        connections.set(name, (connections.get(name) ?? 0) + floor.connections() - before);
      }
    }
    console.log(`${'client credentials'.padEnd(44)} ${'exch/s'.padStart(8)} ${'cpu ms'.padStart(8)} ${'p50 ms'.padStart(8)}  connections`);
    for (const [name] of variants) {
      const s = combine(done.get(name)!);
      console.log(
        `${name.padEnd(44)} ${s.rate.toFixed(1).padStart(8)} ${s.cpuMs.toFixed(2).padStart(8)} ${s.p50.toFixed(1).padStart(8)}  ${connections.get(name)} for ${s.n} exchanges`,
      );
    }
  } finally {
    await floor.stop();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
