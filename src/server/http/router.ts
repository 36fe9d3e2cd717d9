/**
 * The HTTPS listener's route table: each route is a path (exact, or a prefix followed by one
 * segment) and a GET handler; HEAD is answered wherever GET is, without the body. A later
 * capability (the web console) adds a route as one entry of the table.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';

export interface HttpRequest {
  /** The path, as sent (percent-encoding not decoded; routes match it literally). */
  readonly path: string;
  /** The one segment after a prefix route's prefix, else ''. */
  readonly param: string;
  /** The query string after `?` (not decoded), else ''. */
  readonly query: string;
  readonly headers: IncomingHttpHeaders;
  /** The peer's address (for logs and rate limits). */
  readonly peer: string;
}

export interface HttpReply {
  readonly status: number;
  /** Header values; a list for a header sent more than once (`set-cookie`). */
  readonly headers?: Readonly<Record<string, string | readonly string[]>>;
  readonly body?: string | Buffer;
}

export interface HttpRoute {
  /** `/exact/path`, or `/prefix/` with `prefix: true` (matches `/prefix/<one segment>`). */
  readonly path: string;
  readonly prefix?: boolean;
  /** The segments a prefix route accepts (default SEGMENT). */
  readonly segment?: RegExp;
  /** What the route is, for the start-up log. */
  readonly summary: string;
  get(req: HttpRequest): Promise<HttpReply> | HttpReply;
  /**
   * A route that takes other methods and a body (the console's Connect calls): handed the request
   * after the rate limit, with the security headers set; it bounds and reads the body itself.
   */
  node?(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

/** A segment a prefix route accepts: no slash, no dot segment, no percent-encoding, bounded. */
const SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;

/** The route for `path` and the segment it binds, or undefined. */
export function matchRoute(routes: readonly HttpRoute[], path: string): { route: HttpRoute; param: string } | undefined {
  for (const r of routes) {
    if (!r.prefix) {
      if (path === r.path) return { route: r, param: '' };
      continue;
    }
    if (!path.startsWith(r.path)) continue;
    const rest = path.slice(r.path.length);
    if ((r.segment ?? SEGMENT).test(rest)) return { route: r, param: rest };
  }
  return undefined;
}

/** A plain-text reply (errors and refusals): short, never cached. */
export function textReply(status: number, text: string, headers: Record<string, string> = {}): HttpReply {
  return { status, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers }, body: `${text}\n` };
}

/**
 * True when an `Accept` header admits `type` (RFC 9110 §12.5.1): no header, `*` + `/*`, `major/*`
 * or the type itself with a non-zero q.
 */
export function accepts(header: string | undefined, type: string): boolean {
  if (header === undefined || header.trim() === '') return true;
  const major = type.split('/')[0];
  for (const part of header.split(',')) {
    const [range, ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    const q = params.find((p) => /^q\s*=/.test(p));
    if (q !== undefined && Number(q.split('=')[1]) === 0) continue;
    if (range === '*/*' || range === `${major}/*` || range === type) return true;
  }
  return false;
}
