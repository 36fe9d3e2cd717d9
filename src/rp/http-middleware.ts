/**
 * The relying party's HTTP kit (docs/writ-format.md §Presenting a writ over HTTP): a handler
 * with the plain `node:http` signature `(req, res, next?)`, usable as Express middleware and
 * (through `check`) from a Fastify `onRequest` hook, that reads a writ and its proof of
 * possession from the request headers, binds the proof to this request as RFC 9449 (DPoP) binds
 * `htm` and `htu` (here one `htm`: the method, a space, and the target URI built from the
 * configured public URL, never from a header the client controls), verifies with `verifyWrit`
 * (replay cache, revocation source, requirements), and either attaches the verified writ to the
 * request or answers 401 with a `WWW-Authenticate: Writ` challenge that carries an error code and
 * a fixed description, never the verifier's reason (that goes to `onRefused`, for the log).
 * `authorize(action, resource)` then decides an action for a handler. Everything read from the
 * request is UNTRUSTED.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { systemClock, type Clock } from '../clock.js';
import { isWritError } from '../errors.js';
import { MAX_PROOF_BYTES, ProofReplayCache, type ReplayCache } from '../writ/proof.js';
import {
  authorize as decide,
  verifyWrit,
  type RevocationSource,
  type VerifiedWrit,
  type VerifyWritOptions,
  type WritRequirements,
  type WritTrust,
} from '../writ/verify.js';

/** The authentication scheme (RFC 9110 §11): `Authorization: Writ <compact writ>`. */
export const WRIT_SCHEME = 'Writ';
/** The header carrying the proof of possession (compact JWS, `typ` writ-pop+jwt). */
export const PROOF_HEADER = 'Writ-Proof';
/**
 * Largest writ accepted in `Authorization`, bytes. A writ with embedded TPM evidence is up to
 * ~50 KiB; Node's own limit on all headers (16 KiB, `maxHeaderSize`) applies first.
 */
export const MAX_WRIT_HEADER_BYTES = 64 * 1024;
/** Longest `htm` a proof may carry (writ/proof.ts): a longer target URI cannot be presented to. */
export const MAX_HTM_LENGTH = 256;
/** Query parameters that would carry a credential; their presence alone is refused (400). */
export const CREDENTIAL_QUERY_PARAMETERS: readonly string[] = ['writ', 'writ_proof', 'proof', 'access_token'];

/** A request the middleware accepted: the verified writ is on it. */
export type WritRequest = IncomingMessage & { writ?: VerifiedWrit };

export type WritErrorCode = 'invalid_request' | 'invalid_token' | 'invalid_writ_proof' | 'insufficient_scope' | 'temporarily_unavailable' | 'server_error';

/** Why a request is refused, and the whole answer to send. */
export interface WritRefusal {
  readonly status: 400 | 401 | 403 | 500 | 503;
  /** The challenge's `error` (RFC 6750 §3); absent when no writ was presented at all. */
  readonly error?: WritErrorCode;
  /** A fixed text per case; never the verifier's reason. */
  readonly description?: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** The verifier's whole reason, for this server's log only. */
  readonly reason: string;
  /** The writ error code behind it, when there is one. */
  readonly code?: string;
}

export type WritCheck = { readonly ok: true; readonly writ: VerifiedWrit } | { readonly ok: false; readonly refusal: WritRefusal };

export interface WritMiddlewareOptions {
  /** The issuer's trust domain ID and writ keys (its SPIFFE bundle's `use: writ` keys). */
  readonly trust: WritTrust;
  /** This relying party, as proofs name it in `aud`. */
  readonly audience: string;
  /**
   * Where clients reach this server: `https://host[:port][/prefix]` (http only for loopback
   * development). The target URI of every request is built from it and the request path; the
   * `Host` and `Forwarded` headers are never read.
   */
  readonly publicUrl: string;
  /** What this relying party knows of revocations, or `null` to accept not checking them (the report then says so). */
  readonly revocation: RevocationSource | null;
  /** Where proof ids are remembered (default: one in-memory cache for this middleware). */
  readonly replayCache?: ReplayCache;
  readonly requirements?: WritRequirements;
  readonly level?: 'standard' | 'deep';
  readonly reverifiers?: VerifyWritOptions['reverifiers'];
  readonly clock?: Clock;
  /** Told of every refusal with its reason (for the log); the client gets only the code. */
  readonly onRefused?: (refusal: WritRefusal, req: IncomingMessage) => void;
}

/**
 * `(req, res, next?)`: resolves true when the writ was accepted (and `next` called), false when it
 * answered. Asynchronous because a revocation source may have to fetch first (a status list).
 */
export interface WritHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): Promise<boolean>;
  /** Verifies without answering, for frameworks that answer themselves (a Fastify hook). */
  check(req: IncomingMessage): Promise<WritCheck>;
}

const DESCRIPTIONS = {
  invalid_request: 'the request is malformed: one Authorization and one Writ-Proof header, credentials never in the query',
  no_proof: 'a writ is never a bearer token: send its proof of possession in Writ-Proof',
  invalid_proof: 'the Writ-Proof is not valid for this writ, audience, method and URI at this time',
  replayed: 'this Writ-Proof was used before: make a new one for each request',
  revoked: 'the writ is revoked',
  invalid_token: 'the writ is not valid here',
  unavailable: 'this server cannot check revocation right now; retry later',
  server_error: 'internal error',
  deny: 'the writ does not allow this action on this resource',
  escalate: 'this action needs an approval the writ does not carry',
} as const;

function refusal(status: WritRefusal['status'], error: WritErrorCode | undefined, description: string | undefined, reason: string, code?: string): WritRefusal {
  const headers: Record<string, string> = { 'cache-control': 'no-store' };
  if (status === 503) headers['retry-after'] = '1';
  else if (status !== 500) headers['www-authenticate'] = error ? `${WRIT_SCHEME} error="${error}", error_description="${description}"` : WRIT_SCHEME;
  let body = '';
  if (error) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify({ error, error_description: description });
  }
  return { status, ...(error ? { error } : {}), ...(description ? { description } : {}), headers, body, reason, ...(code ? { code } : {}) };
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const AUTH = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?: +(\S+))? *$/;
const UNRESERVED = /^[A-Za-z0-9._~-]$/;

/**
 * RFC 3986 §6.2.2 on a path WHATWG URL has already parsed (dot segments removed, case of scheme
 * and host normalised, default port dropped): percent-encoded unreserved characters decoded,
 * every other escape in upper case. A `%` not followed by two hex digits is refused.
 */
function normalisePath(path: string): string {
  if (/%(?![0-9A-Fa-f]{2})/.test(path)) throw new Error('a % in the path not followed by two hex digits');
  return path.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => {
    const c = String.fromCharCode(Number.parseInt(h, 16));
    return UNRESERVED.test(c) ? c : `%${h.toUpperCase()}`;
  });
}

/** The origin and path prefix of a configured public URL. */
function parsePublicUrl(s: string): { origin: string; prefix: string } {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new Error(`rp: publicUrl ${JSON.stringify(s.slice(0, 100))} is not a URL`);
  }
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) throw new Error('rp: publicUrl must be https (http only on loopback)');
  if (u.username || u.password || u.search || u.hash) throw new Error('rp: publicUrl has no user, query or fragment');
  return { origin: u.origin, prefix: normalisePath(u.pathname.replace(/\/+$/, '')) };
}

/**
 * The `htm` a proof must carry to be presented with `method` at `url`: the method, one space,
 * and the URL's scheme, host, port (when not the default) and normalised path, without query or
 * fragment. Agents call this to make proofs; the middleware computes the same from the request.
 */
export function httpProofMethod(method: string, url: string | URL): string {
  const u = new URL(url);
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('rp: an HTTP proof is for an http(s) URL');
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method)) throw new Error('rp: the method is an HTTP token, e.g. GET');
  return `${method} ${u.origin}${normalisePath(u.pathname)}`;
}

/** One value of a header: undefined when absent, null when given more than once. */
function single(req: IncomingMessage, name: string): string | undefined | null {
  const all = req.headersDistinct?.[name];
  if (all === undefined) {
    const v = req.headers[name];
    return Array.isArray(v) ? null : v;
  }
  return all.length === 1 ? all[0] : null;
}

export function writMiddleware(o: WritMiddlewareOptions): WritHandler {
  const base = parsePublicUrl(o.publicUrl);
  const cache = o.replayCache ?? new ProofReplayCache();
  const clock = o.clock ?? systemClock;

  function refuse(r: WritRefusal, req: IncomingMessage): WritCheck {
    o.onRefused?.(r, req);
    return { ok: false, refusal: r };
  }

  /** What can be decided from the request alone: a refusal, or what to verify. */
  function read(req: IncomingMessage): WritCheck | { readonly ok: 'read'; readonly writ: string; readonly proof: string; readonly method: string } {
    const bad = (reason: string) => refuse(refusal(400, 'invalid_request', DESCRIPTIONS.invalid_request, reason), req);
    const url = req.url ?? '';
    // Origin-form only (RFC 9112 §3.2.1): an absolute-form or asterisk target names no path of ours.
    if (!url.startsWith('/')) return bad(`request target ${JSON.stringify(url.slice(0, 80))} is not origin-form`);
    const q = url.search(/[?#]/);
    const path = q < 0 ? url : url.slice(0, q);
    if (q >= 0 && url[q] === '?') {
      const params = new URLSearchParams(url.slice(q + 1).split('#')[0]);
      const found = CREDENTIAL_QUERY_PARAMETERS.find((p) => params.has(p));
      if (found) return bad(`a credential in the query string (${found}): writs and proofs go in headers only`);
    }
    const auth = single(req, 'authorization');
    const proofHeader = single(req, PROOF_HEADER.toLowerCase());
    if (auth === null) return bad('more than one Authorization header');
    if (proofHeader === null) return bad(`more than one ${PROOF_HEADER} header`);
    if (auth === undefined) return refuse(refusal(401, undefined, undefined, 'no Authorization header'), req);
    const m = AUTH.exec(auth);
    if (!m) return bad('the Authorization header is not a scheme and one credential');
    // Another scheme (Bearer, Basic, DPoP...) presents no writ: the challenge names ours.
    if (m[1]!.toLowerCase() !== WRIT_SCHEME.toLowerCase())
      return refuse(refusal(401, undefined, undefined, `Authorization scheme ${m[1]!.slice(0, 20)} is not ${WRIT_SCHEME}`), req);
    const writ = m[2] ?? '';
    if (writ.length > MAX_WRIT_HEADER_BYTES || !COMPACT_JWS.test(writ)) {
      return refuse(refusal(401, 'invalid_token', DESCRIPTIONS.invalid_token, 'the Authorization credential is not a compact JWS of at most 64 KiB'), req);
    }
    if (proofHeader === undefined || proofHeader === '') {
      return refuse(refusal(401, 'invalid_writ_proof', DESCRIPTIONS.no_proof, `no ${PROOF_HEADER} header: bearer use refused`), req);
    }
    const proof = proofHeader.trim();
    if (proof.length > MAX_PROOF_BYTES || !COMPACT_JWS.test(proof)) {
      return refuse(
        refusal(401, 'invalid_writ_proof', DESCRIPTIONS.invalid_proof, `${PROOF_HEADER} is not a compact JWS of at most ${MAX_PROOF_BYTES} bytes`),
        req,
      );
    }
    let target: string;
    try {
      target = `${base.origin}${normalisePath(new URL(`${base.origin}${base.prefix}${path}`).pathname)}`;
    } catch (e) {
      return bad(`request path: ${(e as Error).message}`);
    }
    return { ok: 'read', writ, proof, method: `${req.method ?? ''} ${target}` };
  }

  async function check(req: IncomingMessage): Promise<WritCheck> {
    const r = read(req);
    if (r.ok !== 'read') return r;
    const { writ, proof, method } = r;
    if (o.revocation?.prepare) {
      // Fetched or refreshed when due (status lists, by their ttl); a failure is check()'s to
      // report: without a usable list it cannot answer, and the request gets 503.
      try {
        await o.revocation.prepare(writ);
      } catch {}
    }
    try {
      const v = verifyWrit({
        writ,
        proof,
        trust: o.trust,
        audience: o.audience,
        method,
        now: clock.now(),
        level: o.level ?? 'standard',
        replayCache: cache,
        ...(o.revocation ? { revocation: o.revocation } : {}),
        ...(o.requirements ? { requirements: o.requirements } : {}),
        ...(o.reverifiers ? { reverifiers: o.reverifiers } : {}),
      });
      return { ok: true, writ: v };
    } catch (e) {
      if (!isWritError(e))
        return refuse(refusal(500, 'server_error', DESCRIPTIONS.server_error, `verifier failed: ${(e as Error)?.message ?? String(e)}`), req);
      const why = `${e.message} (htm expected: ${method.slice(0, 300)})`;
      switch (e.code) {
        case 'ERR_PROOF_REPLAYED':
          return refuse(refusal(401, 'invalid_writ_proof', DESCRIPTIONS.replayed, why, e.code), req);
        case 'ERR_PROOF_INVALID':
          return refuse(refusal(401, 'invalid_writ_proof', DESCRIPTIONS.invalid_proof, why, e.code), req);
        case 'ERR_WRIT_REVOKED':
          return refuse(refusal(401, 'invalid_token', DESCRIPTIONS.revoked, why, e.code), req);
        default:
          // The source could not answer: not the client's fault, and not an answer either (fail closed, 503).
          if ((e.cause as { code?: unknown } | undefined)?.code === 'ERR_REVOCATION_UNAVAILABLE') {
            return refuse(refusal(503, 'temporarily_unavailable', DESCRIPTIONS.unavailable, why, 'ERR_REVOCATION_UNAVAILABLE'), req);
          }
          return refuse(refusal(401, 'invalid_token', DESCRIPTIONS.invalid_token, why, e.code), req);
      }
    }
  }

  const handler = (async (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): Promise<boolean> => {
    const r = await check(req);
    if (!r.ok) {
      send(res, r.refusal);
      return false;
    }
    (req as WritRequest).writ = r.writ;
    next?.();
    return true;
  }) as WritHandler;
  handler.check = check;
  return handler;
}

/** Sends a refusal (the middleware does; a framework's own reply may instead use its fields). */
export function send(res: ServerResponse, r: WritRefusal): void {
  res.writeHead(r.status, r.headers);
  res.end(r.body);
}

export type ActionCheck = { readonly ok: true } | { readonly ok: false; readonly refusal: WritRefusal };

/** Is `action` on `resource` allowed by the writ the middleware attached? 403 when not. */
export function checkAction(req: IncomingMessage, action: string, resource: string): ActionCheck {
  const w = (req as WritRequest).writ;
  if (!w)
    return { ok: false, refusal: refusal(500, 'server_error', DESCRIPTIONS.server_error, 'authorize() ran on a request writMiddleware() did not accept') };
  const a = decide(w, action, resource);
  if (a.decision === 'allow') return { ok: true };
  const d = a.decision === 'escalate' ? DESCRIPTIONS.escalate : DESCRIPTIONS.deny;
  return { ok: false, refusal: refusal(403, 'insufficient_scope', d, `${action} on ${resource.slice(0, 200)}: ${a.decision}`) };
}

/**
 * A handler that lets the request through only when the writ allows `action` on `resource`
 * (a string, or computed from the request, e.g. from a route parameter); 403 otherwise.
 */
export function authorize(
  action: string,
  resource: string | ((req: IncomingMessage) => string),
  o: { readonly onRefused?: (refusal: WritRefusal, req: IncomingMessage) => void } = {},
): (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => boolean {
  return (req, res, next) => {
    const r = checkAction(req, action, typeof resource === 'function' ? resource(req) : resource);
    if (!r.ok) {
      o.onRefused?.(r.refusal, req);
      send(res, r.refusal);
      return false;
    }
    next?.();
    return true;
  };
}
