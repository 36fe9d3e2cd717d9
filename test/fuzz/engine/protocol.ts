/** Messages between the fuzzing worker and its supervisor (test/fuzz/run.ts), and their shared memory. */
import type { FindingKind } from './contract.js';

export interface WorkerConfig {
  readonly target: string;
  /** Epoch ms at which the worker stops. */
  readonly deadline: number;
  readonly seed: number;
  readonly timeoutMs: number;
  /** reports/fuzz/<target> */
  readonly outDir: string;
  /** Ignore a corpus left by an earlier run (start from the seeds only). */
  readonly fresh: boolean;
  /** The shared control block (see Control). */
  readonly control: SharedArrayBuffer;
}

/**
 * The shared control block: Int32 [0] execution sequence number, [1] 1 while an input runs,
 * [2] that input's length; the input's bytes from byte 16. The supervisor reads it to tell a
 * hang (the same input running past the bound) and to save the input of a worker that died.
 */
export const CONTROL_HEADER = 16;

export interface Stats {
  readonly execs: number;
  readonly corpus: number;
  readonly blocks: number;
  readonly reached: number;
  readonly functions: number;
  readonly seeds: number;
  /** Signed targets: how many valid signed seeds the verifier accepted (a harness self-check). */
  readonly validAccepted?: number;
}

export interface FindingMessage {
  readonly type: 'finding';
  readonly kind: FindingKind;
  readonly signature: string;
  readonly message: string;
  readonly stack?: string;
  readonly input: Uint8Array;
  readonly minimized?: Uint8Array;
  readonly note?: string;
}

export type WorkerMessage =
  | { readonly type: 'ready'; readonly seeds: number }
  | { readonly type: 'stats'; readonly stats: Stats }
  | FindingMessage
  | { readonly type: 'duplicate'; readonly signature: string }
  | { readonly type: 'done'; readonly stats: Stats }
  | { readonly type: 'error'; readonly message: string };
