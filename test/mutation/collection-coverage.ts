/**
 * Mutation runs only (vitest.mutation.config.ts; docs/testing.md §Static mutants): code our
 * test files run while they load and collect (fixtures built at module or describe level, in
 * beforeAll hooks) is charged to every test of that file, instead of to Stryker's "static"
 * bucket, which makes Stryker run every test of every file for each mutant it holds.
 *
 * Stryker's instrumented code counts a hit for `__stryker__.currentTestId`, or as static when
 * that is unset; its vitest setup sets the id around each test only. Here, during the dry run,
 * an unset id reads as a per-file pseudo test, and when the file ends its hits are added to the
 * coverage of each test of the file. That is exact under vitest's per-file isolation (the default
 * `isolate: true`): what a file builds while loading can reach its own tests and no others.
 *
 * Mutant runs: a mutant no longer counted as static is one Stryker activates "at runtime", in a
 * beforeAll hook, after the test file has imported src/; a mutant in module-level code (a
 * constant regex, a list of claim names) would then never take effect and would survive
 * unseen. So the active mutant is set here, before the test file loads, as Stryker itself does
 * for static mutants. Each test file imports src/ afresh (isolation), so this is exact.
 * Outside a Stryker run (no `mode` provided) this file does nothing.
 */
import { afterAll, inject } from 'vitest';

type Coverage = { static: Record<string, number>; perTest: Record<string, Record<string, number>> };
interface Task {
  name: string;
  type: string;
  suite?: Task;
  file?: { filepath?: string };
  tasks?: Task[];
}
interface StrykerNs {
  currentTestId?: string;
  mutantCoverage?: Coverage;
}

const mode = (inject as (k: string) => unknown)('mode');

if (mode === 'mutant') {
  const nsName = ((inject as (k: string) => unknown)('globalNamespace') as string | undefined) ?? '__stryker__';
  const g = globalThis as unknown as Record<string, { activeMutant?: string }>;
  g[nsName] ??= {};
  g[nsName].activeMutant = (inject as (k: string) => unknown)('activeMutant') as string;
}

if (mode === 'dry-run') {
  const separator = (inject as (k: string) => unknown)('testNameSeparator') as string;
  const g = globalThis as unknown as Record<string, StrykerNs>;
  const nsName = ((inject as (k: string) => unknown)('globalNamespace') as string | undefined) ?? '__stryker__';
  g[nsName] ??= {};
  const ns = g[nsName];
  const COLLECTING = `${nsName}:collecting`;
  let current: string | undefined;
  Object.defineProperty(ns, 'currentTestId', {
    configurable: true,
    enumerable: true,
    get: () => current ?? COLLECTING,
    set: (v: string | undefined) => {
      current = v;
    },
  });

  // The same test id Stryker's setup computes (stryker-setup.js, toRawTestId).
  const testName = (t: Task): string => {
    const parts = [t.name];
    for (let s = t.suite; s; s = s.suite) parts.unshift(s.name);
    return parts.join(separator).trim();
  };
  const tests = (t: Task): Task[] => (t.tasks ?? []).flatMap((c) => (c.type === 'suite' ? tests(c) : c.type === 'test' ? [c] : []));

  // vitest reads the hook's first parameter and insists on a destructuring pattern.
  // biome-ignore lint/correctness/noEmptyPattern: the suite is the second argument
  afterAll(({}, file: unknown) => {
    const cov = ns.mutantCoverage;
    const hits = cov?.perTest[COLLECTING];
    if (!cov || !hits) return;
    delete cov.perTest[COLLECTING];
    for (const t of tests(file as Task)) {
      const id = `${t.file?.filepath ?? 'unknown.js'}#${testName(t)}`;
      cov.perTest[id] ??= {};
      const mine = cov.perTest[id];
      for (const [m, n] of Object.entries(hits)) mine[m] = (mine[m] ?? 0) + n;
    }
  });
}
