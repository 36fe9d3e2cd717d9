/**
 * Wake-ups between replicas sharing one store. A change feed says only "something of this kind
 * changed": the store's tables are the truth, read by sequence, so a wake-up that is lost,
 * coalesced or spurious costs latency, never an event. Writes announce themselves in the same
 * transaction (store/dialect.ts `notify`: PostgreSQL delivers a NOTIFY at COMMIT and never after
 * a ROLLBACK); on SQLite every writer is this process, so the feed is in-process.
 */

/** What replicas tell each other about: each is read back from its own table by sequence. */
export type ChangeKind = 'revocation' | 'bundle' | 'policy' | 'approval';
export const CHANGE_KINDS: readonly ChangeKind[] = ['revocation', 'bundle', 'policy', 'approval'];

export interface ChangeFeed {
  /**
   * Calls `fn` after a change of `kind` committed, here or on another replica, and after every
   * (re)connection of the feed (anything may have been missed meanwhile). Returns the
   * unsubscribe function. `fn` must not throw; it should start a read of the store, coalesced.
   */
  on(kind: ChangeKind, fn: () => void): () => void;
  /** A change this process committed: wakes local listeners without a round trip. */
  changed(kind: ChangeKind): void;
  /** Whether wake-ups from other replicas currently arrive (always true in-process). */
  readonly connected: boolean;
  close(): Promise<void>;
}

/** Listeners by kind, called synchronously in subscription order; shared by the implementations. */
export class ChangeListeners {
  private readonly byKind = new Map<ChangeKind, Set<() => void>>(CHANGE_KINDS.map((k) => [k, new Set()]));

  constructor(private readonly onError: (e: unknown) => void = () => undefined) {}

  on(kind: ChangeKind, fn: () => void): () => void {
    const set = this.byKind.get(kind)!;
    const entry = () => fn();
    set.add(entry);
    return () => set.delete(entry);
  }

  fire(kind: ChangeKind): void {
    for (const fn of this.byKind.get(kind)!) {
      try {
        fn();
      } catch (e) {
        this.onError(e);
      }
    }
  }

  fireAll(): void {
    for (const k of CHANGE_KINDS) this.fire(k);
  }
}

/** One process on its own store (SQLite): changes are this process's own. */
export class LocalChangeFeed implements ChangeFeed {
  private readonly listeners: ChangeListeners;
  readonly connected = true;

  constructor(onError?: (e: unknown) => void) {
    this.listeners = new ChangeListeners(onError);
  }

  on(kind: ChangeKind, fn: () => void): () => void {
    return this.listeners.on(kind, fn);
  }

  changed(kind: ChangeKind): void {
    this.listeners.fire(kind);
  }

  async close(): Promise<void> {}
}
