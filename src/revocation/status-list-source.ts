/**
 * A relying party's revocation source fed by Token Status Lists (draft-ietf-oauth-status-list
 * §8 Status List Request, §8.3 Validation): `prepare(writ)` fetches the list the writ's
 * `status.status_list.uri` names — https only, the listener's certificate checked against the
 * issuer's X.509 authorities and its SPIFFE ID, no redirects, a bounded streamed body, a
 * timeout — verifies it with the issuer's writ keys (`sub` = that URI), and caches it by URI
 * for min(ttl, maxAge). `check` answers from the cache and throws when it cannot answer (the
 * writ names no list, the list was never fetched, it is older than maxAge, expired, or the
 * index is outside it), so `verifyWrit` fails closed. A saved token can be loaded instead of
 * fetched (`load`). UNTRUSTED input: the fetched or loaded token.
 */
import type { KeyObject } from 'node:crypto';
import { request } from 'node:https';
import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { BoundedCache } from '../cache/bounded.js';
import { RevocationError } from '../errors.js';
import { b64urlDecode, verifyJws } from '../jose/jws.js';
import { marshalX509Pem, type Bundle } from '../spiffe/bundle.js';
import type { Grant } from '../delegation/grant.js';
import type { RevocationSource, RevocationStatus } from '../writ/verify.js';
import { parseWritCached, type WritClaims } from '../writ/writ.js';
import { MAX_STATUS_LIST_TOKEN_BYTES, STATUS, STATUS_LIST_SKEW_S, STATUS_LIST_TYP, verifyStatusListToken, type StatusList } from './status-list.js';

/** Connect, TLS, request and the whole body: past this the fetch is abandoned. */
export const STATUS_LIST_FETCH_TIMEOUT_MS = 5_000;
/** Default oldest list accepted (now − iat): a relying party that cannot refresh stops trusting its copy. */
export const DEFAULT_STATUS_LIST_MAX_AGE_MS = 5 * 60_000;
/** Least time between two fetches of one URI, whatever the token's ttl says. */
export const MIN_STATUS_LIST_REFETCH_MS = 1_000;
/** Lists held at once (one per URI; least recently used dropped). */
export const MAX_STATUS_LIST_URIS = 1024;
/** The SPIFFE ID path of the issuer's listener (server/serving-cert.ts `SERVER_ID_PATH`). */
export const ISSUER_SERVER_ID_PATH = '/writ/server';

const MEDIA_TYPE = `application/${STATUS_LIST_TYP}`;

const bad = (msg: string, cause?: unknown): RevocationError =>
  new RevocationError('ERR_STATUS_LIST_INVALID', `status list: ${msg}`, cause === undefined ? undefined : { cause });
/** The source cannot answer for this writ now (no usable list held): not the writ's fault; the verifier fails closed, an HTTP server answers 503. */
const unavailable = (msg: string): RevocationError => new RevocationError('ERR_REVOCATION_UNAVAILABLE', `status list: ${msg}`);

/** GET of a status list URI: the token text, or a RevocationError. */
export type StatusListFetcher = (uri: string) => Promise<string>;

export interface StatusListTls {
  /** PEM trust anchors for the listener's certificate (the issuer's bundle X.509 authorities). */
  readonly ca: string;
  /**
   * The SPIFFE ID the listener's certificate must carry (`spiffe://<td>/writ/server`, the
   * `https_spiffe` way); absent: the URL's host name is checked (RFC 6125), for a listener
   * behind a proxy with a certificate of its own.
   */
  readonly spiffeId?: string;
  readonly timeoutMs?: number;
}

/**
 * Fetches over https with the rules above. The request sends `Accept: application/statuslist+jwt`
 * and takes only a 200 of that type, uncompressed, at most MAX_STATUS_LIST_TOKEN_BYTES.
 */
export function httpsStatusListFetcher(tls: StatusListTls): StatusListFetcher {
  const timeoutMs = tls.timeoutMs ?? STATUS_LIST_FETCH_TIMEOUT_MS;
  return (uri) =>
    new Promise<string>((resolve, reject) => {
      let u: URL;
      try {
        u = new URL(uri);
      } catch {
        return reject(bad(`${uri.slice(0, 200)} is not a URL`));
      }
      if (u.protocol !== 'https:') return reject(bad(`${uri.slice(0, 200)} is not an https URL`));
      let settled = false;
      const fail = (e: RevocationError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(e);
      };
      const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
      const req = request(
        u,
        {
          method: 'GET',
          headers: { accept: MEDIA_TYPE, 'accept-encoding': 'identity' },
          ca: tls.ca,
          agent: false,
          minVersion: 'TLSv1.2',
          // SNI must not be an IP address (RFC 6066 §3).
          ...(isIP(host) ? { servername: '' } : {}),
          ...(tls.spiffeId ? { checkServerIdentity: spiffeIdentity(tls.spiffeId) } : {}),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status !== 200) {
            res.resume();
            return fail(bad(`GET ${uri}: HTTP ${status}${status >= 300 && status < 400 ? ' (redirects are not followed)' : ''}`));
          }
          const type = String(res.headers['content-type'] ?? '')
            .split(';')[0]!
            .trim()
            .toLowerCase();
          if (type !== MEDIA_TYPE) return fail(bad(`GET ${uri}: content type ${type.slice(0, 80) || '(none)'}, not ${MEDIA_TYPE}`));
          const enc = res.headers['content-encoding'];
          if (enc !== undefined && enc !== 'identity') return fail(bad(`GET ${uri}: content encoding ${String(enc).slice(0, 40)} was not asked for`));
          const declared = Number(res.headers['content-length'] ?? 0);
          if (declared > MAX_STATUS_LIST_TOKEN_BYTES)
            return fail(bad(`GET ${uri}: Content-Length ${declared} is larger than ${MAX_STATUS_LIST_TOKEN_BYTES} bytes`));
          const chunks: Buffer[] = [];
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
            if (n > MAX_STATUS_LIST_TOKEN_BYTES) return fail(bad(`GET ${uri}: larger than ${MAX_STATUS_LIST_TOKEN_BYTES} bytes`));
            chunks.push(c);
          });
          res.on('error', (e) => fail(bad(`GET ${uri}: ${e.message}`, e)));
          res.on('end', () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve(Buffer.concat(chunks).toString('latin1'));
          });
        },
      );
      const timer = setTimeout(() => fail(bad(`GET ${uri}: no complete answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (e) => fail(bad(`GET ${uri}: ${e.message}`, e)));
      req.end();
    });
}

/** TLS identity check by SPIFFE ID (the chain was verified against the trust anchors first). */
function spiffeIdentity(spiffeId: string) {
  const expected = `URI:${spiffeId}`;
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    const sans = (cert.subjectaltname ?? '').split(', ');
    return sans.includes(expected) ? undefined : new Error(`the listener presented ${cert.subjectaltname ?? 'no SAN'}, not ${expected}`);
  };
}

export interface StatusListSourceOptions {
  /** The issuer's writ keys by kid (`use` "writ" in its SPIFFE bundle): lists must be signed by one. */
  readonly writKeys: ReadonlyMap<string, KeyObject>;
  /** The wall clock (nothing in this module reads it itself). */
  readonly now: () => Date;
  /** Oldest list accepted, ms since its `iat` (default 5 min). */
  readonly maxAgeMs?: number;
  /** How lists are fetched (default: `httpsStatusListFetcher(tls)`). */
  readonly fetch?: StatusListFetcher;
  /** For the default fetcher. */
  readonly tls?: StatusListTls;
}

interface Held {
  readonly uri: string;
  readonly iat: number;
  readonly exp?: number;
  readonly ttl?: number;
  readonly list: StatusList;
  /** When it was fetched or loaded here, Unix ms. */
  readonly fetchedAt: number;
  /** Why the last refresh failed, when it did (said when the held list is refused as too old). */
  lastError?: string;
}

export class StatusListSource implements RevocationSource {
  private readonly held = new BoundedCache<string, Held>(MAX_STATUS_LIST_URIS);
  private readonly inflight = new Map<string, Promise<void>>();
  /** Why a URI that is not held failed, for the message of `check`. */
  private readonly failures = new BoundedCache<string, string>(MAX_STATUS_LIST_URIS);
  private readonly fetcher: StatusListFetcher;
  readonly maxAgeMs: number;
  /** Fetches made (tests see the cache work). */
  fetches = 0;

  constructor(private readonly o: StatusListSourceOptions) {
    this.maxAgeMs = o.maxAgeMs ?? DEFAULT_STATUS_LIST_MAX_AGE_MS;
    if (!Number.isFinite(this.maxAgeMs) || this.maxAgeMs < 1000) throw new Error('status list source: maxAgeMs must be at least 1000');
    if (o.fetch) this.fetcher = o.fetch;
    else if (o.tls) this.fetcher = httpsStatusListFetcher(o.tls);
    else throw new Error('status list source: give either fetch or tls');
  }

  /**
   * A source for the issuer of `bundle`: its writ keys sign the lists, its X.509 authorities and
   * its listener's SPIFFE ID authenticate the connection.
   */
  static forBundle(bundle: Bundle, o: { now: () => Date; maxAgeMs?: number; timeoutMs?: number }): StatusListSource {
    return new StatusListSource({
      writKeys: bundle.writAuthorities ?? new Map(),
      now: o.now,
      ...(o.maxAgeMs !== undefined ? { maxAgeMs: o.maxAgeMs } : {}),
      tls: {
        ca: marshalX509Pem(bundle),
        spiffeId: `spiffe://${bundle.trustDomain}${ISSUER_SERVER_ID_PATH}`,
        ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
      },
    });
  }

  /**
   * Makes sure the list `writ` names is held and fresh: fetched unless a copy younger than
   * min(ttl, maxAge) is held. Only for writs signed by one of the writ keys (the URI is the
   * issuer's, not an attacker's); for any other writ nothing is fetched and verifyWrit refuses
   * it on its signature. A failed refresh keeps the held copy (check refuses it once it is older
   * than maxAge) and throws only when there is no usable copy.
   */
  async prepare(writ: string): Promise<void> {
    let claims: WritClaims;
    try {
      const w = parseWritCached(writ);
      const key = this.o.writKeys.get(w.jws.header.kid as string);
      if (!key || !verifyJws(w.jws, key)) return;
      claims = w.claims;
    } catch {
      return;
    }
    const uri = claims.status?.status_list.uri;
    if (uri !== undefined) await this.refresh(uri);
  }

  /** Fetches `uri` unless a fresh copy is held (concurrent callers share one fetch). */
  async refresh(uri: string): Promise<void> {
    const now = this.o.now().getTime();
    const h = this.held.get(uri);
    if (h && now < this.refreshAt(h)) return;
    let p = this.inflight.get(uri);
    if (!p) {
      p = this.fetchOne(uri).finally(() => this.inflight.delete(uri));
      this.inflight.set(uri, p);
    }
    try {
      await p;
    } catch (e) {
      const msg = (e as Error).message;
      const kept = this.held.peek(uri);
      // Said when the held copy is refused as too old, whether it was still usable now or not.
      if (kept) kept.lastError = msg;
      if (kept && this.usable(kept, this.o.now().getTime())) return;
      this.failures.set(uri, msg);
      throw e;
    }
  }

  /** Holds a saved status list token (the `--status-list FILE` form), after verifying it as if fetched from its `sub`. */
  load(token: string): { uri: string; iat: number } {
    const uri = unverifiedSub(token);
    const h = this.accept(uri, token);
    return { uri, iat: h.iat };
  }

  check(writ: { readonly claims: WritClaims; readonly grants: readonly Grant[] }, now: Date): RevocationStatus {
    const ref = writ.claims.status?.status_list;
    if (!ref) throw bad('the writ names no status list (no status claim): a status list cannot say whether it is revoked');
    const h = this.held.get(ref.uri);
    if (!h) {
      const why = this.failures.peek(ref.uri);
      throw unavailable(`${ref.uri} was never fetched${why ? ` (${why})` : ' (prepare the writ, or load a saved list for this URI)'}`);
    }
    const nowMs = now.getTime();
    const source = `status list ${h.uri} issued ${new Date(h.iat * 1000).toISOString()}${h.ttl !== undefined ? ` (ttl ${h.ttl} s)` : ''}`;
    const ageS = Math.floor(nowMs / 1000) - h.iat;
    if (ageS * 1000 > this.maxAgeMs) {
      throw unavailable(
        `${source} is ${ageS} s old; at most ${Math.round(this.maxAgeMs / 1000)} s accepted${h.lastError ? ` (the last refresh failed: ${h.lastError})` : ''}`,
      );
    }
    if (h.exp !== undefined && h.exp <= Math.floor(nowMs / 1000) - STATUS_LIST_SKEW_S) throw unavailable(`${source} has expired`);
    const s = h.list.status(ref.idx);
    if (s === STATUS.VALID) return { revoked: false, source };
    if (s === STATUS.INVALID) return { revoked: true, reason: `status list entry ${ref.idx} is INVALID`, source };
    if (s === STATUS.SUSPENDED) return { revoked: true, reason: `status list entry ${ref.idx} is SUSPENDED`, source };
    throw bad(`entry ${ref.idx} of ${h.uri} has status ${s}, which this relying party does not know`);
  }

  /** When a held list is refetched: after min(ttl, maxAge) from its fetch, sooner if it would be too old by then. */
  private refreshAt(h: Held): number {
    const ttlMs = h.ttl !== undefined ? h.ttl * 1000 : this.maxAgeMs;
    const due = Math.min(h.fetchedAt + Math.min(ttlMs, this.maxAgeMs), h.iat * 1000 + this.maxAgeMs);
    return Math.max(due, h.fetchedAt + MIN_STATUS_LIST_REFETCH_MS);
  }

  private usable(h: Held, nowMs: number): boolean {
    return nowMs - h.iat * 1000 <= this.maxAgeMs && (h.exp === undefined || h.exp > Math.floor(nowMs / 1000) - STATUS_LIST_SKEW_S);
  }

  private async fetchOne(uri: string): Promise<void> {
    this.fetches++;
    const token = await this.fetcher(uri);
    this.accept(uri, token);
  }

  /** Verifies `token` for `uri` and holds it, unless a list issued later is held (a replayed old token cannot undo a revocation). */
  private accept(uri: string, token: string): Held {
    const now = this.o.now();
    const v = verifyStatusListToken(token, { keys: this.o.writKeys, uri, now });
    const prev = this.held.peek(uri);
    if (prev && prev.iat > v.iat) return prev;
    const h: Held = {
      uri,
      iat: v.iat,
      ...(v.exp !== undefined ? { exp: v.exp } : {}),
      ...(v.ttl !== undefined ? { ttl: v.ttl } : {}),
      list: v.list,
      fetchedAt: now.getTime(),
    };
    this.held.set(uri, h);
    this.failures.delete(uri);
    return h;
  }
}

/** The `sub` of a status list token before verification (which then checks it against this very URI). */
function unverifiedSub(token: string): string {
  const parts = typeof token === 'string' ? token.split('.') : [];
  let sub: unknown;
  try {
    sub = (JSON.parse(b64urlDecode(parts[1] ?? '').toString('utf8')) as { sub?: unknown }).sub;
  } catch {
    throw bad('not a status list token (its payload is not JSON)');
  }
  if (parts.length !== 3 || typeof sub !== 'string' || !sub.startsWith('https://')) throw bad('not a status list token with an https sub');
  return sub;
}
