/**
 * Coverage feedback from V8's precise block coverage (the inspector's Profiler domain, in the
 * thread that runs the target): `takePreciseCoverage` reports, for every function executed since
 * the last take, its block ranges and execution counts, then resets the counts.
 *
 * V8 leaves out a block whose count equals its parent's, so a block is identified once it has
 * been seen with a count of its own, and from then on its count is that of the innermost reported
 * range enclosing it. A *feature* is a block reached, or a block reached with a count in a new
 * bucket (1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+; as libFuzzer counts loop iterations). Only
 * scripts of the code under test (compiled src/) count.
 */
import { Session } from 'node:inspector';

interface Range {
  readonly startOffset: number;
  readonly endOffset: number;
  readonly count: number;
}
interface FunctionCoverage {
  readonly ranges: readonly Range[];
}
interface ScriptCoverage {
  readonly url: string;
  readonly functions: readonly FunctionCoverage[];
}

/** Known blocks of one function, sorted by start ascending then end descending (a laminar family). */
interface FunctionBlocks {
  starts: number[];
  ends: number[];
  ids: number[];
}

const key = (s: number, e: number) => s * 4_194_304 + e;
const REACHED = 0x100;

function bucket(count: number): number {
  if (count <= 3) return count - 1;
  if (count < 8) return 3;
  if (count < 16) return 4;
  if (count < 32) return 5;
  if (count < 128) return 6;
  return 7;
}

export class Coverage {
  private readonly session = new Session();
  private readonly fns = new Map<string, FunctionBlocks>();
  /** Bit b of buckets[id] is set once block `id` was reached with a count in bucket b; REACHED once it was reached at all. */
  private buckets = new Uint16Array(4096);
  private blocks = 0;
  private reachedBlocks = 0;
  private readonly reachedFns = new Set<string>();
  /** Time spent in takes, for FUZZ_PROFILE. */
  takeMs = 0;
  takes = 0;

  constructor(private readonly include: (url: string) => boolean) {}

  private post<T>(method: string, params?: object): T {
    let result: T | undefined;
    let error: Error | null = null;
    // The in-thread session dispatches synchronously: the callback has run when post returns.
    this.session.post(method, params ?? {}, (e, r) => {
      error = e;
      result = r as T;
    });
    if (error) throw error;
    if (result === undefined) throw new Error(`inspector: ${method} did not answer synchronously`);
    return result;
  }

  start(): void {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  stop(): void {
    this.post('Profiler.stopPreciseCoverage');
    this.session.disconnect();
  }

  /** Blocks identified so far in the code under test, and how many of them were reached. */
  get stats(): { blocks: number; reached: number; functions: number } {
    return { blocks: this.blocks, reached: this.reachedBlocks, functions: this.reachedFns.size };
  }

  /** Blocks identified but never reached, by script URL and source offsets (for reports/fuzz/<target>/unreached.txt). */
  unreached(): Array<{ url: string; start: number; end: number }> {
    const out: Array<{ url: string; start: number; end: number }> = [];
    for (const [fnKey, f] of this.fns) {
      const url = fnKey.slice(0, fnKey.lastIndexOf('#'));
      for (let i = 0; i < f.ids.length; i++) if ((this.buckets[f.ids[i]!]! & REACHED) === 0) out.push({ url, start: f.starts[i]!, end: f.ends[i]! });
    }
    return out;
  }

  /** Discards what ran since the last take (e.g. the target's setup). */
  reset(): void {
    this.post('Profiler.takePreciseCoverage');
  }

  /**
   * Takes the coverage since the last take and merges it. Returns how many new features it
   * brought: with `countsMatter` false (a batch of inputs summed together) only newly reached
   * blocks count; `dryRun` reports without recording.
   */
  take(countsMatter: boolean, dryRun = false): number {
    const t0 = Date.now();
    const { result } = this.post<{ result: ScriptCoverage[] }>('Profiler.takePreciseCoverage');
    this.takeMs += Date.now() - t0;
    this.takes++;
    let fresh = 0;
    for (const script of result) {
      if (!this.include(script.url)) continue;
      for (const fn of script.functions) {
        const ranges = fn.ranges;
        if (ranges.length === 0 || ranges[0]!.count === 0) continue;
        const fnKey = `${script.url}#${ranges[0]!.startOffset}`;
        const known = this.learn(fnKey, ranges);
        if (!dryRun) this.reachedFns.add(fnKey);
        fresh += this.score(known, ranges, countsMatter, dryRun);
      }
    }
    return fresh;
  }

  /** Adds the ranges not yet known as blocks of this function. */
  private learn(fnKey: string, ranges: readonly Range[]): FunctionBlocks {
    let f = this.fns.get(fnKey);
    if (!f) {
      f = { starts: [], ends: [], ids: [] };
      this.fns.set(fnKey, f);
    }
    const have = new Set<number>();
    for (let i = 0; i < f.starts.length; i++) have.add(key(f.starts[i]!, f.ends[i]!));
    let added = false;
    for (const r of ranges) {
      if (have.has(key(r.startOffset, r.endOffset))) continue;
      f.starts.push(r.startOffset);
      f.ends.push(r.endOffset);
      f.ids.push(this.blocks++);
      added = true;
    }
    if (added) {
      const order = f.starts.map((_, i) => i).sort((a, b) => f.starts[a]! - f.starts[b]! || f.ends[b]! - f.ends[a]!);
      f.starts = order.map((i) => f.starts[i]!);
      f.ends = order.map((i) => f.ends[i]!);
      f.ids = order.map((i) => f.ids[i]!);
      if (this.blocks > this.buckets.length) {
        const grown = new Uint16Array(Math.max(this.blocks, this.buckets.length * 2));
        grown.set(this.buckets);
        this.buckets = grown;
      }
    }
    return f;
  }

  /** Effective count of every known block (innermost reported range enclosing it), scored against what was seen. */
  private score(f: FunctionBlocks, ranges: readonly Range[], countsMatter: boolean, dryRun: boolean): number {
    const reported = new Map<number, number>();
    for (const r of ranges) reported.set(key(r.startOffset, r.endOffset), r.count);
    const stackEnd: number[] = [];
    const stackCount: number[] = [];
    let fresh = 0;
    for (let i = 0; i < f.starts.length; i++) {
      const s = f.starts[i]!;
      const e = f.ends[i]!;
      while (stackEnd.length && stackEnd[stackEnd.length - 1]! <= s) {
        stackEnd.pop();
        stackCount.pop();
      }
      const own = reported.get(key(s, e));
      const count = own ?? (stackCount.length ? stackCount[stackCount.length - 1]! : 0);
      stackEnd.push(e);
      stackCount.push(count);
      if (count === 0) continue;
      const id = f.ids[i]!;
      const seen = this.buckets[id]!;
      const bit = countsMatter ? 1 << bucket(count) : 0;
      if ((seen & REACHED) === 0) {
        fresh++;
        if (!dryRun) this.reachedBlocks++;
      } else if ((seen & bit) !== bit) fresh++;
      if (!dryRun) this.buckets[id] = seen | REACHED | bit;
    }
    return fresh;
  }
}
