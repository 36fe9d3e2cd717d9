/**
 * Refusals of peers the issuer cannot name (no verified evidence and matching entry yet:
 * malformed or failed evidence, bad key proofs, unknown evidence types, grant chains refused at
 * hello, no matching entry, the rate limit) are not one record each: anyone can send them, and
 * one record per attempt would let an unauthenticated peer grow the log without bound. They are
 * counted in memory by (event, reason code, evidence type) and written as one aggregate record
 * per bucket at each checkpoint (docs/audit.md "Refusals"), so the log grows by at most
 * MAX_TALLY_BUCKETS records per checkpoint interval whatever the traffic.
 */
import { BoundedCache } from '../cache/bounded.js';
import type { Store, StoreTx } from '../store/store.js';
import { type AuditAppender, appendAudit } from './log.js';

/** Most distinct (event, reason, evidence type) buckets per interval; the rest are counted in one bucket (`attest with other`, reason null). */
export const MAX_TALLY_BUCKETS = 64;
/** The evidence type of a bucket for a type the issuer does not serve (peers choose the string). */
export const UNKNOWN_EVIDENCE_TYPE = 'unknown';
const OTHER = 'other';

export type TalliedEvent = 'handshake.refused' | 'delegation.refused';

interface Bucket {
  readonly event: TalliedEvent;
  /** null for the overflow bucket. */
  readonly reason: string | null;
  readonly evidenceType: string;
  count: number;
}

export class RefusalTally {
  private buckets = new Map<string, Bucket>();

  /** `evidenceTypes`: the types the issuer serves; any other string a peer sends is counted as `unknown`. */
  constructor(private readonly evidenceTypes: ReadonlySet<string>) {}

  /** Counts one refusal. `reason` is an error code (a fixed set); `evidenceType` is peer-chosen and normalised. */
  add(event: TalliedEvent, reason: string, evidenceType: string): void {
    const type = this.evidenceTypes.has(evidenceType) ? evidenceType : UNKNOWN_EVIDENCE_TYPE;
    let key = `${event} ${reason} ${type}`;
    let b = this.buckets.get(key);
    if (!b && this.buckets.size >= MAX_TALLY_BUCKETS - 1) {
      key = OTHER;
      b = this.buckets.get(key);
      if (!b) {
        b = { event: 'handshake.refused', reason: null, evidenceType: OTHER, count: 0 };
        this.buckets.set(key, b);
      }
    }
    if (!b) {
      b = { event, reason, evidenceType: type, count: 0 };
      this.buckets.set(key, b);
    }
    b.count++;
  }

  /** Refusals counted and not yet written. */
  get pending(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.count;
    return n;
  }

  /**
   * Writes one aggregate record per bucket in `tx` (actor the issuer, `resource` `refusals:<count>`)
   * and returns what to call once `tx` committed: only then are those counts taken off, so a
   * rolled-back flush loses nothing and counts made meanwhile stay for the next one.
   */
  async flush(tx: StoreTx, at: number, append: AuditAppender): Promise<() => void> {
    const taken = [...this.buckets.entries()].map(([key, b]) => ({ key, b, count: b.count })).filter((t) => t.count > 0);
    for (const { b, count } of taken) {
      await append(tx, {
        at,
        event: b.event,
        actor: { kind: 'issuer' },
        principal: null,
        task: null,
        lineage: [],
        action: b.event === 'delegation.refused' ? `hello with ${b.evidenceType}` : `attest with ${b.evidenceType}`,
        resource: `refusals:${count}`,
        decision: null,
        reason: b.reason,
        policies: [],
        snapshot: null,
        evidence: null,
        created: [],
      });
    }
    return () => {
      for (const { key, b, count } of taken) {
        b.count -= count;
        if (b.count === 0) this.buckets.delete(key);
      }
    };
  }
}

/** Writes the tally's aggregate records in one transaction of their own; the counts are taken off once it commits. */
export async function flushTally(store: Store, tally: RefusalTally, at: number): Promise<void> {
  if (tally.pending === 0) return;
  const committed = await store.transaction((tx) => tally.flush(tx, at, appendAudit));
  committed();
}

/** Records one named actor may cause per (actor, reason) and window; past it, its refusals are tallied like an unnamed peer's. */
export const NAMED_REFUSALS_PER_WINDOW = 10;
/** Most (actor, reason) pairs remembered; the least recently seen are forgotten first (and start a fresh window). */
export const MAX_NAMED_REFUSAL_KEYS = 10_000;

/**
 * Bounds the refusal records of named agents too: a revoked agent that still holds valid
 * evidence for its entry (a TPM, an unexpired join token whose consumption rolled back) could
 * otherwise retry forever and add one record per try. The first NAMED_REFUSALS_PER_WINDOW
 * refusals per (actor, reason) and window are records; the rest go to the tally. The issuer keys
 * `actor` on what the peer cannot vary (issuer.ts refusalGateKey), never the agent key.
 */
export class NamedRefusalGate {
  private readonly seen = new BoundedCache<string, { start: number; count: number }>(MAX_NAMED_REFUSAL_KEYS);

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /** True when this refusal may be written as its own record. */
  admit(actor: string, reason: string): boolean {
    const key = `${actor}\n${reason}`;
    const t = this.now();
    const s = this.seen.get(key);
    if (!s || t - s.start >= this.windowMs) {
      this.seen.set(key, { start: t, count: 1 });
      return true;
    }
    s.count++;
    return s.count <= NAMED_REFUSALS_PER_WINDOW;
  }
}
