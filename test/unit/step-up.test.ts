/**
 * Step-up grants (src/delegation/step-up.ts) and writs that carry them (src/writ/verify.ts):
 * the approval-request vector of docs/writ-format.md, minting, and for every accepted grant or
 * writ the mutated twins that must be refused (each names the rule it breaks).
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  approvalChallenge,
  approvalRequestBytes,
  parseStepUpGrant,
  stepUpListDigest,
  verifyStepUpGrant,
  type ApprovalRequest,
  type VerifyStepUpOptions,
} from '../../src/delegation/step-up.js';
import { newGrantId, parseGrant } from '../../src/delegation/grant.js';
import { signJws } from '../../src/jose/jws.js';
import { ProofReplayCache, createProof } from '../../src/writ/proof.js';
import { authorize, verifyWrit, type VerifyWritOptions } from '../../src/writ/verify.js';
import { WRIT_TYP } from '../../src/writ/writ.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { SoftAuthenticator, clientDataJson, type SoftAlg } from '../helpers/soft-authenticator.js';
import { APPROVER, CONSOLE_ORIGIN, CONSOLE_RP_ID, approvalRequest, mintStepUp, rawStepUp } from '../helpers/step-up.js';
import { FakeIssuer, agent, hop, type Agent } from '../helpers/writ-fixture.js';

const NOW = 1_790_000_000;
const at = (s: number) => new Date(s * 1000);
const AUD = 'spiffe://example.org/tool/github';

const doc = readFileSync(join(REPO_ROOT, 'docs', 'writ-format.md'), 'utf8');
const vector = JSON.parse(/```json approval-vector\n([\s\S]*?)```/.exec(doc)![1]!) as { request: ApprovalRequest; jcs: string; challenge: string };

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected a refusal');
}

describe('the approval request (docs/writ-format.md §The approval request)', () => {
  it('reproduces the vector: JCS bytes and challenge', () => {
    expect(approvalRequestBytes(vector.request).toString('utf8')).toBe(vector.jcs);
    expect(approvalChallenge(vector.request).toString('base64url')).toBe(vector.challenge);
  });

  it.each([
    ['another permission', { permission: { action: 'repo:delete', resource: 'repo://acme/gadgets' } }],
    ['inherit true', { inherit: true }],
    ['another approver', { approver: { iss: 'https://idp.example.com', sub: 'carol' } }],
    ['another agent key', { agent: { ...vector.request.agent, jkt: 'MzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' } }],
    ['a later expiry', { exp: vector.request.exp + 1 }],
  ])('a twin with %s gives another challenge', (_n, over) => {
    expect(approvalChallenge({ ...vector.request, ...over } as ApprovalRequest).toString('base64url')).not.toBe(vector.challenge);
  });

  it.each([
    ['an extra member', { extra: 1 }, /unknown members extra/],
    ['another v', { v: 'writ-approval-v2' }, /req\.v/],
    ['inherit as a string', { inherit: 'false' }, /inherit must be a boolean/],
    ['an expiry after the task', { exp: vector.request.task.exp + 1 }, /after the task ends/],
    ['a short id', { id: 'abc' }, /req\.id/],
    ['a permission pattern outside the grammar', { permission: { action: 'Repo:Delete', resource: 'x' } }, /not a valid pattern/],
  ])('refuses a request with %s (no challenge is computed over it)', (_n, over, msg) => {
    const r = refusal(() => approvalChallenge({ ...vector.request, ...over } as unknown as ApprovalRequest));
    expect(r.code).toBe('ERR_STEP_UP_INVALID');
    expect(r.message).toMatch(msg);
  });
});

/** root → A (repo:*, escalate repo:delete), A → B (repo:read only); writs for A and B. */
function world() {
  const iss = new FakeIssuer();
  const A = agent('a');
  const B = agent('b');
  const root = iss.rootGrant(A, { now: NOW - 100 });
  const g1 = hop(root, A, B, NOW - 90, { scope: [{ action: 'repo:read', resource: 'repo://acme/*' }] });
  const authn = new SoftAuthenticator('ES256', CONSOLE_RP_ID);
  const forB = (o: Parameters<typeof approvalRequest>[3] = {}) => approvalRequest(iss, B, g1, o);
  const forA = (o: Parameters<typeof approvalRequest>[3] = {}) => approvalRequest(iss, A, root, o);
  const base = (): VerifyStepUpOptions => ({ issuer: iss.issuer, writKeys: iss.trust.writKeys, now: at(NOW) });
  return { iss, A, B, root, g1, authn, forB, forA, base };
}

describe('mintStepUpGrant and verifyStepUpGrant', () => {
  it.each(['ES256', 'EdDSA', 'RS256'] as SoftAlg[])('a minted grant over an %s credential verifies, naming the approver and permission', async (alg) => {
    const w = world();
    const authn = new SoftAuthenticator(alg, CONSOLE_RP_ID);
    const req = w.forB();
    const s = await mintStepUp(w.iss, authn, req, NOW - 5);
    const v = verifyStepUpGrant(s, { ...w.base(), expectedTask: req.task, agentJkt: w.B.jkt, agentGrant: req.agent.grant, agentSub: w.B.spiffeId });
    expect(v.approver).toEqual(APPROVER);
    expect(v.permission).toEqual(req.permission);
    expect(v.approvalId).toBe(req.id);
    expect(v.assertion?.algorithm).toBe(alg);
    expect(v.assertion?.flags.uv).toBe(true);
    expect(parseStepUpGrant(s).claims.webauthn.rp_id).toBe(CONSOLE_RP_ID);
  });

  it('mint refuses an assertion it would not accept: another challenge, UV clear, another origin', async () => {
    const w = world();
    const req = w.forB();
    const { mintStepUpGrant } = await import('../../src/delegation/step-up.js');
    const { keySigner } = await import('../../src/jose/jws.js');
    for (const bend of [{ challenge: approvalChallenge(w.forB()) }, { flags: 0x01 }, { origin: 'https://evil.example' }]) {
      const a = w.authn.getAssertion({ challenge: approvalChallenge(req), origin: CONSOLE_ORIGIN, rpId: CONSOLE_RP_ID, ...bend });
      await expect(
        mintStepUpGrant(
          { request: req, assertion: a, credentialPublicKey: w.authn.coseKey, rpId: CONSOLE_RP_ID, origin: CONSOLE_ORIGIN, now: NOW },
          keySigner(w.iss.key),
          w.iss.kid,
        ),
      ).rejects.toMatchObject({ code: 'ERR_STEP_UP_INVALID' });
    }
  });

  const cases: Array<[string, (w: ReturnType<typeof world>) => { s: string; o?: Partial<VerifyStepUpOptions> }, RegExp]> = [
    [
      'signed by another key',
      (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey }) }),
      /issuer signature does not verify/,
    ],
    ['signed under an unknown kid', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, header: { kid: 'other' } }) }), /kid unknown/],
    [
      'issued by another trust domain',
      (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW }), o: { issuer: 'spiffe://other.org' } }),
      /not the trusted issuer/,
    ],
    ['for another task', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW }), o: { expectedTask: 'task-2' } }), /another task/],
    ['for another agent key', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW }), o: { agentJkt: w.A.jkt } }), /another agent key/],
    [
      'for another agent grant',
      (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW }), o: { agentGrant: parseGrant(w.root).claims.jti } }),
      /another agent grant/,
    ],
    ['expired', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW - 100, exp: NOW - 50 }) }), /expired/],
    ['issued in the future', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW + 60 }) }), /future/],
    ['outliving its approval', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB({ exp: NOW + 100 }), { now: NOW, exp: NOW + 200 }) }), /outlives its approval/],
    [
      'whose request is not the one the approver signed',
      (w) => {
        const req = w.forB();
        return { s: rawStepUp(w.iss, w.authn, req, { now: NOW, override: { req: { ...req, permission: { action: 'repo:*', resource: '*' } } } }) };
      },
      /challenge is not the expected/,
    ],
    [
      'an assertion over another challenge',
      (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, assertion: { challenge: approvalChallenge(w.forB()) } }) }),
      /challenge is not the expected/,
    ],
    [
      'made on another origin',
      (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, assertion: { origin: 'https://evil.example' } }) }),
      /not an expected origin/,
    ],
    [
      'naming another origin than client data',
      (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, webauthn: { origin: 'https://console.example.org' } }) }),
      /not an expected origin/,
    ],
    ['made for another RP ID', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, assertion: { rpId: 'evil.example' } }) }), /rpIdHash/],
    [
      'not on the pinned RP ID',
      (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW }), o: { expectedRpId: 'other.example.org' } }),
      /not other\.example\.org/,
    ],
    [
      'not on a pinned origin',
      (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW }), o: { expectedOrigins: ['https://console.example.org'] } }),
      /not an expected origin/,
    ],
    ['with UV cleared', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, assertion: { flags: 0x01 } }) }), /not verified/],
    ['with UP cleared', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, assertion: { flags: 0x04 } }) }), /not present/],
    ['with crossOrigin true', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, assertion: { crossOrigin: true } }) }), /cross-origin/],
    ['with type webauthn.create', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, assertion: { type: 'webauthn.create' } }) }), /webauthn\.get/],
    [
      'whose signature is tampered',
      (w) => {
        const a = w.authn.getAssertion({ challenge: Buffer.alloc(32), origin: CONSOLE_ORIGIN });
        return { s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, webauthn: { signature: a.signature.toString('base64url') } }) };
      },
      /does not verify/,
    ],
    [
      'whose client data is tampered',
      (w) => {
        const req = w.forB();
        const cd = clientDataJson({ type: 'webauthn.get', challenge: approvalChallenge(req), origin: CONSOLE_ORIGIN, extra: { x: 1 } });
        return { s: rawStepUp(w.iss, w.authn, req, { now: NOW, webauthn: { client_data_json: cd.toString('base64url') } }) };
      },
      /does not verify/,
    ],
    [
      'whose authenticator data is tampered (counter)',
      (w) => {
        const ad = w.authn.authData(CONSOLE_RP_ID, 0x05, 999);
        return { s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, webauthn: { authenticator_data: ad.toString('base64url') } }) };
      },
      /does not verify/,
    ],
    [
      'embedding another credential key',
      (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, webauthn: { cose_key: new SoftAuthenticator('ES256').coseKey.toString('base64url') } }) }),
      /spki is not/,
    ],
    [
      'whose SPKI is another key’s',
      (w) => ({
        s: rawStepUp(w.iss, w.authn, w.forB(), {
          now: NOW,
          webauthn: { spki: new SoftAuthenticator('ES256').publicKey.export({ type: 'spki', format: 'der' }).toString('base64url') },
        }),
      }),
      /spki is not/,
    ],
    [
      'with an alg that does not fit the key (EdDSA signature, ES256 key)',
      (w) => {
        const ed = new SoftAuthenticator('EdDSA', CONSOLE_RP_ID);
        const req = w.forB();
        const a = ed.getAssertion({ challenge: approvalChallenge(req), origin: CONSOLE_ORIGIN });
        return {
          s: rawStepUp(w.iss, w.authn, req, {
            now: NOW,
            webauthn: {
              signature: a.signature.toString('base64url'),
              authenticator_data: a.authenticatorData.toString('base64url'),
              client_data_json: a.clientDataJSON.toString('base64url'),
            },
          }),
        };
      },
      /ES256 signature/,
    ],
    ['with an extra claim', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, override: { extra: 1 } }) }), /unknown members extra/],
    ['with a jwk header', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, header: { jwk: { kty: 'EC' } } }) }), /may not carry keys/],
    ['with another typ', (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, header: { typ: 'writ-grant+jwt' } }) }), /typ must be/],
    [
      'with an http origin that is not localhost',
      (w) => ({ s: rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, webauthn: { origin: 'http://console.example.org' } }) }),
      /must be https/,
    ],
  ];

  it.each(cases)('refuses a step-up grant %s', (_n, make, msg) => {
    const w = world();
    const { s, o } = make(w);
    const r = refusal(() => verifyStepUpGrant(s, { ...w.base(), ...o }));
    expect(r.code).toBe('ERR_STEP_UP_INVALID');
    expect(r.message).toMatch(msg);
  });

  it('the same grant put right verifies (the twins above differ in one thing)', () => {
    const w = world();
    expect(() =>
      verifyStepUpGrant(rawStepUp(w.iss, w.authn, w.forB(), { now: NOW }), { ...w.base(), expectedTask: 'task-1', agentJkt: w.B.jkt }),
    ).not.toThrow();
  });

  it('without the assertion check, an issuer-signed grant with a broken assertion still parses and verifies (deep checks it)', () => {
    const w = world();
    const s = rawStepUp(w.iss, w.authn, w.forB(), { now: NOW, assertion: { flags: 0x01 } });
    expect(verifyStepUpGrant(s, { ...w.base(), assertion: false }).assertion).toBeUndefined();
  });
});

describe('writs carrying step-up grants (docs/writ-format.md §Authority of a writ with step-up grants)', () => {
  const METHOD = 'GET /repos';
  function check(w: ReturnType<typeof world>, holder: Agent, writ: string, over: Partial<VerifyWritOptions> = {}) {
    return verifyWrit({
      writ,
      proof: createProof(writ, holder.key, { audience: AUD, method: METHOD, now: at(NOW) }),
      trust: w.iss.trust,
      audience: AUD,
      now: at(NOW),
      replayCache: new ProofReplayCache(),
      ...over,
    });
  }
  const writFor = (w: ReturnType<typeof world>, stepup?: string[], o: Record<string, unknown> = {}) =>
    w.iss.writ(w.B, [w.root, w.g1], { now: NOW - 10, ...(stepup ? { stepup } : {}), ...o }).writ;

  it('widens authority by the approved permission, never past a boundary', async () => {
    const w = world();
    const plain = check(w, w.B, writFor(w));
    expect(authorize(plain, 'repo:delete', 'repo://acme/widgets')).toMatchObject({ decision: 'deny', reason: 'outside-scope' });
    const s = await mintStepUp(w.iss, w.authn, w.forB(), NOW - 5);
    const v = check(w, w.B, writFor(w, [s]));
    expect(v.approvals).toHaveLength(1);
    expect(v.approvals[0]).toMatchObject({ approver: APPROVER, inherited: false, permission: { action: 'repo:delete', resource: 'repo://acme/widgets' } });
    expect(authorize(v, 'repo:delete', 'repo://acme/widgets')).toMatchObject({ decision: 'allow', approval: v.approvals[0]!.id });
    expect(authorize(v, 'repo:delete', 'repo://acme/gadgets')).toMatchObject({ decision: 'deny' });
    // An approval inside the boundary `repo://acme/secrets*` is still refused.
    const secret = await mintStepUp(w.iss, w.authn, w.forB({ permission: { action: 'repo:delete', resource: 'repo://acme/secrets-1' } }), NOW - 5);
    expect(authorize(check(w, w.B, writFor(w, [secret])), 'repo:delete', 'repo://acme/secrets-1')).toMatchObject({ decision: 'deny', reason: 'boundary' });
    expect(v.checks.some((c) => c.by === 'issuer' && /approval .* by https:\/\/idp\.example\.com#bob: the approver's WebAuthn assertion/.test(c.check))).toBe(
      true,
    );
  });

  it('turns an escalation into an allow for the agent it was granted to', async () => {
    const w = world();
    const writA = (stepup?: string[]) => w.iss.writ(w.A, [w.root], { now: NOW - 10, ...(stepup ? { stepup } : {}) }).writ;
    expect(authorize(check(w, w.A, writA()), 'repo:delete', 'repo://acme/widgets').decision).toBe('escalate');
    const s = await mintStepUp(w.iss, w.authn, w.forA(), NOW - 5);
    expect(authorize(check(w, w.A, writA([s])), 'repo:delete', 'repo://acme/widgets').decision).toBe('allow');
  });

  it('deep verification checks each assertion and reports the approver', async () => {
    const w = world();
    const s = await mintStepUp(w.iss, w.authn, w.forB(), NOW - 5);
    const v = check(w, w.B, writFor(w, [s]), { level: 'deep', approvals: { rpId: CONSOLE_RP_ID, origins: [CONSOLE_ORIGIN] } });
    expect(v.approvals[0]!.assertion).toMatchObject({ algorithm: 'ES256', origin: CONSOLE_ORIGIN, rpId: CONSOLE_RP_ID, flags: { up: true, uv: true } });
    expect(v.checks.some((c) => c.by === 'verifier' && /by https:\/\/idp\.example\.com#bob: WebAuthn ES256 assertion/.test(c.check))).toBe(true);
  });

  it('a broken assertion passes the standard level (taken from the issuer) and fails the deep one', () => {
    const w = world();
    const s = rawStepUp(w.iss, w.authn, w.forB(), { now: NOW - 5, assertion: { flags: 0x01 } });
    expect(() => check(w, w.B, writFor(w, [s]))).not.toThrow();
    const r = refusal(() => check(w, w.B, writFor(w, [s]), { level: 'deep' }));
    expect(r).toMatchObject({ code: 'ERR_WRIT_INVALID' });
    expect(r.message).toMatch(/step-up grant 0: .*not verified/);
  });

  it('lets a child carry its parent’s approval only when it says inherit', async () => {
    const w = world();
    const parents = await mintStepUp(w.iss, w.authn, w.forA({ permission: { action: 'repo:write', resource: 'repo://acme/widgets' } }), NOW - 5);
    const r = refusal(() => check(w, w.B, writFor(w, [parents])));
    expect(r.code).toBe('ERR_WRIT_INVALID');
    expect(r.message).toMatch(/granted to an ancestor \(grant 0\) and does not let descendants carry it/);
    const inheritable = await mintStepUp(
      w.iss,
      w.authn,
      w.forA({ inherit: true, permission: { action: 'repo:write', resource: 'repo://acme/widgets' } }),
      NOW - 5,
    );
    const v = check(w, w.B, writFor(w, [inheritable]));
    expect(v.approvals[0]!.inherited).toBe(true);
    expect(authorize(v, 'repo:write', 'repo://acme/widgets').decision).toBe('allow');
  });

  const writCases: Array<[string, (w: ReturnType<typeof world>, good: string) => string, RegExp]> = [
    ['stripped of its step-up grant (re-signed, binding over it)', (w, good) => writFor(w, undefined, { bindStepUp: [good] }), /binding digest does not match/],
    [
      'carrying another valid step-up grant than the one bound',
      (w, good) =>
        writFor(w, [rawStepUp(w.iss, w.authn, w.forB({ permission: { action: 'repo:write', resource: '*' } }), { now: NOW - 5 })], { bindStepUp: [good] }),
      /binding digest does not match/,
    ],
    ['carrying a step-up grant bound with binding v1', (_w, good) => writFor(_w, [good], { bindStepUp: null }), /binding digest does not match/],
    [
      'carrying another agent’s step-up grant',
      (w) => {
        const c = agent('c');
        return writFor(w, [rawStepUp(w.iss, w.authn, { ...w.forB(), agent: { sub: c.spiffeId, jkt: c.jkt, grant: newGrantId() } }, { now: NOW - 5 })]);
      },
      /granted to another agent \(its grant is not in this writ's lineage\)/,
    ],
    [
      'carrying one for its grant but another key',
      (w) => {
        const req = w.forB();
        return writFor(w, [rawStepUp(w.iss, w.authn, { ...req, agent: { ...req.agent, jkt: w.A.jkt } }, { now: NOW - 5 })]);
      },
      /another agent key or SPIFFE ID/,
    ],
    [
      'carrying another task’s step-up grant',
      (w) => writFor(w, [rawStepUp(w.iss, w.authn, { ...w.forB(), task: { id: 'task-2', goal: 'x', exp: NOW + 3000 }, exp: NOW + 3000 }, { now: NOW - 5 })]),
      /another task/,
    ],
    [
      'carrying an expired step-up grant',
      (w) => writFor(w, [rawStepUp(w.iss, w.authn, w.forB(), { now: NOW - 100, exp: NOW - 20 })]),
      /step-up grant 0: step-up: expired/,
    ],
    [
      'outliving a step-up grant it carries',
      (w) => writFor(w, [rawStepUp(w.iss, w.authn, w.forB(), { now: NOW - 5, exp: NOW + 60 })]),
      /outlives step-up grant 0/,
    ],
    [
      'carrying one signed by another key',
      (w) => writFor(w, [rawStepUp(w.iss, w.authn, w.forB(), { now: NOW - 5, key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey })]),
      /issuer signature does not verify/,
    ],
    ['carrying the same step-up grant twice', (_w, good) => writFor(_w, [good, good]), /repeats another/],
    ['with an empty stepup list', (w) => writFor(w, undefined, { override: { stepup: [] } }), /never empty/],
  ];

  it.each(writCases)('refuses a writ %s', async (_n, make, msg) => {
    const w = world();
    const good = await mintStepUp(w.iss, w.authn, w.forB(), NOW - 5);
    expect(() => check(w, w.B, writFor(w, [good]))).not.toThrow();
    const r = refusal(() => check(w, w.B, make(w, good)));
    expect(r.code).toBe('ERR_WRIT_INVALID');
    expect(r.message).toMatch(msg);
  });

  it('binds the list in order: B over [s1, s2] is not B over [s2, s1]', () => {
    expect(stepUpListDigest(['a.b.c', 'd.e.f']).equals(stepUpListDigest(['d.e.f', 'a.b.c']))).toBe(false);
    expect(stepUpListDigest(['a.b.cd.e.f']).equals(stepUpListDigest(['a.b.c', 'd.e.f']))).toBe(false);
  });

  it('a writ header signed without the typ is still refused before step-up grants are read', () => {
    const w = world();
    const bad = signJws({ typ: 'JWT', kid: w.iss.kid }, { a: 1 }, w.iss.key);
    expect(refusal(() => check(w, w.B, bad)).code).toBe('ERR_JWS_INVALID');
    expect(WRIT_TYP).toBe('writ+jwt');
  });
});
