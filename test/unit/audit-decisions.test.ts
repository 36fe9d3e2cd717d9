/**
 * Every state change and decision of issue 10 leaves exactly one audit record, with the right
 * actor, principal, task and lineage, three hops deep (principal → A → B → C); refusals of a
 * named agent are one record each, in a transaction of their own; refusals of peers not named
 * leave none (the server tallies them: audit-tally.test.ts). Table-driven over one world: each
 * row runs one step and states the records it must append, in order, and nothing else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signKeyProofWith } from '../../src/attestation/key-proof.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { parseRecord } from '../../src/audit/record.js';
import { parseWrit, type WritClaims } from '../../src/writ/writ.js';
import { fakeEvidence } from '../fakes/evidence.js';
import { HOUR, issuanceWorld, newAgent, nonceOf, TD, type TestAgent, type World } from '../helpers/issuance.js';
import { POLICY } from '../helpers/policies.js';

let w: World;
beforeAll(async () => {
  w = await issuanceWorld();
});
afterAll(() => w.close());

const alice = () => ({ iss: w.idp.issuer, sub: 'alice' });
const agentActor = (a: TestAgent, path: string) => ({ kind: 'agent', spiffeId: `spiffe://${TD}${path}`, jkt: a.jkt });
const operator = { kind: 'operator', id: 'admin' };
const issuerActor = { kind: 'issuer' };

/** The records a step appended. */
async function during(step: () => Promise<unknown>): Promise<AuditRecord[]> {
  const from = await w.store.getAuditSize();
  await step().catch((e: unknown) => {
    if (!(e instanceof Error && 'code' in e)) throw e;
  });
  const rows = await w.store.listAuditRecords(from, 100);
  return rows.map((r) => parseRecord(r.canonical));
}

const [A, B, C, D, E, F] = [newAgent(), newAgent(), newAgent(), newAgent(), newAgent(), newAgent()];
const st: { root?: string; rootJti?: string; wa?: string; wb?: string; wc?: string; g1?: string; g2?: string; waC?: WritClaims; entryA?: string } = {};
const EXTRA = '@id("docs-agents-receive")\npermit(principal, action == Writ::Action::"receive", resource) when { resource.resource like "repo://docs/*" };';
const sel = (name: string) => [`fake:${name}`];

interface Row {
  readonly name: string;
  readonly step: () => Promise<unknown>;
  /** The records, in order; each matched with toMatchObject. */
  readonly want: () => Array<Partial<Record<keyof AuditRecord, unknown>>>;
}

const rows: Row[] = [
  {
    name: 'an operator creates an entry',
    step: async () => (st.entryA = (await w.register('/agent/planner', sel('A'))).id),
    want: () => [{ event: 'entry.created', actor: operator, principal: null, task: null, lineage: [], created: [st.entryA] }],
  },
  {
    name: 'an operator creates a join token (its id, never the secret)',
    step: () => w.admin.createJoinToken(undefined),
    want: () => [{ event: 'join_token.created', actor: operator, principal: null }],
  },
  {
    name: 'an operator pushes a policy set: pushed, then activated',
    step: () => w.policies.push([{ name: 'policy.cedar', text: `${POLICY}\n${EXTRA}` }]),
    want: () => [
      { event: 'policy.pushed', actor: operator, principal: null },
      { event: 'policy.activated', actor: operator, principal: null },
    ],
  },
  {
    name: 'alice is granted a task for A: the principal acts directly',
    step: async () => {
      const g = await w.grants.create(w.grantRequest(A, { taskId: 'triage-42' }));
      st.root = g.grant;
      st.rootJti = g.jti;
    },
    want: () => [
      {
        event: 'grant.created',
        actor: { kind: 'principal', ...alice() },
        principal: alice(),
        task: 'triage-42',
        lineage: [st.rootJti],
        decision: 'allow',
        created: [st.rootJti],
        policies: ['eng-may-delegate-acme'],
      },
    ],
  },
  {
    name: 'a grant no policy permits is denied',
    step: () => w.grants.create(w.grantRequest(A, { taskId: 'other-1', scope: [{ action: 'repo:read', resource: 'repo://evil/*' }] })),
    want: () => [
      { event: 'grant.denied', actor: { kind: 'principal', ...alice() }, principal: alice(), decision: 'deny', reason: 'ERR_POLICY_DENIED', created: [] },
    ],
  },
  {
    name: 'a grant that needs approval is escalated',
    step: () => w.grants.create(w.grantRequest(A, { taskId: 'deploy-1', scope: [{ action: 'deploy:prod', resource: 'repo://acme/x' }] })),
    want: () => [{ event: 'grant.escalated', decision: 'escalate', reason: 'ERR_ESCALATION_REQUIRED', policies: ['prod-deploys-need-approval'] }],
  },
  {
    name: 'A attests with the root grant: SVIDs, then the writ, A the actor',
    step: async () => {
      st.wa = (await w.attest(A, { grants: [st.root!], sel: sel('A') })).writ;
      st.waC = parseWrit(st.wa!).claims;
    },
    want: () => [
      { event: 'handshake.issued', actor: agentActor(A, '/agent/planner'), principal: alice(), task: 'triage-42', lineage: [st.rootJti], decision: 'allow' },
      { event: 'writ.issued', actor: agentActor(A, '/agent/planner'), principal: alice(), lineage: [st.rootJti], created: [st.waC!.jti], decision: 'allow' },
    ],
  },
  {
    name: 'B attests with A’s hop: the hop accepted (A the actor), then B’s writ',
    step: async () => {
      await w.register('/agent/researcher', sel('B'));
      st.g1 = w.hop(st.root!, A, st.wa!, B);
      st.wb = (await w.attest(B, { grants: [st.root!, st.g1], sel: sel('B') })).writ;
    },
    want: () => {
      const wb = parseWrit(st.wb!).claims;
      return [
        { event: 'entry.created' },
        { event: 'handshake.issued', actor: agentActor(B, '/agent/researcher'), principal: alice(), lineage: wb.lineage },
        {
          event: 'delegation.accepted',
          actor: agentActor(A, '/agent/planner'),
          principal: alice(),
          task: 'triage-42',
          lineage: wb.lineage,
          created: [wb.lineage[1]],
        },
        { event: 'writ.issued', actor: agentActor(B, '/agent/researcher'), created: [wb.jti], lineage: wb.lineage },
      ];
    },
  },
  {
    name: 'C attests with B’s hop, three hops deep',
    step: async () => {
      await w.register('/agent/reader', sel('C'));
      st.g2 = w.hop(st.g1!, B, st.wb!, C);
      st.wc = (await w.attest(C, { grants: [st.root!, st.g1!, st.g2], sel: sel('C') })).writ;
    },
    want: () => {
      const wc = parseWrit(st.wc!).claims;
      expect(wc.lineage).toHaveLength(3);
      return [
        { event: 'entry.created' },
        { event: 'handshake.issued', actor: agentActor(C, '/agent/reader'), principal: alice(), task: 'triage-42', lineage: wc.lineage },
        { event: 'delegation.accepted', actor: agentActor(B, '/agent/researcher'), lineage: wc.lineage, created: [wc.lineage[2]] },
        { event: 'writ.issued', actor: agentActor(C, '/agent/reader'), principal: alice(), lineage: wc.lineage, created: [wc.jti] },
      ];
    },
  },
  {
    name: 'an agent the policy forbids is refused: one record with the policy and the reason',
    step: async () => {
      await w.register('/untrusted/d', sel('D'));
      await w.attest(D, { grants: [st.root!, w.hop(st.root!, A, st.wa!, D)], sel: sel('D') });
    },
    want: () => [
      { event: 'entry.created' },
      {
        event: 'handshake.refused',
        actor: agentActor(D, '/untrusted/d'),
        principal: alice(),
        task: 'triage-42',
        decision: 'deny',
        reason: 'ERR_POLICY_DENIED',
        policies: ['no-untrusted-agents'],
        created: [],
      },
    ],
  },
  {
    name: 'a revoked agent is refused: the revocation (operator), then the refusal (the agent, ERR_REVOKED)',
    step: async () => {
      await w.register('/agent/e', sel('E'));
      await w.attest(E, { sel: sel('E') });
      await w.revocations.revoke('agent', `spiffe://${TD}/agent/e`, 'compromised', { kind: 'operator' });
      await w.attest(E, { sel: sel('E') });
    },
    want: () => [
      { event: 'entry.created' },
      { event: 'handshake.issued', actor: agentActor(E, '/agent/e'), principal: null, task: null, lineage: [], decision: null },
      { event: 'revocation', actor: operator, resource: `agent:spiffe://${TD}/agent/e`, reason: 'compromised' },
      {
        event: 'handshake.refused',
        actor: agentActor(E, '/agent/e'),
        principal: null,
        reason: 'ERR_REVOKED',
        created: [],
        evidence: expect.stringMatching(/^[0-9a-f]{64}$/),
      },
    ],
  },
  {
    name: 'a hop whose delegator lost its entry after hello is refused as a delegation, the receiver the actor',
    step: async () => {
      await w.register('/agent/f', sel('F'));
      const g = w.hop(st.root!, A, st.wa!, F);
      const { handshake, challenge } = await w.issuer.begin(w.hello(F, { grants: [st.root!, g] }));
      await w.admin.deleteEntry(st.entryA!);
      await handshake.respond(fakeEvidence({ sel: sel('F') }), signKeyProofWith(F.key, nonceOf(challenge)));
    },
    want: () => [
      { event: 'entry.created' },
      { event: 'entry.deleted', actor: operator, resource: `entry:${st.entryA}` },
      { event: 'delegation.refused', actor: agentActor(F, '/agent/f'), principal: alice(), task: 'triage-42', reason: 'ERR_GRANT_INVALID', created: [] },
    ],
  },
  {
    name: 'a peer no entry names is not recorded by the issuer (the server tallies it)',
    step: () => w.attest(newAgent(), { sel: ['fake:nobody'] }),
    want: () => [],
  },
  {
    name: 'evidence refused before the peer is named: no record either',
    step: () => w.attest(newAgent(), { evidence: { refuse: 'forged' } }),
    want: () => [],
  },
  {
    name: 'a grant revoked by the principal: the principal the actor and the one concerned',
    step: () => w.revocations.revoke('grant', st.rootJti!, '', { kind: 'principal', ...alice() }),
    want: () => [{ event: 'revocation', actor: { kind: 'principal', ...alice() }, principal: alice(), lineage: [st.rootJti], resource: `grant:${st.rootJti}` }],
  },
  {
    name: 'the task ends',
    step: () => w.revocations.revoke('task', 'triage-42', 'done', { kind: 'principal', ...alice() }),
    want: () => [{ event: 'task.ended', actor: { kind: 'principal', ...alice() }, principal: alice(), task: 'triage-42', reason: 'done' }],
  },
  {
    name: 'key rotation: each key prepared is one key.rotated record, the issuer the actor',
    step: async () => {
      w.clock.advance(13 * HOUR);
      await w.ca.rotate();
    },
    want: () => [
      { event: 'key.rotated', actor: issuerActor, action: 'create prepared x509-intermediate key', principal: null },
      { event: 'key.rotated', actor: issuerActor, action: 'create prepared jwt key' },
      { event: 'key.rotated', actor: issuerActor, action: 'create prepared writ key' },
    ],
  },
  {
    name: 'key rotation: activation retires the old key (two changes, two records)',
    step: async () => {
      w.clock.advance(8 * HOUR);
      await w.ca.rotate();
    },
    want: () =>
      ['x509-intermediate', 'jwt', 'writ'].flatMap((k) => [
        { event: 'key.rotated', actor: issuerActor, action: `retire ${k} key`, created: [] },
        { event: 'key.rotated', actor: issuerActor, action: `activate ${k} key`, created: [] },
      ]),
  },
];

describe('every state change leaves exactly one record with the right actor, principal, task and lineage', () => {
  // The rows share one world and run in order (each builds on the last), as one flow.
  it.each(rows.map((r) => [r.name, r] as const))('%s', async (_n, r) => {
    const got = await during(r.step);
    const want = r.want();
    expect(got.map((g) => g.event)).toEqual(want.map((x) => x.event));
    for (let i = 0; i < want.length; i++) expect(got[i]).toMatchObject(want[i]!);
    for (const g of got) {
      // Actor and principal are separate fields, also when the principal acts directly.
      expect(Object.keys(g)).toEqual(expect.arrayContaining(['actor', 'principal']));
      // No secret of the flow: no join token, grant or writ text.
      const text = JSON.stringify(g);
      expect(text).not.toMatch(/[0-9a-f]{16}\.[A-Za-z0-9_-]{43}/);
      for (const s of [st.root, st.wa, st.wb, st.wc, st.g1, st.g2]) if (s) expect(text).not.toContain(s.slice(0, 40));
    }
  });

  it('each id the flow created is in exactly one record', async () => {
    const all = (await w.store.listAuditRecords(0, 1000)).map((r) => parseRecord(r.canonical));
    const ids = all.flatMap((r) => r.created);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
