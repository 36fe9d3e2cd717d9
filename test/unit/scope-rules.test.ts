/**
 * The scope language (src/delegation/scope.ts, docs/writ-format.md §Scope language): its
 * grammar, its size limits, covering, attenuation and the authorize decision, each pinned at
 * the boundary it enforces (`make mutate`, docs/testing.md).
 */
import { describe, expect, it } from 'vitest';
import {
  MAX_ACTION_BYTES,
  MAX_PERMISSIONS,
  MAX_RESOURCE_BYTES,
  authorizeAction,
  checkAttenuation,
  formatPermission,
  parsePermissionFlag,
  parsePermissions,
  patternCovers,
  patternMatches,
  permissionCovers,
  uncovered,
  type Constraints,
} from '../../src/delegation/scope.js';

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}

const one = (action: unknown, resource: unknown = 'r') => parsePermissions([{ action, resource }], 'scope');
const invalid = (what: string, v: unknown) =>
  `delegation: scope ${what} ${JSON.stringify(v)?.slice(0, 60)} is not a valid pattern (see docs/writ-format.md, scope language)`;

describe('scope language: grammar', () => {
  it.each(['repo:read', 'repo:*', '*', 'a', '0', 'a.b_c-d:e', 'repo:read*'])('accepts the action pattern %j', (a) => {
    expect(one(a)).toEqual([{ action: a, resource: 'r' }]);
  });

  it.each(['', 'Repo:read', ':read', '-x', '.x', '_x', 'repo read', 'repo:*x', '**', 'a**', '*a', 're*po', 'repo/read', 'répo', 'repo:read\n'])(
    'refuses the action pattern %j',
    (a) => {
      expect(refusal(() => one(a))).toMatchObject({ code: 'ERR_GRANT_INVALID', message: invalid('action', a) });
    },
  );

  it.each(['repo://acme/widgets', 'repo://acme/*', '*', '!', '~', 'a(b)', 'x+y', 'a=b', "it's"])('accepts the resource pattern %j', (r) => {
    expect(one('a', r)).toEqual([{ action: 'a', resource: r }]);
  });

  it.each(['', 'a b', 'a*b', '**', '*x', 'a\tb', 'a\u007fb', 'ü', 'a\u0000'])('refuses the resource pattern %j', (r) => {
    expect(refusal(() => one('a', r))).toMatchObject({ code: 'ERR_GRANT_INVALID', message: invalid('resource', r) });
  });

  it('refuses patterns that are not strings, quoting what it got', () => {
    expect(refusal(() => one(7))).toMatchObject({ message: invalid('action', 7) });
    expect(refusal(() => one('a', null))).toMatchObject({ message: invalid('resource', null) });
    expect(refusal(() => one(undefined)).message).toBe('delegation: scope action undefined is not a valid pattern (see docs/writ-format.md, scope language)');
  });

  it('quotes at most 60 characters of a refused pattern', () => {
    const long = `A${'a'.repeat(200)}`;
    expect(refusal(() => one(long)).message).toBe(
      `delegation: scope action ${JSON.stringify(long).slice(0, 60)} is not a valid pattern (see docs/writ-format.md, scope language)`,
    );
  });
});

describe('scope language: size limits', () => {
  it(`accepts an action of MAX_ACTION_BYTES (${MAX_ACTION_BYTES}), refuses one longer`, () => {
    expect(one('a'.repeat(MAX_ACTION_BYTES))[0]!.action).toHaveLength(MAX_ACTION_BYTES);
    expect(refusal(() => one('a'.repeat(MAX_ACTION_BYTES + 1))).code).toBe('ERR_GRANT_INVALID');
  });

  it(`accepts a resource of MAX_RESOURCE_BYTES (${MAX_RESOURCE_BYTES}), refuses one longer`, () => {
    expect(one('a', 'r'.repeat(MAX_RESOURCE_BYTES))[0]!.resource).toHaveLength(MAX_RESOURCE_BYTES);
    expect(refusal(() => one('a', 'r'.repeat(MAX_RESOURCE_BYTES + 1))).code).toBe('ERR_GRANT_INVALID');
  });

  it(`accepts MAX_PERMISSIONS (${MAX_PERMISSIONS}) permissions in a list, refuses one more`, () => {
    const list = (n: number) => Array.from({ length: n }, (_, i) => ({ action: `a${i}`, resource: 'r' }));
    expect(parsePermissions(list(MAX_PERMISSIONS), 'scope')).toHaveLength(MAX_PERMISSIONS);
    expect(refusal(() => parsePermissions(list(MAX_PERMISSIONS + 1), 'boundaries'))).toMatchObject({
      code: 'ERR_GRANT_INVALID',
      message: `delegation: boundaries has more than ${MAX_PERMISSIONS} permissions`,
    });
  });

  it('refuses a list that is not an array, and members that are not {action, resource}', () => {
    expect(refusal(() => parsePermissions({ action: 'a', resource: 'r' }, 'escalate')).message).toBe('delegation: escalate must be an array');
    for (const p of [null, 'a=r', ['a', 'r'], { action: 'a', resource: 'r', when: 'always' }, 3]) {
      expect(refusal(() => parsePermissions([p], 'escalate')).message, JSON.stringify(p)).toBe('delegation: each of escalate must be {"action", "resource"}');
    }
  });

  it('keeps only action and resource', () => {
    expect(parsePermissions([{ resource: 'r', action: 'a' }], 'scope')).toEqual([{ action: 'a', resource: 'r' }]);
    expect(parsePermissions([], 'scope')).toEqual([]);
  });
});

describe('scope language: ACTION=RESOURCE flags', () => {
  it('splits at the first = (resources may hold one)', () => {
    expect(parsePermissionFlag('repo:read=repo://acme/x=y')).toEqual({ action: 'repo:read', resource: 'repo://acme/x=y' });
  });

  it.each(['=repo://x', 'repo:read', ''])('refuses %j', (s) => {
    expect(refusal(() => parsePermissionFlag(s))).toMatchObject({ code: 'ERR_GRANT_INVALID', message: `delegation: "${s}" is not ACTION=RESOURCE` });
  });

  it('checks both halves with the grammar', () => {
    expect(refusal(() => parsePermissionFlag('Repo=x')).message).toBe(
      'delegation: permission action "Repo" is not a valid pattern (see docs/writ-format.md, scope language)',
    );
    expect(refusal(() => parsePermissionFlag('repo=')).message).toBe(
      'delegation: permission resource "" is not a valid pattern (see docs/writ-format.md, scope language)',
    );
  });
});

describe('scope language: covering and matching', () => {
  it.each<[string, string, boolean]>([
    ['repo:*', 'repo:read', true],
    ['repo:*', 'repo:*', true],
    ['repo:*', 'repo:read*', true],
    ['repo:*', 'repo:', true],
    ['repo:*', 'rep*', false],
    ['repo:*', 'repo', false],
    ['repo:read', 'repo:read', true],
    ['repo:read', 'repo:*', false],
    ['repo:read', 'repo:read2', false],
    ['repo:rea', 'repo:read', false],
    ['*', 'anything', true],
    ['*', '*', true],
    ['a*', '*', false],
  ])('patternCovers(%j, %j) is %s', (outer, inner, expected) => {
    expect(patternCovers(outer, inner)).toBe(expected);
  });

  it.each<[string, string, boolean]>([
    ['repo:*', 'repo:read', true],
    ['repo:*', 'repo:', true],
    ['repo:*', 'repo', false],
    ['repo:*', 'xrepo:read', false],
    ['repo:read', 'repo:read', true],
    ['repo:read', 'repo:read2', false],
    ['repo:read', 'repo:rea', false],
    ['*', 'x', true],
  ])('patternMatches(%j, %j) is %s', (pattern, value, expected) => {
    expect(patternMatches(pattern, value)).toBe(expected);
  });

  it('a permission covers another only when both its action and its resource do', () => {
    const outer = { action: 'repo:*', resource: 'repo://acme/*' };
    expect(permissionCovers(outer, { action: 'repo:read', resource: 'repo://acme/x' })).toBe(true);
    expect(permissionCovers(outer, { action: 'ci:run', resource: 'repo://acme/x' })).toBe(false);
    expect(permissionCovers(outer, { action: 'repo:read', resource: 'repo://other/x' })).toBe(false);
  });

  it('uncovered names the first permission no single outer permission covers', () => {
    const outer = [
      { action: 'repo:read', resource: '*' },
      { action: '*', resource: 'repo://acme/*' },
    ];
    const a = { action: 'repo:read', resource: 'repo://other/x' };
    const b = { action: 'repo:write', resource: 'repo://other/x' };
    const c = { action: 'ci:run', resource: 'repo://other/y' };
    expect(uncovered(outer, [a, b, c])).toEqual(b);
    expect(uncovered(outer, [a])).toBeUndefined();
    expect(uncovered([], [])).toBeUndefined();
    expect(uncovered([], [a])).toEqual(a);
    expect(formatPermission(b)).toBe('repo:write=repo://other/x');
  });
});

describe('scope language: attenuation', () => {
  const parent: Constraints = {
    scope: [{ action: 'repo:*', resource: 'repo://acme/*' }],
    boundaries: [{ action: '*', resource: 'repo://acme/secrets*' }],
    escalate: [{ action: 'repo:delete', resource: '*' }],
  };

  it('accepts the same constraints, a narrower scope, wider boundaries and more escalation rules', () => {
    expect(() => checkAttenuation(parent, parent, 1)).not.toThrow();
    expect(() =>
      checkAttenuation(
        parent,
        {
          scope: [{ action: 'repo:read', resource: 'repo://acme/w' }],
          boundaries: [{ action: '*', resource: 'repo://acme/*' }],
          escalate: [...parent.escalate, { action: 'repo:write', resource: '*' }],
        },
        1,
      ),
    ).not.toThrow();
  });

  it('refuses a widened scope, a dropped boundary, a dropped escalation rule, naming the hop and the permission', () => {
    expect(refusal(() => checkAttenuation(parent, { ...parent, scope: [{ action: 'repo:read', resource: 'repo://*' }] }, 3))).toMatchObject({
      code: 'ERR_GRANT_INVALID',
      message: "delegation: grant 3 widens the scope: repo:read=repo://* is not inside its parent's scope",
    });
    expect(refusal(() => checkAttenuation(parent, { ...parent, boundaries: [{ action: 'repo:read', resource: 'repo://acme/secrets*' }] }, 2)).message).toBe(
      'delegation: grant 2 drops the boundary *=repo://acme/secrets* of its parent',
    );
    expect(refusal(() => checkAttenuation(parent, { ...parent, escalate: [{ action: 'repo:delete', resource: 'repo://acme/*' }] }, 1)).message).toBe(
      'delegation: grant 1 drops the escalation rule repo:delete=* of its parent',
    );
  });
});

describe('scope language: authorize', () => {
  const c: Constraints = {
    scope: [
      { action: 'repo:*', resource: 'repo://acme/*' },
      { action: 'ci:run', resource: '*' },
    ],
    boundaries: [{ action: '*', resource: 'repo://acme/secrets*' }],
    escalate: [{ action: 'repo:delete', resource: '*' }],
  };

  it('allows inside the scope, naming the permission that allowed it', () => {
    expect(authorizeAction(c, 'repo:read', 'repo://acme/widgets')).toEqual({ decision: 'allow', matched: c.scope[0] });
    expect(authorizeAction(c, 'ci:run', 'pipeline://x')).toEqual({ decision: 'allow', matched: c.scope[1] });
  });

  it('denies a boundary even inside the scope', () => {
    expect(authorizeAction(c, 'repo:read', 'repo://acme/secrets/prod')).toEqual({ decision: 'deny', reason: 'boundary', matched: c.boundaries[0] });
  });

  it('denies outside the scope', () => {
    expect(authorizeAction(c, 'repo:read', 'repo://other/x')).toEqual({ decision: 'deny', reason: 'outside-scope' });
    expect(authorizeAction({ scope: [], boundaries: [], escalate: [] }, 'a', 'b')).toEqual({ decision: 'deny', reason: 'outside-scope' });
  });

  it('needs an approver for an escalation rule inside the scope, but a boundary still wins', () => {
    expect(authorizeAction(c, 'repo:delete', 'repo://acme/widgets')).toEqual({ decision: 'escalate', matched: c.escalate[0] });
    expect(authorizeAction(c, 'repo:delete', 'repo://acme/secrets')).toMatchObject({ decision: 'deny', reason: 'boundary' });
    // Outside the scope an escalation rule does not turn a deny into an escalation.
    expect(authorizeAction(c, 'repo:delete', 'repo://other/x')).toEqual({ decision: 'deny', reason: 'outside-scope' });
  });

  const action = 'delegation: the action must be a concrete action name';
  const resource = 'delegation: the resource must be concrete (printable ASCII, no spaces, no "*")';
  it.each([['repo:*'], ['*'], ['Repo:read'], [''], [' repo:read'], ['repo:read '], ['a'.repeat(MAX_ACTION_BYTES + 1)]])(
    'refuses to authorize the action %j',
    (a) => {
      expect(refusal(() => authorizeAction(c, a, 'repo://acme/x'))).toMatchObject({ code: 'ERR_GRANT_INVALID', message: action });
    },
  );

  it.each([['repo://acme/*'], [''], ['a b'], [' x'], ['x '], ['r'.repeat(MAX_RESOURCE_BYTES + 1)], ['ü']])('refuses to authorize the resource %j', (r) => {
    expect(refusal(() => authorizeAction(c, 'repo:read', r))).toMatchObject({ code: 'ERR_GRANT_INVALID', message: resource });
  });

  it('authorizes values at the size limits', () => {
    const wide: Constraints = { scope: [{ action: '*', resource: '*' }], boundaries: [], escalate: [] };
    expect(authorizeAction(wide, 'a'.repeat(MAX_ACTION_BYTES), 'r'.repeat(MAX_RESOURCE_BYTES)).decision).toBe('allow');
  });
});
