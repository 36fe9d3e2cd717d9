/**
 * The issuer's revocation feed: every committed revocation, in sequence order, to every
 * subscriber (RevocationService.Watch), resumable from any sequence the store still holds, a
 * full snapshot first for a subscriber older than that. A subscriber that cannot keep up is cut
 * off (its sink refuses) and resumes later; it never slows the others.
 */
import type { RevocationRecord, Store } from '../store/store.js';
import type { RevocationListener } from './revocations.js';

/** Revocations read from the store per page while catching a subscriber up. */
export const CATCH_UP_PAGE = 1000;

export type FeedMessage =
  | { readonly kind: 'revocation'; readonly record: RevocationRecord }
  | { readonly kind: 'heartbeat'; readonly sequence: number; readonly at: number }
  | { readonly kind: 'snapshot-begin'; readonly oldestRetained: number }
  | { readonly kind: 'snapshot-end'; readonly sequence: number };

/** Where a subscriber's messages go; false when it cannot take more (it is then cut off). */
export interface FeedSink {
  send(m: FeedMessage): boolean;
  /** The subscriber was cut off: it should resume with `since = lastSent`. */
  overflow(lastSent: number): void;
}

interface Subscriber {
  readonly sink: FeedSink;
  /** Live records that arrived while catching up. */
  pending?: RevocationRecord[];
  lastSent: number;
  closed: boolean;
}

export class RevocationFeed implements RevocationListener {
  private readonly subscribers = new Set<Subscriber>();
  private newestSeen = 0;

  constructor(private readonly deps: { store: Store; now: () => number }) {}

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** From Revocations, after each commit. */
  revoked(records: readonly RevocationRecord[]): void {
    for (const r of records) this.newestSeen = Math.max(this.newestSeen, r.seq);
    for (const s of this.subscribers) {
      if (s.pending) s.pending.push(...records);
      else for (const r of records) this.deliver(s, r);
    }
  }

  private deliver(s: Subscriber, r: RevocationRecord): void {
    if (s.closed || r.seq <= s.lastSent) return;
    if (!s.sink.send({ kind: 'revocation', record: r })) {
      this.cut(s);
      return;
    }
    s.lastSent = r.seq;
  }

  private cut(s: Subscriber): void {
    if (s.closed) return;
    s.closed = true;
    this.subscribers.delete(s);
    s.sink.overflow(s.lastSent);
  }

  /** The newest sequence (from the store, so a restarted issuer knows it). */
  async newest(): Promise<number> {
    const { newest } = await this.deps.store.revocationBounds();
    this.newestSeen = Math.max(this.newestSeen, newest);
    return this.newestSeen;
  }

  /** Heartbeats to every live subscriber: the newest sequence, so each knows how fresh it is. */
  heartbeat(): void {
    const m: FeedMessage = { kind: 'heartbeat', sequence: this.newestSeen, at: this.deps.now() };
    for (const s of this.subscribers) if (!s.pending && !s.closed && !s.sink.send(m)) this.cut(s);
  }

  /**
   * Subscribes `sink` from `since`: what the store holds after it (or a snapshot when `since`
   * is older than what it holds), then live revocations, then heartbeats. Returns the
   * unsubscribe function.
   */
  async subscribe(since: number, sink: FeedSink): Promise<() => void> {
    const s: Subscriber = { sink, pending: [], lastSent: since, closed: false };
    // Registered before reading the store: nothing committed meanwhile is missed.
    this.subscribers.add(s);
    const unsubscribe = () => {
      s.closed = true;
      this.subscribers.delete(s);
    };
    try {
      const { oldest, newest } = await this.deps.store.revocationBounds();
      this.newestSeen = Math.max(this.newestSeen, newest);
      let from = since;
      if (oldest > 0 && since < oldest - 1) {
        // Events between `since` and `oldest` were pruned: send everything in force instead.
        if (!sink.send({ kind: 'snapshot-begin', oldestRetained: oldest })) {
          this.cut(s);
          return unsubscribe;
        }
        from = 0;
      }
      for (;;) {
        const page = await this.deps.store.listRevocationsSince(from, CATCH_UP_PAGE);
        for (const r of page) {
          if (s.closed) return unsubscribe;
          if (!sink.send({ kind: 'revocation', record: r })) {
            this.cut(s);
            return unsubscribe;
          }
          s.lastSent = Math.max(s.lastSent, r.seq);
          this.newestSeen = Math.max(this.newestSeen, r.seq);
          from = r.seq;
        }
        if (page.length < CATCH_UP_PAGE) break;
      }
      if (oldest > 0 && since < oldest - 1 && !sink.send({ kind: 'snapshot-end', sequence: s.lastSent })) {
        this.cut(s);
        return unsubscribe;
      }
      const pending = s.pending ?? [];
      s.pending = undefined;
      for (const r of pending) this.deliver(s, r);
      // The issuer's newest, not `since`: a subscriber ahead of the issuer (restored from a backup) must see it is.
      if (!s.closed && !sink.send({ kind: 'heartbeat', sequence: this.newestSeen, at: this.deps.now() })) this.cut(s);
    } catch (e) {
      unsubscribe();
      throw e;
    }
    return unsubscribe;
  }
}
