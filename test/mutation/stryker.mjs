/**
 * Runs Stryker (`make mutate`) on this project's Node 20.
 *
 * StrykerJS 10 declares `engines.node >= 22` and its CLI refuses to start on an older Node
 * (stryker-cli.js, guardMinimalNodeVersion, evaluated on import of the package entry). The
 * project targets Node >= 20 and CI runs Node 20; the mutation engine itself runs there
 * unchanged, so this launcher loads Stryker's engine class directly and skips only that guard.
 * Options come from stryker.config.mjs as with the CLI; the exit code is 0 when the run
 * completed (scores are read from the report, docs/testing.md), 1 when it failed.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const core = dirname(require.resolve('@stryker-mutator/core/package.json'));
const { Stryker } = await import(pathToFileURL(join(core, 'dist/src/stryker.js')).href);

process.title = 'stryker';
try {
  await new Stryker({ configFile: 'stryker.config.mjs' }).runMutationTest();
} catch (e) {
  console.error(e);
  process.exitCode = 1;
}
