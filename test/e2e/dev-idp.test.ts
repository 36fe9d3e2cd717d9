/**
 * The development OIDC provider (src/dev/idp.ts) end to end: writ's own PrincipalVerifier
 * accepts its tokens through discovery over real HTTP; Python's PyJWT (Debian python3-jwt, a
 * verifier we did not write) checks them against the JWKS it fetches itself, and refuses the
 * mutated twins; it binds only to loopback and refuses requests that a browser or a
 * DNS-rebinding page would make; `runDevIdp` serves until its signal (in-process) or SIGINT /
 * SIGTERM (a child process from dist/).
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEV_CLAIM,
  MAX_TOKEN_REQUEST_BYTES,
  parseDevListen,
  requestDevToken,
  runDevIdp,
  startDevIdp,
  type DevIdp,
  type DevIdpKeyType,
} from '../../src/dev/idp.js';
import { ConfigError } from '../../src/errors.js';
import { decodeJws } from '../../src/jose/jws.js';
import { PrincipalVerifier, httpFetch } from '../../src/principal/oidc.js';
import { REPO_ROOT } from '../helpers/shared.js';

const PY = '/usr/bin/python3';
const HAVE_PY = spawnSync(PY, ['-c', 'import jwt, cryptography'], { stdio: 'ignore' }).status === 0;
if (process.env.CI && !HAVE_PY) throw new Error('CI requires python3-jwt/python3-cryptography (scripts/install-test-deps.sh)');
if (!HAVE_PY) console.warn('\n*** /usr/bin/python3 with jwt+cryptography missing: the PyJWT check of dev idp tokens is SKIPPED ***\n');
const DIST_IDP = join(REPO_ROOT, 'dist', 'src', 'dev', 'idp.js');

const clock = { now: () => new Date() };
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const run = promisify(execFile);

/** A raw HTTP request with any headers (fetch forbids setting Host). */
function raw(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer },
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const post = (idp: DevIdp, body: unknown, headers: Record<string, string> = {}) =>
  raw(`${idp.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

/** PyJWT: fetch discovery and the JWKS itself, pick the key by kid, take the algorithm from the key, verify. */
const PYJWT = `
import json, sys, urllib.request, jwt
issuer, token, audience = sys.argv[1:4]
disco = json.load(urllib.request.urlopen(issuer + "/.well-known/openid-configuration"))
assert disco["issuer"] == issuer, disco["issuer"]
jwks = json.load(urllib.request.urlopen(disco["jwks_uri"]))
header = jwt.get_unverified_header(token)
keys = [k for k in jwks["keys"] if k.get("kid") == header["kid"] and k.get("use") == "sig"]
if len(keys) != 1:
    sys.exit("no key with kid " + header["kid"])
claims = jwt.decode(token, jwt.PyJWK(keys[0]).key, algorithms=[keys[0]["alg"]], audience=audience, issuer=issuer,
                    options={"require": ["exp", "iat", "sub", "aud", "iss"]})
print(json.dumps(claims))
`;
async function pyjwt(issuer: string, token: string, audience = 'writ'): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await run(PY, ['-c', PYJWT, issuer, token, audience]);
    return { ok: true, out: r.stdout };
  } catch (e) {
    return { ok: false, out: (e as { stderr: string }).stderr };
  }
}

describe('dev idp: tokens accepted through discovery', () => {
  const idps: DevIdp[] = [];
  afterAll(async () => {
    for (const i of idps) await i.stop();
  });

  it.each([
    ['ES256', undefined],
    ['ES384', '/realms/dev'],
    ['RS256', '/a/b'],
  ] as const)("writ's PrincipalVerifier accepts a %s token from POST /token (issuer path %s)", async (keyType, issuerPath) => {
    const idp = await startDevIdp({
      host: '127.0.0.1',
      port: 0,
      audience: 'writ',
      keyType: keyType as DevIdpKeyType,
      clock,
      ...(issuerPath ? { issuerPath } : {}),
    });
    idps.push(idp);
    expect(idp.issuer).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+${issuerPath ?? ''}$`));
    const r = await post(idp, { sub: 'alice', groups: ['eng', 'ops'], ttl: 120 });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/jwt');
    const token = r.body.trim();
    const d = decodeJws(token, 'JWT', 16 * 1024);
    expect(d.header).toEqual({ alg: keyType, typ: 'JWT', kid: idp.kid });
    expect(d.payload).toMatchObject({ iss: idp.issuer, sub: 'alice', aud: 'writ', groups: ['eng', 'ops'], [DEV_CLAIM]: true });
    expect((d.payload.exp as number) - (d.payload.iat as number)).toBe(120);

    const v = new PrincipalVerifier([{ issuer: idp.issuer, audience: 'writ', groupsClaim: 'groups' }], { fetcher: httpFetch, now: () => Date.now() });
    // auth_time: the provider has no sessions, so the token's sign-in is its issuance.
    expect(d.payload.auth_time).toBe(d.payload.iat);
    await expect(v.verify(token, ID_TOKEN)).resolves.toEqual({ iss: idp.issuer, sub: 'alice', groups: ['eng', 'ops'], authTime: d.payload.iat });
    expect(idp.requests).toEqual({ discovery: 1, jwks: 1, token: 1, authorize: 0 });
    // Another provider's token, same issuer URL shape, is refused by the signature check.
    const other = await startDevIdp({ host: '127.0.0.1', port: 0, keyType: keyType as DevIdpKeyType, clock });
    idps.push(other);
    const forged = other.token('mallory', { iss: idp.issuer }, { header: { kid: idp.kid } });
    await expect(v.verify(forged, ID_TOKEN)).rejects.toThrow(/signature does not verify/);
  });

  it('a rotated key is picked up by the verifier (unknown kid refetch)', async () => {
    const idp = await startDevIdp({ host: '127.0.0.1', port: 0, clock });
    idps.push(idp);
    const v = new PrincipalVerifier([{ issuer: idp.issuer, audience: 'writ', groupsClaim: 'groups' }], {
      fetcher: httpFetch,
      now: () => Date.now(),
      refetchCooldownMs: 0,
    });
    await v.verify(idp.token('alice'), ID_TOKEN);
    const before = idp.kid;
    idp.rotate();
    expect(idp.kid).not.toBe(before);
    await expect(v.verify(idp.token('alice'), ID_TOKEN)).resolves.toMatchObject({ sub: 'alice' });
    expect(idp.requests.jwks).toBe(2);
  });
});

describe.skipIf(!HAVE_PY)('dev idp: PyJWT verifies its tokens against its JWKS', () => {
  let idp: DevIdp;
  beforeAll(async () => {
    idp = await startDevIdp({ host: '127.0.0.1', port: 0, issuerPath: '/realms/dev', clock });
  });
  afterAll(() => idp.stop());

  it('the token verifies, with every claim', async () => {
    const token = (await post(idp, { sub: 'alice', groups: ['eng'] })).body.trim();
    const r = await pyjwt(idp.issuer, token);
    expect(r.ok, r.out).toBe(true);
    expect(JSON.parse(r.out)).toMatchObject({ iss: idp.issuer, sub: 'alice', aud: 'writ', groups: ['eng'], dev: true });
  });

  it.each([
    [
      'a flipped signature bit',
      (t: string) => `${t.slice(0, -6)}${t.at(-6) === 'A' ? 'B' : 'A'}${t.slice(-5)}`,
      /InvalidSignatureError|Signature verification failed/,
    ],
    ['a changed subject', (t: string) => swapPayload(t, { sub: 'mallory' }), /InvalidSignatureError|Signature verification failed/],
    ['another audience', () => idp.token('alice', { aud: 'someone-else' }), /InvalidAudienceError/],
    ['another issuer', () => idp.token('alice', { iss: 'http://127.0.0.1:1' }), /InvalidIssuerError/],
    ['an expired token', () => idp.token('alice', { exp: Math.floor(Date.now() / 1000) - 3600 }), /ExpiredSignatureError/],
  ])('PyJWT refuses %s', async (_n, mutate, err) => {
    const good = idp.token('alice');
    expect((await pyjwt(idp.issuer, good)).ok).toBe(true);
    const r = await pyjwt(idp.issuer, mutate(good));
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(err);
  });
});

function swapPayload(token: string, over: Record<string, unknown>): string {
  const [h, p, s] = token.split('.');
  const payload = { ...JSON.parse(Buffer.from(p!, 'base64url').toString()), ...over };
  return `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
}

describe('dev idp: loopback only', () => {
  it.each(['0.0.0.0', '::', '192.0.2.1', '10.0.0.1', '169.254.169.254', 'example.com', '::ffff:127.0.0.1', ''])('refuses to bind %j', async (host) => {
    const e = await startDevIdp({ host, port: 0, clock }).then(
      (i) => i.stop().then(() => undefined),
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).problems[0]).toMatch(/not a loopback address; the development OIDC provider listens only on 127\.0\.0\.0\/8, ::1 or localhost/);
  });

  it.each(['127.0.0.1', '127.0.0.2', '::1', 'localhost'])('binds %s', async (host) => {
    const idp = await startDevIdp({ host, port: 0, clock });
    try {
      const r = await raw(`${idp.issuer}/.well-known/openid-configuration`, {});
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ issuer: idp.issuer, jwks_uri: `${idp.issuer}/jwks` });
    } finally {
      await idp.stop();
    }
  });

  it('parses --listen, loopback only', () => {
    expect(parseDevListen('127.0.0.1:9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(parseDevListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseDevListen('localhost:8080')).toEqual({ host: 'localhost', port: 8080 });
    for (const [s, re] of [
      ['0.0.0.0:9000', /not a loopback address/],
      ['[::]:9000', /not a loopback address/],
      ['idp.example.com:9000', /not a loopback address/],
      ['127.0.0.1', /must be HOST:PORT/],
      ['::1:9000', /must be HOST:PORT/],
      ['127.0.0.1:70000', /out of range/],
    ] as const)
      expect(() => parseDevListen(s), s).toThrow(re);
  });
});

describe('dev idp: what POST /token refuses', () => {
  let idp: DevIdp;
  beforeAll(async () => {
    idp = await startDevIdp({ host: '127.0.0.1', port: 0, clock });
  });
  afterAll(() => idp.stop());

  it.each([
    ['a Host header that is not loopback (DNS rebinding)', () => post(idp, { sub: 'a' }, { host: 'evil.example:80' }), 403, /Host header/],
    ['a Host header with another port', () => post(idp, { sub: 'a' }, { host: '127.0.0.1:1' }), 403, /Host header/],
    ['a browser (Origin header)', () => post(idp, { sub: 'a' }, { origin: 'https://evil.example' }), 403, /browsers/],
    // A form is an authorization code redemption (the console's sign-in); without that grant type it is refused.
    ['a form body that redeems no code', () => post(idp, 'sub=alice', { 'content-type': 'application/x-www-form-urlencoded' }), 400, /unsupported_grant_type/],
    ['no content type', () => raw(`${idp.issuer}/token`, { method: 'POST', body: '{"sub":"a"}' }), 415, /application\/json/],
    ['a body that is not JSON', () => post(idp, '{sub: alice}'), 400, /not JSON/],
    ['duplicate members', () => post(idp, '{"sub":"alice","sub":"root"}'), 400, /not JSON/],
    ['a JSON list', () => post(idp, ['alice']), 400, /JSON object/],
    ['an unknown member', () => post(idp, { sub: 'alice', aud: 'other' }), 400, /unknown member aud/],
    ['no sub', () => post(idp, { groups: ['eng'] }), 400, /sub must be a string/],
    ['an empty sub', () => post(idp, { sub: '' }), 400, /sub must be a string/],
    ['a sub of 256 characters', () => post(idp, { sub: 'a'.repeat(256) }), 400, /sub must be a string of 1\.\.255/],
    ['groups that are not a list', () => post(idp, { sub: 'a', groups: 'eng' }), 400, /groups must be a list/],
    ['65 groups', () => post(idp, { sub: 'a', groups: Array.from({ length: 65 }, (_, i) => `g${i}`) }), 400, /groups must be a list of at most 64/],
    ['a ttl of 0', () => post(idp, { sub: 'a', ttl: 0 }), 400, /ttl must be/],
    ['a ttl past 24 h', () => post(idp, { sub: 'a', ttl: 86401 }), 400, /ttl must be/],
    ['a fractional ttl', () => post(idp, { sub: 'a', ttl: 1.5 }), 400, /ttl must be/],
    ['a body over the limit', () => post(idp, { sub: 'a'.repeat(MAX_TOKEN_REQUEST_BYTES) }), 413, /larger than 4096 bytes/],
    ['GET', () => raw(`${idp.issuer}/token`, {}), 405, /use POST/],
    ['an unknown path', () => raw(`${idp.issuer}/userinfo`, {}), 404, /not found/],
  ])('refuses %s', async (_n, send, status, body) => {
    const before = idp.requests.token;
    const r = await send();
    expect({ status: r.status, body: r.body }).toMatchObject({ status, body: expect.stringMatching(body) });
    expect(idp.requests.token).toBe(before);
  });

  it('the valid request next to those twins is served', async () => {
    const r = await post(idp, { sub: 'alice', groups: ['eng'], ttl: 60 });
    expect(r.status).toBe(200);
    expect(r.headers['cache-control']).toBe('no-store');
  });

  it('a body larger than the limit sent in chunks is cut', async () => {
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${idp.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.write(`{"sub":"${'a'.repeat(3000)}`);
      setTimeout(() => req.end(`${'a'.repeat(3000)}"}`), 20);
    });
    expect(r).toMatchObject({ status: 413, body: expect.stringMatching(/larger than 4096 bytes/) });
  });
});

describe('dev idp: runDevIdp and requestDevToken (the CLI verbs)', () => {
  it('prints the issuer, says FOR DEVELOPMENT ONLY, hands out tokens, and stops on its signal', async () => {
    let out = '';
    let err = '';
    const stop = new AbortController();
    const done = runDevIdp({ listen: '127.0.0.1:0', audience: 'writ' }, { clock, stdout: (s) => (out += s), stderr: (s) => (err += s), signal: stop.signal });
    while (!out.includes('\n')) await new Promise((r) => setTimeout(r, 10));
    const issuer = out.trim();
    expect(issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(err.split('\n')[0]).toMatch(/^writ dev idp: FOR DEVELOPMENT ONLY: /);
    expect(err).toContain(`principals: [{ issuer: ${issuer}, audience: writ }]`);

    const token = await requestDevToken({ issuer, sub: 'alice', groups: 'eng, ops', ttlSeconds: 90 });
    const v = new PrincipalVerifier([{ issuer, audience: 'writ', groupsClaim: 'groups' }], { fetcher: httpFetch, now: () => Date.now() });
    await expect(v.verify(token, ID_TOKEN)).resolves.toMatchObject({ iss: issuer, sub: 'alice', groups: ['eng', 'ops'], authTime: expect.any(Number) });
    expect(err).toContain('issued a development ID token for "alice" (groups eng, ops), valid 90 s');
    await expect(requestDevToken({ issuer, sub: '' })).rejects.toThrow(/answered HTTP 400: sub must be a string/);

    stop.abort();
    await done;
    expect(err).toMatch(/stopped\n$/);
    const port = Number(new URL(issuer).port);
    await expect(new Promise((resolve, reject) => connect(port, '127.0.0.1').on('connect', resolve).on('error', reject))).rejects.toThrow(/ECONNREFUSED/);
  });

  it('requestDevToken talks only to a loopback http provider', async () => {
    for (const issuer of ['https://idp.example.com', 'http://10.0.0.1:9000', 'http://127.0.0.1:9000?x', 'not a url'])
      await expect(requestDevToken({ issuer, sub: 'alice' }), issuer).rejects.toBeInstanceOf(ConfigError);
  });

  it('runDevIdp refuses a non-loopback --listen and an unknown --key-type before binding', async () => {
    const deps = { clock, stdout: () => {}, stderr: () => {}, signal: AbortSignal.abort() };
    await expect(runDevIdp({ listen: '0.0.0.0:9000' }, deps)).rejects.toThrow(/not a loopback address/);
    await expect(runDevIdp({ listen: '127.0.0.1:0', keyType: 'HS256' }, deps)).rejects.toThrow(/--key-type must be one of ES256, ES384, RS256/);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('as a process, serves until %s and exits 0', async (signal) => {
    if (!existsSync(DIST_IDP)) throw new Error('dist/ is missing or stale: run `make build` (make test does) before this test');
    const script = `import { runDevIdp } from ${JSON.stringify(DIST_IDP)};
await runDevIdp({ listen: '127.0.0.1:0' }, { clock: { now: () => new Date() }, stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const issuer = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no issuer printed: ${err}`)), 10_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) {
          clearTimeout(t);
          resolve(out.trim());
        }
      });
    });
    const token = await requestDevToken({ issuer, sub: 'bob' });
    expect(decodeJws(token, 'JWT', 16 * 1024).payload).toMatchObject({ iss: issuer, sub: 'bob', dev: true });
    child.kill(signal);
    expect(await exited).toBe(0);
    expect(err).toMatch(/FOR DEVELOPMENT ONLY/);
    expect(err).toMatch(/stopped\n$/);
  });
});
