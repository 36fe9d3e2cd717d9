/**
 * An in-memory issuer for revocation-source tests: the real RevocationFeed (catch-up, snapshot,
 * heartbeats, cut-off) over an in-memory event log, and a WatchConnector that subscribes to it
 * the way the gRPC connector does, with faults to inject: addresses that are down, streams
 * killed, connections held until released, and every subscription recorded.
 */
import { RevocationFeed, type FeedMessage } from '../../src/issuance/revocation-feed.js';
import type { WatchConnector, WatchStreamHandlers, WatchWireMessage } from '../../src/revocation/watch-source.js';
import type { RevocationRecord, Store } from '../../src/store/store.js';

export class FakeWatchIssuer {
  records: RevocationRecord[] = [];
  private seq = 0;
  feed: RevocationFeed;
  private readonly store: Store;

  constructor(private readonly now: () => number = () => 1_790_000_000_000) {
    // The feed reads only these two; the rest of Store is not needed to serve Watch.
    this.store = {
      revocationBounds: async () => ({
        oldest: this.records[0]?.seq ?? 0,
        newest: this.records[this.records.length - 1]?.seq ?? 0,
      }),
      listRevocationsSince: async (after: number, limit: number) => this.records.filter((r) => r.seq > after).slice(0, limit),
    } as unknown as Store;
    this.feed = new RevocationFeed({ store: this.store, now });
  }

  get newest(): number {
    return this.seq;
  }

  /** Records one revocation and fans it out, as Revocations does after a commit. */
  revoke(kind: string, target: string, o: { reason?: string; derivedFrom?: number; expiresAt?: number } = {}): RevocationRecord {
    const r: RevocationRecord = {
      seq: ++this.seq,
      kind,
      target,
      reason: o.reason ?? 'test',
      actor: 'operator',
      principal: '',
      at: this.now(),
      derivedFrom: o.derivedFrom ?? null,
      expiresAt: o.expiresAt ?? null,
    };
    this.records.push(r);
    this.feed.revoked([r]);
    return r;
  }

  /** Forgets events older than `seq` (never the newest), as pruning by retention does. */
  prune(seq: number): void {
    const newest = this.records[this.records.length - 1];
    this.records = this.records.filter((r) => r.seq >= seq || r === newest);
  }

  /** Restarts from a backup taken at `seq`: everything after it is lost and the next revocation reuses the numbers. */
  restore(seq: number): void {
    this.records = this.records.filter((r) => r.seq <= seq);
    this.seq = seq;
    this.feed = new RevocationFeed({ store: this.store, now: this.now });
    // As a restarted server does before serving: live delivery starts after what the store holds.
    void this.feed.newest();
  }

  heartbeat(): void {
    this.feed.heartbeat();
  }
}

const toWire = (m: FeedMessage): WatchWireMessage => {
  switch (m.kind) {
    case 'revocation':
      return {
        type: 'revocation',
        sequence: m.record.seq,
        kind: m.record.kind,
        target: m.record.target,
        reason: m.record.reason,
        at: m.record.at,
        actor: m.record.actor,
        principal: m.record.principal,
        derivedFrom: m.record.derivedFrom ?? 0,
        expiresAt: m.record.expiresAt ?? 0,
      };
    case 'heartbeat':
      return { type: 'heartbeat', sequence: m.sequence, at: m.at };
    case 'snapshot-begin':
      return { type: 'snapshot-begin', oldestRetained: m.oldestRetained };
    case 'snapshot-end':
      return { type: 'snapshot-end', sequence: m.sequence };
  }
};

interface Open {
  readonly address: string;
  readonly since: number;
  end(reason: string): void;
}

export class FakeWatchConnector implements WatchConnector {
  /** Every subscription, in order. */
  readonly opens: Array<{ address: string; since: number }> = [];
  /** Addresses that refuse connections. */
  readonly down = new Set<string>();
  /** While set, new subscriptions wait here until `release()`. */
  private held?: Array<() => void>;
  private readonly live = new Set<Open>();

  constructor(private readonly issuers: Record<string, FakeWatchIssuer>) {}

  /** Kills every open stream (a dropped connection). */
  kill(reason = 'connection reset'): void {
    for (const o of [...this.live]) o.end(reason);
  }

  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const h = this.held ?? [];
    this.held = undefined;
    for (const f of h) f();
  }

  get openCount(): number {
    return this.live.size;
  }

  open(address: string, since: number, on: WatchStreamHandlers): { close(): void } {
    this.opens.push({ address, since });
    let closed = false;
    let unsubscribe: (() => void) | undefined;
    const o: Open = {
      address,
      since,
      end: (reason) => {
        if (closed) return;
        closed = true;
        this.live.delete(o);
        unsubscribe?.();
        on.end({ reason });
      },
    };
    this.live.add(o);
    const start = () => {
      if (closed) return;
      const issuer = this.issuers[address];
      if (!issuer || this.down.has(address)) {
        queueMicrotask(() => o.end('unreachable: connection refused'));
        return;
      }
      issuer.feed
        .subscribe(since, {
          send: (m) => {
            if (closed) return false;
            on.message(toWire(m));
            return true;
          },
          overflow: (lastSent) => o.end(`RESOURCE_EXHAUSTED: fell behind; resume with since=${lastSent}`),
        })
        .then((u) => {
          unsubscribe = u;
          if (closed) u();
        });
    };
    if (this.held) this.held.push(start);
    else start();
    return {
      close: () => {
        closed = true;
        this.live.delete(o);
        unsubscribe?.();
      },
    };
  }
}
