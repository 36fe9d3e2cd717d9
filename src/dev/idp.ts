/**
 * A development OpenID Connect provider — FOR DEVELOPMENT ONLY. It serves discovery
 * (`<issuer>/.well-known/openid-configuration`, OpenID Connect Discovery 1.0 §4) and a JWK Set
 * (`<issuer>/jwks`, RFC 7517) over plain HTTP on a loopback address, and signs an ID token for
 * any subject it is asked for (`POST <issuer>/token`), with a key generated at start and held
 * in memory only. Anyone who can reach the port can get a token for anyone: trust it in writ
 * only for a walkthrough or tests, never in production. Every token carries `"dev": true`.
 *
 * For the web console it also runs a minimal authorization code flow with PKCE (OpenID Connect
 * Core §3.1, RFC 7636 S256 only): `GET <issuer>/authorize` shows a form, marked FOR DEVELOPMENT
 * ONLY, where you type the subject and groups to sign in as; submitting it redirects to the
 * client's `redirect_uri` (https or http on a loopback host only) with a one-time code, which
 * `POST <issuer>/token` (form-encoded, `grant_type=authorization_code`) redeems for an ID token
 * carrying the request's nonce. The client id must be the audience.
 *
 * Defences that keep it a local tool: it binds only to 127.0.0.0/8, ::1 or localhost; every
 * request must come from a loopback peer and name a loopback host in `Host` (a DNS-rebinding
 * page in a browser names its own host); `POST /token` takes only `application/json` without
 * an `Origin` header (no browser form or cross-site fetch) and at most
 * MAX_TOKEN_REQUEST_BYTES. UNTRUSTED input enters in the request handler.
 */
import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { ConfigError } from '../errors.js';
import { jwkThumbprint, publicJwk, signJws } from '../jose/jws.js';
import { parseStrictJson } from '../jose/strict-json.js';

/** Signing algorithms the development provider can use (its key is made for the one chosen). */
export const DEV_IDP_KEY_TYPES = ['ES256', 'ES384', 'RS256'] as const;
export type DevIdpKeyType = (typeof DEV_IDP_KEY_TYPES)[number];
/** The claim that marks every token of this provider. */
export const DEV_CLAIM = 'dev';
/** Lifetime of a token when the request names none, seconds. */
export const DEFAULT_DEV_TOKEN_TTL_S = 600;
/** Longest token lifetime a request may ask for, seconds. */
export const MAX_DEV_TOKEN_TTL_S = 24 * 3600;
/** Largest `POST /token` body read, bytes. */
export const MAX_TOKEN_REQUEST_BYTES = 4096;
/** Largest `POST /token` answer `requestDevToken` reads, bytes. */
export const MAX_TOKEN_RESPONSE_BYTES = 16 * 1024;
/** Longest subject and group name, characters (what writ's principal verifier keeps). */
export const MAX_SUBJECT_CHARS = 255;
export const MAX_GROUP_CHARS = 256;
/** Most groups in one token. */
export const MAX_DEV_GROUPS = 64;
/** Where `writ dev idp` listens without --listen. */
export const DEFAULT_DEV_IDP_LISTEN = '127.0.0.1:9000';
/** How long an authorization code (and a shown sign-in form) may wait, ms. */
export const DEV_CODE_TTL_MS = 60_000;
export const DEV_FORM_TTL_MS = 10 * 60_000;
/** Codes and forms pending at once (past it the oldest is dropped). */
export const MAX_DEV_PENDING = 1000;
/** HTTP timeout of `requestDevToken`. */
export const DEV_REQUEST_TIMEOUT_MS = 5_000;

export interface DevIdpOptions {
  /** Address to bind: 127.0.0.0/8, ::1 or localhost; anything else is refused. */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Path of the issuer URL, e.g. `/realms/dev` (default: none, the issuer is the origin). */
  readonly issuerPath?: string;
  /** The `aud` of every token (default `writ`). */
  readonly audience?: string;
  /** Default ES256. */
  readonly keyType?: DevIdpKeyType;
  /** Token times (`iat`, `exp`) come from here. */
  readonly clock: { now(): Date };
  /** One line per event: the start (saying FOR DEVELOPMENT ONLY), each token issued. */
  readonly log?: (line: string) => void;
}

export interface DevIdp {
  /** `http://HOST:PORT[issuerPath]`: what writ's `principals[].issuer` must say. */
  readonly issuer: string;
  readonly audience: string;
  readonly alg: DevIdpKeyType;
  /** The `kid` of the current signing key (its RFC 7638 thumbprint). */
  readonly kid: string;
  /** Requests served so far. */
  readonly requests: { readonly discovery: number; readonly jwks: number; readonly token: number; readonly authorize: number };
  /**
   * A signed ID token for `sub`: iss, sub, aud, iat, exp, auth_time (= iat), jti and `"dev": true`, then `claims`
   * over them (which may replace any but `dev`). `header` members replace kid or typ.
   */
  token(sub: string, claims?: Record<string, unknown>, opts?: { ttlSeconds?: number; header?: Record<string, unknown> }): string;
  /** A new signing key replaces the old one in the JWKS, as a provider's rotation does. */
  rotate(): void;
  stop(): Promise<void>;
}

/** A bad token request: the message says what is wrong; over HTTP it is a 4xx answer. */
export class DevIdpRequestError extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = 'DevIdpRequestError';
  }
}

/** 127.0.0.0/8, ::1 (any spelling) or localhost. */
export function isLoopbackAddress(host: string): boolean {
  if (host === 'localhost') return true;
  const v = isIP(host);
  if (v === 4) return host.startsWith('127.');
  if (v === 6) return new URL(`http://[${host}]/`).hostname === '[::1]';
  return false;
}

/** `HOST:PORT` or `[V6]:PORT`, host loopback only. */
export function parseDevListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) throw new ConfigError([`dev idp: --listen ${JSON.stringify(s.slice(0, 100))} must be HOST:PORT, e.g. ${DEFAULT_DEV_IDP_LISTEN}`]);
  const host = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  const problems: string[] = [];
  if (port > 65535) problems.push(`dev idp: port ${port} out of range`);
  if (!isLoopbackAddress(host)) problems.push(loopbackOnly(host));
  if (problems.length) throw new ConfigError(problems);
  return { host, port };
}

const loopbackOnly = (host: string) =>
  `dev idp: ${host.slice(0, 100)} is not a loopback address; the development OIDC provider listens only on 127.0.0.0/8, ::1 or localhost (it gives a token for any subject to anyone who can reach it)`;

function keyPair(alg: DevIdpKeyType): KeyObject {
  if (alg === 'RS256') return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  return generateKeyPairSync('ec', { namedCurve: alg === 'ES256' ? 'prime256v1' : 'secp384r1' }).privateKey;
}

function checkSubject(sub: unknown): string {
  if (typeof sub !== 'string' || sub === '' || sub.length > MAX_SUBJECT_CHARS)
    throw new DevIdpRequestError(`sub must be a string of 1..${MAX_SUBJECT_CHARS} characters`);
  return sub;
}

function checkTtl(ttl: unknown): number {
  if (ttl === undefined) return DEFAULT_DEV_TOKEN_TTL_S;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > MAX_DEV_TOKEN_TTL_S)
    throw new DevIdpRequestError(`ttl must be a whole number of seconds, 1..${MAX_DEV_TOKEN_TTL_S}`);
  return ttl;
}

/**
 * UNTRUSTED: the JSON body of `POST /token`: `{"sub": "alice", "groups": ["eng"], "ttl": 600}`
 * (groups and ttl optional; ttl in seconds).
 */
export function parseTokenRequest(text: string): { sub: string; groups?: string[]; ttlSeconds: number } {
  let v: unknown;
  try {
    v = parseStrictJson(text, 4);
  } catch (e) {
    throw new DevIdpRequestError(`the body is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new DevIdpRequestError('the body must be a JSON object like {"sub":"alice","groups":["eng"]}');
  const r = v as Record<string, unknown>;
  const unknown = Object.keys(r).filter((k) => !['sub', 'groups', 'ttl'].includes(k));
  if (unknown.length) throw new DevIdpRequestError(`unknown member ${unknown[0]!.slice(0, 40)} (use sub, groups, ttl)`);
  const sub = checkSubject(r.sub);
  const ttlSeconds = checkTtl(r.ttl);
  if (r.groups === undefined) return { sub, ttlSeconds };
  const g = r.groups;
  if (!Array.isArray(g) || g.length > MAX_DEV_GROUPS || !g.every((x) => typeof x === 'string' && x !== '' && x.length <= MAX_GROUP_CHARS))
    throw new DevIdpRequestError(`groups must be a list of at most ${MAX_DEV_GROUPS} names of 1..${MAX_GROUP_CHARS} characters`);
  return { sub, groups: g as string[], ttlSeconds };
}

/** An authorization request the development provider accepted (OpenID Connect Core §3.1.2.1). */
export interface AuthorizeRequest {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly state: string;
  readonly nonce: string;
  readonly codeChallenge: string;
}

/**
 * UNTRUSTED: the query of `GET /authorize`. Code flow with PKCE S256 only; the client id must be
 * the audience; the redirect URI must be https or http on a loopback host (a development tool
 * never sends a code off the machine).
 */
export function parseAuthorizeRequest(q: URLSearchParams, audience: string): AuthorizeRequest {
  const one = (k: string, max = 512): string => {
    const v = q.getAll(k);
    if (v.length !== 1 || v[0] === '' || v[0]!.length > max) throw new DevIdpRequestError(`${k} must be given once, 1..${max} characters`);
    return v[0]!;
  };
  if (one('response_type') !== 'code') throw new DevIdpRequestError('response_type must be code');
  if (!one('scope').split(' ').includes('openid')) throw new DevIdpRequestError('scope must include openid');
  const clientId = one('client_id');
  if (clientId !== audience) throw new DevIdpRequestError(`client_id must be ${audience} (the audience of this provider's tokens)`);
  if (one('code_challenge_method') !== 'S256') throw new DevIdpRequestError('code_challenge_method must be S256');
  const codeChallenge = one('code_challenge');
  if (!/^[A-Za-z0-9_-]{43}$/.test(codeChallenge)) throw new DevIdpRequestError('code_challenge must be a base64url SHA-256');
  const redirectUri = one('redirect_uri', 2048);
  let u: URL;
  try {
    u = new URL(redirectUri);
  } catch {
    throw new DevIdpRequestError('redirect_uri must be an absolute URL');
  }
  const name = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if ((u.protocol !== 'https:' && u.protocol !== 'http:') || !isLoopbackAddress(name) || u.hash || u.username || u.password)
    throw new DevIdpRequestError('redirect_uri must be https (or http) on a loopback host: this provider never sends a code off the machine');
  const nonce = q.get('nonce') ?? '';
  if (nonce.length > 256) throw new DevIdpRequestError('nonce is longer than 256 characters');
  return { clientId, redirectUri, state: one('state', 256), nonce, codeChallenge };
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The sign-in form: no script, no style, nothing loaded. */
function signInPage(issuer: string, id: string, a: AuthorizeRequest): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Development sign-in — FOR DEVELOPMENT ONLY</title></head>
<body>
<h1>FOR DEVELOPMENT ONLY</h1>
<p><strong>This development OpenID Connect provider signs anyone in as anyone.</strong> Never trust it outside a walkthrough or a test.</p>
<p>Signing in to <code>${escapeHtml(a.redirectUri)}</code> (client <code>${escapeHtml(a.clientId)}</code>) at <code>${escapeHtml(issuer)}</code>.</p>
<form method="post" action="${escapeHtml(issuer)}/authorize">
<input type="hidden" name="request" value="${escapeHtml(id)}">
<p><label for="sub">Subject</label><br><input id="sub" name="sub" required maxlength="${MAX_SUBJECT_CHARS}" autocomplete="username" value="alice"></p>
<p><label for="groups">Groups (comma-separated)</label><br><input id="groups" name="groups" maxlength="4096" value=""></p>
<p><button type="submit">Sign in (development)</button></p>
</form>
</body></html>
`;
}

/** Starts the provider; resolves once it listens. */
export async function startDevIdp(opts: DevIdpOptions): Promise<DevIdp> {
  const problems: string[] = [];
  if (!isLoopbackAddress(opts.host)) problems.push(loopbackOnly(opts.host));
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) problems.push(`dev idp: port ${opts.port} out of range`);
  const path = opts.issuerPath ?? '';
  if (path !== '' && !/^(\/[A-Za-z0-9._~-]+)+$/.test(path)) problems.push('dev idp: issuerPath must look like /realms/dev (no trailing slash)');
  const alg = opts.keyType ?? 'ES256';
  if (!DEV_IDP_KEY_TYPES.includes(alg)) problems.push(`dev idp: keyType must be one of ${DEV_IDP_KEY_TYPES.join(', ')}`);
  const audience = opts.audience ?? 'writ';
  if (audience === '') problems.push('dev idp: audience must not be empty');
  if (problems.length) throw new ConfigError(problems);

  let key = keyPair(alg);
  let kid = jwkThumbprint(key);
  const requests = { discovery: 0, jwks: 0, token: 0, authorize: 0 };
  /** Sign-in forms shown (by a random id) and codes given, each waiting once. */
  const forms = new Map<string, AuthorizeRequest & { at: number }>();
  const codes = new Map<string, AuthorizeRequest & { at: number; sub: string; groups: string[] }>();
  const remember = <V>(m: Map<string, V>, v: V): string => {
    while (m.size >= MAX_DEV_PENDING) m.delete(m.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    m.set(id, v);
    return id;
  };
  let issuer = '';
  let port = 0;

  const token: DevIdp['token'] = (sub, claims = {}, o = {}) => {
    checkSubject(sub);
    const ttl = checkTtl(o.ttlSeconds);
    const iat = Math.floor(opts.clock.now().getTime() / 1000);
    // auth_time: the provider has no sessions, so every token follows a fresh "authentication" (a
    // form answered, or a token asked for); a caller may replace it (or drop it with undefined).
    const payload = {
      iss: issuer,
      sub,
      aud: audience,
      iat,
      exp: iat + ttl,
      auth_time: iat,
      jti: randomBytes(12).toString('base64url'),
      ...claims,
      [DEV_CLAIM]: true,
    };
    return signJws({ alg, typ: 'JWT', kid, ...o.header }, payload, key);
  };

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(`${JSON.stringify(body)}\n`);
  };
  const text = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
    res.end(`${body}\n`);
  };

  /** The Host header must name a loopback host and this port (DNS rebinding gives another name). */
  const hostOk = (h: string | undefined): boolean => {
    if (!h) return false;
    try {
      const u = new URL(`http://${h}/`);
      const name = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
      return isLoopbackAddress(name) && Number(u.port || 80) === port;
    } catch {
      return false;
    }
  };

  const readBody = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > MAX_TOKEN_REQUEST_BYTES) return reject(new DevIdpRequestError(`the body is larger than ${MAX_TOKEN_REQUEST_BYTES} bytes`, 413));
      const chunks: Buffer[] = [];
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        if (n > MAX_TOKEN_REQUEST_BYTES) {
          req.removeAllListeners('data');
          req.pause();
          reject(new DevIdpRequestError(`the body is larger than ${MAX_TOKEN_REQUEST_BYTES} bytes`, 413));
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => {
        try {
          resolve(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)));
        } catch {
          reject(new DevIdpRequestError('the body is not UTF-8'));
        }
      });
      req.on('error', reject);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!isLoopbackAddress(req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '')) return text(res, 403, 'loopback clients only');
    if (!hostOk(req.headers.host)) return text(res, 403, 'the Host header must name this loopback address and port');
    const url = new URL(req.url ?? '/', issuer);
    const route = url.pathname.startsWith(path) ? url.pathname.slice(path.length) : undefined;
    if (route === '/.well-known/openid-configuration' || route === '/jwks') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'use GET', { allow: 'GET, HEAD' });
      if (route === '/jwks') {
        requests.jwks++;
        return json(res, 200, { keys: [{ ...publicJwk(key), kid, use: 'sig', alg }] });
      }
      requests.discovery++;
      return json(res, 200, {
        issuer,
        jwks_uri: `${issuer}/jwks`,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        response_types_supported: ['code', 'id_token'],
        grant_types_supported: ['authorization_code'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['none'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: [alg],
        claims_supported: ['iss', 'sub', 'aud', 'iat', 'exp', 'auth_time', 'jti', 'nonce', 'groups', DEV_CLAIM],
        writ_dev_token_endpoint: `${issuer}/token`,
        writ_dev: 'FOR DEVELOPMENT ONLY: this provider signs a token for any subject',
      });
    }
    if (route === '/authorize') {
      requests.authorize++;
      if (req.method === 'GET') {
        const a = parseAuthorizeRequest(url.searchParams, audience);
        const id = remember(forms, { ...a, at: opts.clock.now().getTime() });
        const formAction = `'self' ${new URL(a.redirectUri).origin}`;
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          'content-security-policy': `default-src 'none'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
          'x-frame-options': 'DENY',
          'x-content-type-options': 'nosniff',
        });
        res.end(signInPage(issuer, id, a));
        return;
      }
      if (req.method !== 'POST') return text(res, 405, 'use GET (the form) or POST (its answer)', { allow: 'GET, POST' });
      // The form is this page's own: a page elsewhere cannot sign a browser in as someone.
      if (req.headers.origin !== new URL(issuer).origin) return text(res, 403, 'the sign-in form is answered from this provider only');
      if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(req.headers['content-type'] ?? '')) return text(res, 415, 'the body must be a form');
      const f = new URLSearchParams(await readBody(req));
      const id = f.get('request') ?? '';
      const a = forms.get(id);
      forms.delete(id);
      if (!a || opts.clock.now().getTime() - a.at > DEV_FORM_TTL_MS)
        throw new DevIdpRequestError('this sign-in form expired or was used; start the sign-in again');
      const sub = checkSubject((f.get('sub') ?? '').trim());
      const groups = (f.get('groups') ?? '')
        .split(',')
        .map((g) => g.trim())
        .filter((g) => g !== '');
      if (groups.length > MAX_DEV_GROUPS || groups.some((g) => g.length > MAX_GROUP_CHARS))
        throw new DevIdpRequestError(`at most ${MAX_DEV_GROUPS} groups of 1..${MAX_GROUP_CHARS} characters`);
      const code = remember(codes, { ...a, at: opts.clock.now().getTime(), sub, groups });
      const back = new URL(a.redirectUri);
      back.searchParams.set('code', code);
      back.searchParams.set('state', a.state);
      opts.log?.(`writ dev idp: signed a browser in as ${JSON.stringify(sub)}${groups.length ? ` (groups ${groups.join(', ')})` : ''} for ${a.redirectUri}`);
      res.writeHead(303, { location: back.href, 'cache-control': 'no-store' });
      res.end();
      return;
    }
    if (route === '/token') {
      if (req.method !== 'POST') return text(res, 405, 'use POST with {"sub":"alice","groups":["eng"]}', { allow: 'POST' });
      if (req.headers.origin !== undefined) return text(res, 403, 'tokens are for command-line clients; browsers (an Origin header) are refused');
      if (/^application\/x-www-form-urlencoded\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
        // RFC 6749 §4.1.3 with RFC 7636 §4.5: one code, once, for the client, redirect and verifier it was given for.
        const f = new URLSearchParams(await readBody(req));
        if (f.get('grant_type') !== 'authorization_code') return json(res, 400, { error: 'unsupported_grant_type' });
        const code = f.get('code') ?? '';
        const c = codes.get(code);
        codes.delete(code);
        const verifier = f.get('code_verifier') ?? '';
        const ok =
          c !== undefined &&
          opts.clock.now().getTime() - c.at <= DEV_CODE_TTL_MS &&
          f.get('client_id') === c.clientId &&
          f.get('redirect_uri') === c.redirectUri &&
          /^[A-Za-z0-9._~-]{43,128}$/.test(verifier) &&
          createHash('sha256').update(verifier).digest('base64url') === c.codeChallenge;
        if (!ok)
          return json(res, 400, {
            error: 'invalid_grant',
            error_description: 'unknown, used or expired code, or another client, redirect_uri or code_verifier',
          });
        const t = token(
          c.sub,
          { ...(c.groups.length ? { groups: c.groups } : {}), ...(c.nonce ? { nonce: c.nonce } : {}), auth_time: Math.floor(c.at / 1000) },
          { ttlSeconds: DEFAULT_DEV_TOKEN_TTL_S },
        );
        requests.token++;
        return json(res, 200, { id_token: t, token_type: 'Bearer', expires_in: DEFAULT_DEV_TOKEN_TTL_S });
      }
      if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) return text(res, 415, 'the body must be application/json');
      const r = parseTokenRequest(await readBody(req));
      const t = token(r.sub, r.groups ? { groups: r.groups } : {}, { ttlSeconds: r.ttlSeconds });
      requests.token++;
      opts.log?.(
        `writ dev idp: issued a development ID token for ${JSON.stringify(r.sub)}${r.groups ? ` (groups ${r.groups.join(', ')})` : ''}, valid ${r.ttlSeconds} s`,
      );
      res.writeHead(200, { 'content-type': 'application/jwt', 'cache-control': 'no-store' });
      res.end(`${t}\n`);
      return;
    }
    return text(
      res,
      404,
      `not found; this development OIDC provider serves GET ${issuer}/.well-known/openid-configuration, GET ${issuer}/jwks, GET ${issuer}/authorize, POST ${issuer}/token`,
    );
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (e instanceof DevIdpRequestError) {
        text(res, e.status, e.message, { connection: 'close' });
        if (e.status === 413) res.on('finish', () => req.socket.destroy());
      } else text(res, 500, 'internal error');
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  // `localhost` resolves through the system; what was bound must still be loopback.
  if (typeof a !== 'object' || a === null || !isLoopbackAddress(a.address)) {
    await new Promise<void>((r) => server.close(() => r()));
    throw new ConfigError([loopbackOnly(typeof a === 'object' && a ? a.address : String(a))]);
  }
  port = a.port;
  const hostPart = opts.host === 'localhost' ? 'localhost' : isIP(opts.host) === 6 ? `[${opts.host}]` : opts.host;
  issuer = `http://${hostPart}:${port}${path}`;
  opts.log?.(`writ dev idp: FOR DEVELOPMENT ONLY: an OpenID Connect provider that gives an ID token for any subject to anyone who can reach ${issuer}`);

  return {
    issuer,
    audience,
    alg,
    get kid() {
      return kid;
    },
    requests,
    token,
    rotate() {
      key = keyPair(alg);
      kid = jwkThumbprint(key);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** `writ dev idp` arguments, as the CLI parsed them. */
export interface DevIdpCommand {
  /** HOST:PORT (default DEFAULT_DEV_IDP_LISTEN); loopback only. */
  readonly listen?: string;
  readonly audience?: string;
  readonly keyType?: string;
  readonly issuerPath?: string;
}

/**
 * `writ dev idp`: starts the provider, prints its issuer URL on stdout and how to use it on
 * stderr (saying FOR DEVELOPMENT ONLY), and serves until `signal` aborts or, without a signal,
 * until SIGINT or SIGTERM.
 */
export async function runDevIdp(
  cmd: DevIdpCommand,
  deps: { clock: { now(): Date }; stdout: (s: string) => void; stderr: (s: string) => void; signal?: AbortSignal },
): Promise<void> {
  const { host, port } = parseDevListen(cmd.listen ?? DEFAULT_DEV_IDP_LISTEN);
  const keyType = cmd.keyType ?? 'ES256';
  if (!(DEV_IDP_KEY_TYPES as readonly string[]).includes(keyType))
    throw new ConfigError([`dev idp: --key-type must be one of ${DEV_IDP_KEY_TYPES.join(', ')}`]);
  const idp = await startDevIdp({
    host,
    port,
    audience: cmd.audience ?? 'writ',
    keyType: keyType as DevIdpKeyType,
    ...(cmd.issuerPath ? { issuerPath: cmd.issuerPath } : {}),
    clock: deps.clock,
    log: (line) => deps.stderr(`${line}\n`),
  });
  deps.stderr(
    `  issuer    ${idp.issuer}\n` +
      `  audience  ${idp.audience}\n` +
      `  key       ${idp.alg}, kid ${idp.kid} (made now, kept in memory only)\n` +
      `  writ.yaml principals: [{ issuer: ${idp.issuer}, audience: ${idp.audience} }]\n` +
      `  a token   writ dev idp token --issuer ${idp.issuer} --sub alice --groups eng > alice.jwt\n` +
      `            (or curl -s -X POST ${idp.issuer}/token -H 'content-type: application/json' -d '{"sub":"alice","groups":["eng"]}')\n`,
  );
  deps.stdout(`${idp.issuer}\n`);
  await new Promise<void>((resolve) => {
    if (deps.signal) {
      if (deps.signal.aborted) return resolve();
      deps.signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await idp.stop();
  deps.stderr('writ dev idp: stopped\n');
}

/** `writ dev idp token` arguments, as the CLI parsed them (`--ttl` already in seconds). */
export interface DevTokenCommand {
  /** The running provider's issuer URL (loopback only). */
  readonly issuer: string;
  readonly sub: string;
  /** Comma-separated group names, e.g. `eng,ops`. */
  readonly groups?: string;
  readonly ttlSeconds?: number;
}

/** Nothing answered at the provider's address: `refused` when nothing listens there (yet). */
export class DevIdpUnreachableError extends Error {
  constructor(
    message: string,
    readonly refused: boolean,
  ) {
    super(message);
    this.name = 'DevIdpUnreachableError';
  }
}

/** Why fetch could not reach the provider, in words (undici's own text is "fetch failed"). */
function unreachable(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code === 'ECONNREFUSED') return 'connection refused (is `writ dev idp` running there?)';
  if (cause?.code === 'ECONNRESET') return 'the connection was reset';
  if ((e as Error).name === 'TimeoutError') return `no answer within ${DEV_REQUEST_TIMEOUT_MS / 1000} s`;
  return cause?.message ?? (e as Error).message;
}

/** `writ dev idp token`: asks a running development provider for an ID token and returns it. */
export async function requestDevToken(cmd: DevTokenCommand): Promise<string> {
  let u: URL;
  try {
    u = new URL(cmd.issuer);
  } catch {
    throw new ConfigError([`dev idp: --issuer ${JSON.stringify(cmd.issuer.slice(0, 100))} is not a URL`]);
  }
  const name = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (u.protocol !== 'http:' || !isLoopbackAddress(name) || u.search || u.hash || u.username || u.password)
    throw new ConfigError([`dev idp: --issuer must be the http://127.0.0.1:PORT URL a development provider printed (loopback only)`]);
  const body: Record<string, unknown> = { sub: cmd.sub };
  if (cmd.groups !== undefined)
    body.groups = cmd.groups
      .split(',')
      .map((g) => g.trim())
      .filter((g) => g !== '');
  if (cmd.ttlSeconds !== undefined) body.ttl = cmd.ttlSeconds;
  let res: Response;
  try {
    res = await fetch(`${u.href.replace(/\/$/, '')}/token`, {
      method: 'POST',
      redirect: 'error',
      signal: AbortSignal.timeout(DEV_REQUEST_TIMEOUT_MS),
      headers: { 'content-type': 'application/json', accept: 'application/jwt' },
      body: JSON.stringify(body),
    });
  } catch (e) {
    const why = unreachable(e);
    throw new DevIdpUnreachableError(`dev idp: cannot reach ${u.href}: ${why}`, why.startsWith('connection refused'));
  }
  const reply = await readReply(res);
  if (!res.ok) throw new Error(`dev idp: ${u.href} answered HTTP ${res.status}: ${reply.trim().slice(0, 300)}`);
  const token = reply.trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) throw new Error(`dev idp: ${u.href} did not answer with a compact JWS`);
  return token;
}

async function readReply(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > MAX_TOKEN_RESPONSE_BYTES) {
      await reader.cancel();
      throw new Error(`dev idp: the answer is larger than ${MAX_TOKEN_RESPONSE_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
