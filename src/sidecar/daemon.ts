/**
 * The sidecar's state machine (`writ agent run`): attest, serve, renew at half the lifetime with
 * jitter, retry with exponential backoff while the issuer is unreachable, stop serving when the
 * credentials expire, recover when the issuer answers again, stop for good when revoked: by the
 * revocation guard, or by the issuer refusing a handshake with ERR_REVOKED (or a renewal with
 * ERR_NO_MATCHING_ENTRY: the entry is gone), see `terminalRefusal` in identity-source.ts. Socket
 * services read it through `SidecarState` (state.ts); they never attest or renew.
 */
import * as grpc from '@grpc/grpc-js';
import { GrpcCallError } from '../agent/attest-client.js';
import { LimitError, SidecarError } from '../errors.js';
import { decodeJwt } from '../svid/jwt-svid.js';
import { terminalRefusal, type IdentitySource, type Obtained } from './identity-source.js';
import type { RenewalCounts, RenewalFailure, RevocationFreshness, SidecarIdentity, SidecarState, SidecarStatus } from './state.js';

/** Renewal at half the lifetime, ±10% (SPIRE agents rotate at half; the jitter spreads a fleet). */
export const RENEW_FRACTION = 0.5;
export const RENEW_JITTER = 0.1;
/** First retry after a failed attestation or renewal; doubled each time up to the cap. */
export const RETRY_BASE_MS = 500;
export const RETRY_CAP_MS = 30_000;
/** The issuer's limits (issuance/issuer.ts): longest audience, most JWT-SVIDs per handshake. */
export const MAX_AUDIENCE_BYTES = 256;
export const MAX_JWT_AUDIENCES = 8;
/** Most audience sets whose JWT-SVIDs are cached; the oldest is dropped first. */
export const MAX_JWT_CACHE_ENTRIES = 256;
/** Most JWT-SVID requests waiting on the issuer at once (each is a handshake). */
export const MAX_JWT_INFLIGHT = 16;
/** How long a caller holding a valid (past half-life) cached JWT-SVID waits for its refresh before it is served the cached one. */
export const JWT_REFRESH_WAIT_MS = 1000;
/**
 * Most handshakes for JWT-SVIDs not in the cache per minute: each renews (and supersedes) the
 * X.509-SVID and costs the issuer a signature, so a caller on the socket cycling through
 * audiences must not turn the sidecar into a load generator.
 */
export const MAX_JWT_HANDSHAKES_PER_MINUTE = 60;
/**
 * Most distinct audiences, not minted with every renewal (`jwtAudiences`), whose JWT-SVIDs are
 * fetched within an hour (default; `maxNewJwtAudiencesPerHour`). Past it an audience not already
 * fetched in the hour is refused (RESOURCE_EXHAUSTED, ERR_LIMIT_EXCEEDED) until one ages out,
 * so a caller cycling through more audiences than the cache holds cannot keep the per-minute
 * limit's 60 handshakes a minute going forever; audiences fetched in the hour are re-fetched
 * as before.
 */
export const MAX_NEW_JWT_AUDIENCES_PER_HOUR = 64;
const HOUR_MS = 3_600_000;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface SidecarOptions {
  readonly source: IdentitySource;
  /** Audiences whose JWT-SVIDs are minted with every attestation and renewal. */
  readonly jwtAudiences?: readonly string[];
  /** ms since the epoch. */
  readonly now: () => number;
  /** Uniform in [0, 1): jitter of renewals and retries. */
  readonly random?: () => number;
  readonly timers?: Timers;
  readonly log?: (line: string) => void;
  /** Distinct on-demand JWT-SVID audiences per hour (default MAX_NEW_JWT_AUDIENCES_PER_HOUR). */
  readonly maxNewJwtAudiencesPerHour?: number;
}

/** When to renew an identity obtained at `obtainedAt` that expires at `notAfter`: half its lifetime, ±10%. */
export function renewalAt(obtainedAt: number, notAfter: number, random: number): number {
  const life = Math.max(0, notAfter - obtainedAt);
  const jitter = (random * 2 - 1) * RENEW_JITTER;
  return obtainedAt + Math.floor(life * RENEW_FRACTION * (1 + jitter));
}

/** The delay before retry `attempt` (0-based): exponential with full jitter over its upper half. */
export function retryDelay(attempt: number, random: number): number {
  const ceiling = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(attempt, 20));
  return Math.floor(ceiling / 2 + (ceiling / 2) * random);
}

/** Checks a JWT-SVID audience list as the issuer will (so a bad request costs no handshake). */
export function checkAudiences(audiences: readonly string[]): void {
  const bad = (m: string) => new SidecarError('ERR_SIDECAR_REQUEST_INVALID', m);
  if (audiences.length === 0) throw bad('audience must be specified');
  // The issuer mints one audience per JWT-SVID (issuance/issuer.ts).
  if (audiences.length > 1) throw bad('sidecar: one audience per JWT-SVID (this issuer mints single-audience JWT-SVIDs)');
  for (const a of audiences) {
    if (a.length === 0) throw bad('sidecar: an audience is empty');
    if (Buffer.byteLength(a) > MAX_AUDIENCE_BYTES) throw bad(`sidecar: an audience is longer than ${MAX_AUDIENCE_BYTES} bytes`);
    if ([...a].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) throw bad('sidecar: an audience contains a control character');
  }
}

/**
 * Why a renewal failed, a bounded label: `terminal` (ERR_REVOKED, or the entry gone: the sidecar
 * is revoked), `refused` (the issuer answered with another refusal), `unavailable` (no answer:
 * unreachable, timed out), `error` (this side: the evidence, the key, an answer it refused).
 */
export function renewalFailure(e: unknown, terminal: boolean): RenewalFailure {
  if (terminal) return 'terminal';
  if (!(e instanceof GrpcCallError)) return 'error';
  return e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED || e.code === grpc.status.CANCELLED ? 'unavailable' : 'refused';
}

interface CachedJwt {
  readonly spiffeId: string;
  readonly token: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

function cachedJwt(spiffeId: string, token: string): CachedJwt {
  const c = decodeJwt(token).claims;
  const exp = typeof c.exp === 'number' ? c.exp * 1000 : 0;
  const iat = typeof c.iat === 'number' ? c.iat * 1000 : exp;
  return { spiffeId, token, issuedAt: iat, expiresAt: exp };
}

export class Sidecar implements SidecarState {
  private status: SidecarStatus = { state: 'pending' };
  private readonly listeners = new Set<(s: SidecarStatus) => void>();
  private readonly jwtCache = new Map<string, CachedJwt>();
  private readonly jwtInflight = new Map<string, Promise<CachedJwt>>();
  /** Cached audiences whose refresh failed: failures in a row, and when the next may start (ms). */
  private readonly jwtBackoff = new Map<string, { readonly failures: number; readonly retryAt: number }>();
  /** When each recent JWT-SVID handshake started (ms), oldest first. */
  private readonly jwtHandshakes: number[] = [];
  /** On-demand audiences fetched in the last hour, and when first (insertion order is time order). */
  private readonly jwtAudiencesThisHour = new Map<string, number>();
  private readonly maxNewAudiencesPerHour: number;
  private readonly random: () => number;
  private readonly timers: Timers;
  private readonly log: (line: string) => void;
  private readonly defaultAudiences: readonly string[];
  private renewTimer: unknown;
  private expiryTimer: unknown;
  private attempt = 0;
  private running = false;
  private stopped = false;
  private release: (() => Promise<void>) | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private freshness: () => RevocationFreshness = () => ({ sequence: 0, confirmedAt: 0, connected: false });
  private screen: (id: SidecarIdentity) => string | undefined = () => undefined;
  /**
   * Renewals that succeeded (scheduled, step-up, or an on-demand JWT-SVID handshake: each renews
   * the X.509-SVID; the first attestation and a re-attestation after expiry are not renewals), and
   * attestations and scheduled renewals that failed.
   */
  renewals = 0;
  failures = 0;
  /** Renewals (as `renewals` counts them) that failed, by why. */
  private readonly renewalFailures: Record<RenewalFailure, number> = { unavailable: 0, refused: 0, terminal: 0, error: 0 };

  constructor(private readonly o: SidecarOptions) {
    this.random = o.random ?? Math.random;
    this.timers = o.timers ?? realTimers;
    this.log = o.log ?? (() => {});
    for (const a of o.jwtAudiences ?? []) checkAudiences([a]);
    if ((o.jwtAudiences ?? []).length > MAX_JWT_AUDIENCES)
      throw new SidecarError('ERR_SIDECAR_REQUEST_INVALID', `sidecar: at most ${MAX_JWT_AUDIENCES} --jwt-audience`);
    this.defaultAudiences = [...new Set(o.jwtAudiences ?? [])];
    const cap = o.maxNewJwtAudiencesPerHour ?? MAX_NEW_JWT_AUDIENCES_PER_HOUR;
    if (!Number.isSafeInteger(cap) || cap < 0)
      throw new SidecarError('ERR_SIDECAR_REQUEST_INVALID', 'sidecar: the JWT-SVID audiences per hour must be a whole number');
    this.maxNewAudiencesPerHour = cap;
  }

  /** Starts the first attestation (and retries it with backoff until it succeeds or `stop()`). */
  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    void this.cycle();
  }

  /** Resolves with the first identity, or rejects when the sidecar stops or is revoked first. */
  ready(): Promise<SidecarIdentity> {
    const s = this.status;
    if (s.state === 'serving') return Promise.resolve(s.identity);
    if (s.state === 'revoked') return Promise.reject(new SidecarError('ERR_SIDECAR_NOT_SERVING', `sidecar: revoked: ${s.reason}`));
    return new Promise((resolve, reject) => {
      const off = this.subscribe((n) => {
        if (n.state === 'serving') {
          off();
          resolve(n.identity);
        } else if (n.state === 'revoked') {
          off();
          reject(new SidecarError('ERR_SIDECAR_NOT_SERVING', `sidecar: revoked: ${n.reason}`));
        }
      });
    });
  }

  current(): SidecarStatus {
    return this.status;
  }

  subscribe(listener: (s: SidecarStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  revocationFreshness(): RevocationFreshness {
    return this.freshness();
  }

  renewalCounts(): RenewalCounts {
    return { renewals: this.renewals, failures: { ...this.renewalFailures } };
  }

  /** Where revocation freshness comes from (the revocation guard, once started). */
  setFreshnessSource(f: () => RevocationFreshness): void {
    this.freshness = f;
  }

  /**
   * What every new identity is checked against before it is published to a stream or the
   * JWT-SVID cache (the revocation guard's `screen`): a reason refuses it and revokes the
   * sidecar, terminally, as a revocation on the Watch stream does.
   */
  setRevocationScreen(screen: (id: SidecarIdentity) => string | undefined): void {
    this.screen = screen;
  }

  /**
   * The identity was revoked: stop serving at once, renew nothing more. Terminal. Listeners see
   * `revoked` synchronously, so every stream ends before this returns.
   */
  revoke(reason: string): void {
    if (this.status.state === 'revoked') return;
    this.clearTimers();
    this.clearJwts();
    this.set({ state: 'revoked', reason, at: this.o.now() });
    this.log(`sidecar: revoked: ${reason}`);
  }

  /** Renews at once while serving (a step-up grant arrived): the next writ carries it. */
  renewNow(): void {
    if (!this.running || this.stopped || this.status.state !== 'serving') return;
    this.schedule(0);
  }

  /** Stops renewing and releases the key session; the state stays as it is. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.clearTimers();
    const r = this.release;
    this.release = undefined;
    await r?.();
  }

  /**
   * From the cache while more than half the JWT-SVID's lifetime is left; past that, refreshed.
   * A refresh that fails (the issuer unreachable, or a limit below refusing the handshake) does
   * not drop the JWT-SVID while it is valid: the cached one is served until its `exp` (as the
   * X.509-SVID is until notAfter, workload-api/service.ts), never after it, never after a
   * revocation or terminal refusal, never for a SPIFFE ID no longer served. The refresh of an
   * audience is retried with backoff (`retryDelay`), one in flight at a time.
   */
  async jwtSvid(audiences: readonly string[]): Promise<{ readonly spiffeId: string; readonly token: string }> {
    checkAudiences(audiences);
    const s = this.serving();
    const key = audiences.join('\n');
    const now = this.o.now();
    const hit = this.validJwt(key, s, now);
    if (hit && now < hit.issuedAt + (hit.expiresAt - hit.issuedAt) / 2) return hit;
    const backoff = this.jwtBackoff.get(key);
    if (hit && backoff && now < backoff.retryAt) return hit;
    // Revoked or terminally refused: the error. Else the cached one while it is valid.
    const stale = (e: unknown): CachedJwt => {
      const v = this.status.state === 'serving' ? this.validJwt(key, this.status.identity, this.o.now()) : undefined;
      if (!v) throw e;
      return v;
    };
    let refresh: Promise<CachedJwt>;
    try {
      refresh = this.refreshJwt(audiences, key, now);
    } catch (e) {
      return stale(e);
    }
    let got: CachedJwt | undefined;
    try {
      if (!hit) got = await refresh;
      else {
        // A valid one is held: the refresh is waited for JWT_REFRESH_WAIT_MS at most, so that an
        // issuer that does not answer (its handshake may take its whole timeout) does not hold
        // the caller past its deadline; the refresh goes on, and its result is cached.
        refresh.catch(() => {});
        let timer: unknown;
        const late = new Promise<undefined>((resolve) => {
          timer = this.timers.setTimeout(() => resolve(undefined), JWT_REFRESH_WAIT_MS);
        });
        got = await Promise.race([refresh, late]).finally(() => this.timers.clearTimeout(timer));
      }
    } catch (e) {
      return stale(e);
    }
    // Revoked or expired while waiting: serve nothing.
    this.serving();
    return got ?? stale(new SidecarError('ERR_SIDECAR_NOT_SERVING', 'sidecar: the JWT-SVID for this audience expired while it was being renewed'));
  }

  /** The cached JWT-SVID of `key` if it is unexpired and of the SPIFFE ID served. */
  private validJwt(key: string, s: SidecarIdentity, now: number): CachedJwt | undefined {
    const hit = this.jwtCache.get(key);
    return hit && hit.spiffeId === s.spiffeId && now < hit.expiresAt ? hit : undefined;
  }

  /** A handshake for `key`'s JWT-SVID, or the one in flight; the limits are checked before a new one. */
  private refreshJwt(audiences: readonly string[], key: string, now: number): Promise<CachedJwt> {
    const inflight = this.jwtInflight.get(key);
    if (inflight) return inflight;
    if (this.jwtInflight.size >= MAX_JWT_INFLIGHT) throw new SidecarError('ERR_SIDECAR_NOT_SERVING', 'sidecar: too many JWT-SVID requests in flight; retry');
    while (this.jwtHandshakes.length && this.jwtHandshakes[0]! <= now - 60_000) this.jwtHandshakes.shift();
    if (this.jwtHandshakes.length >= MAX_JWT_HANDSHAKES_PER_MINUTE)
      throw new SidecarError('ERR_SIDECAR_NOT_SERVING', `sidecar: more than ${MAX_JWT_HANDSHAKES_PER_MINUTE} new JWT-SVID audiences in a minute; retry later`);
    for (const [k, at] of this.jwtAudiencesThisHour) {
      if (at > now - HOUR_MS) break;
      this.jwtAudiencesThisHour.delete(k);
    }
    const isNew = !this.defaultAudiences.includes(key) && !this.jwtAudiencesThisHour.has(key);
    if (isNew && this.jwtAudiencesThisHour.size >= this.maxNewAudiencesPerHour)
      throw new LimitError(
        `sidecar: JWT-SVIDs for ${this.maxNewAudiencesPerHour} distinct audiences were fetched in the last hour; this new audience is refused until one ages out`,
      );
    if (isNew) this.jwtAudiencesThisHour.set(key, now);
    this.jwtHandshakes.push(now);
    const p = this.fetchJwt(audiences).finally(() => this.jwtInflight.delete(key));
    this.jwtInflight.set(key, p);
    return p;
  }

  private async fetchJwt(audiences: readonly string[]): Promise<CachedJwt> {
    let obtained: Obtained;
    try {
      obtained = await this.obtain(audiences);
    } catch (e) {
      const renewing = this.status.state === 'serving';
      const terminal = terminalRefusal(e, renewing);
      if (renewing && !this.stopped) this.renewalFailures[renewalFailure(e, terminal !== undefined)]++;
      if (terminal) this.revoke(terminal);
      else this.backOffJwt(audiences.join('\n'));
      throw new SidecarError('ERR_SIDECAR_NOT_SERVING', `sidecar: cannot obtain a JWT-SVID for this audience: ${(e as Error).message}`, { cause: e });
    }
    // The handshake renewed the X.509-SVID too (and, by SVID, superseded the one held): serve it.
    const id = this.adopt(obtained);
    if (!id) throw new SidecarError('ERR_SIDECAR_NOT_SERVING', 'sidecar: revoked or stopped while the JWT-SVID was being fetched');
    const t = obtained.jwtSvids.find((j) => j.audience === audiences[0]);
    if (!t) throw new SidecarError('ERR_SIDECAR_NOT_SERVING', 'sidecar: the issuer returned no JWT-SVID for this audience');
    const c = cachedJwt(id.spiffeId, t.token);
    this.remember(audiences.join('\n'), c);
    return c;
  }

  /**
   * One handshake at a time: a renewal by SVID supersedes the SVID it presents, so a second
   * handshake with the same SVID would be refused. `current` is read when this one's turn comes.
   */
  private obtain(jwtAudiences: readonly string[]): Promise<Obtained> {
    const run = this.queue.then(() => {
      const s = this.status;
      if (this.stopped || s.state === 'revoked') throw new SidecarError('ERR_SIDECAR_NOT_SERVING', `sidecar: ${this.stopped ? 'stopped' : 'revoked'}`);
      return this.o.source.obtain({ jwtAudiences, ...(s.state === 'serving' ? { current: s.identity } : {}) });
    });
    this.queue = run.catch(() => {});
    return run;
  }

  private remember(key: string, c: CachedJwt): void {
    this.jwtCache.delete(key);
    this.jwtCache.set(key, c);
    this.jwtBackoff.delete(key);
    while (this.jwtCache.size > MAX_JWT_CACHE_ENTRIES) this.forgetJwt(this.jwtCache.keys().next().value as string);
  }

  private forgetJwt(key: string): void {
    this.jwtCache.delete(key);
    this.jwtBackoff.delete(key);
  }

  private clearJwts(): void {
    this.jwtCache.clear();
    this.jwtBackoff.clear();
  }

  /** A refresh of a cached JWT-SVID failed: the next waits `retryDelay` (only cached audiences are tracked). */
  private backOffJwt(key: string): void {
    if (!this.jwtCache.has(key)) return;
    const failures = (this.jwtBackoff.get(key)?.failures ?? 0) + 1;
    this.jwtBackoff.set(key, { failures, retryAt: this.o.now() + retryDelay(failures - 1, this.random()) });
  }

  private serving(): SidecarIdentity {
    const s = this.status;
    if (s.state === 'serving') return s.identity;
    throw new SidecarError('ERR_SIDECAR_NOT_SERVING', s.state === 'pending' ? 'sidecar: no identity yet' : `sidecar: ${s.state}: ${s.reason}`);
  }

  private set(s: SidecarStatus): void {
    this.status = s;
    for (const l of [...this.listeners]) {
      // A listener changed the status (the guard revoked it): the rest have the newer one already.
      if (this.status !== s) return;
      try {
        l(s);
      } catch (e) {
        this.log(`sidecar: a state listener failed: ${(e as Error).message}`);
      }
    }
  }

  private clearTimers(): void {
    if (this.renewTimer !== undefined) this.timers.clearTimeout(this.renewTimer);
    if (this.expiryTimer !== undefined) this.timers.clearTimeout(this.expiryTimer);
    this.renewTimer = undefined;
    this.expiryTimer = undefined;
  }

  /** One attestation or renewal; schedules the next step either way. */
  private async cycle(): Promise<void> {
    if (this.stopped || this.status.state === 'revoked') return;
    const renewing = this.status.state === 'serving';
    let obtained: Obtained;
    try {
      obtained = await this.obtain(this.defaultAudiences);
    } catch (e) {
      if (this.stopped || (this.status as SidecarStatus).state === 'revoked') return;
      this.failures++;
      // Revoked (or, renewing, the entry gone): retrying cannot succeed and the SVID must not be served on.
      const terminal = terminalRefusal(e, renewing);
      if (renewing) this.renewalFailures[renewalFailure(e, terminal !== undefined)]++;
      if (terminal) {
        this.revoke(terminal);
        return;
      }
      const delay = retryDelay(this.attempt++, this.random());
      this.log(`sidecar: ${renewing ? 'renewal' : 'attestation'} failed (retry in ${delay} ms): ${(e as Error).message}`);
      if (this.status.state === 'pending') this.set({ state: 'pending', reason: (e as Error).message });
      this.schedule(delay);
      return;
    }
    this.adopt(obtained);
  }

  /**
   * Serves a newly obtained identity (a renewal is a change: every stream gets it), schedules its
   * renewal and expiry. Returns undefined, serving nothing, when revoked or stopped meanwhile, or
   * when the revocation screen refuses it (which revokes the sidecar).
   */
  private adopt(obtained: Obtained): SidecarIdentity | undefined {
    const discard = () => {
      if (!obtained.sameKeySession) void obtained.release?.().catch(() => {});
      return undefined;
    };
    if (this.stopped || this.status.state === 'revoked') return discard();
    // Checked against the revocations already known before anything can see it.
    let refused: string | undefined;
    try {
      refused = this.screen(obtained.identity);
    } catch (e) {
      refused = `the new identity could not be checked against revocations (${(e as Error).message})`;
    }
    if (refused !== undefined) {
      this.revoke(refused);
      return discard();
    }
    this.attempt = 0;
    if (this.status.state === 'serving') this.renewals++;
    const previous = this.release;
    if (!obtained.sameKeySession) this.release = obtained.release;
    const id = obtained.identity;
    // JWT-SVIDs of the previous SPIFFE ID are never served for this one.
    for (const [k, v] of this.jwtCache) if (v.spiffeId !== id.spiffeId) this.forgetJwt(k);
    for (const j of obtained.jwtSvids) this.remember(j.audience, cachedJwt(id.spiffeId, j.token));
    this.clearTimers();
    this.set({ state: 'serving', identity: id });
    this.log(`sidecar: serving ${id.spiffeId} until ${new Date(id.notAfter).toISOString()}`);
    // The previous identity's key session, unless the new identity signs through it too.
    if (!obtained.sameKeySession && previous) void previous().catch(() => {});
    this.expiryTimer = this.timers.setTimeout(() => this.expire(id), Math.max(0, id.notAfter - this.o.now()));
    this.schedule(this.nextRenewal(id) - this.o.now());
    return id;
  }

  /** Half the SVID's lifetime (±10%); with a writ, also before the writ ends, never after it. */
  private nextRenewal(id: SidecarIdentity): number {
    let at = renewalAt(id.obtainedAt, id.notAfter, this.random());
    if (id.writExpiresAt !== undefined && id.writExpiresAt > id.obtainedAt) at = Math.min(at, renewalAt(id.obtainedAt, id.writExpiresAt, this.random()));
    return at;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.renewTimer !== undefined) this.timers.clearTimeout(this.renewTimer);
    this.renewTimer = this.timers.setTimeout(
      () => {
        this.renewTimer = undefined;
        void this.cycle();
      },
      Math.max(0, delayMs),
    );
  }

  private expire(id: SidecarIdentity): void {
    this.expiryTimer = undefined;
    const s = this.status;
    if (s.state !== 'serving' || s.identity !== id) return;
    this.clearJwts();
    this.set({ state: 'expired', reason: `the X.509-SVID expired at ${new Date(id.notAfter).toISOString()} and could not be renewed` });
    this.log('sidecar: credentials expired; serving nothing until the issuer answers');
  }
}
