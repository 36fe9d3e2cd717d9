/** A proof replay cache persisted in a file, so replays across `writ verify` runs are caught. */
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../config/files.js';
import { ProofReplayCache } from '../writ/proof.js';

export function fileReplayCache(file: string | undefined, nowS: number): { cache: ProofReplayCache; save: () => void } {
  const cache = new ProofReplayCache();
  if (!file) return { cache, save: () => {} };
  let entries: Record<string, number> = {};
  if (existsSync(file)) {
    try {
      entries = JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
    } catch {
      throw new Error(`--replay-cache: ${file} is not a replay cache this tool wrote`);
    }
  }
  for (const [id, exp] of Object.entries(entries)) if (typeof exp === 'number' && exp > nowS) cache.checkAndRecord(id, exp, nowS);
  return { cache, save: () => writeFileAtomic(file, JSON.stringify(Object.fromEntries(cache.entries())), 0o600) };
}
