/**
 * Revocation, tasks and status lists as the issuer keeps them (src/issuance/revocations.ts,
 * tasks.ts, status-lists.ts), without gRPC: who may revoke what, that a refused revocation
 * writes nothing, what a revocation kills (descendants, derived writ revocations for entries),
 * the task tree's states, and the status-list index each writ gets. Real issuer, in-memory store
 * (test/helpers/issuance.ts). Each test names the rule it pins.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseGrant } from '../../src/delegation/grant.js';
import { issuerRevocationSource } from '../../src/issuance/revocation-status.js';
import { allocateStatusIndex } from '../../src/issuance/status-lists.js';
import { Tasks } from '../../src/issuance/tasks.js';
import type { RevocationRecord } from '../../src/store/store.js';
import { parseWrit } from '../../src/writ/writ.js';
import { expectWritError } from '../helpers/errors.js';
import { issuanceWorld, newAgent, T0, type TestAgent, type World } from '../helpers/issuance.js';

const A = ['fake:workload:a'];
const B = ['fake:workload:b'];
const OPERATOR = { kind: 'operator' } as const;
const ALICE = { kind: 'principal', iss: 'https://idp.example.com', sub: 'alice' } as const;
const BOB = { kind: 'principal', iss: 'https://idp.example.com', sub: 'bob' } as const;

let w: World;
beforeEach(async () => {
  w = await issuanceWorld();
  await w.register('/agent/a', A);
  await w.register('/agent/b', B);
});
afterEach(async () => {
  await w.close();
});

/** Parent A holds a root writ; child B a writ one hop down. */
async function twoHops() {
  const parent = newAgent();
  const child = newAgent();
  const root = await w.grants.create(w.grantRequest(parent));
  const parentWrit = (await w.attest(parent, { grants: [root.grant], sel: A })).writ!;
  const hop = w.hop(root.grant, parent, parentWrit, child);
  const childWrit = (await w.attest(child, { grants: [root.grant, hop], sel: B })).writ!;
  return { parent, child, root, parentWrit, hop, hopJti: parseGrant(hop).claims.jti, childWrit };
}
const asAgent = (writ: string) => ({ kind: 'agent', writ: parseWrit(writ).claims }) as const;
const revokedCount = async () => (await w.store.revocationBounds()).newest;
const live = async (writ: string) => (await w.store.getWrit(parseWrit(writ).claims.jti))!.revokedAt === null;

describe('who may revoke', () => {
  it('the operator may revoke anything', async () => {
    const t = await twoHops();
    const r = await w.revocations.revoke('agent', 'spiffe://example.org/agent/b', 'compromised', OPERATOR);
    expect(r.records).toEqual([expect.objectContaining({ kind: 'agent', target: 'spiffe://example.org/agent/b', actor: 'operator', reason: 'compromised' })]);
    expect(await live(t.childWrit)).toBe(false);
    expect(await live(t.parentWrit)).toBe(true);
  });

  it('a principal may revoke its own grants and tasks, not another principal’s, and no other kind', async () => {
    const t = await twoHops();
    await expectWritError(w.revocations.revoke('grant', t.root.jti, '', BOB), 'ERR_REVOCATION_DENIED', 'this grant belongs to another principal');
    await expectWritError(w.revocations.revoke('task', 'task-1', '', BOB), 'ERR_REVOCATION_DENIED', 'this task belongs to another principal');
    await expectWritError(
      w.revocations.revoke('agent', 'spiffe://example.org/agent/a', '', ALICE),
      'ERR_REVOCATION_DENIED',
      'a principal may revoke its own grants and tasks, not a agent',
    );
    expect(await revokedCount()).toBe(0);
    const r = await w.revocations.revoke('grant', t.root.jti, 'done', ALICE);
    expect(r.records[0]!.actor).toBe('principal https://idp.example.com#alice');
  });

  it('an agent may revoke the grants it signed (and so everything below), not a root grant and not another agent’s', async () => {
    const t = await twoHops();
    await expectWritError(w.revocations.revoke('grant', t.root.jti, '', asAgent(t.parentWrit)), 'ERR_REVOCATION_DENIED', 'or is a root grant');
    await expectWritError(w.revocations.revoke('grant', t.hopJti, '', asAgent(t.childWrit)), 'ERR_REVOCATION_DENIED', 'signed by another key');
    await expectWritError(w.revocations.revoke('task', 'task-1', '', asAgent(t.parentWrit)), 'ERR_REVOCATION_DENIED', 'not a task');
    expect(await revokedCount()).toBe(0);
    const r = await w.revocations.revoke('grant', t.hopJti, 'child misbehaved', asAgent(t.parentWrit));
    expect(r.records[0]!.actor).toBe(`agent spiffe://example.org/agent/a (jkt ${t.parent.jkt})`);
    expect(await live(t.childWrit)).toBe(false);
    expect(await live(t.parentWrit)).toBe(true);
  });
});

describe('what a revocation is and kills', () => {
  it('is permanent: revoking again is ERR_REVOCATION_EXISTS and the first reason stands', async () => {
    const t = await twoHops();
    await w.revocations.revoke('grant', t.root.jti, 'first', OPERATOR);
    await expectWritError(w.revocations.revoke('grant', t.root.jti, 'second', OPERATOR), 'ERR_REVOCATION_EXISTS', 'was revoked before');
    expect((await w.store.getRevocation('grant', t.root.jti))!.reason).toBe('first');
    expect(await revokedCount()).toBe(1);
  });

  it.each([
    ['grant', 'AAAAAAAAAAAAAAAAAAAAAA'],
    ['writ', 'AAAAAAAAAAAAAAAAAAAAAA'],
    ['task', 'never-made'],
    ['entry', '00000000-0000-4000-8000-000000000000'],
    ['principal', 'https://idp.example.com#nobody'],
    ['agent', 'spiffe://example.org/agent/nobody'],
    ['key', 'A'.repeat(43)],
    ['platform', 'fake:device:never'],
  ])('refuses to revoke a %s the issuer never saw, writing nothing', async (kind, id) => {
    await expectWritError(w.revocations.revoke(kind, id, '', OPERATOR), 'ERR_REVOCATION_NOT_FOUND', `no ${kind} `);
    expect(await revokedCount()).toBe(0);
  });

  it('refuses a reason over 512 bytes or with control characters', async () => {
    const t = await twoHops();
    for (const reason of ['r'.repeat(513), 'line\u0000break']) {
      await expectWritError(w.revocations.revoke('grant', t.root.jti, reason, OPERATOR), 'ERR_REVOCATION_INVALID', 'the reason is at most 512 bytes of text');
    }
    expect(await revokedCount()).toBe(0);
  });

  it('a grant takes every writ below it with it, and says how many', async () => {
    const t = await twoHops();
    const r = await w.revocations.revoke('grant', t.root.jti, 'stop', OPERATOR);
    expect(r.writs).toBe(2);
    expect(await live(t.parentWrit)).toBe(false);
    expect(await live(t.childWrit)).toBe(false);
    expect((await w.store.getGrant(t.root.jti))!.revokedAt).toBe(T0);
  });

  it('a parent writ takes the writs delegated from it, not its siblings', async () => {
    const t = await twoHops();
    const sibling = (await w.attest(t.parent, { grants: [t.root.grant], sel: A })).writ!; // a renewal
    await w.revocations.revoke('writ', parseWrit(t.parentWrit).claims.jti, '', OPERATOR);
    expect(await live(t.childWrit)).toBe(false);
    expect(await live(sibling)).toBe(true);
  });

  it('an entry is published as one derived writ revocation per live writ, so relying parties that only read writs see it', async () => {
    const t = await twoHops();
    const entryId = (await w.store.getWrit(parseWrit(t.parentWrit).claims.jti))!.entryId;
    const r = await w.revocations.revoke('entry', entryId, 'decommissioned', OPERATOR);
    expect(r.records.map((x) => [x.kind, x.derivedFrom])).toEqual([
      ['entry', null],
      ['writ', r.seq],
    ]);
    expect(r.records[1]!.target).toBe(parseWrit(t.parentWrit).claims.jti);
    expect(r.writs).toBe(2); // its writ and the one delegated from it
  });

  it('ending a task records who ended it and why', async () => {
    await twoHops();
    await w.revocations.revoke('task', 'task-1', 'done', ALICE);
    expect(await w.store.getTask('task-1')).toMatchObject({ endedAt: T0, endedBy: 'principal https://idp.example.com#alice', endReason: 'done' });
  });

  it('tells listeners of committed revocations only, in order', async () => {
    const t = await twoHops();
    const told: RevocationRecord[][] = [];
    w.revocations.listen({ revoked: (records) => told.push([...records]) });
    await expectWritError(w.revocations.revoke('grant', t.root.jti, '', BOB), 'ERR_REVOCATION_DENIED');
    await w.revocations.revoke('grant', t.hopJti, 'a', OPERATOR);
    await w.revocations.revoke('grant', t.root.jti, 'b', OPERATOR);
    expect(told.map((rs) => rs.map((x) => x.target))).toEqual([[t.hopJti], [t.root.jti]]);
    expect(told[0]![0]!.seq).toBeLessThan(told[1]![0]!.seq);
  });
});

describe("the issuer's own revocation answer (Verify, agents that authenticate with a writ)", () => {
  const check = async (writ: string) => {
    const parsed = parseWrit(writ);
    const source = await issuerRevocationSource(w.store, parsed.claims);
    return source.check({ claims: parsed.claims, grants: parsed.claims.grants.map(parseGrant) }, w.clock.now());
  };

  it('says not revoked, naming the revocation sequence it knows, for a live writ', async () => {
    const t = await twoHops();
    expect(await check(t.childWrit)).toEqual({ revoked: false, source: "the issuer's store at revocation sequence 0" });
  });

  it('finds a revocation the writ names itself (an ancestor grant, its principal) with actor and reason', async () => {
    const t = await twoHops();
    await w.revocations.revoke('principal', 'https://idp.example.com#alice', 'left', OPERATOR);
    expect(await check(t.childWrit)).toEqual({
      revoked: true,
      reason: 'principal https://idp.example.com#alice revoked by operator: left',
      source: "the issuer's store at revocation sequence 1",
    });
  });

  it('finds a writ killed through what it does not carry (the entry of its parent) through the derived writ revocation', async () => {
    const t = await twoHops();
    const parentEntry = (await w.store.getWrit(parseWrit(t.parentWrit).claims.jti))!.entryId;
    const r = await w.revocations.revoke('entry', parentEntry, '', OPERATOR);
    const status = await check(t.childWrit);
    expect(status.revoked).toBe(true);
    // The child's writ names its parent writ (from.writ), which the derived revocation names.
    expect(status.reason).toBe(`writ ${r.records[1]!.target} revoked by operator`);
  });
});

describe('the task tree', () => {
  it('shows each grant and writ with its state, and what killed it', async () => {
    const tasks = new Tasks({ store: w.store, clock: w.clock });
    const t = await twoHops();
    await w.revocations.revoke('grant', t.hopJti, 'child misbehaved', OPERATOR);
    const tree = await tasks.show('task-1');
    expect(tree.state).toBe('live');
    const byJti = new Map(tree.grants.map((g) => [g.jti, g]));
    expect(byJti.get(t.root.jti)).toMatchObject({ depth: 0, state: 'live', from: 'https://idp.example.com#alice', fromWrit: null });
    expect(byJti.get(t.hopJti)).toMatchObject({
      depth: 1,
      state: 'revoked',
      from: 'spiffe://example.org/agent/a',
      revokedBy: { kind: 'grant', target: t.hopJti, actor: 'operator', reason: 'child misbehaved' },
    });
    const writs = new Map(tree.writs.map((x) => [x.spiffeId, x]));
    expect(writs.get('spiffe://example.org/agent/a')!.state).toBe('live');
    expect(writs.get('spiffe://example.org/agent/b')).toMatchObject({ state: 'revoked', revokedBy: { target: t.hopJti } });
    w.clock.set(tree.task.expiresAt);
    expect((await tasks.show('task-1')).state).toBe('expired');
  });

  it('refuses a malformed task id and says when a task is unknown', async () => {
    const tasks = new Tasks({ store: w.store, clock: w.clock });
    await expectWritError(tasks.show('bad id'), 'ERR_TASK_INVALID', 'a task id is 1..128');
    await expectWritError(tasks.show('nope'), 'ERR_TASK_NOT_FOUND', 'no task nope');
    await expectWritError(tasks.list(0), 'ERR_TASK_INVALID', 'the limit is an integer from 1 to 1000');
  });
});

describe('status lists: every writ gets its own index', () => {
  it('writs carry a status claim naming their list and a distinct index, recorded with the writ', async () => {
    const sw = await issuanceWorld({ statusLists: true });
    try {
      await sw.register('/agent/a', A);
      const agent: TestAgent = newAgent();
      const g = await sw.grants.create(sw.grantRequest(agent));
      const seen = new Set<number>();
      for (let i = 0; i < 3; i++) {
        const c = parseWrit((await sw.attest(agent, { grants: [g.grant], sel: A })).writ!).claims;
        expect(c.status!.status_list.uri).toBe('https://issuer.example.org/status/1');
        seen.add(c.status!.status_list.idx);
        expect(await sw.store.getWrit(c.jti)).toMatchObject({ statusList: 1, statusIdx: c.status!.status_list.idx });
      }
      expect(seen.size).toBe(3);
      expect((await sw.store.getStatusList(1))!.allocated).toBe(3);
    } finally {
      await sw.close();
    }
  });

  it('a list takes writs until half full, then a new list starts', async () => {
    const taken: Array<{ list: number; idx: number }> = [];
    for (let i = 0; i < 4; i++) {
      taken.push(
        await w.store.transaction(async (tx) => {
          const s = await allocateStatusIndex(tx, T0, 4);
          // Occupy the index as a writ would, so the next pick must avoid it.
          await tx.recordWrit({
            jti: `w${i}`,
            spiffeId: 'spiffe://example.org/agent/a',
            jkt: 'j',
            chainDigest: Buffer.alloc(32),
            lineage: ['g'],
            taskId: 'task-1',
            evidenceDigest: Buffer.alloc(32),
            issuedAt: T0,
            expiresAt: T0 + 1,
            principal: 'p',
            parentJti: null,
            entryId: 'e',
            platform: '',
            evidenceType: 'fake',
            statusList: s.list,
            statusIdx: s.idx,
            revokedAt: null,
            revokedSeq: null,
          });
          return s;
        }),
      );
    }
    expect(taken.map((t) => t.list)).toEqual([1, 1, 2, 2]);
    expect(taken[0]!.idx).not.toBe(taken[1]!.idx);
    expect(taken[2]!.idx).not.toBe(taken[3]!.idx);
  });
});
