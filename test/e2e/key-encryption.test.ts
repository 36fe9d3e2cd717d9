import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { serverSettings as buildServerSettings } from '../../src/server/settings.js';
import { WritServer } from '../../src/server/server.js';
import { CaError } from '../../src/errors.js';
import { ManualClock } from '../../src/clock.js';
import { encodePem } from '../../src/der/pem.js';
import { writeFileSync } from 'node:fs';
import { makeCert } from '../helpers/testca.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function start(dataDir: string, env: NodeJS.ProcessEnv, clock?: ManualClock, extra: Record<string, unknown> = {}): Promise<WritServer> {
  const settings = buildServerSettings({ data_dir: dataDir, listen: '127.0.0.1:0', trust_domain: 'example.org', ...extra });
  return WritServer.start(settings, { logger: pino({ level: 'silent' }), env, ...(clock ? { clock } : {}) });
}

describe('keys at rest', () => {
  it('with a passphrase: no key file, restart works, a wrong passphrase is refused without damage', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-kek-'));
    dirs.push(dir);
    const s1 = await start(dir, { WRIT_KEY_PASSPHRASE: 'correct horse battery staple' });
    const bundle = readFileSync(s1.bundlePemPath, 'utf8');
    await s1.stop();
    expect(existsSync(join(dir, 'kek'))).toBe(false);
    expect(existsSync(join(dir, 'kek.salt'))).toBe(true);

    const err = await start(dir, { WRIT_KEY_PASSPHRASE: 'wrong horse battery staple' }).catch((e) => e);
    expect(err).toBeInstanceOf(CaError);
    expect((err as CaError).code).toBe('ERR_KEY_DECRYPT');

    const s2 = await start(dir, { WRIT_KEY_PASSPHRASE: 'correct horse battery staple' });
    expect(readFileSync(s2.bundlePemPath, 'utf8')).toBe(bundle);
    await s2.stop();

    // The database holds sealed keys only: no PKCS#8 "PRIVATE KEY" structure in the clear.
    const db = new Database(join(dir, 'writ.db'), { readonly: true });
    const rows = db.prepare('SELECT sealed_key FROM ca_keys').all() as Array<{ sealed_key: Buffer }>;
    db.close();
    expect(rows.length).toBeGreaterThanOrEqual(3);
    // PKCS#8 of an EC key starts 30 81 87 02 01 00 30 13 06 07 2a 86 48 ce 3d 02 01.
    for (const r of rows) expect(r.sealed_key.includes(Buffer.from('06072a8648ce3d0201', 'hex'))).toBe(false);
  });

  it('a wrong passphrase writes nothing, even when a rotation is due', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-kek-'));
    dirs.push(dir);
    // With an upstream CA, rotating the intermediate needs no sealed key, so only an up-front
    // unseal of every stored key stops a JWT key being sealed under the wrong passphrase.
    const up = makeCert({ subjectCn: 'upstream', ca: true, notAfter: new Date(Date.now() + 30 * 86400_000) });
    writeFileSync(join(dir, 'up.pem'), encodePem('CERTIFICATE', up.der));
    writeFileSync(join(dir, 'up.key'), up.key.export({ type: 'pkcs8', format: 'pem' }));
    const upstream = { ca: { upstream: { cert_file: join(dir, 'up.pem'), key_file: join(dir, 'up.key'), bundle_file: join(dir, 'up.pem') } } };
    const clock = new ManualClock(Date.now());
    const good = { WRIT_KEY_PASSPHRASE: 'correct horse battery staple' };
    await (await start(dir, good, clock, upstream)).stop();
    const keysBefore = () => {
      const db = new Database(join(dir, 'writ.db'), { readonly: true });
      const ids = (db.prepare('SELECT id FROM ca_keys ORDER BY id').all() as Array<{ id: string }>).map((r) => r.id);
      db.close();
      return ids;
    };
    const before = keysBefore();
    clock.advance(13 * 3600_000); // past half of the 24 h CA and JWT key lifetime: a prepare is due
    await expect(start(dir, { WRIT_KEY_PASSPHRASE: 'wrong horse battery staple' }, clock, upstream)).rejects.toThrow(CaError);
    expect(keysBefore()).toEqual(before);
    const s = await start(dir, good, clock, upstream);
    expect(keysBefore().length).toBeGreaterThan(before.length);
    await s.stop();
  });

  it('refuses a development key file readable by others', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-kek-'));
    dirs.push(dir);
    const s = await start(dir, {});
    await s.stop();
    chmodSync(join(dir, 'kek'), 0o644);
    await expect(start(dir, {})).rejects.toThrow(/readable by group or others/);
  });
});
