/**
 * One bounded map for every in-process cache of writ (parsed writs and grants, keys made from
 * JWKs and TPM public areas, verified EK chains, policy snapshots, rate-limit buckets): at most
 * `max` entries, the least recently used dropped first, so no input an attacker controls can
 * grow memory without bound. What it holds must not change under its readers: cached parse
 * results are deep-frozen (`deepFreeze`) before they are stored.
 */

export class BoundedCache<K, V> {
  private readonly map = new Map<K, V>();

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new Error(`cache: max must be a positive integer, not ${max}`);
  }

  /** The value for `key`, marked as just used. */
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    this.map.delete(key);
    this.map.set(key, v);
    return v;
  }

  /** The value for `key` without changing its recency. */
  peek(key: K): V | undefined {
    return this.map.get(key);
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  /** Stores `value`, dropping the least recently used entry when full. */
  set(key: K, value: V): void {
    if (this.map.has(key)) this.map.delete(key);
    else if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value as K);
    this.map.set(key, value);
  }

  /** The cached value, or `make()`'s, stored. */
  getOrSet(key: K, make: () => V): V {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const v = make();
    this.set(key, v);
    return v;
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}

/**
 * Freezes plain objects and arrays recursively, so a caller that changes a cached result gets a
 * TypeError instead of changing what later readers of the same cache entry see. Buffers, key
 * objects and other class instances are left alone (they are never mutated by writ, and typed
 * arrays cannot be frozen).
 */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return value;
  Object.freeze(value);
  for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  return value;
}
