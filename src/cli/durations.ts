/** Durations on the command line ("90s", "5m", "1h30m"), as usage errors when malformed. */
import { parseDuration } from '../config/duration.js';
import { UsageError } from '../config/options.js';

/** Whole seconds of a duration flag; 0 when not given. */
export function seconds(d: string | undefined, flag: string): number {
  if (d === undefined) return 0;
  try {
    return Math.round(parseDuration(d) / 1000);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}
