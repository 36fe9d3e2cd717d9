/**
 * `make fuzz`: coverage-guided fuzzing of every parser of untrusted bytes (docs/fuzzing.md).
 *
 *   node dist/test/fuzz/run.js                      every target, FUZZ_SECONDS each (default 60)
 *   FUZZ_TARGET=der,x509 node dist/test/fuzz/run.js  some targets
 *   node dist/test/fuzz/run.js --list               the targets and their contracts
 *   node dist/test/fuzz/run.js --replay T FILE...   run files through target T's contract, no fuzzing
 *
 * Environment: FUZZ_SECONDS, FUZZ_TARGET, FUZZ_TIMEOUT_MS (per-input bound, default 1000),
 * FUZZ_SEED (PRNG seed, default random; printed), FUZZ_FRESH=1 (ignore an earlier corpus),
 * FUZZ_OUT (default reports/fuzz).
 *
 * Each target runs in a child process (so a stuck one can be killed outright); there a
 * supervisor thread watches the worker thread that fuzzes (test/fuzz/engine/worker.ts), ends it
 * on a hang, saves the input it was running, and starts it again on the corpus so far.
 */
import { spawn } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Worker } from 'node:worker_threads';
import { checkContract } from './engine/contract.js';
import { REPORTS, ROOT } from './engine/paths.js';
import { CONTROL_HEADER, type FindingMessage, type Stats, type WorkerConfig, type WorkerMessage } from './engine/protocol.js';
import { TARGETS } from './targets/index.js';

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 60);
const TIMEOUT_MS = Number(process.env.FUZZ_TIMEOUT_MS ?? 1000);
/** A worker still on one input after this many bounds is ended (a slower input that finishes is reported by the worker itself). */
const KILL_FACTOR = 3;
/** Memory a worker may use before it is ended as out of memory. */
const WORKER_HEAP_MB = 1024;
/** Restarts of a worker after hangs or deaths before the target is given up. */
const MAX_RESTARTS = 20;

interface TargetResult {
  readonly target: string;
  readonly seconds: number;
  readonly execs: number;
  readonly execsPerSecond: number;
  readonly blocksReached: number;
  readonly blocksIdentified: number;
  readonly functionsReached: number;
  readonly corpus: number;
  readonly seeds: number;
  readonly validAccepted?: number;
  readonly findings: number;
  readonly duplicates: number;
  readonly restarts: number;
  readonly error?: string;
}

function saveFinding(
  outDir: string,
  f: { kind: string; signature: string; message: string; stack?: string; input: Uint8Array; minimized?: Uint8Array; note?: string },
): string {
  const dir = join(outDir, 'findings');
  mkdirSync(dir, { recursive: true });
  const id = `${f.kind}-${createHash('sha1').update(f.signature).digest('hex').slice(0, 10)}`;
  const best = Buffer.from(f.minimized ?? f.input);
  writeFileSync(join(dir, `${id}.bin`), best);
  if (f.minimized) writeFileSync(join(dir, `${id}.orig.bin`), Buffer.from(f.input));
  const text = [
    `kind: ${f.kind}`,
    `signature: ${f.signature}`,
    `message: ${f.message}`,
    ...(f.note ? [`note: ${f.note}`] : []),
    `input: ${best.length} bytes${f.minimized ? ` (minimised from ${f.input.length})` : ''}`,
    `first bytes (hex): ${best.subarray(0, 96).toString('hex')}`,
    `as text: ${JSON.stringify(best.subarray(0, 240).toString('latin1'))}`,
    `replay: node dist/test/fuzz/run.js --replay ${relative(REPORTS, outDir)} ${relative(ROOT, join(dir, `${id}.bin`))}`,
    '',
    f.stack ?? '',
  ].join('\n');
  writeFileSync(join(dir, `${id}.txt`), `${text}\n`);
  return join(dir, `${id}.bin`);
}

/** Child process: supervise one target's worker until the deadline. */
async function supervise(name: string, seed: number): Promise<TargetResult> {
  const target = TARGETS.find((t) => t.name === name)!;
  const outDir = join(REPORTS, name);
  mkdirSync(outDir, { recursive: true });
  rmSync(join(outDir, 'findings'), { recursive: true, force: true });
  const fresh = process.env.FUZZ_FRESH === '1';
  if (fresh) rmSync(join(outDir, 'corpus'), { recursive: true, force: true });
  const deadline = Date.now() + SECONDS * 1000;
  const t0 = Date.now();
  const control = new SharedArrayBuffer(CONTROL_HEADER + target.maxLen);
  const ctl = new Int32Array(control, 0, 4);
  const bytes = new Uint8Array(control, CONTROL_HEADER);
  let findings = 0;
  let duplicates = 0;
  let restarts = 0;
  let execsBefore = 0;
  let last: Stats | undefined;
  let error: string | undefined;

  const finding = (f: Omit<FindingMessage, 'type'>) => {
    findings++;
    const file = saveFinding(outDir, f);
    process.stderr.write(`  ${name}: ${f.kind}: ${f.message.split('\n')[0]!.slice(0, 160)}\n    saved ${relative(ROOT, file)}\n`);
  };

  while (Date.now() < deadline && restarts <= MAX_RESTARTS) {
    const cfg: WorkerConfig = { target: name, deadline, seed: seed + restarts, timeoutMs: TIMEOUT_MS, outDir, fresh: fresh && restarts === 0, control };
    const worker = new Worker(new URL('./engine/worker.js', import.meta.url), { workerData: cfg, resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
    const outcome = await new Promise<'done' | 'restart' | 'fatal'>((resolve) => {
      let seq = -1;
      let since = Date.now();
      let settled = false;
      const settle = (o: 'done' | 'restart' | 'fatal') => {
        if (settled) return;
        settled = true;
        clearInterval(watch);
        resolve(o);
      };
      const current = () => Buffer.from(bytes.subarray(0, Math.min(Atomics.load(ctl, 2), bytes.length)));
      const watch = setInterval(() => {
        const s = Atomics.load(ctl, 0);
        if (s !== seq || Atomics.load(ctl, 1) === 0) {
          seq = s;
          since = Date.now();
          return;
        }
        if (Date.now() - since > KILL_FACTOR * TIMEOUT_MS) {
          const input = current();
          finding({
            kind: 'hang',
            signature: 'hang-killed',
            message: `an input ran for more than ${KILL_FACTOR * TIMEOUT_MS} ms; the worker was ended`,
            input,
          });
          void worker.terminate();
          settle('restart');
        }
      }, 100);
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'stats' || m.type === 'done') last = { ...m.stats, execs: execsBefore + m.stats.execs };
        if (m.type === 'finding') finding(m);
        if (m.type === 'duplicate') duplicates++;
        if (m.type === 'done') settle('done');
        if (m.type === 'error') {
          error = m.message;
          settle('fatal');
        }
      });
      worker.on('error', (e: Error & { code?: string }) => {
        const running = Atomics.load(ctl, 1) === 1;
        const oom = e.code === 'ERR_WORKER_OUT_OF_MEMORY';
        if (running)
          finding({ kind: oom ? 'oom' : 'crash', signature: `worker-died|${e.code ?? e.name}`, message: `the worker died: ${e.message}`, input: current() });
        else error = `worker error outside an input: ${e.stack ?? e.message}`;
        settle(running ? 'restart' : 'fatal');
      });
      worker.on('exit', () => settle(Date.now() < deadline ? 'restart' : 'done'));
    });
    if (last) execsBefore = last.execs;
    if (outcome !== 'restart') break;
    Atomics.store(ctl, 1, 0);
    restarts++;
  }
  const seconds = (Date.now() - t0) / 1000;
  const s = last ?? { execs: 0, corpus: 0, blocks: 0, reached: 0, functions: 0, seeds: 0 };
  const result: TargetResult = {
    target: name,
    seconds: Math.round(seconds * 10) / 10,
    execs: s.execs,
    execsPerSecond: Math.round(s.execs / Math.max(seconds, 0.001)),
    blocksReached: s.reached,
    blocksIdentified: s.blocks,
    functionsReached: s.functions,
    corpus: s.corpus,
    seeds: s.seeds,
    ...(s.validAccepted !== undefined ? { validAccepted: s.validAccepted } : {}),
    findings,
    duplicates,
    restarts,
    ...(error ? { error } : {}),
  };
  writeFileSync(join(outDir, 'stats.json'), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

function runChild(name: string, seed: number): Promise<TargetResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [new URL(import.meta.url).pathname, '--one', name, String(seed)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    // The child stops itself at its deadline; this is for one stuck past any bound.
    const kill = setTimeout(() => child.kill('SIGKILL'), (SECONDS + 120) * 1000);
    child.on('exit', (code, signal) => {
      clearTimeout(kill);
      const line = out.split('\n').find((l) => l.startsWith('FUZZ-RESULT '));
      if (line) resolve(JSON.parse(line.slice('FUZZ-RESULT '.length)) as TargetResult);
      else
        resolve({
          target: name,
          seconds: 0,
          execs: 0,
          execsPerSecond: 0,
          blocksReached: 0,
          blocksIdentified: 0,
          functionsReached: 0,
          corpus: 0,
          seeds: 0,
          findings: 0,
          duplicates: 0,
          restarts: 0,
          error: `child exited with ${signal ?? code} without a result`,
        });
    });
  });
}

function table(results: readonly TargetResult[]): string {
  const head = ['target', 'execs', 'exec/s', 'blocks', 'fns', 'corpus', 'seeds', 'findings'];
  const rows = results.map((r) => [
    r.target,
    String(r.execs),
    String(r.execsPerSecond),
    `${r.blocksReached}/${r.blocksIdentified}`,
    String(r.functionsReached),
    String(r.corpus),
    r.validAccepted !== undefined ? `${r.seeds} (${r.validAccepted} valid)` : String(r.seeds),
    r.error ? `ERROR ${r.error.split('\n')[0]}` : `${r.findings}${r.duplicates ? ` (+${r.duplicates} dup)` : ''}`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--one') {
    const r = await supervise(args[1]!, Number(args[2]));
    process.stdout.write(`FUZZ-RESULT ${JSON.stringify(r)}\n`);
    process.exit(0);
  }
  if (args[0] === '--list') {
    for (const t of TARGETS) console.log(`${t.name.padEnd(20)} ${t.signed ? '[signed] ' : ''}${t.parsers}\n${''.padEnd(20)} ${t.contract}`);
    return;
  }
  if (args[0] === '--replay') {
    const t = TARGETS.find((x) => x.name === args[1]);
    if (!t) throw new Error(`unknown target ${args[1]} (see --list)`);
    const inst = await t.setup();
    let bad = 0;
    for (const f of args.slice(2)) {
      const v = checkContract(t.signed === true, inst, readFileSync(f));
      if (v) bad++;
      console.log(`${f}: ${v ? `${v.kind}: ${v.message}\n${v.stack ?? ''}` : 'contract holds'}`);
    }
    process.exit(bad ? 1 : 0);
  }
  const wanted = process.env.FUZZ_TARGET ? process.env.FUZZ_TARGET.split(',').map((s) => s.trim()) : TARGETS.map((t) => t.name);
  const unknown = wanted.filter((w) => !TARGETS.some((t) => t.name === w));
  if (unknown.length) throw new Error(`unknown target(s) ${unknown.join(', ')} (see --list)`);
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : randomInt(2 ** 31);
  console.log(`fuzz: ${wanted.length} target(s), ${SECONDS} s each, per-input bound ${TIMEOUT_MS} ms, FUZZ_SEED=${seed}, node ${process.version}`);
  const results: TargetResult[] = [];
  for (const name of wanted) {
    const r = await runChild(name, seed);
    results.push(r);
    console.log(
      `${name}: ${r.execs} execs (${r.execsPerSecond}/s), ${r.blocksReached} blocks reached of ${r.blocksIdentified} identified, ${r.functionsReached} functions, corpus ${r.corpus}, findings ${r.findings}${r.error ? `, ERROR ${r.error}` : ''}`,
    );
  }
  console.log(`\n${table(results)}`);
  mkdirSync(REPORTS, { recursive: true });
  writeFileSync(
    join(REPORTS, 'summary.json'),
    `${JSON.stringify({ node: process.version, seed, secondsPerTarget: SECONDS, timeoutMs: TIMEOUT_MS, results }, null, 2)}\n`,
  );
  const total = results.reduce((a, r) => a + r.findings, 0);
  const errors = results.filter((r) => r.error).length;
  console.log(`\n${total} finding(s), ${errors} target error(s); reports in ${relative(ROOT, REPORTS)}/`);
  process.exit(total || errors ? 1 : 0);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(2);
});
