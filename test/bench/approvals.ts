/**
 * `BENCH_ONLY=approvals`: escalation requests per second through the whole issuer path
 * (Approvals.escalate: writ and proof verification, the store's writ and revocation lookups,
 * two Cedar decisions, the request, decision and audit record in one SQLite transaction), as a
 * ratio to the bare Cedar decision of the same escalation (decideAll of its delegate and receive
 * requests) measured in the same run. Proofs are made before the timed part (the agent's cost).
 * Then approval-click.ts: approvals_click_to_writ_p50/p99_ms, from Approve to the renewed writ.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { escalateMethod } from '../../src/writ/proof-methods.js';
import { escalationRequests } from '../../src/policy/requests.js';
import { trustDomainId } from '../../src/spiffe/id.js';
import { createProof } from '../../src/writ/proof.js';
import { issuanceWorld, newAgent, TD } from '../helpers/issuance.js';
import { approvalClickBench } from './approval-click.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;

const REQUESTS = Number(process.env.BENCH_APPROVAL_REQUESTS ?? 500);

export async function approvalsBench(record: Record): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-approvals-'));
  // One writ asks REQUESTS times: the pending caps raised to let it (their checks still run).
  const w = await issuanceWorld({ storePath: join(dir, 'w.db'), approvalLimits: { maxPendingPerWrit: REQUESTS, maxPendingPerTask: REQUESTS } });
  try {
    const sel = ['fake:agent:bench'];
    await w.register('/agent/bench', sel);
    const agent = newAgent();
    const g = await w.grants.create(w.grantRequest(agent, { ttlSeconds: 3600 }));
    const writ = (await w.attest(agent, { grants: [g.grant], sel })).writ!;
    const perms = Array.from({ length: REQUESTS }, (_, i) => ({ action: 'repo:write', resource: `repo://acme/r${i}` }));

    // Floor: the Cedar decision alone, for the same agent, principal and permissions.
    const snapshot = await w.policies.active();
    const agentInfo = { spiffeId: 'spiffe://example.org/agent/bench', trustDomain: TD, path: '/agent/bench', selectors: sel, evidenceType: 'fake' };
    const principal = { iss: w.idp.issuer, sub: 'alice', groups: ['eng'] };
    const task = { id: 'task-1', goal: 'triage open issues', lifetimeSeconds: 3600 };
    for (let i = 0; i < 200; i++) w.engine.decideAll(snapshot, escalationRequests(agentInfo, principal, perms[i % REQUESTS]!, task, 0, 2));
    let t = performance.now();
    for (let i = 0; i < REQUESTS * 4; i++) {
      const d = w.engine.decideAll(snapshot, escalationRequests(agentInfo, principal, perms[i % REQUESTS]!, task, 0, 2));
      if (d.decision !== 'allow') throw new Error(`bench: the floor decided ${d.decision}`);
    }
    const floor = (REQUESTS * 4) / ((performance.now() - t) / 1000);

    const proofs = perms.map((p) =>
      createProof(writ, agent.key, { audience: trustDomainId(TD), method: escalateMethod(p.action, p.resource), now: w.clock.now() }),
    );
    t = performance.now();
    for (let i = 0; i < REQUESTS; i++) {
      const v = await w.approvals.escalate({ writ, proof: proofs[i]!, ...perms[i]!, reason: 'bench' });
      if (v.state !== 'pending') throw new Error('bench: the escalation was not recorded as pending');
    }
    const value = REQUESTS / ((performance.now() - t) / 1000);
    record(
      'approvals_escalate_per_s',
      Math.round(value),
      `escalation requests/s (writ + proof verified, two Cedar decisions, request + decision + audit record in one SQLite file transaction; ${REQUESTS} one at a time)`,
      Math.round(floor),
    );
    record('approvals_cedar_floor_per_s', Math.round(floor), 'the same escalations decided by Cedar alone (decideAll of delegate + receive), same run');
  } finally {
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  }
  await approvalClickBench(record);
}
