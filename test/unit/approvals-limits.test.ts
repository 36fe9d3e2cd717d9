/**
 * Approvals under load (issue 14, escalation side): the caps on pending escalations per writ and
 * per task, idempotent repeats, ListApprovals filtered and paged in the store so a flood from one
 * task hides no other request, and expiry stored once with its approval.expired audit record.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { approvalsSection, DEFAULT_MAX_PENDING_PER_TASK, DEFAULT_MAX_PENDING_PER_WRIT } from '../../src/approval/settings.js';
import { MAX_APPROVAL_SCAN, MAX_EXPIRED_PER_RUN, parsePageToken } from '../../src/issuance/approvals.js';
import { trustDomainId } from '../../src/spiffe/id.js';
import type { ApprovalRecord } from '../../src/store/store.js';
import { escalateMethod } from '../../src/writ/proof-methods.js';
import { createProof } from '../../src/writ/proof.js';
import { Section } from '../../src/config/section.js';
import { issuanceWorld, newAgent, TD, type TestAgent, type World, type WorldOptions } from '../helpers/issuance.js';
import { POLICY } from '../helpers/policies.js';

const SEL = ['fake:agent:approvals'];
const ISSUER = trustDomainId(TD);
const APPROVE_POLICY = `${POLICY}
@id("sec-oncall-approves")
permit(principal, action == Writ::Action::"approve", resource)
when { principal.groups.contains("sec-oncall") };

@id("not-your-own-escalation")
forbid(principal, action == Writ::Action::"approve", resource)
when { principal.iss == resource.principal.iss && principal.sub == resource.principal.sub };
`;

let w: World;
async function world(o: WorldOptions = {}): Promise<World> {
  w = await issuanceWorld(o);
  await w.policies.push([{ name: 'policy.cedar', text: APPROVE_POLICY }]);
  await w.register('/agent/a', SEL);
  return w;
}
afterEach(async () => {
  await w?.close();
});

const now = () => w.clock.now().getTime();
const approverToken = (sub = 'bob', groups = ['sec-oncall']) => w.idp.tokenWith(now(), { sub, groups });

async function agentWithWrit(taskId = 'task-1', agent: TestAgent = newAgent()) {
  const g = await w.grants.create(w.grantRequest(agent, { taskId }));
  const r = await w.attest(agent, { grants: [g.grant], sel: SEL });
  return { agent, writ: r.writ! };
}

function escalate(a: { agent: TestAgent; writ: string }, resource = 'repo://acme/app', reason = 'push the fix') {
  const proof = createProof(a.writ, a.agent.key, { audience: ISSUER, method: escalateMethod('repo:write', resource), now: w.clock.now() });
  return w.approvals.escalate({ writ: a.writ, proof, action: 'repo:write', resource, reason });
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  return 'resolved';
}

const events = async (task = 'task-1') => (await w.store.findAuditRecords({ column: 'task', value: task }, 1_000_000, 1_000)).map((r) => r.event);

describe('pending escalation caps and repeats', () => {
  it('a repeated identical escalation (same writ, action, resource) returns the pending request and writes nothing', async () => {
    await world();
    const a = await agentWithWrit();
    const first = await escalate(a);
    const again = await escalate(a, 'repo://acme/app', 'asking again, other words');
    expect(again.record.id).toBe(first.record.id);
    expect(again.record.reason).toBe('push the fix');
    expect(await w.store.listApprovals({}, 10)).toHaveLength(1);
    expect((await events()).filter((e) => e === 'approval.requested')).toHaveLength(1);
    // Another resource is another request.
    expect((await escalate(a, 'repo://acme/lib')).record.id).not.toBe(first.record.id);
  });

  it('once decided or expired, the same permission may be asked again', async () => {
    await world();
    const a = await agentWithWrit();
    const first = await escalate(a);
    await w.approvals.deny(first.record.id, approverToken(), 'not now');
    const second = await escalate(a);
    expect(second.record.id).not.toBe(first.record.id);
    w.clock.advance(15 * 60_000);
    const a2 = await agentWithWrit('task-1', a.agent);
    expect((await escalate(a2)).record.id).not.toBe(second.record.id);
  });

  it('refuses past max_pending_per_writ with ERR_APPROVAL_LIMIT, and a decision frees a slot', async () => {
    await world({ approvalLimits: { maxPendingPerWrit: 2, maxPendingPerTask: 10 } });
    const a = await agentWithWrit();
    const r1 = await escalate(a, 'repo://acme/r1');
    await escalate(a, 'repo://acme/r2');
    expect(await code(escalate(a, 'repo://acme/r3'))).toMatch(
      /^ERR_APPROVAL_LIMIT: approval: writ \S+ already has 2 escalations pending \(approvals.max_pending_per_writ\)/,
    );
    // Refused, nothing written.
    expect(await w.store.listApprovals({}, 10)).toHaveLength(2);
    // A repeat of a pending one is not a new request: still answered at the cap.
    expect((await escalate(a, 'repo://acme/r1')).record.id).toBe(r1.record.id);
    await w.approvals.deny(r1.record.id, approverToken(), 'no');
    expect((await escalate(a, 'repo://acme/r3')).state).toBe('pending');
  });

  it('refuses past max_pending_per_task across the task’s writs; another task is not counted', async () => {
    await world({ approvalLimits: { maxPendingPerWrit: 2, maxPendingPerTask: 3 } });
    const a = await agentWithWrit('task-1');
    const b = await agentWithWrit('task-1');
    const c = await agentWithWrit('task-2');
    await escalate(a, 'repo://acme/r1');
    await escalate(a, 'repo://acme/r2');
    await escalate(b, 'repo://acme/r3');
    expect(await code(escalate(b, 'repo://acme/r4'))).toMatch(
      /^ERR_APPROVAL_LIMIT: approval: task task-1 already has 3 escalations pending \(approvals.max_pending_per_task\)/,
    );
    expect((await escalate(c, 'repo://acme/r4')).state).toBe('pending');
  });

  it('an expired request no longer counts against the caps', async () => {
    await world({ approvalLimits: { maxPendingPerWrit: 1, maxPendingPerTask: 1 } });
    const a = await agentWithWrit();
    await escalate(a, 'repo://acme/r1');
    expect(await code(escalate(a, 'repo://acme/r2'))).toMatch(/^ERR_APPROVAL_LIMIT/);
    w.clock.advance(15 * 60_000);
    const again = await agentWithWrit('task-1', a.agent);
    expect((await escalate(again, 'repo://acme/r2')).state).toBe('pending');
  });

  it('concurrent escalations never pass the cap together', async () => {
    await world({ approvalLimits: { maxPendingPerWrit: 3, maxPendingPerTask: 3 } });
    const a = await agentWithWrit();
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => escalate(a, `repo://acme/c${i}`)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    expect(await w.store.countPendingApprovals('task-1', undefined, now(), 100)).toBe(3);
  });

  it('approvals.max_pending_per_writ / _per_task: defaults 16 and 256, bounded, per writ at most per task', () => {
    const parse = (approvals: Record<string, unknown>) => {
      const problems: string[] = [];
      const v = approvalsSection.parse(new Section('', { approvals }, problems));
      return { v, problems };
    };
    expect(DEFAULT_MAX_PENDING_PER_WRIT).toBe(16);
    expect(DEFAULT_MAX_PENDING_PER_TASK).toBe(256);
    expect(parse({})).toMatchObject({ v: { maxPendingPerWrit: 16, maxPendingPerTask: 256 }, problems: [] });
    expect(parse({ max_pending_per_writ: 4, max_pending_per_task: 8 })).toMatchObject({ v: { maxPendingPerWrit: 4, maxPendingPerTask: 8 }, problems: [] });
    expect(parse({ max_pending_per_writ: 0 }).problems.join()).toMatch(/approvals.max_pending_per_writ/);
    expect(parse({ max_pending_per_task: 10_001 }).problems.join()).toMatch(/approvals.max_pending_per_task/);
    expect(parse({ max_pending_per_writ: 20, max_pending_per_task: 10 }).problems).toEqual([
      'approvals.max_pending_per_writ must not exceed approvals.max_pending_per_task',
    ]);
  });
});

/** `n` stored copies of `base` as requests from another principal (bob, who may not decide his own), newest last. */
async function flood(base: ApprovalRecord, n: number, over: Partial<ApprovalRecord> = {}): Promise<void> {
  await w.store.transaction(async (tx) => {
    for (let i = 0; i < n; i++)
      await tx.createApproval({ ...base, id: `flood${String(i).padStart(17, '0')}`, createdAt: base.createdAt + 1 + i, expiresAt: now() + 3_600_000, ...over });
  });
}

describe('ListApprovals: filtered in the store, paged by keyset', () => {
  it('a flood of 1000 requests from one task the approver may not decide hides no other task’s request', async () => {
    await world();
    const other = await escalate(await agentWithWrit('task-2'));
    // 1000 newer requests in task-1 on behalf of bob: bob may not decide them (separation of duties).
    await flood({ ...other.record, taskId: 'task-1', principalSub: 'bob' }, 1000);
    const page = await w.approvals.list(approverToken(), { state: '', taskId: '', pageSize: 0 });
    expect(page.approvals.map((v) => v.record.id)).toEqual([other.record.id]);
    expect(page.nextPageToken).toBe('');
    // carol may decide all of them: paging reaches the other task's request after the flood.
    const carol = approverToken('carol');
    const seen: string[] = [];
    let token = '';
    let calls = 0;
    do {
      const p = await w.approvals.list(carol, { state: 'pending', taskId: '', pageSize: 500, pageToken: token });
      seen.push(...p.approvals.map((v) => v.record.id));
      token = p.nextPageToken;
      calls++;
    } while (token && calls < 10);
    expect(seen).toHaveLength(1001);
    expect(seen[1000]).toBe(other.record.id);
    expect(new Set(seen).size).toBe(1001);
    // Filters go to the store: the task, the principal.
    expect((await w.approvals.list(carol, { state: '', taskId: 'task-2', pageSize: 0 })).approvals.map((v) => v.record.id)).toEqual([other.record.id]);
    const alice = `${other.record.principalIss}#alice`;
    expect((await w.approvals.list(carol, { state: '', taskId: '', principal: alice, pageSize: 0 })).approvals.map((v) => v.record.id)).toEqual([
      other.record.id,
    ]);
  });

  it('reads at most MAX_APPROVAL_SCAN requests per call: a short page with a token, and the token reaches the rest', async () => {
    await world();
    const other = await escalate(await agentWithWrit('task-2'));
    await flood({ ...other.record, taskId: 'task-1', principalSub: 'bob' }, MAX_APPROVAL_SCAN + 10);
    const first = await w.approvals.list(approverToken(), { state: 'pending', taskId: '', pageSize: 0 });
    expect(first.approvals).toEqual([]);
    expect(first.nextPageToken).not.toBe('');
    const second = await w.approvals.list(approverToken(), { state: 'pending', taskId: '', pageSize: 0, pageToken: first.nextPageToken });
    expect(second.approvals.map((v) => v.record.id)).toEqual([other.record.id]);
    expect(second.nextPageToken).toBe('');
  });

  it('state filters at the issuer’s clock: pending excludes, expired includes, a request past its expiry', async () => {
    await world();
    const v = await escalate(await agentWithWrit());
    const list = async (state: string) => (await w.approvals.list(approverToken(), { state, taskId: '', pageSize: 0 })).approvals.map((x) => x.state);
    expect(await list('pending')).toEqual(['pending']);
    w.clock.advance(15 * 60_000);
    expect(await list('pending')).toEqual([]);
    expect(await list('expired')).toEqual(['expired']);
    expect(await list('all')).toEqual(['expired']);
    expect(v.record.id).toBeTruthy();
  });

  it.each([
    ['a page size past 500', { pageSize: 501 }, /page size must be 1..500/],
    ['a page token not base64url', { pageToken: 'a b' }, /page token/],
    ['a page token that is not a position', { pageToken: Buffer.from('12:short').toString('base64url') }, /page token/],
    ['a page token with a leading zero', { pageToken: Buffer.from(`012:${'A'.repeat(22)}`).toString('base64url') }, /page token/],
    ['a principal filter with no #', { principal: 'https://idp.example' }, /ISSUER#SUBJECT/],
    ['a principal filter with an empty subject', { principal: 'https://idp.example#' }, /ISSUER#SUBJECT/],
    ['a principal filter past 2048 bytes', { principal: `https://idp.example#${'a'.repeat(2030)}` }, /at most 2048 bytes/],
    ['an unknown state', { state: 'stale' }, /state must be/],
  ])('refuses %s (ERR_APPROVAL_INVALID)', async (_name, over, msg) => {
    await world();
    const r = await code(w.approvals.list(approverToken(), { state: '', taskId: '', pageSize: 0, ...over }));
    expect(r).toMatch(/^ERR_APPROVAL_INVALID: /);
    expect(r).toMatch(msg);
  });

  it('parses exactly the page tokens it issues', () => {
    const id = 'A'.repeat(22);
    const t = Buffer.from(`1700000000000:${id}`).toString('base64url');
    expect(parsePageToken(t)).toEqual({ createdAt: 1_700_000_000_000, id });
    expect(() => parsePageToken(`${t}A`)).toThrow(/page token/);
    expect(() => parsePageToken(Buffer.from(`99999999999999999:${id}`).toString('base64url'))).toThrow(/page token/);
    expect(() => parsePageToken('x'.repeat(65))).toThrow(/page token/);
  });
});

describe('expiry', () => {
  it('stores a pending request past its expiry as expired with exactly one approval.expired record, however many run it at once', async () => {
    await world();
    const v = await escalate(await agentWithWrit());
    expect(await w.approvals.expireDue()).toBe(0);
    w.clock.advance(15 * 60_000 - 1);
    expect(await w.approvals.expireDue()).toBe(0);
    w.clock.advance(1);
    // Replicas' housekeeping at the same tick: one wins each request.
    const done = await Promise.all([w.approvals.expireDue(), w.approvals.expireDue(), w.approvals.expireDue()]);
    expect(done.reduce((a, b) => a + b, 0)).toBe(1);
    expect(await w.approvals.expireDue()).toBe(0);
    expect((await w.store.getApproval(v.record.id))!.state).toBe('expired');
    const audit = (await w.store.findAuditRecords({ column: 'task', value: 'task-1' }, 1_000_000, 100)).filter((r) => r.event === 'approval.expired');
    expect(audit).toHaveLength(1);
    const rec = JSON.parse(audit[0]!.canonical.toString('utf8')) as Record<string, unknown>;
    expect(rec).toMatchObject({
      event: 'approval.expired',
      actor: { kind: 'issuer' },
      action: 'expire repo:write',
      resource: 'repo://acme/app',
      task: 'task-1',
    });
    // Stored expired: neither decided nor listed as pending, and the agent sees it expired.
    expect(await code(w.approvals.deny(v.record.id, approverToken(), 'late'))).toMatch(/^ERR_APPROVAL_CLOSED/);
    expect((await w.approvals.refresh(v.record.id)).state).toBe('expired');
  });

  it(`stores at most MAX_EXPIRED_PER_RUN (${MAX_EXPIRED_PER_RUN}) per run; the next run takes the rest`, async () => {
    await world();
    const v = await escalate(await agentWithWrit());
    await flood(v.record, MAX_EXPIRED_PER_RUN + 5, { expiresAt: now() + 60_000 });
    w.clock.advance(15 * 60_000);
    expect(await w.approvals.expireDue()).toBe(MAX_EXPIRED_PER_RUN);
    expect(await w.approvals.expireDue()).toBe(6);
    expect(await w.store.listExpiredPending(now(), 10)).toEqual([]);
  });

  it('never expires a decided request', async () => {
    await world();
    const v = await escalate(await agentWithWrit());
    await w.approvals.deny(v.record.id, approverToken(), 'no');
    w.clock.advance(60 * 60_000);
    expect(await w.approvals.expireDue()).toBe(0);
    expect((await w.store.getApproval(v.record.id))!.state).toBe('denied');
    expect(await events()).not.toContain('approval.expired');
  });
});
