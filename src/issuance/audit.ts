/**
 * The audit log's wiring into the issuer's flows that live outside issuance/: the `audit:`
 * section of the server configuration and the `key.rotated` records of CA, JWT and writ key
 * rotations (appended inside the rotation's transaction through CaManager's onKeyChange).
 */
import { appendAudit } from '../audit/log.js';
import type { KeyChange, KeyChangeListener } from '../ca/manager.js';
import type { ConfigSection } from '../config/config.js';

export interface AuditSettings {
  /** How often a checkpoint is signed (when records were appended since the last), ms. */
  readonly checkpointIntervalMs: number;
}

/** Default checkpoint interval: a witness sees a new tree head within a minute. */
export const DEFAULT_CHECKPOINT_INTERVAL = '1m';
/** Shortest interval accepted: each checkpoint is one Ed25519 signature and one stored row. */
export const MIN_CHECKPOINT_INTERVAL_MS = 1_000;
/** Longest: the aggregate refusal records (audit/tally.ts) are written at each checkpoint, and held in memory until then. */
export const MAX_CHECKPOINT_INTERVAL_MS = 24 * 3_600_000;

/** The `audit:` key of the server configuration. */
export const auditSection: ConfigSection<AuditSettings> = {
  key: 'audit',
  parse(top) {
    const s = top.section('audit').only(['checkpoint_interval']);
    const checkpointIntervalMs = s.duration('checkpoint_interval', DEFAULT_CHECKPOINT_INTERVAL);
    if (checkpointIntervalMs < MIN_CHECKPOINT_INTERVAL_MS || checkpointIntervalMs > MAX_CHECKPOINT_INTERVAL_MS)
      s.problem(`audit.checkpoint_interval must be between ${MIN_CHECKPOINT_INTERVAL_MS / 1000}s and ${MAX_CHECKPOINT_INTERVAL_MS / 3_600_000}h`);
    return { checkpointIntervalMs };
  },
};

/** The record of one key state change: the issuer acted (rotation is automatic), the key's id as resource. */
export const auditKeyChange: KeyChangeListener = async (tx, c: KeyChange) => {
  await appendAudit(tx, {
    at: c.at,
    event: 'key.rotated',
    actor: { kind: 'issuer' },
    principal: null,
    task: null,
    lineage: [],
    action: `${c.op} ${c.kind} key`,
    resource: `ca_key:${c.id}`,
    decision: null,
    reason: null,
    policies: [],
    snapshot: null,
    evidence: null,
    created: c.op.startsWith('create') ? [c.id] : [],
  });
};
