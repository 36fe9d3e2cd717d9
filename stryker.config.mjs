// @ts-check
/**
 * Mutation testing (`make mutate`, docs/testing.md): Stryker mutates the security-bearing
 * folders and runs the unit and conformance tests (vitest.mutation.config.ts) against each
 * mutant. `MUTATE=src/writ` (or several, comma-separated) restricts the run to those folders;
 * each selection keeps its own incremental file and report under reports/ (gitignored).
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const FOLDERS = ['src/writ', 'src/delegation', 'src/jose', 'src/x509', 'src/attestation', 'src/spiffe'];
const selected = (process.env.MUTATE ?? '')
  .split(/[\s,]+/)
  .filter(Boolean)
  .map((f) => f.replace(/\/+$/, ''));
const folders = selected.length ? selected : FOLDERS;
const name = selected.length ? folders.map((f) => f.replace(/^src\//, '').replace(/\//g, '-')).join('+') : 'all';
// The sandbox is a copy of the checkout under reports/; the outside vectors stay beside the real one.
process.env.WRIT_SHARED ??= resolve(here, '../shared');

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  // Worker threads start faster than forked processes; each test file still gets its own module graph.
  vitest: { configFile: 'vitest.mutation.config.ts', related: false, pool: 'threads' },
  mutate: folders.flatMap((f) => (f.endsWith('.ts') ? [f] : [`${f}/**/*.ts`])).concat(['!src/gen/**', '!**/*.d.ts']),
  coverageAnalysis: 'perTest',
  // Two cores shared with other engineers: one worker unless told otherwise (STRYKER_CONCURRENCY=2).
  concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 1),
  // vitest 5 needs Map.groupBy (Node >= 21) when it reports a failure; a killed mutant is a failure.
  testRunnerNodeArgs: ['--import', resolve(here, 'test/helpers/node20-polyfill.mjs')],
  timeoutMS: 10_000,
  // Stryker rewrites tsconfig `extends`/`references` in the sandbox with the TypeScript 5 API, which
  // TypeScript 7 (this project's compiler) no longer has; our tsconfig has neither, so point it nowhere.
  tsconfigFile: 'stryker-no-tsconfig.json',
  incremental: true,
  incrementalFile: `reports/stryker-incremental-${name}.json`,
  tempDirName: 'reports/.stryker-tmp',
  ignorePatterns: ['dist', 'reports', '.writ', 'test-results.json', 'bench-results.json'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: `reports/mutation/${name}.html` },
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  clearTextReporter: { allowColor: false, logTests: false, reportMutants: true, reportScoreTable: true },
  thresholds: { high: 95, low: 90, break: null },
};
