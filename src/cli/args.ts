/** What every CLI verb shares for its arguments: the usage error (exit 2) and required flags. */

/** A mistake in the command line: printed with a pointer to `writ help`, exit code 2. */
export class UsageError extends Error {}

/** The value of a required flag; a missing or empty one is a usage error. */
export function need<T>(v: T | undefined, flag: string): T {
  if (v === undefined || v === '') throw new UsageError(`${flag} is required`);
  return v;
}
