/**
 * What the enclave evidence types share (src/attestation/enclave): the configfs-tsm report
 * interface's bounds and checks, on a report directory of plain files (the kernel's FIFO
 * behaviour is test/unit/configfs-tsm.test.ts's), `--enclave-roots TYPE=FILE`, and the check
 * report the offline checkers print (`make mutate`, docs/testing.md).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TSM_INBLOB_MAX, TSM_OUTBLOB_MAX, TSM_REPORT_ROOT, tsmReport, type TsmOptions } from '../../src/attestation/enclave/configfs-tsm.js';
import { ENCLAVE_ROOTS_OPTION, enclaveRootFiles } from '../../src/attestation/enclave/options.js';
import { printChecks } from '../../src/attestation/enclave/report.js';
import { tmpDir } from '../helpers/tmp.js';

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string; cause?: unknown }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}
const tsmErr = (m: string) => ({ code: 'ERR_EVIDENCE_INVALID', message: `configfs-tsm: ${m}` });

/** A report directory as the kernel leaves it after a report, in plain files. */
function reportDir(o: { provider?: string; outblob?: Buffer; auxblob?: Buffer; generation?: string } = {}): string {
  const dir = join(tmpDir('writ-tsm-'), 'r');
  mkdirSync(dir);
  writeFileSync(join(dir, 'provider'), `${o.provider ?? 'sev_guest'}\n`);
  writeFileSync(join(dir, 'generation'), o.generation ?? '7\n');
  writeFileSync(join(dir, 'outblob'), o.outblob ?? Buffer.from('report'));
  if (o.auxblob) writeFileSync(join(dir, 'auxblob'), o.auxblob);
  return dir;
}
const report = (dir: string, over: Partial<TsmOptions> = {}, inblob: Uint8Array = Buffer.from('nonce')) =>
  tsmReport(inblob, { dir, provider: 'sev_guest', ...over });

describe('configfs-tsm: bounds and checks', () => {
  it('the kernel’s limits and mount point', () => {
    expect(TSM_INBLOB_MAX).toBe(64);
    expect(TSM_OUTBLOB_MAX).toBe(32 * 1024);
    expect(TSM_REPORT_ROOT).toBe('/sys/kernel/config/tsm/report');
  });

  it('writes inblob (1..64 bytes), reads outblob and the generation; a directory it was given stays', async () => {
    const dir = reportDir({ auxblob: Buffer.from('certs') });
    const r = await report(dir, {}, Buffer.alloc(64, 1));
    expect(r).toEqual({ provider: 'sev_guest', outblob: Buffer.from('report'), auxblob: Buffer.from('certs'), generation: 7 });
    expect(readFileSync(join(dir, 'inblob'))).toEqual(Buffer.alloc(64, 1));
    expect(existsSync(join(dir, 'privlevel'))).toBe(false);
    expect((await report(dir, {}, Buffer.alloc(1))).outblob).toEqual(Buffer.from('report'));
    expect(existsSync(dir)).toBe(true);
  });

  it('privlevel: 0..3, written when given', async () => {
    const dir = reportDir();
    await report(dir, { privlevel: 3 });
    expect(readFileSync(join(dir, 'privlevel'), 'utf8')).toBe('3\n');
    await report(dir, { privlevel: 0 });
    expect(readFileSync(join(dir, 'privlevel'), 'utf8')).toBe('0\n');
    for (const bad of [-1, 4, 1.5]) expect(await rejection(report(dir, { privlevel: bad }))).toMatchObject(tsmErr('privlevel must be 0..3'));
  });

  it('outblob and auxblob: at most TSM_OUTBLOB_MAX bytes; an empty outblob is no report; no or an empty auxblob is none', async () => {
    expect((await report(reportDir({ outblob: Buffer.alloc(TSM_OUTBLOB_MAX, 1) }))).outblob).toHaveLength(TSM_OUTBLOB_MAX);
    expect(await rejection(report(reportDir({ outblob: Buffer.alloc(TSM_OUTBLOB_MAX + 1) })))).toMatchObject(tsmErr('outblob is larger than 32768 bytes'));
    expect(await rejection(report(reportDir({ auxblob: Buffer.alloc(TSM_OUTBLOB_MAX + 1, 1) })))).toMatchObject(tsmErr('auxblob is larger than 32768 bytes'));
    expect(await rejection(report(reportDir({ outblob: Buffer.alloc(0) })))).toMatchObject(tsmErr('outblob is empty'));
    const none = await report(reportDir());
    expect('auxblob' in none).toBe(false);
    const empty = await report(reportDir({ auxblob: Buffer.alloc(0) }));
    expect('auxblob' in empty).toBe(false);
  });

  it('generation: 1..15 decimal digits', async () => {
    expect((await report(reportDir({ generation: '123456789012345\n' }))).generation).toBe(123456789012345);
    for (const g of ['1234567890123456', 'x', '', '-1', '1.5', ' 1 2']) {
      expect(await rejection(report(reportDir({ generation: g })))).toMatchObject(tsmErr(`generation is not a decimal number: ${JSON.stringify(g.trim())}`));
    }
    expect((await rejection(report(reportDir({ generation: 'g'.repeat(100) })))).message).toBe(
      `configfs-tsm: generation is not a decimal number: "${'g'.repeat(32)}"`,
    );
  });

  it('quotes at most 64 characters of an unexpected provider', async () => {
    expect(await rejection(report(reportDir({ provider: 'p'.repeat(100) })))).toMatchObject(tsmErr(`the provider is "${'p'.repeat(64)}", not sev_guest`));
  });

  it('any other failure while reading names the directory and keeps the cause', async () => {
    const dir = reportDir();
    mkdirSync(join(dir, 'auxblob'));
    const e = await rejection(report(dir));
    expect(e.message).toMatch(new RegExp(`^configfs-tsm: reading the report in ${dir}: `));
    expect((e.cause as NodeJS.ErrnoException).code).toBe('EISDIR');
  });
});

describe('--enclave-roots TYPE=FILE', () => {
  it('is a repeatable string option', () => {
    expect(ENCLAVE_ROOTS_OPTION['enclave-roots']).toMatchObject({ type: 'string', multiple: true, value: 'TYPE=FILE' });
  });

  it('gives the files named for one type, in order; the file may hold "="', () => {
    const values = { 'enclave-roots': ['sev-snp=a.pem', 'tdx=b.pem', 'sev-snp=c=d.pem'] };
    expect(enclaveRootFiles(values, 'sev-snp')).toEqual(['a.pem', 'c=d.pem']);
    expect(enclaveRootFiles(values, 'tdx')).toEqual(['b.pem']);
    expect(enclaveRootFiles(values, 'nitro')).toEqual([]);
    expect(enclaveRootFiles({ 'enclave-roots': 'tdx=x' }, 'tdx')).toEqual(['x']);
    expect(enclaveRootFiles({}, 'tdx')).toEqual([]);
  });

  it('refuses a value without a type or a file, whichever type is asked for', () => {
    for (const bad of ['a.pem', '=a.pem', 'tdx=', '=']) {
      expect(() => enclaveRootFiles({ 'enclave-roots': [bad] }, 'sev-snp'), bad).toThrow(`--enclave-roots ${bad}: want TYPE=FILE`);
    }
  });
});

describe('the check report of offline checkers', () => {
  const io = () => {
    const out: string[] = [];
    return { out, io: { out: (t: string) => out.push(t), err: () => undefined } };
  };

  it('one line per check with a padded status; 0 unless a check failed', () => {
    const { out, io: o } = io();
    const code = printChecks(
      o,
      [
        { status: 'ok', check: 'signature' },
        { status: 'unchecked', check: 'revocation', detail: 'no CRL given' },
      ],
      false,
    );
    expect(code).toBe(0);
    expect(out.join('')).toBe('ok        signature\nunchecked revocation: no CRL given\n');
    const mixed = io();
    expect(
      printChecks(
        mixed.io,
        [
          { status: 'ok', check: 'a' },
          { status: 'failed', check: 'b' },
        ],
        false,
      ),
    ).toBe(1);
    const failed = io();
    expect(printChecks(failed.io, [{ status: 'failed', check: 'measurement', detail: 'differs' }], false)).toBe(1);
    expect(failed.out.join('')).toBe('FAILED    measurement: differs\n');
  });

  it('as JSON: valid, the extra members, and the checks', () => {
    const { out, io: o } = io();
    const lines = [{ status: 'failed', check: 'x' }] as const;
    expect(printChecks(o, lines, true, { type: 'sev-snp' })).toBe(1);
    expect(JSON.parse(out.join(''))).toEqual({ valid: false, type: 'sev-snp', checks: [{ status: 'failed', check: 'x' }] });
    expect(out.join('').endsWith('}\n')).toBe(true);
    const ok = io();
    expect(printChecks(ok.io, [{ status: 'ok', check: 'y' }], true)).toBe(0);
    expect(JSON.parse(ok.out.join(''))).toEqual({ valid: true, checks: [{ status: 'ok', check: 'y' }] });
  });
});
