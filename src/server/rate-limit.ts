/** Per-peer token buckets, bounded in the number of peers they remember. */
import { BoundedCache } from '../cache/bounded.js';

/** Most peers tracked at once; beyond it the least recently seen are forgotten. */
export const MAX_TRACKED_PEERS = 10_000;

/** Per-key admission (per replica; a shared implementation would span replicas). */
export interface RateLimiter {
  /** Takes one unit for `key`; false when its budget is spent. */
  take(key: string): boolean;
}

export class PeerRateLimiter implements RateLimiter {
  /** The least recently seen peers are forgotten first (a forgotten peer starts with a full bucket). */
  private readonly buckets = new BoundedCache<string, { tokens: number; at: number }>(MAX_TRACKED_PEERS);

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one token for `peer`; false when its bucket is empty. */
  take(peer: string): boolean {
    const t = this.now();
    let b = this.buckets.get(peer);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.perSecond);
      b.at = t;
    } else {
      b = { tokens: this.burst, at: t };
      this.buckets.set(peer, b);
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/** The host part of a grpc-js peer string ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678", "1.2.3.4:5678"). */
export function peerHost(peer: string): string {
  const p = peer.replace(/^ipv[46]:/, '');
  const m = /^\[([^\]]+)\]:\d+$/.exec(p) ?? /^(.*):\d+$/.exec(p);
  return m ? m[1]! : p;
}
