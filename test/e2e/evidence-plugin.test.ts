/**
 * The evidence plug-in seam: a fake evidence type registered only through test builtins lists
 * goes through config parsing, a real handshake over gRPC (the agent side driven by the real CLI
 * verb), the issuer's own Verify, and `writ verify --deep`, without any code outside its folder
 * knowing its name (test/architecture.test.ts checks the "without").
 */
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_EVIDENCE } from '../../src/attestation/builtins.js';
import { BUILTIN_PRODUCERS } from '../../src/agent/builtins.js';
import { createGrant, verifyRemote } from '../../src/agent/grant-client.js';
import { main } from '../../src/cli/main.js';
import { runCli } from '../helpers/cli.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { ConfigError } from '../../src/errors.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { serverSettings } from '../../src/server/settings.js';
import { parseWrit } from '../../src/writ/writ.js';
import { FAKE_TYPE, fakePlugin, fakeProducer } from '../fakes/evidence-fake/plugin.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';

const evidence = [...BUILTIN_EVIDENCE, fakePlugin];
const catalog = { evidence, producers: [...BUILTIN_PRODUCERS, fakeProducer] };

/** The CLI in this process, with the test catalog. */
const writ = (...argv: string[]) => runCli(argv, { catalog });

describe('a fake evidence type through every seam', () => {
  // Shared by the tests of this block (tmpDir() would be removed after the first).
  const dir = mkdtempSync(join(tmpdir(), 'writ-fake-'));
  const device = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const devicePub = join(dir, 'device.pub');
  const deviceKey = join(dir, 'device.key');
  writeFileSync(devicePub, device.publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(deviceKey, device.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const selector = `${FAKE_TYPE}:device:${createHash('sha256')
    .update(device.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;
  let s: Awaited<ReturnType<typeof startServer>>;
  const logs: string[] = [];
  let oidc: TestOidc;

  beforeAll(async () => {
    oidc = await startOidc();
    s = await startServer(
      { principals: [{ issuer: oidc.issuer, audience: 'writ' }], attestation: { [FAKE_TYPE]: { devices: [devicePub], context: 'ctx-under-test' } } },
      { evidence, logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) }) },
    );
    await adminClients(s.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    await adminClients(s.adminSocket).admin.createEntry({
      entry: { spiffeId: 'spiffe://example.org/agent/hsm', selectors: [{ type: FAKE_TYPE, value: selector.split(':').slice(1).join(':') }] },
    });
  });
  afterAll(async () => {
    await s?.stop();
    await oidc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses its own config section, its problems reported with every other problem', () => {
    const err = (() => {
      try {
        serverSettings({ listen: 'nowhere', attestation: { [FAKE_TYPE]: { devices: [join(dir, 'missing.pem')], colour: 'red' } } }, [], evidence);
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(err).toBeInstanceOf(ConfigError);
    const text = err.problems.join('\n');
    expect(text).toContain('listen:');
    expect(text).toContain(`unknown key attestation.${FAKE_TYPE}.colour`);
    expect(text).toContain(`attestation.${FAKE_TYPE}.devices: ${join(dir, 'missing.pem')}`);
    // Without the plug-in in the catalog its section is an unknown key, naming the types there are.
    expect(() => serverSettings({ attestation: { [FAKE_TYPE]: {} } })).toThrow(
      `unknown key attestation.fake_hsm (evidence types: ${BUILTIN_EVIDENCE.map((p) => p.type).join(', ')})`,
    );
  });

  it('attests through the CLI verb over gRPC, and the issuer and `writ verify --deep` both re-verify the writ', async () => {
    const agentKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    writeFileSync(join(dir, 'agent.key'), agentKey.export({ type: 'pkcs8', format: 'pem' }));
    const root = await createGrant(s.address, s.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: 'hsm-1',
      goal: 'read the widgets',
      ttlSeconds: 600,
      scope: [{ action: 'repo:read', resource: 'repo://acme/widgets' }],
      maxDepth: 0,
      delegateJkt: jwkThumbprint(createPublicKey(agentKey)),
    });
    writeFileSync(join(dir, 'root.grant'), `${root.grant}\n`);
    writeFileSync(join(dir, 'bundle.pem'), s.bundlePem);
    const out = join(dir, 'creds');
    const args = [
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      join(dir, 'bundle.pem'),
      '--key',
      join(dir, 'agent.key'),
      '--grant',
      join(dir, 'root.grant'),
      '--out',
      out,
    ];
    // The producer's own option selects it; a wrong context is refused by the issuer's verifier.
    const wrong = await writ(...args, '--fake-hsm', deviceKey, '--fake-hsm-context', 'other');
    expect(wrong.code).toBe(1);
    // The reason is hidden from the caller (leak policy), who is told where to find it.
    const id = /^writ: attestation failed: evidence rejected \(the server log has the reason under request id ([0-9a-f]{12})\)\n$/.exec(wrong.err)?.[1];
    expect(id, wrong.err).toBeDefined();
    const logged = logs.map((l) => JSON.parse(l) as { requestId?: string; reason?: string }).find((l) => l.requestId === id);
    expect(logged?.reason).toBe('attestation(fake_hsm): signature does not verify');
    const ok = await writ(...args, '--fake-hsm', deviceKey, '--fake-hsm-context', 'ctx-under-test');
    expect(ok.err).toBe('');
    expect(ok.out.trim()).toBe('spiffe://example.org/agent/hsm');
    const writText = readFileSync(join(out, 'writ.jws'), 'utf8').trim();
    const claims = parseWrit(writText).claims;
    expect(claims.att.type).toBe(FAKE_TYPE);
    expect(claims.att.sel).toEqual([selector]);
    expect(claims.att.ev).toBeDefined();

    // The issuer's Verify re-verifies with its own settings (the same context its verifier used).
    const proofFor = async () => {
      const r = await writ('proof', 'create', '--writ', join(out, 'writ.jws'), '--key', join(dir, 'agent.key'), '--audience', 'rp', '--method', 'GET /x');
      expect(r.code).toBe(0);
      writeFileSync(join(dir, 'proof'), r.out);
      return r.out.trim();
    };
    const remote = await verifyRemote(s.address, s.bundlePem, { writ: writText, proof: await proofFor(), audience: 'rp', method: 'GET /x', deep: true });
    expect(remote.error).toBe('');
    expect(remote.valid).toBe(true);
    expect(remote.checks.map((c) => c.check)).toContain(`${FAKE_TYPE}: a trusted device signed the binding digest under context ctx-under-test`);

    // A relying party with the plug-in's own options, offline.
    const verify = (...extra: string[]) =>
      writ(
        'verify',
        '--bundle',
        join(out, 'bundle.jwks'),
        '--audience',
        'rp',
        '--method',
        'GET /x',
        '--writ',
        join(out, 'writ.jws'),
        '--proof',
        join(dir, 'proof'),
        '--deep',
        ...extra,
      );
    await proofFor();
    const good = await verify('--fake-hsm-devices', devicePub, '--fake-hsm-context', 'ctx-under-test', '--json');
    expect(good.code).toBe(0);
    expect(JSON.parse(good.out).checks).toContainEqual({
      check: `${FAKE_TYPE}: a trusted device signed the binding digest under context ctx-under-test`,
      by: 'verifier',
    });
    await proofFor();
    const otherContext = await verify('--fake-hsm-devices', devicePub, '--fake-hsm-context', 'other');
    expect(otherContext.code).toBe(1);
    expect(otherContext.err).toMatch(/embedded evidence fails re-verification: attestation\(fake_hsm\): signature does not verify/);
    await proofFor();
    const untrusted = await verify('--fake-hsm-context', 'ctx-under-test');
    expect(untrusted.code).toBe(1);
    expect(untrusted.err).toMatch(/device is not trusted/);
  });

  it('writ enclave check dispatches to the plug-in named by --type, with the common options', async () => {
    const nonce = Buffer.alloc(32, 9);
    const ev = join(dir, 'evidence.json');
    const sig = (await fakeProducer.open({ 'fake-hsm': deviceKey, 'fake-hsm-context': 'c1' })).respond({ nonce, payload: Buffer.alloc(0) });
    writeFileSync(ev, await sig);
    const base = ['enclave', 'check', '--type', 'fake-hsm', '--evidence', ev, '--roots', devicePub, '--fake-hsm-context', 'c1'];
    const ok = await writ(...base, '--report-data', nonce.toString('hex'));
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.out).toBe('ok        a trusted device signed the report data\nunchecked device firmware: a fake has none\n');
    const json = await writ(...base, '--report-data', nonce.toString('hex'), '--json');
    expect(JSON.parse(json.out)).toMatchObject({ valid: true, checks: [{ status: 'ok' }, { status: 'unchecked' }] });
    const bad = await writ(...base, '--report-data', Buffer.alloc(32, 8).toString('hex'));
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/^FAILED {4}a trusted device signed the report data: attestation\(fake_hsm\): signature does not verify\n/);
    const unknown = await writ('enclave', 'check', '--type', 'nope', '--evidence', ev);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/--type nope: unknown; one of (?:[a-z-]+, )*fake-hsm/);
    const refused = await writ(...base, '--report-data', '00', '--collateral', dir);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/--collateral: fake-hsm evidence has no collateral/);
  });

  it('writ agent attest --evidence NAME selects the producer by name', async () => {
    const tok = join(dir, 'none');
    const unknown = await writ('agent', 'attest', '--server', s.address, '--bundle', tok, '--out', dir, '--evidence', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/--evidence nope: unknown; one of (?:[a-z-]+, )*fake-hsm/);
    writeFileSync(join(dir, 'bundle.pem'), s.bundlePem);
    const out = join(dir, 'by-name');
    const r = await writ(
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      join(dir, 'bundle.pem'),
      '--out',
      out,
      '--evidence',
      'fake-hsm',
      '--fake-hsm-key',
      deviceKey,
      '--fake-hsm-context',
      'ctx-under-test',
    );
    expect(r.err).toBe('');
    expect(r.out).toBe('spiffe://example.org/agent/hsm\n');
    const both = await writ(
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      join(dir, 'bundle.pem'),
      '--out',
      out,
      '--evidence',
      'fake-hsm',
      '--join-token',
      'x',
    );
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/give exactly one of/);
  });

  it('its CLI options exist only where the plug-in is in the catalog', async () => {
    const r = await main(['agent', 'attest', '--fake-hsm', 'x'], { io: { out: () => {}, err: () => {} }, env: {} });
    expect(r).toBe(2);
  });
});
