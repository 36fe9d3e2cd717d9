/**
 * The Linux configfs-tsm report interface (Documentation/ABI/testing/configfs-tsm-report,
 * Linux 6.7+), the way SEV-SNP and TDX guests get evidence without an ioctl: make a report
 * directory under `/sys/kernel/config/tsm/report`, write up to 64 bytes to `inblob`, read the
 * signed report from `outblob` (and, where the provider has it, certificates from `auxblob`),
 * then check that `generation` did not move (another writer changed the options between our
 * write and our read) and remove the directory. Plain file I/O: it works from Node without
 * native code.
 *
 * Creating a report directory needs write access to configfs (root, usually). An agent that
 * runs unprivileged can instead be given one report directory made for it (`mkdir` by root,
 * then `chown` to the agent): `dir` uses that directory as it is and leaves it in place. Tests
 * use `dir` with a fake kernel whose `inblob` and `outblob` are FIFOs (test/helpers/fake-tsm.ts).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AttestationError } from '../../errors.js';

/** Where the kernel mounts it. */
export const TSM_REPORT_ROOT = '/sys/kernel/config/tsm/report';
/** The kernel's TSM_INBLOB_MAX. */
export const TSM_INBLOB_MAX = 64;
/** The kernel's TSM_OUTBLOB_MAX (32 KiB); auxblob is bounded the same way here. */
export const TSM_OUTBLOB_MAX = 32 * 1024;

export interface TsmReport {
  /** The provider's name, e.g. `sev_guest` or `tdx_guest`. */
  readonly provider: string;
  readonly outblob: Buffer;
  /** Absent when the provider emits none (TDX), or the file does not exist. */
  readonly auxblob?: Buffer;
  readonly generation: number;
}

export interface TsmOptions {
  /** The report root a fresh directory is made in (default TSM_REPORT_ROOT). */
  readonly root?: string;
  /** An existing report directory to use instead (left in place); excludes `root`. */
  readonly dir?: string;
  /** The provider the caller expects; anything else is refused. */
  readonly provider: string;
  /** SEV-SNP's VMPL (0..3); written to `privlevel` when given. */
  readonly privlevel?: number;
}

const fail = (msg: string, cause?: unknown) =>
  new AttestationError('ERR_EVIDENCE_INVALID', `configfs-tsm: ${msg}`, cause === undefined ? undefined : { cause });

async function readBounded(path: string, what: string): Promise<Buffer> {
  const b = await readFile(path);
  if (b.length > TSM_OUTBLOB_MAX) throw fail(`${what} is larger than ${TSM_OUTBLOB_MAX} bytes`);
  return b;
}

async function readGeneration(dir: string): Promise<number> {
  const text = (await readFile(join(dir, 'generation'), 'utf8')).trim();
  if (!/^\d{1,15}$/.test(text)) throw fail(`generation is not a decimal number: ${JSON.stringify(text.slice(0, 32))}`);
  return Number(text);
}

/** One report over `inblob`; the directory is removed whatever happens. */
export async function tsmReport(inblob: Uint8Array, o: TsmOptions): Promise<TsmReport> {
  if (inblob.length === 0 || inblob.length > TSM_INBLOB_MAX) throw fail(`inblob must be 1..${TSM_INBLOB_MAX} bytes`);
  if (o.privlevel !== undefined && (!Number.isInteger(o.privlevel) || o.privlevel < 0 || o.privlevel > 3)) throw fail('privlevel must be 0..3');
  if (o.dir !== undefined && o.root !== undefined) throw fail('give a report root or a report directory, not both');
  const root = o.root ?? TSM_REPORT_ROOT;
  const dir = o.dir ?? join(root, `writ-${process.pid}-${randomBytes(6).toString('hex')}`);
  if (o.dir === undefined) {
    try {
      await mkdir(dir);
    } catch (e) {
      throw fail(`cannot create a report under ${root} (is configfs mounted and the TSM driver loaded?): ${(e as Error).message}`, e);
    }
  }
  try {
    const provider = (await readFile(join(dir, 'provider'), 'utf8')).trim();
    if (provider !== o.provider) throw fail(`the provider is ${JSON.stringify(provider.slice(0, 64))}, not ${o.provider}`);
    if (o.privlevel !== undefined) await writeFile(join(dir, 'privlevel'), `${o.privlevel}\n`);
    await writeFile(join(dir, 'inblob'), inblob);
    const generation = await readGeneration(dir);
    const outblob = await readBounded(join(dir, 'outblob'), 'outblob');
    let auxblob: Buffer | undefined;
    try {
      auxblob = await readBounded(join(dir, 'auxblob'), 'auxblob');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' && (e as NodeJS.ErrnoException).code !== 'ENXIO') throw e;
    }
    if ((await readGeneration(dir)) !== generation)
      throw fail('another writer changed the report options while it was generated (generation moved); try again');
    if (outblob.length === 0) throw fail('outblob is empty');
    return { provider, outblob, ...(auxblob?.length ? { auxblob } : {}), generation };
  } catch (e) {
    if (e instanceof AttestationError) throw e;
    throw fail(`reading the report in ${dir}: ${(e as Error).message}`, e);
  } finally {
    if (o.dir === undefined) await rmdir(dir).catch(() => undefined);
  }
}
