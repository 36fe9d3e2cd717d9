/**
 * writeFileAtomic (src/config/files.ts), the one atomic-write helper: a reader never sees a
 * half-written file, the file never exists with looser permissions than asked, and a failed
 * write leaves neither a temporary file nor a changed target behind.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../src/config/files.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'writ-atomic-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('writeFileAtomic', () => {
  it('creates the file with the mode asked for, even under a permissive umask', () => {
    const old = process.umask(0);
    try {
      writeFileAtomic(join(dir, 'key'), 'secret', 0o600);
    } finally {
      process.umask(old);
    }
    expect(statSync(join(dir, 'key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'key'), 'utf8')).toBe('secret');
  });

  it('replaces an existing file whole, leaving nothing else in the directory', () => {
    writeFileSync(join(dir, 'f'), 'old contents, longer than the new');
    writeFileAtomic(join(dir, 'f'), 'new');
    expect(readFileSync(join(dir, 'f'), 'utf8')).toBe('new');
    expect(readdirSync(dir)).toEqual(['f']);
  });

  it('a write that fails leaves the target as it was and no temporary file', () => {
    // The target is a directory: the rename fails after the temporary file was written.
    mkdirSync(join(dir, 'target'));
    writeFileSync(join(dir, 'target', 'inside'), 'kept');
    expect(() => writeFileAtomic(join(dir, 'target'), 'x')).toThrow();
    expect(readdirSync(dir)).toEqual(['target']);
    expect(readFileSync(join(dir, 'target', 'inside'), 'utf8')).toBe('kept');
  });

  it('never writes through a file planted at a predictable temporary name', () => {
    // An attacker who can write the directory plants `f.tmp` as a symlink to a file of theirs
    // choosing; a fixed temporary name would be opened and written through.
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched');
    for (const name of ['f.tmp', 'f~', '.f.tmp']) symlinkSync(victim, join(dir, name));
    writeFileAtomic(join(dir, 'f'), 'data');
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
    expect(readFileSync(join(dir, 'f'), 'utf8')).toBe('data');
  });
});
