/** Cedar policy snapshots and decisions: validation on push, escalate derived from two evaluations, errors deny. */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { describe, expect, it } from 'vitest';
import { buildSnapshot, splitPolicies, snapshotDigest } from '../../src/policy/snapshot.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { delegateRequests, receiveRequests } from '../../src/policy/requests.js';

const BASE = `
@id("eng-may-delegate")
permit(principal, action == Writ::Action::"delegate", resource)
when { principal.groups.contains("eng") && resource.resource like "repo://acme/*" };

@id("no-secrets")
forbid(principal, action, resource) when { resource.resource like "repo://acme/secrets*" };

@id("prod-needs-approval") @escalate("production deploys need approval")
forbid(principal, action == Writ::Action::"delegate", resource) when { resource.action == "deploy:prod" };

@id("agents-receive")
permit(principal, action == Writ::Action::"receive", resource) when { principal.trustDomain == "example.org" };
`;

const snap = buildSnapshot(splitPolicies([{ name: 'base.cedar', text: BASE }]));
const engine = new PolicyEngine();
const alice = { iss: 'https://idp', sub: 'alice', groups: ['eng'] };
const task = { id: 't1', goal: 'g', lifetimeSeconds: 600 };
const decide = (p: typeof alice, action: string, resource: string) => engine.decideAll(snap, delegateRequests(p, [{ action, resource }], task, 2));

describe('policy snapshots', () => {
  it('are addressed by a digest of their content, independent of file order', () => {
    const parts = splitPolicies([{ name: 'base.cedar', text: BASE }]);
    expect(snapshotDigest([...parts].reverse())).toBe(snap.digest);
    expect(snap.policies.map((p) => p.id)).toEqual(['eng-may-delegate', 'no-secrets', 'prod-needs-approval', 'agents-receive']);
    expect(snap.policies.find((p) => p.id === 'prod-needs-approval')?.escalate).toBe('production deploys need approval');
    const changed = splitPolicies([{ name: 'base.cedar', text: BASE.replace('acme', 'acme2') }]);
    expect(snapshotDigest(changed)).not.toBe(snap.digest);
  });

  it.each([
    ['an unknown attribute', 'permit(principal, action, resource) when { principal.nope == 1 };', /nope/],
    ['an unknown entity type', 'permit(principal is Writ::Robot, action, resource);', /Robot/],
    ['a type error', 'forbid(principal, action, resource) when { resource.action > 3 };', /./],
    ['a syntax error', 'permit(principal action resource);', /./],
    ['@escalate on a permit', '@escalate("x") permit(principal, action, resource);', /only to forbid/],
    ['a duplicate id', '@id("a") permit(principal, action, resource);\n@id("a") forbid(principal, action, resource);', /used twice/],
  ])('refuses %s at push, listing it', (_n, text, re) => {
    expect(() => buildSnapshot(splitPolicies([{ name: 'x.cedar', text }]))).toThrow(
      expect.objectContaining({ code: 'ERR_POLICY_INVALID', message: expect.stringMatching(re) }),
    );
  });
});

describe('policy decisions', () => {
  it('permit = scope: allowed, with the determining policy and the snapshot', () => {
    expect(decide(alice, 'repo:read', 'repo://acme/widgets')).toEqual({
      decision: 'allow',
      snapshot: snap.digest,
      policies: ['eng-may-delegate'],
      reason: 'permitted',
    });
  });

  it('forbid = boundary: denied, naming the forbid', () => {
    expect(decide(alice, 'repo:read', 'repo://acme/secrets')).toMatchObject({ decision: 'deny', policies: ['no-secrets'] });
  });

  it('escalatable forbid: escalate with its reason', () => {
    expect(decide(alice, 'deploy:prod', 'repo://acme/widgets')).toMatchObject({
      decision: 'escalate',
      policies: ['prod-needs-approval'],
      reason: 'production deploys need approval',
    });
  });

  it('a request no permit covers is a deny, not an escalation, even when an escalatable forbid matches', () => {
    expect(decide({ ...alice, groups: [] }, 'deploy:prod', 'repo://acme/widgets')).toMatchObject({ decision: 'deny', reason: 'no policy permits this' });
  });

  it('an escalatable and a plain forbid together: deny', () => {
    expect(decide(alice, 'deploy:prod', 'repo://acme/secrets')).toMatchObject({ decision: 'deny', policies: ['no-secrets'] });
  });

  it('a forbid whose evaluation errors denies (Cedar alone would skip it and allow)', () => {
    // Validates (types are fine) but overflows at run time for depth >= 1.
    const text = `${BASE}\n@id("overflowing") forbid(principal, action, resource) when { context.depth * 9223372036854775807 * 2 > 0 };`;
    const s2 = buildSnapshot(splitPolicies([{ name: 'x.cedar', text }]));
    const agent = { spiffeId: 'spiffe://example.org/a', trustDomain: 'example.org', path: '/a', selectors: [], evidenceType: 'tpm' };
    const d0 = engine.decideAll(s2, receiveRequests(agent, alice, [{ action: 'repo:read', resource: 'repo://acme/x' }], task, 0, 2));
    expect(d0.decision).toBe('allow');
    const d1 = engine.decideAll(s2, receiveRequests(agent, alice, [{ action: 'repo:read', resource: 'repo://acme/x' }], task, 1, 2));
    expect(d1).toMatchObject({ decision: 'deny', reason: expect.stringMatching(/policy evaluation failed, denied: overflowing/) });
    // What Cedar itself answers for the same request: allow, the erroring forbid skipped.
    const req = receiveRequests(agent, alice, [{ action: 'repo:read', resource: 'repo://acme/x' }], task, 1, 2)[0]!;
    const raw = cedar.isAuthorized({
      principal: req.principal.uid,
      action: { type: 'Writ::Action', id: 'receive' },
      resource: req.resource.uid,
      context: req.context,
      entities: [req.principal, req.resource],
      policies: { staticPolicies: Object.fromEntries(s2.policies.map((p) => [p.id, p.text])) },
    });
    expect(raw.type === 'success' && raw.response.decision).toBe('allow');
    expect(raw.type === 'success' && raw.response.diagnostics.errors.map((e) => e.policyId)).toEqual(['overflowing']);
  });

  it('the strictest answer wins across permissions', () => {
    const d = engine.decideAll(
      snap,
      delegateRequests(
        alice,
        [
          { action: 'repo:read', resource: 'repo://acme/w' },
          { action: 'deploy:prod', resource: 'repo://acme/w' },
        ],
        task,
        2,
      ),
    );
    expect(d.decision).toBe('escalate');
  });
});
