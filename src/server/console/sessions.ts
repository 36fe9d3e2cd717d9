/**
 * Console sessions, held server-side: the cookie carries 256 random bits and nothing else; the
 * server keeps only their SHA-256, so a copy of its memory cannot be replayed as a cookie. A
 * session ends at its absolute expiry (console.session_ttl, from sign-in; never extended),
 * at sign-out, or when the bounded table evicts the oldest. Sessions live in one replica's
 * memory: behind a load balancer, pin a browser to a replica (docs/operations.md §Web console).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Principal } from '../../principal/oidc.js';

/** Name of the session cookie: `__Host-` so it is Secure, host-only and Path=/ (RFC 6265bis §4.1.3.2). */
export const SESSION_COOKIE = '__Host-writ-console';
/** Name of the cookie that binds a sign-in in flight to the browser that started it. */
export const LOGIN_COOKIE = '__Host-writ-login';
/** Sessions held at once; past it the oldest is dropped. */
export const MAX_SESSIONS = 10_000;
/** A cookie value: 43 base64url characters (256 bits). */
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

export interface ConsoleSession {
  readonly principal: Principal;
  readonly operator: boolean;
  /**
   * The ID token of the sign-in, kept here and never sent to the browser: the approval calls
   * present it for the approver (the Approvals logic verifies it again, as on the gRPC port).
   */
  readonly idToken: string;
  readonly createdAt: number;
  readonly expiresAt: number;
}

const digest = (token: string) => createHash('sha256').update(token).digest('base64url');

/** The value of cookie `name` in a Cookie header, or undefined (UNTRUSTED header). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** A `Set-Cookie` value for a host-only, Secure, HttpOnly cookie (Max-Age 0 clears it). */
export function setCookie(name: string, value: string, maxAgeS: number, sameSite: 'Strict' | 'Lax'): string {
  return `${name}=${value}; Path=/; Secure; HttpOnly; SameSite=${sameSite}; Max-Age=${Math.max(0, Math.floor(maxAgeS))}`;
}

export class ConsoleSessions {
  /** By SHA-256 of the cookie value; insertion order is age order. */
  private readonly byDigest = new Map<string, ConsoleSession>();

  constructor(
    readonly ttlMs: number,
    private readonly now: () => number,
    private readonly max = MAX_SESSIONS,
  ) {}

  get size(): number {
    return this.byDigest.size;
  }

  /** A new session, ending at the TTL or when its ID token expires, whichever is first; returns the cookie value and the session. */
  create(principal: Principal, operator: boolean, idToken = '', tokenExpiresAt = Number.POSITIVE_INFINITY): { token: string; session: ConsoleSession } {
    const token = randomBytes(32).toString('base64url');
    const t = this.now();
    const session = { principal, operator, idToken, createdAt: t, expiresAt: Math.min(t + this.ttlMs, tokenExpiresAt) };
    if (this.byDigest.size >= this.max) this.prune();
    while (this.byDigest.size >= this.max) this.byDigest.delete(this.byDigest.keys().next().value!);
    this.byDigest.set(digest(token), session);
    return { token, session };
  }

  /** UNTRUSTED: a cookie value. The live session it names, or undefined (expired ones are forgotten). */
  get(token: string | undefined): ConsoleSession | undefined {
    if (token === undefined || !TOKEN.test(token)) return undefined;
    const d = digest(token);
    const s = this.byDigest.get(d);
    if (!s) return undefined;
    if (this.now() >= s.expiresAt) {
      this.byDigest.delete(d);
      return undefined;
    }
    return s;
  }

  delete(token: string | undefined): void {
    if (token !== undefined && TOKEN.test(token)) this.byDigest.delete(digest(token));
  }

  /** Forgets expired sessions (housekeeping). */
  prune(): void {
    const t = this.now();
    for (const [d, s] of this.byDigest) if (t >= s.expiresAt) this.byDigest.delete(d);
  }
}
