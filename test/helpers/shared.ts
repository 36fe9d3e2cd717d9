import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const up2 = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The checkout: test/helpers/../.. from the sources, dist/test/helpers/../../.. when compiled (make bench, make fuzz). */
export const REPO_ROOT = basename(up2) === 'dist' ? dirname(up2) : up2;
/** ../shared beside the checkout (vectors from outside the project). */
export const SHARED = process.env.WRIT_SHARED ?? resolve(REPO_ROOT, '../shared');
export const HAVE_SHARED = existsSync(join(SHARED, 'vectors'));
if (!HAVE_SHARED) {
  console.warn(`\n*** ../shared not found at ${SHARED}: conformance tests against outside vectors are SKIPPED ***\n`);
}

export function vector(rel: string): Buffer {
  return readFileSync(join(SHARED, 'vectors', rel));
}
