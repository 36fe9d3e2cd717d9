/**
 * Taking credentials back (issue: "revocation that reaches the third hop"). A revocation names a
 * target (revocation/target.ts); it is recorded, with actor, principal, reason and time, in the
 * same transaction as its effect: the grant or task marked, every writ it kills marked (the
 * writs that match and every writ delegated from those), and, for targets a writ does not carry
 * (an entry, a platform), one derived writ revocation per live writ so relying parties that only
 * read writs can match it. It is permanent; revoking it again or revoking what the issuer never
 * saw changes nothing. Who may: the operator anything; a principal its own grants and tasks; an
 * agent the grants it signed (everything below them dies with them).
 */
import { createHash } from 'node:crypto';
import { appendAudit } from '../audit/log.js';
import { looksLikeSecret, MAX_AUDIT_LIST, type AuditActor } from '../audit/record.js';
import { RevocationError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { ConfigSection } from '../config/config.js';
import { parseGrantCached } from '../delegation/grant.js';
import { keyFromJwk } from '../jose/jws.js';
import { MAX_REASON_BYTES, parseRevocationTarget, type RevocationTarget } from '../revocation/target.js';
import type { NewRevocation, RevocationRecord, Store, StoreTx, WritMatch } from '../store/store.js';
import type { WritClaims } from '../writ/writ.js';

/** What the issuer spends on Watch streams (server/watch-streams.ts enforces it). */
export interface WatchLimits {
  /** Most Watch streams open at once, overall. */
  readonly maxStreams: number;
  /** Most Watch streams open at once from one peer address. */
  readonly maxStreamsPerPeer: number;
  /** Most bytes queued for all Watch streams together, beyond what their transports buffer. */
  readonly maxBufferedBytes: number;
}

/** A relying party needs one stream (two while it fails over); a cut-off stream frees its backlog at once. */
export const DEFAULT_WATCH_LIMITS: WatchLimits = { maxStreams: 20_000, maxStreamsPerPeer: 64, maxBufferedBytes: 64 * 1024 * 1024 };

/** How long revocations are kept as events after they can no longer matter, how often heartbeats go out, what Watch may spend. */
export interface RevocationSettings {
  readonly heartbeatMs: number;
  readonly retentionMs: number;
  readonly watch: WatchLimits;
}

/** The `revocation:` key of the server configuration. */
export const revocationSection: ConfigSection<RevocationSettings> = {
  key: 'revocation',
  parse(top) {
    const s = top.section('revocation').only(['heartbeat', 'retention', 'watch']);
    const w = s.section('watch').only(['max_streams', 'max_streams_per_peer', 'max_buffered_bytes']);
    const d = DEFAULT_WATCH_LIMITS;
    return {
      heartbeatMs: s.duration('heartbeat', '5s'),
      retentionMs: s.duration('retention', '168h'),
      watch: {
        maxStreams: w.int('max_streams', d.maxStreams, 1, 1_000_000),
        maxStreamsPerPeer: w.int('max_streams_per_peer', d.maxStreamsPerPeer, 1, 1_000_000),
        maxBufferedBytes: w.int('max_buffered_bytes', d.maxBufferedBytes, 64 * 1024, 2 ** 40),
      },
    };
  },
};

/** Who asks. The principal and agent have been authenticated by the caller (the service). */
export type Revoker =
  | { readonly kind: 'operator' }
  | { readonly kind: 'principal'; readonly iss: string; readonly sub: string }
  | { readonly kind: 'agent'; readonly writ: WritClaims };

export const actorOf = (r: Revoker): string =>
  r.kind === 'operator' ? 'operator' : r.kind === 'principal' ? `principal ${r.iss}#${r.sub}` : `agent ${r.writ.sub} (jkt ${r.writ.cnf.jkt})`;

/** The revoker as the audit log names it (operators by their role: the admin socket has one). */
const auditActorOf = (r: Revoker): AuditActor =>
  r.kind === 'operator'
    ? { kind: 'operator', id: 'admin' }
    : r.kind === 'principal'
      ? { kind: 'principal', iss: r.iss, sub: r.sub }
      : { kind: 'agent', spiffeId: r.writ.sub, jkt: r.writ.cnf.jkt };

/** Most live writs one entry or platform revocation resolves into writ revocations. */
export const MAX_DERIVED_REVOCATIONS = 100_000;

export interface RevokeResult {
  readonly seq: number;
  readonly at: number;
  /** Live writs it killed, descendants included. */
  readonly writs: number;
  /** Every revocation recorded (the target's, then derived ones), in sequence order. */
  readonly records: readonly RevocationRecord[];
}

/** Told of revocations once they are committed (the Watch fan-out, status list caches). */
export interface RevocationListener {
  revoked(records: readonly RevocationRecord[]): void;
}

const notFound = (t: RevocationTarget) =>
  new RevocationError('ERR_REVOCATION_NOT_FOUND', `revocation: no ${t.kind} ${t.id.slice(0, 200)} is known to this issuer`);
const denied = (msg: string) => new RevocationError('ERR_REVOCATION_DENIED', `revocation: ${msg}`);
/** One answer for a target of another caller and for one that does not exist. */
const notYours = (by: Revoker) =>
  denied(
    by.kind === 'principal'
      ? 'a principal may revoke only its own grants and tasks'
      : 'an agent may revoke only the grants it signed (not a root grant, not one signed by another key)',
  );

/** The writ column a kind matches directly. */
const MATCH: Record<RevocationTarget['kind'], WritMatch['by']> = {
  grant: 'grant',
  task: 'task',
  principal: 'principal',
  agent: 'spiffe_id',
  key: 'jkt',
  writ: 'jti',
  entry: 'entry',
  platform: 'platform',
};

interface Resolved {
  /** The principal concerned (`iss#sub`), or ''. */
  readonly principal: string;
  /** After this the target can no longer matter (Unix ms); null: never. */
  readonly expiresAt: number | null;
  /** For grants: the key that signed it (a hop's parent agent), undefined for a root grant. */
  readonly signerJkt?: string;
}

export class Revocations {
  private readonly listeners: RevocationListener[] = [];

  constructor(
    private readonly deps: {
      store: Store;
      clock: Clock;
      /** Told when a listener throws (the log); the other listeners still run. */
      onListenerError?: (e: unknown) => void;
    },
  ) {}

  /** Called, in order, after every committed revocation; one that throws does not stop the next. */
  listen(l: RevocationListener): void {
    this.listeners.push(l);
  }

  async revoke(kind: string, id: string, reason: string, by: Revoker): Promise<RevokeResult> {
    const target = parseRevocationTarget(kind, id);
    // One line of text: no control characters (a newline would forge lines where it is printed, `writ task show`).
    if (Buffer.byteLength(reason) > MAX_REASON_BYTES || /[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(reason)) {
      throw new RevocationError(
        'ERR_REVOCATION_INVALID',
        `revocation: the reason is at most ${MAX_REASON_BYTES} bytes of text on one line, without control characters`,
      );
    }
    // Reasons are public (the Watch stream, status refusals) and audited: a pasted join token or key block is refused, with the reason why.
    if (looksLikeSecret(reason)) {
      throw new RevocationError(
        'ERR_REVOCATION_INVALID',
        'revocation: the reason looks like a secret (a join token or a PEM private key block); reasons are published on the Watch stream and in the audit log',
      );
    }
    const at = this.deps.clock.now().getTime();
    const actor = actorOf(by);
    const result = await this.deps.store.transaction(async (tx) => {
      this.authorizeKind(by, target);
      let resolved: Resolved;
      try {
        resolved = await this.resolve(tx, target);
      } catch (e) {
        // Not the operator: unknown is answered as not yours, so ids of others cannot be probed.
        if (by.kind !== 'operator' && e instanceof RevocationError && e.code === 'ERR_REVOCATION_NOT_FOUND') throw notYours(by);
        throw e;
      }
      this.authorize(by, target, resolved);
      if (await tx.getRevocation(target.kind, target.id)) {
        throw new RevocationError('ERR_REVOCATION_EXISTS', `revocation: ${target.kind} ${target.id.slice(0, 200)} was revoked before`);
      }
      const base = { reason, actor, at };
      const rec: NewRevocation = {
        ...base,
        kind: target.kind,
        target: target.id,
        principal: resolved.principal,
        derivedFrom: null,
        expiresAt: resolved.expiresAt,
      };
      const seq = await tx.insertRevocation(rec);
      const records: RevocationRecord[] = [{ ...rec, seq }];
      if (target.kind === 'grant') await tx.revokeGrant(target.id, at);
      if (target.kind === 'task') await tx.endTask(target.id, at, actor, reason);
      const match: WritMatch = { by: MATCH[target.kind], value: target.id };
      if (target.kind === 'entry' || target.kind === 'platform') {
        // A writ does not carry these: publish the writs they kill by jti (descendants follow from
        // those), every one whose kill set still matters, an expired delegator with live children
        // included, kept as long as the last of them can be presented.
        for (const { writ: w, lastExpiresAt } of await tx.killRoots(match, at, MAX_DERIVED_REVOCATIONS)) {
          if (await tx.getRevocation('writ', w.jti)) continue;
          const d: NewRevocation = { ...base, kind: 'writ', target: w.jti, principal: w.principal, derivedFrom: seq, expiresAt: lastExpiresAt };
          records.push({ ...d, seq: await tx.insertRevocation(d) });
        }
      }
      const writs = await tx.revokeWrits(match, at, seq);
      const hash = resolved.principal.lastIndexOf('#');
      await appendAudit(tx, {
        at,
        event: target.kind === 'task' ? 'task.ended' : 'revocation',
        actor: auditActorOf(by),
        principal: hash > 0 ? { iss: resolved.principal.slice(0, hash), sub: resolved.principal.slice(hash + 1) } : null,
        task: target.kind === 'task' ? target.id : null,
        lineage: target.kind === 'grant' ? [target.id] : [],
        action: 'revoke',
        resource: `${target.kind}:${target.id}`,
        decision: null,
        reason: reason === '' ? null : reason,
        policies: [],
        snapshot: null,
        evidence: null,
        created: createdIds(records.map((r) => r.seq)),
      });
      return { seq, at, writs, records };
    });
    // Committed: every listener hears of it (the Watch feed, the status list publisher), whatever another one does.
    for (const l of this.listeners) {
      try {
        l.revoked(result.records);
      } catch (e) {
        this.deps.onListenerError?.(e);
      }
    }
    return result;
  }

  /** The target as the issuer knows it; NOT_FOUND for what it never saw. */
  private async resolve(tx: StoreTx, t: RevocationTarget): Promise<Resolved> {
    switch (t.kind) {
      case 'grant': {
        const g = await tx.getGrant(t.id);
        if (!g) throw notFound(t);
        const parsed = parseGrantCached(g.compact);
        const jwk = parsed.jws.header.jwk;
        return { principal: `${g.principalIss}#${g.principalSub}`, expiresAt: g.expiresAt, ...(jwk ? { signerJkt: keyFromJwk(jwk).jkt } : {}) };
      }
      case 'task': {
        const task = await tx.getTask(t.id);
        if (!task) throw notFound(t);
        return { principal: `${task.principalIss}#${task.principalSub}`, expiresAt: task.expiresAt };
      }
      case 'writ': {
        const w = await tx.getWrit(t.id);
        if (!w) throw notFound(t);
        // Writs delegated from it may outlive it: the revocation matters until the last of them expires.
        const [root] = await tx.killRoots({ by: 'jti', value: t.id }, w.expiresAt, 1);
        return { principal: w.principal, expiresAt: root ? root.lastExpiresAt : w.expiresAt };
      }
      case 'entry': {
        if (!(await tx.getEntry(t.id)) && (await tx.countWrits({ by: 'entry', value: t.id })) === 0) throw notFound(t);
        return { principal: '', expiresAt: null };
      }
      case 'principal': {
        const hash = t.id.lastIndexOf('#');
        if (!(await tx.principalKnown(t.id.slice(0, hash), t.id.slice(hash + 1)))) throw notFound(t);
        return { principal: t.id, expiresAt: null };
      }
      case 'agent': {
        if ((await tx.countWrits({ by: 'spiffe_id', value: t.id })) === 0 && !(await tx.listEntries()).some((e) => e.spiffeId === t.id)) throw notFound(t);
        return { principal: '', expiresAt: null };
      }
      case 'key': {
        // An agent that only ever received plain SVIDs (no writ) is known by its attested-agent record.
        if ((await tx.countWrits({ by: 'jkt', value: t.id })) === 0 && !(await tx.keyDelegated(t.id)) && !(await tx.attestedAgentKnown('jkt', t.id)))
          throw notFound(t);
        return { principal: '', expiresAt: null };
      }
      case 'platform': {
        // A TPM that only ever received plain SVIDs (no writ) is known by its endorsement record.
        const ek = /^tpm:ek_hash:([0-9a-f]{64})$/.exec(t.id);
        if (
          (await tx.countWrits({ by: 'platform', value: t.id })) === 0 &&
          !(ek && (await tx.getTpmRecord(ek[1]!))) &&
          !(await tx.attestedAgentKnown('platform', t.id))
        )
          throw notFound(t);
        return { principal: '', expiresAt: null };
      }
    }
  }

  /** What a caller may revoke at all, before anything is looked up. */
  private authorizeKind(by: Revoker, t: RevocationTarget): void {
    if (by.kind === 'principal' && t.kind !== 'grant' && t.kind !== 'task') throw denied(`a principal may revoke its own grants and tasks, not a ${t.kind}`);
    if (by.kind === 'agent' && t.kind !== 'grant') throw denied(`an agent may revoke the grants it signed, not a ${t.kind}`);
  }

  /** Whether this caller may revoke this target; the same answer for another's and for an unknown one. */
  private authorize(by: Revoker, _t: RevocationTarget, r: Resolved): void {
    if (by.kind === 'operator') return;
    if (by.kind === 'principal') {
      if (r.principal !== `${by.iss}#${by.sub}`) throw notYours(by);
      return;
    }
    if (r.signerJkt === undefined || r.signerJkt !== by.writ.cnf.jkt) throw notYours(by);
  }
}

/**
 * The `created` ids of a revocation's audit record: each derived revocation as `revocation:<seq>`
 * while they fit in a record's list; beyond MAX_AUDIT_LIST (an entry or platform with many live
 * writs), the range `revocation:<first>..<last>` when the sequence numbers are contiguous, else
 * the range with their count and the SHA-256 of the comma-separated list (docs/audit.md).
 */
export function createdIds(seqs: readonly number[]): string[] {
  if (seqs.length <= MAX_AUDIT_LIST) return seqs.map((s) => `revocation:${s}`);
  const first = seqs[0]!;
  const last = seqs[seqs.length - 1]!;
  if (seqs.every((s, i) => s === first + i)) return [`revocation:${first}..${last}`];
  return [`revocation:${first}..${last}`, `revocations:${seqs.length}:sha256:${createHash('sha256').update(seqs.join(',')).digest('hex')}`];
}
