/**
 * The OpenID Connect provider of the end-to-end tests: writ's development provider
 * (src/dev/idp.ts) on 127.0.0.1:0, discovery and JWKS over HTTP, ID tokens signed with its
 * ES256 key. `rotate()` replaces the signing key, as a provider does, so tests can see writ
 * refetch the JWKS for an unknown kid; `token(…, { key })` signs the same claims with another
 * key (a forgery).
 */
import type { KeyObject } from 'node:crypto';
import { startDevIdp } from '../../src/dev/idp.js';
import { signJws } from '../../src/jose/jws.js';

export interface TestOidc {
  readonly issuer: string;
  /** A signed ID token for `sub` with these extra claims. */
  token(sub: string, extra?: Record<string, unknown>, opts?: { kid?: string; key?: KeyObject; header?: Record<string, unknown> }): string;
  rotate(): void;
  readonly fetches: { readonly discovery: number; readonly jwks: number };
  stop(): Promise<void>;
}

export async function startOidc(audience = 'writ'): Promise<TestOidc> {
  const idp = await startDevIdp({ host: '127.0.0.1', port: 0, audience, clock: { now: () => new Date() } });
  return {
    issuer: idp.issuer,
    fetches: idp.requests,
    token(sub, extra = {}, opts = {}) {
      const header = { ...(opts.kid ? { kid: opts.kid } : {}), ...opts.header };
      const token = idp.token(sub, extra, { ttlSeconds: 300, header });
      if (!opts.key) return token;
      const [h, p] = token.split('.');
      const decode = (s: string) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Record<string, unknown>;
      const { alg: _alg, ...rest } = decode(h!);
      return signJws(rest, decode(p!), opts.key);
    },
    rotate: () => idp.rotate(),
    stop: () => idp.stop(),
  };
}
