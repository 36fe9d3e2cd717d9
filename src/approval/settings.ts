/**
 * The `approvals:` section of the server configuration (docs/operations.md §Approvals):
 * the WebAuthn relying party (RP ID and origin the passkeys are bound to) and how long an
 * escalation request waits for an approver.
 */
import type { ConfigSection } from '../config/config.js';

export interface ApprovalSettings {
  /** WebAuthn RP ID; absent: the origin's host. */
  readonly rpId?: string;
  /** The origin approvers' browsers sign for (the console's); absent: the HTTPS listener's URL. */
  readonly origin?: string;
  readonly rpName: string;
  /** How long a request stays pending, ms. */
  readonly requestTtlMs: number;
  /** The Retry-After hint for polling agents, seconds. */
  readonly retryAfterSeconds: number;
  /**
   * How recent the sign-in (the ID token's auth_time) must be to register an approver's first
   * passkey, ms (absent: DEFAULT_REGISTRATION_MAX_AUTH_AGE_MS).
   */
  readonly registrationMaxAuthAgeMs?: number;
  /** Most requests pending at once from one writ (jti), and from one task. */
  readonly maxPendingPerWrit: number;
  readonly maxPendingPerTask: number;
}

/** The first passkey needs a sign-in at most this old (docs/policy.md §Registering a passkey). */
export const DEFAULT_REGISTRATION_MAX_AUTH_AGE = '5m';
export const DEFAULT_REGISTRATION_MAX_AUTH_AGE_MS = 5 * 60_000;
/** Bounds of approvals.registration_max_auth_age: long enough to click through, short enough that a day-old token is useless. */
export const MIN_REGISTRATION_MAX_AUTH_AGE_MS = 30_000;
export const MAX_REGISTRATION_MAX_AUTH_AGE_MS = 3_600_000;

export const DEFAULT_REQUEST_TTL = '15m';
/** Shortest and longest pending time: a human must be able to answer; a forgotten request must die. */
export const MIN_REQUEST_TTL_MS = 30_000;
export const MAX_REQUEST_TTL_MS = 24 * 3_600_000;
/**
 * Pending requests at once: an agent that loops on Escalate must not bury an approver's queue
 * (each request is a row, an audit record and a line on a human's screen). 16 per writ is more
 * than any agent asks a human at once; 256 per task leaves room for a large agent tree.
 */
export const DEFAULT_MAX_PENDING_PER_WRIT = 16;
export const DEFAULT_MAX_PENDING_PER_TASK = 256;
/** The most an operator may raise either to. */
export const MAX_PENDING_CEILING = 10_000;

export const approvalsSection: ConfigSection<ApprovalSettings> = {
  key: 'approvals',
  parse(top) {
    const s = top
      .section('approvals')
      .only(['rp_id', 'rp_name', 'origin', 'request_ttl', 'retry_after', 'registration_max_auth_age', 'max_pending_per_writ', 'max_pending_per_task']);
    const requestTtlMs = s.duration('request_ttl', DEFAULT_REQUEST_TTL);
    if (requestTtlMs < MIN_REQUEST_TTL_MS || requestTtlMs > MAX_REQUEST_TTL_MS)
      s.problem(`approvals.request_ttl must be between ${MIN_REQUEST_TTL_MS / 1000}s and ${MAX_REQUEST_TTL_MS / 3_600_000}h`);
    const retryAfterSeconds = Math.round(s.duration('retry_after', '2s') / 1000);
    if (retryAfterSeconds < 1 || retryAfterSeconds > 60) s.problem('approvals.retry_after must be between 1s and 60s');
    const registrationMaxAuthAgeMs = s.duration('registration_max_auth_age', DEFAULT_REGISTRATION_MAX_AUTH_AGE);
    if (registrationMaxAuthAgeMs < MIN_REGISTRATION_MAX_AUTH_AGE_MS || registrationMaxAuthAgeMs > MAX_REGISTRATION_MAX_AUTH_AGE_MS)
      s.problem('approvals.registration_max_auth_age must be between 30s and 1h');
    const maxPendingPerWrit = s.int('max_pending_per_writ', DEFAULT_MAX_PENDING_PER_WRIT, 1, MAX_PENDING_CEILING);
    const maxPendingPerTask = s.int('max_pending_per_task', DEFAULT_MAX_PENDING_PER_TASK, 1, MAX_PENDING_CEILING);
    if (maxPendingPerWrit > maxPendingPerTask) s.problem('approvals.max_pending_per_writ must not exceed approvals.max_pending_per_task');
    const origin = s.str('origin', '');
    let parsedOrigin: string | undefined;
    if (origin) {
      try {
        const u = new URL(origin);
        if (u.protocol !== 'https:' && !(u.protocol === 'http:' && u.hostname === 'localhost')) throw new Error('must be https (http only for localhost)');
        if (u.origin !== origin.replace(/\/$/, '')) throw new Error('must be an origin: scheme, host and port only');
        parsedOrigin = u.origin;
      } catch (e) {
        s.problem(`approvals.origin ${JSON.stringify(origin.slice(0, 200))}: ${e instanceof TypeError ? 'is not a URL' : (e as Error).message}`);
      }
    }
    const rpId = s.str('rp_id', '');
    if (rpId && !/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(rpId)) s.problem('approvals.rp_id must be a lower-case host name');
    if (rpId && parsedOrigin) {
      const host = new URL(parsedOrigin).hostname;
      if (host !== rpId && !host.endsWith(`.${rpId}`)) s.problem(`approvals.rp_id ${rpId} must be the origin's host or a suffix of it (WebAuthn §5.1.3)`);
    }
    return {
      ...(rpId ? { rpId } : {}),
      ...(parsedOrigin ? { origin: parsedOrigin } : {}),
      rpName: s.str('rp_name', 'writ'),
      requestTtlMs,
      retryAfterSeconds,
      registrationMaxAuthAgeMs,
      maxPendingPerWrit,
      maxPendingPerTask,
    };
  },
};
