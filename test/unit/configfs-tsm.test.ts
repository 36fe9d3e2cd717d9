import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tsmReport } from '../../src/attestation/enclave/configfs-tsm.js';
import { expectWritError } from '../helpers/errors.js';
import { startFakeTsm, type FakeTsm } from '../helpers/fake-tsm.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest();

describe('configfs-tsm reports', () => {
  let fake: FakeTsm | undefined;
  afterEach(() => {
    fake?.stop();
    fake = undefined;
  });

  it('writes inblob, reads the report and auxblob the provider answers with', async () => {
    fake = startFakeTsm('sev_guest', (inblob) => ({ outblob: Buffer.concat([Buffer.from('report:'), sha(inblob)]), auxblob: Buffer.from('certs') }));
    const inblob = Buffer.alloc(64, 7);
    const r = await tsmReport(inblob, { dir: fake.dir, provider: 'sev_guest', privlevel: 0 });
    expect(r.provider).toBe('sev_guest');
    expect(r.outblob).toEqual(Buffer.concat([Buffer.from('report:'), sha(inblob)]));
    expect(r.auxblob).toEqual(Buffer.from('certs'));
    expect(fake.inblobs).toEqual([inblob]);
    // A second report through the same directory.
    const again = await tsmReport(Buffer.from('second'), { dir: fake.dir, provider: 'sev_guest' });
    expect(again.outblob).toEqual(Buffer.concat([Buffer.from('report:'), sha(Buffer.from('second'))]));
  });

  it('refuses another provider, an empty or oversized inblob, and a generation that moved', async () => {
    fake = startFakeTsm('tdx_guest', (inblob) => ({ outblob: inblob }));
    await expectWritError(
      tsmReport(Buffer.from('x'), { dir: fake.dir, provider: 'sev_guest' }),
      'ERR_EVIDENCE_INVALID',
      /the provider is "tdx_guest", not sev_guest/,
    );
    await expectWritError(tsmReport(Buffer.alloc(0), { dir: fake.dir, provider: 'tdx_guest' }), 'ERR_EVIDENCE_INVALID', /inblob must be 1\.\.64 bytes/);
    await expectWritError(tsmReport(Buffer.alloc(65), { dir: fake.dir, provider: 'tdx_guest' }), 'ERR_EVIDENCE_INVALID', /inblob must be 1\.\.64 bytes/);
    fake.stop();
    const dir = fake.dir;
    fake = startFakeTsm('tdx_guest', (inblob) => {
      // Another writer changes the options while the report is made.
      writeFileSync(join(fake!.dir, 'generation.x'), '999\n');
      renameSync(join(fake!.dir, 'generation.x'), join(fake!.dir, 'generation'));
      return { outblob: inblob };
    });
    expect(fake.dir).not.toBe(dir);
    await expectWritError(tsmReport(Buffer.from('x'), { dir: fake.dir, provider: 'tdx_guest' }), 'ERR_EVIDENCE_INVALID', /generation moved/);
  });

  it('makes and removes its own report directory under a root, and says what is missing', async () => {
    const root = mkdtempSync(join(tmpdir(), 'writ-tsm-root-'));
    try {
      await expectWritError(tsmReport(Buffer.from('x'), { root, provider: 'sev_guest' }), 'ERR_EVIDENCE_INVALID', /reading the report in .*provider/);
      expect(readdirSync(root)).toEqual([]);
      await expectWritError(
        tsmReport(Buffer.from('x'), { root: join(root, 'absent'), provider: 'sev_guest' }),
        'ERR_EVIDENCE_INVALID',
        /cannot create a report under .*is configfs mounted/,
      );
      await expectWritError(tsmReport(Buffer.from('x'), { root, dir: root, provider: 'sev_guest' }), 'ERR_EVIDENCE_INVALID', /not both/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
