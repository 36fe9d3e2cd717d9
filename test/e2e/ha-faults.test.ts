/**
 * Replicas failing while the others serve (real `writ server` processes, one PostgreSQL
 * database per test): a replica cut from the database (a TCP proxy between it and PostgreSQL,
 * cut) refuses issuance and revocation, and when the database comes back it catches up on the
 * revocations made meanwhile and serves its Watch subscribers; a replica SIGKILLed during
 * sustained handshake load loses nothing: clients fail over, every credential acknowledged to a
 * client is recorded, none is issued twice, the audit log verifies.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { attest, type AttestOutcome } from '../../src/agent/attest-client.js';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { WatchRevocationSource } from '../../src/revocation/watch-source.js';
import { cluster, freshDatabase, PG_UNREACHABLE, PgProxy, type Replica, until } from '../helpers/ha.js';
import { runCli } from '../helpers/cli.js';
import { revokeAsOperator } from '../helpers/revocation.js';

const pgDescribe = PG_UNREACHABLE === undefined ? describe : describe.skip;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const newKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const token = (r: Replica, path: string) => adminClients(r.adminSocket).admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org${path}` });
const handshake = (r: Replica, tok: string, bundlePem: string): Promise<AttestOutcome> =>
  attest({ server: r.address, bundlePem, evidenceType: 'join_token', key: newKey(), respond: () => Buffer.from(tok) });
const serialOf = (o: AttestOutcome) => new X509Certificate(o.svidChain[0]!).serialNumber.toLowerCase().replace(/^0+/, '');
const metric = async (r: Replica, name: string) => {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(r.metricsUrl)).text());
  return m ? Number(m[1]) : Number.NaN;
};

pgDescribe('replica faults on one PostgreSQL', () => {
  it('a replica cut from the database refuses issuance and revocation, then catches up on the events it missed', { timeout: 180_000 }, async () => {
    const db = await freshDatabase();
    cleanups.push(() => db.drop());
    const proxy = new PgProxy();
    const port = await proxy.start();
    cleanups.push(() => proxy.stop());
    const c = cluster(db.name);
    cleanups.push(() => c.stop());
    const r1 = await c.start();
    const r2 = await c.start({ pgPort: port });
    const bundle = r1.bundlePem();
    const watcher = new WatchRevocationSource({
      addresses: [r2.address],
      connector: grpcWatchConnector(bundle, { ownConnection: true }),
      reconnectInitialMs: 20,
      reconnectMaxMs: 200,
    }).start();
    cleanups.push(async () => watcher.close());
    await watcher.synced(30_000);
    const before = await token(r1, '/agent/before');
    await revokeAsOperator(r1.adminSocket, 'entry', before.entryId);
    await until(() => watcher.sequence >= 1, 'the watcher on replica 2 sees a revocation made on replica 1');

    proxy.down();
    // Fail closed: no credential and no revocation without the database.
    const tok = await token(r1, '/agent/during');
    const refused = await handshake(r2, tok.token, bundle).then(
      () => 'issued',
      (e: Error) => e.message,
    );
    expect(refused).toMatch(/datastore unavailable/);
    const revokeRefused = await revokeAsOperator(r2.adminSocket, 'entry', tok.entryId).then(
      () => 'revoked',
      (e: Error) => e.message,
    );
    expect(revokeRefused).toMatch(/datastore unavailable/);
    expect(await metric(r2, 'writ_change_feed_connected')).toBe(0);
    // Meanwhile replica 1 revokes: three events replica 2 cannot hear of.
    const missed: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = await token(r1, `/agent/missed-${i}`);
      missed.push(Number((await revokeAsOperator(r1.adminSocket, 'entry', t.entryId)).sequence));
    }
    expect(watcher.sequence).toBeLessThan(missed[0]!);

    proxy.up();
    await until(() => watcher.sequence >= missed[2]!, 'the watcher on replica 2 catches up once its replica is back', 60_000);
    expect(await metric(r2, 'writ_change_feed_reconnects_total')).toBeGreaterThanOrEqual(1);
    // And it issues again: the token the refused handshake did not consume still works.
    const o = await handshake(r2, tok.token, bundle);
    expect(o.spiffeId).toBe('spiffe://example.org/agent/during');
    expect(r2.log()).not.toContain('ha-test-password-never-logged');
  });

  it('SIGKILL of a replica during handshake load: clients fail over, every acknowledged credential is recorded once, the audit log verifies', {
    timeout: 240_000,
  }, async () => {
    const db = await freshDatabase();
    cleanups.push(() => db.drop());
    const c = cluster(db.name);
    cleanups.push(() => c.stop());
    const [r1, r2, r3] = await Promise.all([c.start(), c.start(), c.start()]);
    const replicas = [r1!, r2!, r3!];
    const bundle = r1!.bundlePem();
    // A relying party watching replica 2, with replica 3 to fail over to.
    const watcher = new WatchRevocationSource({
      addresses: [r2!.address, r3!.address],
      connector: grpcWatchConnector(bundle, { ownConnection: true }),
      reconnectInitialMs: 20,
      reconnectMaxMs: 200,
    }).start();
    cleanups.push(async () => watcher.close());
    await watcher.synced(30_000);
    const early = await token(r1!, '/agent/revoked-early');
    const first = Number((await revokeAsOperator(r1!.adminSocket, 'entry', early.entryId)).sequence);
    await until(() => watcher.sequence >= first, 'the watcher sees the first revocation through replica 2');
    const TOTAL = 60;
    const acked: Array<{ spiffeId: string; serial: string; via: string }> = [];
    let failovers = 0;
    let n = 0;
    let killed: Promise<void> | undefined;
    const worker = async (w: number) => {
      while (acked.length < TOTAL) {
        const id = n++;
        // Tokens come from replica 1, which stays up; a failed attempt may have consumed its token, so a retry takes a new one.
        for (let attempt = 0; ; attempt++) {
          const via = replicas[(w + id + attempt) % 3]!;
          const path = `/agent/load-${id}-${attempt}`;
          const tok = await token(r1!, path);
          try {
            const o = await handshake(via, tok.token, bundle);
            acked.push({ spiffeId: o.spiffeId, serial: serialOf(o), via: via.name });
            break;
          } catch (e) {
            if (attempt > 5) throw e;
            failovers++;
          }
        }
        if (acked.length >= 15 && !killed) killed = r2!.kill();
      }
    };
    await Promise.all(Array.from({ length: 6 }, (_, w) => worker(w))).catch((e: Error) => {
      throw new Error(
        `${e.message}\n--- r1 (exit ${r1!.proc.exitCode ?? r1!.proc.signalCode}):\n${r1!
          .log()
          .split('\n')
          .filter((l) => /"level":[45]0/.test(l))
          .join('\n')
          .slice(-4000)}`,
      );
    });
    await killed;
    expect(r2!.proc.signalCode).toBe('SIGKILL');
    expect(acked.length).toBeGreaterThanOrEqual(TOTAL);
    // Served by all three before the kill, by the other two after it.
    expect(new Set(acked.map((a) => a.via))).toEqual(new Set(['r1', 'r2', 'r3']));
    const rows = await db.query("SELECT ltrim(id, '0') AS id, spiffe_id FROM issued_svids WHERE kind = 'x509'");
    const recorded = new Map(rows.rows.map((x: { id: string; spiffe_id: string }) => [x.id, x.spiffe_id]));
    for (const a of acked) expect(recorded.get(a.serial), `${a.spiffeId} (${a.serial}) acknowledged but not recorded`).toBe(a.spiffeId);
    // None issued twice: one x509-SVID per join token (each token names its own SPIFFE ID).
    const perId = new Map<string, number>();
    for (const x of rows.rows as Array<{ spiffe_id: string }>) perId.set(x.spiffe_id, (perId.get(x.spiffe_id) ?? 0) + 1);
    expect([...perId.values()].every((k) => k === 1)).toBe(true);
    expect(new Set(acked.map((a) => a.serial)).size).toBe(acked.length);
    const v = await adminClients(r3!.adminSocket, 120_000).audit.verifyLog({});
    expect(v.problem).toBe('');
    expect(v.ok).toBe(true);
    // The watcher moved to replica 3 and resumed from its last sequence: it sees what replica 1 revokes now.
    const late = await token(r1!, '/agent/revoked-late');
    const second = Number((await revokeAsOperator(r1!.adminSocket, 'entry', late.entryId)).sequence);
    await until(() => watcher.sequence >= second, 'the watcher sees a revocation after failing over to replica 3');
    expect(watcher.status().address).toBe(r3!.address);
    // The CLI fails over too: the dead replica first, then a live one.
    const tok = await token(r1!, '/agent/cli-failover');
    const bundleFile = join(c.dir, 'bundle.pem');
    writeFileSync(bundleFile, bundle);
    const cli = await runCli([
      'agent',
      'attest',
      '--server',
      `${r2!.address},${r3!.address}`,
      '--bundle',
      bundleFile,
      '--join-token',
      tok.token,
      '--out',
      join(c.dir, 'svid'),
    ]);
    expect(cli.err).toMatch(new RegExp(`${r2!.address.replace(/\./g, '\\.')} could not serve the handshake .*; trying the next issuer`));
    expect(cli.code, cli.err).toBe(0);
    expect(cli.out.trim()).toBe('spiffe://example.org/agent/cli-failover');
    console.log(`ha SIGKILL: ${acked.length} acknowledged, ${recorded.size} recorded, ${failovers} failovers`);
  });
});
