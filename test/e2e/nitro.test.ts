/**
 * The `nitro` evidence type end to end: a test Nitro PKI made here (root → regional → zonal →
 * instance → leaf, P-384, as AWS issues them) configured as the issuer's pinned root, a fake NSM
 * command that signs a document in the genuine format over the challenge nonce, real handshakes
 * over gRPC through `writ agent attest --evidence nitro`, the issuer's own deep Verify and
 * `writ verify --deep`; then splicing: a document from another handshake refused by the issuer
 * and, embedded in a re-signed writ, at deep level; a genuine AWS document embedded instead.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_PRODUCERS } from '../../src/agent/builtins.js';
import { BUILTIN_EVIDENCE } from '../../src/attestation/builtins.js';
import { createGrant, verifyRemote } from '../../src/agent/grant-client.js';
import { parseNitroDocument } from '../../src/attestation/nitro/document.js';
import { nitroReverifier } from '../../src/attestation/nitro/plugin.js';
import { nitroProducer } from '../../src/attestation/nitro/producer.js';
import { DEFAULT_NITRO_ANCHORS, sha256Hex } from '../../src/attestation/nitro/roots.js';
import type { EvidenceProducer } from '../../src/attestation/plugin.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { verifyWrit, type VerifyWritOptions } from '../../src/writ/verify.js';
import { parseWrit, signWrit, type WritClaims } from '../../src/writ/writ.js';
import { runCli } from '../helpers/cli.js';
import { nitroPki, nsmConfig, productionPcrs } from '../helpers/nitro-doc.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';
import { HAVE_SHARED, REPO_ROOT, vector } from '../helpers/shared.js';

const AUD = 'spiffe://example.org/tool/github';
const METHOD = 'GET /repos/acme/widgets';
const FAKE_NSM = join(REPO_ROOT, 'test', 'fakes', 'nitro-nsm.mjs');

describe('nitro evidence end to end: agent attest through a fake NSM command, issuer, writ verify --deep, splicing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'writ-nitro-'));
  const f = (...p: string[]) => join(dir, ...p);
  const pki = nitroPki(new Date());
  const pcrs = productionPcrs(3);
  const rootPem = `-----BEGIN CERTIFICATE-----\n${pki.root.der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;
  const pcr0 = pcrs.get(0)!.toString('hex');
  let s: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  const logs: string[] = [];

  const config = (name: string, extra: Record<string, unknown> = {}) => {
    writeFileSync(f(name), JSON.stringify({ ...nsmConfig({ pki, pcrs, moduleId: 'i-0123456789abcdef0-enc0123456789abcdef' }), ...extra }));
    return f(name);
  };
  const nsmArgs = (cfg: string) => ['--nitro-command', process.execPath, '--nitro-arg', FAKE_NSM, '--nitro-arg', cfg];

  /** A root grant for a fresh agent key under `name/`; returns the attest arguments (without evidence). */
  const agent = async (name: string, taskId: string) => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    writeFileSync(f(`${name}.key`), key.export({ type: 'pkcs8', format: 'pem' }));
    const root = await createGrant(s.address, s.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId,
      goal: 'read the widgets',
      ttlSeconds: 600,
      scope: [{ action: 'repo:read', resource: 'repo://acme/widgets' }],
      maxDepth: 0,
      delegateJkt: jwkThumbprint(createPublicKey(key)),
    });
    writeFileSync(f(`${name}.grant`), `${root.grant}\n`);
    return ['agent', 'attest', '--server', s.address, '--bundle', f('bundle.pem'), '--key', f(`${name}.key`), '--grant', f(`${name}.grant`), '--out', f(name)];
  };
  const proof = (name: string) =>
    createProof(readFileSync(f(name, 'writ.jws'), 'utf8').trim(), createPrivateKey(readFileSync(f(`${name}.key`))), {
      audience: AUD,
      method: METHOD,
      now: new Date(),
    });

  beforeAll(async () => {
    oidc = await startOidc();
    writeFileSync(f('root.pem'), rootPem);
    s = await startServer(
      { principals: [{ issuer: oidc.issuer, audience: 'writ' }], attestation: { nitro: { roots: [f('root.pem')], root_sha256: [sha256Hex(pki.root.der)] } } },
      { logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) }) },
    );
    await adminClients(s.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    await adminClients(s.adminSocket).admin.createEntry({
      entry: { spiffeId: 'spiffe://example.org/agent/enclave', selectors: [{ type: 'nitro', value: `pcr:0:${pcr0}` }] },
    });
    writeFileSync(f('bundle.pem'), s.bundlePem);
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await oidc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const loggedReason = (err: string) => {
    const id = /under request id ([0-9a-f]{12})/.exec(err)?.[1];
    expect(id, err).toBeDefined();
    return logs.map((l) => JSON.parse(l) as { requestId?: string; reason?: string }).find((l) => l.requestId === id)?.reason;
  };

  it('attests with --evidence nitro; the writ embeds the document; the issuer and writ verify --deep re-verify it', async () => {
    const args = await agent('a', 'nitro-1');
    const r = await runCli([...args, '--evidence', 'nitro', ...nsmArgs(config('a.json', { record: f('a.doc') }))]);
    expect(r.err).toBe('');
    expect(r.out).toBe('spiffe://example.org/agent/enclave\n');
    const claims = parseWrit(readFileSync(f('a', 'writ.jws'), 'utf8').trim()).claims;
    expect(claims.att.type).toBe('nitro');
    expect(claims.att.sel).toEqual([
      ...[0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => `nitro:pcr:${i}:${pcrs.get(i)!.toString('hex')}`),
      'nitro:module_id:i-0123456789abcdef0-enc0123456789abcdef',
    ]);
    // The embedded evidence is the document the NSM command printed, and its nonce is the binding digest.
    const doc = readFileSync(f('a.doc'));
    expect(Buffer.from(claims.att.ev!, 'base64url')).toEqual(doc);
    expect(parseNitroDocument(doc).document.nonce).toEqual(Buffer.from(claims.att.bind, 'base64url'));

    const writ = readFileSync(f('a', 'writ.jws'), 'utf8').trim();
    const remote = await verifyRemote(s.address, s.bundlePem, { writ, proof: proof('a'), audience: AUD, method: METHOD, deep: true });
    expect(remote.error).toBe('');
    expect(remote.valid).toBe(true);
    expect(remote.checks.map((c) => c.check)).toContain('nitro: the document nonce is the binding digest recomputed from the writ');

    const verify = async (...extra: string[]) => {
      writeFileSync(f('a.proof'), proof('a'));
      return runCli([
        'verify',
        '--bundle',
        f('a', 'bundle.jwks'),
        '--audience',
        AUD,
        '--method',
        METHOD,
        '--writ',
        f('a', 'writ.jws'),
        '--proof',
        f('a.proof'),
        '--deep',
        ...extra,
      ]);
    };
    const good = await verify('--enclave-roots', `nitro=${f('root.pem')}`, '--json');
    expect(good.err).toBe('');
    expect(good.code).toBe(0);
    const checks = (JSON.parse(good.out) as { checks: Array<{ check: string; by: string }> }).checks;
    for (const c of [
      'nitro: COSE_Sign1 ES384 signature by the leaf certificate over the exact Sig_structure',
      'nitro: the document nonce is the binding digest recomputed from the writ',
      'nitro: not a debug enclave (PCR0 is not all zero)',
    ])
      expect(checks).toContainEqual({ check: c, by: 'verifier' });
    expect(checks.find((c) => c.check.startsWith('nitro: chain leaf'))?.check).toMatch(new RegExp(`pinned root ${sha256Hex(pki.root.der).slice(0, 16)}`));
    expect(checks).toContainEqual({
      check: "nitro: the document was fresh at the handshake (its timestamp within the issuer's window of its clock)",
      by: 'issuer',
    });
    // With the shipped AWS root only, the test chain is refused.
    const aws = await verify();
    expect(aws.code).toBe(1);
    expect(aws.err).toMatch(
      /embedded evidence fails re-verification: attestation\(nitro\): the document's root \(cabundle\[0\], SHA-256 [0-9a-f]{64}\) is not a pinned root/,
    );
    const badRoots = await verify('--enclave-roots', `nitro=${f('a.json')}`);
    expect(badRoots.code).toBe(2);
    expect(badRoots.err).toMatch(/--enclave-roots nitro=/);
  });

  it('accepts base64 output; a failing or misbehaving NSM command fails on the agent with its reason', async () => {
    const args = await agent('b64', 'nitro-2');
    const ok = await runCli([...args, ...nsmArgs(config('b64.json', { base64: true }))]);
    expect(ok.err).toBe('');
    expect(ok.out).toBe('spiffe://example.org/agent/enclave\n');
    const failing = await runCli([...args, ...nsmArgs(config('fail.json', { fail: 'nsm: device busy' }))]);
    expect(failing.code).toBe(1);
    expect(failing.err).toMatch(/exited with code 3: nsm: device busy/);
    const missing = await runCli([...args, '--nitro-command', f('no-such-helper')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/cannot run the NSM command .*no-such-helper/);
    const slow = await runCli([
      ...args,
      '--nitro-command',
      process.execPath,
      '--nitro-arg',
      '-e',
      '--nitro-arg',
      'setTimeout(() => {}, 5000)',
      '--nitro-timeout',
      '200ms',
    ]);
    expect(slow.code).toBe(1);
    expect(slow.err).toMatch(/did not finish within 200 ms/);
    const none = await runCli([...args, '--evidence', 'nitro']);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/--evidence nitro needs --nitro-command/);
    // A document from another handshake: the agent refuses to send it.
    const replay = await runCli([...args, ...nsmArgs(config('replay.json', { replay: f('a.doc') }))]);
    expect(replay.code).toBe(1);
    expect(replay.err).toMatch(/nonce is not the challenge nonce/);
  });

  it('the issuer refuses a document from another handshake, a stale one and a debug enclave, each for its reason', async () => {
    // A producer that sends what it is given, without the agent's own nonce check.
    const sending = (doc: () => Buffer): EvidenceProducer => ({
      ...nitroProducer,
      async open() {
        return { respond: async () => doc(), close: async () => {} };
      },
    });
    const attestWith = async (p: EvidenceProducer, name: string) => {
      const args = await agent(name, `nitro-${name}`);
      return runCli([...args, '--evidence', 'nitro'], {
        catalog: { evidence: BUILTIN_EVIDENCE, producers: [...BUILTIN_PRODUCERS.filter((q) => q.type !== 'nitro'), p] },
      });
    };
    const spliced = await attestWith(
      sending(() => readFileSync(f('a.doc'))),
      'spliced',
    );
    expect(spliced.code).toBe(1);
    expect(spliced.err).toMatch(/evidence rejected/);
    expect(loggedReason(spliced.err)).toBe('attestation(nitro): the document nonce is not the binding digest');

    // A fresh nonce, but the document is six minutes old (the default window is five).
    const stale = await runCli([...(await agent('stale', 'nitro-stale')), ...nsmArgs(config('stale.json', { clockOffsetMs: -6 * 60_000 }))]);
    expect(stale.code).toBe(1);
    expect(loggedReason(stale.err)).toMatch(/^attestation\(nitro\): the document's timestamp .* is outside /);

    const debugCfg = f('debug.json');
    writeFileSync(debugCfg, JSON.stringify(nsmConfig({ pki, pcrs: new Map([...pcrs].map(([i]) => [i, Buffer.alloc(48)])) })));
    const debug = await runCli([...(await agent('debug', 'nitro-debug')), ...nsmArgs(debugCfg)]);
    expect(debug.code).toBe(1);
    expect(loggedReason(debug.err)).toBe('attestation(nitro): the enclave runs in debug mode (PCR0 is all zero) and debug enclaves are not allowed');
  });

  it.skipIf(!HAVE_SHARED)('deep verification refuses a re-signed writ whose document is from another handshake, or a genuine AWS document', async () => {
    const args = await agent('c', 'nitro-3');
    expect((await runCli([...args, ...nsmArgs(config('c.json'))])).code).toBe(0);
    const a = parseWrit(readFileSync(f('a', 'writ.jws'), 'utf8').trim()).claims;
    const c = parseWrit(readFileSync(f('c', 'writ.jws'), 'utf8').trim()).claims;
    const signer = s.server.ca.writSigner();
    const resign = (w: WritClaims) => signWrit(w, signer.signer, signer.kid);
    const bundle = parseSpiffeBundle('example.org', readFileSync(f('c', 'bundle.jwks'), 'utf8'));
    const key = createPrivateKey(readFileSync(f('c.key')));
    const check = (w: string, level: 'standard' | 'deep', anchors = [pki.root.der]) => {
      const o: VerifyWritOptions = {
        writ: w,
        proof: createProof(w, key, { audience: AUD, method: METHOD, now: new Date() }),
        trust: { issuer: 'spiffe://example.org', writKeys: bundle.writAuthorities! },
        audience: AUD,
        now: new Date(),
        level,
        replayCache: new ProofReplayCache(),
        reverifiers: new Map([['nitro', nitroReverifier({ anchors, allowDebug: true })]]),
      };
      return () => verifyWrit(o);
    };
    const cw = readFileSync(f('c', 'writ.jws'), 'utf8').trim();
    expect(check(cw, 'deep')).not.toThrow();
    // a's document under c's writ (same selectors: the same enclave): standard takes it on the issuer's word, deep does not.
    const spliced = await resign({ ...c, att: { ...c.att, ev: a.att.ev!, ev_sha256: a.att.ev_sha256 } });
    expect(check(spliced, 'standard')).not.toThrow();
    expect(check(spliced, 'deep')).toThrow(/embedded evidence fails re-verification: attestation\(nitro\): the document nonce is not the binding digest/);
    // A genuine AWS document (debug, 2024) with the AWS root trusted too: its chain holds at its own timestamp, its nonce does not.
    const real = vector('nitro/sample-attestation-doc.cbor');
    const withReal = (sel: string[]) =>
      resign({ ...c, att: { ...c.att, ev: real.toString('base64url'), ev_sha256: createHash('sha256').update(real).digest('base64url'), sel } });
    expect(check(await withReal([...c.att.sel]), 'deep', [pki.root.der, ...DEFAULT_NITRO_ANCHORS])).toThrow(
      /the document has no nonce; it must carry the binding digest/,
    );
    expect(check(await withReal([...c.att.sel]), 'deep')).toThrow(/is not a pinned root/);
  });

  it('writ enclave check --type nitro on a document the fake NSM made', async () => {
    const nonce = Buffer.alloc(32, 0x42).toString('hex');
    const { execFileSync } = await import('node:child_process');
    writeFileSync(f('check.doc'), execFileSync(process.execPath, [FAKE_NSM, config('check.json'), nonce], { input: `${nonce}\n` }));
    const base = ['enclave', 'check', '--type', 'nitro', '--evidence', f('check.doc'), '--roots', f('root.pem')];
    const ok = await runCli([...base, '--report-data', nonce, '--nitro-max-age', '5m']);
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^ok {8}COSE_Sign1 \(ES384\) attestation document parsed strictly: module_id i-0123456789abcdef0-enc0123456789abcdef, timestamp /);
    expect(ok.out).toContain('ok        ES384 signature by the leaf certificate over the exact Sig_structure\n');
    expect(ok.out).toContain(`selector nitro:pcr:0:${pcr0}\n`);
    const wrong = await runCli([...base, '--report-data', Buffer.alloc(32).toString('hex')]);
    expect(wrong.code).toBe(1);
    expect(wrong.out).toMatch(/FAILED {4}nonce equals --report-data: the nonce is 4242/);
    expect(wrong.out).toMatch(/unchecked freshness: give --nitro-max-age/);
  });

  it('a platform revocation of the enclave (nitro:module_id) kills its writs and refuses its next handshake', async () => {
    const moduleId = 'i-0123456789abcdef0-enc0123456789abcdef';
    const writ = readFileSync(f('a', 'writ.jws'), 'utf8').trim();
    const verifyA = () => verifyRemote(s.address, s.bundlePem, { writ, proof: proof('a'), audience: AUD, method: METHOD });
    expect((await verifyA()).valid).toBe(true);
    const r = await adminClients(s.adminSocket).revocation.revoke({ kind: 'platform', target: `nitro:module_id:${moduleId}`, reason: 'enclave retired' });
    expect(r.writs).toBeGreaterThanOrEqual(1);
    const v = await verifyA();
    expect(v.valid).toBe(false);
    expect(v.errorCode).toBe('ERR_WRIT_REVOKED');
    const again = await runCli([...(await agent('after', 'nitro-after')), ...nsmArgs(config('after.json'))]);
    expect(again.code).toBe(1);
    expect(again.err).toContain(`platform nitro:module_id:${moduleId} is revoked (by operator: enclave retired)`);
  });
});
