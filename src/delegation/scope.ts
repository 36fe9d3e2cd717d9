/**
 * writ's scope language: a permission is an (action, resource) pair of patterns, and a grant
 * carries three lists of them: `scope` (what is allowed), `boundaries` (what is off limits even
 * inside the scope) and `escalate` (what needs an approver). Patterns are literal strings, or a
 * literal prefix followed by one trailing `*`. That keeps the two questions delegation asks
 * decidable in time linear in the pattern lengths:
 *   - covers(P, Q): every string Q matches, P matches too (prefix test);
 *   - child ⊆ parent: each child permission is covered by one parent permission.
 * The grammar is documented in docs/writ-format.md §Scope language. UNTRUSTED input enters here.
 */
import { DelegationError } from '../errors.js';

/** Most permissions in one list. */
export const MAX_PERMISSIONS = 64;
/** Longest action pattern, bytes. */
export const MAX_ACTION_BYTES = 128;
/** Longest resource pattern, bytes. */
export const MAX_RESOURCE_BYTES = 512;

export interface Permission {
  readonly action: string;
  readonly resource: string;
}

export interface Constraints {
  readonly scope: readonly Permission[];
  readonly boundaries: readonly Permission[];
  readonly escalate: readonly Permission[];
}

/** Actions: lower-case name segments with `: . _ -`, e.g. `repo:read`; or a prefix and `*`. */
const ACTION = /^(?:[a-z0-9][a-z0-9._:-]*\*?|\*)$/;
/** Resources: printable ASCII without spaces; `*` only as the last character. */
const RESOURCE = /^[\x21-\x29\x2b-\x7e]*\*?$/;

function checkPattern(v: unknown, re: RegExp, max: number, what: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max || !re.test(v)) {
    throw new DelegationError(`delegation: ${what} ${JSON.stringify(v)?.slice(0, 60)} is not a valid pattern (see docs/writ-format.md, scope language)`);
  }
  return v;
}

/** Parses one permission list from UNTRUSTED JSON, keeping only `action` and `resource`. */
export function parsePermissions(v: unknown, what: string): Permission[] {
  if (!Array.isArray(v)) throw new DelegationError(`delegation: ${what} must be an array`);
  if (v.length > MAX_PERMISSIONS) throw new DelegationError(`delegation: ${what} has more than ${MAX_PERMISSIONS} permissions`);
  return v.map((p) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p) || Object.keys(p).some((k) => k !== 'action' && k !== 'resource')) {
      throw new DelegationError(`delegation: each of ${what} must be {"action", "resource"}`);
    }
    const r = p as Record<string, unknown>;
    return {
      action: checkPattern(r.action, ACTION, MAX_ACTION_BYTES, `${what} action`),
      resource: checkPattern(r.resource, RESOURCE, MAX_RESOURCE_BYTES, `${what} resource`),
    };
  });
}

/** "action=resource" as the CLI takes it; splits at the first `=` (actions never hold one). */
export function parsePermissionFlag(s: string): Permission {
  const eq = s.indexOf('=');
  if (eq <= 0) throw new DelegationError(`delegation: "${s}" is not ACTION=RESOURCE`);
  return parsePermissions([{ action: s.slice(0, eq), resource: s.slice(eq + 1) }], 'permission')[0]!;
}

/** True when every string `inner` matches is also matched by `outer`. */
export function patternCovers(outer: string, inner: string): boolean {
  if (!outer.endsWith('*')) return outer === inner;
  const prefix = outer.slice(0, -1);
  return inner.startsWith(prefix);
}

/** True when the concrete `value` is matched by `pattern`. */
export function patternMatches(pattern: string, value: string): boolean {
  return pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern === value;
}

export function permissionCovers(outer: Permission, inner: Permission): boolean {
  return patternCovers(outer.action, inner.action) && patternCovers(outer.resource, inner.resource);
}

/** The first permission of `inner` that no single permission of `outer` covers, if any. */
export function uncovered(outer: readonly Permission[], inner: readonly Permission[]): Permission | undefined {
  return inner.find((i) => !outer.some((o) => permissionCovers(o, i)));
}

export const formatPermission = (p: Permission): string => `${p.action}=${p.resource}`;

/**
 * The attenuation rule between a parent's and a child's constraints: scope narrows (each
 * child permission inside one parent permission), boundaries and escalation rules only grow
 * (each parent rule inside one child rule). Throws naming the first violation.
 */
export function checkAttenuation(parent: Constraints, child: Constraints, hop: number): void {
  const widened = uncovered(parent.scope, child.scope);
  if (widened) throw new DelegationError(`delegation: grant ${hop} widens the scope: ${formatPermission(widened)} is not inside its parent's scope`);
  const dropped = uncovered(child.boundaries, parent.boundaries);
  if (dropped) throw new DelegationError(`delegation: grant ${hop} drops the boundary ${formatPermission(dropped)} of its parent`);
  const unescalated = uncovered(child.escalate, parent.escalate);
  if (unescalated) throw new DelegationError(`delegation: grant ${hop} drops the escalation rule ${formatPermission(unescalated)} of its parent`);
}

export type Authorization =
  | { readonly decision: 'allow'; readonly matched: Permission /** The step-up grant (its jti) that allowed it, when one did. */; readonly approval?: string }
  | { readonly decision: 'deny'; readonly reason: 'outside-scope' | 'boundary'; readonly matched?: Permission }
  | { readonly decision: 'escalate'; readonly matched: Permission };

const CONCRETE_ACTION = /^[a-z0-9][a-z0-9._:-]*$/;
const CONCRETE_RESOURCE = /^[\x21-\x29\x2b-\x7e]+$/;

/** A permission added by an approval (a step-up grant), named by the grant's id. */
export interface ApprovedPermission {
  readonly id: string;
  readonly permission: Permission;
}

/**
 * Is `action` on `resource` allowed by these constraints? A boundary wins over everything; an
 * approved permission (a step-up grant) allows what it matches; otherwise the scope decides, and
 * an escalation rule turns an allowed request into one that needs an approver.
 */
export function authorizeAction(c: Constraints, action: string, resource: string, approved: readonly ApprovedPermission[] = []): Authorization {
  if (!CONCRETE_ACTION.test(action) || action.length > MAX_ACTION_BYTES) throw new DelegationError('delegation: the action must be a concrete action name');
  if (!CONCRETE_RESOURCE.test(resource) || resource.length > MAX_RESOURCE_BYTES)
    throw new DelegationError('delegation: the resource must be concrete (printable ASCII, no spaces, no "*")');
  const hit = (p: Permission) => patternMatches(p.action, action) && patternMatches(p.resource, resource);
  const boundary = c.boundaries.find(hit);
  if (boundary) return { decision: 'deny', reason: 'boundary', matched: boundary };
  const approval = approved.find((a) => hit(a.permission));
  if (approval) return { decision: 'allow', matched: approval.permission, approval: approval.id };
  const allowed = c.scope.find(hit);
  if (!allowed) return { decision: 'deny', reason: 'outside-scope' };
  const esc = c.escalate.find(hit);
  if (esc) return { decision: 'escalate', matched: esc };
  return { decision: 'allow', matched: allowed };
}
