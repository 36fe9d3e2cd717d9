/**
 * End to end through the real executable: `writ server` as a child process, operator verbs
 * over the admin socket, `writ agent attest`, and independent checks of what was minted by
 * tools we did not write (openssl, Python's PyJWT + cryptography).
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/shared.js';

const run = promisify(execFile);
const WRIT = join(REPO_ROOT, 'bin', 'writ');
const BUILT = existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'));
const PY = '/usr/bin/python3';
const HAVE_PY = spawnSync(PY, ['-c', 'import jwt, cryptography'], { stdio: 'ignore' }).status === 0;
const HAVE_OPENSSL = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
if (!BUILT) throw new Error('dist/ is missing: run `make build` (make test does) before the CLI tests');
if (process.env.CI && (!HAVE_PY || !HAVE_OPENSSL)) throw new Error('CI requires openssl and python3-jwt/python3-cryptography (scripts/install-test-deps.sh)');
if (!HAVE_PY) console.warn('\n*** /usr/bin/python3 with jwt+cryptography missing: the Python JWT-SVID check is SKIPPED ***\n');

let dir: string;
let server: ChildProcess;
let address: string;
let stderr = '';

async function writ(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(WRIT, args, { cwd: dir, env: { ...process.env, WRIT_DATA_DIR: join(dir, 'data') } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'writ-cli-'));
  server = spawn(WRIT, ['server', '--data-dir', join(dir, 'data'), '--listen', '127.0.0.1:0', '--trust-domain', 'example.org'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  address = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 20_000);
    server.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /public gRPC \(TLS\) : (\S+)/.exec(stderr);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    server.once('exit', (c) => reject(new Error(`server exited with ${c}: ${stderr}`)));
  });
});

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('writ CLI end to end', () => {
  it('prints where the bundle is and what to do next', () => {
    expect(stderr).toContain(`trust bundle      : ${join(dir, 'data', 'bundle.pem')}`);
    expect(stderr).toContain('writ token create');
  });

  it('creates an entry and a token, attests, and writes the SVID files', async () => {
    const tok = await writ('token', 'create', '--spiffe-id', 'spiffe://example.org/agent/cli', '--ttl', '5m');
    expect(tok.code).toBe(0);
    const token = tok.stdout.trim();
    expect(token).toMatch(/^[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    const out = join(dir, 'svid');
    const r = await writ(
      'agent',
      'attest',
      '--server',
      address,
      '--bundle',
      join(dir, 'data', 'bundle.pem'),
      '--join-token',
      token,
      '--out',
      out,
      '--jwt-audience',
      'https://rp.example',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('spiffe://example.org/agent/cli');
    for (const f of ['svid.pem', 'svid.key', 'bundle.pem', 'bundle.jwks', 'jwt-svid.txt']) expect(existsSync(join(out, f)), f).toBe(true);
  });

  it.skipIf(!HAVE_OPENSSL)('openssl verify accepts the minted chain against the published PEM bundle, and x509 -text shows the profile', async () => {
    const out = join(dir, 'svid');
    const pems = readFileSync(join(out, 'svid.pem'), 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g)!;
    expect(pems.length).toBe(2);
    writeFileSync(join(dir, 'leaf.pem'), pems[0]!);
    writeFileSync(join(dir, 'inter.pem'), pems[1]!);
    const v = await run('openssl', [
      'verify',
      '-x509_strict',
      '-purpose',
      'sslclient',
      '-CAfile',
      join(dir, 'data', 'bundle.pem'),
      '-untrusted',
      join(dir, 'inter.pem'),
      join(dir, 'leaf.pem'),
    ]);
    expect(v.stdout.trim()).toBe(`${join(dir, 'leaf.pem')}: OK`);
    const text = (await run('openssl', ['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-text'])).stdout;
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s*\n\s+TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(text).toMatch(/X509v3 Subject Alternative Name:\s*\n\s+URI:spiffe:\/\/example.org\/agent\/cli\n/);
    const inter = (await run('openssl', ['x509', '-in', join(dir, 'inter.pem'), '-noout', '-text'])).stdout;
    expect(inter).toMatch(/CA:TRUE/);
    expect(inter).toMatch(/Certificate Sign/);
    expect(inter).toMatch(/URI:spiffe:\/\/example.org\n/);
    // The key file matches the leaf.
    const keyPub = (await run('openssl', ['pkey', '-in', join(dir, 'svid', 'svid.key'), '-pubout'])).stdout;
    const certPub = (await run('openssl', ['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-pubkey'])).stdout;
    expect(keyPub).toBe(certPub);
  });

  it.skipIf(!HAVE_PY)('Python (PyJWT + cryptography) verifies the JWT-SVID against the published JWKS', async () => {
    const script = `
import json, sys, jwt
bundle = json.load(open(sys.argv[1]))
token = open(sys.argv[2]).read().strip()
header = jwt.get_unverified_header(token)
assert header["typ"] == "JWT" and header["alg"] == "ES256", header
keys = [k for k in bundle["keys"] if k.get("use") == "jwt-svid" and k.get("kid") == header["kid"]]
assert len(keys) == 1, "kid not in bundle"
claims = jwt.decode(token, jwt.PyJWK(keys[0]).key, algorithms=["ES256"], audience="https://rp.example", options={"require": ["exp", "iat", "sub", "aud"]})
print(claims["sub"])
`;
    const r = await run(PY, ['-c', script, join(dir, 'data', 'bundle.jwks'), join(dir, 'svid', 'jwt-svid.txt')]);
    expect(r.stdout.trim()).toBe('spiffe://example.org/agent/cli');
    const bad = await run(PY, [
      '-c',
      script.replace('https://rp.example', 'https://other.example'),
      join(dir, 'data', 'bundle.jwks'),
      join(dir, 'svid', 'jwt-svid.txt'),
    ]).catch((e) => e);
    expect((bad as { stderr: string }).stderr).toContain('InvalidAudienceError');
  });

  it('refuses to reuse a join token, with a one-line reason and a non-zero exit', async () => {
    const tok = (await writ('token', 'create', '--spiffe-id', 'spiffe://example.org/agent/once')).stdout.trim();
    const args = ['agent', 'attest', '--server', address, '--bundle', join(dir, 'data', 'bundle.pem'), '--join-token', tok, '--out', join(dir, 'once')];
    expect((await writ(...args)).code).toBe(0);
    const again = await writ(...args);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('writ: attestation(join_token): token has already been used\n');
  });

  it('manages entries: create, list, show, delete (JSON output)', async () => {
    const c = await writ(
      'entry',
      'create',
      '--spiffe-id',
      'spiffe://example.org/svc/x',
      '--selector',
      'join_token:abc',
      '--selector',
      'unix:uid:1000',
      '--x509-ttl',
      '10m',
      '--scope',
      'read:docs/*',
      '--hint',
      'demo',
      '--json',
    );
    expect(c.code).toBe(0);
    const e = JSON.parse(c.stdout);
    expect(e).toMatchObject({
      spiffe_id: 'spiffe://example.org/svc/x',
      selectors: ['join_token:abc', 'unix:uid:1000'],
      x509_svid_ttl: 600,
      scope_ceiling: ['read:docs/*'],
      hint: 'demo',
    });
    const list = JSON.parse((await writ('entry', 'list', '--json')).stdout);
    expect(list.map((x: { id: string }) => x.id)).toContain(e.id);
    const show = await writ('entry', 'show', e.id);
    expect(show.stdout).toContain('SPIFFE ID     : spiffe://example.org/svc/x');
    expect((await writ('entry', 'delete', e.id)).code).toBe(0);
    const gone = await writ('entry', 'show', e.id);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^writ: entry: no entry with id/);
    const dup1 = await writ('entry', 'create', '--spiffe-id', 'spiffe://example.org/svc/y', '--selector', 'k:v');
    const dup2 = await writ('entry', 'create', '--spiffe-id', 'spiffe://example.org/svc/y', '--selector', 'k:v');
    expect(dup1.code).toBe(0);
    expect(dup2.code).toBe(1);
    expect(dup2.stderr).toContain('already exists');
  });

  it('shows the bundle as PEM and as a SPIFFE JWKS', async () => {
    const pem = await writ('bundle', 'show', '--format', 'pem');
    expect(pem.stdout).toBe(readFileSync(join(dir, 'data', 'bundle.pem'), 'utf8'));
    const jwks = JSON.parse((await writ('bundle', 'show', '--format', 'jwks')).stdout);
    expect(jwks.spiffe_sequence).toBeGreaterThanOrEqual(1);
    expect(jwks.spiffe_refresh_hint).toBe(300);
    expect(jwks.keys.map((k: { use: string }) => k.use).sort()).toEqual(['jwt-svid', 'writ', 'x509-svid']);
    expect(jwks.keys.find((k: { use: string }) => k.use === 'jwt-svid').kid).toBeTruthy();
    // The writ key is its own kind: a kid distinct from every JWT-SVID key, ES256, P-256.
    const w = jwks.keys.find((k: { use: string }) => k.use === 'writ');
    expect(w).toMatchObject({ alg: 'ES256', kty: 'EC', crv: 'P-256' });
    expect(jwks.keys.filter((k: { kid?: string }) => k.kid === w.kid)).toHaveLength(1);
  });

  it('exits 2 with a usage error for bad flags and 1 when the server is unreachable', async () => {
    const bad = await writ('entry', 'create', '--nope');
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n')[0]).toMatch(/^writ: Unknown option '--nope'/);
    const down = await writ('entry', 'list', '--data-dir', join(dir, 'nowhere'));
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^writ: cannot reach the writ server admin socket at .*nowhere\/admin.sock/);
    expect(down.stderr.trim().split('\n').length).toBe(1);
  });

  it('refuses a second server on the same data directory', async () => {
    const r = await writ('server', '--data-dir', join(dir, 'data'), '--listen', '127.0.0.1:0');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('another writ server is serving');
  });

  it('reports every configuration problem at once', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'trust_domain: BAD\nlisten: nowhere\nsvid:\n  jwt_alg: none\n');
    const r = await writ('server', '--config', join(dir, 'bad.yaml'), '--data-dir', join(dir, 'other'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^writ: invalid configuration: .*trust_domain.*listen.*svid.jwt_alg/);
  });
});
