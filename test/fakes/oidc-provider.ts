/**
 * An OpenID Connect provider behind the real Fetcher interface (src/principal/oidc.ts), with no
 * network: discovery and JWKS served as documents, ID tokens signed with its ES256 key.
 * `rotate` replaces the key; `down` makes every fetch fail; `jwksUri` may point anywhere (the
 * discovery rules are tested against it).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { signJws } from '../../src/jose/jws.js';

/** A URL as WHATWG parsing normalizes it (what the verifier fetches), or the text itself. */
const norm = (u: string): string => {
  try {
    return new URL(u).href;
  } catch {
    return u;
  }
};

/** A provider reachable through a Fetcher: discovery and JWKS as documents; `down` makes every fetch fail. */
export class FakeProvider {
  key: KeyObject = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  kid = 'k1';
  down = false;
  jwksUri: string;
  readonly fetched: string[] = [];
  constructor(
    readonly issuer: string,
    jwksUri?: string,
  ) {
    this.jwksUri = jwksUri ?? `${issuer}/jwks`;
  }
  readonly fetcher = async (url: string): Promise<string> => {
    this.fetched.push(url);
    if (this.down) throw new Error('connect ECONNREFUSED');
    if (url === `${this.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`) return JSON.stringify({ issuer: this.issuer, jwks_uri: this.jwksUri });
    if (url === norm(this.jwksUri)) return JSON.stringify({ keys: [{ ...this.key.export({ format: 'jwk' }), d: undefined, kid: this.kid, use: 'sig' }] });
    throw new Error(`HTTP 404 for ${url}`);
  };
  rotate(kid: string): void {
    this.key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    this.kid = kid;
  }
  token(now: number, sub = 'alice', key = this.key, kid = this.kid): string {
    return this.tokenWith(now, { sub }, key, kid);
  }
  /** An ID token valid for 5 min from `now`; `claims` replace the defaults (sub alice, groups [eng]). */
  tokenWith(now: number, claims: Record<string, unknown>, key = this.key, kid = this.kid): string {
    const iat = Math.floor(now / 1000);
    return signJws({ alg: 'ES256', typ: 'JWT', kid }, { iss: this.issuer, sub: 'alice', aud: 'writ', iat, exp: iat + 300, groups: ['eng'], ...claims }, key);
  }
  get jwksFetches(): number {
    return this.fetched.filter((u) => u === norm(this.jwksUri)).length;
  }
}
