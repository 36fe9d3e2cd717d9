/**
 * The contract every fuzz target asserts, shared by the fuzzer (test/fuzz/engine/worker.ts) and
 * the regression replay (test/unit/fuzz-regressions.test.ts), so both judge an input alike:
 *
 *   - a parser returns a value or throws a WritError (src/errors.ts); any other exception
 *     (TypeError, RangeError, a raw Node crypto error escaping the parser) is a crash, and so is
 *     a WritError whose cause is a programming error (a catch-all that hid the crash);
 *   - a verifier of signed input (`signed: true`) accepts only inputs the target calls valid
 *     (byte-identical to a valid signed input); any other accepted input is an accepted mutant;
 *   - a target with an oracle (e.g. strict JSON against JSON.parse) may report a differential.
 *
 * Hangs (an input slower than the bound) are judged by the engine, which owns the clock.
 */
import { WritError } from '../../../src/errors.js';
import type { Mutator } from './mutators.js';

/** What a target's `run` reports: `accepted` when a verifier of signed input accepted it. */
export type Outcome = 'accepted' | 'rejected' | undefined;

/** A target after its setup: real seeds, and the function that feeds one input to the parser. */
export interface TargetInstance {
  /** Real vectors and valid generated inputs the corpus starts from. */
  readonly seeds: readonly Buffer[];
  /** Tokens the dictionary mutator inserts (besides the engine's DER/JSON/JWS/TPM tokens). */
  readonly dictionary?: readonly Buffer[];
  /** Structure-aware mutators for this input format. */
  readonly mutators?: readonly Mutator[];
  /** Signed targets: true when `data` may be accepted (it is, byte for byte, a valid signed input). */
  isValid?(data: Buffer): boolean;
  /** Feeds one input to the parser under test. Throws what the parser throws. */
  run(data: Buffer): Outcome;
}

export interface FuzzTarget {
  readonly name: string;
  /** The parser(s) under test, as `file: function`. */
  readonly parsers: string;
  /** The contract in one line, for docs/fuzzing.md and reports. */
  readonly contract: string;
  /** Inputs are cut to this many bytes. */
  readonly maxLen: number;
  /** A verifier of signed input: every accepted input must satisfy `isValid`. */
  readonly signed?: boolean;
  /** Source files (under src/) whose string literals seed the dictionary. */
  readonly sources: readonly string[];
  setup(): TargetInstance | Promise<TargetInstance>;
}

/** A differential oracle disagreed (thrown by a target's `run`; a finding, not a crash of the parser). */
export class OracleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OracleError';
  }
}

export type FindingKind = 'crash' | 'accepted-mutant' | 'differential' | 'hang' | 'oom';

export interface Violation {
  readonly kind: FindingKind;
  /** One line: the exception, or what was accepted. */
  readonly message: string;
  readonly stack?: string;
  /** Stable across inputs that hit the same bug: kind, error class, message shape, first frame in src/. */
  readonly signature: string;
}

/** The first stack frame inside src/ (compiled or not), as file:line, for deduplication. */
function srcFrame(stack: string | undefined): string {
  for (const line of (stack ?? '').split('\n').slice(1)) {
    const m = /(?:\/dist)?\/(src\/[^:)]+):(\d+)/.exec(line);
    if (m) return `${m[1]}:${m[2]}`;
  }
  return 'outside src';
}

/** The first words of a message, without the parts that vary with the input (numbers, quoted text). */
function shape(message: string): string {
  return message
    .split('\n')[0]!
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/[^A-Za-z]+/g, ' ')
    .trim()
    .split(' ')
    .slice(0, 6)
    .join(' ');
}

export function describeError(e: unknown): { message: string; stack?: string; name: string } {
  if (e instanceof Error) return { message: `${e.name}: ${e.message}`, ...(e.stack ? { stack: e.stack } : {}), name: e.constructor.name };
  return { message: `non-Error thrown: ${String(e).slice(0, 200)}`, name: typeof e };
}

/** SyntaxError is not among them: at run time it comes from JSON.parse, a data error that wrappers are for. */
const PROGRAMMING_ERRORS = [TypeError, RangeError, ReferenceError];

/**
 * A programming error (TypeError, RangeError, ...) that a catch-all wrapped in a WritError: the
 * wrapper hides a crash. Node's own argument errors carry a `code` (ERR_INVALID_ARG_VALUE, ...)
 * and are what wrappers are for; ours ("Cannot read properties of undefined") carry none.
 */
function wrappedBug(e: WritError): Error | undefined {
  for (let c: unknown = e.cause, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) {
    if (c instanceof WritError) continue;
    if (PROGRAMMING_ERRORS.some((k) => c instanceof k) && typeof (c as { code?: unknown }).code !== 'string') return c;
  }
  return undefined;
}

/** Runs one input through a target and judges it. Undefined means the contract held. */
export function checkContract(signed: boolean, inst: TargetInstance, data: Buffer): Violation | undefined {
  let outcome: Outcome;
  try {
    outcome = inst.run(data);
  } catch (raw) {
    let e = raw;
    if (e instanceof WritError) {
      const bug = wrappedBug(e);
      if (!bug) return undefined;
      e = bug;
    }
    const d = describeError(e);
    const kind: FindingKind = e instanceof OracleError ? 'differential' : 'crash';
    return { kind, message: d.message, ...(d.stack ? { stack: d.stack } : {}), signature: `${kind}|${d.name}|${shape(d.message)}|${srcFrame(d.stack)}` };
  }
  if (signed && outcome === 'accepted' && !inst.isValid!(data)) {
    return { kind: 'accepted-mutant', message: 'a verifier of signed input accepted an input that is not a valid signed input', signature: 'accepted-mutant' };
  }
  return undefined;
}
