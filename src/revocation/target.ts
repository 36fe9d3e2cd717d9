/**
 * What can be revoked, and which writs a revocation kills. A revocation names a target of one
 * kind; a writ dies when its own contents match the target, or when it was delegated (at any
 * depth) from a writ that died: every hop grant names the writ it was made from (`from.writ`),
 * the delegating agent (`from.sub`) and the key it was made for (`dlg.jkt`), so a relying party
 * decides from the writ alone, offline (docs/writ-format.md §Revocation). What a writ does not
 * carry (its registration entry; for an attested platform, the writs delegated from the agents
 * on it) the issuer resolves into the writs it kills, and publishes as revocations of those.
 */
import { RevocationError } from '../errors.js';
import { TASK_ID } from '../delegation/grant.js';
import { isJkt } from '../jose/jws.js';
import { parseSpiffeId } from '../spiffe/id.js';
import type { WritClaims } from '../writ/writ.js';
import type { Grant } from '../delegation/grant.js';

export const REVOCATION_KINDS = ['grant', 'task', 'principal', 'agent', 'key', 'writ', 'entry', 'platform'] as const;
export type RevocationKind = (typeof REVOCATION_KINDS)[number];

export interface RevocationTarget {
  readonly kind: RevocationKind;
  /** grant jti, task id, `iss#sub`, SPIFFE ID, key thumbprint, writ jti, entry id, or a platform selector (`tpm:ek_hash:<hex>`). */
  readonly id: string;
}

/** Longest reason an operator, principal or agent may give, bytes. */
export const MAX_REASON_BYTES = 512;

const B64U_ID = /^[A-Za-z0-9_-]{16,64}$/;
const ENTRY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A platform is named by the selector that identifies the hardware: `type:value`, printable, no spaces. */
const PLATFORM = /^[a-z][a-z0-9_]{0,31}:[\x21-\x7e]{1,256}$/;

const bad = (msg: string): never => {
  throw new RevocationError('ERR_REVOCATION_INVALID', `revocation: ${msg}`);
};

/** Parses and checks a target; the id must be in the exact form the writ or the issuer uses. */
export function parseRevocationTarget(kind: string, id: string): RevocationTarget {
  if (!(REVOCATION_KINDS as readonly string[]).includes(kind))
    bad(`unknown target kind ${JSON.stringify(kind.slice(0, 32))} (want ${REVOCATION_KINDS.join(', ')})`);
  const k = kind as RevocationKind;
  switch (k) {
    case 'grant':
    case 'writ':
      if (!B64U_ID.test(id)) bad(`a ${k} id is 16..64 base64url characters`);
      break;
    case 'task':
      if (!TASK_ID.test(id)) bad('a task id is 1..128 ASCII letters, digits or . _ : - (starting with a letter or digit)');
      break;
    case 'principal': {
      const hash = id.lastIndexOf('#');
      if (hash <= 0 || hash === id.length - 1 || id.length > 2048 || /[\x00-\x20\x7f]/.test(id)) bad('a principal is ISSUER#SUBJECT, as writs name it');
      break;
    }
    case 'agent':
      try {
        if (parseSpiffeId(id).path === '') bad('an agent is a SPIFFE ID with a path');
      } catch (e) {
        if (e instanceof RevocationError) throw e;
        bad(`an agent is a SPIFFE ID: ${(e as Error).message}`);
      }
      break;
    case 'key':
      if (!isJkt(id)) bad('a key is its RFC 7638 thumbprint (43 canonical base64url characters)');
      break;
    case 'entry':
      if (!ENTRY_ID.test(id)) bad('an entry id is a lower-case UUID');
      break;
    case 'platform':
      if (!PLATFORM.test(id)) bad('a platform is the selector that names it, e.g. tpm:ek_hash:<hex>');
      break;
  }
  return { kind: k, id };
}

export const formatTarget = (t: RevocationTarget): string => `${t.kind}:${t.id}`;

/** The facts of a writ a revocation can match, including those of every delegation above it. */
export interface WritFacts {
  readonly jti: string;
  readonly sub: string;
  readonly jkt: string;
  readonly taskId: string;
  readonly principal: string;
  readonly lineage: readonly string[];
  /** SPIFFE IDs of the delegating agents above it (each hop's `from.sub`). */
  readonly delegators: readonly string[];
  /** Writs it was delegated from (each hop's `from.writ`). */
  readonly ancestors: readonly string[];
  /** Keys of the holders above it (each grant's `dlg.jkt` but the last). */
  readonly ancestorKeys: readonly string[];
  /** Attested selectors (`type:value`), for platform revocations. */
  readonly selectors: readonly string[];
  /** The registration entry (`reg`), when the writ names it. */
  readonly entry?: string;
}

/** The facts of a parsed writ; `grants` are its parsed grants, root first. */
export function writFacts(c: WritClaims, grants: readonly Grant[]): WritFacts {
  const hops = grants.slice(1).map((g) => g.claims.from!);
  return {
    jti: c.jti,
    sub: c.sub,
    jkt: c.cnf.jkt,
    taskId: c.task.id,
    principal: `${c.principal.iss}#${c.principal.sub}`,
    lineage: c.lineage,
    delegators: hops.map((f) => f.sub),
    ancestors: hops.map((f) => f.writ),
    ancestorKeys: grants.slice(0, -1).map((g) => g.claims.dlg.jkt),
    selectors: c.att.sel,
    ...(c.reg !== undefined ? { entry: c.reg } : {}),
  };
}

/** The `kind:target` keys of every revocation that would kill a writ with these facts. */
export function revocationKeys(f: WritFacts): string[] {
  return [
    `writ:${f.jti}`,
    ...f.ancestors.map((j) => `writ:${j}`),
    ...f.lineage.map((g) => `grant:${g}`),
    `task:${f.taskId}`,
    `principal:${f.principal}`,
    `agent:${f.sub}`,
    ...f.delegators.map((a) => `agent:${a}`),
    `key:${f.jkt}`,
    ...f.ancestorKeys.map((k) => `key:${k}`),
    ...f.selectors.map((sel) => `platform:${sel}`),
    ...(f.entry !== undefined ? [`entry:${f.entry}`] : []),
  ];
}

/** Does revoking `t` kill a writ with these facts? */
export function matches(t: RevocationTarget, f: WritFacts): boolean {
  switch (t.kind) {
    case 'grant':
      return f.lineage.includes(t.id);
    case 'task':
      return f.taskId === t.id;
    case 'principal':
      return f.principal === t.id;
    case 'agent':
      return f.sub === t.id || f.delegators.includes(t.id);
    case 'key':
      return f.jkt === t.id || f.ancestorKeys.includes(t.id);
    case 'writ':
      return f.jti === t.id || f.ancestors.includes(t.id);
    case 'platform':
      return f.selectors.includes(t.id);
    case 'entry':
      // Writs delegated from one under the entry do not name it: the issuer publishes those by jti.
      return f.entry === t.id;
  }
}
