/**
 * SEV-SNP end to end: synthetic evidence in the real formats (a test ARK/ASK pair and a P-384
 * VCEK made at test time; reports laid out as the ABI defines them, signed over REPORT_DATA =
 * the handshake's B ‖ 0^32) from a fake configfs-tsm, through `writ agent attest --evidence
 * sev-snp` and a real server handshake over gRPC, then the issuer's own deep Verify and `writ
 * verify --deep` offline; splicing refused by the issuer and at deep level.
 */
import { spawnSync } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGrant, verifyRemote } from '../../src/agent/grant-client.js';
import { encodeCertTable, type TableEntry } from '../../src/attestation/sev-snp/certs.js';
import { snpPlugin, trustFromChain } from '../../src/attestation/sev-snp/plugin.js';
import { DEFAULT_SNP_POLICY } from '../../src/attestation/sev-snp/verify.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { decodePem } from '../../src/der/pem.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { parseWrit } from '../../src/writ/writ.js';
import { runCli } from '../helpers/cli.js';
import { startFakeTsm, type FakeTsm } from '../helpers/fake-tsm.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';
import { HAVE_SHARED, REPO_ROOT, vector } from '../helpers/shared.js';
import { makeAmdRoots, makeLeaf, makeReport, TEST_CHIP_ID } from '../helpers/snp-fake.js';

const writ = (...argv: string[]) => runCli(argv);
const PY = '/usr/bin/python3';
const HAVE_PY = spawnSync(PY, ['-c', 'import cryptography'], { stdio: 'ignore' }).status === 0;
if (process.env.CI && !HAVE_PY) throw new Error('CI requires python3-cryptography (scripts/install-test-deps.sh)');
if (!HAVE_PY) console.warn('\n*** /usr/bin/python3 with cryptography missing: the Python SEV-SNP relying party is SKIPPED ***\n');
const pyVerify = (writFile: string, ...pins: string[]) =>
  spawnSync(PY, [join(REPO_ROOT, 'test', 'interop', 'verify_snp.py'), writFile, new Date().toISOString(), ...pins], { encoding: 'utf8' });

describe('SEV-SNP evidence through a real handshake and deep verification', () => {
  const dir = mkdtempSync(join(tmpdir(), 'writ-snp-'));
  const roots = makeAmdRoots('Milan');
  const leaf = makeLeaf(roots);
  const measurement = createHash('sha384').update('writ e2e guest').digest();
  const table = encodeCertTable([
    { kind: 'vcek', der: leaf.der },
    { kind: 'ask', der: roots.ask },
    { kind: 'ark', der: roots.ark },
  ] satisfies TableEntry[]);
  // What the fake kernel answers; a test may replace it (a replayed report).
  type Answer = (inblob: Buffer) => { outblob: Buffer; auxblob?: Buffer };
  let answer: Answer = (inblob) => ({ outblob: makeReport(leaf.key, { reportData: inblob, measurement }), auxblob: Buffer.concat([table, Buffer.alloc(512)]) });
  let tsm: FakeTsm;
  let s: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  const logs: string[] = [];
  const chainFile = join(dir, 'cert_chain.pem');
  writeFileSync(chainFile, roots.chainPem);
  writeFileSync(join(dir, 'agent.key'), generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const agentJkt = jwkThumbprint(createPublicKey(readFileSync(join(dir, 'agent.key'))));

  beforeAll(async () => {
    tsm = startFakeTsm('sev_guest', (inblob) => answer(inblob));
    oidc = await startOidc();
    s = await startServer(
      { principals: [{ issuer: oidc.issuer, audience: 'writ' }], attestation: { sev_snp: { roots: [chainFile] } } },
      { logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) }) },
    );
    await adminClients(s.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    await adminClients(s.adminSocket).admin.createEntry({
      entry: {
        spiffeId: 'spiffe://example.org/agent/snp',
        selectors: [
          { type: 'sev_snp', value: `measurement:${measurement.toString('hex')}` },
          { type: 'sev_snp', value: 'product:Milan' },
          { type: 'sev_snp', value: 'policy:debug=0' },
        ],
      },
    });
    writeFileSync(join(dir, 'bundle.pem'), s.bundlePem);
  });
  afterAll(async () => {
    tsm?.stop();
    await s?.stop();
    await oidc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function attest(name: string) {
    const root = await createGrant(s.address, s.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: `snp-${name}`,
      goal: 'read the widgets',
      ttlSeconds: 600,
      scope: [{ action: 'repo:read', resource: 'repo://acme/widgets' }],
      maxDepth: 0,
      delegateJkt: agentJkt,
    });
    writeFileSync(join(dir, `${name}.grant`), `${root.grant}\n`);
    const out = join(dir, name);
    const r = await writ(
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      join(dir, 'bundle.pem'),
      '--key',
      join(dir, 'agent.key'),
      '--grant',
      join(dir, `${name}.grant`),
      '--out',
      out,
      '--evidence',
      'sev-snp',
      '--sev-snp-tsm-dir',
      tsm.dir,
    );
    return { ...r, dir: out };
  }

  const proof = async (out: string) => {
    const r = await writ('proof', 'create', '--writ', join(out, 'writ.jws'), '--key', join(dir, 'agent.key'), '--audience', 'rp', '--method', 'GET /x');
    expect(r.code).toBe(0);
    writeFileSync(join(out, 'proof'), r.out);
    return r.out.trim();
  };
  const deep = async (out: string, ...extra: string[]) => {
    await proof(out);
    return writ(
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
      join(out, 'proof'),
      '--deep',
      '--json',
      ...extra,
    );
  };

  it('attests with a report over B ‖ 0^32, and both the issuer and writ verify --deep re-verify it', async () => {
    const a = await attest('one');
    expect(a.err).toBe('');
    expect(a.out.trim()).toBe('spiffe://example.org/agent/snp');
    const claims = parseWrit(readFileSync(join(a.dir, 'writ.jws'), 'utf8').trim()).claims;
    expect(claims.att.type).toBe('sev_snp');
    expect(claims.att.sel).toContain(`sev_snp:chip_id:${TEST_CHIP_ID.toString('hex')}`);
    // The kernel was asked for a report over the binding digest, padded with zeros.
    const inblob = tsm.inblobs[tsm.inblobs.length - 1]!;
    expect(inblob).toHaveLength(64);
    expect(inblob.subarray(0, 32)).toEqual(Buffer.from(claims.att.bind, 'base64url'));
    expect(inblob.subarray(32)).toEqual(Buffer.alloc(32));
    // Embedded: the report and the chain verified, no padding.
    const ev = Buffer.from(claims.att.ev!, 'base64url');
    expect(ev.subarray(0, 1184).subarray(0x50, 0x90)).toEqual(inblob);
    expect(ev.subarray(1184)).toEqual(table);

    const remote = await verifyRemote(s.address, s.bundlePem, {
      writ: readFileSync(join(a.dir, 'writ.jws'), 'utf8').trim(),
      proof: await proof(a.dir),
      audience: 'rp',
      method: 'GET /x',
      deep: true,
    });
    expect(remote.error).toBe('');
    expect(remote.valid).toBe(true);

    const offline = await deep(a.dir, '--enclave-roots', `sev-snp=${chainFile}`);
    expect(offline.err).toBe('');
    expect(offline.code).toBe(0);
    const checks = (JSON.parse(offline.out) as { checks: { check: string; by: string }[] }).checks;
    expect(checks).toContainEqual({ check: 'sev_snp: REPORT_DATA is the binding digest recomputed from the writ, then zero bytes', by: 'verifier' });
    expect(checks.some((c) => c.by === 'verifier' && /^sev_snp: SEV-VCEK ← CN=SEV-Milan ← CN=ARK-Milan/.test(c.check))).toBe(true);
    // Only the registration mapping (and the policy decision) is the issuer's word.
    expect(checks.filter((c) => c.by === 'issuer' && /evidence|sev_snp/.test(c.check))).toEqual([]);

    // Without the test chain the relying party pins AMD's ARKs, which did not sign this.
    const pinned = await deep(a.dir);
    expect(pinned.code).toBe(1);
    expect(pinned.out + pinned.err).toMatch(/embedded evidence fails re-verification: .*whose fingerprint is not pinned/);
  });

  it.skipIf(!HAVE_PY)('an independent Python relying party re-verifies the embedded evidence from the docs alone', async () => {
    const a = await attest('py');
    expect(a.code).toBe(0);
    const file = join(a.dir, 'writ.jws');
    const ok = pyVerify(file, roots.arkFingerprint);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe(`ok ${measurement.toString('hex')}\n`);
    // AMD's pins do not include the test ARK.
    expect(pyVerify(file, 'ab'.repeat(32)).stderr).toMatch(/the ARK is not pinned/);
    // The same evidence under another writ's claims (the Python RP does not check the JWS: B is what fails).
    const [h, p, sig] = readFileSync(file, 'utf8').trim().split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    claims.task.id = 'another-task';
    writeFileSync(join(a.dir, 'spliced.jws'), `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`);
    const spliced = pyVerify(join(a.dir, 'spliced.jws'), roots.arkFingerprint);
    expect(spliced.status).toBe(1);
    expect(spliced.stderr).toMatch(/att.bind is not the binding digest recomputed from the writ/);
  });

  it('refuses a replayed report (another handshake’s B), with the reason in the server log only', async () => {
    const first = await attest('two');
    expect(first.code).toBe(0);
    const stale = Buffer.from(readFileSync(join(first.dir, 'writ.jws'), 'utf8'));
    const ev = Buffer.from(parseWrit(stale.toString().trim()).claims.att.ev!, 'base64url');
    const saved = answer;
    answer = () => ({ outblob: ev.subarray(0, 1184), auxblob: table });
    try {
      const r = await attest('three');
      expect(r.code).toBe(1);
      // The agent checks the report carries what it wrote to inblob, before sending anything.
      expect(r.err).toMatch(/the report does not carry the REPORT_DATA written to inblob/);
    } finally {
      answer = saved;
    }
  });

  it('refuses evidence spliced from another handshake at the issuer and at deep level, and a real vector put in its place', async () => {
    const a = await attest('four');
    const b = await attest('five');
    const ca = parseWrit(readFileSync(join(a.dir, 'writ.jws'), 'utf8').trim()).claims;
    const cb = parseWrit(readFileSync(join(b.dir, 'writ.jws'), 'utf8').trim()).claims;
    const rv = snpPlugin.relyingParty!.reverifier(snpPlugin.relyingParty!.fromOptions({ 'enclave-roots': [`sev-snp=${chainFile}`] }));
    const ctxA = { binding: Buffer.from(ca.att.bind, 'base64url'), agentJkt, at: new Date() };
    expect(rv.reverify(Buffer.from(ca.att.ev!, 'base64url'), ctxA).selectors.length).toBeGreaterThan(0);
    expect(() => rv.reverify(Buffer.from(cb.att.ev!, 'base64url'), ctxA)).toThrow(/REPORT_DATA differs/);
    // The issuer's verifier, in a handshake whose nonce is A's B, given B's evidence.
    const trust = trustFromChain(decodePem(roots.chainPem).map((p) => Buffer.from(p.der)));
    const session = await snpPlugin
      .verifier({ trust, policy: DEFAULT_SNP_POLICY, rootFiles: [] }, { store: undefined as never })
      .begin({ nonce: ctxA.binding, agentKey: undefined as never, now: new Date() });
    await expect(session.respond(Buffer.from(cb.att.ev!, 'base64url'))).rejects.toThrow(/REPORT_DATA differs/);
    if (!HAVE_SHARED) return;
    const real = Buffer.concat([
      vector('enclave/sev-snp/virtee_report_milan.derived.bin'),
      encodeCertTable([
        { kind: 'vcek', der: vector('enclave/sev-snp/virtee_vcek_milan.der') },
        ...decodePem(vector('enclave/roots/amd_milan_ask_ark.pem').toString()).map((p, i) => ({
          kind: i === 0 ? ('ask' as const) : ('ark' as const),
          der: Buffer.from(p.der),
        })),
      ]),
    ]);
    const amd = snpPlugin.relyingParty!.fromOptions({});
    const rvAmd = snpPlugin.relyingParty!.reverifier(amd);
    expect(() => rvAmd.reverify(real, { ...ctxA, at: new Date('2024-01-01T00:00:00Z') })).toThrow(/REPORT_DATA differs/);
  });

  it('refuses at the issuer a report from another chip’s VCEK and a debug guest, the reason in the server log only', async () => {
    const saved = answer;
    const cases: [string, Answer, RegExp][] = [
      [
        'debug',
        (inblob) => ({ outblob: makeReport(leaf.key, { reportData: inblob, policy: 0x30000n | (1n << 19n), measurement }), auxblob: table }),
        /allows debugging/,
      ],
      [
        'other chip',
        (inblob) => {
          const other = makeLeaf(roots, { chipId: Buffer.alloc(64, 1) });
          return {
            outblob: makeReport(other.key, { reportData: inblob, measurement }),
            auxblob: encodeCertTable([
              { kind: 'vcek', der: other.der },
              { kind: 'ask', der: roots.ask },
            ]),
          };
        },
        /CHIP_ID differs from the VCEK's hwID/,
      ],
    ];
    try {
      for (const [name, f, reason] of cases) {
        answer = f;
        const r = await attest(name.replace(/ /g, '-'));
        expect(r.code, name).toBe(1);
        const id = /request id ([0-9a-f]{12})/.exec(r.err)?.[1];
        expect(id, r.err).toBeDefined();
        const logged = logs.map((l) => JSON.parse(l) as { requestId?: string; reason?: string }).find((l) => l.requestId === id);
        expect(logged?.reason).toMatch(reason);
      }
    } finally {
      answer = saved;
    }
  });
});
