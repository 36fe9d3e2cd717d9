/** Operator actions on registration entries and join tokens, independent of gRPC. */
import { appendAudit } from '../audit/log.js';
import type { AuditEvent, NewAuditRecord } from '../audit/record.js';
import { randomUUID } from 'node:crypto';
import { EntryError, LimitError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { ConfigSection } from '../config/config.js';
import { newJoinToken, JOIN_TOKEN_TYPE } from '../attestation/join-token/join-token.js';
import { selectorsKey, validateEntry, type Entry } from '../registration/entry.js';
import type { Store, StoreTx } from '../store/store.js';

/** How long the join tokens an operator makes may live. */
export interface JoinTokenSettings {
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
}

/** The `join_token:` key of the server configuration (token TTLs for `writ token create`). */
export const joinTokenSection: ConfigSection<JoinTokenSettings> = {
  key: 'join_token',
  parse(top) {
    const s = top.section('join_token').only(['default_ttl', 'max_ttl']);
    const defaultTtlMs = s.duration('default_ttl', '10m');
    const maxTtlMs = s.duration('max_ttl', '24h');
    if (defaultTtlMs > maxTtlMs) s.problem('join_token.default_ttl must not exceed join_token.max_ttl');
    return { defaultTtlMs, maxTtlMs };
  },
};

export interface AdminSettings {
  readonly trustDomain: string;
  readonly joinTokenDefaultTtlMs: number;
  readonly joinTokenMaxTtlMs: number;
}

export type EntryInput = Omit<Entry, 'id' | 'createdAt'>;

/** A record of a change the operator made over the admin socket (which has one role: the operator). */
export function operatorRecord(
  at: number,
  event: AuditEvent,
  action: string,
  resource: string,
  created: string[],
  over: Partial<NewAuditRecord> = {},
): NewAuditRecord {
  return {
    at,
    event,
    actor: { kind: 'operator', id: 'admin' },
    principal: null,
    task: null,
    lineage: [],
    action,
    resource,
    decision: null,
    reason: null,
    policies: [],
    snapshot: null,
    evidence: null,
    created,
    ...over,
  };
}

export class Admin {
  constructor(private readonly deps: { store: Store; clock: Clock; settings: AdminSettings }) {}

  async createEntry(input: EntryInput): Promise<Entry> {
    return this.deps.store.transaction((tx) => this.insertEntry(tx, input));
  }

  private async insertEntry(tx: StoreTx, input: EntryInput): Promise<Entry> {
    const valid = validateEntry(input, this.deps.settings.trustDomain);
    const key = selectorsKey(valid.selectors);
    if (await tx.entryExists(valid.spiffeId, key)) {
      throw new EntryError('ERR_ENTRY_INVALID', `entry: an entry for ${valid.spiffeId} with the same selectors already exists`);
    }
    const entry: Entry = { ...valid, id: randomUUID(), createdAt: this.deps.clock.now().getTime() };
    await tx.createEntry(entry, key);
    await appendAudit(tx, operatorRecord(entry.createdAt, 'entry.created', `create entry for ${entry.spiffeId}`, `entry:${entry.id}`, [entry.id]));
    return entry;
  }

  listEntries(): Promise<Entry[]> {
    return this.deps.store.listEntries();
  }

  async getEntry(id: string): Promise<Entry> {
    const e = await this.deps.store.getEntry(id);
    if (!e) throw new EntryError('ERR_ENTRY_NOT_FOUND', `entry: no entry with id ${JSON.stringify(id.slice(0, 64))}`);
    return e;
  }

  async deleteEntry(id: string): Promise<void> {
    await this.deps.store.transaction(async (tx) => {
      if (!(await tx.deleteEntry(id))) throw new EntryError('ERR_ENTRY_NOT_FOUND', `entry: no entry with id ${JSON.stringify(id.slice(0, 64))}`);
      await appendAudit(tx, operatorRecord(this.deps.clock.now().getTime(), 'entry.deleted', 'delete entry', `entry:${id}`, []));
    });
  }

  /**
   * Creates a one-time join token; with `spiffeId`, also the entry that maps its selector to
   * that ID, in the same transaction.
   */
  async createJoinToken(
    ttlMs: number | undefined,
    spiffeId?: string,
  ): Promise<{ token: string; id: string; selector: string; expiresAt: Date; entryId?: string }> {
    const s = this.deps.settings;
    const ttl = ttlMs || s.joinTokenDefaultTtlMs;
    if (ttl <= 0 || ttl > s.joinTokenMaxTtlMs) throw new LimitError(`token: ttl must be between 1s and ${s.joinTokenMaxTtlMs / 1000}s`);
    const { token, record } = newJoinToken(this.deps.clock.now(), ttl);
    return this.deps.store.transaction(async (tx) => {
      await tx.createJoinToken(record);
      // An operator-minted credential: its id and expiry are audited, never the secret.
      await appendAudit(tx, operatorRecord(this.deps.clock.now().getTime(), 'join_token.created', 'create join token', `join_token:${record.id}`, [record.id]));
      let entryId: string | undefined;
      if (spiffeId) {
        const entry = await this.insertEntry(tx, {
          spiffeId,
          selectors: [{ type: JOIN_TOKEN_TYPE, value: record.id }],
          x509SvidTtl: 0,
          jwtSvidTtl: 0,
          scopeCeiling: [],
          hint: 'created with join token',
        });
        entryId = entry.id;
      }
      return { token, id: record.id, selector: `${JOIN_TOKEN_TYPE}:${record.id}`, expiresAt: new Date(record.expiresAt), ...(entryId ? { entryId } : {}) };
    });
  }
}
