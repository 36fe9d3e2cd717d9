/**
 * verify-log's engine against a real SQLite file edited behind the issuer's back: an UPDATE of
 * one record's decision, a deleted row, a swapped pair of rows, hashes rewritten to match; each
 * names the first record that does not match (or the checkpoint that catches the rewrite), and
 * the altered record's inclusion proof fails against the signed checkpoint.
 */
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog, appendAudit, nodeLevel, STORED_LEVEL, storeNodes, verifyStoredLog } from '../../src/audit/log.js';
import { leafHash, MemoryTree, nodeId, rootHash, verifyInclusion } from '../../src/audit/merkle.js';
import { noteSigner } from '../../src/audit/note.js';
import { encodeRecord, parseRecord } from '../../src/audit/record.js';
import { ManualClock } from '../../src/clock.js';
import { beforeCommit } from '../../src/store/before-commit.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { tmpDir } from '../helpers/tmp.js';
import { auditRecord } from '../store/conformance.js';

const signer = noteSigner('example.org/audit', generateKeyPairSync('ed25519').privateKey);
const clock = new ManualClock(1_700_000_000_000);
const open: SqliteStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

async function logOf(n: number) {
  const path = join(tmpDir('writ-audit-'), 'w.db');
  const store = new SqliteStore(path);
  open.push(store);
  await store.transaction(async (tx) => {
    for (let i = 0; i < n; i++) await appendAudit(tx, auditRecord(i));
  });
  const log = new AuditLog({ store, signer, clock });
  const cp = await log.checkpoint();
  return { path, store, log, cp };
}

/** Edits the file directly, as anyone holding the database could. */
function edit(path: string, f: (db: Database.Database) => void): void {
  const db = new Database(path);
  try {
    f(db);
  } finally {
    db.close();
  }
}

describe('verify-log: recomputing the tree from the store', () => {
  it('passes an untouched log and gives its root', async () => {
    const { store, cp } = await logOf(20);
    const r = await verifyStoredLog(store, signer);
    expect(r).toEqual({ ok: true, size: 20, root: cp.checkpoint.root });
  });

  it('names the record whose decision was UPDATEd, and its proof fails against the checkpoint', async () => {
    const { path, store, log, cp } = await logOf(20);
    edit(path, (db) => {
      const row = db.prepare('SELECT canonical FROM audit_records WHERE seq = 7').get() as { canonical: Buffer };
      const changed = Buffer.from(row.canonical.toString().replace('"decision":"allow"', '"decision":"deny"'));
      db.prepare('UPDATE audit_records SET canonical = ? WHERE seq = 7').run(changed);
    });
    expect(await verifyStoredLog(store, signer)).toMatchObject({ ok: false, seq: 7, problem: expect.stringMatching(/leaf hash/) });
    const b = await log.prove(7, 20);
    expect(parseRecord(b.record).decision).toBe('deny');
    expect(() => verifyInclusion(7, 20, leafHash(b.record), b.proof, cp.checkpoint.root)).toThrow(/does not lead/);
  });

  it('names the 16 records among which one had its decision and leaf hash rewritten (the tree still holds the old subtree)', async () => {
    const { path, store } = await logOf(20);
    edit(path, (db) => {
      const row = db.prepare('SELECT canonical FROM audit_records WHERE seq = 3').get() as { canonical: Buffer };
      const changed = Buffer.from(row.canonical.toString().replace('"decision":"allow"', '"decision":"deny"'));
      db.prepare('UPDATE audit_records SET canonical = ?, leaf_hash = ? WHERE seq = 3').run(changed, leafHash(changed));
    });
    expect(await verifyStoredLog(store, signer)).toEqual({
      ok: false,
      seq: 0,
      problem: 'records 0 to 15: the stored tree does not match them (one was rewritten with its leaf hash, or the tree was)',
    });
  });

  it('names a deleted row', async () => {
    const { path, store } = await logOf(20);
    edit(path, (db) => db.prepare('DELETE FROM audit_records WHERE seq = 11').run());
    expect(await verifyStoredLog(store, signer)).toMatchObject({ ok: false, seq: 11, problem: 'record 11 is missing' });
  });

  it('names the first of a swapped pair of rows', async () => {
    const { path, store } = await logOf(20);
    edit(path, (db) => {
      db.prepare('UPDATE audit_records SET seq = -1 WHERE seq = 5').run();
      db.prepare('UPDATE audit_records SET seq = 5 WHERE seq = 6').run();
      db.prepare('UPDATE audit_records SET seq = 6 WHERE seq = -1').run();
    });
    expect(await verifyStoredLog(store, signer)).toMatchObject({ ok: false, seq: 5, problem: 'record 5 holds the bytes of record 6' });
  });

  it('catches a rewrite of a record and every hash above it through the signed checkpoint', async () => {
    const { path, store } = await logOf(8);
    // Rebuild records, leaves and nodes from a history in which record 2 was a denial.
    const forged = Array.from({ length: 8 }, (_, i) => encodeRecord({ v: 1, seq: i, ...auditRecord(i, { decision: i === 2 ? 'deny' : 'allow' }) }));
    const tree = new MemoryTree();
    const nodes = forged.flatMap((b) => tree.appendWithNodes(b));
    edit(path, (db) => {
      for (const [i, b] of forged.entries()) db.prepare('UPDATE audit_records SET canonical = ?, leaf_hash = ? WHERE seq = ?').run(b, leafHash(b), i);
      for (const n of nodes) db.prepare('UPDATE audit_nodes SET hash = ? WHERE id = ?').run(n.hash, n.id);
    });
    expect((await storeNodes(store).nodes([nodeId(0, 2)])).get(nodeId(0, 2))!.equals(leafHash(forged[2]!))).toBe(true);
    expect(await verifyStoredLog(store, signer)).toMatchObject({ ok: false, seq: null, problem: expect.stringMatching(/rewritten/) });
    // And the issuer refuses to sign over it.
    await expect(new AuditLog({ store, signer, clock }).checkpoint()).rejects.toMatchObject({ code: 'ERR_AUDIT_INCONSISTENT' });
  });

  it('catches a checkpoint row edited in the database', async () => {
    const { path, store } = await logOf(4);
    edit(path, (db) => db.prepare("UPDATE audit_checkpoints SET note = replace(note, '\n4\n', '\n3\n')").run());
    expect(await verifyStoredLog(store, signer)).toMatchObject({ ok: false, seq: null, problem: expect.stringMatching(/does not verify/) });
  });
});

describe('audit list --since', () => {
  it('finds every record at or after the instant, though seq order is not quite time order (at is taken before seq is reserved)', async () => {
    const store = new SqliteStore(join(tmpDir('writ-audit-'), 'w.db'));
    open.push(store);
    const ats = [200, 100, 300, 150, 50];
    await store.transaction(async (tx) => {
      for (const [i, at] of ats.entries()) await appendAudit(tx, auditRecord(i, { at }));
    });
    const log = new AuditLog({ store, signer, clock });
    expect((await log.list({ since: 150 }, 10)).map((r) => r.seq)).toEqual([3, 2, 0]);
    expect((await log.list({ since: 150, task: 'task-0' }, 10)).map((r) => r.seq)).toEqual([2, 0]);
    expect((await log.list({ since: 150 }, 2)).map((r) => r.seq)).toEqual([3, 2]);
  });
});

describe('appending a transaction’s records together, at its commit', () => {
  /** Appends records `from`..`to`-1 in one transaction of `store`. */
  const appendRange = (store: SqliteStore, from: number, to: number) =>
    store.transaction(async (tx) => {
      for (let i = from; i < to; i++) await appendAudit(tx, auditRecord(i));
    });
  /** A store whose records 0..n-1 were appended in transactions of these sizes, in turn. */
  async function appended(sizes: readonly number[]) {
    const store = new SqliteStore(join(tmpDir('writ-audit-'), 'w.db'));
    open.push(store);
    let i = 0;
    for (const size of sizes)
      await store.transaction(async (tx) => {
        for (const end = i + size; i < end; i++) await appendAudit(tx, auditRecord(i));
      });
    return { store, n: i };
  }

  it('stores exactly the rows and nodes of appending one record per transaction, and the same roots and proofs', async () => {
    // One at a time against batches across every kind of boundary (odd starts, powers of two, one big batch).
    const one = await appended(Array.from({ length: 150 }, () => 1));
    const reference = new MemoryTree();
    for (const r of await one.store.listAuditRecords(0, 200)) reference.append(r.canonical);
    for (const sizes of [[150], [1, 2, 3, 5, 8, 13, 21, 34, 63], [2, 2, 60, 1, 64, 21], [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 10]]) {
      const batched = await appended(sizes);
      expect(batched.n).toBe(150);
      expect(await batched.store.getAuditSize()).toBe(150);
      expect(await batched.store.listAuditRecords(0, 200)).toEqual(await one.store.listAuditRecords(0, 200));
      // Every node id a tree of 150 leaves can have (2n − 1 in-order ids), in pages the store reads.
      const ids = Array.from({ length: 2 * 150 }, (_, id) => id);
      for (let from = 0; from < ids.length; from += 100) {
        const page = ids.slice(from, from + 100);
        const want = await reference.nodes(page);
        expect(await storeNodes(batched.store).nodes(page)).toEqual(want);
        expect(await storeNodes(one.store).nodes(page)).toEqual(want);
        // Stored: the nodes of STORED_LEVEL and up, the same in both.
        const stored = new Map([...want].filter(([id]) => nodeLevel(id) >= STORED_LEVEL));
        expect(await batched.store.getAuditNodes(page)).toEqual(stored);
        expect(await one.store.getAuditNodes(page)).toEqual(stored);
      }
      const log = new AuditLog({ store: batched.store, signer, clock });
      const cp = await log.checkpoint();
      expect(cp.checkpoint.root).toEqual(await new AuditLog({ store: one.store, signer, clock }).checkpoint().then((c) => c.checkpoint.root));
      for (const seq of [0, 1, 63, 64, 127, 149]) {
        const b = await log.prove(seq, 150);
        expect(b.proof).toEqual((await new AuditLog({ store: one.store, signer, clock }).prove(seq, 150)).proof);
        verifyInclusion(seq, 150, leafHash(b.record), b.proof, cp.checkpoint.root);
      }
      expect(await log.consistency(37, 150)).toEqual(await new AuditLog({ store: one.store, signer, clock }).consistency(37, 150));
      expect(await verifyStoredLog(batched.store, signer)).toEqual({ ok: true, size: 150, root: cp.checkpoint.root });
    }
  });

  it('writes a transaction’s records at its commit: nothing before, nothing if it rolls back, a bad record refused at the call', async () => {
    const { store } = await appended([3]);
    await store.transaction(async (tx) => {
      await appendAudit(tx, auditRecord(3));
      await appendAudit(tx, auditRecord(4));
      // Not yet written: the place is taken at commit.
      expect(await tx.getAuditSize()).toBe(3);
      await expect(appendAudit(tx, auditRecord(5, { reason: 'x'.repeat(5000) }))).rejects.toThrow(/reason must be 1 to 4096/);
    });
    expect((await store.listAuditRecords(0, 10)).map((r) => parseRecord(r.canonical).created)).toEqual([0, 1, 2, 3, 4].map((i) => [`w-${i}`]));
    await expect(
      store.transaction(async (tx) => {
        await appendAudit(tx, auditRecord(5));
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect(await store.getAuditSize()).toBe(5);
    // A failure while writing them (a tree node already there: the one record 15 completes,
    // planted) rolls the whole transaction back.
    await appendRange(store, 5, 15);
    await store.putAuditNodes([{ id: nodeId(STORED_LEVEL, 0), hash: Buffer.alloc(32, 7) }]);
    await expect(
      store.transaction(async (tx) => {
        await tx.createTask({
          id: 't-1',
          principalIss: 'i',
          principalSub: 's',
          goal: 'g',
          expiresAt: 2,
          createdAt: 1,
          endedAt: null,
          endedBy: null,
          endReason: null,
        });
        await appendAudit(tx, auditRecord(15));
      }),
    ).rejects.toThrow(/unique constraint/);
    expect(await store.getAuditSize()).toBe(15);
    expect(await store.getTask('t-1')).toBeUndefined();
    expect(await store.getAuditRecord(15)).toBeUndefined();
  });

  it('writes the record as it was at the call: a change the caller makes before the commit is not written', async () => {
    const { store } = await appended([]);
    const r = { ...auditRecord(0), lineage: ['g-0'], seq: 99 } as ReturnType<typeof auditRecord> & { seq: number };
    await store.transaction(async (tx) => {
      await appendAudit(tx, r);
      (r.lineage as string[]).push('g-late');
      (r as { reason: string | null }).reason = 'late';
    });
    expect(parseRecord((await store.getAuditRecord(0))!.canonical)).toEqual({ v: 1, seq: 0, ...auditRecord(0) });
  });

  /** Two stores (two replicas) on one SQLite file. */
  function twoOnOneFile() {
    const path = join(tmpDir('writ-audit-'), 'w.db');
    const a = new SqliteStore(path);
    const b = new SqliteStore(path);
    open.push(a, b);
    return { a, b };
  }
  /** The log in `store` verifies, and its root is that of the records it holds, hashed afresh. */
  async function expectSound(store: SqliteStore, n: number) {
    const reference = new MemoryTree();
    for (const r of await store.listAuditRecords(0, n + 1)) reference.append(r.canonical);
    expect(reference.size).toBe(n);
    const r = await verifyStoredLog(store, signer);
    expect(r).toEqual({ ok: true, size: n, root: await rootHash(reference, n) });
  }

  it('appends after another replica did: the right frontier is read from the store, not taken from what this one remembers', async () => {
    // Each store remembers the frontier of its own last commit; every switch of writer lands on a
    // size the other never committed, across odd sizes, powers of two and stored-level boundaries.
    const { a, b } = twoOnOneFile();
    let n = 0;
    for (const [k, size] of [3, 1, 12, 16, 5, 27, 64, 2, 1, 33].entries()) {
      await appendRange(k % 2 === 0 ? a : b, n, n + size);
      n += size;
    }
    await expectSound(a, n);
    // Then each one again, right after itself and after the other.
    await appendRange(a, n, n + 7);
    await appendRange(a, n + 7, n + 9);
    await appendRange(b, n + 9, n + 30);
    await expectSound(b, n + 30);
  });

  it('remembers a frontier only once its transaction commits: an append rolled back after its records were placed leaves nothing behind', async () => {
    const { a, b } = twoOnOneFile();
    await appendRange(a, 0, 5);
    // The audit hook runs first (it was registered first) and places record 5; the hook after it
    // fails, so the transaction rolls back with the place and the hashes of that record.
    await expect(
      a.transaction(async (tx) => {
        await appendAudit(tx, auditRecord(500));
        beforeCommit(tx, async () => {
          throw new Error('a later step failed');
        });
      }),
    ).rejects.toThrow('a later step failed');
    expect(await a.getAuditSize()).toBe(5);
    // Another replica takes place 5 with another record; had `a` remembered the rolled-back
    // frontier (of size 6), its next append would combine with a leaf that is not in the log, up
    // to the stored node of leaves 0..15 (the first level the store keeps, STORED_LEVEL).
    await appendRange(b, 5, 6);
    await appendRange(a, 6, 20);
    await expectSound(a, 20);
  });

  it('does not take a remembered frontier for a tree of the same size that holds other records (records lost, their places taken again)', async () => {
    // As after a failover to a standby that lacked this replica's last commits: records 8..15
    // (and the stored node over 0..15) are gone, and another replica appends other records at
    // those places. The tree has the size this store remembers, but not its last leaf.
    const path = join(tmpDir('writ-audit-'), 'w.db');
    const a = new SqliteStore(path);
    const b = new SqliteStore(path);
    open.push(a, b);
    await appendRange(a, 0, 16);
    edit(path, (db) => {
      db.prepare('DELETE FROM audit_records WHERE seq >= 8').run();
      db.prepare('DELETE FROM audit_nodes').run();
    });
    await b.transaction(async (tx) => {
      for (let i = 8; i < 16; i++) await appendAudit(tx, auditRecord(100 + i));
    });
    expect(await a.getAuditSize()).toBe(16);
    await appendRange(a, 16, 40);
    await expectSound(a, 40);
  });

  it('needs a transaction: refused on the Store itself', async () => {
    const { store } = await appended([]);
    await expect(appendAudit(store, auditRecord(0))).rejects.toThrow(/beforeCommit needs the tx of a Store\.transaction/);
    expect(await store.getAuditSize()).toBe(0);
  });
});
