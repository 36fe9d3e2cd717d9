/**
 * The passive relying parties of the revocation latency benchmark, in a process of their own (as
 * relying parties are elsewhere, not in the measuring process): N Watch subscribers, each on its
 * own TLS connection. Prints "synced" once all are in sync, then for each revocation sequence
 * "SEQ WALL_MS" when every one of them has it (WALL_MS = performance.timeOrigin + now()).
 * Usage: node revocation-subscribers.js ADDRESS BUNDLE_PEM_FILE N
 */
import { readFileSync } from 'node:fs';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { WatchRevocationSource } from '../../src/revocation/watch-source.js';

const [address, bundleFile, count] = process.argv.slice(2);
const n = Number(count);
const connector = grpcWatchConnector(readFileSync(bundleFile!, 'utf8'), { ownConnection: true });
const sources: WatchRevocationSource[] = [];
const seen = new Map<number, number>();

async function main(): Promise<void> {
  for (let i = 0; i < n; i++) {
    const s = new WatchRevocationSource({ addresses: [address!], connector }).start();
    s.onRevoked((r) => {
      const k = (seen.get(r.sequence) ?? 0) + 1;
      seen.set(r.sequence, k);
      if (k === n) {
        seen.delete(r.sequence);
        process.stdout.write(`${r.sequence} ${performance.timeOrigin + performance.now()}\n`);
      }
    });
    sources.push(s);
    // In batches: a thousand TLS handshakes at once time out on a small machine.
    if (i % 50 === 49) await Promise.all(sources.slice(-50).map((x) => x.synced(60_000)));
  }
  await Promise.all(sources.map((s) => s.synced(60_000)));
  process.stdout.write('synced\n');
}

process.on('SIGTERM', () => {
  for (const s of sources) s.close();
  process.exit(0);
});
main().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});
