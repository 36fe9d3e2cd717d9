/**
 * Registration entries (as in SPIRE): a set of selectors that attested agents must all
 * present, mapped to a SPIFFE ID, SVID TTLs, a scope ceiling for later delegation and a hint.
 */
import { EntryError } from '../errors.js';
import { parseSpiffeId } from '../spiffe/id.js';

export interface Selector {
  readonly type: string;
  readonly value: string;
}

export interface Entry {
  readonly id: string;
  readonly spiffeId: string;
  readonly selectors: readonly Selector[];
  /** Seconds; 0 = server default. */
  readonly x509SvidTtl: number;
  readonly jwtSvidTtl: number;
  /**
   * Scope ceiling for delegation: action/resource patterns. Stored and returned verbatim now;
   * enforced when delegation lands (see docs/operations.md).
   */
  readonly scopeCeiling: readonly string[];
  readonly hint: string;
  /** Unix milliseconds. */
  readonly createdAt: number;
}

export const MAX_SELECTORS_PER_ENTRY = 32;
export const MAX_SELECTOR_VALUE_BYTES = 1024;
export const MAX_SCOPE_CEILING_ITEMS = 64;
export const MAX_SCOPE_ITEM_BYTES = 256;
export const MAX_HINT_BYTES = 256;
/** TTLs above this are refused: SVIDs are short-lived by design. */
export const MAX_SVID_TTL_SECONDS = 7 * 24 * 3600;

const SELECTOR_TYPE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const PRINTABLE = /^[\x21-\x7e]+$/;

export function formatSelector(s: Selector): string {
  return `${s.type}:${s.value}`;
}

/** Parses "type:value" (value may itself contain ':'). */
export function parseSelector(text: string): Selector {
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1) throw new EntryError('ERR_ENTRY_INVALID', `entry: selector ${JSON.stringify(text)} is not type:value`);
  return checkSelector({ type: text.slice(0, i), value: text.slice(i + 1) });
}

function checkSelector(s: Selector): Selector {
  if (!SELECTOR_TYPE.test(s.type))
    throw new EntryError('ERR_ENTRY_INVALID', `entry: selector type ${JSON.stringify(s.type)} must match ${SELECTOR_TYPE.source}`);
  if (!PRINTABLE.test(s.value) || Buffer.byteLength(s.value) > MAX_SELECTOR_VALUE_BYTES) {
    throw new EntryError('ERR_ENTRY_INVALID', `entry: selector value for ${s.type} must be 1..${MAX_SELECTOR_VALUE_BYTES} printable ASCII characters`);
  }
  return { type: s.type, value: s.value };
}

/** A canonical key for a selector set (order-independent), used for duplicate detection. */
export function selectorsKey(selectors: readonly Selector[]): string {
  return selectors.map(formatSelector).sort().join('\n');
}

/**
 * Validates an entry request against the server's trust domain; returns the normalised
 * fields. Every problem is reported, not only the first.
 */
export function validateEntry(input: Omit<Entry, 'id' | 'createdAt'>, trustDomain: string): Omit<Entry, 'id' | 'createdAt'> {
  const problems: string[] = [];
  try {
    const id = parseSpiffeId(input.spiffeId);
    if (id.trustDomain !== trustDomain) problems.push(`spiffe id ${input.spiffeId} is outside the trust domain ${trustDomain}`);
    if (id.path === '') problems.push('spiffe id must have a path');
    if (id.path.startsWith('/writ/')) problems.push('spiffe ids under /writ/ are reserved for the issuer');
  } catch (e) {
    problems.push(`spiffe id: ${(e as Error).message}`);
  }
  const selectors: Selector[] = [];
  if (input.selectors.length === 0) problems.push('at least one selector is required');
  if (input.selectors.length > MAX_SELECTORS_PER_ENTRY) problems.push(`at most ${MAX_SELECTORS_PER_ENTRY} selectors`);
  for (const s of input.selectors.slice(0, MAX_SELECTORS_PER_ENTRY)) {
    try {
      selectors.push(checkSelector(s));
    } catch (e) {
      problems.push((e as Error).message.replace(/^entry: /, ''));
    }
  }
  if (new Set(selectors.map(formatSelector)).size !== selectors.length) problems.push('duplicate selectors');
  for (const [name, v] of [
    ['x509 ttl', input.x509SvidTtl],
    ['jwt ttl', input.jwtSvidTtl],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > MAX_SVID_TTL_SECONDS) problems.push(`${name} must be 0..${MAX_SVID_TTL_SECONDS} seconds`);
  }
  if (input.scopeCeiling.length > MAX_SCOPE_CEILING_ITEMS) problems.push(`at most ${MAX_SCOPE_CEILING_ITEMS} scope ceiling items`);
  for (const s of input.scopeCeiling) {
    if (!PRINTABLE.test(s) || Buffer.byteLength(s) > MAX_SCOPE_ITEM_BYTES)
      problems.push(`scope ceiling item ${JSON.stringify(s.slice(0, 40))} must be 1..${MAX_SCOPE_ITEM_BYTES} printable ASCII characters`);
  }
  if (Buffer.byteLength(input.hint) > MAX_HINT_BYTES || /[\x00-\x1f\x7f]/.test(input.hint))
    problems.push(`hint must be at most ${MAX_HINT_BYTES} bytes without control characters`);
  if (problems.length) throw new EntryError('ERR_ENTRY_INVALID', `entry: ${problems.join('; ')}`);
  return { ...input, selectors };
}

/**
 * The entry that attested selectors map to: entries whose selectors are all present. The
 * most specific wins (most selectors); a tie between different SPIFFE IDs is refused.
 */
export function matchEntry(entries: readonly Entry[], attested: readonly Selector[]): Entry | 'ambiguous' | undefined {
  const have = new Set(attested.map(formatSelector));
  const matches = entries.filter((e) => e.selectors.every((s) => have.has(formatSelector(s))));
  if (matches.length === 0) return undefined;
  const best = Math.max(...matches.map((e) => e.selectors.length));
  const top = matches.filter((e) => e.selectors.length === best);
  if (new Set(top.map((e) => e.spiffeId)).size > 1) return 'ambiguous';
  return top.sort((a, b) => a.createdAt - b.createdAt)[0];
}
