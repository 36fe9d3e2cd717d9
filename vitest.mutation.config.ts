/**
 * The tests a mutation run (`make mutate`, stryker.config.mjs) uses: the fast unit and
 * conformance tests, which import src/ directly. The e2e tests (test/e2e) are left out: they start
 * real servers on loopback, software TPMs and the built CLI in dist/ (which a mutant of the
 * sandbox's src/ never reaches), minutes per run where a mutant gets seconds; so the score is what
 * the unit and conformance tests alone pin. Also left out are the unit tests that import nothing
 * from the mutated folders, not even transitively: they can kill no mutant, yet a mutant hit
 * while test files load ("static", docs/testing.md) runs every test in this list.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/conformance/**/*.test.ts'],
    exclude: [
      // These reach only src/tpm (command client, event log), src/policy (Cedar), src/server,
      // src/cli and src/store: nothing in the mutated folders. store.test.ts calls newJoinToken,
      // which test/unit/join-token-rules.test.ts pins on its own.
      'test/unit/tpm-client.test.ts',
      'test/unit/eventlog.test.ts',
      'test/unit/policy.test.ts',
      'test/unit/store.test.ts',
      'test/unit/cli-args.test.ts',
      'test/unit/rate-limit.test.ts',
      // The refusal helper's own test reaches only src/errors.ts.
      'test/unit/expect-writ-error.test.ts',
      // writeFileAtomic (src/config) is not mutated, and its test sets process.umask, which worker threads refuse.
      'test/unit/files.test.ts',
      // Compile-time checks of the admin client (src/cli, src/rpc): nothing in the mutated folders.
      'test/unit/admin-client-types.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    setupFiles: ['test/helpers/setup.ts', 'test/mutation/collection-coverage.ts'],
    pool: 'forks',
  },
});
