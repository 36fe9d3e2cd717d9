/**
 * Reading operator-supplied files (configuration, CLI arguments): one reader of certificate
 * files for the server, the upstream CA, plug-ins and the CLI, errors that say which file and
 * why in words, and atomic writes (a reader never sees a half-written file).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { decodePem } from '../der/pem.js';

/** What an errno means, for people. */
const REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many symbolic links',
};

/** A file could not be read: `what` names its role ("--bundle", "the TPM key blob"). */
export class InputFileError extends Error {
  override readonly name = 'InputFileError';
  constructor(
    readonly path: string,
    what: string,
    reason: string,
  ) {
    super(`${what}: cannot read ${path}: ${reason}`);
  }
}

/** Reads a whole file; failures become one clear sentence instead of a raw errno. */
export function readInputFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    throw new InputFileError(path, what, REASONS[code] ?? (e as Error).message);
  }
}

/** Certificates from an operator-supplied file: PEM (any number of CERTIFICATE blocks) or DER. */
export function certificatesInFile(path: string, what = 'certificate file'): Buffer[] {
  const data = readInputFile(path, what);
  const text = data.toString('latin1');
  return text.includes('-----BEGIN')
    ? decodePem(text)
        .filter((b) => b.label === 'CERTIFICATE')
        .map((b) => b.der)
    : [data];
}

/**
 * Writes `data` to `path` atomically: a temporary file beside it (same directory, so the rename
 * cannot cross file systems), created with `mode` from the start, then renamed over `path`.
 * With `durable`, the file and then its directory are fsync'd, so the new content survives a
 * power loss once this returns (state a restart relies on, such as the audit high-water mark).
 */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644, durable = false): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, data, { mode, flag: 'wx' });
    if (durable) syncPath(tmp);
    renameSync(tmp, path);
    if (durable) syncPath(dirname(path));
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
