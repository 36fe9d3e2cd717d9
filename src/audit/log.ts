/**
 * The audit log over the store: appending a record inside the caller's transaction (so the
 * record commits with the change it describes, or neither does; a transaction's records are
 * written together just before it commits), signed checkpoints, proofs.
 * The tree's nodes of 16 leaves and up are stored as they are completed (merkle.ts), the lower
 * ones hashed again from the records' leaf hashes, so an append reads and writes O(log n) rows
 * and a proof reads O(log n) rows.
 */
import { AuditError } from '../errors.js';
import { afterCommit, beforeCommit, transactionOwner } from '../store/before-commit.js';
import type { AuditNode, AuditRecordRow, Store, StoreTx } from '../store/store.js';
import { type Checkpoint, checkNextCheckpoint, signCheckpoint, verifyCheckpoint } from './checkpoint.js';
import type { HighWater, HighWaterStore } from './high-water.js';
import {
  appendNodes,
  appendSiblings,
  consistencyProof,
  inclusionProof,
  leafHash,
  MAX_TREE_SIZE,
  MemoryTree,
  type NodeReader,
  nodeHash,
  nodeId,
  rangeNodes,
  rootHash,
  verifyConsistency,
} from './merkle.js';
import type { NoteSigner, NoteVerifier } from './note.js';
import { type AuditActor, type AuditRecord, type CheckedNewRecord, checkNewRecord, type NewAuditRecord, parseRecord, placeRecord } from './record.js';

/**
 * The lowest level of the tree the store keeps nodes of (docs/audit.md "Storage"): complete
 * subtrees of 16 leaves and more. A node below it is hashed again from its at most 8 leaf
 * hashes, which the records hold; so an append writes a node for one record in 8, not two for
 * every record.
 */
export const STORED_LEVEL = 4;

/** The level of the node with in-order id `id`: the number of trailing one bits of the id. */
export function nodeLevel(id: number): number {
  let level = 0;
  for (let x = id + 1; x % 2 === 0; x /= 2) level++;
  return level;
}

/** The hash of the complete subtree over these leaf hashes (a power of two of them, in order). */
function subtreeHash(leaves: readonly Buffer[]): Buffer {
  let level = leaves;
  while (level.length > 1) level = Array.from({ length: level.length / 2 }, (_, j) => nodeHash(level[2 * j]!, level[2 * j + 1]!));
  return level[0]!;
}

/**
 * The tree as the store holds it, read through one transaction or the store itself: nodes of
 * STORED_LEVEL and up as stored, lower ones hashed from the records' leaf hashes (one read
 * each; a node whose leaves are not all there is absent).
 */
export function storeNodes(tx: Pick<StoreTx, 'getAuditNodes' | 'getAuditLeafHashes'>): NodeReader {
  return {
    async nodes(ids) {
      const stored = ids.filter((id) => nodeLevel(id) >= STORED_LEVEL);
      const out = stored.length === 0 ? new Map<number, Buffer>() : await tx.getAuditNodes(stored);
      const spans = ids
        .filter((id) => nodeLevel(id) < STORED_LEVEL)
        .map((id) => {
          const level = nodeLevel(id);
          const start = ((id + 1 - 2 ** level) / 2 ** (level + 1)) * 2 ** level;
          return { id, seqs: Array.from({ length: 2 ** level }, (_, k) => start + k) };
        });
      if (spans.length === 0) return out;
      const leaves = await tx.getAuditLeafHashes([...new Set(spans.flatMap((s) => s.seqs))]);
      for (const { id, seqs } of spans) {
        const hs = seqs.map((seq) => leaves.get(seq));
        if (hs.every((h) => h !== undefined)) out.set(id, subtreeHash(hs as Buffer[]));
      }
      return out;
    },
  };
}

/** The actor as the query column holds it. */
export function actorKey(a: AuditActor): string {
  switch (a.kind) {
    case 'agent':
      return a.spiffeId;
    case 'principal':
      return `${a.iss}#${a.sub}`;
    case 'operator':
      return `operator ${a.id}`;
    case 'issuer':
      return 'issuer';
  }
}

/** What appends records inside a transaction (appendAudit; a benchmark's baseline injects a no-op). */
export type AuditAppender = (tx: StoreTx, r: NewAuditRecord) => Promise<unknown>;

/** The records appended in each transaction so far (checked), written when it commits. */
const pending = new WeakMap<StoreTx, CheckedNewRecord[]>();

/**
 * Appends one record inside `tx`, the transaction that makes the change it records. The record
 * is checked now (a bad one fails this call); it takes its place, and is written with the other
 * records of `tx`, just before `tx` commits (appendRecords), in the order appended. A rollback
 * of `tx` takes the record (and its place) back too. `tx` must be a Store.transaction's.
 */
export async function appendAudit(tx: StoreTx, r: NewAuditRecord): Promise<void> {
  const checked = checkNewRecord(r);
  let list = pending.get(tx);
  if (!list) {
    const records: CheckedNewRecord[] = [];
    beforeCommit(tx, async () => {
      pending.delete(tx);
      await appendChecked(tx, records);
    });
    pending.set(tx, records);
    list = records;
  }
  list.push(checked);
}

/**
 * Appends records in order as one step inside `tx`: one read of their first place, the tree's
 * right frontier (the complete subtrees the new leaves combine with; remembered, or read in one
 * statement), the nodes and records written after. The rows and nodes written are exactly those
 * of appending the records one by one (test/unit/audit-log.test.ts compares the two). Returns
 * them with their places.
 */
export async function appendRecords(tx: StoreTx, rs: readonly NewAuditRecord[]): Promise<AuditRecord[]> {
  return appendChecked(tx, rs.map(checkNewRecord));
}

/**
 * The right frontier of the tree as this process last committed it, per store (the key
 * transactionOwner gives): the complete subtrees that make up the tree of `size` leaves
 * (rangeNodes(0, size)), with their hashes, and the leaf hash of its last record. An append
 * takes its left siblings from here only when the store's tree has that size and that last
 * leaf (read in one statement, getAuditTail); any other tree (another replica appended since,
 * this process never did, or the database lost records and others took their places, as after
 * a failover to a standby that lacked them) has the frontier read from the store. It is set
 * only after a commit (afterCommit), so a rolled-back append, whose places the next one takes
 * again, never leaves its hashes behind.
 */
interface Frontier {
  readonly size: number;
  readonly lastLeaf: Buffer;
  readonly hashes: ReadonlyMap<number, Buffer>;
}
const frontiers = new WeakMap<object, Frontier>();

const frontierIds = (size: number): number[] => rangeNodes(0, size).map((n) => nodeId(n.level, n.index));

async function appendChecked(tx: StoreTx, rs: readonly CheckedNewRecord[]): Promise<AuditRecord[]> {
  if (rs.length === 0) return [];
  const tail = await tx.getAuditTail();
  const first = tail.size;
  if (first + rs.length > MAX_TREE_SIZE) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit: the log holds at most ${MAX_TREE_SIZE} records`);
  // Every left sibling the new leaves combine with that no earlier leaf of this batch completes
  // is a complete subtree of the tree of `first` leaves: its right frontier, remembered from
  // this process's last append or read in one statement (and a node missing from the store is
  // named when a leaf needs it).
  const owner = transactionOwner(tx);
  const cached = frontiers.get(owner);
  const remembered = cached !== undefined && cached.size === first && tail.lastLeaf !== undefined && cached.lastLeaf.equals(tail.lastLeaf);
  const known = new Map<number, Buffer>(remembered ? cached.hashes : first === 0 ? [] : await storeNodes(tx).nodes(frontierIds(first)));
  const nodes: AuditNode[] = [];
  const rows: AuditRecordRow[] = [];
  const out: AuditRecord[] = [];
  for (let k = 0; k < rs.length; k++) {
    const seq = first + k;
    const { record, canonical } = placeRecord(rs[k]!, seq);
    const leaf = leafHash(canonical);
    const siblings = appendSiblings(seq).map((n) => {
      const h = known.get(nodeId(n.level, n.index));
      if (!h) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit: tree node (${n.level}, ${n.index}) is missing; run writ audit verify-log`);
      return h;
    });
    for (const n of appendNodes(seq, leaf, siblings)) {
      const id = nodeId(n.level, n.index);
      known.set(id, n.hash);
      if (n.level >= STORED_LEVEL) nodes.push({ id, hash: n.hash });
    }
    rows.push({
      seq,
      at: record.at,
      event: record.event,
      actor: actorKey(record.actor),
      principal: record.principal ? `${record.principal.iss}#${record.principal.sub}` : '',
      task: record.task ?? '',
      canonical,
      leafHash: leaf,
    });
    out.push(record);
  }
  // Records first: two transactions that read the same size collide on the first record's key
  // (the conflict PostgreSQL retries, postgres.ts), before either writes a node.
  for (const row of rows) await tx.insertAuditRecord(row);
  if (nodes.length > 0) await tx.putAuditNodes(nodes);
  // The frontier of the tree these records make, if every part of it is known (one the store
  // lacked is read again, and named, by the next append that needs it).
  const size = first + rs.length;
  const next = new Map<number, Buffer>();
  for (const id of frontierIds(size)) {
    const h = known.get(id);
    if (!h) return out;
    next.set(id, h);
  }
  const lastLeaf = rows[rows.length - 1]!.leafHash;
  afterCommit(tx, () => frontiers.set(owner, { size, lastLeaf, hashes: next }));
  return out;
}

/** Rows read per page and at most per listing (a listing with several filters reads through one index). */
const LIST_PAGE = 1000;
const MAX_LIST_SCAN = 100_000;

export interface SignedCheckpoint {
  readonly checkpoint: Checkpoint;
  /** The whole signed note. */
  readonly note: string;
}

export interface InclusionBundle {
  /** The record's canonical bytes. */
  readonly record: Buffer;
  readonly seq: number;
  readonly size: number;
  readonly proof: readonly Buffer[];
}

export interface AuditLogDeps {
  readonly store: Store;
  /** The audit key; its name is the log's origin. */
  readonly signer: NoteSigner;
  readonly clock: { now(): Date };
  /** The last signed size and root, kept outside the database (high-water.ts); absent: the database's last checkpoint only. */
  readonly highWater?: HighWaterStore;
  /** Told of every refusal to sign (a fork or a rolled-back database), before it is thrown: metrics and a loud log line. */
  readonly onInconsistent?: (e: AuditError) => void;
}

/** Checkpoints and proofs over the stored log. */
export class AuditLog {
  constructor(private readonly deps: AuditLogDeps) {}

  get origin(): string {
    return this.deps.signer.name;
  }

  /** The audit key's public half. */
  get verifier(): NoteVerifier {
    return this.deps.signer;
  }

  /** The audit verifier key string relying parties and witnesses pin. */
  get verifierKey(): string {
    return this.deps.signer.vkey;
  }

  /**
   * Records matching every given filter, newest first, at most `limit`: read through the index
   * of the first filter given (task, then principal, then actor), the others checked on the
   * parsed record, scanning at most MAX_LIST_SCAN rows.
   */
  async list(f: { task?: string; principal?: string; actor?: string; since?: number }, limit: number): Promise<AuditRecord[]> {
    const { store } = this.deps;
    const by = f.task
      ? ({ column: 'task', value: f.task } as const)
      : f.principal
        ? ({ column: 'principal', value: f.principal } as const)
        : f.actor
          ? ({ column: 'actor', value: f.actor } as const)
          : undefined;
    const out: AuditRecord[] = [];
    let before = await store.getAuditSize();
    for (let scanned = 0; scanned < MAX_LIST_SCAN && out.length < limit; ) {
      const rows = await store.findAuditRecords(by, before, LIST_PAGE);
      if (rows.length === 0) break;
      scanned += rows.length;
      for (const row of rows) {
        const r = parseRecord(row.canonical);
        // `at` is taken before the transaction that reserves `seq`, so seq order is not quite time order: skip, do not stop.
        if (f.since !== undefined && r.at < f.since) continue;
        if (f.task && r.task !== f.task) continue;
        if (f.principal && (r.principal ? `${r.principal.iss}#${r.principal.sub}` : '') !== f.principal) continue;
        if (f.actor && actorKey(r.actor) !== f.actor) continue;
        out.push(r);
        if (out.length === limit) return out;
      }
      before = rows[rows.length - 1]!.seq;
    }
    return out;
  }

  /** A record's canonical bytes. */
  async record(seq: number): Promise<Buffer> {
    const row = await this.deps.store.getAuditRecord(seq);
    if (!row) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit: no record ${seq}`);
    return row.canonical;
  }

  /**
   * Signs a checkpoint of the whole log as it is now, unless the last signed one already covers
   * it (then that one is returned). Refuses (ERR_AUDIT_INCONSISTENT, nothing signed) when the
   * stored tree does not extend the last signed checkpoint, or the high-water mark: the size
   * and root this issuer last signed, which survives a database restored from a backup. The
   * mark is written (durably) before the signature is made, so no signature exists that the
   * mark does not cover.
   */
  async checkpoint(): Promise<SignedCheckpoint> {
    try {
      return await this.signCheckpoint();
    } catch (e) {
      if (e instanceof AuditError && e.code === 'ERR_AUDIT_INCONSISTENT') this.deps.onInconsistent?.(e);
      throw e;
    }
  }

  private signCheckpoint(): Promise<SignedCheckpoint> {
    const { store, signer, clock, highWater } = this.deps;
    return store.transaction(async (tx) => {
      // Read inside the transaction: a checkpoint signed by a concurrent call moved the mark before this one began.
      const mark = highWater?.read();
      const size = await tx.getAuditSize();
      const reader = storeNodes(tx);
      const root = await rootHash(reader, size);
      if (mark) await this.extendsMark(mark, reader, size, root);
      const lastRow = await tx.latestAuditCheckpoint();
      // The stored note is re-verified: a checkpoint row edited in the database is not trusted.
      const last = lastRow && verifyCheckpoint(lastRow.note, signer);
      if (lastRow && last && last.size === size && last.root.equals(root)) {
        // Replicas share the audit key through the database, each with its own mark: a checkpoint
        // another replica signed (or one signed before this replica had a mark) raises this mark
        // too, so a later rollback below it is refused here as well. The tree is the mark's tree
        // or extends it (extendsMark above), so the adopted checkpoint is consistent with the mark.
        if (!mark || mark.size < last.size) highWater?.write(last);
        return { checkpoint: last, note: lastRow.note };
      }
      const next = { origin: this.origin, size, root };
      const proof = last && last.size <= size ? await consistencyProof(reader, last.size, size) : [];
      // Checked before the mark moves: signNextCheckpoint refuses a tree that does not extend the database's last checkpoint.
      checkNextCheckpoint(last, next, proof);
      // The tree extends both the mark and the database's newest verified checkpoint, so the new
      // mark covers every checkpoint this replica or another one signed into this database.
      if (!mark || mark.size !== size || !mark.root.equals(root)) highWater?.write(next);
      const note = signCheckpoint(next, signer);
      await tx.putAuditCheckpoint({ size, root, note, signedAt: clock.now().getTime() });
      return { checkpoint: next, note };
    });
  }

  /** Refuses a tree that is not a consistent extension of the high-water mark. */
  private async extendsMark(mark: HighWater, reader: NodeReader, size: number, root: Buffer): Promise<void> {
    const refuse = (why: string): never => {
      throw new AuditError(
        'ERR_AUDIT_INCONSISTENT',
        `audit(checkpoint): REFUSING TO SIGN: ${why}; the database may have been rolled back or rewritten (restored from a backup?), and a checkpoint of it would fork the log`,
      );
    };
    if (mark.origin !== this.origin) refuse(`the high-water mark is for the log ${JSON.stringify(mark.origin)}, not ${JSON.stringify(this.origin)}`);
    if (size < mark.size) refuse(`the log holds ${size} records, fewer than the ${mark.size} this issuer last signed`);
    if (size === mark.size) {
      if (!root.equals(mark.root)) refuse(`the tree of ${size} records has another root than the one this issuer signed`);
      return;
    }
    try {
      verifyConsistency(mark.size, size, await consistencyProof(reader, mark.size, size), mark.root, root);
    } catch (e) {
      refuse(`the tree of ${size} records does not extend the ${mark.size} this issuer last signed (${(e as Error).message})`);
    }
  }

  /** The latest signed checkpoint, if one was made. */
  async latest(): Promise<SignedCheckpoint | undefined> {
    const row = await this.deps.store.latestAuditCheckpoint();
    if (!row) return undefined;
    return { checkpoint: verifyCheckpoint(row.note, this.deps.signer), note: row.note };
  }

  /** A record and its inclusion proof in the tree of `size` records. */
  async prove(seq: number, size: number): Promise<InclusionBundle> {
    const { store } = this.deps;
    return store.transaction(async (tx) => {
      const have = await tx.getAuditSize();
      if (!Number.isSafeInteger(size) || size > have) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit: the log holds ${have} records, not ${size}`);
      const row = await tx.getAuditRecord(seq);
      if (!row || seq >= size) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit: no record ${seq} in the tree of ${size}`);
      return { record: row.canonical, seq, size, proof: await inclusionProof(storeNodes(tx), seq, size) };
    });
  }

  /** The consistency proof from the tree of `size1` records to that of `size2`. */
  async consistency(size1: number, size2: number): Promise<Buffer[]> {
    return this.deps.store.transaction(async (tx) => {
      const have = await tx.getAuditSize();
      if (!Number.isSafeInteger(size2) || size2 > have) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit: the log holds ${have} records, not ${size2}`);
      return consistencyProof(storeNodes(tx), size1, size2);
    });
  }
}

/** The outcome of recomputing the log from its records; `seq` null when no single record can be named. */
export type LogCheck =
  | { readonly ok: true; readonly size: number; readonly root: Buffer }
  | { readonly ok: false; readonly seq: number | null; readonly problem: string };

/** Records read at once by verifyStoredLog: with their tree nodes (about two each) under one read's limit. */
const VERIFY_BATCH = 400;

/**
 * Recomputes the whole tree from the stored records, in order, and names the first record
 * whose place, bytes, leaf hash or stored tree nodes do not match (the operator's
 * `verify-log`); then checks the recomputed tree against the latest signed checkpoint, which
 * catches a rewrite that also rewrote the hashes.
 */
export async function verifyStoredLog(store: Store, verifier: NoteVerifier): Promise<LogCheck> {
  // The checkpoint first: one signed while the records are read is not compared against a smaller size read before it.
  const last = await store.latestAuditCheckpoint();
  const size = await store.getAuditSize();
  const tree = new MemoryTree();
  for (let from = 0; from < size; from += VERIFY_BATCH) {
    const want = Math.min(VERIFY_BATCH, size - from);
    const rows = await store.listAuditRecords(from, want);
    const made: { seq: number; id: number; hash: Buffer }[] = [];
    for (let i = 0; i < want; i++) {
      const seq = from + i;
      const row = rows[i];
      if (!row || row.seq !== seq) return { ok: false, seq, problem: `record ${seq} is missing` };
      let r: AuditRecord;
      try {
        r = parseRecord(row.canonical);
      } catch (e) {
        return { ok: false, seq, problem: `record ${seq}: ${(e as Error).message}` };
      }
      if (r.seq !== seq) return { ok: false, seq, problem: `record ${seq} holds the bytes of record ${r.seq}` };
      const nodes = tree.appendWithNodes(row.canonical);
      if (!nodes[0]!.hash.equals(row.leafHash)) return { ok: false, seq, problem: `record ${seq}: its bytes do not hash to its stored leaf hash` };
      // Below STORED_LEVEL a node is hashed from the leaf hashes just checked: nothing stored to compare.
      for (const n of nodes) if (nodeLevel(n.id) >= STORED_LEVEL) made.push({ seq, ...n });
    }
    const stored = made.length === 0 ? new Map<number, Buffer>() : await store.getAuditNodes(made.map((n) => n.id));
    const wrong = made.find((n) => !stored.get(n.id)?.equals(n.hash));
    if (wrong) {
      // The records' leaf hashes are the only copy below STORED_LEVEL: the node names its span, not one record.
      const level = nodeLevel(wrong.id);
      const start = ((wrong.id + 1 - 2 ** level) / 2 ** (level + 1)) * 2 ** level;
      return {
        ok: false,
        seq: start,
        problem: `records ${start} to ${wrong.seq}: the stored tree does not match them (one was rewritten with its leaf hash, or the tree was)`,
      };
    }
  }
  const root = await rootHash(tree, size);
  if (last) {
    let c: Checkpoint;
    try {
      c = verifyCheckpoint(last.note, verifier);
    } catch (e) {
      return { ok: false, seq: null, problem: `the last signed checkpoint does not verify: ${(e as Error).message}` };
    }
    if (c.size > size) return { ok: false, seq: size, problem: `the log holds ${size} records, the last signed checkpoint ${c.size}` };
    if (!(await rootHash(tree, c.size)).equals(c.root)) {
      return { ok: false, seq: null, problem: `the first ${c.size} records do not hash to the root of the last signed checkpoint: the log was rewritten` };
    }
  }
  return { ok: true, size, root };
}
