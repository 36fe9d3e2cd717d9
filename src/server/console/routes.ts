/**
 * The console on the HTTPS listener, as routes of its table (http/router.ts):
 * - `GET /console/` the page, `GET /console/assets/<hashed name>` its script and styles;
 * - `GET /console/login[?fresh=1]` starts the OpenID Connect sign-in (its state sealed in a
 *   cookie, oidc-login.ts; `fresh` asks the provider to authenticate again), `GET
 *   /console/callback` ends it and sets the session cookie; both answer 303 (a redirect);
 * - `POST /writ.v1.ConsoleService/<Method>`: the Connect protocol (connect-node), for the
 *   console's typed client. Before a call reaches the service it must pass, in order: the
 *   Connect unary content type (`application/json` or `application/proto`; a cross-site form
 *   cannot send either, and a cross-origin fetch with one needs a preflight this listener never
 *   grants), an `Origin` equal to the console's own origin (CSRF: a page elsewhere cannot make
 *   the browser call with its cookie), then a live session cookie. Bodies are bounded.
 * UNTRUSTED: every request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createContextValues } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { ApprovalService } from '../../gen/writ/v1/approval_pb.js';
import { ConsoleService } from '../../gen/writ/v1/console_pb.js';
import type { Approvals } from '../../issuance/approvals.js';
import { consoleApprovalService } from './approvals.js';
import type { HttpReply, HttpRoute } from '../http/router.js';
import { textReply } from '../http/router.js';
import { LOGIN_TTL_MS, LoginError, type OidcLogin } from './oidc-login.js';
import { isWritError } from '../../errors.js';
import { consoleService, kSession, kSessionToken, type ConsoleServiceDeps } from './service.js';
import { type ConsoleSessions, LOGIN_COOKIE, SESSION_COOKIE, cookieValue, setCookie } from './sessions.js';
import { ASSET_NAME, type ConsoleFiles } from './static.js';
import type { Principal } from '../../principal/oidc.js';

/** Largest Connect request body, bytes (the console's requests are a few ids and a reason). */
export const MAX_CONSOLE_REQUEST_BYTES = 64 * 1024;
/** Where the console lives, and the Connect path prefix of its service. */
export const CONSOLE_PATH = '/console/';
export const CONSOLE_RPC_PREFIX = `/${ConsoleService.typeName}/`;
export const APPROVAL_RPC_PREFIX = `/${ApprovalService.typeName}/`;
/** Content types a console call may carry (Connect unary, JSON or binary). */
const CALL_TYPES = /^application\/(json|proto)\s*(;\s*charset=utf-8\s*)?$/i;

/**
 * The console pages' policy: scripts, styles and calls from this origin only, no inline script
 * or style, no framing, no plugins, forms only to this origin.
 */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export interface ConsoleRoutesDeps extends Omit<ConsoleServiceDeps, 'endSession'> {
  readonly files: ConsoleFiles | undefined;
  readonly login: OidcLogin;
  readonly sessions: ConsoleSessions;
  /** Escalation approvals (absent: the console has no approval pages). */
  readonly approvals?: Approvals;
  /** The console's origin (`https://host:port`), known once the listener is bound. */
  origin(): string;
  /** Whether a signed-in principal is an operator (console.operators). */
  isOperator(p: Principal): boolean;
}

/** A built asset's policy: it is no page (an SVG opened on its own runs nothing, loads nothing). */
export const CONSOLE_ASSET_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";

/**
 * On every console reply, whatever listener serves it (the HTTPS listener sets them too): no
 * content sniffing (a hashed asset is only ever its declared type), no referrer (the callback's
 * URL carries the authorization code and state), no framing.
 */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** index.html: revalidated on every load (it names the current hashed bundles), under the page CSP. */
const page = (body: Buffer): HttpReply => ({
  status: 200,
  headers: {
    ...CONSOLE_HEADERS,
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-cache',
    'content-security-policy': CONSOLE_CSP,
    'cross-origin-opener-policy': 'same-origin',
  },
  body,
});

/** A hashed asset: immutable (a new build has new names), same-origin only. */
const asset = (a: { body: Buffer; type: string }): HttpReply => ({
  status: 200,
  headers: {
    ...CONSOLE_HEADERS,
    'content-type': a.type,
    'cache-control': 'public, max-age=31536000, immutable',
    'content-security-policy': CONSOLE_ASSET_CSP,
    'cross-origin-resource-policy': 'same-origin',
  },
  body: a.body,
});

const redirect = (location: string, cookies: string[]): HttpReply => ({
  status: 303,
  headers: { ...CONSOLE_HEADERS, location, 'cache-control': 'no-store', 'set-cookie': cookies },
});

const text = (status: number, body: string, headers: Record<string, string> = {}): HttpReply => textReply(status, body, { ...CONSOLE_HEADERS, ...headers });

/** A plain-text refusal of a console call, in the Connect error form (JSON) so the client reads its code. */
function refuse(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ code, message });
  res.writeHead(status, {
    ...CONSOLE_HEADERS,
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': String(Buffer.byteLength(body)),
  });
  res.end(body);
}

export function consoleRoutes(d: ConsoleRoutesDeps): HttpRoute[] {
  const handler = connectNodeAdapter({
    routes: (r) => {
      r.service(ConsoleService, consoleService({ ...d, endSession: (t) => d.sessions.delete(t) }));
      if (d.approvals) r.service(ApprovalService, consoleApprovalService({ approvals: d.approvals, logger: d.logger }));
    },
    readMaxBytes: MAX_CONSOLE_REQUEST_BYTES,
    contextValues: (req) => {
      const token = cookieValue(req.headers.cookie as string | undefined, SESSION_COOKIE);
      return createContextValues().set(kSession, d.sessions.get(token)).set(kSessionToken, token);
    },
  });

  const rpcRoute = (path: string, summary: string): HttpRoute => ({
    path,
    prefix: true,
    summary,
    get: () => text(405, 'console calls are POST (Connect unary)', { allow: 'POST' }),
    async node(req: IncomingMessage, res: ServerResponse) {
      if (req.method !== 'POST') return refuse(res, 405, 'invalid_argument', 'console calls are POST (Connect unary)');
      if (!CALL_TYPES.test(req.headers['content-type'] ?? ''))
        return refuse(res, 415, 'invalid_argument', 'console calls are application/json or application/proto');
      // CSRF: the browser names the page that makes the call; only the console's own is served.
      if (req.headers.origin !== d.origin()) return refuse(res, 403, 'permission_denied', 'console calls come from the console origin only');
      if (!d.sessions.get(cookieValue(req.headers.cookie, SESSION_COOKIE))) return refuse(res, 401, 'unauthenticated', 'console: sign in first');
      await new Promise<void>((resolve) => {
        res.once('close', resolve);
        handler(req, res);
      });
    },
  });

  const notBuilt = () => text(503, 'the console is not built: run `make build` (npm run build:console), then restart the issuer');

  return [
    {
      path: '/console',
      summary: 'web console (redirect)',
      get: () => ({ status: 308, headers: { ...CONSOLE_HEADERS, location: CONSOLE_PATH, 'cache-control': 'no-store' } }),
    },
    { path: CONSOLE_PATH, summary: 'web console', get: () => (d.files ? page(d.files.index) : notBuilt()) },
    {
      path: `${CONSOLE_PATH}assets/`,
      prefix: true,
      segment: ASSET_NAME,
      summary: 'web console assets (hashed names, immutable)',
      get(req) {
        const a = d.files?.assets.get(req.param);
        if (!a) return text(404, 'not found');
        return asset(a);
      },
    },
    {
      path: `${CONSOLE_PATH}login`,
      summary: 'web console sign-in (OpenID Connect, authorization code + PKCE)',
      async get(req) {
        // `?fresh=1`: ask the provider to authenticate again (a first passkey needs a recent sign-in).
        const { location, cookie } = await d.login.start({ fresh: new URLSearchParams(req.query).get('fresh') === '1' });
        return redirect(location, [setCookie(LOGIN_COOKIE, cookie, LOGIN_TTL_MS / 1000, 'Lax')]);
      },
    },
    {
      path: `${CONSOLE_PATH}callback`,
      summary: 'web console sign-in callback',
      async get(req) {
        const q = new URLSearchParams(req.query);
        const clear = setCookie(LOGIN_COOKIE, '', 0, 'Lax');
        try {
          const signed = await d.login.finish(q, cookieValue(req.headers.cookie, LOGIN_COOKIE));
          const p = signed.principal;
          const { token, session } = d.sessions.create(p, d.isOperator(p), signed.idToken, signed.expiresAt);
          d.logger.info({ principal: `${p.iss}#${p.sub}`, operator: d.isOperator(p) }, 'console: signed in');
          return redirect(CONSOLE_PATH, [clear, setCookie(SESSION_COOKIE, token, (session.expiresAt - session.createdAt) / 1000, 'Strict')]);
        } catch (e) {
          const msg = e instanceof LoginError || isWritError(e) ? e.message : 'console: sign-in failed';
          d.logger.warn({ err: (e as Error).message }, 'console: sign-in refused');
          const refused = text(403, `${msg}\n\nStart again at ${CONSOLE_PATH}login`);
          return { ...refused, headers: { ...refused.headers, 'set-cookie': [clear] } };
        }
      },
    },
    rpcRoute(CONSOLE_RPC_PREFIX, 'web console API (Connect protocol, writ.v1.ConsoleService)'),
    ...(d.approvals ? [rpcRoute(APPROVAL_RPC_PREFIX, 'web console approvals (Connect protocol, writ.v1.ApprovalService, approver calls)')] : []),
  ];
}
