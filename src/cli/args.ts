/** What every CLI verb shares for its arguments: the usage error (exit 2) and required flags. */

/** A mistake in the command line: printed with a pointer to `writ help`, exit code 2. */
export class UsageError extends Error {}

/** The value of a required flag; a missing or empty one is a usage error. */
export function need<T>(v: T | undefined, flag: string): T {
  if (v === undefined || v === '') throw new UsageError(`${flag} is required`);
  return v;
}

/**
 * Joins each of `flags` with the argument after it (`--child X` → `--child=X`). A key
 * thumbprint is base64url and may begin with "-" or "--", which a generic option parser
 * would read as another option; these flags always take the next argument as their value.
 */
export function bindValues(args: readonly string[], flags: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (flags.includes(a) && i + 1 < args.length) out.push(`${a}=${args[++i]}`);
    else out.push(a);
  }
  return out;
}
