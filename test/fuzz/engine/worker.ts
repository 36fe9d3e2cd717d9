/**
 * The fuzzing loop, run in a worker thread so its supervisor (test/fuzz/run.ts) can see a hang
 * and terminate it. Corpus → pick an entry → stack 1..6 mutations → run under the contract →
 * keep the mutant if it reached new coverage.
 *
 * Coverage is taken per batch of inputs (a take costs ~1 ms or more, an input often ~10 µs): when a
 * batch reached a block never reached before, each input of the batch is run again alone to
 * find the ones that did. A share of the time runs inputs one at a time with a take after
 * each, so new hit-count buckets (loop iterations) are seen too.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import type { TargetInstance, Violation } from './contract.js';
import { Coverage } from './coverage.js';
import { BASE_DICTIONARY, BYTE_MUTATORS, literalsOf, TEXT_DICTIONARY, type MutationContext, type Mutator } from './mutators.js';
import { ROOT } from './paths.js';
import { CONTROL_HEADER, type Stats, type WorkerConfig, type WorkerMessage } from './protocol.js';
import { Rng } from './rng.js';

/** Inputs per coverage take in batch mode (a take costs 1-6 ms here, most inputs 10-100 µs). */
const BATCH = 256;
/** Share of the time spent taking coverage after every input (hit-count feedback). */
const SINGLE_SHARE = 0.15;
/** Bounds on minimising one crasher. */
const MINIMIZE_ATTEMPTS = 4000;
const MINIMIZE_MS = 15_000;
/** Distinct findings reported per target; later ones are counted only. */
const MAX_FINDINGS = 32;

const cfg = workerData as WorkerConfig;
const post = (m: WorkerMessage) => parentPort!.postMessage(m);

interface Entry {
  readonly data: Buffer;
  readonly weight: number;
}

/** Each block identified but never reached: file:line of the compiled source and its first line of code. */
function unreachedReport(cov: Coverage): string {
  const texts = new Map<string, string>();
  const lines: string[] = [];
  for (const b of cov.unreached()) {
    const file = fileURLToPath(b.url);
    let text = texts.get(file);
    if (text === undefined) {
      text = readFileSync(file, 'utf8');
      texts.set(file, text);
    }
    const line = text.slice(0, b.start).split('\n').length;
    lines.push(
      `${relative(ROOT, file)}:${line}  ${text
        .slice(b.start, Math.min(b.end, b.start + 100))
        .split('\n')[0]!
        .trim()}`,
    );
  }
  return `${lines.sort().join('\n')}\n`;
}

async function main(): Promise<void> {
  // Block coverage only instruments functions compiled after it starts: start it before any
  // module under test is loaded (the targets and the contract import src/ dynamically below).
  const cov = new Coverage((url) => url.includes('/dist/src/'));
  cov.start();
  const { checkContract } = await import('./contract.js');
  const { TARGETS } = await import('../targets/index.js');
  const target = TARGETS.find((t) => t.name === cfg.target);
  if (!target) throw new Error(`unknown target ${cfg.target}`);
  const ctl = new Int32Array(cfg.control, 0, 4);
  const ctlBytes = new Uint8Array(cfg.control, CONTROL_HEADER);
  const rng = new Rng(cfg.seed);
  const inst: TargetInstance = await target.setup();
  const signed = target.signed === true;

  const dictionary = [...BASE_DICTIONARY, ...TEXT_DICTIONARY, ...(inst.dictionary ?? [])];
  for (const src of target.sources) dictionary.push(...literalsOf(readFileSync(join(ROOT, src), 'utf8')));

  const corpus: Entry[] = [];
  const cumulative: number[] = [];
  let totalWeight = 0;
  const corpusDir = join(cfg.outDir, 'corpus');
  mkdirSync(corpusDir, { recursive: true });
  const known = new Set<string>();
  const add = (data: Buffer, weight: number, persist: boolean) => {
    const h = createHash('sha1').update(data).digest('hex');
    if (known.has(h)) return;
    known.add(h);
    corpus.push({ data, weight });
    totalWeight += weight;
    cumulative.push(totalWeight);
    if (persist) writeFileSync(join(corpusDir, `${h.slice(0, 20)}.bin`), data);
  };
  const pick = (): Buffer => {
    const x = rng.below(Math.max(1, Math.floor(totalWeight)));
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return corpus[lo]!.data;
  };

  const ctx: MutationContext = { rng, other: () => pick(), dictionary, maxLen: target.maxLen };
  const structured: readonly Mutator[] = inst.mutators ?? [];
  const mutate = (input: Buffer): Buffer => {
    let d = input;
    const n = 1 + (rng.oneIn(2) ? 0 : rng.below(5));
    for (let i = 0; i < n; i++) {
      const useStructured = structured.length > 0 && rng.below(10) < 6;
      const m = useStructured ? rng.pick(structured) : rng.pick(BYTE_MUTATORS);
      let out: Buffer | undefined;
      try {
        out = m(d, ctx);
      } catch {
        out = undefined; // a mutator that cannot handle this input's shape
      }
      if (out) d = out;
    }
    return d.length > target.maxLen ? d.subarray(0, target.maxLen) : d;
  };

  let execs = 0;
  let execMs = 0;
  /** Runs one input with the supervisor watching; returns the contract's verdict and the time taken. */
  const execRaw = (data: Buffer): { v: Violation | undefined; ms: number } => {
    ctlBytes.set(data.subarray(0, ctlBytes.length));
    Atomics.store(ctl, 2, data.length);
    Atomics.add(ctl, 0, 1);
    Atomics.store(ctl, 1, 1);
    // Date.now(), not performance.now(): the latter runs JS (node:internal/perf) every take would report.
    const t0 = Date.now();
    const v = checkContract(signed, inst, data);
    const ms = Date.now() - t0;
    Atomics.store(ctl, 1, 0);
    execs++;
    execMs += ms;
    return { v, ms };
  };

  const seenSignatures = new Set<string>();
  const report = (v: Violation, data: Buffer, ms: number) => {
    if (seenSignatures.has(v.signature)) {
      post({ type: 'duplicate', signature: v.signature });
      return;
    }
    if (seenSignatures.size >= MAX_FINDINGS) return;
    seenSignatures.add(v.signature);
    let minimized: Buffer | undefined;
    let note: string | undefined;
    if (v.kind === 'crash' || v.kind === 'differential') minimized = minimize(data, v.signature);
    if (v.kind === 'accepted-mutant') note = nearestValid(data);
    if (v.kind === 'hang') note = `took ${ms.toFixed(0)} ms on ${data.length} bytes (bound ${cfg.timeoutMs} ms)`;
    post({
      type: 'finding',
      kind: v.kind,
      signature: v.signature,
      message: v.message,
      ...(v.stack ? { stack: v.stack } : {}),
      input: data,
      ...(minimized && !minimized.equals(data) ? { minimized } : {}),
      ...(note ? { note } : {}),
    });
  };

  /** Removes chunks (halving their size) while the same finding reproduces, within bounds. */
  const minimize = (data: Buffer, signature: string): Buffer => {
    let best = data;
    let attempts = 0;
    const t0 = Date.now();
    for (let chunk = Math.max(1, best.length >> 1); chunk >= 1; chunk >>= 1) {
      for (let at = 0; at < best.length; ) {
        if (++attempts > MINIMIZE_ATTEMPTS || Date.now() - t0 > MINIMIZE_MS) return best;
        const cand = Buffer.concat([best.subarray(0, at), best.subarray(at + chunk)]);
        if (execRaw(cand).v?.signature === signature) best = cand;
        else at += chunk;
      }
    }
    return best;
  };

  const validSeeds = signed ? inst.seeds.filter((s) => inst.isValid!(s)) : [];
  /** For an accepted mutant: where it differs from the closest valid signed input. */
  const nearestValid = (data: Buffer): string => {
    let best = '';
    let bestScore = -1;
    for (const s of validSeeds) {
      let p = 0;
      while (p < s.length && p < data.length && s[p] === data[p]) p++;
      let q = 0;
      while (q < s.length - p && q < data.length - p && s[s.length - 1 - q] === data[data.length - 1 - q]) q++;
      if (p + q > bestScore) {
        bestScore = p + q;
        const was = s.subarray(p, s.length - q);
        const now = data.subarray(p, data.length - q);
        best = `differs from a valid ${s.length}-byte input at offset ${p}: ${was.length} bytes (${was.subarray(0, 32).toString('hex')}) became ${now.length} bytes (${now.subarray(0, 32).toString('hex')})`;
      }
    }
    return best;
  };

  const exec = (data: Buffer): void => {
    const { v, ms } = execRaw(data);
    if (v) {
      report(v, data, ms);
      return;
    }
    if (ms > cfg.timeoutMs) {
      // Confirm: the machine is shared, so a single slow run may be someone else's load.
      const again = Math.min(execRaw(data).ms, execRaw(data).ms);
      if (again > cfg.timeoutMs) report({ kind: 'hang', message: `input took ${again.toFixed(0)} ms`, signature: 'hang' }, data, again);
    }
  };

  cov.reset();

  const seeds = inst.seeds.map((s) => (s.length > target.maxLen ? s.subarray(0, target.maxLen) : s));
  const resumed: Buffer[] = [];
  if (!cfg.fresh) for (const f of readdirSync(corpusDir)) resumed.push(readFileSync(join(corpusDir, f)));
  let validAccepted = 0;
  for (const s of [...seeds, ...resumed]) {
    cov.reset();
    exec(s);
    const fresh = cov.take(true);
    add(s, 2 + Math.min(10, fresh), false);
    if (signed && inst.isValid!(s)) {
      try {
        if (inst.run(s) === 'accepted') validAccepted++;
      } catch {
        // counted as not accepted
      }
    }
  }
  if (corpus.length === 0) add(Buffer.alloc(0), 1, false);
  if (signed && validAccepted === 0) throw new Error(`target ${target.name}: no valid signed seed is accepted, so the accepted-mutant oracle would be vacuous`);
  post({ type: 'ready', seeds: seeds.length });

  const stats = (): Stats => {
    const c = cov.stats;
    return {
      execs,
      corpus: corpus.length,
      blocks: c.blocks,
      reached: c.reached,
      functions: c.functions,
      seeds: seeds.length,
      ...(signed ? { validAccepted } : {}),
    };
  };

  /**
   * Which inputs of a batch that reached something new did it (group testing): each half is run
   * again and looked into only if it reaches something new, so one new input among 256 costs about
   * sixteen coverage takes rather than 256.
   */
  const findNew = (inputs: readonly Buffer[]): void => {
    if (inputs.length === 1) {
      exec(inputs[0]!);
      const fresh = cov.take(true);
      if (fresh) add(inputs[0]!, 1 + Math.min(10, fresh), true);
      return;
    }
    const mid = inputs.length >> 1;
    for (const half of [inputs.slice(0, mid), inputs.slice(mid)]) {
      for (const m of half) exec(m);
      if (cov.take(false, true) > 0) findNew(half);
    }
  };

  const start = Date.now();
  let singleMs = 0;
  let mutateMs = 0;
  let replays = 0;
  let batches = 0;
  let lastStats = start;
  const batch: Buffer[] = new Array(BATCH);
  while (Date.now() < cfg.deadline) {
    const t0 = Date.now();
    const single = singleMs < SINGLE_SHARE * (t0 - start);
    batches++;
    for (let i = 0; i < BATCH; i++) batch[i] = mutate(pick());
    mutateMs += Date.now() - t0;
    // The previous take reset the counts; mutators run no code under test.
    if (single) {
      for (const m of batch) {
        exec(m);
        const fresh = cov.take(true);
        if (fresh) add(m, 1 + Math.min(10, fresh), true);
      }
      singleMs += Date.now() - t0;
    } else {
      for (const m of batch) exec(m);
      if (cov.take(false, true) > 0) {
        replays++;
        findNew(batch);
      }
    }
    if (t0 - lastStats > 2000) {
      lastStats = t0;
      post({ type: 'stats', stats: stats() });
    }
  }
  writeFileSync(join(cfg.outDir, 'unreached.txt'), unreachedReport(cov));
  cov.stop();
  if (process.env.FUZZ_PROFILE)
    process.stderr.write(
      `  profile: ${execs} execs, ${execMs.toFixed(0)} ms in targets, ${(Date.now() - start).toFixed(0)} ms in the loop, ${singleMs.toFixed(0)} ms single-input mode, ${mutateMs.toFixed(0)} ms mutating, ${replays}/${batches} batches replayed, ${cov.takes} takes in ${cov.takeMs.toFixed(0)} ms\n`,
    );
  post({ type: 'done', stats: stats() });
}

main().catch((e: unknown) => {
  post({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
});
