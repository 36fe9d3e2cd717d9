/**
 * Relying-party verification (src/writ/verify.ts), rule by rule: each check refuses the writ it
 * exists for, and the same writ with that one thing put right is accepted, so that deleting or
 * loosening any check fails a test (`make mutate`, docs/testing.md). Writs and grants come from
 * the test issuer (real ES256 signatures); deep verification uses a fake re-verifier that
 * implements the EvidenceReverifier interface and records what it was asked.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { EvidenceReverifier, ReverifiedEvidence, ReverifyContext } from '../../src/attestation/verifier.js';
import { parseGrant } from '../../src/delegation/grant.js';
import { signJws } from '../../src/jose/jws.js';
import { ProofReplayCache, createProof } from '../../src/writ/proof.js';
import { authorize, verifyWrit, WRIT_SKEW_S, type RevocationSource, type VerifyWritOptions } from '../../src/writ/verify.js';
import { WRIT_TYP, type WritClaims } from '../../src/writ/writ.js';
import { FakeIssuer, SNAP, agent, hop, type Agent } from '../helpers/writ-fixture.js';

const NOW = 1_790_000_000;
const at = (s: number) => new Date(s * 1000);
const AUD = 'spiffe://example.org/tool/github';
const METHOD = 'GET /repos';

interface World {
  iss: FakeIssuer;
  A: Agent;
  B: Agent;
  root: string;
  g1: string;
  /** A writ for B over [root, g1], with these options. */
  writ(o?: Parameters<FakeIssuer['writ']>[2] extends infer T ? Partial<T> : never, grants?: string[]): { writ: string; claims: WritClaims; binding: Buffer };
}

/** root → A, A → B (narrower scope), a writ for B. */
function world(): World {
  const iss = new FakeIssuer();
  const A = agent('a');
  const B = agent('b');
  const root = iss.rootGrant(A, { now: NOW - 100 });
  const g1 = hop(root, A, B, NOW - 90, { scope: [{ action: 'repo:read', resource: 'repo://acme/*' }] });
  return { iss, A, B, root, g1, writ: (o = {}, grants = [root, g1]) => iss.writ(B, grants, { now: NOW - 10, ...o }) };
}

function opts(w: World, writ: string, over: Partial<VerifyWritOptions> = {}): VerifyWritOptions {
  const now = over.now ?? at(NOW);
  return {
    writ,
    proof: createProof(writ, w.B.key, { audience: AUD, method: METHOD, now }),
    trust: w.iss.trust,
    audience: AUD,
    now,
    replayCache: new ProofReplayCache(),
    ...over,
  };
}

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}

const writErr = (message: string) => ({ code: 'ERR_WRIT_INVALID', message });

describe('writ verification: the issuer signature', () => {
  it('refuses a writ from another issuer, naming both', () => {
    const w = world();
    const { writ } = w.writ();
    expect(refusal(() => verifyWrit(opts(w, writ, { trust: { ...w.iss.trust, issuer: 'spiffe://other.org' } })))).toEqual(
      expect.objectContaining(writErr('writ: issued by spiffe://example.org, not the trusted issuer spiffe://other.org')),
    );
  });

  it('quotes at most 80 characters of a foreign issuer', () => {
    const w = world();
    const longIss = `spiffe://${'x'.repeat(100)}.org`;
    const writ = w.writ({ override: { iss: longIss } }).writ;
    expect(refusal(() => verifyWrit(opts(w, writ))).message).toBe(`writ: issued by ${longIss.slice(0, 80)}, not the trusted issuer spiffe://example.org`);
  });

  it('refuses a writ whose kid the bundle does not hold', () => {
    const w = world();
    const { writ } = w.writ();
    const trust = { issuer: w.iss.issuer, writKeys: new Map([['another-kid', w.iss.trust.writKeys.get(w.iss.kid)!]]) };
    expect(refusal(() => verifyWrit(opts(w, writ, { trust })))).toMatchObject(writErr('writ: signed by a key the trust bundle does not hold (kid unknown)'));
  });

  it("refuses a writ signed by another key under the issuer's kid", () => {
    const w = world();
    const { claims } = w.writ();
    const forged = signJws({ typ: WRIT_TYP, kid: w.iss.kid }, { ...claims }, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
    expect(refusal(() => verifyWrit(opts(w, forged)))).toMatchObject(writErr('writ: issuer signature does not verify'));
  });
});

describe('writ verification: its own times', () => {
  it(`refuses a writ issued more than WRIT_SKEW_S (${WRIT_SKEW_S} s) in the future, accepts one at the skew`, () => {
    const w = world();
    expect(refusal(() => verifyWrit(opts(w, w.writ({ override: { iat: NOW + WRIT_SKEW_S + 1 } }).writ)))).toMatchObject(writErr('writ: issued in the future'));
    expect(verifyWrit(opts(w, w.writ({ override: { iat: NOW + WRIT_SKEW_S } }).writ)).spiffeId).toBe(w.B.spiffeId);
  });

  it('refuses an expired writ (its exp more than the skew ago), even with a fresh proof', () => {
    const w = world();
    const { writ, claims } = w.writ({ ttl: 60 });
    const proofAt = (s: number) => opts(w, writ, { now: at(s) });
    expect(refusal(() => verifyWrit(proofAt(claims.exp + WRIT_SKEW_S)))).toMatchObject(writErr('writ: expired'));
    expect(verifyWrit(proofAt(claims.exp + WRIT_SKEW_S - 1)).expiresAt).toBe(claims.exp);
  });

  it('refuses a writ whose task has ended, even when the writ claims a later exp', () => {
    const w = world();
    const { claims } = w.writ();
    const ended = (exp: number) => w.writ({ override: { task: { ...claims.task, exp }, exp: NOW + 100 } }).writ;
    expect(refusal(() => verifyWrit(opts(w, ended(NOW - WRIT_SKEW_S))))).toMatchObject(writErr('writ: the task task-1 has ended'));
    // One second later the task has not ended (within the skew); the writ then fails as outliving it.
    expect(refusal(() => verifyWrit(opts(w, ended(NOW - WRIT_SKEW_S + 1))))).toMatchObject(writErr('writ: outlives its task'));
  });

  it('refuses a writ that outlives its task, accepts one ending with it', () => {
    const w = world();
    const { claims } = w.writ();
    expect(refusal(() => verifyWrit(opts(w, w.writ({ override: { exp: claims.task.exp + 1 } }).writ)))).toMatchObject(writErr('writ: outlives its task'));
    // Ending exactly with the task (and its last grant, which ends with the task here) is allowed.
    expect(verifyWrit(opts(w, w.writ({ override: { exp: claims.task.exp } }).writ)).expiresAt).toBe(claims.task.exp);
  });

  it('refuses a writ that outlives its last grant, accepts one ending with it', () => {
    const w = world();
    const short = hop(w.root, w.A, w.B, NOW - 90, { exp: NOW + 100 });
    const over = w.writ({ override: { exp: NOW + 101 } }, [w.root, short]).writ;
    expect(refusal(() => verifyWrit(opts(w, over)))).toMatchObject(writErr('writ: outlives its last grant'));
    expect(verifyWrit(opts(w, w.writ({ override: { exp: NOW + 100 } }, [w.root, short]).writ)).expiresAt).toBe(NOW + 100);
  });
});

describe('writ verification: audience', () => {
  it('refuses a writ whose aud does not list this relying party, accepts one that does', () => {
    const w = world();
    const other = w.writ({ override: { aud: ['spiffe://example.org/tool/other'] } }).writ;
    expect(refusal(() => verifyWrit(opts(w, other)))).toMatchObject(writErr('writ: not issued for this audience'));
    const listed = verifyWrit(opts(w, w.writ({ override: { aud: ['spiffe://example.org/tool/other', AUD] } }).writ));
    expect(listed.checks).toContainEqual({ check: 'audience listed in the writ', by: 'verifier' });
  });
});

describe('writ verification: the chain it carries', () => {
  /** g1 with its signature replaced by one from a key that is not A's (the jwk header still names A). */
  const badlySignedHop = (w: World) => {
    const [h, p] = w.g1.split('.');
    const sig = signJws({ typ: 'x', kid: 'x' }, {}, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey).split('.')[2];
    return `${h}.${p}.${sig}`;
  };

  it('deep verification checks every grant signature; standard takes them on the issuer’s word and says so', () => {
    const w = world();
    const { writ } = w.writ({}, [w.root, badlySignedHop(w)]);
    const std = verifyWrit(opts(w, writ));
    expect(std.checks).toContainEqual({ check: 'grant signatures (checked at issuance; verify with --deep)', by: 'issuer' });
    expect(refusal(() => verifyWrit(opts(w, writ, { level: 'deep' })))).toMatchObject(writErr('writ: delegation: grant 1 signature does not verify'));
  });

  it('deep verification refuses a root grant signed by another key under the issuer kid, or by a kid the bundle lacks', () => {
    const w = world();
    const impostor = new FakeIssuer();
    const sameKid = Object.assign(impostor, { kid: w.iss.kid });
    const forgedRoot = sameKid.rootGrant(w.B, { now: NOW - 100 });
    const { writ } = w.writ({}, [forgedRoot]);
    expect(verifyWrit(opts(w, writ)).level).toBe('standard');
    expect(refusal(() => verifyWrit(opts(w, writ, { level: 'deep' })))).toMatchObject(writErr('writ: delegation: the root grant signature does not verify'));
    const unknown = w.writ({}, [new FakeIssuer().rootGrant(w.B, { now: NOW - 100 })]).writ;
    expect(refusal(() => verifyWrit(opts(w, unknown, { level: 'deep' })))).toMatchObject(
      writErr('writ: delegation: the root grant is signed by a key the trust bundle does not hold'),
    );
  });

  it('reports a chain failure as an invalid writ, with the delegation reason and error as its cause', () => {
    const w = world();
    const stolen = w.iss.writ(w.A, [w.root, w.g1], { now: NOW - 10 }).writ;
    const e = refusal(() => verifyWrit({ ...opts(w, stolen), proof: createProof(stolen, w.A.key, { audience: AUD, method: METHOD, now: at(NOW) }) }));
    expect(e).toMatchObject(writErr('writ: delegation: the last grant is delegated to another key than the one presented'));
    expect((e as { cause?: unknown }).cause).toMatchObject({
      code: 'ERR_GRANT_INVALID',
      message: 'delegation: the last grant is delegated to another key than the one presented',
    });
  });

  it('refuses a lineage that lists other grant ids than the chain, in order', () => {
    const w = world();
    const { claims } = w.writ();
    const swapped = w.writ({ override: { lineage: [...claims.lineage].reverse() } }).writ;
    expect(refusal(() => verifyWrit(opts(w, swapped)))).toMatchObject(writErr('writ: lineage does not list the grants it carries'));
    const other = w.writ({ override: { lineage: [claims.lineage[0]!, randomBytes(16).toString('base64url')] } }).writ;
    expect(refusal(() => verifyWrit(opts(w, other)))).toMatchObject(writErr('writ: lineage does not list the grants it carries'));
  });

  it('refuses a writ whose principal is not the root grant’s (issuer or subject)', () => {
    const w = world();
    for (const principal of [
      { iss: 'https://evil.example.com', sub: 'alice' },
      { iss: 'https://idp.example.com', sub: 'mallory' },
    ]) {
      expect(refusal(() => verifyWrit(opts(w, w.writ({ override: { principal } }).writ)))).toMatchObject(
        writErr('writ: principal differs from the root grant'),
      );
    }
  });

  it('refuses a writ whose task is not the root grant’s (id, goal or end)', () => {
    const w = world();
    const { claims } = w.writ();
    for (const task of [
      { ...claims.task, id: 'task-2' },
      { ...claims.task, goal: 'delete everything' },
      { ...claims.task, exp: claims.task.exp + 10 },
    ]) {
      expect(refusal(() => verifyWrit(opts(w, w.writ({ override: { task } }).writ)))).toMatchObject(writErr('writ: task differs from the root grant'));
    }
  });

  it('refuses an act chain that does not name the delegators, outermost first, down to the principal', () => {
    const w = world();
    const { claims } = w.writ();
    const alice = { sub: 'alice', iss: 'https://idp.example.com' };
    const cases: WritClaims['act'][] = [
      alice, // the hop is missing
      { sub: w.A.spiffeId, act: { sub: w.A.spiffeId, act: alice } }, // one too many
      { sub: 'spiffe://example.org/agent/mallory', act: alice }, // another delegator
      { sub: w.A.spiffeId, act: { sub: 'bob', iss: 'https://idp.example.com' } }, // another principal
      { sub: w.A.spiffeId, iss: 'https://idp.example.com' }, // the principal left out, its issuer moved up
    ];
    for (const act of cases) {
      expect(
        refusal(() => verifyWrit(opts(w, w.writ({ override: { act } }).writ))),
        JSON.stringify(act),
      ).toMatchObject(writErr('writ: act chain does not match the grants'));
    }
    expect(claims.act).toEqual({ sub: w.A.spiffeId, act: alice });
  });

  it('refuses an act chain whose principal has another issuer, or whose agents claim one', () => {
    const w = world();
    for (const act of [
      { sub: w.A.spiffeId, act: { sub: 'alice', iss: 'https://evil.example.com' } },
      { sub: w.A.spiffeId, act: { sub: 'alice' } },
      { sub: w.A.spiffeId, iss: 'https://idp.example.com', act: { sub: 'alice', iss: 'https://idp.example.com' } },
    ]) {
      expect(
        refusal(() => verifyWrit(opts(w, w.writ({ override: { act } }).writ))),
        JSON.stringify(act),
      ).toMatchObject(writErr('writ: act chain does not end at the principal'));
    }
  });

  it('reports the chain back to the human, the lineage and the last grant’s constraints', () => {
    const w = world();
    const { writ, claims } = w.writ();
    const v = verifyWrit(opts(w, writ));
    expect(v.chain).toEqual(['https://idp.example.com#alice', w.A.spiffeId, w.B.spiffeId]);
    expect(v.lineage).toEqual([parseGrant(w.root).claims.jti, parseGrant(w.g1).claims.jti]);
    expect(v).toMatchObject({
      level: 'standard',
      spiffeId: w.B.spiffeId,
      principal: claims.principal,
      task: claims.task,
      jti: claims.jti,
      expiresAt: claims.exp,
    });
    expect(v.constraints).toEqual({
      scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
      boundaries: [{ action: '*', resource: 'repo://acme/secrets*' }],
      escalate: [{ action: 'repo:delete', resource: '*' }],
    });
    expect(v.claims).toEqual(claims);
    expect(authorize(v, 'repo:read', 'repo://acme/widgets')).toEqual({ decision: 'allow', matched: { action: 'repo:read', resource: 'repo://acme/*' } });
    expect(authorize(v, 'repo:write', 'repo://acme/widgets')).toEqual({ decision: 'deny', reason: 'outside-scope' });
  });
});

describe('writ verification: revocation', () => {
  const SOURCE = 'a test source at sequence 7';
  /** A source that says a writ is revoked when `hit` names something of its lineage; records what it was asked. */
  const source = (hit: (lineage: readonly string[]) => string | undefined, asked: string[][] = []): RevocationSource => ({
    check: ({ claims }) => {
      asked.push([...claims.lineage]);
      const id = hit(claims.lineage);
      return id ? { revoked: true, reason: `grant ${id} revoked by operator`, source: SOURCE } : { revoked: false, source: SOURCE };
    },
  });

  it('refuses a writ any grant of whose lineage the source says is revoked, root or leaf, naming it and the source', () => {
    const w = world();
    const { writ, claims } = w.writ();
    for (const id of claims.lineage) {
      expect(refusal(() => verifyWrit(opts(w, writ, { revocation: source((l) => l.find((g) => g === id)) })))).toMatchObject({
        code: 'ERR_WRIT_REVOKED',
        message: `writ: revoked: grant ${id} revoked by operator (${SOURCE})`,
      });
    }
  });

  it('accepts a writ the source does not know revoked, and says the verifier checked it with that source', () => {
    const w = world();
    const { writ, claims } = w.writ();
    const asked: string[][] = [];
    const v = verifyWrit(opts(w, writ, { revocation: source(() => undefined, asked) }));
    expect(asked).toEqual([claims.lineage]);
    expect(v.checks).toContainEqual({ check: `not revoked: not the writ, its lineage, task, principal, agents, keys or platform (${SOURCE})`, by: 'verifier' });
    expect(v.checks.some((c) => /no revocation source/.test(c.check))).toBe(false);
  });

  it('fails closed when the source cannot answer, and reports the check as not made without a source', () => {
    const w = world();
    const { writ } = w.writ();
    const broken: RevocationSource = {
      check: () => {
        throw new Error('never synced');
      },
    };
    expect(refusal(() => verifyWrit(opts(w, writ, { revocation: broken })))).toMatchObject(writErr('writ: revocation status unknown: never synced'));
    const v = verifyWrit(opts(w, writ));
    expect(v.checks).toContainEqual({ check: 'revocation: no revocation source was given (a watch stream or a status list)', by: 'unchecked' });
  });
});

describe('writ verification: the binding digest', () => {
  it('refuses a writ whose nonce or binding was changed after the hardware signed B', () => {
    const w = world();
    const { claims } = w.writ();
    const msg = writErr('writ: binding digest does not match the key, grants, policy snapshot, task and nonce it carries');
    const att = (o: Partial<WritClaims['att']>) => w.writ({ override: { att: { ...claims.att, ...o } } }).writ;
    expect(refusal(() => verifyWrit(opts(w, att({ nonce: randomBytes(32).toString('base64url') }))))).toMatchObject(msg);
    expect(refusal(() => verifyWrit(opts(w, att({ bind: randomBytes(32).toString('base64url') }))))).toMatchObject(msg);
    expect(refusal(() => verifyWrit(opts(w, w.writ({ override: { pol: { ...claims.pol, snap: 'b'.repeat(64) } } }).writ)))).toMatchObject(msg);
  });
});

describe('writ verification: relying-party requirements accept what meets them and refuse what does not', () => {
  const meets = (w: World, writ: string, requirements: VerifyWritOptions['requirements']) => {
    const v = verifyWrit(opts(w, writ, { requirements }));
    expect(v.checks).toContainEqual({ check: 'relying-party requirements', by: 'verifier' });
    return v;
  };

  it('evidence types', () => {
    const w = world();
    const { writ } = w.writ();
    expect(meets(w, writ, { evidenceTypes: ['tpm', 'join_token'] }).evidenceType).toBe('join_token');
    expect(refusal(() => verifyWrit(opts(w, writ, { requirements: { evidenceTypes: ['tpm'] } })))).toMatchObject(
      writErr('writ: evidence type join_token is not one this relying party accepts'),
    );
  });

  it('selectors: every one required must be there', () => {
    const w = world();
    const { writ } = w.writ({ sel: ['join_token:abc', 'region:eu'] });
    expect(meets(w, writ, { selectors: ['region:eu', 'join_token:abc'] }).selectors).toEqual(['join_token:abc', 'region:eu']);
    expect(refusal(() => verifyWrit(opts(w, writ, { requirements: { selectors: ['join_token:abc', 'region:us'] } })))).toMatchObject(
      writErr('writ: required selector region:us is not in the writ'),
    );
  });

  it('maximum policy age: exactly the maximum is accepted, a second more is not', () => {
    const w = world();
    const { writ } = w.writ({ polIat: NOW - 3600 });
    meets(w, writ, { maxPolicyAgeSeconds: 3600 });
    expect(refusal(() => verifyWrit(opts(w, writ, { requirements: { maxPolicyAgeSeconds: 3599 } })))).toMatchObject(
      writErr('writ: policy snapshot is 3600s old; at most 3599s accepted'),
    );
  });

  it('policy snapshots', () => {
    const w = world();
    const { writ } = w.writ();
    expect(meets(w, writ, { policySnapshots: ['b'.repeat(64), SNAP] }).policy.snap).toBe(SNAP);
    expect(refusal(() => verifyWrit(opts(w, writ, { requirements: { policySnapshots: ['b'.repeat(64)] } })))).toMatchObject(
      writErr('writ: policy snapshot is not one this relying party accepts'),
    );
  });

  it('principal issuer', () => {
    const w = world();
    const { writ } = w.writ();
    expect(meets(w, writ, { principalIssuer: 'https://idp.example.com' }).principal.iss).toBe('https://idp.example.com');
    expect(refusal(() => verifyWrit(opts(w, writ, { requirements: { principalIssuer: 'https://idp.example.com/' } })))).toMatchObject(
      writErr('writ: principal comes from another OIDC issuer'),
    );
  });

  it('all of them at once', () => {
    const w = world();
    const { writ } = w.writ();
    meets(w, writ, {
      evidenceTypes: ['join_token'],
      selectors: ['join_token:abc'],
      maxPolicyAgeSeconds: 70,
      policySnapshots: [SNAP],
      principalIssuer: 'https://idp.example.com',
    });
  });

  it('no requirements: none reported', () => {
    const w = world();
    const v = verifyWrit(opts(w, w.writ().writ, { requirements: {} }));
    expect(v.checks.some((c) => c.check === 'relying-party requirements')).toBe(false);
  });
});

describe('writ verification: the report says who checked what', () => {
  it('standard level, no revocation source, no method', () => {
    const w = world();
    const { writ, claims } = w.writ();
    const v = verifyWrit({ ...opts(w, writ), proof: createProof(writ, w.B.key, { audience: AUD, method: METHOD, now: at(NOW) }) });
    expect(v.checks).toEqual([
      { by: 'verifier', check: `issuer signature by writ key ${w.iss.kid} of spiffe://example.org` },
      { by: 'verifier', check: `proof of possession by the cnf key, for audience ${AUD}` },
      { by: 'verifier', check: 'times: issued, not expired, task not ended, writ within the task' },
      { by: 'verifier', check: 'delegation chain of 2 grant(s): links, attenuation, depth ≤ 3, expiry, no cycles, last grant bound to the cnf key' },
      { by: 'issuer', check: 'grant signatures (checked at issuance; verify with --deep)' },
      { by: 'issuer', check: 'each delegating agent held a writ for its SPIFFE ID (from.sub) when it delegated' },
      { by: 'unchecked', check: 'revocation: no revocation source was given (a watch stream or a status list)' },
      { by: 'verifier', check: 'binding digest recomputed from the key, grant chain, policy snapshot, task and nonce' },
      { by: 'issuer', check: 'evidence (join_token) and the selectors it proves (re-verify with --deep)' },
      { by: 'issuer', check: `registration: selectors map to ${w.B.spiffeId}` },
      { by: 'issuer', check: `policy snapshot ${SNAP.slice(0, 16)}… allowed this agent (agents-receive)` },
      // Recorded last, once everything else passed.
      { by: 'verifier', check: 'proof one-time id recorded (not seen before)' },
    ]);
    expect(v.selectors).toEqual(claims.att.sel);
  });

  it('deep level with a method and evidence that is not embedded', () => {
    const w = world();
    const { writ } = w.writ({ override: {} });
    const v = verifyWrit(opts(w, writ, { level: 'deep', method: METHOD }));
    expect(v.level).toBe('deep');
    const lines = v.checks.map((c) => `${c.by}: ${c.check}`);
    expect(lines).toContain(`verifier: proof of possession by the cnf key, for audience ${AUD} and method ${METHOD}`);
    expect(lines).toContain('verifier: every grant signature: the root by the issuer writ key, each hop by its parent agent key');
    expect(lines).toContain('issuer: evidence (join_token) verified by the issuer; it is not embedded (a secret, or not re-verifiable offline)');
    expect(lines.some((l) => /checked at issuance/.test(l) || /re-verify with --deep/.test(l))).toBe(false);
  });

  it('names the deciding policies, comma-separated', () => {
    const w = world();
    const { claims } = w.writ();
    const v = verifyWrit(opts(w, w.writ({ override: { pol: { ...claims.pol, policies: ['p1', 'p2'] } } }).writ));
    expect(v.checks.find((c) => c.check.startsWith('policy snapshot'))).toEqual({
      by: 'issuer',
      check: `policy snapshot ${SNAP.slice(0, 16)}… allowed this agent (p1, p2)`,
    });
  });

  it('a policy decision without policy ids says so', () => {
    const w = world();
    const { claims } = w.writ();
    const v = verifyWrit(opts(w, w.writ({ override: { pol: { ...claims.pol, policies: [] } } }).writ));
    expect(v.checks.find((c) => c.check.startsWith('policy snapshot'))).toEqual({
      by: 'issuer',
      check: `policy snapshot ${SNAP.slice(0, 16)}… allowed this agent (no ids)`,
    });
  });
});

/** A re-verifier that implements the plug-in contract, answers `out` (or throws it) and records its calls. */
function fakeReverifier(type: string, out: ReverifiedEvidence | Error) {
  const calls: Array<{ evidence: Buffer; ctx: ReverifyContext }> = [];
  const rv: EvidenceReverifier = {
    type,
    reverify(evidence, ctx) {
      calls.push({ evidence, ctx });
      if (out instanceof Error) throw out;
      return out;
    },
  };
  return { rv, calls };
}

describe('writ verification: deep level re-verifies embedded evidence', () => {
  const EV = Buffer.from('evidence the hardware signed');
  const proven: ReverifiedEvidence = {
    selectors: [
      { type: 'tpm', value: 'ek_hash:00' },
      { type: 'tpm', value: 'model:x' },
    ],
    checked: ['tpm: quote over B'],
    takenFromIssuer: ['tpm: AK activation'],
  };
  const tpmWrit = (w: World, o: Partial<Parameters<FakeIssuer['writ']>[2]> = {}) =>
    w.writ({ type: 'tpm', ev: EV, sel: ['tpm:ek_hash:00', 'tpm:model:x'], ...o });

  it('accepts evidence the re-verifier proves, over the recomputed binding digest, and reports both sides', () => {
    const w = world();
    const { writ, binding, claims } = tpmWrit(w);
    const { rv, calls } = fakeReverifier('tpm', proven);
    const v = verifyWrit(opts(w, writ, { level: 'deep', reverifiers: new Map([['tpm', rv]]) }));
    expect(calls).toHaveLength(1);
    expect(calls[0]!.evidence).toEqual(EV);
    expect(calls[0]!.ctx).toEqual({ binding, agentJkt: claims.cnf.jkt, at: at(NOW) });
    expect(v.selectors).toEqual(['tpm:ek_hash:00', 'tpm:model:x']);
    expect(v.checks).toContainEqual({ by: 'verifier', check: 'tpm: quote over B' });
    expect(v.checks).toContainEqual({ by: 'verifier', check: 'selectors recomputed from the evidence equal the writ' });
    expect(v.checks).toContainEqual({ by: 'issuer', check: 'tpm: AK activation' });
  });

  it('refuses a re-verifiable type whose writ dropped the evidence', () => {
    const w = world();
    const { rv } = fakeReverifier('tpm', proven);
    const { writ } = w.writ({ type: 'tpm', sel: ['tpm:ek_hash:00'] });
    expect(refusal(() => verifyWrit(opts(w, writ, { level: 'deep', reverifiers: new Map([['tpm', rv]]) })))).toMatchObject(
      writErr('writ: deep verification needs the tpm evidence, and the writ does not embed it'),
    );
  });

  it('refuses embedded evidence that does not match its digest', () => {
    const w = world();
    const { claims } = tpmWrit(w);
    const { rv } = fakeReverifier('tpm', proven);
    const swapped = tpmWrit(w, { override: { att: { ...claims.att, ev_sha256: createHash('sha256').update('other').digest('base64url') } } }).writ;
    expect(refusal(() => verifyWrit(opts(w, swapped, { level: 'deep', reverifiers: new Map([['tpm', rv]]) })))).toMatchObject(
      writErr('writ: embedded evidence does not match its digest'),
    );
  });

  it('refuses embedded evidence no offline verifier exists for', () => {
    const w = world();
    expect(refusal(() => verifyWrit(opts(w, tpmWrit(w).writ, { level: 'deep' })))).toMatchObject(writErr('writ: no offline verifier for evidence type tpm'));
  });

  it('refuses evidence the re-verifier rejects, with its reason, and its error as the cause', () => {
    const w = world();
    const reason = new Error('attestation(tpm): quote nonce mismatch');
    const { rv } = fakeReverifier('tpm', reason);
    const e = refusal(() => verifyWrit(opts(w, tpmWrit(w).writ, { level: 'deep', reverifiers: new Map([['tpm', rv]]) })));
    expect(e).toMatchObject(writErr('writ: embedded evidence fails re-verification: attestation(tpm): quote nonce mismatch'));
    expect((e as { cause?: unknown }).cause).toBe(reason);
  });

  it('refuses selectors that differ from what the evidence proves: one more, one fewer, one other', () => {
    const w = world();
    const { rv } = fakeReverifier('tpm', proven);
    for (const sel of [['tpm:ek_hash:00', 'tpm:model:x', 'tpm:model:y'], ['tpm:ek_hash:00'], ['tpm:ek_hash:00', 'tpm:model:y']]) {
      expect(
        refusal(() => verifyWrit(opts(w, tpmWrit(w, { sel }).writ, { level: 'deep', reverifiers: new Map([['tpm', rv]]) }))),
        sel.join(),
      ).toMatchObject(writErr('writ: selectors differ from those the evidence proves'));
    }
  });

  it('standard level never calls the re-verifier', () => {
    const w = world();
    const { rv, calls } = fakeReverifier('tpm', new Error('must not be called'));
    const v = verifyWrit(opts(w, tpmWrit(w).writ, { reverifiers: new Map([['tpm', rv]]) }));
    expect(calls).toHaveLength(0);
    expect(v.checks).toContainEqual({ by: 'issuer', check: 'evidence (tpm) and the selectors it proves (re-verify with --deep)' });
  });
});
