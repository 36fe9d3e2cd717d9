/**
 * The README walkthrough ("A writ, end to end"), run AS WRITTEN: the shell blocks between the
 * README's walkthrough markers go to bash (`set -euo pipefail`) in a scratch checkout, with the
 * variables the README documents set to two swtpm instances and free ports; the output the
 * README shows under each command must appear, in order. On the files it leaves, what else a
 * relying party sees (a replayed proof, deep verification without roots, another instant) and
 * an independent Python relying party. `examples/walkthrough/swtpm.sh`, which the README offers
 * for want of a TPM, manufactures TPMs whose EK chains to its CA. Then, against an in-process
 * issuer whose writ key the test holds: TPM-resident writ keys, and what deep verification
 * catches that standard cannot (evidence spliced from another handshake).
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClients } from '../../src/cli/admin-client.js';
import { parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { parseEvidence1 } from '../../src/tpm/evidence.js';
import { tss2PrivateKeyPem } from '../../src/attestation/tpm/tss2-key.js';
import { parseAttest } from '../../src/tpm/structures.js';
import { tpmReverifier } from '../../src/attestation/tpm/reverify.js';
import { certificatesInFile } from '../../src/config/files.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { verifyWrit, type VerifyWritOptions } from '../../src/writ/verify.js';
import { parseWrit, signWrit, type WritClaims } from '../../src/writ/writ.js';
import { runCli } from '../helpers/cli.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { startServer } from '../helpers/server.js';
import { HAVE_SWTPM, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { POLICY } from '../helpers/policies.js';

const run = promisify(execFile);
const WRIT = join(REPO_ROOT, 'bin', 'writ');
const BUILT = existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'));
const PY = '/usr/bin/python3';
const HAVE_PY = spawnSync(PY, ['-c', 'import jwt, cryptography'], { stdio: 'ignore' }).status === 0;
if (!BUILT) throw new Error('dist/ is missing: run `make build` (make test does) before the CLI tests');
if (process.env.CI && !HAVE_PY) throw new Error('CI requires python3-jwt and python3-cryptography (scripts/install-test-deps.sh)');
const AUD = 'spiffe://example.org/tool/github';
const METHOD = 'GET /repos/acme/widgets';
/** The README's relying party. */
const README_AUD = 'spiffe://writ.local/tool/github';
/** The addresses the README's defaults name, replaced by the test's in the output it shows. */
const README_IDP = '127.0.0.1:9000';
const README_SERVER = '127.0.0.1:8443';

/** The environment of a child: this one without writ's own variables (a developer's WRIT_DATA_DIR must not leak in). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WRIT_')) env[k] = v;
  return { ...env, ...extra };
}

async function writ(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(WRIT, args, { env: cleanEnv() });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/** A free loopback port (and, with `pair`, the one above it free too, for swtpm's control channel). */
async function freePort(pair = false): Promise<number> {
  const listen = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(undefined));
      s.listen(port, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
  for (let i = 0; i < 50; i++) {
    const p = await listen(0);
    if (p === undefined || p >= 65535) continue;
    if (!pair || (await listen(p + 1)) !== undefined) return p;
  }
  throw new Error('no free port');
}

/** The README's walkthrough: its shell blocks between the markers, and the output it shows. */
interface Walkthrough {
  readonly script: string;
  /** Lines the README shows as output (comment lines right under a command), in order. */
  readonly expected: readonly string[];
}

function readmeWalkthrough(readme: string): Walkthrough {
  const begin = readme.split('<!-- walkthrough:begin -->');
  const end = begin[1]?.split('<!-- walkthrough:end -->');
  if (begin.length !== 2 || end?.length !== 2) throw new Error('README.md must hold exactly one <!-- walkthrough:begin --> … <!-- walkthrough:end --> pair');
  const blocks = [...end[0]!.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
  if (blocks.length === 0) throw new Error('no ```sh block between the walkthrough markers');
  const script = blocks.join('\n');
  const expected: string[] = [];
  // A comment right under a command (or its continuation lines, or more output) is its output;
  // a comment after a blank line or at the start explains what follows.
  let afterCommand = false;
  for (const line of script.split('\n')) {
    if (line.trim() === '') afterCommand = false;
    else if (line.startsWith('#')) {
      if (afterCommand) expected.push(line.replace(/^# ?/, ''));
    } else afterCommand = true;
  }
  return { script, expected };
}

/** Each expected line (`…` matching anything) must match a whole line of `out`, in order. */
function expectOutput(out: string, expected: readonly string[]): void {
  const lines = out.split('\n');
  let at = 0;
  for (const e of expected) {
    const re = new RegExp(
      `^${e
        .split('…')
        .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    );
    const found = lines.findIndex((l, i) => i >= at && re.test(l));
    if (found < 0) throw new Error(`the README shows\n  ${e}\nbut the walkthrough printed, from there on:\n${lines.slice(at).join('\n')}`);
    at = found + 1;
  }
}

/** The process is gone (or a zombie waiting for a parent that is not us). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!gone(pid)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

describe('the README walkthrough, extracted', () => {
  it('is found between the markers, with the output it promises', () => {
    const w = readmeWalkthrough(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'));
    expect(w.script).toMatch(/^writ server --config writ\.yaml/m);
    expect(w.script).toMatch(/^writ healthcheck --wait 30s$/m);
    expect(w.script).toMatch(/^EK_A=\$\(writ tpm ek-hash --tpm "\$TPM_A"\)$/m);
    expect(w.script).toMatch(/^writ dev idp --listen "\$IDP"/m);
    expect(w.script).toMatch(/--deep --tpm-roots tpm-roots\.pem --tpm-intermediates tpm-intermediates\.pem/);
    expect(w.expected).toContain('valid (deep): http://127.0.0.1:9000#alice -> spiffe://writ.local/agent/planner -> spiffe://writ.local/agent/reader');
    expect(w.expected).not.toContain('What differs per machine; the defaults are what examples/walkthrough/swtpm.sh starts.');
  });

  it('refuses a README without markers, and finds output only right under commands', () => {
    expect(() => readmeWalkthrough('no markers')).toThrow(/exactly one/);
    const w = readmeWalkthrough(
      '<!-- walkthrough:begin -->\n```sh\n# explains\necho a \\\n  b\n# a b\n\n# explains too\necho c\n```\n<!-- walkthrough:end -->\n',
    );
    expect(w.expected).toEqual(['a b']);
    expect(() => expectOutput('a b\n', ['a …'])).not.toThrow();
    expect(() => expectOutput('a\nb\n', ['b', 'a'])).toThrow(/the README shows/);
  });
});

describe.skipIf(!HAVE_SWTPM)('writs on TPM evidence (swtpm): the README walkthrough as written, deep verification, splicing', () => {
  let tpmA: Swtpm;
  let tpmB: Swtpm;
  let scratch: string;
  const w = (...p: string[]) => join(scratch, 'walk', ...p);

  beforeAll(async () => {
    [tpmA, tpmB] = await Promise.all([startSwtpm(), startSwtpm()]);
    scratch = mkdtempSync(join(tmpdir(), 'writ-readme-'));
  }, 90_000);

  afterAll(async () => {
    await Promise.all([tpmA?.stop(), tpmB?.stop()]);
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('runs the README walkthrough as written: a grant, a TPM agent, delegation to a TPM child, deep verification back to the human', async () => {
    const { script, expected } = readmeWalkthrough(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'));
    // A scratch checkout: the README runs from one, with ./bin/writ and examples/ in it.
    symlinkSync(join(REPO_ROOT, 'bin'), join(scratch, 'bin'));
    symlinkSync(join(REPO_ROOT, 'examples'), join(scratch, 'examples'));
    const server = `127.0.0.1:${await freePort()}`;
    const idp = `127.0.0.1:${await freePort()}`;
    const pidsFile = join(scratch, 'background.pids');
    // Test-only lines around the README's: note the background processes' PIDs whatever happens.
    writeFileSync(join(scratch, 'walkthrough.sh'), `trap 'echo "\${SERVER_PID:-} \${IDP_PID:-}" > ${JSON.stringify(pidsFile)}' EXIT\n${script}`);
    const env = cleanEnv({
      TPM_A: tpmA.spec,
      TPM_B: tpmB.spec,
      TPM_ROOTS: `${tpmA.rootPem} ${tpmB.rootPem}`,
      TPM_INTERMEDIATES: `${tpmA.intermediatePem} ${tpmB.intermediatePem}`,
      SERVER: server,
      IDP: idp,
    });
    const bash = spawn('bash', ['-euo', 'pipefail', 'walkthrough.sh'], { cwd: scratch, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    bash.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    bash.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => bash.kill('SIGTERM'), 240_000);
    let code: number | null;
    let pids: number[] = [];
    try {
      code = await new Promise<number | null>((resolve) => bash.once('close', (c) => resolve(c)));
      clearTimeout(timer);
      pids = existsSync(pidsFile) ? readFileSync(pidsFile, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) : [];
      const logs = ['server.log', 'idp.log'].map((f) => (existsSync(w(f)) ? `--- walk/${f}\n${readFileSync(w(f), 'utf8').slice(-4000)}` : '')).join('\n');
      expect(code, `the walkthrough failed\n--- stdout\n${stdout}\n--- stderr\n${stderr}\n${logs}`).toBe(0);
      expect(pids).toHaveLength(2);
      // The README stops what it started.
      for (const pid of pids) expect(await waitGone(pid, 15_000), `pid ${pid} still runs after the README's kill`).toBe(true);
    } finally {
      clearTimeout(timer);
      if (bash.exitCode === null) bash.kill('SIGKILL');
      for (const pid of pids) if (!gone(pid)) process.kill(pid, 'SIGTERM');
    }
    expectOutput(
      stdout,
      expected.map((e) => e.replaceAll(README_IDP, idp).replaceAll(README_SERVER, server)),
    );
    // The agents' own keys were used, never copied; the reader's quote signed the binding digest its writ carries.
    expect(existsSync(w('planner', 'creds', 'svid.key'))).toBe(false);
    const claims = parseWrit(readFileSync(w('reader', 'creds', 'writ.jws'), 'utf8').trim()).claims;
    const ev = parseEvidence1(Buffer.from(claims.att.ev!, 'base64url'));
    expect(parseAttest(ev.attest).extraData.toString('base64url')).toBe(claims.att.bind);
    expect(claims.sub).toBe('spiffe://writ.local/agent/reader');
  }, 300_000);

  it("on the walkthrough's files: a replayed proof, deep verification without roots, another instant; and an independent Python relying party", async () => {
    if (!existsSync(w('reader', 'creds', 'writ.jws'))) throw new Error('the README walkthrough did not run');
    const rp = ['--bundle', w('reader', 'creds', 'bundle.jwks'), '--audience', README_AUD, '--writ', w('reader', 'creds', 'writ.jws')];
    const deep = ['--deep', '--tpm-roots', w('tpm-roots.pem'), '--tpm-intermediates', w('tpm-intermediates.pem')];
    // The walkthrough's proof again, against the walkthrough's replay cache: refused.
    const again = await writ('verify', ...rp, '--method', METHOD, '--proof', w('proof'), ...deep, '--replay-cache', w('seen.json'), '--json');
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ valid: false, code: 'ERR_PROOF_REPLAYED' });
    const proof = async (name: string, key = w('reader', 'agent.key')) => {
      const p = await writ('proof', 'create', '--writ', w('reader', 'creds', 'writ.jws'), '--key', key, '--audience', README_AUD, '--method', METHOD);
      writeFileSync(w(name), p.stdout);
      return p;
    };
    await proof('proof-a');
    const v = await writ('verify', ...rp, '--method', METHOD, '--proof', w('proof-a'), ...deep, '--json');
    expect(v.code, v.stderr + v.stdout).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ valid: true, level: 'deep', task: { id: 'triage-42' } });
    // Deep verification without the manufacturer roots cannot be done, and says so.
    await proof('proof-b');
    const noRoots = await writ('verify', ...rp, '--proof', w('proof-b'), '--deep');
    expect(noRoots.code).toBe(1);
    expect(noRoots.stderr).toMatch(/needs the TPM manufacturer roots/);
    // Only the walkthrough's manufacturer CAs will do: a root without its intermediate does not chain.
    const rootOnly = await writ('verify', ...rp, '--proof', w('proof-b'), '--deep', '--tpm-roots', w('tpm-roots.pem'));
    expect(rootOnly.code).toBe(1);
    expect(rootOnly.stderr).toMatch(/^writ: invalid: .*EK certificate/);
    // Verified at another instant (--at): long after the task, it is refused.
    const later = await writ('verify', ...rp, '--proof', w('proof-b'), '--at', '2099-01-01T00:00:00Z');
    expect(later.code).toBe(1);
    expect(later.stderr).toMatch(/expired/);

    if (!HAVE_PY) return console.warn('*** python3-jwt missing: the independent Python check is SKIPPED ***');
    const verifyPy = (proofFile: string) =>
      run(PY, [
        join(REPO_ROOT, 'test', 'interop', 'verify_writ.py'),
        w('reader', 'creds', 'bundle.jwks'),
        w('reader', 'creds', 'writ.jws'),
        proofFile,
        README_AUD,
        METHOD,
      ]);
    await proof('proof-py');
    const py = await verifyPy(w('proof-py'));
    expect(py.stdout.split('\n')).toEqual(['spiffe://writ.local/agent/reader', 'spiffe://writ.local/agent/planner <- alice', '']);
    // …and it refuses someone else's proof. `writ proof create` will not make one (the key is not the writ's cnf key)…
    const planner = await proof('proof-planner', w('planner', 'agent.key'));
    expect(planner.code).toBe(1);
    expect(planner.stderr).toMatch(/^writ: the key is not the one this writ is bound to \(cnf\.jkt /);
    // …so the attacker makes it with the library, and the independent relying party must refuse it.
    const readerWrit = readFileSync(w('reader', 'creds', 'writ.jws'), 'utf8').trim();
    writeFileSync(
      w('proof-planner'),
      `${createProof(readerWrit, createPrivateKey(readFileSync(w('planner', 'agent.key'))), { audience: README_AUD, method: METHOD, now: new Date() })}\n`,
    );
    const bad = await verifyPy(w('proof-planner')).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 1, stderr: expect.stringMatching(/not signed by the writ's cnf key/) });
  }, 150_000);

  it("examples/walkthrough/swtpm.sh (the README's TPMs when there are none): two TPMs whose EKs chain to its CA, stopped by it", async () => {
    const dir = join(scratch, 'swtpm');
    const [portA, portB] = [await freePort(true), await freePort(true)];
    const env = cleanEnv({ PORT_A: String(portA), PORT_B: String(portB) });
    const script = join(REPO_ROOT, 'examples', 'walkthrough', 'swtpm.sh');
    const pids = () => ['a', 'b'].flatMap((n) => (existsSync(join(dir, `${n}.pid`)) ? [Number(readFileSync(join(dir, `${n}.pid`), 'utf8'))] : []));
    let started: number[] = [];
    try {
      const up = await run(script, ['start', dir], { env, cwd: scratch });
      started = pids();
      expect(started).toHaveLength(2);
      expect(up.stdout.split('\n')).toEqual([
        `TPM a: swtpm:host=127.0.0.1,port=${portA} (pid ${started[0]})`,
        `TPM b: swtpm:host=127.0.0.1,port=${portB} (pid ${started[1]})`,
        `TPM_ROOTS=${dir}/localca/swtpm-localca-rootca-cert.pem`,
        `TPM_INTERMEDIATES=${dir}/localca/issuercert.pem`,
        '',
      ]);
      const specA = `swtpm:host=127.0.0.1,port=${portA}`;
      const ekA = await writ('tpm', 'ek-hash', '--tpm', specA);
      const ekB = await writ('tpm', 'ek-hash', '--tpm', `swtpm:host=127.0.0.1,port=${portB}`);
      expect(ekA.code, ekA.stderr).toBe(0);
      expect(ekA.stdout).toMatch(/^[0-9a-f]{64}\n$/);
      expect(ekA.stderr).toBe(`selector: tpm:ek_hash:${ekA.stdout.trim()}\n`);
      expect(ekB.stdout).not.toBe(ekA.stdout);
      // An issuer trusting the script's CA verifies TPM A's EK chain and, with no entry for it,
      // says which selectors it proved: the EK hash `writ tpm ek-hash` printed among them.
      const s = await startServer({
        attestation: {
          tpm: { manufacturer_roots: [join(dir, 'localca', 'swtpm-localca-rootca-cert.pem')], intermediates: [join(dir, 'localca', 'issuercert.pem')] },
        },
      });
      try {
        writeFileSync(join(scratch, 'swtpm-bundle.pem'), s.bundlePem);
        const a = await writ(
          'agent',
          'attest',
          '--server',
          s.address,
          '--bundle',
          join(scratch, 'swtpm-bundle.pem'),
          '--tpm',
          specA,
          '--out',
          join(scratch, 'swtpm-creds'),
        );
        expect(a.code).toBe(1);
        expect(a.stdout).toBe('');
        expect(a.stderr).toMatch(new RegExp(`^writ: attestation: no registration entry matches the attested selectors .*tpm:ek_hash:${ekA.stdout.trim()}`));
      } finally {
        await s.stop();
      }
      // Started again, the TPMs keep their identity (manufactured once).
      const down = await run(script, ['stop', dir], { env, cwd: scratch });
      expect(down.stdout).toBe(`TPM a stopped (pid ${started[0]})\nTPM b stopped (pid ${started[1]})\n`);
      for (const pid of started) expect(await waitGone(pid, 10_000), `swtpm ${pid} still runs`).toBe(true);
      await run(script, ['start', dir], { env, cwd: scratch });
      started = pids();
      expect((await writ('tpm', 'ek-hash', '--tpm', specA)).stdout).toBe(ekA.stdout);
      await run(script, ['stop', dir], { env, cwd: scratch });
      for (const pid of started) expect(await waitGone(pid, 10_000), `swtpm ${pid} still runs`).toBe(true);
    } finally {
      for (const pid of [...started, ...pids()]) if (!gone(pid)) process.kill(pid, 'SIGTERM');
    }
  }, 180_000);
});

/** Against an in-process issuer whose writ key the test holds (to splice), with trust domain example.org. */
describe.skipIf(!HAVE_SWTPM)('writs on TPM evidence (swtpm), in-process issuer: TPM-resident keys, splicing', () => {
  let tpmA: Swtpm;
  let tpmB: Swtpm;
  let oidc: TestOidc;
  let s: Awaited<ReturnType<typeof startServer>>;
  let dir: string;
  const ekHash = async (t: Swtpm) => {
    const tpm = await t.open();
    const cert = new X509Certificate(await tpm.nvRead(0x01c00002));
    await tpm.close();
    return createHash('sha256')
      .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex');
  };
  const f = (...p: string[]) => join(dir, ...p);

  beforeAll(async () => {
    [tpmA, tpmB] = await Promise.all([startSwtpm(), startSwtpm()]);
    oidc = await startOidc();
    s = await startServer({
      principals: [{ issuer: oidc.issuer, audience: 'writ' }],
      attestation: {
        tpm: {
          manufacturer_roots: [tpmA.rootPem, tpmB.rootPem],
          intermediates: [tpmA.intermediatePem, tpmB.intermediatePem],
          pcr_selection: 'sha256:0,1,2,3,7',
        },
      },
    });
    dir = mkdtempSync(join(tmpdir(), 'writ-walk-'));
    for (const [t, path] of [
      [tpmA, '/agent/planner'],
      [tpmB, '/agent/reader'],
    ] as const) {
      await adminClients(s.adminSocket).admin.createEntry({
        entry: { spiffeId: `spiffe://example.org${path}`, selectors: [{ type: 'tpm', value: `ek_hash:${await ekHash(t)}` }] },
      });
    }
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'policies', 'acme.cedar'), POLICY);
    writeFileSync(join(dir, 'bundle.pem'), s.bundlePem);
    writeFileSync(join(dir, 'alice.jwt'), oidc.token('alice', { groups: ['eng'] }));

    // The walkthrough's chain on this issuer: planner on TPM A, reader on TPM B.
    // The CLI in this process (the verbs bin/writ runs, without a node start per command).
    const ok = async (...args: string[]) => {
      const r = await runCli(args);
      expect(r.code, `writ ${args.join(' ')}: ${r.err}`).toBe(0);
      return r.out.trim();
    };
    await ok('policy', 'push', f('policies'), '--admin-socket', s.adminSocket);
    const jktA = await ok('agent', 'keygen', '--out', f('planner'));
    await ok(
      'grant',
      'create',
      '--server',
      s.address,
      '--bundle',
      f('bundle.pem'),
      '--token-file',
      f('alice.jwt'),
      '--task-id',
      'triage-42',
      '--goal',
      'triage the open issues of acme/widgets',
      '--ttl',
      '30m',
      '--scope',
      'repo:*=repo://acme/*',
      '--boundary',
      '*=repo://acme/secrets*',
      '--max-depth',
      '2',
      '--delegate',
      jktA,
      '--out',
      f('root.grant'),
    );
    await ok(
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      f('bundle.pem'),
      '--tpm',
      tpmA.spec,
      '--key',
      f('planner', 'agent.key'),
      '--grant',
      f('root.grant'),
      '--out',
      f('planner', 'creds'),
    );
    const jktB = await ok('agent', 'keygen', '--out', f('reader'));
    await ok(
      'grant',
      'delegate',
      '--writ',
      f('planner', 'creds', 'writ.jws'),
      '--key',
      f('planner', 'agent.key'),
      '--child',
      jktB,
      '--scope',
      'repo:read=repo://acme/widgets*',
      '--out',
      f('reader.chain'),
    );
    await ok(
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      f('bundle.pem'),
      '--tpm',
      tpmB.spec,
      '--key',
      f('reader', 'agent.key'),
      '--grant',
      f('reader.chain'),
      '--out',
      f('reader', 'creds'),
    );
  }, 180_000);

  afterAll(async () => {
    await s?.stop();
    await oidc?.stop();
    await Promise.all([tpmA?.stop(), tpmB?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a TPM-resident writ key: the writ binds it, proofs and hop grants are signed inside the TPM, deep verification checks its certification', async () => {
    const jkt = (await writ('agent', 'keygen', '--tpm', tpmA.spec, '--out', f('resident'))).stdout.trim();
    expect(jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(existsSync(f('resident', 'agent.key'))).toBe(false);
    // The same wrapped key for OpenSSL's tpm2 provider (test/e2e/sidecar-tpm.test.ts signs a TLS handshake with one).
    const blob = JSON.parse(readFileSync(f('resident', 'agent.key.tpm'), 'utf8')) as { public: string; private: string };
    expect(readFileSync(f('resident', 'agent.key.tss2.pem'), 'utf8')).toBe(
      tss2PrivateKeyPem({ public: Buffer.from(blob.public, 'base64'), private: Buffer.from(blob.private, 'base64') }),
    );
    const g = await writ(
      'grant',
      'create',
      '--server',
      s.address,
      '--bundle',
      f('bundle.pem'),
      '--token-file',
      f('alice.jwt'),
      '--task-id',
      'resident-1',
      '--goal',
      'read with a TPM key',
      '--scope',
      'repo:read=repo://acme/*',
      '--max-depth',
      '1',
      '--delegate',
      jkt,
      '--out',
      f('root-resident.grant'),
    );
    expect(g.code, g.stderr).toBe(0);
    const tpmKey = ['--tpm', tpmA.spec, '--tpm-key-file', f('resident', 'agent.key.tpm')];
    const a = await writ(
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      f('bundle.pem'),
      ...tpmKey,
      '--grant',
      f('root-resident.grant'),
      '--out',
      f('resident', 'creds'),
    );
    expect(a.code, a.stderr).toBe(0);
    const claims = parseWrit(readFileSync(f('resident', 'creds', 'writ.jws'), 'utf8').trim()).claims;
    expect(claims.cnf.jkt).toBe(jkt);
    expect(claims.att.sel).toContain('tpm:key:resident');

    // A hop grant signed inside TPM A, for a child with a file key on TPM B.
    const jktC = (await writ('agent', 'keygen', '--out', f('resident-child'))).stdout.trim();
    const d = await writ(
      'grant',
      'delegate',
      '--writ',
      f('resident', 'creds', 'writ.jws'),
      ...tpmKey,
      '--child',
      jktC,
      '--scope',
      'repo:read=repo://acme/widgets',
      '--out',
      f('resident-child.chain'),
    );
    expect(d.code, d.stderr).toBe(0);
    const c = await writ(
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      f('bundle.pem'),
      '--tpm',
      tpmB.spec,
      '--key',
      f('resident-child', 'agent.key'),
      '--grant',
      f('resident-child.chain'),
      '--out',
      f('resident-child', 'creds'),
    );
    expect(c.code, c.stderr).toBe(0);

    const deep = [
      '--deep',
      '--tpm-roots',
      tpmA.rootPem,
      '--tpm-roots',
      tpmB.rootPem,
      '--tpm-intermediates',
      tpmA.intermediatePem,
      '--tpm-intermediates',
      tpmB.intermediatePem,
      '--json',
    ];
    const p1 = await writ('proof', 'create', '--writ', f('resident', 'creds', 'writ.jws'), ...tpmKey, '--audience', AUD, '--method', METHOD);
    expect(p1.code, p1.stderr).toBe(0);
    writeFileSync(f('proof-resident'), p1.stdout);
    const v1 = await writ(
      'verify',
      '--bundle',
      f('resident', 'creds', 'bundle.jwks'),
      '--audience',
      AUD,
      '--writ',
      f('resident', 'creds', 'writ.jws'),
      '--proof',
      f('proof-resident'),
      ...deep,
    );
    expect(v1.code, v1.stdout + v1.stderr).toBe(0);
    expect(JSON.parse(v1.stdout).checks).toContainEqual({ by: 'verifier', check: 'tpm: the writ key is TPM-resident, certified by the AK' });
    const p2 = await writ(
      'proof',
      'create',
      '--writ',
      f('resident-child', 'creds', 'writ.jws'),
      '--key',
      f('resident-child', 'agent.key'),
      '--audience',
      AUD,
      '--method',
      METHOD,
    );
    writeFileSync(f('proof-resident-child'), p2.stdout);
    const v2 = await writ(
      'verify',
      '--bundle',
      f('resident-child', 'creds', 'bundle.jwks'),
      '--audience',
      AUD,
      '--writ',
      f('resident-child', 'creds', 'writ.jws'),
      '--proof',
      f('proof-resident-child'),
      ...deep,
    );
    expect(v2.code, v2.stdout + v2.stderr).toBe(0);
    expect(JSON.parse(v2.stdout).chain).toEqual([`${oidc.issuer}#alice`, 'spiffe://example.org/agent/planner', 'spiffe://example.org/agent/reader']);
  }, 120_000);

  it("deep verification catches evidence spliced from another handshake, which standard verification must take on the issuer's word", async () => {
    const reader = readFileSync(f('reader', 'creds', 'writ.jws'), 'utf8').trim();
    const planner = readFileSync(f('planner', 'creds', 'writ.jws'), 'utf8').trim();
    const rc = parseWrit(reader).claims;
    const pc = parseWrit(planner).claims;
    const signer = s.server.ca.writSigner();
    const resign = (c: WritClaims) => signWrit(c, signer.signer, signer.kid);
    const key = createPrivateKey(readFileSync(f('reader', 'agent.key')));
    const bundle = parseSpiffeBundle('example.org', readFileSync(f('reader', 'creds', 'bundle.jwks'), 'utf8'));
    const check = (w: string, level: 'standard' | 'deep') => {
      const o: VerifyWritOptions = {
        writ: w,
        proof: createProof(w, key, { audience: AUD, method: METHOD, now: new Date() }),
        trust: { issuer: 'spiffe://example.org', writKeys: bundle.writAuthorities! },
        audience: AUD,
        now: new Date(),
        level,
        replayCache: new ProofReplayCache(),
        reverifiers: new Map([
          [
            'tpm',
            tpmReverifier({
              roots: [...certificatesInFile(tpmA.rootPem), ...certificatesInFile(tpmB.rootPem)],
              intermediates: [...certificatesInFile(tpmA.intermediatePem), ...certificatesInFile(tpmB.intermediatePem)],
            }),
          ],
        ]),
      };
      return () => verifyWrit(o);
    };
    expect(check(reader, 'deep')).not.toThrow();

    // The planner's evidence under the reader's writ, binding left consistent with the reader's contents.
    const spliced = await resign({ ...rc, att: { ...rc.att, ev: pc.att.ev!, ev_sha256: pc.att.ev_sha256, sel: pc.att.sel } });
    expect(check(spliced, 'standard')).not.toThrow();
    expect(check(spliced, 'deep')).toThrow(/embedded evidence fails re-verification: .*quote nonce mismatch/);
    // The planner's whole attestation (its own binding) under the reader's grants: the binding no longer adds up.
    expect(check(await resign({ ...rc, att: pc.att }), 'standard')).toThrow(/binding digest does not match/);
    // Evidence dropped from a TPM writ: deep verification refuses rather than trusting the issuer.
    const { ev: _dropped, ...withoutEv } = rc.att;
    expect(check(await resign({ ...rc, att: withoutEv }), 'deep')).toThrow(/needs the tpm evidence, and the writ does not embed it/);
    // Selectors the evidence does not prove.
    expect(check(await resign({ ...rc, att: { ...rc.att, sel: [...rc.att.sel, 'tpm:model:other'] } }), 'deep')).toThrow(/selectors differ/);
  });
});
