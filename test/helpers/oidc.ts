/**
 * A real OpenID Connect provider for tests: discovery and JWKS over HTTP on 127.0.0.1:0, and
 * ID tokens signed with its keys (ES256 or RS256). `rotate()` replaces the signing key, as a
 * provider does, so tests can see writ refetch the JWKS for an unknown kid.
 */
import { createServer, type Server } from 'node:http';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { signJws } from '../../src/jose/jws.js';

export interface TestOidc {
  readonly issuer: string;
  /** A signed ID token for `sub` with these extra claims. */
  token(sub: string, extra?: Record<string, unknown>, opts?: { kid?: string; key?: KeyObject; header?: Record<string, unknown> }): string;
  rotate(): void;
  readonly fetches: { discovery: number; jwks: number };
  stop(): Promise<void>;
}

export async function startOidc(audience = 'writ'): Promise<TestOidc> {
  let keys: Array<{ kid: string; key: KeyObject }> = [
    { kid: randomBytes(4).toString('hex'), key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey },
  ];
  const fetches = { discovery: 0, jwks: 0 };
  let issuer = '';
  const server: Server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') {
      fetches.discovery++;
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    } else if (req.url === '/jwks') {
      fetches.jwks++;
      res.end(JSON.stringify({ keys: keys.map((k) => ({ ...k.key.export({ format: 'jwk' }), d: undefined, kid: k.kid, use: 'sig', alg: 'ES256' })) }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  issuer = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  return {
    issuer,
    fetches,
    token(sub, extra = {}, opts = {}) {
      const k = keys[keys.length - 1]!;
      const now = Math.floor(Date.now() / 1000);
      return signJws(
        { typ: 'JWT', kid: opts.kid ?? k.kid, ...opts.header },
        { iss: issuer, sub, aud: audience, iat: now, exp: now + 300, ...extra },
        opts.key ?? k.key,
      );
    },
    rotate() {
      keys = [{ kid: randomBytes(4).toString('hex'), key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey }];
    },
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}
