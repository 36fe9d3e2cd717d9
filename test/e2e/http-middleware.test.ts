/**
 * The HTTP middleware on a real node:http server, presented to by a real HTTP client over
 * loopback: a good presentation passes (and reaches the handler with the verified writ), and
 * every way the issue lists of presenting wrongly is refused with the documented status and
 * challenge, without the verifier's reason: bearer use, a proof for another method, URI, host
 * or audience, a replay, a revoked writ, a revocation source that cannot answer, credentials in
 * the query, duplicated headers.
 */
import { request, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorize, httpProofMethod, writMiddleware, type WritRefusal, type WritRequest } from '../../src/rp/http-middleware.js';
import { RevocationError } from '../../src/errors.js';
import { keySigner } from '../../src/jose/jws.js';
import { StatusList, signStatusListToken } from '../../src/revocation/status-list.js';
import { StatusListSource } from '../../src/revocation/status-list-source.js';
import { WatchRevocationSource } from '../../src/revocation/watch-source.js';
import { createProof } from '../../src/writ/proof.js';
import { FakeIssuer, agent, hop } from '../helpers/writ-fixture.js';
import { FakeWatchConnector, FakeWatchIssuer } from '../fakes/watch-issuer.js';
import { runCli } from '../helpers/cli.js';

const AUD = 'https://rp.example';
const PUBLIC = 'https://rp.example';
const iss = new FakeIssuer();
const [A, B, C] = [agent('planner'), agent('researcher'), agent('reader')];

function world(taskId: string) {
  const now = Math.floor(Date.now() / 1000);
  const root = iss.rootGrant(A, { now: now - 30, taskId });
  const g1 = hop(root, A, B, now - 20, { scope: [{ action: 'repo:*', resource: 'repo://acme/*' }] });
  // repo:delete stays under the root's escalation rule: allowed by scope, but needs an approver.
  const g2 = hop(g1, B, C, now - 10, {
    scope: [
      { action: 'repo:read', resource: 'repo://acme/widgets*' },
      { action: 'repo:comment', resource: 'repo://acme/widgets' },
      { action: 'repo:delete', resource: 'repo://acme/widgets-old' },
    ],
  });
  return iss.writ(C, [root, g1, g2], { now: now - 5 }).writ;
}

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

function send(port: number, path: string, headers: Record<string, string | string[]>, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const proofFor = (writ: string, method: string, url: string, audience = AUD) =>
  createProof(writ, C.key, { audience, method: httpProofMethod(method, url), now: new Date() });

const sourceDown = async (uri: string): Promise<string> => {
  throw new RevocationError('ERR_STATUS_LIST_INVALID', `status list: GET ${uri}: connection refused`);
};

const present = (writ: string, proof: string) => ({ authorization: `Writ ${writ}`, 'writ-proof': proof });

describe('writMiddleware on node:http', () => {
  let server: Server;
  let port: number;
  let issuer: FakeWatchIssuer;
  let source: WatchRevocationSource;
  const refused: WritRefusal[] = [];
  let writ: string;

  beforeAll(async () => {
    issuer = new FakeWatchIssuer(() => Date.now());
    source = new WatchRevocationSource({ addresses: ['issuer'], connector: new FakeWatchConnector({ issuer }) }).start();
    await source.synced();
    writ = world('triage-42');
    const auth = writMiddleware({ trust: iss.trust, audience: AUD, publicUrl: PUBLIC, revocation: source, onRefused: (r) => refused.push(r) });
    const canRead = authorize('repo:read', (req) => `repo://acme/${(req.url ?? '').split('?')[0]!.split('/').pop()}`);
    const canComment = authorize('repo:comment', 'repo://acme/widgets');
    const canDelete = authorize('repo:delete', 'repo://acme/widgets-old');
    const canDeploy = authorize('deploy:prod', 'repo://acme/widgets');
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      // Plain node:http: the handler's `next` is the rest of the route.
      auth(req, res, () => {
        const route = (req.url ?? '').split('?')[0]!;
        const gate = route === '/comment' ? canComment : route === '/delete' ? canDelete : route === '/deploy' ? canDeploy : canRead;
        if (!gate(req, res)) return;
        const w = (req as WritRequest).writ!;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ chain: w.chain, checks: w.checks.map((c) => c.check) }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    source?.close();
    if (server) await new Promise((r) => server.close(r));
  });

  it('accepts a writ with its proof for this method and target URI, and hands the handler the verified writ', async () => {
    const r = await send(port, '/repos/widgets', present(writ, proofFor(writ, 'GET', 'https://rp.example/repos/widgets')));
    expect(r.status).toBe(200);
    const body = JSON.parse(r.body) as { chain: string[]; checks: string[] };
    expect(body.chain).toEqual(['https://idp.example.com#alice', A.spiffeId, B.spiffeId, C.spiffeId]);
    expect(body.checks).toContainEqual('proof of possession by the cnf key, for audience https://rp.example and method GET https://rp.example/repos/widgets');
    expect(body.checks).toContainEqual(expect.stringMatching(/^not revoked: .*\(watch stream at sequence 0 \(heartbeat \d+ ms ago from issuer\)\)$/));
    expect(body.checks).toContainEqual('proof one-time id recorded (not seen before)');
  });

  it('takes a proof made by `writ proof create --method "GET https://rp.example/..."` (htm is free text)', async () => {
    const d = mkdtempSync(join(tmpdir(), 'writ-http-proof-'));
    try {
      writeFileSync(join(d, 'writ.jws'), writ);
      writeFileSync(join(d, 'agent.key'), C.key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      const made = await runCli([
        'proof',
        'create',
        '--writ',
        join(d, 'writ.jws'),
        '--key',
        join(d, 'agent.key'),
        '--audience',
        AUD,
        '--method',
        'GET https://rp.example/repos/widgets',
      ]);
      expect(made).toMatchObject({ code: 0, err: '' });
      expect((await send(port, '/repos/widgets', present(writ, made.out.trim()))).status).toBe(200);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('binds the proof to the path as normalised (dot segments, percent-encoding), never to the query', async () => {
    const cases: Array<[string, string]> = [
      ['/x/../repos/widgets', 'https://rp.example/repos/widgets'],
      ['/repos/%77idgets', 'https://rp.example/repos/widgets'],
      ['/repos/widgets?page=2&sort=asc', 'https://rp.example/repos/widgets'],
      ['/repos/widgets', 'https://RP.EXAMPLE:443/repos/./widgets?ignored=1#frag'],
      ['/repos/wid%2dgets', 'https://rp.example/repos/wid-gets'],
    ];
    for (const [path, url] of cases) {
      const r = await send(port, path, present(writ, proofFor(writ, 'GET', url)));
      expect(r.status, `${path} with a proof for ${url}`).not.toBe(401);
    }
  });

  it('refuses no writ with a bare challenge, and any other scheme (a writ as a Bearer token) the same way', async () => {
    const cases: Array<Record<string, string>> = [
      {},
      { authorization: `Bearer ${writ}` },
      { authorization: `DPoP ${writ}`, 'writ-proof': proofFor(writ, 'GET', 'https://rp.example/repos/widgets') },
    ];
    for (const headers of cases) {
      const r = await send(port, '/repos/widgets', headers);
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Writ');
      expect(r.body).toBe('');
    }
  });

  it('refuses a writ without its proof (bearer use)', async () => {
    const r = await send(port, '/repos/widgets', { authorization: `Writ ${writ}` });
    expect(r).toMatchObject({
      status: 401,
      headers: {
        'www-authenticate': 'Writ error="invalid_writ_proof", error_description="a writ is never a bearer token: send its proof of possession in Writ-Proof"',
        'cache-control': 'no-store',
      },
    });
    expect(JSON.parse(r.body)).toEqual({
      error: 'invalid_writ_proof',
      error_description: 'a writ is never a bearer token: send its proof of possession in Writ-Proof',
    });
  });

  const INVALID_PROOF = 'Writ error="invalid_writ_proof", error_description="the Writ-Proof is not valid for this writ, audience, method and URI at this time"';
  it.each([
    ['another method', 'POST', 'https://rp.example/repos/widgets', AUD],
    ['another path', 'GET', 'https://rp.example/repos/gadgets', AUD],
    ['another host', 'GET', 'https://evil.example/repos/widgets', AUD],
    ['another scheme', 'GET', 'http://rp.example/repos/widgets', AUD],
    ['another port', 'GET', 'https://rp.example:8443/repos/widgets', AUD],
    ['a path prefix of it', 'GET', 'https://rp.example/repos', AUD],
    ['another audience', 'GET', 'https://rp.example/repos/widgets', 'https://other.example'],
  ])('refuses a proof for %s, and says only the error code', async (_why, method, url, audience) => {
    refused.length = 0;
    const r = await send(port, '/repos/widgets', present(writ, proofFor(writ, method, url, audience)));
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe(INVALID_PROOF);
    expect(JSON.parse(r.body)).toEqual({
      error: 'invalid_writ_proof',
      error_description: 'the Writ-Proof is not valid for this writ, audience, method and URI at this time',
    });
    expect(`${r.body} ${r.headers['www-authenticate']}`).not.toMatch(/made for|another|htm|expected|rp\.example/);
    // The whole reason goes to the server's log.
    expect(refused[0]).toMatchObject({
      code: 'ERR_PROOF_INVALID',
      reason: expect.stringMatching(/^proof: made for another (method|audience) \(htm expected: GET https:\/\/rp\.example\/repos\/widgets\)$/),
    });
  });

  it('trusts the configured public URL, never the Host header the client sends', async () => {
    const r = await send(port, '/repos/widgets', { ...present(writ, proofFor(writ, 'GET', 'https://evil.example/repos/widgets')), host: 'evil.example' });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe(INVALID_PROOF);
  });

  it('refuses a replayed proof', async () => {
    const p = proofFor(writ, 'GET', 'https://rp.example/repos/widgets');
    expect((await send(port, '/repos/widgets', present(writ, p))).status).toBe(200);
    const again = await send(port, '/repos/widgets', present(writ, p));
    expect(again.status).toBe(401);
    expect(again.headers['www-authenticate']).toBe(
      'Writ error="invalid_writ_proof", error_description="this Writ-Proof was used before: make a new one for each request"',
    );
  });

  it('refuses a writ signed by someone else, and a mangled one, as invalid_token', async () => {
    const forged = new FakeIssuer().writ(C, [new FakeIssuer().rootGrant(C, { now: Math.floor(Date.now() / 1000) - 5 })], {
      now: Math.floor(Date.now() / 1000) - 5,
    }).writ;
    // The mangled one changes the signature's last two characters, never to what they were (a
    // fixed "AA" is what they already are about one time in 256).
    const mangled = `${writ.slice(0, -2)}${writ.endsWith('AA') ? 'QA' : 'AA'}`;
    for (const w of [forged, mangled, 'not-a-jws']) {
      const r = await send(port, '/repos/widgets', present(w, proofFor(w.includes('.') ? w : writ, 'GET', 'https://rp.example/repos/widgets')));
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Writ error="invalid_token", error_description="the writ is not valid here"');
    }
  });

  it('refuses credentials in the query string and duplicated headers as malformed (400), before verifying', async () => {
    const good = present(writ, proofFor(writ, 'GET', 'https://rp.example/repos/widgets'));
    const bad: Array<[string, Record<string, string | string[]>]> = [
      [`/repos/widgets?writ=${writ}`, {}],
      ['/repos/widgets?access_token=x', good],
      ['/repos/widgets', { authorization: [`Writ ${writ}`, `Writ ${writ}`], 'writ-proof': good['writ-proof'] }],
      ['/repos/widgets', { authorization: good.authorization, 'writ-proof': [good['writ-proof'], good['writ-proof']] }],
      ['/repos/widgets', { authorization: `Writ ${writ} extra`, 'writ-proof': good['writ-proof'] }],
      ['/repos/wid%zzgets', good],
    ];
    for (const [path, headers] of bad) {
      const r = await send(port, path, headers);
      expect(r.status, path).toBe(400);
      expect(r.headers['www-authenticate']).toMatch(/^Writ error="invalid_request", /);
    }
    // The good proof was not used up by the refusals.
    expect((await send(port, '/repos/widgets', good)).status).toBe(200);
  });

  it('authorize(): allows what the last grant allows, 403 insufficient_scope for the rest and for escalations', async () => {
    const p = (path: string) => present(writ, proofFor(writ, 'GET', `https://rp.example${path}`));
    expect((await send(port, '/repos/widgets-api', p('/repos/widgets-api'))).status).toBe(200);
    expect((await send(port, '/comment', p('/comment'))).status).toBe(200);
    const deny = 'Writ error="insufficient_scope", error_description="the writ does not allow this action on this resource"';
    for (const path of ['/repos/gadgets', '/deploy'])
      expect(await send(port, path, p(path))).toMatchObject({ status: 403, headers: { 'www-authenticate': deny } });
    expect(await send(port, '/delete', p('/delete'))).toMatchObject({
      status: 403,
      headers: { 'www-authenticate': 'Writ error="insufficient_scope", error_description="this action needs an approval the writ does not carry"' },
    });
  });

  it('refuses a revoked writ', async () => {
    const w2 = world('to-revoke');
    expect((await send(port, '/repos/widgets', present(w2, proofFor(w2, 'GET', 'https://rp.example/repos/widgets')))).status).toBe(200);
    refused.length = 0;
    issuer.revoke('task', 'to-revoke');
    const r = await send(port, '/repos/widgets', present(w2, proofFor(w2, 'GET', 'https://rp.example/repos/widgets')));
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Writ error="invalid_token", error_description="the writ is revoked"');
    expect(refused[0]).toMatchObject({
      code: 'ERR_WRIT_REVOKED',
      reason: expect.stringMatching(/^writ: revoked: task to-revoke revoked at sequence 1 \(watch stream/),
    });
  });
});

describe('writMiddleware: what it is given', () => {
  it('answers 503 (retry) when its revocation source cannot answer, instead of pretending', async () => {
    const never = new WatchRevocationSource({ addresses: ['down'], connector: new FakeWatchConnector({}) });
    const auth = writMiddleware({ trust: iss.trust, audience: AUD, publicUrl: PUBLIC, revocation: never });
    const writ = world('t');
    const req = {
      method: 'GET',
      url: '/x',
      headers: present(writ, proofFor(writ, 'GET', 'https://rp.example/x')),
      headersDistinct: undefined,
    } as unknown as IncomingMessage;
    const r = await auth.check(req);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.refusal).toMatchObject({
        status: 503,
        error: 'temporarily_unavailable',
        headers: { 'retry-after': '1', 'cache-control': 'no-store' },
        code: 'ERR_REVOCATION_UNAVAILABLE',
      });
      expect(r.refusal.headers['www-authenticate']).toBeUndefined();
    }
  });

  it('accepts null for no revocation checking, and then says so in the report', async () => {
    const auth = writMiddleware({ trust: iss.trust, audience: AUD, publicUrl: 'https://rp.example/api/', revocation: null });
    const writ = world('t2');
    const req = { method: 'PUT', url: '/v1/x', headers: present(writ, proofFor(writ, 'PUT', 'https://rp.example/api/v1/x')) } as unknown as IncomingMessage;
    const r = await auth.check(req);
    expect(r.ok && r.writ.checks).toContainEqual({ by: 'unchecked', check: expect.stringMatching(/^revocation: no revocation source/) });
  });

  it('with a status list source: fetches the list, refreshes it by its ttl, refuses a revoked writ (401), and answers 503 when it cannot answer', async () => {
    const URI = 'https://issuer.example/status/1';
    let t = Date.now();
    const clock = { now: () => new Date(t) };
    const a = agent('status-reader');
    const nowS = Math.floor(t / 1000);
    const { writ } = iss.writ(a, [iss.rootGrant(a, { now: nowS - 60, taskId: 'status' })], {
      now: nowS - 30,
      ttl: 3600,
      override: { status: { status_list: { idx: 5, uri: URI } } },
    });
    const list = StatusList.empty(64);
    const served: { calls: number; down: boolean } = { calls: 0, down: false };
    const source = new StatusListSource({
      writKeys: iss.trust.writKeys,
      now: clock.now,
      fetch: async (uri) => {
        served.calls++;
        expect(uri).toBe(URI);
        if (served.down) throw new RevocationError('ERR_STATUS_LIST_INVALID', `status list: GET ${URI}: HTTP 502`);
        const iat = Math.floor(t / 1000);
        return signStatusListToken({ sub: URI, iat, exp: iat + 3600, ttl: 60, list }, keySigner(iss.key), iss.kid);
      },
    });
    const auth = writMiddleware({ trust: iss.trust, audience: AUD, publicUrl: PUBLIC, revocation: source, clock });
    const req = () =>
      ({
        method: 'GET',
        url: '/x',
        headers: present(writ, createProof(writ, a.key, { audience: AUD, method: httpProofMethod('GET', 'https://rp.example/x'), now: clock.now() })),
      }) as unknown as IncomingMessage;
    // Never fetched before: the middleware fetches it (before the fix: 401, "was never fetched").
    const first = await auth.check(req());
    expect(first.ok && first.writ.checks).toContainEqual({
      by: 'verifier',
      check: expect.stringMatching(/^not revoked: .*status list https:\/\/issuer\.example\/status\/1 issued/),
    });
    expect(served.calls).toBe(1);
    // Within the ttl, no refetch.
    t += 10_000;
    expect((await auth.check(req())).ok).toBe(true);
    expect(served.calls).toBe(1);
    // Revoked, and past the ttl: refetched, refused as revoked.
    list.set(5, 1);
    t += 61_000;
    const revoked = await auth.check(req());
    expect(served.calls).toBe(2);
    expect(!revoked.ok && revoked.refusal).toMatchObject({ status: 401, error: 'invalid_token', description: 'the writ is revoked', code: 'ERR_WRIT_REVOKED' });
    // The issuer is unreachable past the list's maximum age (5 min): the source cannot answer, 503 (before the fix: 401).
    list.set(5, 0);
    served.down = true;
    t += 6 * 60_000;
    const stale = await auth.check(req());
    expect(!stale.ok && stale.refusal).toMatchObject({
      status: 503,
      error: 'temporarily_unavailable',
      headers: { 'retry-after': '1', 'cache-control': 'no-store' },
      code: 'ERR_REVOCATION_UNAVAILABLE',
    });
    expect(!stale.ok && stale.refusal.reason).toMatch(/s old; at most 300 s accepted \(the last refresh failed: status list: GET .*HTTP 502\)/);
    // A source that never got a list: 503 as well.
    const never = writMiddleware({
      trust: iss.trust,
      audience: AUD,
      publicUrl: PUBLIC,
      clock,
      revocation: new StatusListSource({ writKeys: iss.trust.writKeys, now: clock.now, fetch: sourceDown }),
    });
    const none = await never.check(req());
    expect(!none.ok && none.refusal).toMatchObject({ status: 503, code: 'ERR_REVOCATION_UNAVAILABLE' });
  });

  it('refuses a public URL that is not https (but loopback), or has a query', () => {
    const base = { trust: iss.trust, audience: AUD, revocation: null };
    expect(() => writMiddleware({ ...base, publicUrl: 'http://rp.example' })).toThrow(/must be https/);
    expect(() => writMiddleware({ ...base, publicUrl: 'https://rp.example/?a=1' })).toThrow(/no user, query or fragment/);
    expect(() => writMiddleware({ ...base, publicUrl: 'http://127.0.0.1:8080' })).not.toThrow();
  });

  it('httpProofMethod is the method, a space and the URI without query or fragment, normalised', () => {
    expect(httpProofMethod('GET', 'https://RP.Example:443/a/./b/../c%7e%2f?q=1#f')).toBe('GET https://rp.example/a/c~%2F');
    expect(httpProofMethod('POST', 'http://127.0.0.1:8080/')).toBe('POST http://127.0.0.1:8080/');
    expect(() => httpProofMethod('GET /x', 'https://rp.example/')).toThrow(/HTTP token/);
    expect(() => httpProofMethod('GET', 'ftp://rp.example/')).toThrow(/http\(s\)/);
  });
});
