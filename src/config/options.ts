/**
 * Command-line options as data: every verb and every plug-in declares the options it adds,
 * and the CLI builds its parser and its usage text from these declarations alone.
 */

/** A mistake in the command line: printed with a pointer to `writ help`, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** May be given more than once; the values arrive as a list. */
  readonly multiple?: boolean;
  /** How the value is shown in usage, e.g. `FILE`, `HOST:PORT`, `D` (a duration). */
  readonly value?: string;
  /** One line of help. */
  readonly help: string;
  /**
   * The next argument is always this option's value, even when it begins with "-" (an RFC 7638
   * thumbprint is base64url and may begin with "-" or "--").
   */
  readonly takesNext?: boolean;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

export type OptionValue = string | boolean | string[] | undefined;
export type OptionValues = Readonly<Record<string, OptionValue>>;

/** A string option's value (the last one given), or undefined. */
export function stringOption(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  if (Array.isArray(v)) return v[v.length - 1];
  return typeof v === 'string' ? v : undefined;
}

/** A repeatable option's values (empty when not given). */
export function listOption(values: OptionValues, name: string): string[] {
  const v = values[name];
  if (Array.isArray(v)) return v;
  return typeof v === 'string' ? [v] : [];
}
