/**
 * Token Status Lists end to end: a real issuer with its HTTPS listener on loopback, a real
 * OpenID Connect provider, agents attesting over gRPC/TLS across three hops, the root grant
 * revoked through the admin socket's RevocationService, and relying parties that read the
 * list: the library source, `writ verify --status-list URL|FILE`, and an independent Python
 * relying party (stock PyJWT + zlib). Also the listener's own rules (methods, paths, sizes,
 * times, headers, TLS) and the SPIFFE bundle endpoint.
 */
import { spawn as spawnProcess, spawnSync, execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { request } from 'node:https';
import { connect, type PeerCertificate } from 'node:tls';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest } from '../../src/agent/attest-client.js';
import { createGrant } from '../../src/agent/grant-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { delegateGrant } from '../../src/delegation/grant.js';
import { isWritError } from '../../src/errors.js';
import { RevocationService } from '../../src/gen/writ/v1/revocation_pb.js';
import { jwkThumbprint, keySigner } from '../../src/jose/jws.js';
import { StatusList, signStatusListToken, verifyStatusListToken } from '../../src/revocation/status-list.js';
import { StatusListSource, httpsStatusListFetcher } from '../../src/revocation/status-list-source.js';
import { unaryCall, unaryClient } from '../../src/rpc/grpc-adapter.js';
import { bundleDocuments } from '../../src/server/bundle-documents.js';
import { MAX_HEADER_BYTES, MAX_URL_BYTES, SECURITY_HEADERS } from '../../src/server/http/listener.js';
import { parseSpiffeBundle, type Bundle } from '../../src/spiffe/bundle.js';
import { createProof } from '../../src/writ/proof.js';
import { verifyWrit } from '../../src/writ/verify.js';
import { parseWrit } from '../../src/writ/writ.js';
import { runCli } from '../helpers/cli.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';
import { REPO_ROOT } from '../helpers/shared.js';

const AUD = 'spiffe://example.org/tool/github';
const METHOD = 'GET /repos/acme/widgets';
const PY = '/usr/bin/python3';
const HAVE_PY = spawnSync(PY, ['-c', 'import jwt'], { stdio: 'ignore' }).status === 0;
if (process.env.CI && !HAVE_PY) throw new Error('CI requires python3-jwt (scripts/install-test-deps.sh)');
if (!HAVE_PY) console.warn('\n*** /usr/bin/python3 with jwt missing: the Python status list check is SKIPPED ***\n');
const runPy = promisify(execFile);

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe('Token Status Lists over the issuer HTTPS listener', () => {
  let w: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  let dir = '';
  let bundleJwks = '';

  beforeAll(async () => {
    oidc = await startOidc();
    w = await startServer({ http_listen: '127.0.0.1:0', principals: [{ issuer: oidc.issuer, audience: 'writ' }] });
    await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    dir = mkdtempSync(join(tmpdir(), 'writ-status-'));
  });
  afterAll(async () => {
    await w?.stop();
    await oidc?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const base = () => w.server.http!.url;
  const f = (name: string) => join(dir, name);

  /** One HTTPS request to the listener (TLS checked against the bundle, by IP SAN). */
  function get(path: string, o: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = request(`${base()}${path}`, { method: o.method ?? 'GET', headers: o.headers ?? {}, ca: w.bundlePem, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(o.body);
    });
  }

  /** Raw bytes over TLS; resolves with whatever the server sent before closing (or after `waitMs`). */
  function raw(
    text: string | Buffer,
    waitMs = 3000,
    opts: { maxVersion?: 'TLSv1.1'; ciphers?: string } = {},
  ): Promise<{ text: string; closedAfterMs: number }> {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const s = connect({
        host: '127.0.0.1',
        port: w.server.httpPort!,
        ca: w.bundlePem,
        servername: 'localhost',
        ...opts,
        ...(opts.maxVersion ? { minVersion: 'TLSv1' } : {}),
      });
      let out = '';
      s.on('secureConnect', () => s.write(text));
      s.on('data', (c: Buffer) => {
        out += c.toString('latin1');
      });
      s.on('error', reject);
      s.on('close', () => resolve({ text: out, closedAfterMs: Date.now() - t0 }));
      setTimeout(() => s.destroy(), waitMs).unref();
    });
  }

  const newKey = () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    return { key, jkt: jwkThumbprint(createPublicKey(key)) };
  };

  async function spawn(path: string, key: KeyObject, grants: string[]) {
    const tok = await adminClients(w.adminSocket).admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org${path}` });
    const res = await attest({ server: w.address, bundlePem: w.bundlePem, evidenceType: 'join_token', key, respond: () => Buffer.from(tok.token), grants });
    bundleJwks = res.bundleJwks;
    return res;
  }

  const rootGrant = (jkt: string, taskId = 'triage-42') =>
    createGrant(w.address, w.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId,
      goal: 'triage the open issues of acme/widgets',
      ttlSeconds: 1800,
      scope: [{ action: 'repo:*', resource: 'repo://acme/*' }],
      boundaries: [{ action: '*', resource: 'repo://acme/secrets*' }],
      escalate: [],
      maxDepth: 2,
      delegateJkt: jkt,
    });

  const bundle = (): Bundle => parseSpiffeBundle('example.org', bundleJwks);
  const trust = () => ({ issuer: 'spiffe://example.org', writKeys: bundle().writAuthorities! });
  const fetchList = (uri: string) => httpsStatusListFetcher({ ca: w.bundlePem, spiffeId: 'spiffe://example.org/writ/server' })(uri);
  const revocation = () =>
    unaryClient(RevocationService, (m, req) =>
      unaryCall(`unix:${w.adminSocket}`, grpc.credentials.createInsecure(), m.parent, m.localName, req, { deadline: new Date(Date.now() + 10_000) }),
    );

  /** `writ verify` of `writ` (with a fresh proof by `key`), with extra arguments. */
  async function cliVerify(name: string, writ: string, key: KeyObject, extra: string[]) {
    writeFileSync(f(`${name}.writ`), `${writ}\n`);
    writeFileSync(f(`${name}.proof`), `${createProof(writ, key, { audience: AUD, method: METHOD, now: new Date() })}\n`);
    writeFileSync(f('bundle.jwks'), bundleJwks);
    return runCli([
      'verify',
      '--bundle',
      f('bundle.jwks'),
      '--audience',
      AUD,
      '--method',
      METHOD,
      '--writ',
      f(`${name}.writ`),
      '--proof',
      f(`${name}.proof`),
      ...extra,
    ]);
  }

  function libraryVerify(writ: string, key: KeyObject, source: StatusListSource) {
    return verifyWrit({
      writ,
      proof: createProof(writ, key, { audience: AUD, method: METHOD, now: new Date() }),
      trust: trust(),
      audience: AUD,
      method: METHOD,
      now: new Date(),
      revocation: source,
    });
  }

  function refusal(fn: () => unknown): { code: string; message: string } {
    try {
      fn();
    } catch (e) {
      if (isWritError(e)) return { code: e.code, message: e.message };
      throw e;
    }
    throw new Error('expected a refusal');
  }

  async function python(writFile: string, tokenFile?: string) {
    writeFileSync(f('bundle.jwks'), bundleJwks);
    writeFileSync(f('bundle.pem'), w.bundlePem);
    return runPy(PY, [
      join(REPO_ROOT, 'test', 'interop', 'status_list.py'),
      f('bundle.jwks'),
      f('bundle.pem'),
      writFile,
      ...(tokenFile ? [tokenFile] : []),
    ]).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  }

  it('principal → A → B → C: the root grant revoked, C is refused at once by the library source, writ verify --status-list and the Python relying party', async () => {
    const A = newKey();
    const B = newKey();
    const C = newKey();
    const root = await rootGrant(A.jkt);
    const a = await spawn('/agent/planner', A.key, [root.grant]);
    const wa = parseWrit(a.writ!).claims;
    const now = Math.floor(Date.now() / 1000);
    const g1 = delegateGrant(root.grant, A.key, {
      childJkt: B.jkt,
      now,
      from: { sub: wa.sub, writ: wa.jti },
      scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
    });
    const b = await spawn('/agent/researcher', B.key, [root.grant, g1]);
    const wb = parseWrit(b.writ!).claims;
    const g2 = delegateGrant(g1, B.key, {
      childJkt: C.jkt,
      now,
      from: { sub: wb.sub, writ: wb.jti },
      scope: [{ action: 'repo:read', resource: 'repo://acme/widgets*' }],
    });
    const c = await spawn('/agent/reader', C.key, [root.grant, g1, g2]);
    const wc = parseWrit(c.writ!).claims;

    // Every writ names list 1 at the listener's URL, each at its own index.
    const uri = `${base()}/status/1`;
    for (const x of [wa, wb, wc]) expect(x.status).toEqual({ status_list: { idx: expect.any(Number), uri } });
    expect(new Set([wa, wb, wc].map((x) => x.status!.status_list.idx)).size).toBe(3);

    // Before: valid for every relying party, each reporting the list as its source.
    const before = StatusListSource.forBundle(bundle(), { now: () => new Date() });
    await before.prepare(c.writ!);
    expect(libraryVerify(c.writ!, C.key, before).checks).toContainEqual({
      by: 'verifier',
      check: expect.stringMatching(new RegExp(`^not revoked: .* \\(status list ${uri} issued \\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z \\(ttl 60 s\\)\\)$`)),
    });
    const okCli = await cliVerify('c', c.writ!, C.key, ['--status-list', uri]);
    expect(okCli).toMatchObject({ code: 0, err: '' });
    expect(okCli.out).toMatch(new RegExp(`\\[checked  \\] not revoked: .* \\(status list ${uri} issued .* \\(ttl 60 s\\)\\)`));
    const noSource = await cliVerify('c', c.writ!, C.key, []);
    expect(noSource.out).toContain('[unchecked] revocation: no revocation source was given');
    const savedBefore = await fetchList(uri);
    writeFileSync(f('list-before.jwt'), savedBefore);
    if (HAVE_PY) expect((await python(f('c.writ'))).stdout).toMatch(new RegExp(`^VALID ${uri} \\d+\\n$`));

    // Revoke the root grant on the admin socket.
    const signedBefore = w.server.http!.publisher.signed;
    const r = await revocation().revoke({ kind: 'grant', target: wc.lineage[0]!, reason: 'compromised laptop' });
    expect(r.writs).toBe(3);

    // The next fetches reflect it: ten concurrent ones share one new signing.
    const tokens = await Promise.all(Array.from({ length: 10 }, () => fetchList(uri)));
    expect(new Set(tokens).size).toBe(1);
    expect(w.server.http!.publisher.signed).toBe(signedBefore + 1);
    const v = verifyStatusListToken(tokens[0]!, { keys: trust().writKeys, uri, now: new Date() });
    for (const x of [wa, wb, wc]) expect(v.list.status(x.status!.status_list.idx)).toBe(1);
    writeFileSync(f('list-after.jwt'), tokens[0]!);

    // Library: a source that fetches now refuses C (and A and B).
    const after = StatusListSource.forBundle(bundle(), { now: () => new Date() });
    for (const [writ, key] of [
      [c.writ!, C.key],
      [b.writ!, B.key],
      [a.writ!, A.key],
    ] as const) {
      await after.prepare(writ);
      const e = refusal(() => libraryVerify(writ, key, after));
      expect(e.code).toBe('ERR_WRIT_REVOKED');
      expect(e.message).toMatch(new RegExp(`^writ: revoked: status list entry \\d+ is INVALID \\(status list ${uri} issued .* \\(ttl 60 s\\)\\)$`));
    }
    expect(after.fetches).toBe(1);
    // The source that fetched before holds its copy for the ttl (60 s), then refetches and refuses too.
    expect(libraryVerify(c.writ!, C.key, before).spiffeId).toBe('spiffe://example.org/agent/reader');
    let t = Date.now() + 61_000;
    const later = StatusListSource.forBundle(bundle(), { now: () => new Date(t) });
    await later.prepare(c.writ!);
    t += 61_000;
    await later.prepare(c.writ!);
    expect(later.fetches).toBe(2);

    // CLI: the URL, a list saved after the revocation, and the one saved before (a snapshot of its iat).
    const byUrl = await cliVerify('c', c.writ!, C.key, ['--status-list', uri]);
    expect(byUrl.code).toBe(1);
    expect(byUrl.err).toMatch(
      new RegExp(`^writ: invalid: writ: revoked: status list entry ${wc.status!.status_list.idx} is INVALID \\(status list ${uri} issued `),
    );
    const json = await cliVerify('c', c.writ!, C.key, ['--status-list', uri, '--json']);
    expect(JSON.parse(json.out)).toMatchObject({ valid: false, code: 'ERR_WRIT_REVOKED' });
    expect((await cliVerify('c', c.writ!, C.key, ['--status-list', f('list-after.jwt')])).err).toMatch(/revoked: status list entry \d+ is INVALID/);
    expect((await cliVerify('c', c.writ!, C.key, ['--status-list', f('list-before.jwt')])).code).toBe(0);

    if (HAVE_PY) {
      expect((await python(f('c.writ'))).stdout).toMatch(new RegExp(`^INVALID ${uri} \\d+\\n$`));
      expect((await python(f('c.writ'), f('list-before.jwt'))).stdout).toMatch(/^VALID /);
      expect((await python(f('c.writ'), f('list-after.jwt'))).stdout).toMatch(/^INVALID /);
    }
  });

  it('refuses a tampered list, one for another sub, an expired one, a stale one, and an index outside the list', async () => {
    const A = newKey();
    const root = await rootGrant(A.jkt, 'refusals-1');
    const a = await spawn('/agent/refusals', A.key, [root.grant]);
    const wa = parseWrit(a.writ!).claims;
    const { uri, idx } = wa.status!.status_list;
    const real = await fetchList(uri);
    const ca = w.server.ca.writSigner();
    const nowS = Math.floor(Date.now() / 1000);
    const sign = (c: { sub?: string; iat?: number; exp?: number; list?: StatusList }) =>
      signStatusListToken(
        { sub: c.sub ?? uri, iat: c.iat ?? nowS, exp: c.exp ?? nowS + 3600, ttl: 60, list: c.list ?? StatusList.empty(1 << 17) },
        ca.signer,
        ca.kid,
      );

    const [h, p, s] = real.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
    const flipped = StatusList.decode(payload.status_list);
    flipped.set(idx, 1);
    payload.status_list = flipped.encode();
    const small = StatusList.empty(8 * Math.max(1, Math.floor(idx / 8)));
    const cases: Array<[string, string, RegExp, string?]> = [
      ['tampered', `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`, /status list: signature does not verify/],
      ['other-sub', await sign({ sub: uri.replace(/\/1$/, '/2') }), /is the list .*\/status\/2; the writ names .*\/status\/1/],
      ['expired', await sign({ iat: nowS - 2 * 86400, exp: nowS - 86400 }), /status list: expired/],
      ['stale', await sign({ iat: nowS - 600 }), /issued .* is 60\d s old; at most 300 s accepted/, 'ERR_WRIT_INVALID'],
      ['outside', await sign({ list: small }), new RegExp(`index ${idx} is outside the list \\(${small.size} entries\\)`), 'ERR_WRIT_INVALID'],
      [
        'foreign-key',
        await signStatusListToken(
          { sub: uri, iat: nowS, exp: nowS + 60, ttl: 60, list: StatusList.empty(1 << 17) },
          keySigner(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey),
          ca.kid,
        ),
        /signature does not verify/,
      ],
    ];
    expect(idx).toBeGreaterThanOrEqual(8); // 8 of 131072 indexes would make `outside` moot
    for (const [name, token, why, code] of cases) {
      writeFileSync(f(`${name}.jwt`), token);
      const r = await cliVerify('refusals', a.writ!, A.key, ['--status-list', f(`${name}.jwt`), '--json']);
      expect(r.code, name).toBe(1);
      expect(JSON.parse(r.out), name).toMatchObject({ valid: false, code: code ?? 'ERR_STATUS_LIST_INVALID', error: expect.stringMatching(why) });
      // The library, with the same token served by a fetcher.
      const src = new StatusListSource({ writKeys: trust().writKeys, now: () => new Date(), fetch: async () => token });
      const refused = await src.prepare(a.writ!).then(
        () => refusal(() => libraryVerify(a.writ!, A.key, src)),
        (e: Error) => ({ code: (e as { code?: string }).code ?? '', message: e.message }),
      );
      expect(refused.message, name).toMatch(name === 'other-sub' ? /made for .*\/status\/2, not .*\/status\/1/ : why);
      if (HAVE_PY) {
        const py = await python(f('refusals.writ'), f(`${name}.jwt`));
        expect(py.code, name).toBe(1);
        if (name === 'stale') expect(py.stderr).toMatch(/status list: 60\d s old; at most 300 s accepted/);
      }
    }
    // The real list still verifies, and an unknown list is 404.
    expect((await cliVerify('refusals', a.writ!, A.key, ['--status-list', uri])).code).toBe(0);
    expect((await get('/status/2')).status).toBe(404);
    const missing = await cliVerify('refusals', a.writ!, A.key, ['--status-list', uri.replace(/\/1$/, '/2')]);
    expect(missing.err).toMatch(/status list: GET .*\/status\/2: HTTP 404/);
  });

  it("one task's writs get indexes at random, not one after another", async () => {
    const A = newKey();
    const root = await rootGrant(A.jkt, 'random-idx-1');
    const idxs: number[] = [];
    for (let i = 0; i < 8; i++) idxs.push(parseWrit((await spawn('/agent/random', A.key, [root.grant])).writ!).claims.status!.status_list.idx);
    expect(new Set(idxs).size).toBe(8);
    // Consecutive or monotonic allocation would leak how many writs a task holds; random picks in 2^17 are neither.
    const sorted = [...idxs].sort((x, y) => x - y);
    expect(sorted[7]! - sorted[0]!).toBeGreaterThan(64);
    expect(idxs).not.toEqual(sorted);
  });

  it('serves the list with its media type, Accept honoured, ETag and Cache-Control max-age = ttl, HEAD without a body', async () => {
    const A = newKey();
    await spawn('/agent/http', A.key, [(await rootGrant(A.jkt, 'http-1')).grant]);
    const r = await get('/status/1', { headers: { accept: 'application/statuslist+jwt' } });
    expect(r.status).toBe(200);
    expect(r.headers).toMatchObject({
      'content-type': 'application/statuslist+jwt',
      'cache-control': 'max-age=60',
      'access-control-allow-origin': '*',
      ...SECURITY_HEADERS,
    });
    const [header, payload] = r.body
      .split('.')
      .slice(0, 2)
      .map((x) => JSON.parse(Buffer.from(x, 'base64url').toString()) as Record<string, unknown>);
    expect(header).toEqual({ alg: 'ES256', typ: 'statuslist+jwt', kid: w.server.ca.writSigner().kid });
    expect(payload).toMatchObject({ iss: 'spiffe://example.org', sub: `${base()}/status/1`, ttl: 60, status_list: { bits: 1, lst: expect.any(String) } });
    // 24 h, but never past the signing writ key's own end.
    expect(payload!.exp).toBe(Math.min((payload!.iat as number) + 86400, Math.floor(w.server.ca.writSigner().notAfter.getTime() / 1000)));
    expect(StatusList.decode(payload!.status_list).size).toBe(1 << 17);
    const etag = r.headers.etag as string;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    expect(await get('/status/1', { headers: { 'if-none-match': etag } })).toMatchObject({ status: 304, body: '' });
    const head = await get('/status/1', { method: 'HEAD' });
    expect(head).toMatchObject({ status: 200, body: '' });
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(r.body)));
    for (const accept of ['*/*', 'application/*;q=0.5', 'text/html, application/statuslist+jwt;q=0.9'])
      expect((await get('/status/1', { headers: { accept } })).status, accept).toBe(200);
    for (const accept of ['application/json', 'application/statuslist+jwt;q=0', 'application/statuslist+cwt'])
      expect((await get('/status/1', { headers: { accept } })).status, accept).toBe(406);
  });

  it('serves the SPIFFE bundle endpoint (https_spiffe: the listener presents the issuer SVID)', async () => {
    const r = await get('/.well-known/spiffe-bundle');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.body).toBe(bundleDocuments(w.server.ca.bundle()).jwks);
    const b = parseSpiffeBundle('example.org', r.body);
    expect([...b.writAuthorities!.keys()]).toContain(w.server.ca.writSigner().kid);
    const cert = await new Promise<PeerCertificate>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: w.server.httpPort!, ca: w.bundlePem, servername: 'localhost' }, () => {
        resolve(s.getPeerCertificate());
        s.end();
      });
      s.on('error', reject);
    });
    expect(cert.subjectaltname).toContain('URI:spiffe://example.org/writ/server');
  });

  it('is strict: 404 for unknown paths, 405 for other methods, 413 for a body, 414/431 for oversized requests, 400 for a non-path target', async () => {
    for (const path of [
      '/',
      '/status',
      '/status/',
      '/status/0',
      '/status/01',
      '/status/1/',
      '/status/1/x',
      '/status/%31',
      '/status/..',
      '/.well-known/',
      '/favicon.ico',
    ])
      expect((await get(path)).status, path).toBe(404);
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) {
      const r = await get('/status/1', { method });
      expect(r.status, method).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
    }
    const big = await get('/status/1', {
      body: Buffer.alloc(64 * 1024, 0x61),
      method: 'GET',
      headers: { 'content-type': 'text/plain', 'content-length': String(64 * 1024) },
    });
    expect(big.status).toBe(413);
    expect(big.headers.connection).toBe('close');
    expect((await get(`/status/1?${'x'.repeat(MAX_URL_BYTES)}`)).status).toBe(414);
    expect((await get('/status/1', { headers: { 'x-pad': 'y'.repeat(MAX_HEADER_BYTES) } })).status).toBe(431);
    expect((await raw('GET https://127.0.0.1/status/1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')).text).toMatch(/^HTTP\/1\.1 400 /);
    for (const r of [await get('/nope'), await get('/status/1', { method: 'POST' })]) expect(r.headers).toMatchObject(SECURITY_HEADERS);
  });

  it('closes a request that does not finish its headers in time, and refuses TLS below 1.2', async () => {
    const slow = await raw('GET /status/1 HTTP/1.1\r\nhost: x\r\n', 15_000);
    expect(slow.closedAfterMs).toBeLessThan(9000);
    expect(slow.text === '' || /^HTTP\/1\.1 408 /.test(slow.text)).toBe(true);
    await expect(raw('', 3000, { maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).rejects.toThrow(
      /protocol version|unsupported protocol|no protocols/i,
    );
  }, 20_000);
});

describe('the HTTPS listener, each on a server of its own', () => {
  it('a renewed serving certificate is presented to new connections at once', async () => {
    let offset = 0;
    const w = await startServer({ http_listen: '127.0.0.1:0' }, { clock: { now: () => new Date(Date.now() + offset) } });
    try {
      const serial = () =>
        new Promise<string>((resolve, reject) => {
          // The renewed certificate starts 31 minutes ahead of the wall clock: compare serials, not validity.
          const s = connect({ host: '127.0.0.1', port: w.server.httpPort!, rejectUnauthorized: false }, () => {
            resolve(s.getPeerCertificate().serialNumber);
            s.end();
          });
          s.on('error', reject);
        });
      const first = await serial();
      expect(await serial()).toBe(first);
      offset = 31 * 60_000; // past half of the 1 h serving certificate
      await w.server.tick();
      expect(await serial()).not.toBe(first);
    } finally {
      await w.stop();
    }
  });

  it('answers 429 past the per-peer request budget', async () => {
    const w = await startServer({ http_listen: '127.0.0.1:0', limits: { attestations_per_second: 0.001, attestation_burst: 3 } });
    try {
      const status = () =>
        new Promise<number>((resolve, reject) => {
          const req = request(`${w.server.http!.url}/.well-known/spiffe-bundle`, { ca: w.bundlePem, agent: false }, (res) => {
            res.resume();
            resolve(res.statusCode!);
          });
          req.on('error', reject);
          req.end();
        });
      expect([await status(), await status(), await status(), await status()]).toEqual([200, 200, 200, 429]);
    } finally {
      await w.stop();
    }
  });

  it('writ server --http-listen (the binary, as make run starts it) prints the listener and serves on it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-http-cli-'));
    const child = spawnProcess(
      join(REPO_ROOT, 'bin', 'writ'),
      ['server', '--data-dir', join(dir, 'd'), '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    try {
      let err = '';
      const m = await new Promise<RegExpExecArray>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no start: ${err}`)), 30_000);
        child.stderr!.on('data', (d: Buffer) => {
          err += d.toString();
          const x = /HTTPS {13}: (https:\/\/127\.0\.0\.1:(\d+)) \(port (\d+): \/status\/<list>, \/\.well-known\/spiffe-bundle\)/.exec(err);
          if (x) {
            clearTimeout(t);
            resolve(x);
          }
        });
        child.once('exit', (c) => reject(new Error(`exited ${c}: ${err}`)));
      });
      expect(m[2]).toBe(m[3]);
      const ca = readFileSync(join(dir, 'd', 'bundle.pem'), 'utf8');
      const body = await new Promise<string>((resolve, reject) => {
        const req = request(`${m[1]}/.well-known/spiffe-bundle`, { ca, agent: false }, (res) => {
          let b = '';
          res.on('data', (c: Buffer) => {
            b += c.toString();
          });
          res.on('end', () => resolve(b));
        });
        req.on('error', reject);
        req.end();
      });
      expect(body).toBe(readFileSync(join(dir, 'd', 'bundle.jwks'), 'utf8'));
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);

  it('is off unless configured', async () => {
    const w = await startServer();
    try {
      expect(w.server.httpPort).toBeUndefined();
      expect(w.server.http).toBeUndefined();
    } finally {
      await w.stop();
    }
  });
});
