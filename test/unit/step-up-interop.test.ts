/**
 * Step-up grants checked by an independent relying party written from docs/writ-format.md alone
 * (test/interop/verify_approval.py, stock python3-cryptography), and by `writ verify --deep`: the
 * same valid grants accepted by both verifiers, the same mutated twins refused by both.
 */
import { spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { approvalChallenge, verifyStepUpGrant } from '../../src/delegation/step-up.js';
import { publicJwk } from '../../src/jose/jws.js';
import { createProof } from '../../src/writ/proof.js';
import { runCli } from '../helpers/cli.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { SoftAuthenticator, cborEncode, coseKeyOf, type CborIn, type SoftAlg } from '../helpers/soft-authenticator.js';
import { CONSOLE_ORIGIN, CONSOLE_RP_ID, approvalRequest, mintStepUp, rawStepUp, type RawStepUpOptions } from '../helpers/step-up.js';
import { tmpDir } from '../helpers/tmp.js';
import { FakeIssuer, agent, hop } from '../helpers/writ-fixture.js';

const PY = join(REPO_ROOT, 'test', 'interop', 'verify_approval.py');
const havePython = spawnSync('/usr/bin/python3', ['-c', 'import cryptography']).status === 0;
const NOW = 1_790_000_000;

function world() {
  const iss = new FakeIssuer();
  const A = agent('a');
  const B = agent('b');
  const root = iss.rootGrant(A, { now: NOW - 100 });
  const g1 = hop(root, A, B, NOW - 90, { scope: [{ action: 'repo:read', resource: 'repo://acme/*' }] });
  const dir = tmpDir('writ-stepup-');
  const bundle = join(dir, 'bundle.jwks');
  writeFileSync(bundle, JSON.stringify({ keys: [{ ...publicJwk(createPublicKey(iss.key)), use: 'writ', kid: iss.kid, alg: 'ES256' }] }));
  return { iss, A, B, root, g1, dir, bundle, req: (o: Parameters<typeof approvalRequest>[3] = {}) => approvalRequest(iss, B, g1, o) };
}

function python(w: ReturnType<typeof world>, grant: string, extra: string[] = []): { ok: boolean; out: string } {
  const file = join(w.dir, `g-${Math.random().toString(36).slice(2)}.jws`);
  writeFileSync(file, grant);
  const r = spawnSync('/usr/bin/python3', [PY, w.bundle, file, w.iss.issuer, String(NOW), ...extra], { encoding: 'utf8' });
  return { ok: r.status === 0, out: (r.status === 0 ? r.stdout : r.stderr).trim() };
}

const ours = (w: ReturnType<typeof world>, grant: string, o: { task?: string; jkt?: string } = {}): boolean => {
  try {
    verifyStepUpGrant(grant, {
      issuer: w.iss.issuer,
      writKeys: w.iss.trust.writKeys,
      now: new Date(NOW * 1000),
      ...(o.task ? { expectedTask: o.task } : {}),
      ...(o.jkt ? { agentJkt: o.jkt } : {}),
    });
    return true;
  } catch {
    return false;
  }
};

describe.skipIf(!havePython)('test/interop/verify_approval.py (a relying party from the doc alone)', () => {
  it.each(['ES256', 'EdDSA', 'RS256'] as SoftAlg[])('accepts a minted step-up grant over an %s passkey, as writ does', async (alg) => {
    const w = world();
    const s = await mintStepUp(w.iss, new SoftAuthenticator(alg, CONSOLE_RP_ID), w.req(), NOW - 5);
    const r = python(w, s, ['task-1', w.B.jkt]);
    expect(r.out).toBe(`approved by https://idp.example.com#bob: repo:delete on repo://acme/widgets (${alg} passkey)`);
    expect(r.ok).toBe(true);
    expect(ours(w, s, { task: 'task-1', jkt: w.B.jkt })).toBe(true);
  });

  it('computes the same challenge as the doc vector (JCS)', () => {
    const r = spawnSync(
      '/usr/bin/python3',
      [
        '-c',
        `import sys; sys.path.insert(0, ${JSON.stringify(join(REPO_ROOT, 'test', 'interop'))}); import verify_approval as v, json, hashlib, base64, re; d=open(${JSON.stringify(join(REPO_ROOT, 'docs', 'writ-format.md'))}).read(); b=json.loads(re.search(r"\`\`\`json approval-vector\\n(.*?)\`\`\`", d, re.S).group(1)); s=v.jcs(b["request"]); print(s == b["jcs"], base64.urlsafe_b64encode(hashlib.sha256(s.encode()).digest()).rstrip(b"=").decode() == b["challenge"])`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.stdout.trim()).toBe('True True');
  });

  const other = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const twins: Array<[string, (w: ReturnType<typeof world>, a: SoftAuthenticator) => string, ((w: ReturnType<typeof world>) => string[])?]> = [
    ['signed by another key', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, key: other() })],
    ['for another task', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW }), () => ['task-2']],
    ['for another agent', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW }), (w) => ['task-1', w.A.jkt]],
    ['expired', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW - 100, exp: NOW - 50 })],
    ['whose request is not what the approver signed', (w, a) => bent(w, a, (req) => ({ override: { req: { ...req, inherit: true } } }))],
    ['over another challenge', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, assertion: { challenge: approvalChallenge(w.req()) } })],
    ['made on another origin', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, assertion: { origin: 'https://evil.example' } })],
    ['made for another RP ID', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, assertion: { rpId: 'evil.example' } })],
    ['with UV cleared', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, assertion: { flags: 0x01 } })],
    ['with UP cleared', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, assertion: { flags: 0x04 } })],
    ['cross-origin', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, assertion: { crossOrigin: true } })],
    ['of type webauthn.create', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, assertion: { type: 'webauthn.create' } })],
    ['with a raw r‖s signature', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, assertion: { rawSignature: true } })],
    [
      'with a tampered signature',
      (w, a) =>
        bent(
          w,
          a,
          () => ({}),
          (s) => flip(s, 'signature'),
        ),
    ],
    [
      'with tampered authenticator data',
      (w, a) =>
        bent(
          w,
          a,
          () => ({}),
          (s) => flip(s, 'authenticator_data'),
        ),
    ],
    [
      'with tampered client data',
      (w, a) =>
        bent(
          w,
          a,
          () => ({}),
          (s) => flip(s, 'client_data_json'),
        ),
    ],
    [
      'whose SPKI is another key’s',
      (w, a) =>
        rawStepUp(w.iss, a, w.req(), {
          now: NOW,
          webauthn: { spki: new SoftAuthenticator().publicKey.export({ type: 'spki', format: 'der' }).toString('base64url') },
        }),
    ],
    [
      'whose COSE key has an extra label',
      (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, webauthn: { cose_key: coseWith(a, (m) => m.set(2, Buffer.from('kid'))) } }),
    ],
    ['whose COSE alg does not fit the key', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, webauthn: { cose_key: coseWith(a, (m) => m.set(3, -8)) } })],
    ['with an extra claim', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, override: { extra: true } })],
    ['with a jwk header', (w, a) => rawStepUp(w.iss, a, w.req(), { now: NOW, header: { jwk: publicJwk(createPublicKey(w.iss.key)) } })],
  ];
  function bent(
    w: ReturnType<typeof world>,
    a: SoftAuthenticator,
    f: (req: ReturnType<typeof w.req>) => Partial<RawStepUpOptions>,
    post?: (o: Partial<RawStepUpOptions>) => Partial<RawStepUpOptions>,
  ): string {
    const req = w.req();
    const base: Partial<RawStepUpOptions> = f(req);
    if (!post) return rawStepUp(w.iss, a, req, { now: NOW, ...base });
    const ass = a.getAssertion({ challenge: approvalChallenge(req), origin: CONSOLE_ORIGIN, rpId: CONSOLE_RP_ID });
    const webauthn = {
      authenticator_data: ass.authenticatorData.toString('base64url'),
      client_data_json: ass.clientDataJSON.toString('base64url'),
      signature: ass.signature.toString('base64url'),
    };
    return rawStepUp(w.iss, a, req, { now: NOW, ...post({ webauthn }) });
  }
  function flip(o: Partial<RawStepUpOptions>, field: 'signature' | 'authenticator_data' | 'client_data_json'): Partial<RawStepUpOptions> {
    const b = Buffer.from(o.webauthn![field]!, 'base64url');
    b[field === 'client_data_json' ? 15 : b.length - 2] ^= 0x02;
    return { webauthn: { ...o.webauthn, [field]: b.toString('base64url') } };
  }
  function coseWith(a: SoftAuthenticator, f: (m: Map<number, CborIn>) => void): string {
    const m = coseKeyOf(a.publicKey, a.alg);
    f(m);
    return cborEncode(m).toString('base64url');
  }

  it.each(twins)('both refuse a step-up grant %s', (_n, make, extras) => {
    const w = world();
    const extra = extras ? extras(w) : [];
    const a = new SoftAuthenticator('ES256', CONSOLE_RP_ID);
    const good = rawStepUp(w.iss, a, w.req(), { now: NOW });
    expect(python(w, good, ['task-1', w.B.jkt]).ok).toBe(true);
    const s = make(w, a);
    const r = python(w, s, extra);
    expect(r.ok, `python accepted it: ${r.out}`).toBe(false);
    expect(ours(w, s, { ...(extra[0] ? { task: extra[0] } : {}), ...(extra[1] ? { jkt: extra[1] } : {}) })).toBe(false);
  });
});

describe('writ verify --deep with a writ carrying a step-up grant', () => {
  async function files(broken: boolean) {
    const w = world();
    const authn = new SoftAuthenticator('ES256', CONSOLE_RP_ID);
    const s = broken ? rawStepUp(w.iss, authn, w.req(), { now: NOW - 5, assertion: { flags: 0x01 } }) : await mintStepUp(w.iss, authn, w.req(), NOW - 5);
    const { writ } = w.iss.writ(w.B, [w.root, w.g1], { now: NOW - 10, stepup: [s] });
    const aud = 'spiffe://example.org/tool/github';
    const writFile = join(w.dir, 'writ.jws');
    const proofFile = join(w.dir, 'proof.jws');
    writeFileSync(writFile, writ);
    writeFileSync(proofFile, createProof(writ, w.B.key, { audience: aud, method: 'GET /repos', now: new Date(NOW * 1000) }));
    const at = new Date(NOW * 1000).toISOString();
    return (...more: string[]) =>
      runCli([
        'verify',
        '--bundle',
        w.bundle,
        '--trust-domain',
        'example.org',
        '--audience',
        aud,
        '--writ',
        writFile,
        '--proof',
        proofFile,
        '--at',
        at,
        ...more,
      ]);
  }

  it('reports the approver and the checked assertion, and allows the approved action', async () => {
    const cli = await files(false);
    const r = await cli(
      '--deep',
      '--json',
      '--action',
      'repo:delete',
      '--resource',
      'repo://acme/widgets',
      '--approval-rp-id',
      CONSOLE_RP_ID,
      '--approval-origin',
      CONSOLE_ORIGIN,
    );
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.approvals).toHaveLength(1);
    expect(j.approvals[0]).toMatchObject({
      approver: { iss: 'https://idp.example.com', sub: 'bob' },
      assertion: { checked: true, algorithm: 'ES256', rpId: CONSOLE_RP_ID },
    });
    expect(j.authorization).toMatchObject({ decision: 'allow', approval: j.approvals[0].id });
    const text = await cli('--deep');
    expect(text.out).toMatch(/approved by https:\/\/idp\.example\.com#bob, passkey assertion checked \(ES256/);
  });

  it('a broken assertion: valid at the standard level (reported as not checked), refused with --deep', async () => {
    const cli = await files(true);
    const std = await cli('--json');
    expect(std.code).toBe(0);
    expect(JSON.parse(std.out).approvals[0].assertion).toEqual({ checked: false });
    const deep = await cli('--deep', '--json');
    expect(deep.code).toBe(1);
    expect(JSON.parse(deep.out)).toMatchObject({ valid: false, code: 'ERR_WRIT_INVALID' });
    expect(JSON.parse(deep.out).error).toMatch(/step-up grant 0: .*not verified/);
  });

  it('refuses a pinned RP ID the approval was not made for', async () => {
    const cli = await files(false);
    const r = await cli('--deep', '--approval-rp-id', 'other.example.org');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/approved on RP ID console\.example\.org, not other\.example\.org/);
    expect((await cli('--approval-rp-id', 'x.example')).code).toBe(2);
  });
});

describe('writ verify with a writ minted by an SVID renewal', () => {
  it('says the writ was renewed and from which SVID, as text and in --json', async () => {
    const w = world();
    const nonce = Buffer.alloc(32, 7);
    const { claims } = w.iss.writ(w.B, [w.root, w.g1], { now: NOW - 10, nonce });
    const renewed = { via: 'x509_svid', serial: '0a1b2c3d' } as const;
    const { writ } = w.iss.writ(w.B, [w.root, w.g1], { now: NOW - 10, nonce, override: { att: { ...claims.att, renewed } } });
    const aud = 'spiffe://example.org/tool/github';
    const writFile = join(w.dir, 'renewed.jws');
    const proofFile = join(w.dir, 'renewed-proof.jws');
    writeFileSync(writFile, writ);
    writeFileSync(proofFile, createProof(writ, w.B.key, { audience: aud, method: 'GET /repos', now: new Date(NOW * 1000) }));
    const args = ['verify', '--bundle', w.bundle, '--trust-domain', 'example.org', '--audience', aud, '--writ', writFile, '--proof', proofFile];
    const at = ['--at', new Date(NOW * 1000).toISOString()];
    const text = await runCli([...args, ...at]);
    expect(text.code, text.err).toBe(0);
    expect(text.out).toContain('renewed via x509_svid (replaced SVID serial 0a1b2c3d)');
    const json = await runCli([...args, ...at, '--json']);
    expect(JSON.parse(json.out).renewed).toEqual(renewed);
  });
});
