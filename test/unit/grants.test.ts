/**
 * CreateGrant (src/issuance/grants.ts) without gRPC: a principal proven by an OIDC token asks for
 * a root grant; Cedar decides every permission; a revoked principal or an ended task gets none;
 * a task id is one principal's. Then scope narrowing as the issuer enforces it when a hop grant
 * comes back in a handshake. The real GrantIssuer, policy engine and OIDC verifier over a fake
 * provider and an in-memory store (test/helpers/issuance.ts). Each test names the rule it pins.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseGrant } from '../../src/delegation/grant.js';
import { GrantIssuer } from '../../src/issuance/grants.js';
import { PrincipalVerifier } from '../../src/principal/oidc.js';
import { parseWrit } from '../../src/writ/writ.js';
import { expectWritError } from '../helpers/errors.js';
import { GRANT_MAX_TTL_MS, HOUR, issuanceWorld, newAgent, T0, type TestAgent, type World } from '../helpers/issuance.js';
import { rawHop } from '../helpers/writ-fixture.js';

let w: World;
beforeEach(async () => {
  w = await issuanceWorld();
});
afterEach(async () => {
  await w.close();
});

const ALICE = 'https://idp.example.com#alice';
const nowS = () => Math.floor(w.clock.now().getTime() / 1000);
/** Nothing of a refused request was kept: no grant, no task. */
async function nothingStored(taskId = 'task-1') {
  expect(await w.store.getTask(taskId)).toBeUndefined();
  expect(await w.store.listGrantsByTask(taskId, 10)).toEqual([]);
}

describe('CreateGrant: the principal is the one the token proves', () => {
  it('signs a root grant for the token’s principal and the delegate key, and stores it with the principal’s groups', async () => {
    const agent = newAgent();
    const g = await w.grants.create(w.grantRequest(agent));
    const c = parseGrant(g.grant).claims;
    expect(c).toMatchObject({ iss: 'spiffe://example.org', jti: g.jti, rid: g.jti, depth: 0, max_depth: 2, dlg: { jkt: agent.jkt } });
    expect(c.principal).toEqual({ iss: 'https://idp.example.com', sub: 'alice' });
    expect(g.principal).toEqual(c.principal);
    expect(await w.store.getGrant(g.jti)).toMatchObject({ compact: g.grant, principalGroups: ['eng'], taskId: 'task-1', revokedAt: null });
    expect(await w.store.getTask('task-1')).toMatchObject({ principalIss: 'https://idp.example.com', principalSub: 'alice', goal: 'triage open issues' });
  });

  it('refuses a token signed by a key the provider does not publish (a forged principal)', async () => {
    const forged = w.idp.token(w.clock.now().getTime(), 'alice', newAgent().key);
    await expectWritError(w.grants.create(w.grantRequest(newAgent(), { subjectToken: forged })), 'ERR_PRINCIPAL_INVALID', 'signature does not verify');
    await nothingStored();
    expect(await w.store.listDecisions(10)).toEqual([]);
  });

  it('refuses a subject token of another type, and an expired token', async () => {
    await expectWritError(
      w.grants.create(w.grantRequest(newAgent(), { subjectTokenType: 'urn:ietf:params:oauth:token-type:access_token' })),
      'ERR_PRINCIPAL_INVALID',
      'subject_token_type must be one of',
    );
    const token = w.idp.token(w.clock.now().getTime());
    w.clock.advance(10 * 60_000);
    await expectWritError(w.grants.create(w.grantRequest(newAgent(), { subjectToken: token })), 'ERR_PRINCIPAL_INVALID');
    await nothingStored();
  });

  it('refuses every request when no principal issuer is configured', async () => {
    const none = new GrantIssuer({
      ca: w.ca,
      store: w.store,
      clock: w.clock,
      principals: new PrincipalVerifier([], { now: () => w.clock.now().getTime() }),
      policies: w.policies,
      engine: w.engine,
      settings: { defaultTtlMs: HOUR, maxTtlMs: GRANT_MAX_TTL_MS },
    });
    await expectWritError(none.create(w.grantRequest(newAgent())), 'ERR_GRANT_INVALID', 'no principal issuers are configured');
  });

  it('a revoked principal makes no more grants', async () => {
    await w.grants.create(w.grantRequest(newAgent()));
    await w.revocations.revoke('principal', ALICE, 'left the company', { kind: 'operator' });
    await expectWritError(w.grants.create(w.grantRequest(newAgent(), { taskId: 'task-2' })), 'ERR_REVOKED', `principal ${ALICE} is revoked (by operator)`);
    await nothingStored('task-2');
  });

  it('an ended task takes no new grants, even from its own principal', async () => {
    await w.grants.create(w.grantRequest(newAgent()));
    await w.revocations.revoke('task', 'task-1', 'done', { kind: 'operator' });
    await expectWritError(w.grants.create(w.grantRequest(newAgent())), 'ERR_REVOKED', 'task task-1 has ended');
    expect(await w.store.listGrantsByTask('task-1', 10)).toHaveLength(1);
  });

  it('a task id belongs to the principal that made it: another principal cannot join it', async () => {
    await w.grants.create(w.grantRequest(newAgent()));
    const bob = w.idp.tokenWith(w.clock.now().getTime(), { sub: 'bob' });
    await expectWritError(
      w.grants.create(w.grantRequest(newAgent(), { subjectToken: bob })),
      'ERR_GRANT_INVALID',
      'task id task-1 belongs to another principal',
    );
    expect((await w.store.listGrantsByTask('task-1', 10)).map((g) => g.principalSub)).toEqual(['alice']);
  });

  it('a second grant on a task moves its end later, never earlier', async () => {
    await w.grants.create(w.grantRequest(newAgent(), { ttlSeconds: 7200 }));
    await w.grants.create(w.grantRequest(newAgent(), { ttlSeconds: 3600 }));
    expect((await w.store.getTask('task-1'))!.expiresAt).toBe(T0 + 2 * HOUR);
    await w.grants.create(w.grantRequest(newAgent(), { ttlSeconds: 3 * 3600 }));
    expect((await w.store.getTask('task-1'))!.expiresAt).toBe(T0 + 3 * HOUR);
  });
});

describe('CreateGrant: lifetime', () => {
  it('0 means the configured default', async () => {
    const g = await w.grants.create(w.grantRequest(newAgent(), { ttlSeconds: 0 }));
    expect(g.expiresAt).toBe(nowS() + 3600);
    expect(parseGrant(g.grant).claims.task.exp).toBe(g.expiresAt);
  });

  it('accepts the maximum and refuses anything above it, negative or fractional, instead of cutting it', async () => {
    const max = GRANT_MAX_TTL_MS / 1000;
    expect((await w.grants.create(w.grantRequest(newAgent(), { ttlSeconds: max }))).expiresAt).toBe(nowS() + max);
    for (const ttlSeconds of [max + 1, -1, 1.5]) {
      await expectWritError(
        w.grants.create(w.grantRequest(newAgent(), { ttlSeconds, taskId: 'task-2' })),
        'ERR_LIMIT_EXCEEDED',
        `task lifetime must be at most ${max}s`,
      );
    }
    await nothingStored('task-2');
  });

  it('never outlives the writ key that signs it', async () => {
    const long = await issuanceWorld({ grantMaxTtlMs: 1000 * HOUR });
    try {
      const g = await long.grants.create(long.grantRequest(newAgent(), { ttlSeconds: 500 * 3600 }));
      expect(g.expiresAt).toBe(Math.floor(long.ca.writSigner().notAfter.getTime() / 1000));
      expect(g.expiresAt).toBeLessThan(nowS() + 500 * 3600);
    } finally {
      await long.close();
    }
  });
});

describe('CreateGrant: the request is checked before policy is asked', () => {
  it.each([
    ['a task id with a space', { taskId: 'task 1' }, 'ERR_GRANT_INVALID', 'task id must be 1..128'],
    ['an empty goal', { goal: '' }, 'ERR_GRANT_INVALID', 'task goal must be 1..1024 bytes'],
    ['a goal over 1024 bytes', { goal: 'g'.repeat(1025) }, 'ERR_GRANT_INVALID', 'task goal must be 1..1024 bytes'],
    ['an empty scope', { scope: [] }, 'ERR_GRANT_INVALID', 'the scope must hold at least one permission'],
    ['a scope pattern with a space', { scope: [{ action: 'repo read', resource: 'repo://acme/*' }] }, 'ERR_GRANT_INVALID', 'scope'],
    ['a depth limit above the maximum', { maxDepth: 9 }, 'ERR_LIMIT_EXCEEDED', 'max depth must be 0..8'],
    ['a negative depth limit', { maxDepth: -1 }, 'ERR_LIMIT_EXCEEDED', 'max depth must be 0..8'],
    ['a delegate that is not a key thumbprint', { delegateJkt: 'agent-1' }, 'ERR_GRANT_INVALID', 'RFC 7638 SHA-256 thumbprint'],
  ] as const)('refuses %s', async (_what, over, code, message) => {
    await expectWritError(w.grants.create(w.grantRequest(newAgent(), over)), code, message);
    await nothingStored('taskId' in over ? over.taskId : 'task-1');
    expect(await w.store.listDecisions(10)).toEqual([]);
  });
});

describe('CreateGrant: Cedar decides every permission, and every decision is recorded', () => {
  it('records the allow with the policies that decided, and names them in the grant', async () => {
    const g = await w.grants.create(w.grantRequest(newAgent()));
    expect(g.policies).toEqual(['eng-may-delegate-acme']);
    expect(parseGrant(g.grant).claims.pol).toEqual({ snap: g.snapshot, decision: 'allow', policies: ['eng-may-delegate-acme'] });
    expect(await w.store.listDecisions(10)).toEqual([
      expect.objectContaining({ actor: ALICE, principal: ALICE, action: 'delegate task task-1', decision: 'allow', snapshot: g.snapshot }),
    ]);
  });

  it('refuses a permission no policy permits, records the deny, and stores no grant or task', async () => {
    await expectWritError(
      w.grants.create(w.grantRequest(newAgent(), { scope: [{ action: 'repo:read', resource: 'repo://other/*' }] })),
      'ERR_POLICY_DENIED',
      'policy: delegating this scope for task task-1 denied',
    );
    expect((await w.store.listDecisions(10)).map((d) => d.decision)).toEqual(['deny']);
    await nothingStored();
  });

  it('is all or nothing: one refused permission refuses the whole scope', async () => {
    const scope = [
      { action: 'repo:read', resource: 'repo://acme/*' },
      { action: 'repo:read', resource: 'repo://other/*' },
    ];
    await expectWritError(w.grants.create(w.grantRequest(newAgent(), { scope })), 'ERR_POLICY_DENIED');
    await nothingStored();
  });

  it('decides on the groups the token proves, not on anything the request says', async () => {
    const contractor = w.idp.tokenWith(w.clock.now().getTime(), { groups: ['contractors'] });
    await expectWritError(w.grants.create(w.grantRequest(newAgent(), { subjectToken: contractor })), 'ERR_POLICY_DENIED');
    await nothingStored();
  });

  it('answers an escalatable forbid with ERR_ESCALATION_REQUIRED and the reason, recorded as escalate', async () => {
    await expectWritError(
      w.grants.create(w.grantRequest(newAgent(), { scope: [{ action: 'deploy:prod', resource: 'repo://acme/api' }] })),
      'ERR_ESCALATION_REQUIRED',
      'requires approval: production deploys need approval',
    );
    expect((await w.store.listDecisions(1))[0]).toMatchObject({ decision: 'escalate', policies: ['prod-deploys-need-approval'] });
    await nothingStored();
  });

  it('refuses when no policy is active (nothing is permitted by default)', async () => {
    const bare = await issuanceWorld({ policy: false });
    try {
      await expectWritError(bare.grants.create(bare.grantRequest(newAgent())), 'ERR_POLICY_NOT_FOUND', 'no policy is active');
      expect(await bare.store.getTask('task-1')).toBeUndefined();
    } finally {
      await bare.close();
    }
  });
});

describe('scope narrowing across hops, as the issuer enforces it at the handshake', () => {
  const A = ['fake:workload:a'];
  const B = ['fake:workload:b'];
  beforeEach(async () => {
    await w.register('/agent/a', A);
    await w.register('/agent/b', B);
  });

  async function parentWithWrit(parent: TestAgent, maxDepth = 2) {
    const g = await w.grants.create(
      w.grantRequest(parent, {
        maxDepth,
        scope: [{ action: 'repo:*', resource: 'repo://acme/*' }],
        boundaries: [{ action: '*', resource: 'repo://acme/secrets*' }],
      }),
    );
    const writ = (await w.attest(parent, { grants: [g.grant], sel: A })).writ!;
    return { grant: g.grant, writ };
  }
  const asAgent = (a: TestAgent) => ({ ...a, spiffeId: 'spiffe://example.org/agent/b' });

  it('a narrower hop is accepted and the child’s writ carries the narrowed grant', async () => {
    const parent = newAgent();
    const child = newAgent();
    const p = await parentWithWrit(parent);
    const narrow = [{ action: 'repo:read', resource: 'repo://acme/docs' }];
    const g1 = w.hop(p.grant, parent, p.writ, child, { scope: narrow });
    const c = parseWrit((await w.attest(child, { grants: [p.grant, g1], sel: B })).writ!).claims;
    expect(parseGrant(c.grants[1]!).claims.scope).toEqual(narrow);
  });

  it('refuses a hop that widens its parent’s scope, signed by the parent anyway, before any evidence', async () => {
    const parent = newAgent();
    const child = newAgent();
    const p = await parentWithWrit(parent);
    const wide = rawHop(p.grant, parent.key, { scope: [{ action: '*', resource: '*' }] }, asAgent(child), 'spiffe://example.org/agent/a');
    await expectWritError(w.issuer.begin(w.hello(child, { grants: [p.grant, wide] })), 'ERR_GRANT_INVALID', 'grant 1 widens the scope');
    expect(w.evidence.sessions).toHaveLength(1); // only the parent's handshake
  });

  it('refuses a hop that drops a boundary of its parent', async () => {
    const parent = newAgent();
    const child = newAgent();
    const p = await parentWithWrit(parent);
    const loose = rawHop(p.grant, parent.key, { boundaries: [] }, asAgent(child), 'spiffe://example.org/agent/a');
    await expectWritError(w.issuer.begin(w.hello(child, { grants: [p.grant, loose] })), 'ERR_GRANT_INVALID', 'drops the boundary');
  });

  it('refuses a hop below a root that allows no delegation (max depth 0)', async () => {
    const parent = newAgent();
    const child = newAgent();
    const p = await parentWithWrit(parent, 0);
    const deep = rawHop(p.grant, parent.key, {}, asAgent(child), 'spiffe://example.org/agent/a');
    await expectWritError(w.issuer.begin(w.hello(child, { grants: [p.grant, deep] })), 'ERR_GRANT_INVALID', "deeper than the root's limit of 0");
  });

  it('refuses a hop that outlives its parent grant (a root grant ends with its task)', async () => {
    const parent = newAgent();
    const child = newAgent();
    const p = await parentWithWrit(parent);
    const exp = parseGrant(p.grant).claims.exp + 60;
    const longer = rawHop(p.grant, parent.key, { exp }, asAgent(child), 'spiffe://example.org/agent/a');
    await expectWritError(
      w.issuer.begin(w.hello(child, { grants: [p.grant, longer] })),
      'ERR_GRANT_INVALID',
      'grant 1: delegation: the grant outlives its task',
    );
  });
});
