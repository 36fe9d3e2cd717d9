/**
 * The CLI's error contract, through the real executable (bin/writ → dist/) against a real
 * `writ server` child process: exit 0 on success, 1 with one line on stderr on failure, 2 on a
 * usage error (the command line itself is wrong; the line is followed by a pointer to `writ
 * help`), and nothing misleading on stdout. One test per error a new user met trying the README
 * (issue #8, section 5), each asserting the exact words.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { delegateFromWrit } from '../../src/agent/delegate.js';
import { readPrivateKey } from '../../src/agent/keys.js';
import { startDevIdp } from '../../src/dev/idp.js';
import { keySigner, type JwsSigner } from '../../src/jose/jws.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { freePort } from '../helpers/ports.js';
import { HAVE_SWTPM, startSwtpm, type Swtpm } from '../helpers/swtpm.js';

const run = promisify(execFile);
const WRIT = join(REPO_ROOT, 'bin', 'writ');
if (!existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `make build` (make test does) before the CLI tests');
const USAGE_HINT = "Run 'writ help' for usage.\n";
const CONNECTION_REFUSED = 'connection refused (is `writ server` listening there?)';

/** A policy for join-token agents: engineers delegate on repo://acme/*, agents of writ.local receive it. */
const POLICY = `
@id("eng-delegates-acme")
permit(principal, action == Writ::Action::"delegate", resource)
when { principal.groups.contains("eng") && resource.resource like "repo://acme/*" };

@id("agents-receive-acme")
permit(principal, action == Writ::Action::"receive", resource)
when { principal.trustDomain == "writ.local" && resource.resource like "repo://acme/*" };
`;
/** Line 3 has a dangling `&&`: Cedar stops at the `}` after it. */
const BAD_POLICY = `@id("broken")
permit(principal, action == Writ::Action::"delegate", resource)
when { principal.groups.contains("eng") && };
`;

let dir: string;
let server: ChildProcess;
let address: string;
let serverLog = '';
let serverErr = '';
let oidc: TestOidc;
let jkt1: string;
let jkt2: string;

const f = (...p: string[]) => join(dir, ...p);

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WRIT_')) env[k] = v;
  return { ...env, ...extra };
}

async function writ(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(WRIT, args, { cwd: dir, env: cleanEnv({ WRIT_DATA_DIR: f('data') }) });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/** A failure as the contract says: exit 1, nothing on stdout, exactly this one line on stderr. */
async function expectFailure(args: string[], line: string | RegExp): Promise<string> {
  const r = await writ(...args);
  expect({ code: r.code, stdout: r.stdout }, r.stderr).toEqual({ code: 1, stdout: '' });
  expect(r.stderr.split('\n')).toHaveLength(2);
  if (typeof line === 'string') expect(r.stderr).toBe(`writ: ${line}\n`);
  else expect(r.stderr).toMatch(line);
  return r.stderr;
}

/** A usage error: exit 2, nothing on stdout, the reason then the pointer to `writ help`. */
async function expectUsage(args: string[], line: string): Promise<void> {
  const r = await writ(...args);
  expect(r).toEqual({ code: 2, stdout: '', stderr: `writ: ${line}\n${USAGE_HINT}` });
}

/** The server's JSON log line (on its stdout) that carries `requestId`, once it is written. */
async function logLineWithRequestId(requestId: string): Promise<Record<string, unknown>> {
  const end = Date.now() + 5_000;
  for (;;) {
    const line = serverLog.split('\n').find((l) => l.includes(`"requestId":"${requestId}"`));
    if (line) return JSON.parse(line) as Record<string, unknown>;
    if (Date.now() > end) throw new Error(`no log line with request id ${requestId} in:\n${serverLog}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `writ grant create` against `server` (the live issuer unless a test names another: --server repeated is a failover list). */
const grantArgs = (extra: string[] = [], server = address) => [
  'grant',
  'create',
  '--server',
  server,
  '--bundle',
  f('data', 'bundle.pem'),
  '--token-file',
  f('alice.jwt'),
  '--task-id',
  'errors-1',
  '--goal',
  'errors',
  '--scope',
  'repo:*=repo://acme/*',
  '--delegate',
  jkt1,
  '--out',
  f('unused.grant'),
  ...extra,
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'writ-err-'));
  oidc = await startOidc();
  writeFileSync(f('writ.yaml'), `principals:\n  - { issuer: ${oidc.issuer}, audience: writ }\n`);
  server = spawn(WRIT, ['server', '--config', f('writ.yaml'), '--data-dir', f('data'), '--listen', '127.0.0.1:0'], {
    cwd: dir,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout!.on('data', (d: Buffer) => (serverLog += d.toString()));
  address = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start: ${serverErr}`)), 30_000);
    server.stderr!.on('data', (d: Buffer) => {
      serverErr += d.toString();
      const m = /public gRPC \(TLS\) : (\S+)/.exec(serverErr);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    server.once('exit', (c) => reject(new Error(`server exited with ${c}: ${serverErr}`)));
  });
  mkdirSync(f('policy'));
  writeFileSync(f('policy', 'acme.cedar'), POLICY);
  mkdirSync(f('bad-policy'));
  writeFileSync(f('bad-policy', 'bad.cedar'), BAD_POLICY);
  const ok = async (...args: string[]) => {
    const r = await writ(...args);
    expect(r.code, `writ ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };
  await ok('policy', 'push', f('policy'));
  writeFileSync(f('alice.jwt'), oidc.token('alice', { groups: ['eng'] }));
  jkt1 = await ok('agent', 'keygen', '--out', f('k1'));
  jkt2 = await ok('agent', 'keygen', '--out', f('k2'));
  await ok(...grantArgs(['--ttl', '30m', '--max-depth', '2', '--out', f('root.grant')]));
  const token = await ok('token', 'create', '--spiffe-id', 'spiffe://writ.local/agent/a');
  await ok(
    'agent',
    'attest',
    '--server',
    address,
    '--bundle',
    f('data', 'bundle.pem'),
    '--join-token',
    token,
    '--key',
    f('k1', 'agent.key'),
    '--grant',
    f('root.grant'),
    '--out',
    f('c1'),
  );
  writeFileSync(
    f('proof'),
    `${await ok('proof', 'create', '--writ', f('c1', 'writ.jws'), '--key', f('k1', 'agent.key'), '--audience', 'rp', '--method', 'GET /x')}\n`,
  );
}, 90_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  await oidc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Every command is a node start (seconds on a loaded machine): generous per-test time.
describe('CLI errors a new user met (issue #8 §5), through bin/writ against a real writ server', { timeout: 120_000 }, () => {
  it('a wrong port: "cannot reach the issuer at HOST:PORT: connection refused", no grpc-js internals', async () => {
    const closed = `127.0.0.1:${await freePort()}`;
    const attest = await expectFailure(
      ['agent', 'attest', '--server', closed, '--bundle', f('data', 'bundle.pem'), '--join-token', 'x', '--out', f('nowhere')],
      `cannot reach the issuer at ${closed}: ${CONNECTION_REFUSED}`,
    );
    expect(attest).not.toMatch(/Resolution note|ECONNREFUSED|14 UNAVAILABLE|No connection established/);
    await expectFailure(grantArgs([], closed), `cannot reach the issuer at ${closed}: ${CONNECTION_REFUSED}`);
    // A port where something else answers (here: the OIDC provider's plain HTTP) is not the issuer.
    const other = new URL(oidc.issuer).host;
    await expectFailure(
      ['agent', 'attest', '--server', other, '--bundle', f('data', 'bundle.pem'), '--join-token', 'x', '--out', f('nowhere')],
      `cannot reach the issuer at ${other}: TLS handshake failed: the server there is not the writ issuer of this bundle (wrong port, or another trust domain)`,
    );
    expect(existsSync(f('nowhere'))).toBe(false);
  });

  it('--server without a host is a usage error (exit 2), not a certificate error', async () => {
    for (const bad of ['8443', 'localhost', ':8443']) {
      const line = `--server must be HOST:PORT, e.g. 127.0.0.1:8443 (got ${JSON.stringify(bad)})`;
      await expectUsage(['agent', 'attest', '--server', bad, '--bundle', f('data', 'bundle.pem'), '--join-token', 'x', '--out', f('nowhere')], line);
      await expectUsage(grantArgs([], bad), line);
    }
  });

  it('a PEM file given where a JWKS is expected is named as such (and the other way round), exit 1', async () => {
    const verify = (bundle: string) => ['verify', '--bundle', bundle, '--audience', 'rp', '--writ', f('c1', 'writ.jws'), '--proof', f('proof')];
    await expectFailure(
      verify(f('data', 'bundle.pem')),
      `--bundle: ${f('data', 'bundle.pem')} is PEM; writ verify needs the SPIFFE bundle as JWKS (bundle.jwks beside it, or \`writ bundle show --format jwks\`)`,
    );
    await expectFailure(verify(f('alice.jwt')), `--bundle: ${f('alice.jwt')} is not JSON; writ verify needs the SPIFFE bundle as JWKS (bundle.jwks)`);
    const jwks = f('data', 'bundle.jwks');
    await expectFailure(
      ['agent', 'attest', '--server', address, '--bundle', jwks, '--join-token', 'x', '--out', f('nowhere')],
      `--bundle: ${jwks} is JSON (a SPIFFE bundle as JWKS?); this verb needs the issuer's trust bundle as PEM (the server's bundle.pem, or \`writ bundle show\`)`,
    );
    await expectFailure(
      grantArgs(['--bundle', f('alice.jwt')]),
      `--bundle: ${f('alice.jwt')} holds no PEM certificate; this verb needs the issuer's trust bundle as PEM (the server's bundle.pem, or \`writ bundle show\`)`,
    );
  });

  it('a missing file is said in words, naming the option: "--bundle: cannot read F: no such file"', async () => {
    const missing = f('missing.pem');
    const cases: Array<[string[], string]> = [
      [['agent', 'attest', '--server', address, '--bundle', missing, '--join-token', 'x', '--out', f('nowhere')], '--bundle'],
      [grantArgs(['--bundle', missing]), '--bundle'],
      [grantArgs(['--token-file', missing]), '--token-file'],
      [['verify', '--bundle', missing, '--audience', 'rp', '--writ', f('c1', 'writ.jws'), '--proof', f('proof')], '--bundle'],
      [['verify', '--bundle', f('c1', 'bundle.jwks'), '--audience', 'rp', '--writ', missing, '--proof', f('proof')], '--writ'],
      [
        [
          'verify',
          '--bundle',
          f('c1', 'bundle.jwks'),
          '--audience',
          'rp',
          '--writ',
          f('c1', 'writ.jws'),
          '--proof',
          f('proof'),
          '--deep',
          '--tpm-roots',
          missing,
        ],
        '--tpm-roots',
      ],
      [['proof', 'create', '--writ', f('c1', 'writ.jws'), '--key', missing, '--audience', 'rp', '--method', 'GET /x'], '--key'],
      [
        ['agent', 'attest', '--server', address, '--bundle', f('data', 'bundle.pem'), '--join-token', 'x', '--grant', missing, '--out', f('nowhere')],
        '--grant',
      ],
      [['server', '--config', missing, '--data-dir', f('unused-data')], '--config'],
    ];
    for (const [args, flag] of cases) {
      const err = await expectFailure(args, `${flag}: cannot read ${missing}: no such file`);
      expect(err).not.toMatch(/ENOENT/);
    }
    expect(existsSync(f('unused-data'))).toBe(false);
  });

  it('Cedar parse errors at writ policy push name file:line:column, and nothing is activated', async () => {
    const before = (await writ('policy', 'show', '--json')).stdout;
    const col = BAD_POLICY.split('\n')[2]!.indexOf('}') + 1;
    await expectFailure(['policy', 'push', f('bad-policy')], new RegExp(`^writ: policy: bad\\.cedar:3:${col}: unexpected token \`\\}\``));
    expect((await writ('policy', 'show', '--json')).stdout).toBe(before);
    await expectFailure(['policy', 'push', f('no-such-dir')], `policy: cannot read the directory ${f('no-such-dir')}: no such directory`);
  });

  it("writ grant delegate with a key that is not the writ's cnf key exits 1 (not 2), naming cnf", async () => {
    await expectFailure(
      ['grant', 'delegate', '--writ', f('c1', 'writ.jws'), '--key', f('k2', 'agent.key'), '--child', jkt2, '--out', f('wrong-key.chain')],
      `the key is not the one this writ is bound to (cnf.jkt ${jkt1}, key ${jkt2})`,
    );
    expect(existsSync(f('wrong-key.chain'))).toBe(false);
  });

  it('writ grant delegate refuses a wider scope or a longer life before signing, with the reason', async () => {
    const delegate = (extra: string[]) => [
      'grant',
      'delegate',
      '--writ',
      f('c1', 'writ.jws'),
      '--key',
      f('k1', 'agent.key'),
      '--child',
      jkt2,
      '--out',
      f('wide.chain'),
      ...extra,
    ];
    await expectFailure(delegate(['--scope', 'repo:*=repo://*']), "delegation: grant 1 widens the scope: repo:*=repo://* is not inside its parent's scope");
    await expectFailure(
      delegate(['--scope', 'deploy:prod=repo://acme/widgets']),
      /^writ: delegation: grant 1 widens the scope: deploy:prod=repo:\/\/acme\/widgets is not inside/,
    );
    await expectFailure(
      delegate(['--ttl', '2h']),
      /^writ: delegation: the grant would end after its parent \(\d{4}-\d\d-\d\dT[\d:.]+Z\); ask for a shorter lifetime\n$/,
    );
    expect(existsSync(f('wide.chain'))).toBe(false);
    // "Before signing": the agent key is never asked to sign what would be refused.
    let signatures = 0;
    const real = keySigner(readPrivateKey(f('k1', 'agent.key')));
    const counting: JwsSigner = {
      alg: real.alg,
      publicKey: real.publicKey,
      sign: (b) => {
        signatures++;
        return real.sign(b);
      },
    };
    const writText = readFileSync(f('c1', 'writ.jws'), 'utf8').trim();
    const req = { childJkt: jkt2, boundaries: [], escalate: [], now: new Date() };
    await expect(delegateFromWrit(writText, counting, { ...req, scope: [{ action: 'repo:*', resource: 'repo://*' }] })).rejects.toThrow(/widens the scope/);
    expect(signatures).toBe(0);
    // The narrower hop it may sign, it signs once.
    await delegateFromWrit(writText, counting, { ...req, scope: [{ action: 'repo:read', resource: 'repo://acme/widgets' }] });
    expect(signatures).toBe(1);
  });

  it("writ proof create with a key that is not the writ's cnf key is refused", async () => {
    await expectFailure(
      ['proof', 'create', '--writ', f('c1', 'writ.jws'), '--key', f('k2', 'agent.key'), '--audience', 'rp', '--method', 'GET /x'],
      `the key is not the one this writ is bound to (cnf.jkt ${jkt1}, key ${jkt2})`,
    );
  });

  it('a --ttl above the maximum is refused, never cut', async () => {
    const proof = (ttl: string) => [
      'proof',
      'create',
      '--writ',
      f('c1', 'writ.jws'),
      '--key',
      f('k1', 'agent.key'),
      '--audience',
      'rp',
      '--method',
      'GET /x',
      '--ttl',
      ttl,
    ];
    await expectFailure(proof('10m'), 'proof: a proof lives 1..300 seconds; 600 asked for');
    await expectFailure(proof('301s'), 'proof: a proof lives 1..300 seconds; 301 asked for');
    const atMax = await writ(...proof('5m'));
    expect(atMax.code, atMax.stderr).toBe(0);
    const claims = JSON.parse(Buffer.from(atMax.stdout.trim().split('.')[1]!, 'base64url').toString()) as { iat: number; exp: number };
    expect(claims.exp - claims.iat).toBe(300);
    await expectFailure(grantArgs(['--ttl', '48h']), 'delegation: task lifetime must be at most 86400s');
    await expectFailure(['token', 'create', '--ttl', '48h'], 'token: ttl must be between 1s and 86400s');
    await expectFailure(
      ['dev', 'idp', 'token', '--issuer', oidc.issuer, '--sub', 'alice', '--ttl', '48h'],
      /^writ: dev idp: \S+ answered HTTP 400: ttl must be a whole number of seconds, 1\.\.86400\n$/,
    );
  });

  it('a writ verify --action deny prints nothing on stdout and one line on stderr; an allow says so on stdout', async () => {
    const verify = async (proofName: string, action: string, resource: string) => {
      const p = await writ('proof', 'create', '--writ', f('c1', 'writ.jws'), '--key', f('k1', 'agent.key'), '--audience', 'rp', '--method', 'GET /x');
      writeFileSync(f(proofName), p.stdout);
      return [
        'verify',
        '--bundle',
        f('c1', 'bundle.jwks'),
        '--audience',
        'rp',
        '--writ',
        f('c1', 'writ.jws'),
        '--proof',
        f(proofName),
        '--action',
        action,
        '--resource',
        resource,
      ];
    };
    await expectFailure(
      await verify('proof-deny', 'repo:read', 'repo://other/x'),
      'repo:read on repo://other/x is not allowed: deny, outside the scope (the writ itself is valid)',
    );
    const allow = await writ(...(await verify('proof-allow', 'repo:read', 'repo://acme/x')));
    expect(allow.code, allow.stderr).toBe(0);
    expect(allow.stderr).toBe('');
    expect(allow.stdout).toMatch(/^valid \(standard\): http:\/\/127\.0\.0\.1:\d+#alice -> spiffe:\/\/writ\.local\/agent\/a\n/);
    expect(allow.stdout.trimEnd().split('\n').at(-1)).toBe('repo:read on repo://acme/x: allow');
  });

  it('a refusal whose reason the issuer hides names a request id, under which the server log has the reason', async () => {
    const forged = oidc.token('alice', { groups: ['eng'] }, { key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey });
    writeFileSync(f('forged.jwt'), forged);
    const err = await expectFailure(
      grantArgs(['--token-file', f('forged.jwt')]),
      /^writ: principal token rejected \(the server log has the reason under request id [0-9a-f]{12}\)\n$/,
    );
    const id = /request id ([0-9a-f]{12})/.exec(err)![1]!;
    expect(await logLineWithRequestId(id)).toMatchObject({ code: 'ERR_PRINCIPAL_INVALID', requestId: id, reason: expect.stringMatching(/^principal: /) });
  });

  describe.skipIf(!HAVE_SWTPM)('with a software TPM', () => {
    let tpm: Swtpm;
    beforeAll(async () => {
      tpm = await startSwtpm();
    }, 60_000);
    afterAll(async () => {
      await tpm?.stop();
    });

    it('"attestation failed: evidence rejected" names a request id, under which the server log has the reason', async () => {
      // This issuer trusts no TPM manufacturer: the evidence is refused, the reason kept from the caller.
      const err = await expectFailure(
        ['agent', 'attest', '--server', address, '--bundle', f('data', 'bundle.pem'), '--tpm', tpm.spec, '--out', f('tpm-creds')],
        /^writ: attestation failed: evidence rejected \(the server log has the reason under request id [0-9a-f]{12}\)\n$/,
      );
      const id = /request id ([0-9a-f]{12})/.exec(err)![1]!;
      expect(await logLineWithRequestId(id)).toMatchObject({
        code: 'ERR_EVIDENCE_INVALID',
        evidenceType: 'tpm',
        reason: 'attestation(tpm): no TPM manufacturer roots are configured',
      });
      expect(existsSync(f('tpm-creds'))).toBe(false);
    });
  });

  it('writ dev idp token: an unreachable provider in words; --wait waits for one that is starting', async () => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    await expectFailure(
      ['dev', 'idp', 'token', '--issuer', issuer, '--sub', 'alice'],
      `dev idp: cannot reach ${issuer}/: connection refused (is \`writ dev idp\` running there?)`,
    );
    await expectUsage(
      ['dev', 'idp', 'token', '--issuer', issuer, '--sub', 'alice', '--wait', 'soon'],
      '--wait: invalid duration "soon" (use e.g. 90s, 5m, 1h30m)',
    );
    const waiting = writ('dev', 'idp', 'token', '--issuer', issuer, '--sub', 'alice', '--wait', '20s');
    await new Promise((r) => setTimeout(r, 1_500));
    const idp = await startDevIdp({ host: '127.0.0.1', port, clock: { now: () => new Date() } });
    try {
      const r = await waiting;
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(Buffer.from(r.stdout.split('.')[1]!, 'base64url').toString())).toMatchObject({ iss: issuer, sub: 'alice', dev: true });
    } finally {
      await idp.stop();
    }
  });

  it('writ healthcheck --wait gives up with the reason and how long it waited', async () => {
    await expectFailure(
      ['healthcheck', '--data-dir', f('no-server'), '--wait', '1s'],
      `cannot reach the writ server admin socket at ${f('no-server', 'admin.sock')} (is \`writ server\` running with this --data-dir?) (waited 1s)`,
    );
    const up = await writ('healthcheck', '--wait', '5s');
    expect(up).toEqual({ code: 0, stdout: `serving (${f('data', 'admin.sock')})\n`, stderr: '' });
  });
});
