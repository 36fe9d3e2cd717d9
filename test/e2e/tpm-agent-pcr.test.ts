/**
 * Regression: with `attestation.tpm.agent_pcr: 16` and a measured agent, the issuer's own Verify
 * and `writ verify --deep` used to refuse writs the issuer had just minted (the re-verifier was
 * built with the default PCR 23). The re-verifier now comes from the same settings as the
 * verifier; a relying party names the PCR (--tpm-agent-pcr) or takes the one the agent log names.
 */
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest } from '../../src/agent/attest-client.js';
import { createGrant, verifyRemote } from '../../src/agent/grant-client.js';
import { TpmAttestor } from '../../src/attestation/tpm/attestor.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { createProof } from '../../src/writ/proof.js';
import { parseWrit } from '../../src/writ/writ.js';
import { runCli } from '../helpers/cli.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';
import { HAVE_SWTPM, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { tmpDir } from '../helpers/tmp.js';

if (process.env.CI && !HAVE_SWTPM) throw new Error('CI requires swtpm (scripts/install-test-deps.sh)');

describe.skipIf(!HAVE_SWTPM)('agent code measured into a configured PCR (agent_pcr: 16)', () => {
  let T: Swtpm;
  let s: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;

  beforeAll(async () => {
    T = await startSwtpm();
    oidc = await startOidc();
    s = await startServer({
      principals: [{ issuer: oidc.issuer, audience: 'writ' }],
      attestation: { tpm: { manufacturer_roots: [T.rootPem], intermediates: [T.intermediatePem], pcr_selection: 'sha256:0,1,2,3,4,7,16', agent_pcr: 16 } },
    });
    await adminClients(s.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await oidc?.stop();
    await T?.stop();
  });

  it("the issuer's Verify and `writ verify --deep` accept the writ the issuer minted", async () => {
    const dir = tmpDir();
    const agentPath = join(dir, 'agent-bin');
    writeFileSync(agentPath, 'the agent executable\n');
    const digest = createHash('sha256').update(readFileSync(agentPath)).digest('hex');
    await adminClients(s.adminSocket).admin.createEntry({
      entry: {
        spiffeId: 'spiffe://example.org/agent/measured16',
        selectors: [
          { type: 'tpm', value: 'model:swtpm' },
          { type: 'tpm', value: `agent_code:sha256:${digest}` },
        ],
      },
    });
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const root = await createGrant(s.address, s.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: 'pcr16',
      goal: 'read the widgets',
      ttlSeconds: 600,
      scope: [{ action: 'repo:read', resource: 'repo://acme/widgets' }],
      maxDepth: 0,
      delegateJkt: jwkThumbprint(createPublicKey(key)),
    });
    const tpm = await T.open();
    const attestor = new TpmAttestor(tpm, { measure: { path: agentPath, logFile: join(dir, 'pcr16.log'), pcr: 16 } });
    let writ: string;
    try {
      const r = await attest({
        server: s.address,
        bundlePem: s.bundlePem,
        evidenceType: 'tpm',
        key,
        respond: (c) => attestor.respond(c),
        grants: [root.grant],
      });
      expect(r.spiffeId).toBe('spiffe://example.org/agent/measured16');
      writ = r.writ!;
    } finally {
      await attestor.close();
      await tpm.close();
    }
    expect(parseWrit(writ).claims.att.sel).toContain(`tpm:agent_code:sha256:${digest}`);
    const proof = () => createProof(writ, key, { audience: 'rp', method: 'GET /x', now: new Date() });

    const remote = await verifyRemote(s.address, s.bundlePem, { writ, proof: proof(), audience: 'rp', method: 'GET /x', deep: true });
    expect(remote.error).toBe('');
    expect(remote.valid).toBe(true);

    writeFileSync(join(dir, 'writ.jws'), writ);
    const verify = (...extra: string[]) => {
      writeFileSync(join(dir, 'proof'), proof());
      return runCli([
        'verify',
        '--bundle',
        s.bundleJwksPath,
        '--audience',
        'rp',
        '--method',
        'GET /x',
        '--writ',
        join(dir, 'writ.jws'),
        '--proof',
        join(dir, 'proof'),
        '--deep',
        '--tpm-roots',
        T.rootPem,
        '--tpm-intermediates',
        T.intermediatePem,
        ...extra,
      ]);
    };
    const derived = await verify();
    expect(derived.err).toBe('');
    expect(derived.code).toBe(0);
    const told = await verify('--tpm-agent-pcr', '16');
    expect(told.code).toBe(0);
    const wrong = await verify('--tpm-agent-pcr', '23');
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/the agent measurement log may only hold events for PCR 23/);
  }, 60_000);
});
