/**
 * The issuer's revocation feed: every committed revocation, in sequence order, to every
 * subscriber (RevocationService.Watch), resumable from any sequence the store still holds, a
 * full snapshot first for a subscriber older than that. A subscriber that cannot keep up is cut
 * off (its sink refuses) and resumes later; it never slows the others.
 *
 * Live revocations come from the store by sequence: a revocation committed here arrives through
 * `revoked` (delivered at once when it directly follows what the feed has delivered, else read
 * back), one committed on another replica through `sync` (woken by the store's change feed, and
 * on every heartbeat). The store commits revocations in sequence order (store/dialect.ts
 * `sequenceLock`), so reading "sequence > cursor" never passes one that commits later. Heartbeats
 * go out only while the feed can read the store: a replica cut from the database stops vouching
 * for its freshness, and its subscribers see their staleness grow.
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

export interface FeedObserver {
  /** A revocation reached this replica's feed `lagMs` after it was made (possibly on another replica). */
  replicated?(lagMs: number): void;
  /** Reading the store failed (heartbeats stop until a read succeeds). */
  syncFailed?(e: unknown): void;
}

export class RevocationFeed implements RevocationListener {
  private readonly subscribers = new Set<Subscriber>();
  private newestSeen = 0;
  /** Every revocation up to here has gone to the live subscribers (or was in the store when they came). */
  private cursor = 0;
  private syncing?: Promise<boolean>;
  private again = false;
  /** False after a failed read of the store, until one succeeds. */
  private healthy = true;

  constructor(private readonly deps: { store: Store; now: () => number; observer?: FeedObserver }) {}

  /** The newest sequence delivered live. */
  get sequence(): number {
    return this.cursor;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** From Revocations, after each commit here. */
  revoked(records: readonly RevocationRecord[]): void {
    // Directly after the cursor, one run without gaps: nothing can sit between (commit order is sequence order).
    if (records.length > 0 && records.every((r, i) => r.seq === this.cursor + 1 + i)) {
      this.fanOut(records);
      return;
    }
    void this.sync();
  }

  /** Hands records (in sequence order, all above the cursor) to every subscriber, and moves the cursor. */
  private fanOut(records: readonly RevocationRecord[]): void {
    const fresh = records.filter((r) => r.seq > this.cursor);
    if (fresh.length === 0) return;
    const now = this.deps.now();
    for (const r of fresh) {
      this.newestSeen = Math.max(this.newestSeen, r.seq);
      this.deps.observer?.replicated?.(Math.max(0, now - r.at));
    }
    this.cursor = fresh[fresh.length - 1]!.seq;
    for (const s of this.subscribers) {
      if (s.pending) s.pending.push(...fresh);
      else for (const r of fresh) this.deliver(s, r);
    }
  }

  /**
   * Reads what the store committed after the cursor and fans it out; concurrent calls share one
   * read (and one more after it, for what a call arriving meanwhile may have been told of).
   * Resolves false when the store could not be read.
   */
  sync(): Promise<boolean> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      let ok = true;
      do {
        this.again = false;
        try {
          for (;;) {
            const page = await this.deps.store.listRevocationsSince(this.cursor, CATCH_UP_PAGE);
            this.fanOut(page);
            if (page.length < CATCH_UP_PAGE) break;
          }
          ok = true;
        } catch (e) {
          ok = false;
          this.deps.observer?.syncFailed?.(e);
        }
        this.healthy = ok;
      } while (this.again && ok);
      return ok;
    })().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
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

  /** The newest sequence (from the store, so a restarted issuer knows it); live delivery starts after it. */
  async newest(): Promise<number> {
    const { newest } = await this.deps.store.revocationBounds();
    this.newestSeen = Math.max(this.newestSeen, newest);
    // Subscribers read what was committed before they came from the store themselves.
    if (this.subscribers.size === 0) this.cursor = Math.max(this.cursor, newest);
    return this.newestSeen;
  }

  /**
   * Heartbeats to every live subscriber: the newest sequence, so each knows how fresh it is;
   * none while the last read of the store failed (this replica cannot vouch for freshness).
   */
  heartbeat(): void {
    if (!this.healthy) return;
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
