/** `writ verify --replay-cache FILE` run several times at once: exactly one run accepts a proof. */
import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createProof } from '../../src/writ/proof.js';
import { FakeIssuer, agent } from '../helpers/writ-fixture.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { tmpDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const WRIT = join(REPO_ROOT, 'bin', 'writ');
if (!existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'run.js'))) throw new Error('dist/ is missing: run `make build` (make test does) before the CLI tests');

describe('writ verify --replay-cache under concurrency', () => {
  it('six parallel runs with the same proof: one accepts, five refuse it as replayed', async () => {
    const dir = tmpDir();
    const iss = new FakeIssuer();
    const A = agent('a');
    const now = Math.floor(Date.now() / 1000);
    const { writ } = iss.writ(A, [iss.rootGrant(A, { now: now - 10 })], { now: now - 5 });
    const jwk = { ...(createPublicKey(iss.key).export({ format: 'jwk' }) as object), use: 'writ', kid: iss.kid, alg: 'ES256' };
    writeFileSync(join(dir, 'bundle.jwks'), JSON.stringify({ keys: [jwk] }));
    writeFileSync(join(dir, 'writ'), writ);
    writeFileSync(join(dir, 'proof'), createProof(writ, A.key, { audience: 'rp', method: 'GET /x', now: new Date() }));
    const args = [
      'verify',
      '--bundle',
      join(dir, 'bundle.jwks'),
      '--trust-domain',
      'example.org',
      '--audience',
      'rp',
      '--writ',
      join(dir, 'writ'),
      '--proof',
      join(dir, 'proof'),
      '--replay-cache',
      join(dir, 'seen.json'),
    ];
    const results = await Promise.all(
      Array.from({ length: 6 }, () =>
        run(WRIT, args).then(
          () => 0,
          (e: { code: number; stderr: string }) => {
            expect(e.stderr).toMatch(/this proof was already used/);
            return e.code;
          },
        ),
      ),
    );
    expect(results.filter((c) => c === 0)).toHaveLength(1);
    expect(results.filter((c) => c === 1)).toHaveLength(5);
    expect(existsSync(join(dir, 'seen.json.lock'))).toBe(false);
  }, 60_000);

  it('without --replay-cache the report says no replay check was made', async () => {
    const dir = tmpDir();
    const iss = new FakeIssuer();
    const A = agent('a');
    const now = Math.floor(Date.now() / 1000);
    const { writ } = iss.writ(A, [iss.rootGrant(A, { now: now - 10 })], { now: now - 5 });
    const jwk = { ...(createPublicKey(iss.key).export({ format: 'jwk' }) as object), use: 'writ', kid: iss.kid, alg: 'ES256' };
    writeFileSync(join(dir, 'bundle.jwks'), JSON.stringify({ keys: [jwk] }));
    writeFileSync(join(dir, 'writ'), writ);
    writeFileSync(join(dir, 'proof'), createProof(writ, A.key, { audience: 'rp', method: 'GET /x', now: new Date() }));
    const r = await run(WRIT, [
      'verify',
      '--bundle',
      join(dir, 'bundle.jwks'),
      '--trust-domain',
      'example.org',
      '--audience',
      'rp',
      '--writ',
      join(dir, 'writ'),
      '--proof',
      join(dir, 'proof'),
    ]);
    expect(r.stdout).toContain('[unchecked] proof one-time id: no replay cache was given');
    expect(r.stdout).not.toMatch(/\[checked {2}\] .*recorded/);
  }, 30_000);
});
