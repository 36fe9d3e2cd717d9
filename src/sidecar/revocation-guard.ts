/**
 * The sidecar's reaction to revocation (issue 12 §3): one subscription to the issuer's
 * `RevocationService.Watch` (revocation/watch-source.ts over agent/revocation-client.ts), and on
 * every revocation applied, the question the verifier asks, answered by the verifier's own
 * matcher (revocation/target.ts `matches` over `writFacts`): does it kill the identity this
 * sidecar serves — a grant of its lineage, its task, principal, SPIFFE ID or a delegator above
 * it, its key or a key above it, its writ or one it was delegated from, its entry or its platform?
 * (A writ names its entry and platform in `reg` and `att.sel`; an identity without a writ is
 * matched by its SPIFFE ID (`agent`), its key (`key`), and the entry and selectors the issuer's
 * AttestResult named. From an issuer that did not name them, an entry or platform revocation
 * reaches such a sidecar at its next renewal, which the issuer refuses with ERR_REVOKED and the
 * daemon treats as terminal, so within half the SVID's lifetime.)
 * If so, `onRevoked(reason)` is called once, synchronously, inside the event that carried it; the
 * daemon then marks the state revoked (terminal), which ends every stream and refuses every call.
 *
 * Staleness: the guard never declares an identity revoked because the watch is disconnected (a
 * server outage must not drop an identity that is still valid, issue 12 §2); revocations missed
 * during an outage arrive when the stream resumes from its sequence, or in the snapshot the
 * issuer sends instead, and kill the identity then. What a disconnected sidecar refuses is new
 * authority: Delegate fails closed once `freshness().confirmedAt` is older than its maximum
 * staleness (sidecar/agent-service/service.ts). An identity obtained while the source is stale is
 * checked again at the next heartbeat.
 *
 * Before a renewed (or late first) identity is published, the daemon asks `screen`: a revocation
 * the guard already holds that matches it revokes the sidecar there, and the identity never
 * reaches a stream or the JWT-SVID cache.
 */
import { systemClock, type Clock } from '../clock.js';
import { parseGrantCached, type Grant } from '../delegation/grant.js';
import { jwkThumbprint } from '../jose/jws.js';
import { matches, writFacts, type RevocationTarget, type WritFacts } from '../revocation/target.js';
import {
  DEFAULT_MAX_STALENESS_MS,
  WatchRevocationSource,
  type WatchConnector,
  type WatchConnectionEvent,
  type WatchedRevocation,
} from '../revocation/watch-source.js';
import { parseWritCached, type WritClaims } from '../writ/writ.js';
import type { RevocationFreshness, SidecarIdentity, SidecarState } from './state.js';

export interface RevocationGuardOptions {
  /** Issuer addresses (HOST:PORT), tried in order. */
  readonly addresses: readonly string[];
  /** The Watch transport: `grpcWatchConnector(bundlePem)` (agent/revocation-client.ts), or a fake. */
  readonly connector: WatchConnector;
  /** Whose identity is guarded: the guard reads `current()` and re-checks on every change. */
  readonly state: Pick<SidecarState, 'current' | 'subscribe'>;
  /** Called once, synchronously, when the identity is revoked; the daemon marks the state revoked. */
  readonly onRevoked: (reason: string) => void;
  /** The watch source's maximum staleness (default 15 s); keep it above the issuer's heartbeat. */
  readonly maxStalenessMs?: number;
  readonly reconnectInitialMs?: number;
  readonly reconnectMaxMs?: number;
  readonly clock?: Clock;
  /** Connection changes, for the sidecar's log. */
  readonly onConnection?: (e: WatchConnectionEvent) => void;
}

/** The facts of an identity a revocation can match: the writ's, or for a bare SVID its SPIFFE ID and key. */
function identityFacts(id: SidecarIdentity): WritFacts {
  if (id.writ !== undefined) {
    const c = parseWritCached(id.writ).claims;
    return writFacts(
      c,
      c.grants.map((g) => parseGrantCached(g)),
    );
  }
  // No writ: no lineage, task or principal to match; the empty strings match no parsed target.
  // The entry and selectors are those the issuer's answer named (none from an older issuer).
  return {
    jti: '',
    sub: id.spiffeId,
    jkt: jwkThumbprint(id.signer.publicKey),
    taskId: '',
    principal: '',
    lineage: [],
    delegators: [],
    ancestors: [],
    ancestorKeys: [],
    selectors: id.selectors ?? [],
    ...(id.entryId !== undefined ? { entry: id.entryId } : {}),
  };
}

/**
 * What the source's `check` takes, for the identity: its writ, or for a bare SVID a writ-shaped
 * probe with only its SPIFFE ID, key, entry and selectors (its empty jti, task and principal
 * yield keys no parsed revocation target can have), so that the held set is searched by the same
 * keys either way.
 */
function probeOf(id: SidecarIdentity): { claims: WritClaims; grants: Grant[] } {
  if (id.writ !== undefined) {
    const c = parseWritCached(id.writ).claims;
    return { claims: c, grants: c.grants.map((g) => parseGrantCached(g)) };
  }
  const claims = {
    jti: '',
    sub: id.spiffeId,
    cnf: { jkt: jwkThumbprint(id.signer.publicKey) },
    task: { id: '' },
    principal: { iss: '', sub: '' },
    lineage: [],
    att: { sel: id.selectors ?? [] },
    ...(id.entryId !== undefined ? { reg: id.entryId } : {}),
  } as unknown as WritClaims;
  return { claims, grants: [] };
}

const describe = (t: RevocationTarget, r: { sequence: number; reason: string }) =>
  `${t.kind} ${t.id} revoked at sequence ${r.sequence}${r.reason ? ` (${r.reason.slice(0, 200)})` : ''}`;

export class RevocationGuard {
  private readonly source: WatchRevocationSource;
  private readonly clock: Clock;
  private readonly o: RevocationGuardOptions;
  /** The identity last checked, and its facts (parsed once per identity). */
  private guarded?: { readonly id: SidecarIdentity; readonly facts: WritFacts };
  private revokedReason?: string;
  /** An identity arrived while the source could not answer: check it at the next heartbeat. */
  private recheckPending = false;
  private confirmedAt = 0;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly lagListeners = new Set<(seconds: number) => void>();

  constructor(o: RevocationGuardOptions) {
    this.o = o;
    this.clock = o.clock ?? systemClock;
    this.source = new WatchRevocationSource({
      addresses: o.addresses,
      connector: o.connector,
      maxStalenessMs: o.maxStalenessMs ?? DEFAULT_MAX_STALENESS_MS,
      clock: this.clock,
      ...(o.reconnectInitialMs !== undefined ? { reconnectInitialMs: o.reconnectInitialMs } : {}),
      ...(o.reconnectMaxMs !== undefined ? { reconnectMaxMs: o.reconnectMaxMs } : {}),
    });
  }

  /** Subscribes (once) and starts guarding the current identity; returns this. */
  start(): this {
    this.unsubscribe.push(
      this.source.onRevoked((r) => this.onRevocation(r)),
      this.source.onMessage((m) => {
        if (m.type !== 'heartbeat' && m.type !== 'revocation') return;
        this.confirmedAt = this.clock.now().getTime();
        if (m.type === 'revocation' && !m.revocation.snapshot) this.lag(this.confirmedAt - m.revocation.at);
        if (m.type === 'heartbeat' && this.recheckPending) this.recheck();
      }),
      this.o.state.subscribe(() => this.recheck()),
    );
    if (this.o.onConnection) this.unsubscribe.push(this.source.onConnection(this.o.onConnection));
    this.source.start();
    this.recheck();
    return this;
  }

  /** Resolves once the source has heard the issuer's first heartbeat. */
  synced(timeoutMs?: number): Promise<void> {
    return this.source.synced(timeoutMs);
  }

  /** Why the identity is revoked, once it is. */
  get revoked(): string | undefined {
    return this.revokedReason;
  }

  /** What Status reports and Delegate's staleness check reads. */
  freshness(): RevocationFreshness {
    const st = this.source.status();
    return { sequence: st.sequence, confirmedAt: this.confirmedAt, connected: st.connected };
  }

  /**
   * Why `id`, about to be served (a renewal, a late first identity), must not be, by what the
   * guard holds now; undefined when nothing held matches. Asked by the daemon before the identity
   * reaches any stream or cache (`Sidecar.setRevocationScreen`). A revocation already seen is in
   * force whatever the view's freshness, so a stale view refuses what it holds too (a stale view
   * that finds nothing is asked again at the next heartbeat, once the identity is served:
   * `recheck`). Facts that cannot be read fail closed. A refusal fires `onRevoked` as a Watch
   * event does: the sidecar's identity is revoked, terminally.
   */
  screen(id: SidecarIdentity): string | undefined {
    if (this.revokedReason !== undefined) return this.revokedReason;
    let reason: string | undefined;
    try {
      reason = this.source.heldRevocation(probeOf(id));
    } catch (e) {
      reason = `the new identity cannot be matched against revocations (${(e as Error).message})`;
    }
    if (reason !== undefined) this.fire(`${reason}; the new identity was not served`);
    return this.revokedReason;
  }

  /**
   * Told, for each revocation applied from the stream (live or catch-up after a reconnect; not
   * a snapshot's re-sends, which may be days old), the seconds from the issuer recording it
   * (`at`, its clock) to its arrival here (this clock): the revocation lag, the two hosts' clock
   * offset included (never below 0). Returns the unsubscribe function.
   */
  onLag(listener: (seconds: number) => void): () => void {
    this.lagListeners.add(listener);
    return () => this.lagListeners.delete(listener);
  }

  private lag(ms: number): void {
    const seconds = Math.max(0, ms) / 1000;
    for (const l of [...this.lagListeners]) l(seconds);
  }

  close(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    this.source.close();
  }

  private fire(reason: string): void {
    if (this.revokedReason !== undefined) return;
    this.revokedReason = reason;
    this.o.onRevoked(reason);
  }

  /** The facts of the identity served now (none when nothing is served). */
  private current(): WritFacts | undefined {
    const s = this.o.state.current();
    if (s.state !== 'serving') return undefined;
    if (this.guarded?.id !== s.identity) this.guarded = { id: s.identity, facts: identityFacts(s.identity) };
    return this.guarded.facts;
  }

  private onRevocation(r: WatchedRevocation): void {
    if (this.revokedReason !== undefined) return;
    let facts: WritFacts | undefined;
    try {
      facts = this.current();
    } catch (e) {
      // An identity whose revocation facts cannot be read cannot be shown to be unrevoked: fail closed.
      this.fire(`the served identity cannot be matched against revocations (${(e as Error).message}); revocation at sequence ${r.sequence} applies`);
      return;
    }
    if (facts && matches(r.target, facts)) this.fire(describe(r.target, r));
  }

  /**
   * Checks the identity served now against every revocation the source holds (a renewal, a
   * first identity): the source's own `check`, which uses the same keys. When the source cannot
   * answer yet (never synced, stale), the check is repeated at the next heartbeat.
   */
  private recheck(): void {
    if (this.revokedReason !== undefined) return;
    const s = this.o.state.current();
    if (s.state !== 'serving') return;
    let probe: ReturnType<typeof probeOf>;
    try {
      probe = probeOf(s.identity);
    } catch (e) {
      this.fire(`the served identity cannot be matched against revocations (${(e as Error).message})`);
      return;
    }
    try {
      const res = this.source.check(probe, this.clock.now());
      this.recheckPending = false;
      if (res.revoked) this.fire(res.reason ?? 'revoked');
    } catch {
      this.recheckPending = true;
    }
  }
}
