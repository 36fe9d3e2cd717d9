/**
 * The development OIDC provider's authorization code flow (for the console's sign-in): the form
 * is marked FOR DEVELOPMENT ONLY, answered only from its own origin, redirects only to loopback
 * hosts, for the audience as client id, and a code is redeemed once, with its PKCE verifier,
 * client and redirect URI, for an ID token carrying the nonce.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../src/dev/idp.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}
const send = (url: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', headers: o.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(o.body);
  });

describe('dev idp: authorization code flow with PKCE', () => {
  let idp: DevIdp;
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const redirect = 'https://127.0.0.1:8444/console/callback';
  const query = (over: Record<string, string> = {}) =>
    new URLSearchParams({
      response_type: 'code',
      client_id: 'writ',
      redirect_uri: redirect,
      scope: 'openid',
      state: 's1',
      nonce: 'n1',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...over,
    });
  beforeAll(async () => {
    idp = await startDevIdp({ host: '127.0.0.1', port: 0, audience: 'writ', clock: { now: () => new Date() } });
  });
  afterAll(async () => {
    await idp?.stop();
  });

  /** The form, its answer as `sub`, and the code from the redirect. */
  async function code(sub = 'alice'): Promise<string> {
    const form = await send(`${idp.issuer}/authorize?${query()}`);
    const id = /name="request" value="([^"]+)"/.exec(form.body)![1]!;
    const answer = await send(`${idp.issuer}/authorize`, {
      method: 'POST',
      headers: { origin: new URL(idp.issuer).origin, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ request: id, sub, groups: 'eng, ops' }).toString(),
    });
    expect(answer.status).toBe(303);
    const to = new URL(String(answer.headers.location));
    expect(`${to.origin}${to.pathname}`).toBe(redirect);
    expect(to.searchParams.get('state')).toBe('s1');
    return to.searchParams.get('code')!;
  }
  const redeem = (c: string, over: Record<string, string> = {}) =>
    send(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: c,
        client_id: 'writ',
        redirect_uri: redirect,
        code_verifier: verifier,
        ...over,
      }).toString(),
    });

  it('shows a form marked FOR DEVELOPMENT ONLY, with no script, and publishes the endpoints', async () => {
    const form = await send(`${idp.issuer}/authorize?${query()}`);
    expect(form.status).toBe(200);
    expect(form.body).toContain('FOR DEVELOPMENT ONLY');
    expect(form.body).not.toContain('<script');
    expect(String(form.headers['content-security-policy'])).toContain("default-src 'none'");
    const d = JSON.parse((await send(`${idp.issuer}/.well-known/openid-configuration`)).body);
    expect(d).toMatchObject({
      authorization_endpoint: `${idp.issuer}/authorize`,
      token_endpoint: `${idp.issuer}/token`,
      code_challenge_methods_supported: ['S256'],
    });
  });

  it('redeems a code once for an ID token with the nonce and groups', async () => {
    const c = await code();
    const r = await redeem(c);
    expect(r.status).toBe(200);
    const t = JSON.parse(r.body);
    const claims = JSON.parse(Buffer.from(t.id_token.split('.')[1], 'base64url').toString('utf8'));
    expect(claims).toMatchObject({ iss: idp.issuer, sub: 'alice', aud: 'writ', nonce: 'n1', groups: ['eng', 'ops'], dev: true });
    expect((await redeem(c)).status).toBe(400);
  });

  it.each([
    ['another code_verifier', { code_verifier: randomBytes(32).toString('base64url') }],
    ['another client', { client_id: 'other' }],
    ['another redirect_uri', { redirect_uri: 'https://127.0.0.1:1/cb' }],
  ])('refuses a code with %s (and burns it)', async (_n, over) => {
    const c = await code();
    const r = await redeem(c, over);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).error).toBe('invalid_grant');
    expect((await redeem(c)).status).toBe(400);
  });

  it.each([
    ['a redirect off this machine', { redirect_uri: 'https://evil.example/cb' }, /loopback/],
    ['another client id than the audience', { client_id: 'other' }, /client_id must be writ/],
    ['the plain PKCE method', { code_challenge_method: 'plain' }, /S256/],
    ['the implicit flow', { response_type: 'id_token' }, /response_type must be code/],
  ])('refuses an authorization request with %s', async (_n, over, why) => {
    const r = await send(`${idp.issuer}/authorize?${query(over)}`);
    expect(r.status).toBe(400);
    expect(r.body).toMatch(why);
  });

  it('refuses the form answered from another origin (a page elsewhere signing a browser in)', async () => {
    const form = await send(`${idp.issuer}/authorize?${query()}`);
    const id = /name="request" value="([^"]+)"/.exec(form.body)![1]!;
    const r = await send(`${idp.issuer}/authorize`, {
      method: 'POST',
      headers: { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ request: id, sub: 'root' }).toString(),
    });
    expect(r.status).toBe(403);
  });
});
