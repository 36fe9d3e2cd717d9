/**
 * Policy snapshots: a Cedar policy set, split into single policies with stable ids, validated
 * against writ's schema (strict mode, every error reported), and addressed by the SHA-256 of
 * its canonical encoding so that the same policies always have the same digest.
 * UNTRUSTED input (operator-supplied policy text) enters here. Errors name the file, line and
 * column (`acme.cedar:3:12: …`), from the UTF-8 byte offsets cedar-wasm reports; lines and
 * columns count from 1, columns in characters (Unicode code points).
 */
import { createHash } from 'node:crypto';
import * as cedar from './cedar.js';
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
  /** Where the policy starts in the file it came from (set by splitPolicies), for error positions. */
  readonly source?: PolicySource;
}

/** A position in a policy file: line and column from 1, columns in characters. */
export interface PolicySource {
  readonly file: string;
  readonly line: number;
  readonly column: number;
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

/** Line and column of UTF-8 byte offsets into one text (cedar-wasm's source locations are byte offsets). */
class Locator {
  private readonly bytes: Buffer;
  /** Byte offset at which each line starts. */
  private readonly lines: number[] = [0];
  constructor(text: string) {
    this.bytes = Buffer.from(text, 'utf8');
    for (let i = this.bytes.indexOf(0x0a); i !== -1; i = this.bytes.indexOf(0x0a, i + 1)) this.lines.push(i + 1);
  }
  at(byteOffset: number): { line: number; column: number } {
    const off = Math.min(Math.max(0, Math.trunc(byteOffset)), this.bytes.length);
    let lo = 0;
    let hi = this.lines.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lines[mid]! <= off) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: [...this.bytes.subarray(this.lines[lo]!, off).toString('utf8')].length + 1 };
  }
}

/** One cedar-wasm error as `<where>: message (label)`; `place` turns its first source offset into `<where>`. */
function describe(e: cedar.DetailedError, place: (byteOffset: number) => string, fallback: string): string {
  const loc = e.sourceLocations?.[0];
  const label = loc?.label ? ` (${loc.label})` : '';
  return `${loc ? place(loc.start) : fallback}: ${e.message}${label}`;
}

/** `<where>` for an offset into a policy's own text: its file position when known, else within the policy. */
function placeInPolicy(p: PolicyText, at: Locator, byteOffset: number): string {
  const { line, column } = at.at(byteOffset);
  if (!p.source) return `${p.id} (line ${line}, column ${column})`;
  const fileLine = p.source.line + line - 1;
  const fileColumn = line === 1 ? p.source.column + column - 1 : column;
  return `${p.source.file}:${fileLine}:${fileColumn}: ${p.id}`;
}

/**
 * Where each of a file's policies (verbatim substrings, in order) starts: the first character
 * after the previous policy that is neither whitespace nor inside a `//` comment, which is
 * all Cedar allows between policies. Undefined from the first part not found there.
 */
function partSources(file: string, text: string, parts: readonly string[]): Array<PolicySource | undefined> {
  const at = new Locator(text);
  const out: Array<PolicySource | undefined> = [];
  let pos = 0;
  let byte = 0;
  let lost = false;
  for (const part of parts) {
    let q = pos;
    for (;;) {
      if (q < text.length && /\s/.test(text[q]!)) q++;
      else if (text.startsWith('//', q)) {
        const nl = text.indexOf('\n', q);
        q = nl === -1 ? text.length : nl + 1;
      } else break;
    }
    lost ||= !text.startsWith(part, q);
    if (lost) {
      out.push(undefined);
      continue;
    }
    byte += Buffer.byteLength(text.slice(pos, q));
    out.push({ file, ...at.at(byte) });
    byte += Buffer.byteLength(part);
    pos = q + part.length;
  }
  return out;
}

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
      const at = new Locator(f.text);
      for (const e of parts.errors)
        problems.push(
          describe(
            e,
            (off) => {
              const { line, column } = at.at(off);
              return `${f.name}:${line}:${column}`;
            },
            f.name,
          ),
        );
      continue;
    }
    if (parts.policy_templates.length > 0) problems.push(`${f.name}: policy templates are not supported`);
    const sources = partSources(f.name, f.text, parts.policies);
    parts.policies.forEach((text, n) => {
      const json = cedar.policyToJson(text);
      const id = json.type === 'success' ? json.json.annotations?.id : undefined;
      const source = sources[n];
      out.push({ id: id ?? `${f.name.replace(/\.cedar$/, '')}.${n}`, text, ...(source ? { source } : {}) });
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
      const at = new Locator(p.text);
      for (const e of json.errors) problems.push(describe(e, (off) => placeInPolicy(p, at, off), p.id));
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
    else {
      const byId = new Map(policies.map((p) => [p.id, p]));
      for (const e of v.validationErrors) {
        const p = byId.get(e.policyId);
        problems.push(p ? describe(e.error, (off) => placeInPolicy(p, new Locator(p.text), off), p.id) : `${e.policyId}: ${e.error.message}`);
      }
    }
  }
  if (problems.length) throw new PolicyError('ERR_POLICY_INVALID', `policy: ${problems.length} problem(s): ${problems.join('; ')}`);
  return { digest: snapshotDigest(out), policies: out };
}
