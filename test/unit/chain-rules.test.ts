/**
 * Delegation chains and grants (src/delegation/chain.ts, grant.ts), rule by rule: every link
 * rule refuses the chain it exists for, with its documented message, next to the boundary it
 * must still accept (`make mutate`, docs/testing.md). Grants are signed for real by the test
 * issuer and by agent keys; `rawHop` makes the hop grants a well-behaved delegator would not.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chainDigest, verifyChain, type ChainCheck } from '../../src/delegation/chain.js';
import {
  GRANT_TYP,
  MAX_DELEGATION_DEPTH,
  MAX_GOAL_BYTES,
  delegateGrant,
  delegateGrantWith,
  newGrantId,
  parseGrant,
  parseGrantCached,
  signRootGrant,
  type GrantClaims,
} from '../../src/delegation/grant.js';
import { keySigner, publicJwk, sha256b64url, signJws } from '../../src/jose/jws.js';
import { FakeIssuer, SNAP, agent, hop, rawHop, type Agent } from '../helpers/writ-fixture.js';

const NOW = 1_790_000_000;

function world() {
  const iss = new FakeIssuer();
  const A = agent('a');
  const B = agent('b');
  const C = agent('c');
  const root = iss.rootGrant(A, { now: NOW - 100 });
  const g1 = hop(root, A, B, NOW - 90, { scope: [{ action: 'repo:read', resource: 'repo://acme/*' }] });
  return { iss, A, B, C, root, g1 };
}

type W = ReturnType<typeof world>;

function chain(w: W, grants: string[], leaf: Agent, over: Partial<ChainCheck> = {}) {
  return verifyChain({ grants, issuer: w.iss.issuer, issuerKeys: w.iss.trust.writKeys, now: NOW, leafJkt: leaf.jkt, ...over });
}

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}

const claimsOf = (g: string) => parseGrant(g).claims;
const dlg = (message: string) => ({ code: 'ERR_GRANT_INVALID', message });

describe('grant chains: shape', () => {
  it('refuses an empty chain', () => {
    const w = world();
    expect(refusal(() => chain(w, [], w.A))).toMatchObject(dlg('delegation: the grant chain is empty'));
  });

  it(`accepts a root and ${MAX_DELEGATION_DEPTH} hops, refuses a chain one grant longer before parsing it`, () => {
    const iss = new FakeIssuer();
    const agents = Array.from({ length: MAX_DELEGATION_DEPTH + 2 }, (_, i) => agent(`n${i}`));
    const grants = [iss.rootGrant(agents[0]!, { now: NOW - 100, maxDepth: MAX_DELEGATION_DEPTH })];
    for (let i = 1; i <= MAX_DELEGATION_DEPTH; i++) grants.push(hop(grants[i - 1]!, agents[i - 1]!, agents[i]!, NOW - 90));
    const ok = verifyChain({ grants, issuer: iss.issuer, issuerKeys: iss.trust.writKeys, now: NOW, leafJkt: agents[MAX_DELEGATION_DEPTH]!.jkt });
    expect(ok.lineage).toHaveLength(MAX_DELEGATION_DEPTH + 1);
    expect(refusal(() => verifyChain({ grants: [...grants, 'not-even-a-jws'], issuer: iss.issuer, now: NOW, leafJkt: agents[9]!.jkt }))).toMatchObject(
      dlg(`delegation: the grant chain has more than ${MAX_DELEGATION_DEPTH + 1} grants`),
    );
  });

  it('names the grant that does not parse, keeping its error as the cause', () => {
    const w = world();
    const e = refusal(() => chain(w, [w.root, 'x.y.z'], w.B)) as { message: string; cause?: { code?: string; message?: string } };
    expect(e.message).toMatch(/^delegation: grant 1: jws: /);
    expect(e.cause).toMatchObject({ code: 'ERR_JWS_INVALID' });
    expect(e.message).toBe(`delegation: grant 1: ${e.cause!.message}`);
  });

  it('reports root, leaf, lineage, the chain digest, and whether signatures were checked', () => {
    const w = world();
    const withKeys = chain(w, [w.root, w.g1], w.B);
    expect(withKeys.root.claims).toEqual(claimsOf(w.root));
    expect(withKeys.leaf.claims).toEqual(claimsOf(w.g1));
    expect(withKeys.grants.map((g) => g.claims.jti)).toEqual(withKeys.lineage);
    expect(withKeys.lineage).toEqual([claimsOf(w.root).jti, claimsOf(w.g1).jti]);
    expect(withKeys.digest).toEqual(chainDigest([w.root, w.g1]));
    expect(withKeys.signaturesChecked).toBe(true);
    const { issuerKeys: _k, ...noKeys } = { grants: [w.root, w.g1], issuer: w.iss.issuer, issuerKeys: undefined, now: NOW, leafJkt: w.B.jkt };
    expect(verifyChain(noKeys).signaturesChecked).toBe(false);
  });
});

describe('grant chains: every grant', () => {
  it('refuses a grant from another issuer, naming it (at most 80 characters of it)', () => {
    const w = world();
    const longIss = `spiffe://${'x'.repeat(100)}.org`;
    const g = w.iss.rootGrant(w.A, { now: NOW - 100, override: { iss: longIss } });
    expect(refusal(() => chain(w, [g], w.A)).message).toBe(`delegation: grant 0 was issued by ${longIss.slice(0, 80)}, not spiffe://example.org`);
    expect(refusal(() => chain(w, [w.root], w.A, { issuer: 'spiffe://other.org' }))).toMatchObject(
      dlg('delegation: grant 0 was issued by spiffe://example.org, not spiffe://other.org'),
    );
  });

  it('refuses a hop whose depth is not its position', () => {
    const w = world();
    expect(refusal(() => chain(w, [w.root, rawHop(w.root, w.A.key, { depth: 2 }, w.B)], w.B))).toMatchObject(dlg('delegation: grant 1 says depth 2'));
  });

  it("refuses a hop that raises (or lowers) the root's depth limit", () => {
    const w = world();
    for (const max_depth of [4, 2]) {
      expect(refusal(() => chain(w, [w.root, rawHop(w.root, w.A.key, { max_depth }, w.B)], w.B))).toMatchObject(
        dlg("delegation: grant 1 changes the root's depth limit"),
      );
    }
  });

  it('refuses a hop below the root’s depth limit, accepts one at it', () => {
    const iss = new FakeIssuer();
    const [A, B, C] = [agent('a'), agent('b'), agent('c')];
    const root = iss.rootGrant(A, { now: NOW - 100, maxDepth: 1 });
    const g1 = hop(root, A, B, NOW - 90);
    expect(verifyChain({ grants: [root, g1], issuer: iss.issuer, now: NOW, leafJkt: B.jkt }).lineage).toHaveLength(2);
    const g2 = rawHop(g1, B.key, {}, C);
    expect(refusal(() => verifyChain({ grants: [root, g1, g2], issuer: iss.issuer, now: NOW, leafJkt: C.jkt }))).toMatchObject(
      dlg("delegation: grant 2 is deeper than the root's limit of 1"),
    );
  });

  it('refuses a hop that names another root', () => {
    const w = world();
    expect(refusal(() => chain(w, [w.root, rawHop(w.root, w.A.key, { rid: newGrantId() }, w.B)], w.B))).toMatchObject(
      dlg('delegation: grant 1 belongs to another root'),
    );
  });

  it('refuses a hop that repeats a grant id (a cycle)', () => {
    const w = world();
    const again = rawHop(w.root, w.A.key, { jti: claimsOf(w.root).jti }, w.B);
    expect(refusal(() => chain(w, [w.root, again], w.B))).toMatchObject(dlg('delegation: grant 1 repeats a grant id (a cycle)'));
  });

  it('refuses a not-yet-valid grant, accepts one valid now or within the skew', () => {
    const w = world();
    const future = (iat: number) => w.iss.rootGrant(w.A, { now: iat });
    expect(refusal(() => chain(w, [future(NOW + 1)], w.A))).toMatchObject(dlg('delegation: grant 0 is not valid yet'));
    expect(chain(w, [future(NOW)], w.A).lineage).toHaveLength(1);
    expect(chain(w, [future(NOW + 5)], w.A, { skew: 5 }).lineage).toHaveLength(1);
    expect(refusal(() => chain(w, [future(NOW + 6)], w.A, { skew: 5 }))).toMatchObject(dlg('delegation: grant 0 is not valid yet'));
    const lateHop = rawHop(w.root, w.A.key, { iat: NOW + 30 }, w.B);
    expect(refusal(() => chain(w, [w.root, lateHop], w.B))).toMatchObject(dlg('delegation: grant 1 is not valid yet'));
  });

  it('refuses an expired grant (exp at now, or more than the skew ago), accepts one that ends later', () => {
    const w = world();
    const ending = (exp: number) => w.iss.rootGrant(w.A, { now: exp - 600, ttl: 600 });
    expect(refusal(() => chain(w, [ending(NOW)], w.A))).toMatchObject(dlg('delegation: grant 0 has expired'));
    expect(chain(w, [ending(NOW + 1)], w.A).lineage).toHaveLength(1);
    expect(chain(w, [ending(NOW - 4)], w.A, { skew: 5 }).lineage).toHaveLength(1);
    expect(refusal(() => chain(w, [ending(NOW - 5)], w.A, { skew: 5 }))).toMatchObject(dlg('delegation: grant 0 has expired'));
  });
});

describe('grant chains: the root grant', () => {
  it('with issuer keys, refuses a root signed by a key the bundle does not hold, or by another key under its kid', () => {
    const w = world();
    const stranger = new FakeIssuer().rootGrant(w.A, { now: NOW - 100 });
    expect(refusal(() => chain(w, [stranger], w.A))).toMatchObject(dlg('delegation: the root grant is signed by a key the trust bundle does not hold'));
    const impostor = Object.assign(new FakeIssuer(), { kid: w.iss.kid }).rootGrant(w.A, { now: NOW - 100 });
    expect(refusal(() => chain(w, [impostor], w.A))).toMatchObject(dlg('delegation: the root grant signature does not verify'));
    // Without keys (standard verification) the same roots pass every other rule.
    expect(chain(w, [impostor], w.A, { issuerKeys: undefined }).signaturesChecked).toBe(false);
  });
});

describe('grant chains: each hop', () => {
  it('refuses a hop that links to another parent', () => {
    const w = world();
    const other = w.iss.rootGrant(w.A, { now: NOW - 100 });
    expect(refusal(() => chain(w, [w.root, rawHop(w.root, w.A.key, { prev: sha256b64url(other) }, w.B)], w.B))).toMatchObject(
      dlg("delegation: grant 1 does not link to grant 0 (prev is another grant's hash)"),
    );
  });

  it('refuses a hop signed by a key other than the one its parent delegated to', () => {
    const w = world();
    expect(refusal(() => chain(w, [w.root, rawHop(w.root, w.C.key, {}, w.B)], w.B))).toMatchObject(
      dlg('delegation: grant 1 is signed by a key other than the one grant 0 delegated to'),
    );
  });

  it('with issuer keys, refuses a hop whose signature does not verify although its jwk header names the right key', () => {
    const w = world();
    const [h, p] = w.g1.split('.');
    const sig = signJws({ typ: GRANT_TYP }, {}, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey).split('.')[2];
    const forged = `${h}.${p}.${sig}`;
    expect(refusal(() => chain(w, [w.root, forged], w.B))).toMatchObject(dlg('delegation: grant 1 signature does not verify'));
    expect(chain(w, [w.root, forged], w.B, { issuerKeys: undefined }).lineage).toHaveLength(2);
  });

  it('refuses a hop that changes the task id, goal or end', () => {
    const w = world();
    const t = claimsOf(w.root).task;
    for (const task of [
      { ...t, id: 'task-2' },
      { ...t, goal: 'delete everything' },
      { ...t, exp: t.exp + 3600 },
    ]) {
      expect(
        refusal(() => chain(w, [w.root, rawHop(w.root, w.A.key, { task }, w.B)], w.B)),
        JSON.stringify(task),
      ).toMatchObject(dlg('delegation: grant 1 changes the task'));
    }
  });

  it('refuses a hop that changes the principal’s issuer or subject', () => {
    const w = world();
    for (const principal of [
      { iss: 'https://evil.example.com', sub: 'alice' },
      { iss: 'https://idp.example.com', sub: 'mallory' },
    ]) {
      expect(refusal(() => chain(w, [w.root, rawHop(w.root, w.A.key, { principal }, w.B)], w.B))).toMatchObject(
        dlg('delegation: grant 1 changes the principal'),
      );
    }
  });

  it("refuses a hop that extends its parent's expiry, accepts one ending with it", () => {
    const iss = new FakeIssuer();
    const [A, B] = [agent('a'), agent('b')];
    // The root ends before its task, so only the expiry rule stands between the hop and a longer life.
    const taskEnd = NOW + 7200;
    const root = iss.rootGrant(A, { now: NOW - 100, override: { exp: NOW + 1000, task: { id: 'task-1', goal: 'g', exp: taskEnd } } });
    const check = (g: string) => verifyChain({ grants: [root, g], issuer: iss.issuer, issuerKeys: iss.trust.writKeys, now: NOW, leafJkt: B.jkt });
    expect(refusal(() => check(rawHop(root, A.key, { exp: NOW + 1001 }, B)))).toMatchObject(dlg('delegation: grant 1 extends the expiry of grant 0'));
    expect(check(rawHop(root, A.key, { exp: NOW + 1000 }, B)).leaf.claims.exp).toBe(NOW + 1000);
  });

  it('applies the attenuation rule at each hop, naming the hop', () => {
    const w = world();
    const g2 = rawHop(w.g1, w.B.key, { scope: [{ action: 'repo:write', resource: 'repo://acme/x' }] }, w.C);
    expect(refusal(() => chain(w, [w.root, w.g1, g2], w.C))).toMatchObject(
      dlg("delegation: grant 2 widens the scope: repo:write=repo://acme/x is not inside its parent's scope"),
    );
  });

  it('refuses a chain whose last grant is delegated to another key than the one presented', () => {
    const w = world();
    expect(refusal(() => chain(w, [w.root, w.g1], w.A))).toMatchObject(dlg('delegation: the last grant is delegated to another key than the one presented'));
  });
});

describe('grant-chain digest', () => {
  it('is recomputed for a mutable array that changed since the last call (only frozen arrays are remembered)', () => {
    const w = world();
    const grants = [w.root];
    const before = chainDigest(grants);
    grants.push(w.g1);
    expect(chainDigest(grants)).not.toEqual(before);
    expect(chainDigest(grants)).toEqual(chainDigest(Object.freeze([w.root, w.g1])));
  });

  it('hashes each grant as its latin1 bytes (a compact JWS is ASCII; other text is not re-encoded as UTF-8)', () => {
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const expected = createHash('sha256')
      .update(Buffer.concat([Buffer.from('writ-grant-chain-v1\0', 'latin1'), u32(1), u32(1), Buffer.from([0xe9])]))
      .digest();
    expect(chainDigest(['é'])).toEqual(expected);
  });

  it('commits to the count and the length of each grant', () => {
    const w = world();
    expect(chainDigest([w.root, w.g1])).not.toEqual(chainDigest([w.root + w.g1]));
    expect(chainDigest([])).not.toEqual(chainDigest(['']));
  });
});

describe('grants: parsing', () => {
  const rootClaims = (over: Record<string, unknown> = {}): Record<string, unknown> => {
    const jti = newGrantId();
    return {
      iss: 'spiffe://example.org',
      jti,
      iat: NOW,
      exp: NOW + 60,
      rid: jti,
      depth: 0,
      max_depth: 3,
      task: { id: 'task-1', goal: 'g', exp: NOW + 60 },
      principal: { iss: 'https://idp.example.com', sub: 'alice' },
      dlg: { jkt: agent('x').jkt },
      scope: [],
      boundaries: [],
      escalate: [],
      pol: { snap: SNAP, decision: 'allow', policies: [] },
      ...over,
    };
  };
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const root = (over: Record<string, unknown> = {}, header: Record<string, unknown> = { kid: 'k' }) =>
    signJws({ typ: GRANT_TYP, ...header }, rootClaims(over), key);
  const parseErr = (g: string) => refusal(() => parseGrant(g));

  it('accepts a well-formed root grant', () => {
    expect(parseGrant(root()).claims.depth).toBe(0);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a jti that is not 22 base64url characters', { jti: `${'A'.repeat(21)}+` }, 'delegation: jti must be 22 base64url characters (128 random bits)'],
    [
      'a non-canonical delegate thumbprint',
      { dlg: { jkt: `${agent('y').jkt.slice(0, 42)}B` } },
      'delegation: dlg.jkt must be an RFC 7638 SHA-256 thumbprint (43 canonical base64url characters)',
    ],
    [
      'a depth limit above MAX_DELEGATION_DEPTH',
      { max_depth: MAX_DELEGATION_DEPTH + 1 },
      `delegation: max_depth ${MAX_DELEGATION_DEPTH + 1} exceeds ${MAX_DELEGATION_DEPTH}`,
    ],
    ['exp at iat', { exp: NOW }, 'delegation: exp must be after iat'],
    ['a grant outliving its task', { exp: NOW + 61 }, 'delegation: the grant outlives its task'],
    ['a root with prev', { prev: 'p'.repeat(43) }, 'delegation: a root grant has pol and no prev/from; a hop grant has prev and from and no pol'],
    [
      'a root with from',
      { from: { sub: 'spiffe://example.org/a', writ: 'w' } },
      'delegation: a root grant has pol and no prev/from; a hop grant has prev and from and no pol',
    ],
    ['a root without pol', { pol: undefined }, 'delegation: a root grant has pol and no prev/from; a hop grant has prev and from and no pol'],
    [
      'a hop with pol',
      { depth: 1, prev: 'p'.repeat(43), from: { sub: 's', writ: 'w' } },
      'delegation: a root grant has pol and no prev/from; a hop grant has prev and from and no pol',
    ],
    ['a root that is not its own rid', { rid: newGrantId() }, 'delegation: a root grant is its own rid'],
    [
      'a task id that is not ASCII',
      { task: { id: 'tаsk', goal: 'g', exp: NOW + 60 } },
      'delegation: task.id must be 1..128 ASCII letters, digits or . _ : - (starting with a letter or digit)',
    ],
    [
      'a task id starting with a dot',
      { task: { id: '.task', goal: 'g', exp: NOW + 60 } },
      'delegation: task.id must be 1..128 ASCII letters, digits or . _ : - (starting with a letter or digit)',
    ],
    [
      'a task goal over MAX_GOAL_BYTES',
      { task: { id: 't', goal: 'g'.repeat(MAX_GOAL_BYTES + 1), exp: NOW + 60 } },
      `delegation: task.goal must be a non-empty string of at most ${MAX_GOAL_BYTES} bytes`,
    ],
    [
      'a principal subject over 512 bytes',
      { principal: { iss: 'https://idp', sub: 's'.repeat(513) } },
      'delegation: principal.sub must be a non-empty string of at most 512 bytes',
    ],
    [
      'a principal issuer over 512 bytes',
      { principal: { iss: 'i'.repeat(513), sub: 's' } },
      'delegation: principal.iss must be a non-empty string of at most 512 bytes',
    ],
    [
      'a policy digest that is not hex SHA-256',
      { pol: { snap: 'A'.repeat(64), decision: 'allow', policies: [] } },
      'delegation: pol.snap must be a hex SHA-256',
    ],
    ['a policy digest with a prefix', { pol: { snap: `x${SNAP}`, decision: 'allow', policies: [] } }, 'delegation: pol.snap must be a hex SHA-256'],
    ['a policy digest with a suffix', { pol: { snap: `${SNAP}x`, decision: 'allow', policies: [] } }, 'delegation: pol.snap must be a hex SHA-256'],
    ['a decision other than allow', { pol: { snap: SNAP, decision: 'deny', policies: [] } }, 'delegation: pol.decision must be "allow"'],
    [
      'more than 64 policy ids',
      { pol: { snap: SNAP, decision: 'allow', policies: Array(65).fill('p') } },
      'delegation: pol.policies must be up to 64 policy ids',
    ],
    [
      'a policy id over 128 characters',
      { pol: { snap: SNAP, decision: 'allow', policies: ['p'.repeat(129)] } },
      'delegation: pol.policies must be up to 64 policy ids',
    ],
    ['policy ids that are not strings', { pol: { snap: SNAP, decision: 'allow', policies: [1] } }, 'delegation: pol.policies must be up to 64 policy ids'],
    ['policies that are not a list', { pol: { snap: SNAP, decision: 'allow', policies: 'p' } }, 'delegation: pol.policies must be up to 64 policy ids'],
    ['an unknown member', { admin: true }, 'delegation: grant has unknown members admin'],
    ['a policy digest that is a list holding one', { pol: { snap: [SNAP], decision: 'allow', policies: [] } }, 'delegation: pol.snap must be a hex SHA-256'],
    ['a policy id that is a list', { pol: { snap: SNAP, decision: 'allow', policies: [['p']] } }, 'delegation: pol.policies must be up to 64 policy ids'],
    ['pol with another member', { pol: { snap: SNAP, decision: 'allow', policies: [], x: 1 } }, 'delegation: pol has unknown members x'],
    ['a task with another member', { task: { id: 't', goal: 'g', exp: NOW + 60, x: 1 } }, 'delegation: task has unknown members x'],
    [
      'a task id over 128 bytes',
      { task: { id: 't'.repeat(129), goal: 'g', exp: NOW + 60 } },
      'delegation: task.id must be a non-empty string of at most 128 bytes',
    ],
    ['a task end that is not an integer', { task: { id: 't', goal: 'g', exp: 'soon' } }, 'delegation: task.exp must be a non-negative integer'],
    ['a jti over 22 bytes', { jti: 'A'.repeat(23) }, 'delegation: jti must be a non-empty string of at most 22 bytes'],
    ['dlg with another member', { dlg: { jkt: agent('z').jkt, x: 1 } }, 'delegation: dlg has unknown members x'],
    ['a depth that is not an integer', { depth: '0' }, 'delegation: depth must be a non-negative integer'],
    ['an issuer that is not a string', { iss: 1 }, 'delegation: iss must be a non-empty string of at most 512 bytes'],
    ['an iat that is negative', { iat: -1 }, 'delegation: iat must be a non-negative integer'],
    ['an exp that is not an integer', { exp: 'x' }, 'delegation: exp must be a non-negative integer'],
    ['a rid over 22 bytes', { rid: 'r'.repeat(23) }, 'delegation: rid must be a non-empty string of at most 22 bytes'],
    ['a depth limit that is not an integer', { max_depth: 1.5 }, 'delegation: max_depth must be a non-negative integer'],
    ['a scope that is not a list', { scope: {} }, 'delegation: scope must be an array'],
    ['boundaries that are not a list', { boundaries: {} }, 'delegation: boundaries must be an array'],
    ['escalation rules that are not a list', { escalate: {} }, 'delegation: escalate must be an array'],
  ])('refuses %s', (_n, over, message) => {
    const claims = rootClaims(over);
    for (const [k, v] of Object.entries(over)) if (v === undefined) delete claims[k];
    expect(parseErr(signJws({ typ: GRANT_TYP, kid: 'k' }, claims, key))).toMatchObject(dlg(message));
  });

  it('accepts the limits themselves: 64 policy ids of 128 characters, a goal of MAX_GOAL_BYTES, a depth limit of MAX_DELEGATION_DEPTH', () => {
    const g = parseGrant(
      root({
        max_depth: MAX_DELEGATION_DEPTH,
        task: { id: 't', goal: 'g'.repeat(MAX_GOAL_BYTES), exp: NOW + 60 },
        pol: { snap: SNAP, decision: 'allow', policies: Array(64).fill('p'.repeat(128)) },
        principal: { iss: 'i'.repeat(512), sub: 's'.repeat(512) },
      }),
    );
    expect(g.claims.max_depth).toBe(MAX_DELEGATION_DEPTH);
    expect(g.claims.pol?.policies).toHaveLength(64);
  });

  it('refuses a root grant that carries its key in a jwk header or has no kid', () => {
    const msg = 'delegation: a root grant is signed by the issuer: kid header, no jwk';
    expect(parseErr(root({}, { kid: 'k', jwk: publicJwk(key) }))).toMatchObject(dlg(msg));
    expect(parseErr(root({}, {}))).toMatchObject(dlg(msg));
    expect(parseErr(root({}, { kid: 7 }))).toMatchObject(dlg(msg));
  });

  it('refuses malformed hop fields (prev, from), naming them', () => {
    const w = world();
    const c = claimsOf(w.g1);
    const hopWith = (over: Record<string, unknown>) => signJws({ typ: GRANT_TYP, jwk: publicJwk(w.A.key) }, { ...c, ...over }, w.A.key);
    expect(parseErr(hopWith({ prev: 'p'.repeat(44) }))).toMatchObject(dlg('delegation: prev must be a non-empty string of at most 43 bytes'));
    expect(parseErr(hopWith({ from: { sub: w.A.spiffeId, writ: 'w', x: 1 } }))).toMatchObject(dlg('delegation: from has unknown members x'));
    expect(parseErr(hopWith({ from: { sub: 's'.repeat(2049), writ: 'w' } }))).toMatchObject(
      dlg('delegation: from.sub must be a non-empty string of at most 2048 bytes'),
    );
    expect(parseErr(hopWith({ from: { sub: w.A.spiffeId, writ: 'w'.repeat(65) } }))).toMatchObject(
      dlg('delegation: from.writ must be a non-empty string of at most 64 bytes'),
    );
  });

  it('refuses a hop grant that names a kid: it is signed by the parent agent, whose key is in the jwk header', () => {
    const w = world();
    const c = claimsOf(w.g1);
    const withKid = signJws({ typ: GRANT_TYP, kid: 'k', jwk: publicJwk(w.A.key) }, { ...c }, w.A.key);
    expect(parseErr(withKid)).toMatchObject(dlg('delegation: a hop grant is signed by the parent agent: jwk header, no kid'));
    const g = parseGrant(w.g1);
    expect(g.signerJkt).toBe(w.A.jkt);
    expect(g.hash).toBe(sha256b64url(w.g1));
  });

  it('caches parsing by the exact bytes', () => {
    const w = world();
    expect(parseGrantCached(w.g1)).toBe(parseGrantCached(w.g1));
    expect(parseGrantCached(w.g1).claims).toEqual(parseGrant(w.g1).claims);
  });
});

describe('grants: delegating', () => {
  it('derives the hop from the parent: same root, task, principal and limit; one deeper; linked by hash', () => {
    const w = world();
    const p = claimsOf(w.root);
    const c = claimsOf(w.g1);
    expect(c).toMatchObject({
      iss: p.iss,
      rid: p.rid,
      depth: 1,
      max_depth: p.max_depth,
      task: p.task,
      principal: p.principal,
      prev: sha256b64url(w.root),
      iat: NOW - 90,
    });
    expect(c.dlg.jkt).toBe(w.B.jkt);
    expect(c.from?.sub).toBe(w.A.spiffeId);
    expect(c.jti).not.toBe(p.jti);
    expect(c.boundaries).toEqual(p.boundaries);
    expect(c.escalate).toEqual(p.escalate);
  });

  it("defaults to the parent's scope and expiry, refuses a later expiry (before signing), adds boundaries and escalation rules", () => {
    const w = world();
    const p = claimsOf(w.root);
    const d = claimsOf(hop(w.root, w.A, w.B, NOW - 90));
    expect(d.scope).toEqual(p.scope);
    expect(d.exp).toBe(p.exp);
    expect(() => hop(w.root, w.A, w.B, NOW - 90, { exp: p.exp + 100 })).toThrow(/the grant would end after its parent .*; ask for a shorter lifetime/);
    expect(claimsOf(hop(w.root, w.A, w.B, NOW - 90, { exp: p.exp })).exp).toBe(p.exp);
    expect(claimsOf(hop(w.root, w.A, w.B, NOW - 90, { exp: NOW + 10 })).exp).toBe(NOW + 10);
    const extra = { action: 'repo:write', resource: 'repo://acme/infra*' };
    const more = claimsOf(hop(w.root, w.A, w.B, NOW - 90, { boundaries: [extra], escalate: [extra] }));
    expect(more.boundaries).toEqual([...p.boundaries, extra]);
    expect(more.escalate).toEqual([...p.escalate, extra]);
  });

  it("refuses to delegate past the root's depth limit, from an expired parent, to a malformed key, or without a private key", async () => {
    const iss = new FakeIssuer();
    const [A, B, C] = [agent('a'), agent('b'), agent('c')];
    const root = iss.rootGrant(A, { now: NOW - 100, maxDepth: 1 });
    const g1 = hop(root, A, B, NOW - 90);
    expect(refusal(() => hop(g1, B, C, NOW - 80))).toMatchObject(dlg("delegation: delegation depth 2 would exceed the root's limit of 1"));
    expect(refusal(() => hop(root, A, B, claimsOf(root).exp))).toMatchObject(dlg('delegation: the parent grant has expired'));
    expect(claimsOf(hop(root, A, B, claimsOf(root).exp - 1)).exp).toBe(claimsOf(root).exp);
    const req = { childJkt: 'not-a-thumbprint', now: NOW, from: { sub: A.spiffeId, writ: 'w' } };
    expect(refusal(() => delegateGrant(root, A.key, req))).toMatchObject(dlg('delegation: the child key thumbprint must be 43 canonical base64url characters'));
    const pub = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
    expect(refusal(() => delegateGrant(root, pub, { ...req, childJkt: B.jkt }))).toMatchObject(
      dlg("delegation: delegating needs the parent agent's private key"),
    );
    await expect(async () => delegateGrantWith(root, keySigner(A.key), req)).rejects.toMatchObject(
      dlg('delegation: the child key thumbprint must be 43 canonical base64url characters'),
    );
  });

  it('delegateGrantWith signs the same hop with a signer (a TPM-resident key) and it chains', async () => {
    const w = world();
    const g = await delegateGrantWith(w.root, keySigner(w.A.key), { childJkt: w.B.jkt, now: NOW - 90, from: { sub: w.A.spiffeId, writ: 'w'.repeat(22) } });
    expect(JSON.parse(Buffer.from(g.split('.')[0]!, 'base64url').toString())).toEqual({ typ: GRANT_TYP, jwk: publicJwk(w.A.key), alg: 'ES256' });
    expect(chain(w, [w.root, g], w.B).lineage).toHaveLength(2);
  });

  it('signRootGrant names the kid and the documented grant typ "writ-grant+jwt"', async () => {
    expect(GRANT_TYP).toBe('writ-grant+jwt');
    const w = world();
    const c = claimsOf(w.root) as GrantClaims;
    const g = await signRootGrant(c, keySigner(w.iss.key), 'kid-1');
    expect(JSON.parse(Buffer.from(g.split('.')[0]!, 'base64url').toString())).toEqual({ typ: GRANT_TYP, kid: 'kid-1', alg: 'ES256' });
  });

  it('new grant ids are 128 random bits', () => {
    const ids = new Set(Array.from({ length: 50 }, newGrantId));
    expect(ids.size).toBe(50);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});
