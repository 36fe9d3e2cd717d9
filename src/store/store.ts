/**
 * The datastore contract (SPIRE datastore). Every method is async so that a networked
 * implementation (PostgreSQL) fits; every state change that spans rows runs inside
 * `transaction`, which commits all or nothing. Implementations: sqlite.ts, postgres.ts (both
 * over sql-store.ts); test/store/conformance.ts is the executable form of this contract.
 *
 * Failures of the datastore are StoreError (ERR_STORE), the message prefixed with the backend
 * (`store(sqlite): ...`, `store(postgres): ...`); a violated unique, foreign-key or check
 * constraint says so (`store(sqlite): unique constraint violated: ...`) and writes nothing.
 */
import type { Entry, Selector } from '../registration/entry.js';

export type CaKeyKind = 'x509-root' | 'x509-intermediate' | 'jwt' | 'writ';
export type CaKeyState = 'prepared' | 'active' | 'retired';

export interface CaKeyRecord {
  readonly id: string;
  readonly kind: CaKeyKind;
  readonly state: CaKeyState;
  /** DER certificate for X.509 kinds; empty for JWT keys. */
  readonly certDer: Buffer;
  /** DER SubjectPublicKeyInfo. */
  readonly publicKeyDer: Buffer;
  /** PKCS#8 private key sealed by the key encryptor. */
  readonly sealedKey: Buffer;
  /** Unix milliseconds. */
  readonly notBefore: number;
  readonly notAfter: number;
}

export interface JoinTokenRecord {
  readonly id: string;
  /** SHA-256 of the secret part; the secret itself is never stored. */
  readonly secretHash: Buffer;
  readonly expiresAt: number;
  readonly createdAt: number;
  readonly usedAt: number | null;
}

export interface IssuedSvidRecord {
  /** Hex serial (X.509) or token hash (JWT). */
  readonly id: string;
  readonly kind: 'x509' | 'jwt';
  readonly spiffeId: string;
  readonly entryId: string;
  readonly evidenceType: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/**
 * One attested agent (SPIRE's attested node): what its original attestation proved, and the
 * serial of the latest X.509-SVID issued to it, the only one that may renew it
 * (attestation/x509-svid). A fresh attestation makes a new record; a renewal moves `serial`.
 */
export interface AttestedAgentRecord {
  /** Random, 32 hex characters. */
  readonly id: string;
  readonly spiffeId: string;
  readonly entryId: string;
  /** The evidence type of the original attestation (never `x509_svid`). */
  readonly evidenceType: string;
  /** The selectors the original evidence proved. */
  readonly selectors: readonly Selector[];
  /** The platform selector of the original evidence, or ''. */
  readonly platform: string;
  /** The key-residency label the original evidence proved for `jkt`'s key, or ''. */
  readonly keyResidency: string;
  /** SHA-256 of the original evidence. */
  readonly evidenceDigest: Buffer;
  /** Serial of the latest X.509-SVID issued to this agent, lower-case hex. */
  readonly serial: string;
  /** RFC 7638 thumbprint of that SVID's key. */
  readonly jkt: string;
  /** That SVID's notAfter, Unix ms. */
  readonly svidExpiresAt: number;
  readonly attestedAt: number;
  readonly renewedAt: number | null;
  readonly renewals: number;
}

/** What a renewal moves an attested agent to. */
export interface AgentSvidUpdate {
  readonly serial: string;
  readonly jkt: string;
  readonly svidExpiresAt: number;
  /** The key-residency label that still holds for the new key, or ''. */
  readonly keyResidency: string;
  readonly renewedAt: number;
}

/** What the issuer remembers about a TPM, keyed by its EK. */
export interface TpmRecord {
  /** SHA-256 of the EK SubjectPublicKeyInfo, hex. */
  readonly ekHash: string;
  /** Name of the AK activated against this EK. */
  readonly akName: Buffer;
  /** Firmware version seen at enrolment (decimal of the u64). */
  readonly firmwareVersion: string;
  /** Counters of the last accepted quote (clock as decimal of the u64). */
  readonly resetCount: number;
  readonly restartCount: number;
  readonly clock: string;
  readonly activatedAt: number;
  readonly updatedAt: number;
}

/** An immutable Cedar policy set, addressed by its digest. */
export interface PolicySnapshotRecord {
  /** Hex SHA-256 of the snapshot's canonical encoding (policy/snapshot.ts). */
  readonly digest: string;
  readonly policies: ReadonlyArray<{ readonly id: string; readonly text: string }>;
  readonly createdAt: number;
}

export interface ActivePolicyRecord {
  readonly digest: string;
  readonly activatedAt: number;
}

/** A grant the issuer signed or accepted in a chain. */
export interface GrantRecord {
  readonly jti: string;
  /** Trust domain ID of the issuer that anchors the chain. */
  readonly issuer: string;
  readonly rid: string;
  readonly depth: number;
  readonly taskId: string;
  readonly principalIss: string;
  readonly principalSub: string;
  /** The principal's groups when it created the root grant (empty on hop grants). */
  readonly principalGroups: readonly string[];
  readonly delegateJkt: string;
  readonly expiresAt: number;
  readonly compact: string;
  readonly createdAt: number;
  readonly revokedAt: number | null;
}

/** A writ the issuer minted. */
/** A writ a revocation selects directly, and the latest expiry among it and its descendants. */
export interface KillRoot {
  readonly writ: WritRecord;
  /** Unix ms: after it nothing the writ's revocation kills can still be presented. */
  readonly lastExpiresAt: number;
}

export interface WritRecord {
  readonly jti: string;
  readonly spiffeId: string;
  /** The writ's cnf key thumbprint. */
  readonly jkt: string;
  readonly chainDigest: Buffer;
  /** Grant ids, root first. */
  readonly lineage: readonly string[];
  readonly taskId: string;
  readonly evidenceDigest: Buffer;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** The principal, `iss#sub`. */
  readonly principal: string;
  /** The writ this one was delegated from (its last grant's `from.writ`); null for the root's holder. */
  readonly parentJti: string | null;
  /** The registration entry the agent's selectors matched. */
  readonly entryId: string;
  /** The selector that names the attested hardware (`tpm:ek_hash:<hex>`), or '' when none does. */
  readonly platform: string;
  /** The evidence type the agent attested with. */
  readonly evidenceType: string;
  /** Its Token Status List entry: list id and index (null for writs minted before status lists). */
  readonly statusList: number | null;
  readonly statusIdx: number | null;
  /** When a revocation killed it, and which (its sequence). */
  readonly revokedAt: number | null;
  readonly revokedSeq: number | null;
}

/** A task: what a principal's root grants are for; it ends when its time is up or someone ends it. */
export interface TaskRecord {
  readonly id: string;
  readonly principalIss: string;
  readonly principalSub: string;
  readonly goal: string;
  /** The latest end of any of its root grants (Unix ms). */
  readonly expiresAt: number;
  readonly createdAt: number;
  readonly endedAt: number | null;
  /** Who ended it (the revocation's actor). */
  readonly endedBy: string | null;
  readonly endReason: string | null;
}

/** One revocation: permanent, and the event relying parties receive (its `seq`). */
export interface RevocationRecord {
  /** Sequence number, strictly increasing; assigned by the store. */
  readonly seq: number;
  readonly kind: string;
  readonly target: string;
  readonly reason: string;
  /** "operator", "principal ISS#SUB" or "agent SPIFFE_ID (jkt ...)". */
  readonly actor: string;
  /** The principal concerned (`iss#sub`), or ''. */
  readonly principal: string;
  readonly at: number;
  /** The revocation this one was derived from (an entry or platform resolved into writs). */
  readonly derivedFrom: number | null;
  /** After this (Unix ms) it can no longer match a valid credential; null: never. */
  readonly expiresAt: number | null;
}

export type NewRevocation = Omit<RevocationRecord, 'seq'>;

/** What kills writs directly: a column of the writ record and the value it must have. */
export type WritMatch =
  | { readonly by: 'jti' | 'task' | 'principal' | 'spiffe_id' | 'jkt' | 'entry' | 'platform'; readonly value: string }
  | { readonly by: 'grant'; readonly value: string };

/** One Token Status List the issuer allocates indexes in. */
export interface StatusListRecord {
  readonly id: number;
  readonly size: number;
  readonly allocated: number;
  readonly createdAt: number;
}

/** One policy decision, with the actor apart from the principal. */
export interface DecisionRecord {
  readonly at: number;
  /** Who asked: the principal (`iss#sub`) at grant creation, the agent's SPIFFE ID at a handshake. */
  readonly actor: string;
  /** The human on whose behalf: `iss#sub`. */
  readonly principal: string;
  readonly action: string;
  readonly decision: 'allow' | 'deny' | 'escalate';
  readonly snapshot: string;
  readonly policies: readonly string[];
  readonly reason: string;
}

/**
 * One audit record as stored: its canonical bytes (the Merkle leaf, src/audit/record.ts) and
 * leaf hash, plus columns derived from it for queries. Only `canonical` is authenticated by the
 * tree; the derived columns are an index, never evidence.
 */
export interface AuditRecordRow {
  /** Position in the log, from 0: the Merkle leaf index. */
  readonly seq: number;
  readonly at: number;
  readonly event: string;
  /** The actor as queried: an agent's SPIFFE ID, `iss#sub` of a principal, `operator <id>`, or `issuer`. */
  readonly actor: string;
  /** `iss#sub`, or ''. */
  readonly principal: string;
  /** The task id, or ''. */
  readonly task: string;
  readonly canonical: Buffer;
  readonly leafHash: Buffer;
}

/** A complete subtree of the audit tree: its in-order node id (src/audit/merkle.ts `nodeId`) and hash. */
export interface AuditNode {
  readonly id: number;
  readonly hash: Buffer;
}

/** A checkpoint the issuer signed: one per tree size. */
export interface AuditCheckpointRecord {
  readonly size: number;
  readonly root: Buffer;
  /** The whole signed note (C2SP tlog-checkpoint). */
  readonly note: string;
  readonly signedAt: number;
}

/** The issuer's Ed25519 audit key. */
export interface AuditKeyRecord {
  readonly id: string;
  /** Its signed-note key name: the log's origin. */
  readonly name: string;
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Buffer;
  /** PKCS#8 private key sealed by the key encryptor (the record id as associated data). */
  readonly sealedKey: Buffer;
  readonly state: 'active' | 'retired';
  readonly createdAt: number;
}

/**
 * The state of an approval request as stored. A pending one past its expiry is expired whether
 * or not housekeeping has stored it so yet (`expireApproval`, once, with its audit record).
 */
export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired';

/**
 * Which approval requests `listApprovals` returns, newest first (created_at, then id, both
 * descending). With `now`, `state: 'pending'` means pending and unexpired at `now`, and
 * `state: 'expired'` also takes in pending requests past their expiry; without it, the stored state.
 */
export interface ApprovalFilter {
  readonly state?: ApprovalState;
  readonly taskId?: string;
  readonly principal?: { readonly iss: string; readonly sub: string };
  /** Keyset paging: only requests after this one in that order. */
  readonly after?: { readonly createdAt: number; readonly id: string };
  readonly now?: number;
}

/** An escalation request an approver decides (issue 14; docs/policy.md §Approvals). */
export interface ApprovalRecord {
  /** Random, 22 base64url characters. */
  readonly id: string;
  readonly taskId: string;
  readonly principalIss: string;
  readonly principalSub: string;
  /** The requesting agent's SPIFFE ID. */
  readonly actor: string;
  /** Its writ's cnf key thumbprint. */
  readonly actorJkt: string;
  /** The writ it presented. */
  readonly writJti: string;
  /** That writ's grant ids, root first. */
  readonly lineage: readonly string[];
  /** The concrete action and resource asked for. */
  readonly action: string;
  readonly resource: string;
  /** The agent's reason. */
  readonly reason: string;
  /** The policies (or grant escalation rules) that asked for an approval. */
  readonly policies: readonly string[];
  readonly snapshot: string;
  /** The canonical (RFC 8785) approval request document; its SHA-256 is the WebAuthn challenge. */
  readonly request: string;
  /** Lower-case hex SHA-256 of `request`. */
  readonly digest: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly state: ApprovalState;
  readonly decidedAt: number | null;
  /** The approver, `iss#sub`. */
  readonly decidedBy: string | null;
  readonly decisionReason: string | null;
  /** The passkey that approved it (base64url credential id). */
  readonly credentialId: string | null;
  /** The step-up grant issued on approval (compact JWS). */
  readonly stepUp: string | null;
}

/** The outcome of a decision, written once over a pending, unexpired request. */
export interface ApprovalDecision {
  readonly state: 'approved' | 'denied';
  readonly decidedAt: number;
  readonly decidedBy: string;
  readonly decisionReason: string | null;
  readonly credentialId: string | null;
  readonly stepUp: string | null;
}

/** A WebAuthn credential (passkey) registered to an approver's OIDC identity. */
export interface PasskeyRecord {
  /** The credential id, base64url. */
  readonly id: string;
  readonly ownerIss: string;
  readonly ownerSub: string;
  /** The COSE_Key public key (RFC 9052 §7) the authenticator returned at registration. */
  readonly publicKey: Buffer;
  readonly signCount: number;
  readonly createdAt: number;
  readonly usedAt: number | null;
}

/**
 * A passkey registration ceremony in flight (docs/policy.md §Registering a passkey), shared by
 * every replica: its challenge is taken out on first use.
 */
export interface PasskeyCeremonyRecord {
  /** The registration challenge, base64url (32 random bytes). */
  readonly challenge: string;
  /** The approver it was given to, `iss#sub`. */
  readonly owner: string;
  /** The canonical registration statement an existing passkey must sign; null for a first passkey. */
  readonly statement: string | null;
  readonly createdAt: number;
  readonly expiresAt: number;
}

/**
 * Operations available inside and outside a transaction. Called on the Store (outside a
 * transaction) each one is atomic on its own.
 */
export interface StoreTx {
  createEntry(e: Entry, selectorsKey: string): Promise<void>;
  getEntry(id: string): Promise<Entry | undefined>;
  listEntries(): Promise<Entry[]>;
  /** Entries that have at least one of these selectors ("type:value"); callers check the rest. */
  listEntriesBySelectors(selectors: readonly string[]): Promise<Entry[]>;
  /** True when an entry with this SPIFFE ID and exactly these selectors exists. */
  entryExists(spiffeId: string, selectorsKey: string): Promise<boolean>;
  deleteEntry(id: string): Promise<boolean>;

  createJoinToken(t: JoinTokenRecord): Promise<void>;
  getJoinToken(id: string): Promise<JoinTokenRecord | undefined>;
  /**
   * Marks the token used if it is unused and unexpired (`expiresAt > now`) at `now`; false if it
   * was not. Once only: of any number of concurrent callers, on any number of stores sharing the
   * database, exactly one gets true.
   */
  consumeJoinToken(id: string, now: number): Promise<boolean>;
  /** Deletes tokens that expired before `before`; returns how many. */
  pruneJoinTokens(before: number): Promise<number>;

  listCaKeys(): Promise<CaKeyRecord[]>;
  putCaKey(k: CaKeyRecord): Promise<void>;
  setCaKeyState(id: string, state: CaKeyState): Promise<void>;
  deleteCaKey(id: string): Promise<void>;

  getBundleSequence(): Promise<number>;
  /** Increments and returns the bundle sequence. */
  bumpBundleSequence(): Promise<number>;

  getTpmRecord(ekHash: string): Promise<TpmRecord | undefined>;
  /** Inserts or replaces the record of one EK. */
  putTpmRecord(r: TpmRecord): Promise<void>;

  putPolicySnapshot(r: PolicySnapshotRecord): Promise<void>;
  getPolicySnapshot(digest: string): Promise<PolicySnapshotRecord | undefined>;
  /** Newest first. */
  listPolicySnapshots(): Promise<PolicySnapshotRecord[]>;
  setActivePolicy(r: ActivePolicyRecord): Promise<void>;
  getActivePolicy(): Promise<ActivePolicyRecord | undefined>;

  /** Inserts a grant; throws StoreError if the id exists. */
  putGrant(r: GrantRecord): Promise<void>;
  getGrant(jti: string): Promise<GrantRecord | undefined>;
  recordWrit(r: WritRecord): Promise<void>;
  getWrit(jti: string): Promise<WritRecord | undefined>;
  recordDecision(r: DecisionRecord): Promise<void>;
  /** Newest first (by insertion), at most `limit` (an integer from 0 to MAX_DECISIONS_PER_READ). */
  listDecisions(limit: number): Promise<DecisionRecord[]>;

  /** Marks a grant revoked at `at`; false if it is unknown or was revoked already. */
  revokeGrant(jti: string, at: number): Promise<boolean>;
  /** Grants of a task, oldest first, at most `limit`. */
  listGrantsByTask(taskId: string, limit: number): Promise<GrantRecord[]>;
  /** Writs of a task, oldest first, at most `limit`. */
  listWritsByTask(taskId: string, limit: number): Promise<WritRecord[]>;
  /**
   * Marks revoked (at `at`, by revocation `seq`) every unrevoked writ that `match` selects and every
   * writ delegated from one of those, at any depth; returns how many it marked.
   */
  revokeWrits(match: WritMatch, at: number, seq: number): Promise<number>;
  /**
   * Writs `match` selects directly (in any state) whose kill set (the writ and every writ
   * delegated from it, at any depth) still holds one unexpired at `now`, oldest first, at most
   * `limit`, each with the latest expiry in its kill set.
   */
  killRoots(match: WritMatch, now: number, limit: number): Promise<KillRoot[]>;
  /** How many writs (in any state) `match` selects directly. */
  countWrits(match: WritMatch): Promise<number>;
  /** True when some grant names this key as its delegate. */
  keyDelegated(jkt: string): Promise<boolean>;
  /** True when some task belongs to this principal. */
  principalKnown(iss: string, sub: string): Promise<boolean>;

  getTask(id: string): Promise<TaskRecord | undefined>;
  /** Inserts a task; throws StoreError if the id exists. */
  createTask(t: TaskRecord): Promise<void>;
  /** Moves a task's end later (never earlier). */
  extendTask(id: string, expiresAt: number): Promise<void>;
  /** Ends a task; false if it is unknown or has ended already. */
  endTask(id: string, at: number, by: string, reason: string): Promise<boolean>;
  /** Newest first, at most `limit`. */
  listTasks(limit: number): Promise<TaskRecord[]>;

  /** Inserts a revocation and returns its sequence; throws StoreError if (kind, target) was revoked before. */
  insertRevocation(r: NewRevocation): Promise<number>;
  getRevocation(kind: string, target: string): Promise<RevocationRecord | undefined>;
  /** The revocations among these `kind:target` keys. */
  findRevocations(keys: readonly string[]): Promise<RevocationRecord[]>;
  /** Revocations with `seq > after`, in sequence order, at most `limit`. */
  listRevocationsSince(after: number, limit: number): Promise<RevocationRecord[]>;
  /** The oldest and newest sequence held (0, 0 when there is none). */
  revocationBounds(): Promise<{ oldest: number; newest: number }>;
  /** Deletes revocations that can no longer match anything valid (`expiresAt < before`); returns how many. */
  pruneRevocations(before: number): Promise<number>;

  /** The list new writs take indexes in: the newest. */
  currentStatusList(): Promise<StatusListRecord | undefined>;
  createStatusList(r: StatusListRecord): Promise<void>;
  /** True when `idx` of list `list` is given to a writ. */
  statusIndexTaken(list: number, idx: number): Promise<boolean>;
  /** Counts one more index given in `list`. */
  countStatusAllocation(list: number): Promise<void>;
  getStatusList(id: number): Promise<StatusListRecord | undefined>;
  /** Indexes of revoked writs in list `list`. */
  revokedStatusIndexes(list: number): Promise<number[]>;

  recordIssued(r: IssuedSvidRecord): Promise<void>;
  countIssued(): Promise<number>;

  /** Inserts an attested agent; throws StoreError if its id or serial exists. */
  putAttestedAgent(r: AttestedAgentRecord): Promise<void>;
  /** The attested agent whose latest X.509-SVID has this serial (lower-case hex), if any. */
  getAttestedAgentBySerial(serial: string): Promise<AttestedAgentRecord | undefined>;
  /**
   * Moves agent `id` from its latest SVID `fromSerial` to `next`, counting one renewal; false
   * (and nothing written) unless `fromSerial` is still its latest. Once only: of any number of
   * concurrent callers with the same `fromSerial`, on any number of stores, exactly one gets true.
   */
  renewAttestedAgent(id: string, fromSerial: string, next: AgentSvidUpdate): Promise<boolean>;
  /** True when some attested agent's latest SVID has this key (`jkt`) or this platform selector. */
  attestedAgentKnown(by: 'jkt' | 'platform', value: string): Promise<boolean>;
  /** Deletes attested agents whose latest SVID expired before `before` (they cannot renew); returns how many. */
  pruneAttestedAgents(before: number): Promise<number>;

  /**
   * How many audit records the log holds (the tree size): also the place the next record
   * takes. Read it in the transaction that appends there; of concurrent transactions inserting
   * the same place, one commits and the others fail (on PostgreSQL as a retryable conflict, so
   * Store.transaction runs them again), so places are never given twice.
   */
  getAuditSize(): Promise<number>;
  /**
   * The tree size and the leaf hash of the last record (none in an empty log), from one
   * statement: what an append reads, in its transaction, to take its place and to know the tree
   * it extends is the one it remembers (src/audit/log.ts).
   */
  getAuditTail(): Promise<{ readonly size: number; readonly lastLeaf: Buffer | undefined }>;
  /** The stored tree nodes among these ids (missing ones are absent from the map). */
  getAuditNodes(ids: readonly number[]): Promise<Map<number, Buffer>>;
  /** The stored leaf hashes of these records (missing ones are absent from the map). */
  getAuditLeafHashes(seqs: readonly number[]): Promise<Map<number, Buffer>>;
  /** Stores new tree nodes; throws StoreError if one exists (nodes are written once). */
  putAuditNodes(nodes: readonly AuditNode[]): Promise<void>;
  /** Inserts a record; throws StoreError if its seq exists. */
  insertAuditRecord(r: AuditRecordRow): Promise<void>;
  getAuditRecord(seq: number): Promise<AuditRecordRow | undefined>;
  /** Records with `seq >= from`, in order, at most `limit`. */
  listAuditRecords(from: number, limit: number): Promise<AuditRecordRow[]>;
  /**
   * Records with `seq < before`, newest first, at most `limit`; with `by`, only those whose
   * derived column (task id, principal `iss#sub`, actor) equals the value (never `''`, which
   * stands for "none" and finds nothing). Served by an index kept in batches (sql-store.ts
   * AUDIT_INDEX_BATCH) plus the records past the last complete batch, in one statement.
   */
  findAuditRecords(
    by: { readonly column: 'task' | 'principal' | 'actor'; readonly value: string } | undefined,
    before: number,
    limit: number,
  ): Promise<AuditRecordRow[]>;
  /** Inserts a signed checkpoint; throws StoreError if one of that size exists. */
  putAuditCheckpoint(c: AuditCheckpointRecord): Promise<void>;
  /** The checkpoint of the largest tree signed, if any. */
  latestAuditCheckpoint(): Promise<AuditCheckpointRecord | undefined>;
  getAuditCheckpoint(size: number): Promise<AuditCheckpointRecord | undefined>;
  /** Inserts an audit key; throws StoreError if its id exists or a second one would be active. */
  putAuditKey(k: AuditKeyRecord): Promise<void>;
  /** Oldest first. */
  listAuditKeys(): Promise<AuditKeyRecord[]>;
  /** Deletes issuance records that expired before `before`. */
  pruneIssued(before: number): Promise<number>;

  createApproval(r: ApprovalRecord): Promise<void>;
  getApproval(id: string): Promise<ApprovalRecord | undefined>;
  /** Newest first, filtered in SQL (ApprovalFilter), at most `limit`. */
  listApprovals(filter: ApprovalFilter, limit: number): Promise<ApprovalRecord[]>;
  /**
   * How many requests are pending and unexpired at `now` for this task (and, given, this writ),
   * counting no further than `atMost` (a cap check reads at most that many index entries).
   */
  countPendingApprovals(taskId: string, writJti: string | undefined, now: number, atMost: number): Promise<number>;
  /** The newest request pending and unexpired at `now` from this writ for exactly this permission. */
  findPendingApproval(writJti: string, action: string, resource: string, now: number): Promise<ApprovalRecord | undefined>;
  /** Requests still stored as pending whose expiry is at or before `now`, soonest expired first, at most `limit`. */
  listExpiredPending(now: number, limit: number): Promise<ApprovalRecord[]>;
  /** Decides a request that is pending and unexpired at `now`; false (nothing written) otherwise. */
  decideApproval(id: string, d: ApprovalDecision, now: number): Promise<boolean>;
  /** Stores a pending request past its expiry at `now` as expired; false (nothing written) when it is not. */
  expireApproval(id: string, now: number): Promise<boolean>;
  putPasskey(r: PasskeyRecord): Promise<void>;
  getPasskey(id: string): Promise<PasskeyRecord | undefined>;
  listPasskeys(ownerIss: string, ownerSub: string): Promise<PasskeyRecord[]>;
  /** Moves a passkey's sign count from `from` to `to` (a use at `at`); false when it no longer is `from`. */
  usePasskey(id: string, from: number, to: number, at: number): Promise<boolean>;
  /** Records a registration ceremony; throws StoreError if its challenge exists. */
  putPasskeyCeremony(c: PasskeyCeremonyRecord): Promise<void>;
  /** Removes and returns the ceremony of `challenge` (one statement: of racing takers, one gets it), or undefined. */
  takePasskeyCeremony(challenge: string): Promise<PasskeyCeremonyRecord | undefined>;
  /** An owner's ceremonies still live at `now`, oldest first. */
  listPasskeyCeremonies(owner: string, now: number): Promise<PasskeyCeremonyRecord[]>;
  /** Ceremonies still live at `now`, all owners. */
  countPasskeyCeremonies(now: number): Promise<number>;
  /** Forgets ceremonies that ended at or before `now`; returns how many. */
  prunePasskeyCeremonies(now: number): Promise<number>;
}

export interface Store extends StoreTx {
  /**
   * Runs `fn` atomically: all of its writes commit, or none do, and `transaction` resolves to
   * what `fn` resolved to.
   * - Serializable: concurrent transactions, also from other stores on the same database, have
   *   the effect of running one after another (a read-check-write such as the TPM counters'
   *   cannot lose an update).
   * - `fn` may run more than once: PostgreSQL retries a transaction that failed to serialize. It
   *   must act only through `tx`, or do nothing outside it that is unsafe to repeat; the result
   *   is that of the run that committed.
   * - If `fn` throws, everything rolls back and that same error comes out. If a statement fails,
   *   the transaction is over: later statements and the commit are refused, it rolls back, and
   *   a StoreError comes out even if `fn` caught the first one.
   * - `tx` is valid only until `fn` settles; inside `fn` use `tx`, never the Store itself (on
   *   SQLite that waits for this very transaction; on PostgreSQL it runs outside it).
   */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  /** Waits for the transactions in progress, then releases the database; every later call fails. */
  close(): Promise<void>;
}
