/**
 * Readers for the members of UNTRUSTED JSON documents (grants, writs, evidence): each checks
 * one member's type and bounds and throws through the caller's `fail`, so every document keeps
 * its own error class and prefix.
 */

export interface ClaimReader {
  /** An object with no members other than `keys`. */
  object(v: unknown, what: string, keys: readonly string[]): Record<string, unknown>;
  /** A non-empty string of at most `maxBytes` UTF-8 bytes, matching `re` when given. */
  string(v: unknown, what: string, maxBytes?: number, re?: RegExp): string;
  /** A non-negative safe integer. */
  int(v: unknown, what: string): number;
  /** An array of at most `max` non-empty strings. */
  strings(v: unknown, what: string, max: number): string[];
}

export function claimReader(fail: (msg: string) => never): ClaimReader {
  return {
    object(v, what, keys) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${what} must be an object`);
      const extra = Object.keys(v as object).filter((k) => !keys.includes(k));
      if (extra.length) fail(`${what} has unknown members ${extra.join(', ').slice(0, 80)}`);
      return v as Record<string, unknown>;
    },
    string(v, what, maxBytes = 2048, re) {
      if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > maxBytes) fail(`${what} must be a non-empty string of at most ${maxBytes} bytes`);
      if (re && !re.test(v as string)) fail(`${what} is malformed`);
      return v as string;
    },
    int(v, what) {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${what} must be a non-negative integer`);
      return v as number;
    },
    strings(v, what, max) {
      if (!Array.isArray(v) || v.length > max || !v.every((x) => typeof x === 'string' && x.length > 0))
        fail(`${what} must be an array of at most ${max} non-empty strings`);
      return v as string[];
    },
  };
}
