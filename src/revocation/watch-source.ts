/**
 * A relying party's revocation source fed by the issuer's Watch stream (docs/writ-format.md
 * §Revocation): it subscribes from its last sequence, keeps the `kind:target` key of every
 * revocation in force, resumes after any disconnect from where it was (a snapshot first when the
 * issuer no longer holds the events it missed), moves to the next issuer address on failure, and
 * knows how fresh it is from the heartbeats. `check` answers from the writ alone (its facts and
 * every delegation above it, revocation/target.ts) and throws, so that the verifier fails closed,
 * when the source has never synced, its last heartbeat is older than the maximum staleness, it
 * holds more than its limit, or the issuer sent something it cannot apply.
 *
 * The stream itself is injected (`WatchConnector`): the gRPC client is agent/revocation-client.ts,
 * tests use a fake. Every message arriving here is UNTRUSTED input (from an authenticated issuer,
 * but parsed strictly all the same).
 */
import { systemClock, type Clock } from '../clock.js';
import type { Grant } from '../delegation/grant.js';
import { RevocationError } from '../errors.js';
import type { RevocationSource, RevocationStatus } from '../writ/verify.js';
import type { WritClaims } from '../writ/writ.js';
import { formatTarget, parseRevocationTarget, revocationKeys, writFacts, type RevocationTarget } from './target.js';

/**
 * Most revocations one source holds (a key of at most a few hundred bytes each, so ~100 MB at
 * the limit). Past it the source cannot hold what the issuer says is revoked: it fails closed
 * until a snapshot (which carries only what is still in force) brings it back under the limit.
 */
export const MAX_WATCH_REVOCATIONS = 1_000_000;
/** Default maximum age of the last heartbeat: three of the issuer's default heartbeats (5 s). */
export const DEFAULT_MAX_STALENESS_MS = 15_000;
/** First reconnect delay; doubled per consecutive failure up to `RECONNECT_MAX_MS`, with jitter. */
export const RECONNECT_INITIAL_MS = 100;
export const RECONNECT_MAX_MS = 10_000;
/**
 * A revocation is forgotten this long after the issuer says it can no longer match a valid writ
 * (its `expires_at`): more than the verifier's clock skew, for clocks that disagree.
 */
export const PRUNE_MARGIN_MS = 10 * 60_000;

/** A message of the Watch stream as the transport decoded it; nothing about it is checked yet. */
export type WatchWireMessage =
  | {
      readonly type: 'revocation';
      readonly sequence: number;
      readonly kind: string;
      readonly target: string;
      readonly reason: string;
      readonly at: number;
      readonly actor: string;
      readonly principal: string;
      /** 0 when not derived. */
      readonly derivedFrom: number;
      /** Unix ms after which it can no longer match a valid writ; 0 (or absent, an older issuer): never. */
      readonly expiresAt?: number;
    }
  | { readonly type: 'heartbeat'; readonly sequence: number; readonly at: number }
  | { readonly type: 'snapshot-begin'; readonly oldestRetained: number }
  | { readonly type: 'snapshot-end'; readonly sequence: number };

/** Why a stream ended; `resumeSince` is the issuer's hint when it cut a slow subscriber off. */
export interface WatchStreamEnd {
  readonly reason: string;
  readonly resumeSince?: number;
}

export interface WatchStreamHandlers {
  message(m: WatchWireMessage): void;
  /** Once, when the stream ends for any reason other than the handle's `close()`. */
  end(e: WatchStreamEnd): void;
}

/** Opens `Watch(since)` on one issuer address. */
export interface WatchConnector {
  open(address: string, since: number, on: WatchStreamHandlers): { close(): void };
}

/** A revocation as the source applied it. */
export interface WatchedRevocation {
  readonly sequence: number;
  readonly target: RevocationTarget;
  readonly reason: string;
  /** Unix ms, as the issuer recorded it. */
  readonly at: number;
  readonly actor: string;
  readonly principal: string;
  readonly derivedFrom?: number;
  /** Unix ms after which it can no longer match a valid writ (absent: never). */
  readonly expiresAt?: number;
  /** Part of a snapshot (the issuer re-sending what is in force), not a new event. */
  readonly snapshot: boolean;
}

/** Every message the source applied, in order (what `writ revocation watch` prints). */
export type WatchMessage =
  | { readonly type: 'revocation'; readonly revocation: WatchedRevocation }
  | { readonly type: 'heartbeat'; readonly sequence: number; readonly at: number }
  | { readonly type: 'snapshot-begin'; readonly oldestRetained: number }
  | { readonly type: 'snapshot-end'; readonly sequence: number };

/** What happened to the connection, for logs. */
export type WatchConnectionEvent =
  | { readonly type: 'connecting'; readonly address: string; readonly since: number }
  | { readonly type: 'synced'; readonly address: string; readonly sequence: number }
  | { readonly type: 'disconnected'; readonly address: string; readonly reason: string; readonly retryInMs: number };

export interface WatchSourceOptions {
  /** Issuer addresses (HOST:PORT), tried in order; the next one after each failure. */
  readonly addresses: readonly string[];
  readonly connector: WatchConnector;
  /** The last sequence already known (default 0: everything the issuer holds). */
  readonly since?: number;
  /**
   * `check` throws when the last heartbeat is older than this, and a stream silent this long is
   * dropped and resumed (default 15 s: three of the issuer's default heartbeats). Keep it above
   * the issuer's `revocation.heartbeat`.
   */
  readonly maxStalenessMs?: number;
  /** Most revocations held (default MAX_WATCH_REVOCATIONS). */
  readonly maxRevocations?: number;
  readonly reconnectInitialMs?: number;
  readonly reconnectMaxMs?: number;
  /** Staleness and backoff are measured on this clock (default: the system clock). */
  readonly clock?: Clock;
}

const unavailable = (msg: string) => new RevocationError('ERR_REVOCATION_UNAVAILABLE', `revocation(watch): ${msg}`);

/** The revocation keys of a writ, once per (cached, immutable) claims object. */
const keysOf = new WeakMap<WritClaims, readonly string[]>();

const isSeq = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

interface Stream {
  readonly address: string;
  readonly since: number;
  /** Subscribed from 0 because the issuer's log was behind this source: adopt its numbering at the heartbeat. */
  replay: boolean;
  handle?: { close(): void };
  /** The last sequence this stream delivered (outside a snapshot). */
  last: number;
  /** Revocations of the snapshot in progress, by key. */
  snapshot?: Map<string, number>;
  /** Sequence of the last revocation of the snapshot in progress. */
  snapshotLast: number;
  /** The snapshot in progress did not fit in the limit. */
  snapshotOverflow: boolean;
  synced: boolean;
}

export class WatchRevocationSource implements RevocationSource {
  private readonly addresses: readonly string[];
  private readonly connector: WatchConnector;
  private readonly clock: Clock;
  private readonly maxStalenessMs: number;
  private readonly maxRevocations: number;
  private readonly backoff: { readonly initial: number; readonly max: number };

  /** kind:target → sequence, of every revocation in force that this source saw. */
  private readonly revoked = new Map<string, number>();
  /** kind:target → when it can no longer matter (Unix ms), for those that expire. */
  private readonly expiry = new Map<string, number>();
  private lastSeq: number;
  private lastHeartbeatMs?: number;
  private heartbeatAddress = '';
  private everSynced = false;
  /** Set when the issuer's sequence went below ours: the next subscription replays from 0. */
  private replayFromZero = false;
  private overLimit = false;
  /** A revocation the source could not apply: it stays unusable (an issuer newer than this verifier). */
  private incompatible?: string;
  private lastError = '';
  private failures = 0;
  private next = 0;
  private stream?: Stream;
  private retry?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private lastMessageMs = 0;
  private closed = false;
  private started = false;
  private readonly revokedListeners = new Set<(r: WatchedRevocation) => void>();
  private readonly messageListeners = new Set<(m: WatchMessage) => void>();
  private readonly connectionListeners = new Set<(e: WatchConnectionEvent) => void>();
  private syncWaiters: Array<() => void> = [];

  constructor(o: WatchSourceOptions) {
    if (o.addresses.length === 0) throw unavailable('no issuer address to watch');
    if (o.since !== undefined && !isSeq(o.since)) throw unavailable('since must be a sequence number');
    this.addresses = [...o.addresses];
    this.connector = o.connector;
    this.clock = o.clock ?? systemClock;
    this.maxStalenessMs = o.maxStalenessMs ?? DEFAULT_MAX_STALENESS_MS;
    this.maxRevocations = o.maxRevocations ?? MAX_WATCH_REVOCATIONS;
    this.backoff = { initial: o.reconnectInitialMs ?? RECONNECT_INITIAL_MS, max: o.reconnectMaxMs ?? RECONNECT_MAX_MS };
    this.lastSeq = o.since ?? 0;
  }

  /** Connects (once); returns this. */
  start(): this {
    if (this.started || this.closed) return this;
    this.started = true;
    this.connect();
    // A connection that goes silent (no heartbeat, no error) is dropped and resumed elsewhere.
    this.watchdog = setInterval(
      () => {
        this.checkSilence();
        this.prune();
      },
      Math.max(10, Math.floor(this.maxStalenessMs / 2)),
    );
    return this;
  }

  /** Resolves at the first heartbeat (the source is then in sync); rejects after `timeoutMs`. */
  synced(timeoutMs = 10_000): Promise<void> {
    if (this.everSynced) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        this.syncWaiters = this.syncWaiters.filter((w) => w !== done);
        reject(unavailable(`no heartbeat from ${this.addresses.join(', ')} within ${timeoutMs} ms${this.lastError ? ` (last error: ${this.lastError})` : ''}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        resolve();
      };
      this.syncWaiters.push(done);
    });
  }

  /** The sequence this source is at: every revocation up to it has been applied. */
  get sequence(): number {
    return this.lastSeq;
  }

  /** How many revocations it holds. */
  get size(): number {
    return this.revoked.size;
  }

  /** Freshness for reports and metrics. */
  status(): { synced: boolean; sequence: number; heartbeatAgeMs?: number; address?: string; connected: boolean; unusable?: string } {
    const unusable = this.unusable();
    return {
      synced: this.everSynced,
      sequence: this.lastSeq,
      ...(this.lastHeartbeatMs !== undefined ? { heartbeatAgeMs: this.clock.now().getTime() - this.lastHeartbeatMs } : {}),
      ...(this.stream ? { address: this.stream.address } : {}),
      connected: this.stream?.synced === true,
      ...(unusable ? { unusable } : {}),
    };
  }

  /**
   * Called with each revocation once applied (a `check` inside the listener already sees it). A
   * listener that throws does not stop the others; its error is rethrown on its own (uncaught).
   */
  onRevoked(l: (r: WatchedRevocation) => void): () => void {
    this.revokedListeners.add(l);
    return () => this.revokedListeners.delete(l);
  }

  /** Called with every message once applied, heartbeats and snapshot markers included. */
  onMessage(l: (m: WatchMessage) => void): () => void {
    this.messageListeners.add(l);
    return () => this.messageListeners.delete(l);
  }

  onConnection(l: (e: WatchConnectionEvent) => void): () => void {
    this.connectionListeners.add(l);
    return () => this.connectionListeners.delete(l);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    clearInterval(this.watchdog);
    const s = this.stream;
    this.stream = undefined;
    s?.handle?.close();
  }

  private unusable(): string | undefined {
    if (this.incompatible) return this.incompatible;
    if (this.overLimit) return `it holds more than ${this.maxRevocations} revocations, its limit; refusing rather than forgetting`;
    return undefined;
  }

  /** Throws unless the source can answer now: synced, fresh, usable. */
  private freshness(): string {
    const unusable = this.unusable();
    if (unusable) throw unavailable(unusable);
    if (!this.everSynced || this.lastHeartbeatMs === undefined) {
      throw unavailable(`not synced yet with ${this.addresses.join(', ')}${this.lastError ? ` (last error: ${this.lastError})` : ''}`);
    }
    const age = this.clock.now().getTime() - this.lastHeartbeatMs;
    if (age > this.maxStalenessMs) {
      throw unavailable(
        `the last heartbeat is ${age} ms old, more than the ${this.maxStalenessMs} ms accepted (at sequence ${this.lastSeq}${this.lastError ? `; last error: ${this.lastError}` : ''})`,
      );
    }
    return `watch stream at sequence ${this.lastSeq} (heartbeat ${Math.max(0, age)} ms ago from ${this.heartbeatAddress})`;
  }

  check(writ: { readonly claims: WritClaims; readonly grants: readonly Grant[] }, _now: Date): RevocationStatus {
    const source = this.freshness();
    const reason = this.heldRevocation(writ);
    return reason === undefined ? { revoked: false, source } : { revoked: true, reason, source };
  }

  /**
   * The revocation held now that kills the writ (as `check` words it), whatever the source's
   * freshness, or undefined. What was seen stays in force however old the last heartbeat is, so
   * this is enough to refuse; only `check` can say a writ is not revoked.
   */
  heldRevocation(writ: { readonly claims: WritClaims; readonly grants: readonly Grant[] }): string | undefined {
    let keys = keysOf.get(writ.claims);
    if (!keys) {
      keys = revocationKeys(writFacts(writ.claims, writ.grants));
      keysOf.set(writ.claims, keys);
    }
    for (const k of keys) {
      const seq = this.revoked.get(k);
      if (seq !== undefined) {
        const colon = k.indexOf(':');
        return `${k.slice(0, colon)} ${k.slice(colon + 1)} revoked at sequence ${seq}`;
      }
    }
    return undefined;
  }

  private emit<T>(listeners: Set<(x: T) => void>, x: T): void {
    for (const l of listeners) {
      try {
        l(x);
      } catch (e) {
        // A listener's bug is the caller's: surfaced, but never in the middle of applying a message.
        setImmediate(() => {
          throw e;
        });
      }
    }
  }

  private connect(): void {
    if (this.closed) return;
    const address = this.addresses[this.next % this.addresses.length]!;
    const replay = this.replayFromZero;
    const since = replay ? 0 : this.lastSeq;
    const s: Stream = { address, since, replay, last: since, snapshotLast: 0, snapshotOverflow: false, synced: false };
    this.stream = s;
    this.lastMessageMs = this.clock.now().getTime();
    this.emit(this.connectionListeners, { type: 'connecting', address, since });
    let handle: { close(): void };
    try {
      handle = this.connector.open(address, since, {
        message: (m) => {
          if (this.stream === s) this.apply(s, m);
        },
        end: (e) => {
          if (this.stream === s) this.lost(s, e.reason);
        },
      });
    } catch (e) {
      this.lost(s, (e as Error).message);
      return;
    }
    // The connector may have ended the stream already (lost() ran).
    if (this.stream === s) s.handle = handle;
    else handle.close();
  }

  /** The stream `s` is over: close it, move to the next address, retry after the backoff. */
  private lost(s: Stream, reason: string): void {
    if (this.stream !== s) return;
    this.stream = undefined;
    s.handle?.close();
    this.lastError = `${s.address}: ${reason}`;
    if (this.closed) return;
    this.failures++;
    this.next++;
    const ceiling = Math.min(this.backoff.max, this.backoff.initial * 2 ** Math.min(this.failures - 1, 30));
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.emit(this.connectionListeners, { type: 'disconnected', address: s.address, reason, retryInMs: delay });
    this.retry = setTimeout(() => this.connect(), delay);
  }

  private checkSilence(): void {
    const s = this.stream;
    if (!s) return;
    const quiet = this.clock.now().getTime() - this.lastMessageMs;
    if (quiet > this.maxStalenessMs) this.lost(s, `no message for ${quiet} ms`);
  }

  /**
   * Forgets revocations that can no longer match a valid writ (their `expires_at` plus
   * PRUNE_MARGIN_MS has passed), so a long-running source does not grow to its limit. Runs with
   * the watchdog; returns how many it forgot.
   */
  prune(): number {
    const now = this.clock.now().getTime();
    let n = 0;
    for (const [k, until] of this.expiry) {
      if (until + PRUNE_MARGIN_MS >= now) continue;
      this.expiry.delete(k);
      if (this.revoked.delete(k)) n++;
    }
    if (n > 0 && this.overLimit && this.revoked.size < this.maxRevocations) this.overLimit = false;
    return n;
  }

  private apply(s: Stream, m: WatchWireMessage): void {
    this.lastMessageMs = this.clock.now().getTime();
    switch (m?.type) {
      case 'revocation':
        this.applyRevocation(s, m);
        return;
      case 'heartbeat':
        this.applyHeartbeat(s, m);
        return;
      case 'snapshot-begin':
        if (s.snapshot || s.synced || !isSeq(m.oldestRetained)) {
          this.lost(s, 'protocol: unexpected snapshot begin');
          return;
        }
        s.snapshot = new Map();
        s.snapshotLast = 0;
        s.snapshotOverflow = false;
        this.emit(this.messageListeners, { type: 'snapshot-begin', oldestRetained: m.oldestRetained });
        return;
      case 'snapshot-end': {
        const snap = s.snapshot;
        if (!snap || !isSeq(m.sequence) || m.sequence < s.snapshotLast) {
          this.lost(s, 'protocol: unexpected snapshot end');
          return;
        }
        s.snapshot = undefined;
        // The snapshot is everything in force: what it lacks was pruned by the issuer and can no
        // longer matter. (Replaying another log, keep everything: what the old one said still holds.)
        if (!s.replay && !s.snapshotOverflow) {
          this.revoked.clear();
          for (const [k, seq] of snap) this.revoked.set(k, seq);
          for (const k of this.expiry.keys()) if (!snap.has(k)) this.expiry.delete(k);
          this.overLimit = false;
        }
        s.last = Math.max(s.last, m.sequence);
        if (!s.replay) this.lastSeq = s.last;
        this.emit(this.messageListeners, { type: 'snapshot-end', sequence: m.sequence });
        return;
      }
      default:
        // A message type newer than this verifier: heartbeats still vouch for everything up to their sequence.
        return;
    }
  }

  private applyRevocation(s: Stream, m: Extract<WatchWireMessage, { type: 'revocation' }>): void {
    if (!isSeq(m.sequence) || m.sequence === 0) {
      this.lost(s, 'protocol: a revocation without a sequence number');
      return;
    }
    if (s.snapshot) {
      if (m.sequence <= s.snapshotLast) {
        this.lost(s, `protocol: snapshot sequence ${m.sequence} after ${s.snapshotLast}`);
        return;
      }
      s.snapshotLast = m.sequence;
    } else if (m.sequence <= s.last) {
      this.lost(s, `protocol: sequence ${m.sequence} after ${s.last}`);
      return;
    }
    let target: RevocationTarget;
    try {
      target = parseRevocationTarget(String(m.kind), String(m.target));
    } catch (e) {
      // Not applying a revocation the issuer made would answer "not revoked" wrongly from now on.
      this.incompatible = `the issuer sent a revocation this verifier cannot apply (sequence ${m.sequence}: ${(e as Error).message}); upgrade the verifier`;
      this.lost(s, this.incompatible);
      return;
    }
    const key = formatTarget(target);
    if (s.snapshot) {
      if (s.snapshot.size < this.maxRevocations || s.snapshot.has(key)) s.snapshot.set(key, m.sequence);
      else s.snapshotOverflow = true;
    }
    // Held at once, snapshot or not: during a snapshot the source answers from the old set and the new one together.
    if (!this.revoked.has(key)) {
      if (this.revoked.size >= this.maxRevocations) this.overLimit = true;
      else this.revoked.set(key, m.sequence);
    }
    if (isSeq(m.expiresAt) && m.expiresAt > 0) this.expiry.set(key, m.expiresAt);
    else this.expiry.delete(key);
    if (!s.snapshot) {
      s.last = m.sequence;
      if (!s.replay) this.lastSeq = m.sequence;
    }
    const r: WatchedRevocation = {
      sequence: m.sequence,
      target,
      reason: String(m.reason ?? ''),
      at: isSeq(m.at) ? m.at : 0,
      actor: String(m.actor ?? ''),
      principal: String(m.principal ?? ''),
      ...(isSeq(m.derivedFrom) && m.derivedFrom > 0 ? { derivedFrom: m.derivedFrom } : {}),
      ...(isSeq(m.expiresAt) && m.expiresAt > 0 ? { expiresAt: m.expiresAt } : {}),
      snapshot: s.snapshot !== undefined,
    };
    this.emit(this.revokedListeners, r);
    this.emit(this.messageListeners, { type: 'revocation', revocation: r });
  }

  private applyHeartbeat(s: Stream, m: Extract<WatchWireMessage, { type: 'heartbeat' }>): void {
    if (!isSeq(m.sequence) || s.snapshot) {
      this.lost(s, 'protocol: unexpected heartbeat');
      return;
    }
    if (m.sequence > s.last) {
      this.lost(s, `protocol: heartbeat at sequence ${m.sequence}, but events after ${s.last} did not arrive`);
      return;
    }
    if (m.sequence < s.last) {
      // The issuer's log is behind ours (restored from a backup, or another issuer): replay it all,
      // keeping what we hold, then follow its numbering.
      if (s.since === 0) {
        this.lost(s, `protocol: heartbeat at sequence ${m.sequence} after events up to ${s.last}`);
        return;
      }
      this.replayFromZero = true;
      this.lost(s, `the issuer is at sequence ${m.sequence}, behind this source (${s.last}): replaying from 0`);
      return;
    }
    this.lastSeq = s.last;
    s.replay = false;
    this.replayFromZero = false;
    this.lastHeartbeatMs = this.clock.now().getTime();
    this.heartbeatAddress = s.address;
    this.failures = 0;
    this.lastError = '';
    if (!s.synced) {
      s.synced = true;
      this.emit(this.connectionListeners, { type: 'synced', address: s.address, sequence: this.lastSeq });
    }
    if (!this.everSynced) {
      this.everSynced = true;
      const waiters = this.syncWaiters;
      this.syncWaiters = [];
      for (const w of waiters) w();
    }
    this.emit(this.messageListeners, { type: 'heartbeat', sequence: m.sequence, at: m.at });
  }
}
