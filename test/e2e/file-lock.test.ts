/**
 * `withFileLock` (the `writ verify --replay-cache` lock) between real processes, with a stale
 * lock left by a process that died: never two holders at once (review finding 10: two processes
 * that both judged the lock stale could both enter, one removing the lock the other had taken).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/shared.js';
import { tmpDir } from '../helpers/tmp.js';

const MODULE = join(REPO_ROOT, 'dist', 'src', 'cli', 'file-lock.js');

const CHILD = `
import { withFileLock } from ${JSON.stringify(MODULE)};
import { appendFileSync } from 'node:fs';
const [target, log, start] = process.argv.slice(2);
while (Date.now() < Number(start)) {}
withFileLock(target, () => {
  appendFileSync(log, 'enter\\n');
  const t = Date.now() + 50;
  while (Date.now() < t) {}
  appendFileSync(log, 'exit\\n');
});
`;

describe('withFileLock across processes', () => {
  it('after a holder died, contending processes break its lock once and still enter one at a time', async () => {
    if (!existsSync(MODULE)) throw new Error('dist/ is missing: run `npm run build` first');
    const dir = tmpDir('writ-lock-');
    const child = join(dir, 'child.mjs');
    writeFileSync(child, CHILD);
    for (let trial = 0; trial < 3; trial++) {
      const target = join(dir, `cache-${trial}.json`);
      const log = join(dir, `log-${trial}`);
      writeFileSync(log, '');
      // A lock left by a process that has exited.
      const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
      writeFileSync(`${target}.lock`, String(dead));
      const start = Date.now() + 700;
      const runs = Array.from(
        { length: 6 },
        () =>
          new Promise<number>((resolve) => {
            const p = spawn(process.execPath, [child, target, log, String(start)], { stdio: 'ignore' });
            p.on('exit', (code) => resolve(code ?? -1));
          }),
      );
      expect(await Promise.all(runs)).toEqual([0, 0, 0, 0, 0, 0]);
      const lines = readFileSync(log, 'utf8').trim().split('\n');
      // Strictly enter, exit, enter, exit...: never two inside.
      expect(lines, `trial ${trial}`).toEqual(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? 'enter' : 'exit')));
      expect(existsSync(`${target}.lock`)).toBe(false);
      expect(existsSync(`${target}.lock.break`)).toBe(false);
    }
  }, 60_000);
});
