/**
 * The Store, once, over a small driver interface: a backend supplies a dialect, a way to run
 * one statement, and transactions; this file maps every Store method to statements
 * (queries.ts) and rows to records (codecs.ts). See README.md for how to add a backend.
 */
import { transactionHooks } from './before-commit.js';
import { StoreError } from '../errors.js';
import type { Entry } from '../registration/entry.js';
import {
  APPROVALS,
  ATTESTED_AGENTS,
  AUDIT_CHECKPOINTS,
  AUDIT_KEYS,
  AUDIT_RECORDS,
  bind,
  CA_KEYS,
  decodeApproval,
  decodeAttestedAgent,
  decodePasskey,
  decodePasskeyCeremony,
  decodeAuditCheckpoint,
  decodeAuditKey,
  decodeAuditRecord,
  decodeActivePolicy,
  decodeCaKey,
  decodeDecision,
  decodeEntry,
  decodeGrant,
  decodeJoinToken,
  decodeSnapshot,
  decodeTpm,
  decodeRevocation,
  decodeStatusList,
  decodeTask,
  decodeWrit,
  ENTRIES,
  encodeAuditCheckpoint,
  encodeAuditKey,
  encodeAuditRecord,
  encodeCaKey,
  encodeDecision,
  encodeEntry,
  encodeGrant,
  encodeIssued,
  encodeJoinToken,
  encodeSnapshot,
  encodeApproval,
  encodeAttestedAgent,
  encodePasskey,
  encodePasskeyCeremony,
  encodeTpm,
  encodeRevocation,
  encodeStatusList,
  encodeTask,
  encodeWrit,
  GRANTS,
  int,
  ISSUED_SVIDS,
  JOIN_TOKENS,
  PASSKEY_CEREMONIES,
  PASSKEYS,
  POLICY_DECISIONS,
  POLICY_SNAPSHOTS,
  REVOCATIONS,
  type Row,
  selectorKey,
  type SqlValue,
  STATUS_LISTS,
  TASKS,
  TPM_ENDORSEMENTS,
  WRITS,
} from './codecs.js';
import type { ChangeKind } from './changes.js';
import type { Dialect } from './dialect.js';
import { buildQueries, type Queries, type Statement } from './queries.js';
import type {
  ApprovalDecision,
  ApprovalFilter,
  ApprovalRecord,
  PasskeyCeremonyRecord,
  PasskeyRecord,
  KillRoot,
  ActivePolicyRecord,
  AgentSvidUpdate,
  AttestedAgentRecord,
  AuditCheckpointRecord,
  AuditKeyRecord,
  AuditNode,
  AuditRecordRow,
  CaKeyRecord,
  CaKeyState,
  DecisionRecord,
  GrantRecord,
  IssuedSvidRecord,
  JoinTokenRecord,
  NewRevocation,
  PolicySnapshotRecord,
  RevocationRecord,
  StatusListRecord,
  Store,
  StoreTx,
  TaskRecord,
  TpmRecord,
  WritMatch,
  WritRecord,
} from './store.js';

/**
 * Runs statements. Every call is one statement; a driver turns its own failures into
 * StoreError (`store(<backend>): ...`) and never lets the connection string or a password
 * into a message.
 */
export interface SqlExecutor {
  /** Every row of a statement that returns rows. */
  all(s: Statement, params: readonly SqlValue[]): Promise<Row[]>;
  /** The first row, or undefined. */
  get(s: Statement, params: readonly SqlValue[]): Promise<Row | undefined>;
  /** A statement that returns no rows; resolves to the number of rows it changed. */
  run(s: Statement, params: readonly SqlValue[]): Promise<number>;
}

export interface SqlDriver {
  readonly dialect: Dialect;
  /**
   * Statements outside any transaction: each one atomic on its own, and never inside another
   * caller's transaction.
   */
  readonly direct: SqlExecutor;
  /**
   * Runs `fn` in one transaction with the guarantees Store.transaction documents. The executor
   * passed to `fn` refuses statements once the transaction has ended, and a transaction in which
   * any statement failed never commits (rolled back, StoreError), even if `fn` caught the error.
   */
  transaction<T>(fn: (x: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /** The notification channel of a kind of change, for dialects with `notify` (store/changes.ts). */
  channel?(kind: ChangeKind): string;
}

/** A named limit: more than this many decisions are never read at once. */
export const MAX_DECISIONS_PER_READ = 10_000;
/** Most audit tree nodes read at once: a proof needs fewer than 128 (src/audit/merkle.ts). */
export const MAX_AUDIT_NODES_PER_READ = 1024;
/**
 * Audit records are indexed for findAuditRecords in batches of this many (migration 11): the
 * transaction that appends record 64k + 63 indexes records 64k to 64k + 63, so appends do not
 * write index pages each; a lookup reads the records past the last complete batch by position.
 */
export const AUDIT_INDEX_BATCH = 64;
/** Most rows any other listing reads at once. */
export const MAX_ROWS_PER_READ = 100_000;

/** StoreTx over one executor: a transaction's, or the driver's direct one. */
class SqlOps implements StoreTx {
  constructor(
    private readonly x: SqlExecutor,
    private readonly q: Queries,
    private readonly d: Dialect,
    private readonly channel?: (kind: ChangeKind) => string,
  ) {}

  /** Wakes other replicas' change feeds when this transaction commits (dialects with `notify`). */
  private async announce(kind: ChangeKind): Promise<void> {
    if (this.d.notify && this.channel) await this.x.get(this.q.notify, [this.channel(kind)]);
  }

  /** SQLite reads a negative LIMIT as "no limit", PostgreSQL refuses it: one meaning for both. */
  private limit(n: number, what: string): number {
    if (!Number.isSafeInteger(n) || n < 0 || n > MAX_ROWS_PER_READ) {
      throw new StoreError(`store(${this.d.backend}): ${what} limit must be an integer from 0 to ${MAX_ROWS_PER_READ}`);
    }
    return n;
  }

  async createEntry(e: Entry, selectorsKey: string): Promise<void> {
    await this.x.run(this.q.insertEntry, bind(ENTRIES, encodeEntry(e, selectorsKey)));
    for (const s of e.selectors) await this.x.run(this.q.insertSelector, [e.id, selectorKey(s)]);
  }
  async getEntry(id: string): Promise<Entry | undefined> {
    const r = await this.x.get(this.q.getEntry, [id]);
    return r && decodeEntry(r);
  }
  async listEntries(): Promise<Entry[]> {
    return (await this.x.all(this.q.listEntries, [])).map(decodeEntry);
  }
  async listEntriesBySelectors(selectors: readonly string[]): Promise<Entry[]> {
    if (selectors.length === 0) return [];
    return (await this.x.all(this.q.entriesBySelectors, [this.d.encodeTextSet(selectors)])).map(decodeEntry);
  }
  async entryExists(spiffeId: string, selectorsKey: string): Promise<boolean> {
    return (await this.x.get(this.q.entryExists, [spiffeId, selectorsKey])) !== undefined;
  }
  async deleteEntry(id: string): Promise<boolean> {
    return (await this.x.run(this.q.deleteEntry, [id])) === 1;
  }

  async createJoinToken(t: JoinTokenRecord): Promise<void> {
    await this.x.run(this.q.insertToken, bind(JOIN_TOKENS, encodeJoinToken(t)));
  }
  async getJoinToken(id: string): Promise<JoinTokenRecord | undefined> {
    const r = await this.x.get(this.q.getToken, [id]);
    return r && decodeJoinToken(r);
  }
  async consumeJoinToken(id: string, now: number): Promise<boolean> {
    return (await this.x.run(this.q.consumeToken, [now, id, now])) === 1;
  }
  pruneJoinTokens(before: number): Promise<number> {
    return this.x.run(this.q.pruneTokens, [before]);
  }

  async listCaKeys(): Promise<CaKeyRecord[]> {
    return (await this.x.all(this.q.listKeys, [])).map(decodeCaKey);
  }
  async putCaKey(k: CaKeyRecord): Promise<void> {
    await this.x.run(this.q.putKey, bind(CA_KEYS, encodeCaKey(k)));
  }
  async setCaKeyState(id: string, state: CaKeyState): Promise<void> {
    await this.x.run(this.q.setKeyState, [state, id]);
  }
  async deleteCaKey(id: string): Promise<void> {
    await this.x.run(this.q.deleteKey, [id]);
  }

  async getBundleSequence(): Promise<number> {
    return sequence(await this.x.get(this.q.getSeq, []));
  }
  async bumpBundleSequence(): Promise<number> {
    const n = sequence(await this.x.get(this.q.bumpSeq, []));
    await this.announce('bundle');
    return n;
  }

  async getTpmRecord(ekHash: string): Promise<TpmRecord | undefined> {
    const r = await this.x.get(this.q.getTpm, [ekHash]);
    return r && decodeTpm(r);
  }
  async putTpmRecord(r: TpmRecord): Promise<void> {
    await this.x.run(this.q.putTpm, bind(TPM_ENDORSEMENTS, encodeTpm(r)));
  }

  async putPolicySnapshot(r: PolicySnapshotRecord): Promise<void> {
    await this.x.run(this.q.putSnapshot, bind(POLICY_SNAPSHOTS, encodeSnapshot(r)));
  }
  async getPolicySnapshot(digest: string): Promise<PolicySnapshotRecord | undefined> {
    const r = await this.x.get(this.q.getSnapshot, [digest]);
    return r && decodeSnapshot(r);
  }
  async listPolicySnapshots(): Promise<PolicySnapshotRecord[]> {
    return (await this.x.all(this.q.listSnapshots, [])).map(decodeSnapshot);
  }
  async setActivePolicy(r: ActivePolicyRecord): Promise<void> {
    await this.x.run(this.q.setActive, [r.digest, r.activatedAt]);
    await this.announce('policy');
  }
  async getActivePolicy(): Promise<ActivePolicyRecord | undefined> {
    const r = await this.x.get(this.q.getActive, []);
    return r && decodeActivePolicy(r);
  }

  async putGrant(r: GrantRecord): Promise<void> {
    await this.x.run(this.q.putGrant, bind(GRANTS, encodeGrant(r)));
  }
  async getGrant(jti: string): Promise<GrantRecord | undefined> {
    const r = await this.x.get(this.q.getGrant, [jti]);
    return r && decodeGrant(r);
  }
  async recordWrit(r: WritRecord): Promise<void> {
    await this.x.run(this.q.putWrit, bind(WRITS, encodeWrit(r)));
    for (const g of new Set(r.lineage)) await this.x.run(this.q.insertLineage, [g, r.jti]);
  }
  async getWrit(jti: string): Promise<WritRecord | undefined> {
    const r = await this.x.get(this.q.getWrit, [jti]);
    return r && decodeWrit(r);
  }
  async recordDecision(r: DecisionRecord): Promise<void> {
    await this.x.run(this.q.putDecision, bind(POLICY_DECISIONS, encodeDecision(r)));
  }
  async listDecisions(limit: number): Promise<DecisionRecord[]> {
    // SQLite reads a negative LIMIT as "no limit", PostgreSQL refuses it: one meaning for both.
    if (!Number.isSafeInteger(limit) || limit < 0 || limit > MAX_DECISIONS_PER_READ) {
      throw new StoreError(`store(${this.d.backend}): listDecisions limit must be an integer from 0 to ${MAX_DECISIONS_PER_READ}`);
    }
    if (limit === 0) return [];
    return (await this.x.all(this.q.listDecisions, [limit])).map(decodeDecision);
  }

  async revokeGrant(jti: string, at: number): Promise<boolean> {
    return (await this.x.run(this.q.revokeGrant, [at, jti])) === 1;
  }
  async listGrantsByTask(taskId: string, limit: number): Promise<GrantRecord[]> {
    return (await this.x.all(this.q.grantsByTask, [taskId, this.limit(limit, 'listGrantsByTask')])).map(decodeGrant);
  }
  async listWritsByTask(taskId: string, limit: number): Promise<WritRecord[]> {
    return (await this.x.all(this.q.writsByTask, [taskId, this.limit(limit, 'listWritsByTask')])).map(decodeWrit);
  }
  revokeWrits(match: WritMatch, at: number, seq: number): Promise<number> {
    return this.x.run(this.q[`revokeWritsBy_${match.by}`], [match.value, at, seq]);
  }
  async killRoots(match: WritMatch, now: number, limit: number): Promise<KillRoot[]> {
    return (await this.x.all(this.q[`killRootsBy_${match.by}`], [match.value, now, this.limit(limit, 'killRoots')])).map((r) => ({
      writ: decodeWrit(r),
      lastExpiresAt: int(r.kill_last, 'max(writs.expires_at)'),
    }));
  }

  async countWrits(match: WritMatch): Promise<number> {
    return int((await this.x.get(this.q[`countWritsBy_${match.by}`], [match.value]))?.n, 'count(writs)');
  }
  async keyDelegated(jkt: string): Promise<boolean> {
    return (await this.x.get(this.q.keyDelegated, [jkt])) !== undefined;
  }
  async principalKnown(iss: string, sub: string): Promise<boolean> {
    return (await this.x.get(this.q.principalKnown, [iss, sub])) !== undefined;
  }

  async getTask(id: string): Promise<TaskRecord | undefined> {
    const r = await this.x.get(this.q.getTask, [id]);
    return r && decodeTask(r);
  }
  async createTask(t: TaskRecord): Promise<void> {
    await this.x.run(this.q.insertTask, bind(TASKS, encodeTask(t)));
  }
  async extendTask(id: string, expiresAt: number): Promise<void> {
    await this.x.run(this.q.extendTask, [expiresAt, id, expiresAt]);
  }
  async endTask(id: string, at: number, by: string, reason: string): Promise<boolean> {
    return (await this.x.run(this.q.endTask, [at, by, reason, id])) === 1;
  }
  async listTasks(limit: number): Promise<TaskRecord[]> {
    return (await this.x.all(this.q.listTasks, [this.limit(limit, 'listTasks')])).map(decodeTask);
  }

  async insertRevocation(r: NewRevocation): Promise<number> {
    // Before the sequence is drawn: held to the end of the transaction, so sequences commit in order.
    if (this.d.sequenceLock) await this.x.get(this.q.sequenceLock, []);
    const row = await this.x.get(this.q.insertRevocation, bind(REVOCATIONS, encodeRevocation(r)));
    await this.announce('revocation');
    return int(row?.seq, 'revocations.seq');
  }
  async getRevocation(kind: string, target: string): Promise<RevocationRecord | undefined> {
    const r = await this.x.get(this.q.getRevocation, [`${kind}:${target}`]);
    return r && decodeRevocation(r);
  }
  async findRevocations(keys: readonly string[]): Promise<RevocationRecord[]> {
    if (keys.length === 0) return [];
    return (await this.x.all(this.q.findRevocations, [this.d.encodeTextSet(keys)])).map(decodeRevocation);
  }
  async listRevocationsSince(after: number, limit: number): Promise<RevocationRecord[]> {
    return (await this.x.all(this.q.revocationsSince, [after, this.limit(limit, 'listRevocationsSince')])).map(decodeRevocation);
  }
  async revocationBounds(): Promise<{ oldest: number; newest: number }> {
    const r = await this.x.get(this.q.revocationBounds, []);
    return { oldest: int(r?.oldest, 'min(revocations.seq)'), newest: int(r?.newest, 'max(revocations.seq)') };
  }
  pruneRevocations(before: number): Promise<number> {
    return this.x.run(this.q.pruneRevocations, [before]);
  }

  async currentStatusList(): Promise<StatusListRecord | undefined> {
    const r = await this.x.get(this.q.currentStatusList, []);
    return r && decodeStatusList(r);
  }
  async getStatusList(id: number): Promise<StatusListRecord | undefined> {
    const r = await this.x.get(this.q.getStatusList, [id]);
    return r && decodeStatusList(r);
  }
  async createStatusList(l: StatusListRecord): Promise<void> {
    await this.x.run(this.q.createStatusList, bind(STATUS_LISTS, encodeStatusList(l)));
  }
  async statusIndexTaken(list: number, idx: number): Promise<boolean> {
    return (await this.x.get(this.q.statusIndexTaken, [list, idx])) !== undefined;
  }
  async countStatusAllocation(list: number): Promise<void> {
    await this.x.run(this.q.countStatusAllocation, [list]);
  }
  async revokedStatusIndexes(list: number): Promise<number[]> {
    return (await this.x.all(this.q.revokedStatusIndexes, [list])).map((r) => int(r.status_idx, 'writs.status_idx'));
  }

  async recordIssued(r: IssuedSvidRecord): Promise<void> {
    await this.x.run(this.q.insertIssued, bind(ISSUED_SVIDS, encodeIssued(r)));
  }
  async countIssued(): Promise<number> {
    const r = await this.x.get(this.q.countIssued, []);
    return int(r?.n, 'count(issued_svids)');
  }
  pruneIssued(before: number): Promise<number> {
    return this.x.run(this.q.pruneIssued, [before]);
  }

  async createApproval(r: ApprovalRecord): Promise<void> {
    await this.x.run(this.q.createApproval, bind(APPROVALS, encodeApproval(r)));
    await this.announce('approval');
  }
  async getApproval(id: string): Promise<ApprovalRecord | undefined> {
    const r = await this.x.get(this.q.getApproval, [id]);
    return r && decodeApproval(r);
  }
  async listApprovals(filter: ApprovalFilter, limit: number): Promise<ApprovalRecord[]> {
    const st = filter.state ?? '';
    const now = filter.now ?? -1;
    const task = filter.taskId ?? '';
    const p = filter.principal;
    const a = filter.after;
    const params = [st, st, now, st, now, task, task, p ? 1 : 0, p?.iss ?? '', p?.sub ?? '', a ? 1 : 0, a?.createdAt ?? 0, a?.createdAt ?? 0, a?.id ?? ''];
    return (await this.x.all(this.q.listApprovals, [...params, this.limit(limit, 'approvals')])).map(decodeApproval);
  }
  async countPendingApprovals(taskId: string, writJti: string | undefined, now: number, atMost: number): Promise<number> {
    const r = await this.x.get(this.q.countPendingApprovals, [taskId, now, writJti ?? '', writJti ?? '', this.limit(atMost, 'countPendingApprovals')]);
    return int(r?.n, 'count(approvals)');
  }
  async findPendingApproval(writJti: string, action: string, resource: string, now: number): Promise<ApprovalRecord | undefined> {
    const r = await this.x.get(this.q.findPendingApproval, [writJti, action, resource, now]);
    return r && decodeApproval(r);
  }
  async listExpiredPending(now: number, limit: number): Promise<ApprovalRecord[]> {
    return (await this.x.all(this.q.listExpiredPending, [now, this.limit(limit, 'listExpiredPending')])).map(decodeApproval);
  }
  async decideApproval(id: string, d: ApprovalDecision, now: number): Promise<boolean> {
    const params = [d.state, d.decidedAt, d.decidedBy, d.decisionReason, d.credentialId, d.stepUp, id, now];
    const done = (await this.x.run(this.q.decideApproval, params)) === 1;
    if (done) await this.announce('approval');
    return done;
  }
  async expireApproval(id: string, now: number): Promise<boolean> {
    const done = (await this.x.run(this.q.expireApproval, [id, now])) === 1;
    if (done) await this.announce('approval');
    return done;
  }
  async putPasskey(r: PasskeyRecord): Promise<void> {
    await this.x.run(this.q.putPasskey, bind(PASSKEYS, encodePasskey(r)));
  }
  async getPasskey(id: string): Promise<PasskeyRecord | undefined> {
    const r = await this.x.get(this.q.getPasskey, [id]);
    return r && decodePasskey(r);
  }
  async listPasskeys(ownerIss: string, ownerSub: string): Promise<PasskeyRecord[]> {
    return (await this.x.all(this.q.listPasskeys, [ownerIss, ownerSub])).map(decodePasskey);
  }
  async usePasskey(id: string, from: number, to: number, at: number): Promise<boolean> {
    return (await this.x.run(this.q.usePasskey, [to, at, id, from])) === 1;
  }
  async putPasskeyCeremony(c: PasskeyCeremonyRecord): Promise<void> {
    await this.x.run(this.q.putPasskeyCeremony, bind(PASSKEY_CEREMONIES, encodePasskeyCeremony(c)));
  }
  async takePasskeyCeremony(challenge: string): Promise<PasskeyCeremonyRecord | undefined> {
    const r = await this.x.get(this.q.takePasskeyCeremony, [challenge]);
    return r && decodePasskeyCeremony(r);
  }
  async listPasskeyCeremonies(owner: string, now: number): Promise<PasskeyCeremonyRecord[]> {
    return (await this.x.all(this.q.listPasskeyCeremonies, [owner, now])).map(decodePasskeyCeremony);
  }
  async countPasskeyCeremonies(now: number): Promise<number> {
    const r = await this.x.get(this.q.countPasskeyCeremonies, [now]);
    return int(r?.n, 'count(passkey_ceremonies)');
  }
  prunePasskeyCeremonies(now: number): Promise<number> {
    return this.x.run(this.q.prunePasskeyCeremonies, [now]);
  }

  async putAttestedAgent(r: AttestedAgentRecord): Promise<void> {
    await this.x.run(this.q.putAttestedAgent, bind(ATTESTED_AGENTS, encodeAttestedAgent(r)));
  }
  async getAttestedAgentBySerial(serial: string): Promise<AttestedAgentRecord | undefined> {
    const r = await this.x.get(this.q.attestedAgentBySerial, [serial]);
    return r && decodeAttestedAgent(r);
  }
  async renewAttestedAgent(id: string, fromSerial: string, next: AgentSvidUpdate): Promise<boolean> {
    const params = [next.serial, next.jkt, next.svidExpiresAt, next.keyResidency, next.renewedAt, id, fromSerial];
    return (await this.x.run(this.q.renewAttestedAgent, params)) === 1;
  }
  async attestedAgentKnown(by: 'jkt' | 'platform', value: string): Promise<boolean> {
    // '' is "no platform" in a record, never a platform.
    if (value === '') return false;
    return (await this.x.get(by === 'jkt' ? this.q.attestedAgentBy_jkt : this.q.attestedAgentBy_platform, [value])) !== undefined;
  }
  pruneAttestedAgents(before: number): Promise<number> {
    return this.x.run(this.q.pruneAttestedAgents, [before]);
  }

  async getAuditSize(): Promise<number> {
    return (await this.getAuditTail()).size;
  }
  async getAuditTail(): Promise<{ size: number; lastLeaf: Buffer | undefined }> {
    const r = await this.x.get(this.q.getAuditTail, []);
    return r ? { size: int(r.seq, 'audit_records.seq') + 1, lastLeaf: bytesOf(r.leaf_hash) } : { size: 0, lastLeaf: undefined };
  }
  async getAuditNodes(ids: readonly number[]): Promise<Map<number, Buffer>> {
    if (ids.length === 0) return new Map();
    if (ids.length > MAX_AUDIT_NODES_PER_READ)
      throw new StoreError(`store(${this.d.backend}): at most ${MAX_AUDIT_NODES_PER_READ} audit nodes are read at once`);
    const rows = await this.x.all(this.q.auditNodes, [this.d.encodeIntSet(ids)]);
    return new Map(rows.map((r) => [int(r.id, 'audit_nodes.id'), bytesOf(r.hash)]));
  }
  async getAuditLeafHashes(seqs: readonly number[]): Promise<Map<number, Buffer>> {
    if (seqs.length === 0) return new Map();
    if (seqs.length > MAX_AUDIT_NODES_PER_READ)
      throw new StoreError(`store(${this.d.backend}): at most ${MAX_AUDIT_NODES_PER_READ} audit leaf hashes are read at once`);
    const rows = await this.x.all(this.q.auditLeafHashes, [this.d.encodeIntSet(seqs)]);
    return new Map(rows.map((r) => [int(r.seq, 'audit_records.seq'), bytesOf(r.leaf_hash)]));
  }
  async putAuditNodes(nodes: readonly AuditNode[]): Promise<void> {
    for (const n of nodes) await this.x.run(this.q.putAuditNode, [n.id, n.hash]);
  }
  async insertAuditRecord(r: AuditRecordRow): Promise<void> {
    await this.x.run(this.q.insertAuditRecord, bind(AUDIT_RECORDS, encodeAuditRecord(r)));
    // The record that completes a batch indexes the batch (appends are in order, so the others are stored).
    if ((r.seq + 1) % AUDIT_INDEX_BATCH === 0) {
      const from = r.seq + 1 - AUDIT_INDEX_BATCH;
      await this.x.run(this.q.indexAuditRecords, [from, r.seq + 1, from, r.seq + 1, from, r.seq + 1]);
    }
  }
  async getAuditRecord(seq: number): Promise<AuditRecordRow | undefined> {
    const r = await this.x.get(this.q.getAuditRecord, [seq]);
    return r && decodeAuditRecord(r);
  }
  async listAuditRecords(from: number, limit: number): Promise<AuditRecordRow[]> {
    return (await this.x.all(this.q.listAuditRecords, [from, this.limit(limit, 'listAuditRecords')])).map(decodeAuditRecord);
  }
  async findAuditRecords(
    by: { readonly column: 'task' | 'principal' | 'actor'; readonly value: string } | undefined,
    before: number,
    limit: number,
  ): Promise<AuditRecordRow[]> {
    const n = this.limit(limit, 'findAuditRecords');
    // '' is "no task" or "no principal", never indexed: nothing has it.
    if (by?.value === '') return [];
    const rows = by
      ? await this.x.all(this.q[`auditRecordsBy_${by.column}`], [before, by.value, by.value, before, n, n])
      : await this.x.all(this.q.auditRecordsBefore, [before, n]);
    return rows.map(decodeAuditRecord);
  }
  async putAuditCheckpoint(c: AuditCheckpointRecord): Promise<void> {
    await this.x.run(this.q.putAuditCheckpoint, bind(AUDIT_CHECKPOINTS, encodeAuditCheckpoint(c)));
  }
  async latestAuditCheckpoint(): Promise<AuditCheckpointRecord | undefined> {
    const r = await this.x.get(this.q.latestAuditCheckpoint, []);
    return r && decodeAuditCheckpoint(r);
  }
  async getAuditCheckpoint(size: number): Promise<AuditCheckpointRecord | undefined> {
    const r = await this.x.get(this.q.getAuditCheckpoint, [size]);
    return r && decodeAuditCheckpoint(r);
  }
  async putAuditKey(k: AuditKeyRecord): Promise<void> {
    await this.x.run(this.q.putAuditKey, bind(AUDIT_KEYS, encodeAuditKey(k)));
  }
  async listAuditKeys(): Promise<AuditKeyRecord[]> {
    return (await this.x.all(this.q.listAuditKeys, [])).map(decodeAuditKey);
  }
}

function bytesOf(v: unknown): Buffer {
  if (!Buffer.isBuffer(v)) throw new StoreError('store: an audit hash column does not hold bytes');
  return v;
}

function sequence(r: Row | undefined): number {
  if (!r) throw new StoreError('store: the bundle sequence row is missing');
  return int(r.value, 'meta.bundle_sequence');
}

/**
 * A Store over any SqlDriver. Methods called on the Store itself (outside `transaction`) are
 * each atomic: single statements run directly, and the methods of several statements
 * (createEntry: the entry and its selector index; recordWrit: the writ and its lineage index)
 * run in a transaction of their own (test/store/atomicity.test.ts holds every method to this).
 */
export class SqlStore implements Store {
  private readonly queries: Queries;
  private readonly direct: SqlOps;

  constructor(private readonly driver: SqlDriver) {
    this.queries = buildQueries(driver.dialect);
    this.direct = new SqlOps(driver.direct, this.queries, driver.dialect, driver.channel?.bind(driver));
  }

  async transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    // A driver may run the function again after a serialization failure (postgres.ts): the
    // after-commit hooks are those of the last run, the one that committed.
    let after: readonly (() => void)[] = [];
    const out = await this.driver.transaction(async (x) => {
      const tx = new SqlOps(x, this.queries, this.driver.dialect, this.driver.channel?.bind(this.driver));
      const hooks = transactionHooks(tx, this);
      after = hooks.after;
      const result = await fn(tx);
      // By index: a hook may add another (it runs too).
      for (let i = 0; i < hooks.before.length; i++) await hooks.before[i]!();
      return result;
    });
    // Committed: a hook that throws (a bug: they must not) cannot make the transaction fail.
    for (const hook of after) {
      try {
        hook();
      } catch (e) {
        process.emitWarning(`store: an after-commit hook threw: ${(e as Error).message}`, 'WritStoreWarning');
      }
    }
    return out;
  }

  close(): Promise<void> {
    return this.driver.close();
  }

  createEntry = (e: Entry, selectorsKey: string) => this.transaction((tx) => tx.createEntry(e, selectorsKey));
  getEntry = (id: string) => this.direct.getEntry(id);
  listEntries = () => this.direct.listEntries();
  listEntriesBySelectors = (selectors: readonly string[]) => this.direct.listEntriesBySelectors(selectors);
  entryExists = (spiffeId: string, selectorsKey: string) => this.direct.entryExists(spiffeId, selectorsKey);
  deleteEntry = (id: string) => this.direct.deleteEntry(id);
  createJoinToken = (t: JoinTokenRecord) => this.direct.createJoinToken(t);
  getJoinToken = (id: string) => this.direct.getJoinToken(id);
  consumeJoinToken = (id: string, now: number) => this.direct.consumeJoinToken(id, now);
  pruneJoinTokens = (before: number) => this.direct.pruneJoinTokens(before);
  listCaKeys = () => this.direct.listCaKeys();
  putCaKey = (k: CaKeyRecord) => this.direct.putCaKey(k);
  setCaKeyState = (id: string, state: CaKeyState) => this.direct.setCaKeyState(id, state);
  deleteCaKey = (id: string) => this.direct.deleteCaKey(id);
  getBundleSequence = () => this.direct.getBundleSequence();
  // With a sequence lock or a notification these are several statements: a transaction of their own.
  bumpBundleSequence = () => this.transaction((tx) => tx.bumpBundleSequence());
  getTpmRecord = (ekHash: string) => this.direct.getTpmRecord(ekHash);
  putTpmRecord = (r: TpmRecord) => this.direct.putTpmRecord(r);
  putPolicySnapshot = (r: PolicySnapshotRecord) => this.direct.putPolicySnapshot(r);
  getPolicySnapshot = (digest: string) => this.direct.getPolicySnapshot(digest);
  listPolicySnapshots = () => this.direct.listPolicySnapshots();
  setActivePolicy = (r: ActivePolicyRecord) => this.transaction((tx) => tx.setActivePolicy(r));
  getActivePolicy = () => this.direct.getActivePolicy();
  putGrant = (r: GrantRecord) => this.direct.putGrant(r);
  getGrant = (jti: string) => this.direct.getGrant(jti);
  // Announcing writes are transactions of their own (as recordWrit's several statements are).
  createApproval = (r: ApprovalRecord) => this.transaction((tx) => tx.createApproval(r));
  getApproval = (id: string) => this.direct.getApproval(id);
  listApprovals = (filter: ApprovalFilter, limit: number) => this.direct.listApprovals(filter, limit);
  countPendingApprovals = (taskId: string, writJti: string | undefined, now: number, atMost: number) =>
    this.direct.countPendingApprovals(taskId, writJti, now, atMost);
  findPendingApproval = (writJti: string, action: string, resource: string, now: number) => this.direct.findPendingApproval(writJti, action, resource, now);
  listExpiredPending = (now: number, limit: number) => this.direct.listExpiredPending(now, limit);
  decideApproval = (id: string, d: ApprovalDecision, now: number) => this.transaction((tx) => tx.decideApproval(id, d, now));
  expireApproval = (id: string, now: number) => this.transaction((tx) => tx.expireApproval(id, now));
  putPasskey = (r: PasskeyRecord) => this.direct.putPasskey(r);
  getPasskey = (id: string) => this.direct.getPasskey(id);
  listPasskeys = (iss: string, sub: string) => this.direct.listPasskeys(iss, sub);
  usePasskey = (id: string, from: number, to: number, at: number) => this.direct.usePasskey(id, from, to, at);
  putPasskeyCeremony = (c: PasskeyCeremonyRecord) => this.direct.putPasskeyCeremony(c);
  takePasskeyCeremony = (challenge: string) => this.direct.takePasskeyCeremony(challenge);
  listPasskeyCeremonies = (owner: string, now: number) => this.direct.listPasskeyCeremonies(owner, now);
  countPasskeyCeremonies = (now: number) => this.direct.countPasskeyCeremonies(now);
  prunePasskeyCeremonies = (now: number) => this.direct.prunePasskeyCeremonies(now);
  recordWrit = (r: WritRecord) => this.transaction((tx) => tx.recordWrit(r));
  getWrit = (jti: string) => this.direct.getWrit(jti);
  recordDecision = (r: DecisionRecord) => this.direct.recordDecision(r);
  listDecisions = (limit: number) => this.direct.listDecisions(limit);
  revokeGrant = (jti: string, at: number) => this.direct.revokeGrant(jti, at);
  listGrantsByTask = (taskId: string, limit: number) => this.direct.listGrantsByTask(taskId, limit);
  listWritsByTask = (taskId: string, limit: number) => this.direct.listWritsByTask(taskId, limit);
  revokeWrits = (match: WritMatch, at: number, seq: number) => this.direct.revokeWrits(match, at, seq);
  killRoots = (match: WritMatch, now: number, limit: number) => this.direct.killRoots(match, now, limit);
  countWrits = (match: WritMatch) => this.direct.countWrits(match);
  keyDelegated = (jkt: string) => this.direct.keyDelegated(jkt);
  principalKnown = (iss: string, sub: string) => this.direct.principalKnown(iss, sub);
  getTask = (id: string) => this.direct.getTask(id);
  createTask = (t: TaskRecord) => this.direct.createTask(t);
  extendTask = (id: string, expiresAt: number) => this.direct.extendTask(id, expiresAt);
  endTask = (id: string, at: number, by: string, reason: string) => this.direct.endTask(id, at, by, reason);
  listTasks = (limit: number) => this.direct.listTasks(limit);
  insertRevocation = (r: NewRevocation) => this.transaction((tx) => tx.insertRevocation(r));
  getRevocation = (kind: string, target: string) => this.direct.getRevocation(kind, target);
  findRevocations = (keys: readonly string[]) => this.direct.findRevocations(keys);
  listRevocationsSince = (after: number, limit: number) => this.direct.listRevocationsSince(after, limit);
  revocationBounds = () => this.direct.revocationBounds();
  pruneRevocations = (before: number) => this.direct.pruneRevocations(before);
  currentStatusList = () => this.direct.currentStatusList();
  getStatusList = (id: number) => this.direct.getStatusList(id);
  createStatusList = (l: StatusListRecord) => this.direct.createStatusList(l);
  statusIndexTaken = (list: number, idx: number) => this.direct.statusIndexTaken(list, idx);
  countStatusAllocation = (list: number) => this.direct.countStatusAllocation(list);
  revokedStatusIndexes = (list: number) => this.direct.revokedStatusIndexes(list);
  recordIssued = (r: IssuedSvidRecord) => this.direct.recordIssued(r);
  countIssued = () => this.direct.countIssued();
  pruneIssued = (before: number) => this.direct.pruneIssued(before);
  putAttestedAgent = (r: AttestedAgentRecord) => this.direct.putAttestedAgent(r);
  getAttestedAgentBySerial = (serial: string) => this.direct.getAttestedAgentBySerial(serial);
  renewAttestedAgent = (id: string, fromSerial: string, next: AgentSvidUpdate) => this.direct.renewAttestedAgent(id, fromSerial, next);
  attestedAgentKnown = (by: 'jkt' | 'platform', value: string) => this.direct.attestedAgentKnown(by, value);
  pruneAttestedAgents = (before: number) => this.direct.pruneAttestedAgents(before);
  getAuditSize = () => this.direct.getAuditSize();
  getAuditTail = () => this.direct.getAuditTail();
  getAuditNodes = (ids: readonly number[]) => this.direct.getAuditNodes(ids);
  getAuditLeafHashes = (seqs: readonly number[]) => this.direct.getAuditLeafHashes(seqs);
  putAuditNodes = (nodes: readonly AuditNode[]) => this.transaction((tx) => tx.putAuditNodes(nodes));
  // The record that completes an index batch also writes the batch: a transaction of its own.
  insertAuditRecord = (r: AuditRecordRow) => this.transaction((tx) => tx.insertAuditRecord(r));
  getAuditRecord = (seq: number) => this.direct.getAuditRecord(seq);
  listAuditRecords = (from: number, limit: number) => this.direct.listAuditRecords(from, limit);
  findAuditRecords = (by: { readonly column: 'task' | 'principal' | 'actor'; readonly value: string } | undefined, before: number, limit: number) =>
    this.direct.findAuditRecords(by, before, limit);
  putAuditCheckpoint = (c: AuditCheckpointRecord) => this.direct.putAuditCheckpoint(c);
  latestAuditCheckpoint = () => this.direct.latestAuditCheckpoint();
  getAuditCheckpoint = (size: number) => this.direct.getAuditCheckpoint(size);
  putAuditKey = (k: AuditKeyRecord) => this.direct.putAuditKey(k);
  listAuditKeys = () => this.direct.listAuditKeys();
}
