/**
 * The console's routes on their own (src/server/console/routes.ts), without the HTTPS listener
 * that also sets security headers: every reply the console makes carries nosniff, no-referrer
 * and no framing itself; the page is revalidated under the page CSP, a hashed asset is immutable
 * under an asset CSP that lets it run nothing, and the sign-in redirects are never stored.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { PrincipalVerifier } from '../../src/principal/oidc.js';
import { OidcLogin } from '../../src/server/console/oidc-login.js';
import { CONSOLE_CSP, type ConsoleRoutesDeps, consoleRoutes } from '../../src/server/console/routes.js';
import { ConsoleSessions } from '../../src/server/console/sessions.js';
import { matchRoute, type HttpReply, type HttpRoute } from '../../src/server/http/router.js';

const ISSUER = 'https://idp.example.com';
const discovery = JSON.stringify({ issuer: ISSUER, authorization_endpoint: `${ISSUER}/authorize`, token_endpoint: `${ISSUER}/token` });

function routes(over: Partial<ConsoleRoutesDeps> = {}): HttpRoute[] {
  const now = () => Date.now();
  const login = new OidcLogin(
    { issuer: ISSUER, clientId: 'writ', redirectUri: () => 'https://writ.example:8444/console/callback' },
    { principals: new PrincipalVerifier([], { now }), now, fetcher: async () => discovery },
  );
  return consoleRoutes({
    files: {
      index: Buffer.from('<!doctype html><script type="module" src="/console/assets/index-abc123.js"></script>'),
      assets: new Map([
        ['index-abc123.js', { body: Buffer.from('console.log(1)'), type: 'text/javascript; charset=utf-8' }],
        ['logo-def456.svg', { body: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), type: 'image/svg+xml' }],
      ]),
    },
    login,
    sessions: new ConsoleSessions(15 * 60_000, now),
    origin: () => 'https://writ.example:8444',
    isOperator: () => false,
    store: {} as ConsoleRoutesDeps['store'],
    ca: { trustDomain: 'example.org' } as ConsoleRoutesDeps['ca'],
    audit: {} as ConsoleRoutesDeps['audit'],
    revocations: {} as ConsoleRoutesDeps['revocations'],
    logger: pino({ level: 'silent' }),
    now,
    version: 'test',
    datastore: 'sqlite',
    ...over,
  });
}

async function get(rs: HttpRoute[], path: string, query = '', headers: Record<string, string> = {}): Promise<HttpReply> {
  const m = matchRoute(rs, path);
  if (!m) throw new Error(`no route for ${path}`);
  return m.route.get({ path, param: m.param, query, headers, peer: '127.0.0.1' });
}

const h = (r: HttpReply, name: string) => r.headers?.[name];

describe('console replies carry their own security headers', () => {
  const rs = routes();

  it.each([
    '/console',
    '/console/',
    '/console/assets/index-abc123.js',
    '/console/assets/logo-def456.svg',
    '/console/assets/nope-000.js',
    '/console/login',
    '/console/callback',
  ])('%s: nosniff, no referrer, no framing', async (path) => {
    const r = await get(rs, path);
    expect(h(r, 'x-content-type-options')).toBe('nosniff');
    expect(h(r, 'referrer-policy')).toBe('no-referrer');
    expect(h(r, 'x-frame-options')).toBe('DENY');
  });

  it('the page: the page CSP, revalidated on every load, its own browsing context group', async () => {
    const r = await get(rs, '/console/');
    expect(h(r, 'content-security-policy')).toBe(CONSOLE_CSP);
    expect(h(r, 'cache-control')).toBe('no-cache');
    expect(h(r, 'cross-origin-opener-policy')).toBe('same-origin');
    expect(h(r, 'content-type')).toBe('text/html; charset=utf-8');
  });

  it('a hashed asset: its type, immutable for a year, a CSP that runs and loads nothing, same-origin only', async () => {
    for (const name of ['index-abc123.js', 'logo-def456.svg']) {
      const r = await get(rs, `/console/assets/${name}`);
      expect(r.status).toBe(200);
      expect(h(r, 'cache-control')).toBe('public, max-age=31536000, immutable');
      expect(h(r, 'content-security-policy')).toBeDefined();
      expect(String(h(r, 'content-security-policy'))).toContain("default-src 'none'");
      expect(h(r, 'cross-origin-resource-policy')).toBe('same-origin');
    }
    expect(h(await get(rs, '/console/assets/logo-def456.svg'), 'content-type')).toBe('image/svg+xml');
  });

  it('an unknown asset, the sign-in redirect and a refused callback are never stored', async () => {
    expect(h(await get(rs, '/console/assets/nope-000.js'), 'cache-control')).toBe('no-store');
    const login = await get(rs, '/console/login');
    expect(login.status).toBe(303);
    expect(h(login, 'cache-control')).toBe('no-store');
    const cb = await get(rs, '/console/callback', 'code=x&state=y');
    expect(cb.status).toBe(403);
    expect(h(cb, 'cache-control')).toBe('no-store');
  });
});
