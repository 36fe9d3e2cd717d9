/**
 * Policy snapshots: a Cedar policy set, split into single policies with stable ids, validated
 * against writ's schema (strict mode, every error reported), and addressed by the SHA-256 of
 * its canonical encoding so that the same policies always have the same digest.
 * UNTRUSTED input (operator-supplied policy text) enters here.
 */
import { createHash } from 'node:crypto';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { PolicyError } from '../errors.js';
import { CEDAR_SCHEMA, SCHEMA_VERSION } from './schema.js';

/** Most policies in one snapshot. */
export const MAX_POLICIES = 1000;
/** Largest policy source accepted in one push, bytes. */
export const MAX_POLICY_SOURCE_BYTES = 1024 * 1024;
/** Annotation that marks a `forbid` as escalatable; its value is the reason shown. */
export const ESCALATE_ANNOTATION = 'escalate';
const POLICY_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export interface PolicyText {
  readonly id: string;
  readonly text: string;
}

export interface SnapshotPolicy extends PolicyText {
  readonly effect: 'permit' | 'forbid';
  /** Set on an escalatable forbid: the reason an approver sees. */
  readonly escalate?: string;
}

export interface Snapshot {
  readonly digest: string;
  readonly policies: readonly SnapshotPolicy[];
}

const messages = (errors: ReadonlyArray<{ message: string }>): string => errors.map((e) => e.message).join('; ');

/**
 * Splits policy source files into policies. A policy's id is its `@id("…")` annotation, or
 * `<file>.<n>` (n counting from 0 within the file).
 */
export function splitPolicies(files: ReadonlyArray<{ name: string; text: string }>): PolicyText[] {
  const total = files.reduce((n, f) => n + Buffer.byteLength(f.text), 0);
  if (total > MAX_POLICY_SOURCE_BYTES) throw new PolicyError('ERR_POLICY_INVALID', `policy: sources exceed ${MAX_POLICY_SOURCE_BYTES} bytes`);
  const out: PolicyText[] = [];
  const problems: string[] = [];
  for (const f of files) {
    const parts = cedar.policySetTextToParts(f.text);
    if (parts.type === 'failure') {
      problems.push(`${f.name}: ${messages(parts.errors)}`);
      continue;
    }
    if (parts.policy_templates.length > 0) problems.push(`${f.name}: policy templates are not supported`);
    parts.policies.forEach((text, n) => {
      const json = cedar.policyToJson(text);
      const id = json.type === 'success' ? json.json.annotations?.id : undefined;
      out.push({ id: id ?? `${f.name.replace(/\.cedar$/, '')}.${n}`, text });
    });
  }
  if (problems.length) throw new PolicyError('ERR_POLICY_INVALID', `policy: ${problems.join('; ')}`);
  return out;
}

/** Canonical encoding: label, schema version, then (id, text) pairs sorted by id, each length-prefixed. */
export function snapshotDigest(policies: readonly PolicyText[]): string {
  const h = createHash('sha256').update('writ-policy-snapshot-v1\0');
  const field = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    h.update(len).update(b);
  };
  field(SCHEMA_VERSION);
  const sorted = [...policies].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const n = Buffer.alloc(4);
  n.writeUInt32BE(sorted.length);
  h.update(n);
  for (const p of sorted) {
    field(p.id);
    field(p.text);
  }
  return h.digest('hex');
}

/**
 * Builds a snapshot: ids unique and well-formed, every policy validated against the schema
 * (strict), escalate annotations only on forbids. Throws ERR_POLICY_INVALID listing every problem.
 */
export function buildSnapshot(policies: readonly PolicyText[]): Snapshot {
  const problems: string[] = [];
  if (policies.length === 0) problems.push('a snapshot needs at least one policy');
  if (policies.length > MAX_POLICIES) problems.push(`more than ${MAX_POLICIES} policies`);
  const seen = new Set<string>();
  const out: SnapshotPolicy[] = [];
  for (const p of policies) {
    if (!POLICY_ID.test(p.id)) problems.push(`policy id "${p.id.slice(0, 60)}" must be 1..128 of A-Z a-z 0-9 . _ : -`);
    if (seen.has(p.id)) problems.push(`policy id "${p.id}" is used twice`);
    seen.add(p.id);
    const json = cedar.policyToJson(p.text);
    if (json.type === 'failure') {
      problems.push(`${p.id}: ${messages(json.errors)}`);
      continue;
    }
    const esc = json.json.annotations?.[ESCALATE_ANNOTATION];
    if (esc !== undefined && json.json.effect !== 'forbid') problems.push(`${p.id}: @${ESCALATE_ANNOTATION} applies only to forbid policies`);
    if (esc !== undefined && esc.trim() === '')
      problems.push(`${p.id}: @${ESCALATE_ANNOTATION} needs a reason, e.g. @escalate("production deploys need approval")`);
    out.push({ id: p.id, text: p.text, effect: json.json.effect, ...(esc !== undefined ? { escalate: esc } : {}) });
  }
  if (problems.length === 0) {
    const v = cedar.validate({
      schema: CEDAR_SCHEMA,
      policies: { staticPolicies: Object.fromEntries(out.map((p) => [p.id, p.text])) },
      validationSettings: { mode: 'strict' },
    });
    if (v.type === 'failure') problems.push(messages(v.errors));
    else for (const e of v.validationErrors) problems.push(`${e.policyId}: ${e.error.message}`);
  }
  if (problems.length) throw new PolicyError('ERR_POLICY_INVALID', `policy: ${problems.length} problem(s): ${problems.join('; ')}`);
  return { digest: snapshotDigest(out), policies: out };
}
