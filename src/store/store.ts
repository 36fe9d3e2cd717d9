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
import type { Entry } from '../registration/entry.js';

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

  recordIssued(r: IssuedSvidRecord): Promise<void>;
  countIssued(): Promise<number>;
  /** Deletes issuance records that expired before `before`. */
  pruneIssued(before: number): Promise<number>;
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
