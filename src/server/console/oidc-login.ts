/**
 * The console's OpenID Connect sign-in: authorization code flow with PKCE (OpenID Connect Core
 * §3.1, RFC 7636 S256), state and nonce. The issuer is the relying party: it sends the browser
 * to the provider's authorization endpoint, takes the code back at `/console/callback`, redeems
 * it at the token endpoint (server to server), and verifies the ID token with the principal
 * verifier every other principal token goes through (principal/oidc.ts: issuer, signature,
 * audience = client id, expiry), then checks the nonce it sent. UNTRUSTED: the callback's query
 * and the provider's token answer.
 */
import { createHash, randomBytes } from 'node:crypto';
import { PrincipalError } from '../../errors.js';
import { decodeJws } from '../../jose/jws.js';
import { parseStrictJson } from '../../jose/strict-json.js';
import {
  FETCH_TIMEOUT_MS,
  MAX_TOKEN_BYTES,
  httpFetch,
  isSecureOrLoopback,
  type Fetcher,
  type Principal,
  type PrincipalVerifier,
} from '../../principal/oidc.js';

/** Sign-ins in flight at once (past it the oldest is dropped), and how long one may take. */
export const MAX_PENDING_LOGINS = 1000;
export const LOGIN_TTL_MS = 10 * 60_000;
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

interface Pending {
  readonly verifier: string;
  readonly nonce: string;
  readonly at: number;
}

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
  private readonly pending = new Map<string, Pending>();
  private endpoints?: Endpoints;

  constructor(
    private readonly cfg: LoginConfig,
    private readonly deps: { principals: PrincipalVerifier; now: () => number; fetcher?: Fetcher; post?: typeof fetch },
  ) {}

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

  /** Starts a sign-in: the URL to send the browser to, and the state to bind to it (a cookie). */
  async start(): Promise<{ location: string; state: string }> {
    const ep = await this.discover();
    const t = this.deps.now();
    for (const [k, p] of this.pending) if (t - p.at > LOGIN_TTL_MS) this.pending.delete(k);
    while (this.pending.size >= MAX_PENDING_LOGINS) this.pending.delete(this.pending.keys().next().value!);
    const state = b64u(32);
    const verifier = b64u(32);
    const nonce = b64u(32);
    this.pending.set(state, { verifier, nonce, at: t });
    const u = new URL(ep.authorization);
    u.searchParams.set('response_type', 'code');
    u.searchParams.set('client_id', this.cfg.clientId);
    u.searchParams.set('redirect_uri', this.cfg.redirectUri());
    u.searchParams.set('scope', 'openid');
    u.searchParams.set('state', state);
    u.searchParams.set('nonce', nonce);
    u.searchParams.set('code_challenge', createHash('sha256').update(verifier).digest('base64url'));
    u.searchParams.set('code_challenge_method', 'S256');
    return { location: u.href, state };
  }

  /**
   * UNTRUSTED: the callback's `code` and `state`, and the state the browser's login cookie holds.
   * Redeems the code once and returns the verified principal.
   */
  async finish(q: URLSearchParams, cookieState: string | undefined): Promise<SignedIn> {
    const err = q.get('error');
    if (err !== null) throw new LoginError(`console: the provider refused the sign-in: ${err.slice(0, 64).replace(/[^\x20-\x7e]/g, '?')}`);
    const state = q.get('state') ?? '';
    const code = q.get('code') ?? '';
    if (!/^[A-Za-z0-9_-]{43}$/.test(state) || code === '' || code.length > 2048) throw new LoginError('console: the callback needs a code and a state');
    // The state must be the one this browser was given (login CSRF: someone else's code is refused).
    if (cookieState !== state) throw new LoginError('console: this sign-in was not started in this browser');
    const p = this.pending.get(state);
    this.pending.delete(state);
    if (!p || this.deps.now() - p.at > LOGIN_TTL_MS) throw new LoginError('console: the sign-in expired or was used; start again');
    const idToken = await this.redeem(code, p.verifier);
    const principal = await this.deps.principals.verify(idToken, 'urn:ietf:params:oauth:token-type:id_token');
    if (principal.iss !== this.cfg.issuer) throw new PrincipalError('principal: the ID token is from another issuer than the console signs in with');
    const claims = decodeJws(idToken, ['JWT', undefined], MAX_TOKEN_BYTES).payload;
    if (claims.nonce !== p.nonce) throw new PrincipalError('principal: the ID token does not carry the nonce of this sign-in');
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
