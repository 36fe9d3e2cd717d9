/**
 * Policy snapshots as the issuer keeps them: pushed (validated, stored immutably under their
 * digest, activated in one transaction), fetched by digest, and the active one. Snapshots are
 * immutable, so a parsed snapshot is cached by digest for good (bounded).
 */
import { appendAudit } from '../audit/log.js';
import { MAX_AUDIT_LIST } from '../audit/record.js';
import { operatorRecord } from './admin.js';
import { BoundedCache, deepFreeze } from '../cache/bounded.js';
import { PolicyError } from '../errors.js';
import type { Clock } from '../clock.js';
import { buildSnapshot, splitPolicies, type Snapshot } from '../policy/snapshot.js';
import type { Store } from '../store/store.js';

export interface StoredSnapshot extends Snapshot {
  /** Unix milliseconds. */
  readonly createdAt: number;
}

const CACHE = 64;

export class PolicySnapshots {
  private readonly cache = new BoundedCache<string, StoredSnapshot>(CACHE);

  constructor(private readonly deps: { store: Store; clock: Clock }) {}

  /** Validates and stores a policy set, and makes it the active one. Same policies, same digest. */
  async push(files: ReadonlyArray<{ name: string; text: string }>): Promise<{ digest: string; created: boolean; policies: number }> {
    const snap = buildSnapshot(splitPolicies(files));
    const now = this.deps.clock.now().getTime();
    const created = await this.deps.store.transaction(async (tx) => {
      const had = await tx.getPolicySnapshot(snap.digest);
      const ids = snap.policies.map((p) => p.id);
      // An audit record lists at most MAX_AUDIT_LIST policy ids; the snapshot digest names them all.
      const listed = ids.length <= MAX_AUDIT_LIST ? ids : [];
      if (!had) {
        await tx.putPolicySnapshot({ digest: snap.digest, policies: snap.policies.map((p) => ({ id: p.id, text: p.text })), createdAt: now });
        await appendAudit(
          tx,
          operatorRecord(now, 'policy.pushed', 'push policy snapshot', `policy:${snap.digest}`, [snap.digest], { snapshot: snap.digest, policies: listed }),
        );
      }
      await tx.setActivePolicy({ digest: snap.digest, activatedAt: now });
      await appendAudit(
        tx,
        operatorRecord(now, 'policy.activated', 'activate policy snapshot', `policy:${snap.digest}`, [], { snapshot: snap.digest, policies: listed }),
      );
      return !had;
    });
    return { digest: snap.digest, created, policies: snap.policies.length };
  }

  async get(digest: string): Promise<StoredSnapshot> {
    const hit = this.cache.get(digest);
    if (hit) return hit;
    if (!/^[0-9a-f]{64}$/.test(digest)) throw new PolicyError('ERR_POLICY_NOT_FOUND', 'policy: a snapshot digest is 64 lower-case hex characters');
    const r = await this.deps.store.getPolicySnapshot(digest);
    if (!r) throw new PolicyError('ERR_POLICY_NOT_FOUND', `policy: no snapshot ${digest}`);
    const snap = buildSnapshot(r.policies);
    // Stored bytes that no longer hash to their address mean tampering or a schema change.
    if (snap.digest !== digest) throw new PolicyError('ERR_POLICY_INVALID', `policy: stored snapshot ${digest} hashes to ${snap.digest}`);
    const out = deepFreeze({ ...snap, createdAt: r.createdAt });
    this.cache.set(digest, out);
    return out;
  }

  /** The active snapshot; ERR_POLICY_NOT_FOUND when none was ever pushed. */
  async active(): Promise<StoredSnapshot & { activatedAt: number }> {
    const a = await this.deps.store.getActivePolicy();
    if (!a) throw new PolicyError('ERR_POLICY_NOT_FOUND', 'policy: no policy is active; push one with `writ policy push DIR`');
    return { ...(await this.get(a.digest)), activatedAt: a.activatedAt };
  }

  async list(): Promise<Array<{ digest: string; createdAt: number; policies: number; active: boolean }>> {
    const a = await this.deps.store.getActivePolicy();
    return (await this.deps.store.listPolicySnapshots()).map((r) => ({
      digest: r.digest,
      createdAt: r.createdAt,
      policies: r.policies.length,
      active: r.digest === a?.digest,
    }));
  }
}
