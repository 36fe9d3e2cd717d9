/**
 * The Workload API against a client we did not write: Python's grpcio (Debian python3-grpcio)
 * with stubs compiled at test time from the upstream ../shared/interop/workload.proto by
 * python3-grpc-tools, and python3-cryptography checking what it received
 * (test/interop/workload_api.py).
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, SHARED } from '../helpers/shared.js';
import { hsmSource, startHsmIssuer, startSidecar, type HsmIssuer } from '../helpers/sidecar.js';

const run = promisify(execFile);
const PY = '/usr/bin/python3';
const HAVE_PY = spawnSync(PY, ['-c', 'import grpc, grpc_tools, cryptography'], { stdio: 'ignore' }).status === 0;
if (process.env.CI && !HAVE_PY) throw new Error('CI requires python3-grpcio, python3-grpc-tools and python3-cryptography (scripts/install-test-deps.sh)');
if (!HAVE_PY) console.warn('\n*** /usr/bin/python3 with grpcio, grpc_tools and cryptography missing: the Python Workload API client is SKIPPED ***\n');

const ID = 'spiffe://example.org/agent/py';

interface PySeen {
  spiffe_id: string;
  uris: string[];
  serial: string;
  not_after: number;
  received_at: number;
  key_matches_leaf: boolean;
  chain_to_bundle: boolean;
}

describe.skipIf(!HAVE_PY)('a Python grpcio client of the Workload API', () => {
  let issuer: HsmIssuer;
  let sc: Awaited<ReturnType<typeof startSidecar>>;
  let stubs: string;

  beforeAll(async () => {
    stubs = mkdtempSync(join(tmpdir(), 'wpy-'));
    await run(PY, ['-m', 'grpc_tools.protoc', '-I', join(SHARED, 'interop'), `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, 'workload.proto']);
    issuer = await startHsmIssuer();
    // 4 s X.509-SVIDs: a rotation arrives while the client watches.
    await issuer.entry(ID, 4, 60);
    sc = await startSidecar(hsmSource({ address: issuer.s.address, bundlePem: issuer.s.bundlePem, deviceKey: issuer.deviceKey }));
    await sc.sidecar.ready();
  }, 60_000);
  afterAll(async () => {
    await sc?.close();
    await issuer?.stop();
    if (stubs) rmSync(stubs, { recursive: true, force: true });
  });

  it('receives the SVID with its key, a rotation as a new message, a JWT-SVID it validates, and INVALID_ARGUMENT without the header', async () => {
    const { stdout } = await run(PY, [join(REPO_ROOT, 'test', 'interop', 'workload_api.py'), stubs, sc.path, 'https://rp.example', '1'], { timeout: 60_000 });
    const r = JSON.parse(stdout) as {
      x509: PySeen[];
      federated_bundles: number;
      jwt: { spiffe_id: string; token: string };
      validated: { spiffe_id: string; aud: string[]; sub: string };
      jwt_bundles: Record<string, { keys: Array<{ kid: string }> }>;
      refusals: Record<string, [string, string]>;
    };
    expect(r.x509).toHaveLength(2);
    for (const s of r.x509) {
      expect(s.spiffe_id).toBe(ID);
      expect(s.uris).toEqual([ID]);
      expect(s.key_matches_leaf).toBe(true);
      expect(s.chain_to_bundle).toBe(true);
      expect(s.received_at).toBeLessThan(s.not_after);
    }
    expect(r.x509[1]!.serial).not.toBe(r.x509[0]!.serial);
    expect(r.federated_bundles).toBe(0);
    expect(r.jwt.spiffe_id).toBe(ID);
    expect(r.validated).toEqual({ spiffe_id: ID, aud: ['https://rp.example'], sub: ID });
    expect(Object.keys(r.jwt_bundles)).toEqual(['spiffe://example.org']);
    const kid = JSON.parse(Buffer.from(r.jwt.token.split('.')[0]!, 'base64url').toString()).kid as string;
    expect(r.jwt_bundles['spiffe://example.org']!.keys.map((k) => k.kid)).toContain(kid);
    expect(r.refusals).toEqual({
      x509_no_header: ['INVALID_ARGUMENT', 'security header missing from request'],
      jwt_no_header: ['INVALID_ARGUMENT', 'security header missing from request'],
      validate_wrong_audience: ['INVALID_ARGUMENT', expect.stringContaining('expected audience')],
    });
  }, 90_000);
});
