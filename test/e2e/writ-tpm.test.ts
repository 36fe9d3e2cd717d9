/**
 * The README walkthrough, through the real binary against real software TPMs: a principal
 * creates a grant, an agent on swtpm gets its writ, delegates to a child on another swtpm, and a
 * relying party verifies the child's writ at deep level, seeing the chain back to the human;
 * an independent Python relying party checks the same writ and proof. Then what deep
 * verification catches that standard cannot: evidence spliced from another handshake.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClients } from '../../src/cli/admin-client.js';
import { parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { parseEvidence1 } from '../../src/tpm/evidence.js';
import { parseAttest } from '../../src/tpm/structures.js';
import { tpmReverifier } from '../../src/attestation/tpm/reverify.js';
import { certificatesInFile } from '../../src/config/files.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { verifyWrit, type VerifyWritOptions } from '../../src/writ/verify.js';
import { parseWrit, signWrit, type WritClaims } from '../../src/writ/writ.js';
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

async function writ(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(WRIT, args);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe.skipIf(!HAVE_SWTPM)('writs on TPM evidence (swtpm): the walkthrough, deep verification, splicing', () => {
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
  }, 90_000);

  afterAll(async () => {
    await s?.stop();
    await oidc?.stop();
    await Promise.all([tpmA?.stop(), tpmB?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const f = (...p: string[]) => join(dir, ...p);

  it('walkthrough: grant, TPM agent, delegation to a TPM child, deep verification back to the human, and an independent Python relying party', async () => {
    const push = await writ('policy', 'push', f('policies'), '--admin-socket', s.adminSocket);
    expect(push.code, push.stderr).toBe(0);
    expect(push.stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
    expect((await writ('policy', 'show', push.stdout.trim(), '--admin-socket', s.adminSocket)).stdout).toMatch(/prod-deploys-need-approval/);

    const jktA = (await writ('agent', 'keygen', '--out', f('planner'))).stdout.trim();
    expect(jktA).toMatch(/^[A-Za-z0-9_-]{43}$/);
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
    expect(g.code, g.stderr).toBe(0);
    const a = await writ(
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
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout.trim()).toBe('spiffe://example.org/agent/planner');
    expect(existsSync(f('planner', 'creds', 'svid.key'))).toBe(false); // the agent's own key is used, never copied

    const jktB = (await writ('agent', 'keygen', '--out', f('reader'))).stdout.trim();
    const d = await writ(
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
    expect(d.code, d.stderr).toBe(0);
    const b = await writ(
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
    expect(b.code, b.stderr).toBe(0);

    // The quote's qualifying data is the binding digest the writ carries.
    const claims = parseWrit(readFileSync(f('reader', 'creds', 'writ.jws'), 'utf8').trim()).claims;
    const ev = parseEvidence1(Buffer.from(claims.att.ev!, 'base64url'));
    expect(parseAttest(ev.attest).extraData.toString('base64url')).toBe(claims.att.bind);

    const proof = await writ(
      'proof',
      'create',
      '--writ',
      f('reader', 'creds', 'writ.jws'),
      '--key',
      f('reader', 'agent.key'),
      '--audience',
      AUD,
      '--method',
      METHOD,
    );
    writeFileSync(f('proof'), proof.stdout);
    const verifyArgs = [
      'verify',
      '--bundle',
      f('reader', 'creds', 'bundle.jwks'),
      '--audience',
      AUD,
      '--method',
      METHOD,
      '--writ',
      f('reader', 'creds', 'writ.jws'),
      '--proof',
      f('proof'),
      '--deep',
      '--tpm-roots',
      tpmA.rootPem,
      '--tpm-roots',
      tpmB.rootPem,
      '--tpm-intermediates',
      tpmA.intermediatePem,
      '--tpm-intermediates',
      tpmB.intermediatePem,
      '--replay-cache',
      f('seen.json'),
      '--json',
    ];
    const v = await writ(...verifyArgs);
    expect(v.code, v.stderr + v.stdout).toBe(0);
    const report = JSON.parse(v.stdout);
    expect(report).toMatchObject({
      valid: true,
      level: 'deep',
      chain: [`${oidc.issuer}#alice`, 'spiffe://example.org/agent/planner', 'spiffe://example.org/agent/reader'],
      task: { id: 'triage-42' },
    });
    expect(report.checks).toContainEqual({ by: 'verifier', check: 'tpm: quote signed by the AK over the binding digest recomputed from the writ' });
    expect(report.checks).toContainEqual({ by: 'verifier', check: 'every grant signature: the root by the issuer writ key, each hop by its parent agent key' });
    expect(report.checks).toContainEqual({ by: 'issuer', check: expect.stringMatching(/^tpm: the AK lives in the TPM that holds this EK/) });

    // The same proof again: refused (the replay cache file remembers it).
    const again = await writ(...verifyArgs);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ valid: false, code: 'ERR_PROOF_REPLAYED' });
    // Deep verification without the manufacturer roots cannot be done, and says so.
    const proof2 = (
      await writ('proof', 'create', '--writ', f('reader', 'creds', 'writ.jws'), '--key', f('reader', 'agent.key'), '--audience', AUD, '--method', METHOD)
    ).stdout;
    writeFileSync(f('proof2'), proof2);
    const noRoots = await writ(
      'verify',
      '--bundle',
      f('reader', 'creds', 'bundle.jwks'),
      '--audience',
      AUD,
      '--writ',
      f('reader', 'creds', 'writ.jws'),
      '--proof',
      f('proof2'),
      '--deep',
    );
    expect(noRoots.code).toBe(1);
    expect(noRoots.stderr).toMatch(/needs the TPM manufacturer roots/);
    // Verified at another instant (--at): long after the task, it is refused.
    const later = await writ(
      'verify',
      '--bundle',
      f('reader', 'creds', 'bundle.jwks'),
      '--audience',
      AUD,
      '--writ',
      f('reader', 'creds', 'writ.jws'),
      '--proof',
      f('proof2'),
      '--at',
      '2099-01-01T00:00:00Z',
    );
    expect(later.code).toBe(1);
    expect(later.stderr).toMatch(/expired/);
    // Authorization answers from the last grant.
    const proof3 = (
      await writ('proof', 'create', '--writ', f('reader', 'creds', 'writ.jws'), '--key', f('reader', 'agent.key'), '--audience', AUD, '--method', METHOD)
    ).stdout;
    writeFileSync(f('proof3'), proof3);
    const authz = await writ(
      'verify',
      '--bundle',
      f('reader', 'creds', 'bundle.jwks'),
      '--audience',
      AUD,
      '--writ',
      f('reader', 'creds', 'writ.jws'),
      '--proof',
      f('proof3'),
      '--action',
      'repo:write',
      '--resource',
      'repo://acme/widgets',
    );
    // A refused action is a failure: nothing on stdout, one line on stderr saying why (the CLI contract).
    expect(authz.code).toBe(1);
    expect(authz.stdout).toBe('');
    expect(authz.stderr).toBe('writ: repo:write on repo://acme/widgets is not allowed: deny, outside the scope (the writ itself is valid)\n');

    if (!HAVE_PY) return console.warn('*** python3-jwt missing: the independent Python check is SKIPPED ***');
    const py = await run(PY, [
      join(REPO_ROOT, 'test', 'interop', 'verify_writ.py'),
      f('reader', 'creds', 'bundle.jwks'),
      f('reader', 'creds', 'writ.jws'),
      f('proof2'),
      AUD,
      METHOD,
    ]);
    expect(py.stdout.split('\n')).toEqual(['spiffe://example.org/agent/reader', `spiffe://example.org/agent/planner <- alice`, '']);
    // …and it refuses someone else's proof. `writ proof create` will not make one (the key is not the writ's cnf key)…
    const planner = await writ(
      'proof',
      'create',
      '--writ',
      f('reader', 'creds', 'writ.jws'),
      '--key',
      f('planner', 'agent.key'),
      '--audience',
      AUD,
      '--method',
      METHOD,
    );
    expect(planner.code).toBe(1);
    expect(planner.stderr).toMatch(/^writ: the key is not the one this writ is bound to \(cnf\.jkt /);
    // …so the attacker makes it with the library, and the independent relying party must refuse it.
    const readerWrit = readFileSync(f('reader', 'creds', 'writ.jws'), 'utf8').trim();
    writeFileSync(
      f('proof-planner'),
      `${createProof(readerWrit, createPrivateKey(readFileSync(f('planner', 'agent.key'))), { audience: AUD, method: METHOD, now: new Date() })}\n`,
    );
    const bad = await run(PY, [
      join(REPO_ROOT, 'test', 'interop', 'verify_writ.py'),
      f('reader', 'creds', 'bundle.jwks'),
      f('reader', 'creds', 'writ.jws'),
      f('proof-planner'),
      AUD,
      METHOD,
    ]).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 1, stderr: expect.stringMatching(/not signed by the writ's cnf key/) });
  }, 120_000);

  it('a TPM-resident writ key: the writ binds it, proofs and hop grants are signed inside the TPM, deep verification checks its certification', async () => {
    const jkt = (await writ('agent', 'keygen', '--tpm', tpmA.spec, '--out', f('resident'))).stdout.trim();
    expect(jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(existsSync(f('resident', 'agent.key'))).toBe(false);
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
  }, 60_000);

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
