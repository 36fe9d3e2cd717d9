/**
 * What the issuer spends on Watch streams (RevocationService.Watch takes no credential, so
 * anyone who reaches the public port can open them): how many are open, overall and per peer
 * address, and how many bytes are queued for them. A stream counts from the moment it is
 * accepted until its HTTP/2 stream is closed, not until its feed slot is freed, so a stream
 * that was cut off but whose peer never read its status still counts.
 */
import { DEFAULT_WATCH_LIMITS, type WatchLimits } from '../issuance/revocations.js';

export class WatchStreams {
  private total = 0;
  private readonly perPeer = new Map<string, number>();
  private bytes = 0;

  constructor(readonly limits: WatchLimits = DEFAULT_WATCH_LIMITS) {}

  /** Watch streams open now (cut-off ones whose HTTP/2 stream is not closed yet included). */
  get open(): number {
    return this.total;
  }

  /** Bytes queued now for all streams. */
  get buffered(): number {
    return this.bytes;
  }

  /** Takes a slot for a stream from `peer`: the function that gives it back (once), or why there is none. */
  acquire(peer: string): { release: () => void } | { refused: string } {
    const n = this.perPeer.get(peer) ?? 0;
    if (this.total >= this.limits.maxStreams) return { refused: `this issuer serves at most ${this.limits.maxStreams} watch streams; retry later` };
    if (n >= this.limits.maxStreamsPerPeer)
      return { refused: `at most ${this.limits.maxStreamsPerPeer} watch streams from one address; close one, or retry later` };
    this.total++;
    this.perPeer.set(peer, n + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const left = (this.perPeer.get(peer) ?? 1) - 1;
        if (left <= 0) this.perPeer.delete(peer);
        else this.perPeer.set(peer, left);
      },
    };
  }

  /** Reserves `n` bytes of the shared budget; false (nothing reserved) when that would pass it. */
  reserve(n: number): boolean {
    if (this.bytes + n > this.limits.maxBufferedBytes) return false;
    this.bytes += n;
    return true;
  }

  /** Gives back bytes reserved before. */
  free(n: number): void {
    this.bytes = Math.max(0, this.bytes - n);
  }
}
