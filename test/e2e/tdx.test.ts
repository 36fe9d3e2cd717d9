/**
 * TDX evidence end to end: a test Intel PKI made at test time, a fake configfs-tsm (`tdx_guest`)
 * that answers each inblob with a quote built byte for byte in the real v4 layout, real
 * handshakes over gRPC through `writ agent attest --evidence tdx`, then the issuer's own deep
 * Verify and `writ verify --deep`; and splicing: a quote from another handshake refused by the
 * issuer, and evidence swapped inside a writ re-signed with the issuer's key refused at deep level.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGrant, verifyRemote } from '../../src/agent/grant-client.js';
import { tdxReverifier } from '../../src/attestation/tdx/plugin.js';
import { DEFAULT_TDX_ROOTS } from '../../src/attestation/tdx/roots.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { encodePem } from '../../src/der/pem.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { verifyWrit, type VerifyWritOptions } from '../../src/writ/verify.js';
import { parseWrit, signWrit, type WritClaims } from '../../src/writ/writ.js';
import { runCli } from '../helpers/cli.js';
import { startFakeTsm, type FakeTsm } from '../helpers/fake-tsm.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';
import { HAVE_SHARED, SHARED } from '../helpers/shared.js';
import { makeTestCollateral, makeTestPki, makeTestQuote } from '../helpers/tdx-quote.js';

const AUD = 'rp';
const METHOD = 'GET /x';
const MRTD = Buffer.alloc(48, 0x33).toString('hex');

/** alice's root grant for `taskId` to the agent key, and the bundle, written where the CLI steps read them. */
async function writeRootGrant(
  s: { address: string; bundlePem: string },
  oidc: TestOidc,
  agentKey: KeyObject,
  taskId: string,
  f: (n: string) => string,
): Promise<void> {
  const root = await createGrant(s.address, s.bundlePem, {
    subjectToken: oidc.token('alice', { groups: ['eng'] }),
    subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
    taskId,
    goal: 'read the widgets',
    ttlSeconds: 600,
    scope: [{ action: 'repo:read', resource: 'repo://acme/widgets' }],
    maxDepth: 0,
    delegateJkt: jwkThumbprint(createPublicKey(agentKey)),
  });
  writeFileSync(f('root.grant'), `${root.grant}\n`);
  writeFileSync(f('bundle.pem'), s.bundlePem);
}
describe('tdx evidence through a real handshake, the issuer and writ verify --deep', () => {
  const dir = mkdtempSync(join(tmpdir(), 'writ-tdx-e2e-'));
  const f = (...p: string[]) => join(dir, ...p);
  const pki = makeTestPki();
  writeFileSync(f('intel-test-root.pem'), encodePem('CERTIFICATE', pki.root));
  const logs: string[] = [];
  /** What the fake TSM answers: a fresh quote over the inblob, unless a test replaces it. */
  let answer: (inblob: Buffer) => Buffer = (inblob) => makeTestQuote(pki, { reportData: inblob, padding: 1200 });
  const quotes: Buffer[] = [];
  let tsm: FakeTsm;
  let s: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;

  const agentKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  writeFileSync(f('agent.key'), agentKey.export({ type: 'pkcs8', format: 'pem' }));

  beforeAll(async () => {
    tsm = startFakeTsm('tdx_guest', (inblob) => {
      const q = answer(inblob);
      quotes.push(q);
      return { outblob: q };
    });
    oidc = await startOidc();
    s = await startServer(
      {
        principals: [{ issuer: oidc.issuer, audience: 'writ' }],
        attestation: { tdx: { roots: [f('intel-test-root.pem')], allow_unevaluated_tcb: true } },
      },
      { logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) }) },
    );
    await adminClients(s.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    await adminClients(s.adminSocket).admin.createEntry({
      entry: { spiffeId: 'spiffe://example.org/agent/td', selectors: [{ type: 'tdx', value: `mrtd:${MRTD}` }] },
    });
    await writeRootGrant(s, oidc, agentKey, 'td-1', f);
  });
  afterAll(async () => {
    tsm?.stop();
    await s?.stop();
    await oidc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const attest = (out: string, ...extra: string[]) =>
    runCli([
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      f('bundle.pem'),
      '--key',
      f('agent.key'),
      '--grant',
      f('root.grant'),
      '--out',
      f(out),
      '--evidence',
      'tdx',
      '--tdx-report-dir',
      tsm.dir,
      ...extra,
    ]);
  const reasonOf = (err: string) => {
    const id = /request id ([0-9a-f]{12})/.exec(err)?.[1];
    return logs.map((l) => JSON.parse(l) as { requestId?: string; reason?: string }).find((l) => l.requestId === id)?.reason;
  };
  const proof = async (out: string) => {
    const r = await runCli(['proof', 'create', '--writ', f(out, 'writ.jws'), '--key', f('agent.key'), '--audience', AUD, '--method', METHOD]);
    expect(r.code, r.err).toBe(0);
    writeFileSync(f(out, 'proof'), r.out);
    return r.out.trim();
  };
  const verifyDeep = async (out: string, ...extra: string[]) => {
    await proof(out);
    return runCli([
      'verify',
      '--bundle',
      f(out, 'bundle.jwks'),
      '--audience',
      AUD,
      '--method',
      METHOD,
      '--writ',
      f(out, 'writ.jws'),
      '--proof',
      f(out, 'proof'),
      '--deep',
      ...extra,
    ]);
  };

  it('attests with a quote over B ‖ 32 zero bytes; the issuer and writ verify --deep re-verify it', async () => {
    const r = await attest('a');
    expect(r.err).toBe('');
    expect(r.out).toBe('spiffe://example.org/agent/td\n');
    const claims = parseWrit(readFileSync(f('a', 'writ.jws'), 'utf8').trim()).claims;
    expect(claims.att.type).toBe('tdx');
    expect(claims.att.sel).toContain(`tdx:mrtd:${MRTD}`);
    expect(claims.att.sel).toContain(`tdx:ppid:${pki.ppid.toString('hex')}`);
    // The agent wrote B ‖ 32 zeros; the embedded quote is the quote without its padding.
    const inblob = tsm.inblobs.at(-1)!;
    expect(inblob.subarray(0, 32)).toEqual(Buffer.from(claims.att.bind, 'base64url'));
    expect(inblob.subarray(32)).toEqual(Buffer.alloc(32));
    const ev = Buffer.from(claims.att.ev!, 'base64url');
    expect(ev).toEqual(quotes.at(-1)!.subarray(0, quotes.at(-1)!.length - 1200));

    const remote = await verifyRemote(s.address, s.bundlePem, {
      writ: readFileSync(f('a', 'writ.jws'), 'utf8').trim(),
      proof: await proof('a'),
      audience: AUD,
      method: METHOD,
      deep: true,
    });
    expect(remote.error).toBe('');
    expect(remote.valid).toBe(true);
    expect(remote.checks.map((c) => c.check)).toContain('tdx: report data is the binding digest recomputed from the writ, then 32 zero bytes');

    const good = await verifyDeep('a', '--enclave-roots', `tdx=${f('intel-test-root.pem')}`, '--json');
    expect(good.err).toBe('');
    expect(good.code).toBe(0);
    const checks = (JSON.parse(good.out) as { checks: { check: string; by: string }[] }).checks;
    expect(checks).toContainEqual({ check: 'tdx: quote signed by the attestation key over header and TD report body', by: 'verifier' });
    expect(checks.find((c) => c.check.startsWith("tdx: the platform's TCB status"))?.by).toBe('issuer');
    // With the shipped Intel root only, the test PCK chain is refused.
    const intel = await verifyDeep('a');
    expect(intel.code).toBe(1);
    expect(intel.err).toMatch(/embedded evidence fails re-verification: attestation\(tdx\): PCK chain: does not chain to a pinned Intel SGX root/);
  });

  it('the issuer refuses a quote from another handshake (another B), and a debug TD', async () => {
    const first = quotes.at(-1)!;
    answer = () => first;
    try {
      const r = await attest('spliced');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/attestation failed: evidence rejected/);
      expect(reasonOf(r.err)).toBe('attestation(tdx): the report data is not the expected value');
      answer = (inblob) => makeTestQuote(pki, { reportData: inblob, tdAttributes: 0x10000001n });
      const d = await attest('debug');
      expect(d.code).toBe(1);
      expect(reasonOf(d.err)).toBe('attestation(tdx): the TD is a debug TD (TD attribute DEBUG set); refused unless debug is allowed');
    } finally {
      answer = (inblob) => makeTestQuote(pki, { reportData: inblob, padding: 1200 });
    }
  });

  it('deep verification refuses evidence spliced from another handshake or replaced by a real quote, in a writ the issuer re-signed', async () => {
    expect((await attest('b')).code).toBe(0);
    const a = parseWrit(readFileSync(f('a', 'writ.jws'), 'utf8').trim()).claims;
    const bText = readFileSync(f('b', 'writ.jws'), 'utf8').trim();
    const b = parseWrit(bText).claims;
    expect(a.att.nonce).not.toBe(b.att.nonce);
    const signer = s.server.ca.writSigner();
    const resign = (c: WritClaims) => signWrit(c, signer.signer, signer.kid);
    const key = createPrivateKey(readFileSync(f('agent.key')));
    const bundle = parseSpiffeBundle('example.org', readFileSync(f('b', 'bundle.jwks'), 'utf8'));
    const check = (w: string, level: 'standard' | 'deep') => () =>
      verifyWrit({
        writ: w,
        proof: createProof(w, key, { audience: AUD, method: METHOD, now: new Date() }),
        trust: { issuer: 'spiffe://example.org', writKeys: bundle.writAuthorities! },
        audience: AUD,
        now: new Date(),
        level,
        replayCache: new ProofReplayCache(),
        reverifiers: new Map([['tdx', tdxReverifier({ roots: [pki.root, ...DEFAULT_TDX_ROOTS], allowDebug: false })]]),
      } satisfies VerifyWritOptions);
    expect(check(bText, 'deep')).not.toThrow();
    const spliced = await resign({ ...b, att: { ...b.att, ev: a.att.ev!, ev_sha256: a.att.ev_sha256 } });
    expect(check(spliced, 'standard')).not.toThrow();
    expect(check(spliced, 'deep')).toThrow(/embedded evidence fails re-verification: attestation\(tdx\): the report data is not the expected value/);
    const { ev: _dropped, ...withoutEv } = b.att;
    expect(check(await resign({ ...b, att: withoutEv }), 'deep')).toThrow(/needs the tdx evidence, and the writ does not embed it/);
    expect(check(await resign({ ...b, att: { ...b.att, sel: [...b.att.sel, 'tdx:rtmr:0:00'] } }), 'deep')).toThrow(/selectors differ/);
    if (HAVE_SHARED) {
      // A real quote (valid at its own instant under the real Intel root) in place of the evidence.
      const real = readFileSync(join(SHARED, 'vectors', 'enclave', 'tdx', 'gotdx_quote_v5_sample.dat'));
      const swapped = await resign({
        ...b,
        att: { ...b.att, ev: real.toString('base64url'), ev_sha256: createHash('sha256').update(real).digest('base64url') },
      });
      expect(check(swapped, 'deep')).toThrow(/embedded evidence fails re-verification: attestation\(tdx\)/);
    }
  });
});

describe('tdx evidence with Intel collateral: the TCB status selector, at the issuer and at deep level', () => {
  const dir = mkdtempSync(join(tmpdir(), 'writ-tdx-tcb-'));
  const f = (...p: string[]) => join(dir, ...p);
  const pki = makeTestPki();
  writeFileSync(f('root.pem'), encodePem('CERTIFICATE', pki.root));
  const day = 24 * 3600_000;
  writeFileSync(f('collateral.json'), makeTestCollateral(pki, { from: new Date(Date.now() - day), until: new Date(Date.now() + day) }));
  let tsm: FakeTsm;
  let s: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  const agentKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  writeFileSync(f('agent.key'), agentKey.export({ type: 'pkcs8', format: 'pem' }));

  beforeAll(async () => {
    tsm = startFakeTsm('tdx_guest', (inblob) => ({ outblob: makeTestQuote(pki, { reportData: inblob }) }));
    oidc = await startOidc();
    s = await startServer({
      principals: [{ issuer: oidc.issuer, audience: 'writ' }],
      attestation: { tdx: { roots: [f('root.pem')], collateral: [f('collateral.json')] } },
    });
    await adminClients(s.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    await adminClients(s.adminSocket).admin.createEntry({
      entry: {
        spiffeId: 'spiffe://example.org/agent/td-current',
        selectors: [
          { type: 'tdx', value: `mrtd:${MRTD}` },
          { type: 'tdx', value: 'tcb_status:UpToDate' },
        ],
      },
    });
    await writeRootGrant(s, oidc, agentKey, 'td-2', f);
  });
  afterAll(async () => {
    tsm?.stop();
    await s?.stop();
    await oidc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an entry selecting tdx:tcb_status:UpToDate matches; deep verification re-evaluates with the same collateral', async () => {
    const out = f('creds');
    const r = await runCli([
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      f('bundle.pem'),
      '--key',
      f('agent.key'),
      '--grant',
      f('root.grant'),
      '--out',
      out,
      '--evidence',
      'tdx',
      '--tdx-report-dir',
      tsm.dir,
    ]);
    expect(r.err).toBe('');
    expect(r.out).toBe('spiffe://example.org/agent/td-current\n');
    expect(parseWrit(readFileSync(join(out, 'writ.jws'), 'utf8').trim()).claims.att.sel).toContain('tdx:tcb_status:UpToDate');
    const verify = async (...extra: string[]) => {
      const p = await runCli(['proof', 'create', '--writ', join(out, 'writ.jws'), '--key', f('agent.key'), '--audience', AUD, '--method', METHOD]);
      writeFileSync(f('proof'), p.out);
      return runCli([
        'verify',
        '--bundle',
        join(out, 'bundle.jwks'),
        '--audience',
        AUD,
        '--method',
        METHOD,
        '--writ',
        join(out, 'writ.jws'),
        '--proof',
        f('proof'),
        '--deep',
        '--enclave-roots',
        `tdx=${f('root.pem')}`,
        ...extra,
      ]);
    };
    const good = await verify('--tdx-collateral', f('collateral.json'), '--json');
    expect(good.err).toBe('');
    expect(good.code).toBe(0);
    expect((JSON.parse(good.out) as { checks: { check: string; by: string }[] }).checks).toContainEqual({
      check: 'tdx: TCB status UpToDate from Intel collateral (signatures, CRLs, QE identity, TDX module)',
      by: 'verifier',
    });
    // Without the collateral the relying party cannot recompute the tcb_status selector: it takes
    // that one selector (and the TCB, QE and module identities) from the issuer and says so.
    const without = await verify('--json');
    expect(without.err).toBe('');
    expect(without.code).toBe(0);
    const checks = (JSON.parse(without.out) as { checks: { check: string; by: string }[] }).checks;
    expect(checks).toContainEqual({ check: 'selector tdx:tcb_status:UpToDate (not recomputable here)', by: 'issuer' });
    expect(checks.some((c) => c.by === 'verifier' && /TCB status/.test(c.check))).toBe(false);
  });
});
