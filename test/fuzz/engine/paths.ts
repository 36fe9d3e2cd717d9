/** Where the checkout, ../shared and the reports are, from source (vitest) or from dist/ (make fuzz) alike. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'writ') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('fuzz: cannot find the writ checkout above this file');
    dir = up;
  }
}

export const ROOT = findRoot();
/** ../shared beside the checkout (vectors from outside the project), as test/helpers/shared.ts has it. */
export const SHARED = process.env.WRIT_SHARED ?? resolve(ROOT, '../shared');
export const HAVE_VECTORS = existsSync(join(SHARED, 'vectors'));
export const REPORTS = resolve(ROOT, process.env.FUZZ_OUT ?? 'reports/fuzz');
export const REGRESSIONS = join(ROOT, 'test', 'fuzz', 'regressions');

export const vectorPath = (rel: string) => join(SHARED, 'vectors', rel);
