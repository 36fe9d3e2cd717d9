/**
 * Principals: humans proven by an OpenID Connect token from an issuer the operator trusts
 * (RFC 8693 token exchange: the token is the subject_token). Keys come from a static JWKS
 * file or from discovery (`/.well-known/openid-configuration` → `jwks_uri`), cached, and
 * refetched when a token names an unknown `kid` (key rotation), at most once per
 * JWKS_MIN_REFRESH_MS. Signatures are checked with Node's crypto through jose/jws.ts.
 * UNTRUSTED input enters in `verify` (the token) and in `IssuerKeys.refresh` (the provider's
 * discovery and JWKS documents: the `jwks_uri` must be https, http only on loopback, and on
 * the issuer's origin or one the operator listed, so a discovery document cannot point the
 * issuer at an internal address such as http://169.254.169.254/).
 * Fetched keys are used at most `maxKeyAgeMs` after the last successful fetch (a provider
 * that cannot be reached cannot revoke a rotated-out key; past that bound, tokens fail).
 */
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { PrincipalError, isWritError } from '../errors.js';
import { decodeJws, publicKeyFromJwk, verifyJws, type DecodedJws } from '../jose/jws.js';
import { parseStrictJson } from '../jose/strict-json.js';

/** Largest token accepted, bytes. */
export const MAX_TOKEN_BYTES = 16 * 1024;
/** Largest discovery or JWKS document fetched, bytes. */
export const MAX_DOCUMENT_BYTES = 256 * 1024;
/** How long fetched keys are used before they are fetched again. */
export const JWKS_TTL_MS = 5 * 60_000;
/** An unknown kid triggers a refetch at most this often per issuer. */
export const JWKS_MIN_REFRESH_MS = 30_000;
/** HTTP timeout for discovery and JWKS fetches. */
export const FETCH_TIMEOUT_MS = 5_000;
/** Clock skew tolerated on exp/nbf/iat, seconds. */
export const TOKEN_SKEW_S = 30;
/** Most groups kept from a token. */
export const MAX_GROUPS = 64;
/**
 * Default longest time keys fetched from a provider are used after the last successful fetch,
 * while the provider cannot be reached: a provider's key rotation (or revocation of a leaked
 * key) must reach writ within this bound. Keys from a static `jwksFile` have no maximum age.
 */
export const DEFAULT_MAX_KEY_AGE_MS = 24 * 3_600_000;

export interface PrincipalIssuerSettings {
  readonly issuer: string;
  readonly audience: string;
  /** A static JWK Set instead of discovery; its keys have no maximum age. */
  readonly jwksFile?: string;
  readonly groupsClaim: string;
  /**
   * Origins (`https://host[:port]`) the discovery document's `jwks_uri` may be on, instead of
   * the issuer's own origin. Absent: only the issuer's origin.
   */
  readonly jwksOrigins?: readonly string[];
  /** Longest use of fetched keys after the last successful fetch (default DEFAULT_MAX_KEY_AGE_MS). */
  readonly maxKeyAgeMs?: number;
}

export interface Principal {
  readonly iss: string;
  readonly sub: string;
  readonly groups: readonly string[];
  /**
   * The token's `auth_time` (OpenID Connect Core §2): when the human last authenticated to the
   * provider, Unix seconds. Absent when the token has none (or not a whole number of seconds).
   * Passkey registration asks for a recent one (issuance/approvals.ts).
   */
  readonly authTime?: number;
}

/** Subject token types accepted (RFC 8693 §3). */
export const SUBJECT_TOKEN_TYPES = ['urn:ietf:params:oauth:token-type:id_token', 'urn:ietf:params:oauth:token-type:jwt'] as const;

export type Fetcher = (url: string) => Promise<string>;

/** 127.0.0.0/8, ::1 or localhost, as a WHATWG URL's `hostname` spells them (IPv6 in brackets). */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** https, or http on a loopback host. */
export function isSecureOrLoopback(u: URL): boolean {
  return u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname));
}

/** Go-style duration text for messages: 86400000 → "24h", 5400000 → "1h30m". */
export function formatDuration(ms: number): string {
  const parts: string[] = [];
  let rest = Math.max(0, Math.round(ms));
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ] as const) {
    if (rest >= size) parts.push(`${Math.floor(rest / size)}${unit}`);
    rest %= size;
  }
  return parts.length ? parts.join('') : '0s';
}

/**
 * GET with a timeout and a size limit; redirects are not followed. The body is streamed and
 * the connection closed as soon as more than MAX_DOCUMENT_BYTES arrived (a Content-Length
 * above the limit is refused before any of the body is read, but never trusted alone: a
 * compressed body is counted as it decompresses). The body must be UTF-8.
 */
export const httpFetch: Fetcher = async (url) => {
  const abort = new AbortController();
  const res = await fetch(url, {
    redirect: 'error',
    signal: AbortSignal.any([abort.signal, AbortSignal.timeout(FETCH_TIMEOUT_MS)]),
    headers: { accept: 'application/json', 'accept-encoding': 'identity' },
  });
  try {
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
    const declared = res.headers.get('content-length');
    if (declared !== null && Number(declared) > MAX_DOCUMENT_BYTES)
      throw new Error(`GET ${url}: Content-Length ${declared.slice(0, 20)} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
    return await readBounded(res.body, url);
  } catch (e) {
    // Closes the connection: an unread or oversized body is never drained.
    abort.abort();
    throw e;
  }
};

async function readBounded(body: ReadableStream<Uint8Array> | null, url: string): Promise<string> {
  if (!body) return '';
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > MAX_DOCUMENT_BYTES) {
      await reader.cancel();
      throw new Error(`GET ${url}: larger than ${MAX_DOCUMENT_BYTES} bytes`);
    }
    chunks.push(value);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new Error(`GET ${url}: body is not UTF-8`);
  }
}

function parseJwks(text: string): Map<string, KeyObject> {
  const doc = parseStrictJson(text) as { keys?: unknown };
  if (typeof doc !== 'object' || doc === null || !Array.isArray(doc.keys)) throw new Error('not a JWK Set');
  const out = new Map<string, KeyObject>();
  for (const k of doc.keys as Array<Record<string, unknown>>) {
    if (typeof k !== 'object' || k === null || typeof k.kid !== 'string') continue; // keys without kid cannot be selected
    if (k.use !== undefined && k.use !== 'sig') continue;
    const { kid, use: _u, alg: _a, key_ops: _o, x5c: _x, x5t: _t, 'x5t#S256': _t2, ...material } = k;
    try {
      out.set(kid as string, publicKeyFromJwk(material));
    } catch {
      // A key type writ does not accept (e.g. an HMAC or OKP key) is skipped, not fatal.
    }
  }
  return out;
}

class IssuerKeys {
  private keys = new Map<string, KeyObject>();
  /** When the last successful fetch ended; -Infinity before the first. */
  private fetchedAt = -Infinity;
  private inflight?: Promise<void>;
  private readonly maxKeyAgeMs: number;
  private readonly jwksOrigins?: readonly string[];

  constructor(
    readonly settings: PrincipalIssuerSettings,
    private readonly fetcher: Fetcher,
    private readonly now: () => number,
    private readonly cooldownMs: number,
  ) {
    this.maxKeyAgeMs = settings.maxKeyAgeMs ?? DEFAULT_MAX_KEY_AGE_MS;
    if (settings.jwksOrigins) this.jwksOrigins = settings.jwksOrigins.map((o) => new URL(o).origin);
    if (settings.jwksFile) {
      this.keys = parseJwks(readFileSync(settings.jwksFile, 'utf8'));
      this.fetchedAt = Infinity;
    }
  }

  /** UNTRUSTED: the discovery document's jwks_uri. Returns the URL to fetch, or throws naming the rule. */
  private jwksUrl(raw: string): string {
    const shown = raw.slice(0, 200);
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new Error(`discovery jwks_uri ${shown} is not an absolute URL`);
    }
    if (!isSecureOrLoopback(u)) throw new Error(`discovery jwks_uri ${shown} must be https (http only on loopback)`);
    if (this.jwksOrigins) {
      if (!this.jwksOrigins.includes(u.origin))
        throw new Error(`discovery jwks_uri ${shown} is not on an origin listed in jwks_origins (${this.jwksOrigins.join(', ')})`);
    } else {
      const own = new URL(this.settings.issuer).origin;
      if (u.origin !== own) throw new Error(`discovery jwks_uri ${shown} is not on the issuer's origin ${own} (list other origins in jwks_origins)`);
    }
    return u.href;
  }

  private async refresh(): Promise<void> {
    if (this.inflight) return this.inflight;
    this.inflight = (async () => {
      const base = this.settings.issuer.replace(/\/$/, '');
      const disco = parseStrictJson(await this.fetcher(`${base}/.well-known/openid-configuration`)) as Record<string, unknown>;
      // OpenID Connect Discovery §4.3: the document's issuer must be exactly the configured one.
      if (disco.issuer !== this.settings.issuer) throw new Error('discovery document names another issuer');
      if (typeof disco.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
      this.keys = parseJwks(await this.fetcher(this.jwksUrl(disco.jwks_uri)));
      this.fetchedAt = this.now();
    })().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  async key(kid: string): Promise<KeyObject | undefined> {
    if (this.settings.jwksFile) return this.keys.get(kid);
    const t = this.now();
    const age = t - this.fetchedAt;
    // Refreshed every JWKS_TTL_MS, and always before the keys would be too old to use.
    const stale = age > Math.min(JWKS_TTL_MS, this.maxKeyAgeMs);
    let failure: Error | undefined;
    if (stale || (!this.keys.has(kid) && age >= this.cooldownMs)) {
      try {
        await this.refresh();
      } catch (e) {
        failure = e as Error;
      }
    }
    // Known keys serve a short outage of the provider; without keys, or past the maximum age
    // since the last successful fetch, verification fails closed.
    if (failure && this.keys.size === 0)
      throw new PrincipalError(`principal: cannot fetch keys of ${this.settings.issuer}: ${failure.message}`, { cause: failure });
    if (t - this.fetchedAt > this.maxKeyAgeMs) {
      throw new PrincipalError(
        `principal: keys of ${this.settings.issuer} are older than max_key_age ${formatDuration(this.maxKeyAgeMs)} and the provider is unreachable: ${failure?.message ?? 'no refresh'}`,
        { cause: failure },
      );
    }
    return this.keys.get(kid);
  }
}

export class PrincipalVerifier {
  private readonly issuers = new Map<string, IssuerKeys>();

  constructor(settings: readonly PrincipalIssuerSettings[], deps: { fetcher?: Fetcher; now: () => number; refetchCooldownMs?: number }) {
    for (const s of settings) this.issuers.set(s.issuer, new IssuerKeys(s, deps.fetcher ?? httpFetch, deps.now, deps.refetchCooldownMs ?? JWKS_MIN_REFRESH_MS));
    this.now = deps.now;
  }
  private readonly now: () => number;

  get configured(): boolean {
    return this.issuers.size > 0;
  }

  /** Verifies a subject token; returns the principal or throws ERR_PRINCIPAL_INVALID. */
  async verify(token: string, tokenType: string): Promise<Principal> {
    const fail = (msg: string): never => {
      throw new PrincipalError(`principal: ${msg}`);
    };
    if (!(SUBJECT_TOKEN_TYPES as readonly string[]).includes(tokenType)) fail(`subject_token_type must be one of ${SUBJECT_TOKEN_TYPES.join(', ')}`);
    if (typeof token !== 'string' || token.length > MAX_TOKEN_BYTES) fail('token too large');
    let d: DecodedJws;
    try {
      // OIDC ID tokens are typed "JWT" or not typed at all.
      d = decodeJws(token, ['JWT', undefined], MAX_TOKEN_BYTES);
    } catch (e) {
      if (isWritError(e)) throw new PrincipalError(`principal: ${e.message}`, { cause: e });
      throw new PrincipalError('principal: token is not a JWS', { cause: e });
    }
    const c = d!.payload;
    if (typeof c.iss !== 'string') fail('token has no iss');
    const issuer = this.issuers.get(c.iss as string);
    if (!issuer) fail(`issuer ${String(c.iss).slice(0, 100)} is not trusted`);
    if (typeof d!.header.kid !== 'string') fail('token header has no kid');
    const key = await issuer!.key(d!.header.kid as string);
    if (!key) fail('token is signed by a key the issuer does not publish');
    if (!verifyJws(d!, key!)) fail('token signature does not verify');
    const aud = typeof c.aud === 'string' ? [c.aud] : Array.isArray(c.aud) ? c.aud : [];
    if (!aud.includes(issuer!.settings.audience)) fail('token is not for this audience');
    const now = Math.floor(this.now() / 1000);
    if (typeof c.exp !== 'number' || c.exp <= now - TOKEN_SKEW_S) fail('token expired or has no exp');
    if (typeof c.nbf === 'number' && c.nbf > now + TOKEN_SKEW_S) fail('token not valid yet');
    if (typeof c.iat === 'number' && c.iat > now + TOKEN_SKEW_S) fail('token issued in the future');
    if (typeof c.sub !== 'string' || c.sub === '' || c.sub.length > 255) fail('token has no valid sub');
    const g = c[issuer!.settings.groupsClaim];
    const groups = Array.isArray(g) ? g.filter((x): x is string => typeof x === 'string' && x.length <= 256).slice(0, MAX_GROUPS) : [];
    const at = c.auth_time;
    return { iss: c.iss as string, sub: c.sub as string, groups, ...(Number.isSafeInteger(at) && (at as number) >= 0 ? { authTime: at as number } : {}) };
  }
}
