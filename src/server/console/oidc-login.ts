/**
 * The console's OpenID Connect sign-in: authorization code flow with PKCE (OpenID Connect Core
 * §3.1, RFC 7636 S256), state and nonce. The issuer is the relying party: it sends the browser
 * to the provider's authorization endpoint, takes the code back at `/console/callback`, redeems
 * it at the token endpoint (server to server), and verifies the ID token with the principal
 * verifier every other principal token goes through (principal/oidc.ts: issuer, signature,
 * audience = client id, expiry), then checks the nonce it sent. UNTRUSTED: the callback's query
 * and the provider's token answer, and the login cookie.
 *
 * The sign-in in flight is held by the browser, not the issuer: its state, PKCE verifier and
 * nonce travel in the `__Host-writ-login` cookie, sealed (AES-256-GCM) with a key this process
 * draws at start. So the issuer keeps no table an unauthenticated `GET /console/login` could
 * fill: a flood of sign-ins evicts no one else's, and the verifier never leaves the browser's
 * HttpOnly cookie and this process. A restart ends the sign-ins in flight (start again).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { PrincipalError } from '../../errors.js';
import { decodeJws } from '../../jose/jws.js';
import { parseStrictJson } from '../../jose/strict-json.js';
import {
  FETCH_TIMEOUT_MS,
  MAX_TOKEN_BYTES,
  TOKEN_SKEW_S,
  httpFetch,
  isSecureOrLoopback,
  type Fetcher,
  type Principal,
  type PrincipalVerifier,
} from '../../principal/oidc.js';

/** How long a sign-in may take, from /console/login to the callback. */
export const LOGIN_TTL_MS = 10 * 60_000;
/** Longest login cookie value opened (a sealed one is ~300 characters). */
export const MAX_LOGIN_COOKIE_CHARS = 1024;
/** Associated data of a sealed login cookie: a value sealed for something else does not open as one. */
const LOGIN_AAD = Buffer.from('writ-console-login/v1');
/** Largest token endpoint answer read, bytes. */
export const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;

export interface LoginConfig {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret?: string;
  /** `<public url>/console/callback`. */
  redirectUri(): string;
}

/** A verified sign-in: who, the ID token (kept server-side) and when it expires (Unix ms). */
export interface SignedIn {
  readonly principal: Principal;
  readonly idToken: string;
  readonly expiresAt: number;
}

/** A sign-in in flight, as sealed in the login cookie. */
interface Pending {
  /** state, PKCE verifier, nonce (43 base64url characters each). */
  readonly s: string;
  readonly v: string;
  readonly n: string;
  /** When it started, Unix ms. */
  readonly t: number;
  /** A fresh authentication was asked for (prompt=login, max_age=0). */
  readonly f: boolean;
}

const B64U43 = /^[A-Za-z0-9_-]{43}$/;

interface Endpoints {
  readonly authorization: string;
  readonly token: string;
}

const b64u = (n: number) => randomBytes(n).toString('base64url');

/** A sign-in that failed: the message is safe to show (it names the rule, never a token). */
export class LoginError extends Error {
  override readonly name = 'LoginError';
}

export class OidcLogin {
  private endpoints?: Endpoints;
  /** Seals login cookies; never leaves this process. */
  private readonly key: Buffer;

  constructor(
    private readonly cfg: LoginConfig,
    private readonly deps: { principals: PrincipalVerifier; now: () => number; fetcher?: Fetcher; post?: typeof fetch; cookieKey?: Buffer },
  ) {
    this.key = deps.cookieKey ?? randomBytes(32);
    if (this.key.length !== 32) throw new Error('console: the login cookie key is 32 bytes');
  }

  private seal(p: Pending): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(LOGIN_AAD);
    const body = Buffer.concat([c.update(JSON.stringify(p), 'utf8'), c.final()]);
    return Buffer.concat([iv, body, c.getAuthTag()]).toString('base64url');
  }

  /** UNTRUSTED: the login cookie. The sign-in it seals, or undefined (absent, altered, sealed by another process, malformed). */
  private open(cookie: string | undefined): Pending | undefined {
    if (cookie === undefined || cookie.length > MAX_LOGIN_COOKIE_CHARS || !/^[A-Za-z0-9_-]+$/.test(cookie)) return undefined;
    const b = Buffer.from(cookie, 'base64url');
    if (b.length < 12 + 16 + 2) return undefined;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, b.subarray(0, 12));
      d.setAAD(LOGIN_AAD);
      d.setAuthTag(b.subarray(b.length - 16));
      const json = Buffer.concat([d.update(b.subarray(12, b.length - 16)), d.final()]).toString('utf8');
      const p = JSON.parse(json) as Partial<Pending>;
      if (![p.s, p.v, p.n].every((x) => typeof x === 'string' && B64U43.test(x)) || !Number.isSafeInteger(p.t) || typeof p.f !== 'boolean') return undefined;
      return p as Pending;
    } catch {
      return undefined;
    }
  }

  get issuer(): string {
    return this.cfg.issuer;
  }

  /** Discovery (once; retried after a failure): the two endpoints, https or loopback http. */
  private async discover(): Promise<Endpoints> {
    if (this.endpoints) return this.endpoints;
    const base = this.cfg.issuer.replace(/\/$/, '');
    const d = parseStrictJson(await (this.deps.fetcher ?? httpFetch)(`${base}/.well-known/openid-configuration`)) as Record<string, unknown>;
    if (d.issuer !== this.cfg.issuer) throw new LoginError('console: the discovery document names another issuer');
    const url = (v: unknown, what: string): string => {
      if (typeof v !== 'string') throw new LoginError(`console: the provider publishes no ${what}`);
      const u = new URL(v);
      if (!isSecureOrLoopback(u)) throw new LoginError(`console: the provider's ${what} must be https (http only on loopback)`);
      return u.href;
    };
    this.endpoints = { authorization: url(d.authorization_endpoint, 'authorization_endpoint'), token: url(d.token_endpoint, 'token_endpoint') };
    return this.endpoints;
  }

  /**
   * Starts a sign-in: the URL to send the browser to, and the sealed login cookie that binds it
   * to this browser. `fresh` asks the provider to authenticate the human again (prompt=login,
   * max_age=0; OpenID Connect Core §3.1.2.1), as registering a first passkey needs.
   */
  async start(opts: { fresh?: boolean } = {}): Promise<{ location: string; cookie: string; state: string }> {
    const ep = await this.discover();
    const state = b64u(32);
    const verifier = b64u(32);
    const nonce = b64u(32);
    const fresh = opts.fresh === true;
    const cookie = this.seal({ s: state, v: verifier, n: nonce, t: this.deps.now(), f: fresh });
    const u = new URL(ep.authorization);
    u.searchParams.set('response_type', 'code');
    u.searchParams.set('client_id', this.cfg.clientId);
    u.searchParams.set('redirect_uri', this.cfg.redirectUri());
    u.searchParams.set('scope', 'openid');
    u.searchParams.set('state', state);
    u.searchParams.set('nonce', nonce);
    u.searchParams.set('code_challenge', createHash('sha256').update(verifier).digest('base64url'));
    u.searchParams.set('code_challenge_method', 'S256');
    if (fresh) {
      u.searchParams.set('prompt', 'login');
      u.searchParams.set('max_age', '0');
    }
    return { location: u.href, cookie, state };
  }

  /**
   * UNTRUSTED: the callback's `code` and `state`, and the browser's login cookie (sealed by
   * start). Redeems the code (with the cookie's PKCE verifier) and returns the verified principal.
   */
  async finish(q: URLSearchParams, cookie: string | undefined): Promise<SignedIn> {
    const err = q.get('error');
    if (err !== null) throw new LoginError(`console: the provider refused the sign-in: ${err.slice(0, 64).replace(/[^\x20-\x7e]/g, '?')}`);
    const state = q.get('state') ?? '';
    const code = q.get('code') ?? '';
    if (!/^[A-Za-z0-9_-]{43}$/.test(state) || code === '' || code.length > 2048) throw new LoginError('console: the callback needs a code and a state');
    // The state must be the one this browser was given (login CSRF: someone else's code is refused).
    const p = this.open(cookie);
    if (!p || !timingSafeEqual(Buffer.from(p.s), Buffer.from(state))) throw new LoginError('console: this sign-in was not started in this browser');
    const age = this.deps.now() - p.t;
    if (age < 0 || age > LOGIN_TTL_MS) throw new LoginError('console: the sign-in expired; start again');
    const idToken = await this.redeem(code, p.v);
    const principal = await this.deps.principals.verify(idToken, 'urn:ietf:params:oauth:token-type:id_token');
    if (principal.iss !== this.cfg.issuer) throw new PrincipalError('principal: the ID token is from another issuer than the console signs in with');
    const claims = decodeJws(idToken, ['JWT', undefined], MAX_TOKEN_BYTES).payload;
    if (claims.nonce !== p.n) throw new PrincipalError('principal: the ID token does not carry the nonce of this sign-in');
    // A fresh sign-in was asked for: the provider must say it authenticated the human since (§3.1.3.7 step 11).
    if (p.f && (principal.authTime === undefined || principal.authTime < Math.floor(p.t / 1000) - TOKEN_SKEW_S))
      throw new LoginError('console: the provider did not sign you in again (no auth_time after the sign-in began)');
    return { principal, idToken, expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : Number.POSITIVE_INFINITY };
  }

  private async redeem(code: string, verifier: string): Promise<string> {
    const ep = await this.discover();
    const body = new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: this.cfg.redirectUri(),
      client_id: this.cfg.clientId,
      code_verifier: verifier,
    });
    if (this.cfg.clientSecret) body.set('client_secret', this.cfg.clientSecret);
    const res = await (this.deps.post ?? fetch)(ep.token, {
      method: 'POST',
      redirect: 'error',
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: body.toString(),
    });
    const text = await res.text();
    if (text.length > MAX_TOKEN_RESPONSE_BYTES) throw new LoginError('console: the token endpoint answered too much');
    if (!res.ok) throw new LoginError(`console: the token endpoint refused the code (HTTP ${res.status})`);
    let doc: Record<string, unknown>;
    try {
      doc = parseStrictJson(text) as Record<string, unknown>;
    } catch {
      throw new LoginError('console: the token endpoint did not answer JSON');
    }
    if (typeof doc.id_token !== 'string') throw new LoginError('console: the token endpoint gave no id_token');
    return doc.id_token;
  }
}
