/**
 * `make bench`, status lists: a real issuer whose list 1 holds 100,000 writs at random indexes
 * (as allocation gives them), 1% of them revoked at random; the size of the compressed list and
 * of the whole statuslist+jwt, the issuer's time to build and sign it after a revocation, and a
 * relying party's time to fetch it over the real HTTPS listener (a new TLS connection each time),
 * verify it and read one entry.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes, randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { STATUS_LIST_SIZE } from '../../src/issuance/status-lists.js';
import { verifyStatusListToken } from '../../src/revocation/status-list.js';
import { httpsStatusListFetcher } from '../../src/revocation/status-list-source.js';
import { WritServer } from '../../src/server/server.js';
import { marshalX509Pem } from '../../src/spiffe/bundle.js';
import { serverSettings } from '../../src/server/settings.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;

const WRITS = 100_000;
const REVOKED = WRITS / 100;
const RUNS = 20;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function statusListBench(record: Record): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-bench-sl-'));
  const settings = serverSettings({ data_dir: dataDir, listen: '127.0.0.1:0', http_listen: '127.0.0.1:0', trust_domain: 'example.org', log_level: 'error' });
  const server = await WritServer.start(settings, { logger: pino({ level: 'silent' }), env: {} });
  try {
    // Distinct random indexes (a partial Fisher–Yates shuffle of the list), the first 1% revoked.
    const order = Array.from({ length: STATUS_LIST_SIZE }, (_, i) => i);
    for (let i = 0; i < WRITS; i++) {
      const j = i + randomInt(STATUS_LIST_SIZE - i);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const now = Date.now();
    const entry = await server.core.admin.createEntry({
      spiffeId: 'spiffe://example.org/agent/bench',
      selectors: [{ type: 'join_token', value: 'bench' }],
      x509SvidTtl: 0,
      jwtSvidTtl: 0,
      scopeCeiling: [],
      hint: '',
    });
    await server.store.transaction(async (tx) => {
      await tx.createStatusList({ id: 1, size: STATUS_LIST_SIZE, allocated: WRITS, createdAt: now });
      for (let i = 0; i < WRITS; i++) {
        await tx.recordWrit({
          jti: randomBytes(16).toString('base64url'),
          spiffeId: 'spiffe://example.org/agent/bench',
          jkt: 'A'.repeat(43),
          chainDigest: Buffer.alloc(32),
          lineage: ['g'],
          taskId: 'bench',
          evidenceDigest: Buffer.alloc(32),
          issuedAt: now,
          expiresAt: now + 3600_000,
          principal: 'https://idp.example#alice',
          parentJti: null,
          entryId: entry.id,
          platform: '',
          evidenceType: 'join_token',
          statusList: 1,
          statusIdx: order[i]!,
          revokedAt: i < REVOKED ? now : null,
          revokedSeq: i < REVOKED ? 1 : null,
        });
      }
    });
    const http = server.http!;
    const uri = `${http.url}/status/1`;
    const keys = server.ca.bundle().writAuthorities!;
    const fetch = httpsStatusListFetcher({ ca: marshalX509Pem(server.ca.bundle()), spiffeId: 'spiffe://example.org/writ/server' });

    // The issuer: build (read the revoked indexes, set them, compress) and sign, after a revocation made it stale.
    const builds: number[] = [];
    for (let r = 0; r < 5; r++) {
      http.publisher.revoked([]);
      const t0 = performance.now();
      await http.publisher.get(1);
      builds.push(performance.now() - t0);
    }
    const reads: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      await server.store.revokedStatusIndexes(1);
      reads.push(performance.now() - t0);
    }
    const token = (await http.publisher.get(1))!.token;
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { status_list: { lst: string } };

    // The relying party: fetch over HTTPS (new connection), verify, read one entry.
    const rp: number[] = [];
    let revokedSeen = 0;
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      const v = verifyStatusListToken(await fetch(uri), { keys, uri, now: new Date() });
      revokedSeen += v.list.status(order[r]!);
      rp.push(performance.now() - t0);
    }
    if (revokedSeen !== RUNS) throw new Error(`bench: expected the first ${RUNS} writs revoked, saw ${revokedSeen}`);
    record('status_list_100k_bytes', Buffer.byteLength(token), 'bytes (statuslist+jwt, 100,000 writs, 1% revoked)');
    record('status_list_100k_lst_bytes', Buffer.from(payload.status_list.lst, 'base64url').length, 'bytes (ZLIB lst, before base64url)');
    record('status_list_100k_build_sign_ms', median(builds), 'ms (issuer: store read, set, compress, sign; median of 5)');
    record('status_list_100k_store_read_ms', median(reads), 'ms (of which: the revoked indexes read from the store; median of 5)');
    record('status_list_100k_fetch_verify_ms', median(rp), `ms (relying party: HTTPS fetch, verify, read an entry; median of ${RUNS})`);
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
