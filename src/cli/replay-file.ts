/**
 * A proof replay cache persisted in a file, so replays across `writ verify` runs are caught.
 * The whole read-verify-write runs under a lock on the file: two runs at once cannot both accept
 * one proof.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../config/files.js';
import { withFileLock } from './file-lock.js';
import { ProofReplayCache } from '../writ/proof.js';

type Stored = Record<string, [exp: number, owner: string]>;

/** Runs `fn` with the cache of `file` (or an in-memory one without a file), saving what it recorded. */
export function withReplayFile<T>(file: string | undefined, nowS: number, fn: (cache: ProofReplayCache | undefined) => T): T {
  if (!file) return fn(undefined);
  return withFileLock(file, () => {
    const cache = new ProofReplayCache();
    if (existsSync(file)) {
      let stored: Stored;
      try {
        stored = JSON.parse(readFileSync(file, 'utf8')) as Stored;
        if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) throw new Error('not an object');
      } catch {
        throw new Error(`--replay-cache: ${file} is not a replay cache this tool wrote`);
      }
      for (const [id, v] of Object.entries(stored)) {
        if (Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'string' && v[0] > nowS) cache.checkAndRecord(id, v[0], nowS, v[1]);
      }
    }
    try {
      return fn(cache);
    } finally {
      const out: Stored = {};
      for (const [id, exp, owner] of cache.entries()) out[id] = [exp, owner];
      writeFileAtomic(file, JSON.stringify(out), 0o600);
    }
  });
}
