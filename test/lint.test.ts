/** `make lint` as a test, so CI's count includes it: the formatter and linter agree with the tree. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/shared.js';

describe('lint', () => {
  it('biome check passes (format and lint rules of biome.json; src/gen ignored)', () => {
    const r = spawnSync(join(REPO_ROOT, 'node_modules', '.bin', 'biome'), ['check', '--colors=off', '--max-diagnostics=20', '.'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  });
});
