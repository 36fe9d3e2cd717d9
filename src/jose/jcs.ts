/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value, so any
 * implementation hashes the same bytes. Strict: only null, booleans, finite numbers, strings
 * without lone surrogates, arrays and plain objects; anything else (undefined, NaN, Infinity,
 * bigint, functions, class instances, cycles, nesting past MAX_JCS_DEPTH) is refused, never
 * dropped or coerced as JSON.stringify would. Used by the audit log (record hashes) and by step-up
 * grants (the approval request whose hash is the WebAuthn challenge); each caller wraps
 * `JcsError` in its own WritError.
 */

/** A value that has no RFC 8785 form (or that writ's profile of it refuses). */
export class JcsError extends Error {}

/** Deepest nesting canonicalized; audit records need 3, approval requests 2. */
export const MAX_JCS_DEPTH = 32;

export interface JcsOptions {
  /**
   * Accept only safe integers (|n| ≤ 2^53 − 1): the audit record format has no other numbers,
   * and a fraction or an unsafe integer there is a bug, not data. Default true; false gives
   * RFC 8785's full ECMAScript number serialization (§3.2.2.3). (The default suits every
   * writ document: none has other numbers.)
   */
  readonly integersOnly?: boolean;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** RFC 8785 §3.2.2.2: the short escapes; every other control character is \u00hh, lower-case. */
const SHORT: Readonly<Record<string, string>> = { '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r', '"': '\\"', '\\': '\\\\' };
const NEEDS_ESCAPE = /[\u0000-\u001f"\\]/g;

const fail = (message: string): never => {
  throw new JcsError(message);
};

function string(s: string): string {
  if (LONE_SURROGATE.test(s)) fail('string holds a lone surrogate');
  return `"${s.replace(NEEDS_ESCAPE, (c) => SHORT[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

function number(n: number, integersOnly: boolean): string {
  if (!Number.isFinite(n)) fail(`${n} is not a JSON number`);
  if (integersOnly && !Number.isSafeInteger(n)) fail(`${n} is not a safe integer`);
  // ECMAScript Number::toString is exactly RFC 8785 §3.2.2.3; -0 serializes as 0.
  return Object.is(n, -0) ? '0' : String(n);
}

/** UTF-16 code-unit order (RFC 8785 §3.2.3): what JavaScript's `<` on strings compares. */
const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function value(v: unknown, depth: number, integersOnly: boolean, seen: Set<object>): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      return number(v, integersOnly);
    case 'string':
      return string(v);
    case 'object':
      break;
    default:
      return fail(`a ${typeof v} is not JSON`);
  }
  if (depth >= MAX_JCS_DEPTH) fail(`nesting deeper than ${MAX_JCS_DEPTH}`);
  const o = v as object;
  if (seen.has(o)) fail('a cycle is not JSON');
  seen.add(o);
  try {
    if (Array.isArray(o)) return `[${o.map((e) => value(e, depth + 1, integersOnly, seen)).join(',')}]`;
    const proto = Object.getPrototypeOf(o);
    if (proto !== Object.prototype && proto !== null) fail('only plain objects are JSON objects');
    const keys = Object.keys(o).sort(byCodeUnits);
    const rec = o as Record<string, unknown>;
    return `{${keys.map((k) => `${string(k)}:${value(rec[k], depth + 1, integersOnly, seen)}`).join(',')}}`;
  } finally {
    seen.delete(o);
  }
}

/** The RFC 8785 canonical text of a JSON value. */
export function canonicalize(v: unknown, opts: JcsOptions = {}): string {
  return value(v, 0, opts.integersOnly ?? true, new Set());
}

/** The RFC 8785 canonical form as UTF-8 bytes (§3.2.4): what gets hashed. */
export function canonicalBytes(v: unknown, opts: JcsOptions = {}): Buffer {
  return Buffer.from(canonicalize(v, opts), 'utf8');
}
