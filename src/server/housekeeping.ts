/**
 * Periodic work of the issuer, each task on its own: a failing task is logged and retried at
 * the next tick without stopping the others, and ticks never overlap.
 */
import type { Logger } from 'pino';

export interface HousekeepingTask {
  readonly name: string;
  run(): Promise<void>;
}

export class Housekeeping {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly tasks: readonly HousekeepingTask[],
    private readonly logger: Logger,
  ) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  /** Runs every task once, in order (tests call it directly). */
  async tick(): Promise<void> {
    if (this.stopped) return;
    if (this.running) return this.running;
    this.running = (async () => {
      for (const t of this.tasks) {
        if (this.stopped) return;
        try {
          await t.run();
        } catch (e) {
          this.logger.error({ err: e, task: t.name }, 'housekeeping task failed');
        }
      }
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }
}

/**
 * `fn` one run at a time: a call while a run is in progress gets a run after it (one, however
 * many calls arrived), so what that call was told of is seen.
 */
export function coalesced(fn: () => Promise<void>): () => Promise<void> {
  let tail: Promise<void> = Promise.resolve();
  let queued: Promise<void> | undefined;
  return () => {
    // A run not started yet will see whatever this call was told of.
    if (queued) return queued;
    const run = tail
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return fn();
      });
    queued = run;
    tail = run;
    return run;
  };
}
