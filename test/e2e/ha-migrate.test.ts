/**
 * `writ datastore migrate`: a SQLite data directory with state in it (CA keys, an entry, an
 * SVID, revocations, the audit log) copied into an empty PostgreSQL database; a server started on
 * PostgreSQL with the same key-encryption key serves the same bundle, knows every revocation
 * under its sequence, numbers the next one after them, and its audit log verifies. A second copy
 * into the same database is refused.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { attest } from '../../src/agent/attest-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { WritServer } from '../../src/server/server.js';
import { serverSettings } from '../../src/server/settings.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, PG_UNREACHABLE } from '../helpers/ha.js';
import { revokeAsOperator } from '../helpers/revocation.js';

const pgDescribe = PG_UNREACHABLE === undefined ? describe : describe.skip;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const start = (dataDir: string, datastore?: Record<string, unknown>) =>
  WritServer.start(serverSettings({ data_dir: dataDir, listen: '127.0.0.1:0', trust_domain: 'example.org', ...(datastore ? { datastore } : {}) }), {
    logger: pino({ level: 'silent' }),
    env: {},
  });

pgDescribe('writ datastore migrate (SQLite → PostgreSQL)', () => {
  it('keeps keys, entries, issuance records, revocations and the audit log; the next sequence follows', { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'writ-migrate-'));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const db = await freshDatabase();
    cleanups.push(() => db.drop());

    const lite = await start(dataDir);
    const admin = adminClients(join(dataDir, 'admin.sock')).admin;
    const bundle = lite.ca.bundle();
    const tok = await admin.createJoinToken({ ttl: 600, spiffeId: 'spiffe://example.org/agent/before' });
    const o = await attest({
      server: lite.address,
      bundlePem: readFileSync(lite.bundlePemPath, 'utf8'),
      evidenceType: 'join_token',
      key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
      respond: () => Buffer.from(tok.token),
    });
    expect(o.spiffeId).toBe('spiffe://example.org/agent/before');
    const other = await admin.createJoinToken({ ttl: 600, spiffeId: 'spiffe://example.org/agent/other' });
    const seqs = [
      Number((await revokeAsOperator(join(dataDir, 'admin.sock'), 'entry', tok.entryId)).sequence),
      Number((await revokeAsOperator(join(dataDir, 'admin.sock'), 'entry', other.entryId)).sequence),
    ];
    await lite.core.audit.checkpoint();
    const liteRevocations = await lite.store.listRevocationsSince(0, 100);
    const liteEntries = await lite.store.listEntries();
    await lite.stop();

    const cfg = join(dataDir, 'pg.yaml');
    writeFileSync(cfg, `datastore:\n  type: postgres\n  connection_string: ${db.url}\n`);
    const copied = await runCli(['datastore', 'migrate', '--from', `sqlite:${dataDir}`, '--config', cfg]);
    expect(copied.code, copied.err).toBe(0);
    expect(copied.out).toMatch(/^copied \d+ rows of \d+ tables at schema version \d+/);
    expect(copied.out).toMatch(/revocations\s+2\b/);

    const onPg = await start(dataDir, { type: 'postgres', connection_string: db.url });
    try {
      expect(onPg.datastoreDescription).toMatch(/^postgres /);
      expect(onPg.ca.bundle().x509Authorities.map((c) => c.toString('base64'))).toEqual(bundle.x509Authorities.map((c) => c.toString('base64')));
      expect(await onPg.store.listRevocationsSince(0, 100)).toEqual(liteRevocations);
      expect(await onPg.store.listEntries()).toEqual(liteEntries);
      const next = await admin.createJoinToken({ ttl: 600, spiffeId: 'spiffe://example.org/agent/after' });
      const third = Number((await revokeAsOperator(join(dataDir, 'admin.sock'), 'entry', next.entryId)).sequence);
      expect(third).toBeGreaterThan(Math.max(...seqs));
      const v = await adminClients(join(dataDir, 'admin.sock')).audit.verifyLog({});
      expect(v.problem).toBe('');
      expect(v.ok).toBe(true);
    } finally {
      await onPg.stop();
    }
    const again = await runCli(['datastore', 'migrate', '--from', `sqlite:${dataDir}`, '--config', cfg]);
    expect(again.code).not.toBe(0);
    expect(again.err).toMatch(/the target is not empty/);
  });
});
