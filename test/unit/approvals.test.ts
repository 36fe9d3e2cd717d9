/**
 * Approvals, the issuer's side (src/issuance/approvals.ts), over the real store, CA, policy
 * engine and OIDC verifier (test/helpers/issuance.ts), with a software WebAuthn authenticator
 * (test/helpers/soft-authenticator.ts): escalate → pending → passkey approval → step-up grant →
 * renewal carrying it → authorize allows; and every refusal, each its own test.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { trustDomainId } from '../../src/spiffe/id.js';
import { escalateMethod, getApprovalMethod } from '../../src/writ/proof-methods.js';
import { createProof } from '../../src/writ/proof.js';
import { authorize, verifyWrit } from '../../src/writ/verify.js';
import { parseWrit } from '../../src/writ/writ.js';
import { APPROVAL_ORIGIN, APPROVAL_RP_ID, issuanceWorld, newAgent, TD, type TestAgent, type World } from '../helpers/issuance.js';
import { POLICY } from '../helpers/policies.js';
import { SoftAuthenticator, type SoftAssertion } from '../helpers/soft-authenticator.js';

const SEL = ['fake:agent:approvals'];
const ISSUER = trustDomainId(TD);
const WRITE = { action: 'repo:write', resource: 'repo://acme/app' };

/** Who may approve: anyone in sec-oncall, never the task's own principal (separation of duties). */
const APPROVE_POLICY = `${POLICY}
@id("sec-oncall-approves")
permit(principal, action == Writ::Action::"approve", resource)
when { principal.groups.contains("sec-oncall") };

@id("not-your-own-escalation")
forbid(principal, action == Writ::Action::"approve", resource)
when { principal.iss == resource.principal.iss && principal.sub == resource.principal.sub };
`;

let w: World;
beforeEach(async () => {
  w = await issuanceWorld();
  await w.policies.push([{ name: 'policy.cedar', text: APPROVE_POLICY }]);
  await w.register('/agent/a', SEL);
});
afterEach(async () => {
  await w.close();
});

const b64 = (b: Buffer) => b.toString('base64url');
const now = () => w.clock.now().getTime();
/** An approver's ID token from a sign-in just now (auth_time: a first passkey needs a fresh one). */
const approverToken = (sub = 'bob', groups = ['sec-oncall']) => w.idp.tokenWith(now(), { sub, groups, auth_time: Math.floor(now() / 1000) });

interface AgentWrit {
  agent: TestAgent;
  grant: string;
  writ: string;
}

async function agentWithWrit(taskId = 'task-1', agent = newAgent()): Promise<AgentWrit> {
  const g = await w.grants.create(w.grantRequest(agent, { taskId, boundaries: [{ action: 'repo:delete', resource: 'repo://acme/*' }] }));
  const r = await w.attest(agent, { grants: [g.grant], sel: SEL });
  return { agent, grant: g.grant, writ: r.writ! };
}

function escalate(a: AgentWrit, perm = WRITE, reason = 'push the fix') {
  const proof = createProof(a.writ, a.agent.key, { audience: ISSUER, method: escalateMethod(perm.action, perm.resource), now: w.clock.now() });
  return w.approvals.escalate({ writ: a.writ, proof, ...perm, reason });
}

/** Registers a passkey for `token`'s approver through the real ceremony. */
async function register(token: string, auth = new SoftAuthenticator('ES256', APPROVAL_RP_ID)): Promise<SoftAuthenticator> {
  const opts = JSON.parse((await w.approvals.beginRegistration(token)).options) as { challenge: string; authenticatorSelection: { userVerification: string } };
  expect(opts.authenticatorSelection.userVerification).toBe('required');
  const c = auth.makeCredential({ challenge: Buffer.from(opts.challenge, 'base64url'), origin: APPROVAL_ORIGIN });
  const response = {
    id: b64(c.credentialId),
    rawId: b64(c.credentialId),
    type: 'public-key',
    response: { attestationObject: b64(c.attestationObject), clientDataJSON: b64(c.clientDataJSON), transports: ['internal'] },
    clientExtensionResults: {},
  };
  expect(await w.approvals.finishRegistration(token, JSON.stringify(response))).toBe(b64(c.credentialId));
  return auth;
}

const assertionJson = (a: SoftAssertion, credentialId = a.credentialId) =>
  JSON.stringify({
    id: b64(credentialId),
    rawId: b64(credentialId),
    type: 'public-key',
    response: {
      authenticatorData: b64(a.authenticatorData),
      clientDataJSON: b64(a.clientDataJSON),
      signature: b64(a.signature),
      userHandle: b64(a.userHandle),
    },
    clientExtensionResults: {},
  });

async function challengeFor(id: string, token: string): Promise<Buffer> {
  const begun = await w.approvals.beginApproval(id, token);
  const opts = JSON.parse(begun.options) as { challenge: string; userVerification: string };
  expect(opts.userVerification).toBe('required');
  return Buffer.from(opts.challenge, 'base64url');
}

/** Escalate, register bob's passkey, approve: the step-up grant. */
async function approved(a: AgentWrit, perm = WRITE) {
  const v = await escalate(a, perm);
  const token = approverToken();
  const auth = await register(token);
  const assertion = auth.getAssertion({ challenge: await challengeFor(v.record.id, token), origin: APPROVAL_ORIGIN });
  const done = await w.approvals.approve(v.record.id, token, assertionJson(assertion));
  return { view: done, auth, token, stepUp: done.record.stepUp! };
}

function rpVerify(writ: string, key: TestAgent['key']) {
  const proof = createProof(writ, key, { audience: 'https://rp.example', method: 'POST /deploy', now: w.clock.now() });
  return verifyWrit({
    writ,
    proof,
    trust: { issuer: ISSUER, writKeys: w.ca.bundle().writAuthorities! },
    audience: 'https://rp.example',
    method: 'POST /deploy',
    now: w.clock.now(),
  });
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
  return 'resolved';
}

describe('escalation', () => {
  it('records a pending request with the agent, principal, lineage, permission, reason and expiry, audited', async () => {
    const a = await agentWithWrit();
    const v = await escalate(a);
    const c = parseWrit(a.writ).claims;
    expect(v.state).toBe('pending');
    expect(v.record).toMatchObject({ taskId: 'task-1', actor: c.sub, actorJkt: c.cnf.jkt, lineage: c.lineage, ...WRITE, reason: 'push the fix' });
    expect(v.record.principalSub).toBe('alice');
    expect(v.record.expiresAt).toBe(now() + 15 * 60_000);
    expect(v.delegationPath).toEqual([`${c.principal.iss}#alice`, c.sub]);
    const audit = await w.store.findAuditRecords({ column: 'task', value: 'task-1' }, 1_000_000, 100);
    expect(audit.map((r) => r.event)).toContain('approval.requested');
  });

  it('names the policy that asked for an approval (an @escalate forbid)', async () => {
    const a = await agentWithWrit();
    const v = await escalate(a, { action: 'deploy:prod', resource: 'repo://acme/app' });
    expect(v.record.policies).toEqual(['prod-deploys-need-approval']);
  });

  it('refuses outright what no permit could ever cover', async () => {
    const a = await agentWithWrit();
    expect(await code(escalate(a, { action: 'repo:write', resource: 'repo://other/app' }))).toBe('ERR_POLICY_DENIED');
    expect(await w.store.listApprovals({}, 10)).toEqual([]);
  });

  it('refuses outright what a boundary of the grant chain forbids', async () => {
    const a = await agentWithWrit();
    expect(await code(escalate(a, { action: 'repo:delete', resource: 'repo://acme/app' }))).toBe('ERR_POLICY_DENIED');
  });

  it('refuses what the writ already allows, and a proof made for another permission', async () => {
    const a = await agentWithWrit();
    expect(await code(escalate(a, { action: 'repo:read', resource: 'repo://acme/app' }))).toBe('ERR_APPROVAL_INVALID');
    const proof = createProof(a.writ, a.agent.key, { audience: ISSUER, method: escalateMethod('repo:read', 'repo://acme/x'), now: w.clock.now() });
    expect(await code(w.approvals.escalate({ writ: a.writ, proof, ...WRITE, reason: 'x' }))).toBe('ERR_PROOF_INVALID');
  });

  it('shows a request to its agent and to approvers the policy names, to no one else', async () => {
    const a = await agentWithWrit();
    const other = await agentWithWrit('task-2');
    const v = await escalate(a);
    const as = (x: AgentWrit) => ({
      kind: 'agent' as const,
      writ: x.writ,
      proof: createProof(x.writ, x.agent.key, { audience: ISSUER, method: getApprovalMethod(v.record.id), now: w.clock.now() }),
      method: getApprovalMethod(v.record.id),
    });
    expect((await w.approvals.get(v.record.id, as(a))).state).toBe('pending');
    expect(await code(w.approvals.get(v.record.id, as(other)))).toBe('ERR_APPROVAL_NOT_FOUND');
    expect((await w.approvals.get(v.record.id, { kind: 'approver', token: approverToken() })).record.id).toBe(v.record.id);
    expect(await code(w.approvals.get(v.record.id, { kind: 'approver', token: approverToken('carol', ['eng']) }))).toBe('ERR_APPROVAL_NOT_FOUND');
    expect((await w.approvals.list(approverToken(), { state: '', taskId: '', pageSize: 0 })).approvals.map((x) => x.record.id)).toEqual([v.record.id]);
    expect((await w.approvals.list(approverToken('carol', ['eng']), { state: '', taskId: '', pageSize: 0 })).approvals).toEqual([]);
  });
});

describe('approval with a passkey, and renewal', () => {
  it('approve → step-up grant → the renewed writ carries it → a relying party allows the escalated action', async () => {
    const a = await agentWithWrit();
    expect(authorize(rpVerify(a.writ, a.agent.key), WRITE.action, WRITE.resource).decision).toBe('deny');
    const { view, stepUp } = await approved(a);
    expect(view.state).toBe('approved');
    expect(view.record.decidedBy).toBe('https://idp.example.com#bob');
    const renewed = await w.attest(a.agent, { grants: [a.grant], sel: SEL, stepUps: [stepUp] });
    expect(parseWrit(renewed.writ!).claims.stepup).toEqual([stepUp]);
    const v = rpVerify(renewed.writ!, a.agent.key);
    expect(authorize(v, WRITE.action, WRITE.resource).decision).toBe('allow');
    // Only what was approved: nothing else widened, and a boundary still wins.
    expect(authorize(v, 'repo:write', 'repo://acme/other').decision).not.toBe('allow');
    expect(authorize(v, 'repo:delete', 'repo://acme/app').decision).toBe('deny');
    const events = (await w.store.findAuditRecords({ column: 'task', value: 'task-1' }, 1_000_000, 100)).map((r) => r.event);
    expect(events).toContain('approval.granted');
  });

  it('deny records who and why, and the agent stays refused', async () => {
    const a = await agentWithWrit();
    const v = await escalate(a);
    const d = await w.approvals.deny(v.record.id, approverToken(), 'not during the freeze');
    expect(d.state).toBe('denied');
    expect(d.record).toMatchObject({ decidedBy: 'https://idp.example.com#bob', decisionReason: 'not during the freeze', stepUp: null });
    expect(await code(w.approvals.deny(v.record.id, approverToken(), 'again'))).toBe('ERR_APPROVAL_CLOSED');
    expect(authorize(rpVerify(a.writ, a.agent.key), WRITE.action, WRITE.resource).decision).toBe('deny');
  });
});

describe('refusals', () => {
  it('an approver outside the policy', async () => {
    const a = await agentWithWrit();
    const v = await escalate(a);
    const carol = approverToken('carol', ['eng']);
    await register(carol);
    expect(await code(w.approvals.beginApproval(v.record.id, carol))).toBe('ERR_APPROVAL_DENIED');
    expect(await code(w.approvals.deny(v.record.id, carol, 'no'))).toBe('ERR_APPROVAL_DENIED');
  });

  it('the principal approving their own agent’s escalation (separation of duties)', async () => {
    const a = await agentWithWrit();
    const v = await escalate(a);
    const alice = approverToken('alice', ['eng', 'sec-oncall']);
    expect(await code(w.approvals.beginApproval(v.record.id, alice))).toBe('ERR_APPROVAL_DENIED');
  });

  it('an assertion made for another task’s request', async () => {
    const a = await agentWithWrit('task-1');
    const b = await agentWithWrit('task-2');
    const va = await escalate(a);
    const vb = await escalate(b);
    const token = approverToken();
    const auth = await register(token);
    const forA = auth.getAssertion({ challenge: await challengeFor(va.record.id, token), origin: APPROVAL_ORIGIN });
    expect(await code(w.approvals.approve(vb.record.id, token, assertionJson(forA)))).toBe('ERR_WEBAUTHN_INVALID');
    expect((await w.store.getApproval(vb.record.id))!.state).toBe('pending');
  });

  it('an assertion over another challenge', async () => {
    const a = await agentWithWrit();
    const v = await escalate(a);
    const token = approverToken();
    const auth = await register(token);
    const bad = auth.getAssertion({ challenge: Buffer.alloc(32, 7), origin: APPROVAL_ORIGIN });
    expect(await code(w.approvals.approve(v.record.id, token, assertionJson(bad)))).toBe('ERR_WEBAUTHN_INVALID');
  });

  it('a replayed assertion: the decided request refuses it, and a sign count that did not move is refused', async () => {
    const a = await agentWithWrit();
    const v = await escalate(a);
    const v2 = await escalate(a, { action: 'repo:write', resource: 'repo://acme/lib' });
    const token = approverToken();
    const auth = await register(token);
    const assertion = auth.getAssertion({ challenge: await challengeFor(v.record.id, token), origin: APPROVAL_ORIGIN });
    await w.approvals.approve(v.record.id, token, assertionJson(assertion));
    expect(await code(w.approvals.approve(v.record.id, token, assertionJson(assertion)))).toBe('ERR_APPROVAL_CLOSED');
    // A cloned authenticator: right challenge, but the counter is where it was.
    const stale = auth.getAssertion({ challenge: await challengeFor(v2.record.id, token), origin: APPROVAL_ORIGIN, signCount: 1 });
    expect(await code(w.approvals.approve(v2.record.id, token, assertionJson(stale)))).toBe('ERR_WEBAUTHN_INVALID');
  });

  it.each([
    ['a wrong origin', { origin: 'https://evil.example' }],
    ['a wrong RP ID', { rpId: 'evil.example' }],
    ['the UV flag missing', { flags: 0x01 }],
  ])('%s', async (_what, bend) => {
    const a = await agentWithWrit();
    const v = await escalate(a);
    const token = approverToken();
    const auth = await register(token);
    const assertion = auth.getAssertion({ challenge: await challengeFor(v.record.id, token), origin: APPROVAL_ORIGIN, ...bend });
    expect(await code(w.approvals.approve(v.record.id, token, assertionJson(assertion)))).toBe('ERR_WEBAUTHN_INVALID');
    expect((await w.store.getApproval(v.record.id))!.state).toBe('pending');
  });

  it('a reason with a bidi override or a zero-width character, at Escalate and at Deny (ERR_APPROVAL_INVALID)', async () => {
    const a = await agentWithWrit();
    expect(await code(escalate(a, WRITE, 'push the fix \u202Eetad\u202C'))).toBe('ERR_APPROVAL_INVALID');
    expect(await w.store.listApprovals({}, 10)).toEqual([]);
    const v = await escalate(a);
    expect(await code(w.approvals.deny(v.record.id, approverToken(), 'no\u2066 freeze\u2069'))).toBe('ERR_APPROVAL_INVALID');
    expect(await code(w.approvals.deny(v.record.id, approverToken(), 'no\u200B'))).toBe('ERR_APPROVAL_INVALID');
    expect((await w.store.getApproval(v.record.id))!.state).toBe('pending');
  });

  it('a registration without user verification', async () => {
    const token = approverToken();
    const opts = JSON.parse((await w.approvals.beginRegistration(token)).options) as { challenge: string };
    const auth = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    const c = auth.makeCredential({ challenge: Buffer.from(opts.challenge, 'base64url'), origin: APPROVAL_ORIGIN, flags: 0x01 });
    const response = {
      id: b64(c.credentialId),
      rawId: b64(c.credentialId),
      type: 'public-key',
      response: { attestationObject: b64(c.attestationObject), clientDataJSON: b64(c.clientDataJSON) },
      clientExtensionResults: {},
    };
    expect(await code(w.approvals.finishRegistration(token, JSON.stringify(response)))).toBe('ERR_WEBAUTHN_INVALID');
  });

  it('an unregistered credential, and another approver’s credential', async () => {
    const a = await agentWithWrit();
    const v = await escalate(a);
    const bob = approverToken();
    await register(bob);
    const stranger = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    const challenge = await challengeFor(v.record.id, bob);
    expect(await code(w.approvals.approve(v.record.id, bob, assertionJson(stranger.getAssertion({ challenge, origin: APPROVAL_ORIGIN }))))).toBe(
      'ERR_WEBAUTHN_INVALID',
    );
    const dave = approverToken('dave');
    const daves = await register(dave);
    expect(await code(w.approvals.approve(v.record.id, bob, assertionJson(daves.getAssertion({ challenge, origin: APPROVAL_ORIGIN }))))).toBe(
      'ERR_WEBAUTHN_INVALID',
    );
  });

  it('a forged step-up grant at renewal', async () => {
    const a = await agentWithWrit();
    const { stepUp } = await approved(a);
    const [h, p, s] = stepUp.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as { req: { permission: { resource: string } } };
    claims.req.permission.resource = 'repo://acme/*';
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    expect(await code(w.attest(a.agent, { grants: [a.grant], sel: SEL, stepUps: [forged] }))).toBe('ERR_STEP_UP_INVALID');
  });

  it('an approval presented after its task ended; and approving once it ended', async () => {
    const a = await agentWithWrit();
    const { stepUp } = await approved(a);
    const pending = await escalate(a, { action: 'repo:write', resource: 'repo://acme/lib' });
    await w.revocations.revoke('task', 'task-1', 'done', { kind: 'operator' });
    expect(await code(w.attest(a.agent, { grants: [a.grant], sel: SEL, stepUps: [stepUp] }))).toBe('ERR_REVOKED');
    expect(await code(w.approvals.beginApproval(pending.record.id, approverToken()))).toBe('ERR_APPROVAL_CLOSED');
  });

  it('a child presenting its parent’s approval', async () => {
    const a = await agentWithWrit();
    const { stepUp } = await approved(a);
    await w.register('/agent/child', ['fake:agent:child']);
    const child = newAgent();
    const hop = w.hop(a.grant, a.agent, a.writ, child, { scope: [{ action: 'repo:read', resource: 'repo://acme/*' }] });
    expect(await code(w.attest(child, { grants: [a.grant, hop], sel: ['fake:agent:child'], stepUps: [stepUp] }))).toBe('ERR_STEP_UP_INVALID');
    // Without it the child is issued, and holds nothing the approval added.
    const r = await w.attest(child, { grants: [a.grant, hop], sel: ['fake:agent:child'] });
    expect(parseWrit(r.writ!).claims.stepup).toBeUndefined();
  });

  it('another agent presenting an approval', async () => {
    const a = await agentWithWrit('task-1');
    const { stepUp } = await approved(a);
    const b = await agentWithWrit('task-1');
    expect(await code(w.attest(b.agent, { grants: [b.grant], sel: SEL, stepUps: [stepUp] }))).toBe('ERR_STEP_UP_INVALID');
  });

  it('expiry: a request past its time cannot be approved or denied', async () => {
    const a = await agentWithWrit();
    const v = await escalate(a);
    const token = approverToken();
    await register(token);
    w.clock.advance(15 * 60_000);
    const late = approverToken();
    expect((await w.approvals.get(v.record.id, { kind: 'approver', token: late })).state).toBe('expired');
    expect(await code(w.approvals.beginApproval(v.record.id, late))).toBe('ERR_APPROVAL_CLOSED');
    expect(await code(w.approvals.deny(v.record.id, late, 'late'))).toBe('ERR_APPROVAL_CLOSED');
  });
});

describe('policy after approval', () => {
  it('a renewal carrying an approval the active policy now forbids outright is refused', async () => {
    const a = await agentWithWrit();
    const { stepUp } = await approved(a);
    await w.policies.push([
      {
        name: 'policy.cedar',
        text: `${APPROVE_POLICY}\n@id("no-writes") forbid(principal, action == Writ::Action::"receive", resource) when { resource.action == "repo:write" };`,
      },
    ]);
    expect(await code(w.attest(a.agent, { grants: [a.grant], sel: SEL, stepUps: [stepUp] }))).toBe('ERR_POLICY_DENIED');
  });

  it('an approver the policy stopped naming between BeginApproval and Approve', async () => {
    const a = await agentWithWrit();
    const v = await escalate(a);
    const token = approverToken();
    const auth = await register(token);
    const assertion = auth.getAssertion({ challenge: await challengeFor(v.record.id, token), origin: APPROVAL_ORIGIN });
    await w.policies.push([{ name: 'policy.cedar', text: POLICY }]);
    expect(await code(w.approvals.approve(v.record.id, token, assertionJson(assertion)))).toBe('ERR_APPROVAL_DENIED');
    expect((await w.store.getApproval(v.record.id))!.state).toBe('pending');
  });
});

describe('reset between tasks', () => {
  it('end the task, start a new one for the same agent: no approval carries over', async () => {
    const a = await agentWithWrit('task-1');
    const { stepUp } = await approved(a);
    await w.revocations.revoke('task', 'task-1', 'done', { kind: 'operator' });
    const next = await agentWithWrit('task-2', a.agent);
    expect(parseWrit(next.writ).claims.stepup).toBeUndefined();
    expect(authorize(rpVerify(next.writ, a.agent.key), WRITE.action, WRITE.resource).decision).toBe('deny');
    expect(await code(w.attest(a.agent, { grants: [next.grant], sel: SEL, stepUps: [stepUp] }))).toBe('ERR_STEP_UP_INVALID');
  });
});
