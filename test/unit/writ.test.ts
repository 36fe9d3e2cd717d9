/**
 * The writ verifier against every attack the issue lists, each a test that must fail for the
 * stated reason, next to the valid writ it was derived from (which must pass).
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ProofReplayCache, createProof } from '../../src/writ/proof.js';
import { authorize, verifyWrit, type VerifyWritOptions } from '../../src/writ/verify.js';
import { verifyChain } from '../../src/delegation/chain.js';
import { jwkThumbprint, publicJwk, signJws } from '../../src/jose/jws.js';
import { bindingDigest } from '../../src/writ/binding.js';
import { WRIT_TYP } from '../../src/writ/writ.js';
import { FakeIssuer, agent, hop, rawHop, SNAP } from '../helpers/writ-fixture.js';

const NOW = 1_790_000_000;
const at = new Date(NOW * 1000);
const AUD = 'spiffe://example.org/tool/github';

const iss = new FakeIssuer();
const alice = { A: agent('a'), B: agent('b'), C: agent('c') };

/** A valid three-hop world: root → A, A → B, B → C. */
function world(o: { scopeB?: Array<{ action: string; resource: string }> } = {}) {
  const root = iss.rootGrant(alice.A, { now: NOW - 100 });
  const g1 = hop(root, alice.A, alice.B, NOW - 90, { scope: o.scopeB ?? [{ action: 'repo:read', resource: 'repo://acme/*' }] });
  const g2 = hop(g1, alice.B, alice.C, NOW - 80, { scope: [{ action: 'repo:read', resource: 'repo://acme/widgets*' }] });
  return { root, g1, g2, chain: [root, g1, g2] };
}

function opts(writ: string, key = alice.C.key, over: Partial<VerifyWritOptions> = {}): VerifyWritOptions {
  return {
    writ,
    proof: createProof(writ, key, { audience: AUD, method: 'GET /repos', now: at }),
    trust: iss.trust,
    audience: AUD,
    now: at,
    replayCache: new ProofReplayCache(),
    ...over,
  };
}

describe('writ verification (standard and deep)', () => {
  const w = world();
  const { writ } = iss.writ(alice.C, w.chain, { now: NOW - 10 });

  it('accepts a valid three-hop writ and reports the chain back to the human', () => {
    for (const level of ['standard', 'deep'] as const) {
      const v = verifyWrit({ ...opts(writ), level });
      expect(v.chain).toEqual(['https://idp.example.com#alice', alice.A.spiffeId, alice.B.spiffeId, alice.C.spiffeId]);
      expect(v.lineage).toHaveLength(3);
      const mine = v.checks
        .filter((c) => c.by === 'verifier')
        .map((c) => c.check)
        .join('\n');
      if (level === 'deep') expect(mine).toMatch(/every grant signature/);
      else expect(v.checks.some((c) => c.by === 'issuer' && /grant signatures/.test(c.check))).toBe(true);
    }
  });

  it('authorize: inside scope, boundary, escalation, outside scope', () => {
    const v = verifyWrit(opts(writ));
    expect(authorize(v, 'repo:read', 'repo://acme/widgets-api').decision).toBe('allow');
    expect(authorize(v, 'repo:write', 'repo://acme/widgets-api')).toMatchObject({ decision: 'deny', reason: 'outside-scope' });
    expect(authorize(v, 'repo:read', 'repo://acme/secrets-widgets')).toMatchObject({ decision: 'deny', reason: 'boundary' });
    const w2 = iss.rootGrant(alice.C, { now: NOW - 5, escalate: [{ action: 'repo:delete', resource: '*' }] });
    const v2 = verifyWrit(opts(iss.writ(alice.C, [w2], { now: NOW - 5 }).writ));
    expect(authorize(v2, 'repo:delete', 'repo://acme/x').decision).toBe('escalate');
  });

  const bad: Array<[string, () => VerifyWritOptions, RegExp, string?]> = [
    ['a writ without a proof (bearer use)', () => ({ ...opts(writ), proof: '' }), /proof of possession is required/, 'ERR_PROOF_INVALID'],
    ["a writ with someone else's proof", () => opts(writ, alice.B.key), /key other than the writ's cnf key/, 'ERR_PROOF_INVALID'],
    [
      'a proof made for another writ',
      () => ({
        ...opts(writ),
        proof: createProof(iss.writ(alice.C, w.chain, { now: NOW - 9 }).writ, alice.C.key, { audience: AUD, method: 'GET /repos', now: at }),
      }),
      /another writ/,
    ],
    ['a proof for another audience', () => ({ ...opts(writ), audience: 'spiffe://example.org/tool/other' }), /another audience/],
    ['a proof for another method', () => ({ ...opts(writ), method: 'DELETE /repos' }), /another method/],
    ['an expired proof', () => ({ ...opts(writ), now: new Date((NOW + 61) * 1000) }), /expired/],
    ['a writ from another trust domain', () => ({ ...opts(writ), trust: new FakeIssuer('other.org').trust }), /not the trusted issuer/],
    [
      'a writ signed by a key the bundle does not hold',
      () => ({ ...opts(writ), trust: { issuer: iss.issuer, writKeys: new FakeIssuer().trust.writKeys } }),
      /kid unknown/,
    ],
    [
      'a writ past its task end',
      () =>
        opts(iss.writ(alice.C, [iss.rootGrant(alice.C, { now: NOW - 4000, ttl: 3990 })], { now: NOW - 3990 }).writ, alice.C.key, {
          now: new Date((NOW + 20) * 1000),
        }),
      /expired|task/,
    ],
    [
      'a policy snapshot older than accepted',
      () => ({ ...opts(iss.writ(alice.C, w.chain, { now: NOW - 10, polIat: NOW - 7200 }).writ), requirements: { maxPolicyAgeSeconds: 3600 } }),
      /policy snapshot is 7200s old/,
    ],
    [
      'a policy snapshot not in the accepted list',
      () => ({ ...opts(writ), requirements: { policySnapshots: ['b'.repeat(64)] } }),
      /not one this relying party accepts/,
    ],
    ['an evidence type not accepted', () => ({ ...opts(writ), requirements: { evidenceTypes: ['tpm'] } }), /evidence type join_token/],
    ['a required selector missing', () => ({ ...opts(writ), requirements: { selectors: ['tpm:model:x'] } }), /required selector/],
    ['a principal from another OIDC issuer', () => ({ ...opts(writ), requirements: { principalIssuer: 'https://other' } }), /another OIDC issuer/],
    [
      'a revoked grant in the lineage',
      () => ({
        ...opts(writ),
        revocation: {
          check: ({ claims }: { claims: { lineage: readonly string[] } }) => {
            const g1 = (JSON.parse(Buffer.from(w.g1.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti;
            return { revoked: claims.lineage.includes(g1), reason: `grant ${g1} revoked`, source: 'test source' };
          },
        },
      }),
      /revoked: grant .* revoked \(test source\)/,
      'ERR_WRIT_REVOKED',
    ],
    [
      'a revocation source that cannot answer (fails closed)',
      () => ({
        ...opts(writ),
        revocation: {
          check: () => {
            throw new Error('never synced');
          },
        },
      }),
      /revocation status unknown: never synced/,
      'ERR_WRIT_INVALID',
    ],
  ];
  it.each(bad)('rejects %s', (_n, make, re, code) => {
    let err: unknown;
    try {
      verifyWrit(make());
    } catch (e) {
      err = e;
    }
    expect(err, 'must be rejected').toBeDefined();
    expect((err as Error).message).toMatch(re);
    if (code) expect((err as { code: string }).code).toBe(code);
  });

  it('rejects a replayed proof, once used', () => {
    const o = opts(writ);
    verifyWrit(o);
    expect(() => verifyWrit(o)).toThrow(expect.objectContaining({ code: 'ERR_PROOF_REPLAYED' }));
  });

  it('records nothing for a proof that fails, so a bad proof cannot burn a good id', () => {
    const cache = new ProofReplayCache();
    expect(() => verifyWrit({ ...opts(writ, alice.B.key), replayCache: cache })).toThrow();
    expect(cache.size).toBe(0);
  });
});

describe('algorithm confusion', () => {
  const w = world();
  const { writ, claims } = iss.writ(alice.C, w.chain, { now: NOW - 10 });
  const p = writ.split('.')[1];
  const pub = createPublicKey(iss.key);
  const forge = (header: Record<string, unknown>, sig: Buffer) =>
    `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${p}.${sig.toString('base64url')}`;
  const cases: Array<[string, string]> = [
    ['alg none', forge({ alg: 'none', typ: WRIT_TYP, kid: iss.kid }, Buffer.alloc(0))],
    [
      'HS256 keyed with the public key',
      forge(
        { alg: 'HS256', typ: WRIT_TYP, kid: iss.kid },
        createHash('sha256')
          .update(pub.export({ type: 'spki', format: 'pem' }))
          .digest(),
      ),
    ],
    ['ES384 claimed for a P-256 key', forge({ alg: 'ES384', typ: WRIT_TYP, kid: iss.kid }, Buffer.from(writ.split('.')[2]!, 'base64url'))],
    ['RS256 claimed for an EC key', forge({ alg: 'RS256', typ: WRIT_TYP, kid: iss.kid }, Buffer.from(writ.split('.')[2]!, 'base64url'))],
    ['a JWT-SVID typ', forge({ alg: 'ES256', typ: 'JWT', kid: iss.kid }, Buffer.from(writ.split('.')[2]!, 'base64url'))],
    ['an embedded jwk in the header', signJws({ typ: WRIT_TYP, kid: iss.kid, jwk: publicJwk(createPublicKey(alice.C.key)) }, { ...claims }, alice.C.key)],
    ['a writ signed by the agent itself', signJws({ typ: WRIT_TYP, kid: iss.kid }, { ...claims }, alice.C.key)],
    ['a crit header', forge({ alg: 'ES256', typ: WRIT_TYP, kid: iss.kid, crit: ['exp'] }, Buffer.from(writ.split('.')[2]!, 'base64url'))],
  ];
  it.each(cases)('rejects %s', (_n, forged) => {
    expect(() => verifyWrit(opts(forged))).toThrow(/jws|writ/);
  });

  it('every single-character change of the writ is rejected', () => {
    const cache = new ProofReplayCache();
    for (let i = 0; i < writ.length; i += 7) {
      const c = writ[i] === 'A' ? 'B' : 'A';
      const mutated = writ.slice(0, i) + c + writ.slice(i + 1);
      if (mutated === writ) continue;
      expect(() => verifyWrit({ ...opts(mutated), replayCache: cache }), `offset ${i}`).toThrow();
    }
  });
});

describe('delegation rules (issuer and verifier alike)', () => {
  const base = world();
  const chainOf = (grants: string[], leaf = alice.C.jkt, keys = true) =>
    verifyChain({ grants, issuer: iss.issuer, ...(keys ? { issuerKeys: iss.trust.writKeys } : {}), now: NOW, leafJkt: leaf });

  it('accepts the valid chain', () => {
    expect(chainOf(base.chain).lineage).toHaveLength(3);
  });

  const root = iss.rootGrant(alice.A, { now: NOW - 100, maxDepth: 1 });
  const shallowHop = hop(root, alice.A, alice.B, NOW - 90);
  const hopAB = hop(base.root, alice.A, alice.B, NOW - 90);
  const cases: Array<[string, () => string[], RegExp, string?]> = [
    [
      'scope widening at the first hop',
      () => [root, rawHop(root, alice.A.key, { scope: [{ action: 'repo:*', resource: 'repo://*' }] }, alice.B)],
      /widens the scope/,
      alice.B.jkt,
    ],
    [
      'scope widening at the second hop',
      () => [base.root, base.g1, rawHop(base.g1, alice.B.key, { scope: [{ action: 'repo:write', resource: 'repo://acme/*' }] }, alice.C)],
      /grant 2 widens the scope/,
    ],
    ['a boundary dropped at a hop', () => [base.root, rawHop(base.root, alice.A.key, { boundaries: [] }, alice.B)], /drops the boundary/, alice.B.jkt],
    [
      'an escalation rule dropped at a hop',
      () => [base.root, rawHop(base.root, alice.A.key, { escalate: [] }, alice.B)],
      /drops the escalation rule/,
      alice.B.jkt,
    ],
    [
      'expiry extended',
      () => [base.root, rawHop(base.root, alice.A.key, { exp: parseG(base.root).exp + 10 }, alice.B)],
      /extends the expiry|outlives its task/,
      alice.B.jkt,
    ],
    ['depth over the limit', () => [root, shallowHop, rawHop(shallowHop, alice.B.key, {}, alice.C)], /grant 2 is deeper than the root's limit of 1/],
    [
      'a cycle (a key delegated to twice)',
      () => [base.root, hopAB, rawHop(hopAB, alice.B.key, {}, alice.A)],
      /already holds a grant in this chain \(a cycle\)/,
      alice.A.jkt,
    ],
    ['a grant signed by the wrong key', () => [base.root, rawHop(base.root, alice.C.key, {}, alice.B)], /signed by a key other than/, alice.B.jkt],
    ['a grant stolen for another key', () => [base.root, base.g1], /delegated to another key/, alice.C.jkt],
    ['a hop linked to another parent', () => [base.root, rawHop(base.root, alice.A.key, { prev: 'x'.repeat(43) }, alice.B)], /does not link/, alice.B.jkt],
    [
      'a hop that changes the task',
      () => [base.root, rawHop(base.root, alice.A.key, { task: { ...parseG(base.root).task, goal: 'something else' } }, alice.B)],
      /changes the task/,
      alice.B.jkt,
    ],
    [
      'a hop that changes the principal',
      () => [base.root, rawHop(base.root, alice.A.key, { principal: { iss: 'https://idp.example.com', sub: 'mallory' } }, alice.B)],
      /changes the principal/,
      alice.B.jkt,
    ],
    [
      'a root grant from another issuer with a colliding id',
      () => [new FakeIssuer('other.org').rootGrant(alice.A, { now: NOW - 100, jti: parseG(base.root).jti })],
      /issued by spiffe:\/\/other.org/,
      alice.A.jkt,
    ],
    [
      'a same-trust-domain root signed by another key with a colliding id',
      () => [new FakeIssuer().rootGrant(alice.A, { now: NOW - 100, jti: parseG(base.root).jti })],
      /key the trust bundle does not hold/,
      alice.A.jkt,
    ],
    ['a grant chain with the root dropped', () => [base.g1, base.g2], /depth|root/],
    ['a grant chain with a middle hop dropped', () => [base.root, base.g2], /does not link|depth/],
    ['an expired grant', () => [iss.rootGrant(alice.A, { now: NOW - 4000, ttl: 3000 })], /expired/, alice.A.jkt],
  ];
  it.each(cases)('rejects %s', (_n, grants, re, leaf) => {
    expect(() => chainOf(grants(), leaf ?? alice.C.jkt)).toThrow(re);
  });

  it('splicing: one writ’s grant chain under another writ’s attestation is refused (binding digest)', () => {
    const other = world();
    const a = iss.writ(alice.C, base.chain, { now: NOW - 10 });
    const b = iss.writ(alice.C, other.chain, { now: NOW - 10 });
    // The issuer key signs a writ whose grants come from b and whose attestation comes from a.
    const spliced = iss.writ(alice.C, other.chain, { now: NOW - 10, override: { att: a.claims.att } }).writ;
    expect(() => verifyWrit(opts(spliced))).toThrow(/binding digest does not match/);
    expect(() => verifyWrit(opts(b.writ))).not.toThrow();
  });

  it('splicing: a grant dropped from a writ (lineage still listing it) is refused', () => {
    const full = iss.writ(alice.C, base.chain, { now: NOW - 10 });
    const dropped = iss.writ(alice.C, [base.root, base.g1], { now: NOW - 10, override: { lineage: full.claims.lineage } });
    expect(() => verifyWrit(opts(dropped.writ))).toThrow(/grants and lineage|lineage|delegated to another key/);
  });

  it('a canonicalization trick: duplicate JSON members in a grant are refused, not read either way', () => {
    const g = parseG(base.root);
    const header = Buffer.from(JSON.stringify({ typ: 'writ-grant+jwt', kid: iss.kid, alg: 'ES256' })).toString('base64url');
    const json = JSON.stringify(g).replace(/^\{/, '{"scope":[{"action":"*","resource":"*"}],');
    const input = `${header}.${Buffer.from(json).toString('base64url')}`;
    const sig = sign('sha256', Buffer.from(input), { key: iss.key, dsaEncoding: 'ieee-p1363' });
    expect(() => chainOf([`${input}.${sig.toString('base64url')}`], alice.A.jkt)).toThrow(/duplicate member name "scope"/);
  });

  it('a canonicalization trick: a look-alike task id cannot be minted (ASCII only), and fields cannot shift between length-prefixed parts', () => {
    // 'tаsk-1' has a Cyrillic 'а': the fixture signs it, verifiers refuse it.
    expect(() => chainOf([iss.rootGrant(alice.A, { now: NOW, taskId: 'tаsk-1' })], alice.A.jkt)).toThrow(/task.id must be/);
    const nonce = randomBytes(32);
    const d = Buffer.alloc(32, 1);
    expect(bindingDigest({ jkt: alice.A.jkt, chainDigest: d, policySnapshot: SNAP, taskId: 'ab', nonce })).not.toEqual(
      bindingDigest({ jkt: alice.A.jkt, chainDigest: d, policySnapshot: SNAP, taskId: 'a', nonce }),
    );
  });
});

function parseG(g: string) {
  return JSON.parse(Buffer.from(g.split('.')[1]!, 'base64url').toString()) as import('../../src/delegation/grant.js').GrantClaims;
}

describe('proof of possession with an RSA agent key', () => {
  it('verifies a PS256 proof whose jwk thumbprint matches cnf', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const holder = { key: rsa, jkt: '', spiffeId: 'spiffe://example.org/agent/rsa' };
    const h = { ...holder, jkt: jwkThumbprint(createPublicKey(rsa)) };
    const root = iss.rootGrant(h, { now: NOW - 10 });
    const { writ } = iss.writ(h, [root], { now: NOW - 10 });
    expect(verifyWrit(opts(writ, rsa)).spiffeId).toBe(h.spiffeId);
  });
});
