/**
 * The issuer never signs two inconsistent checkpoints, even when its database is rolled back
 * (restored from a backup): the high-water mark outside the database (audit/high-water.ts, a
 * file written by server/audit-high-water.ts) refuses a tree that is not a consistent extension
 * of the last one signed. Against a real SQLite file copied and restored as a backup would be;
 * each refusal has a twin without the mark that signs the fork, so the mark is what stops it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatHighWater, type HighWaterStore, MemoryHighWater, parseHighWater } from '../../src/audit/high-water.js';
import { AuditLog, appendAudit } from '../../src/audit/log.js';
import { noteSigner } from '../../src/audit/note.js';
import { ManualClock } from '../../src/clock.js';
import type { AuditError } from '../../src/errors.js';
import { FileHighWater, HIGH_WATER_FILE } from '../../src/server/audit-high-water.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { expectWritError } from '../helpers/errors.js';
import { tmpDir } from '../helpers/tmp.js';
import { auditRecord } from '../store/conformance.js';

const signer = noteSigner('example.org/audit', generateKeyPairSync('ed25519').privateKey);
const clock = new ManualClock(1_700_000_000_000);
const open: SqliteStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

function world() {
  const dir = tmpDir('writ-audit-hw-');
  const db = join(dir, 'writ.db');
  const mark = new FileHighWater(join(dir, HIGH_WATER_FILE));
  let store: SqliteStore;
  const refused: AuditError[] = [];
  const reopen = (highWater: HighWaterStore | undefined = mark) => {
    store = new SqliteStore(db);
    open.push(store);
    return new AuditLog({ store, signer, clock, ...(highWater ? { highWater } : {}), onInconsistent: (e) => refused.push(e) });
  };
  const append = (from: number, n: number, tag = '') =>
    store.transaction(async (tx) => {
      for (let i = from; i < from + n; i++) await appendAudit(tx, auditRecord(i, { task: `t${tag}${i}` }));
    });
  const close = async () => {
    await store.close();
    open.splice(open.indexOf(store), 1);
  };
  return { dir, db, mark, reopen, append, close, refused, store: () => store };
}

/** Signs at size M, takes a backup, signs at size N > M, restores the backup: the rolled-back log. */
async function rolledBack(M: number, N: number) {
  const w = world();
  let log = w.reopen();
  await w.append(0, M);
  await log.checkpoint();
  await w.close();
  copyFileSync(w.db, `${w.db}.backup`);
  log = w.reopen();
  await w.append(M, N - M);
  const signed = await log.checkpoint();
  await w.close();
  copyFileSync(`${w.db}.backup`, w.db);
  return { ...w, signed };
}

describe('the high-water mark', () => {
  it('is written with each signature: the size and root signed last', async () => {
    const w = world();
    const log = w.reopen();
    await w.append(0, 5);
    const cp = await log.checkpoint();
    expect(w.mark.read()).toEqual({ origin: 'example.org/audit', size: 5, root: cp.checkpoint.root });
    expect(parseHighWater(readFileSync(join(w.dir, HIGH_WATER_FILE), 'utf8'))).toEqual(w.mark.read());
  });

  it('refuses to sign after the database is rolled back to a copy taken at a smaller size', async () => {
    const w = await rolledBack(5, 9);
    const log = w.reopen();
    expect(await w.store().getAuditSize()).toBe(5);
    const before = (await w.store().latestAuditCheckpoint())!.size;
    await expectWritError(log.checkpoint(), 'ERR_AUDIT_INCONSISTENT', /REFUSING TO SIGN: the log holds 5 records, fewer than the 9/);
    expect((await w.store().latestAuditCheckpoint())!.size).toBe(before);
    expect(w.refused).toHaveLength(1);
    expect(w.mark.read()!.size).toBe(9);
  });

  it('refuses a rolled-back log that grew again to the signed size or past it with other records (a fork)', async () => {
    const w = await rolledBack(5, 9);
    const log = w.reopen();
    await w.append(5, 4, 'other');
    await expectWritError(log.checkpoint(), 'ERR_AUDIT_INCONSISTENT', /another root than the one this issuer signed/);
    await w.append(9, 3, 'other');
    await expectWritError(log.checkpoint(), 'ERR_AUDIT_INCONSISTENT', /does not extend the 9 this issuer last signed/);
    expect(w.refused).toHaveLength(2);
  });

  it('twin: without the mark, the rolled-back database alone signs the fork', async () => {
    const w = await rolledBack(5, 9);
    const log = w.reopen(new MemoryHighWater());
    await w.append(5, 4, 'other');
    const fork = await log.checkpoint();
    expect(fork.checkpoint.size).toBe(w.signed.checkpoint.size);
    expect(fork.checkpoint.root.equals(w.signed.checkpoint.root)).toBe(false);
  });

  it('replicas sharing one database: each adopts the newest checkpoint another signed, so a rollback below it is refused by all', async () => {
    const w = world();
    const markB = new MemoryHighWater();
    const markC = new MemoryHighWater();
    const replica = (highWater: HighWaterStore) => new AuditLog({ store: w.store(), signer, clock, highWater, onInconsistent: (e) => w.refused.push(e) });
    w.reopen();
    await w.append(0, 5);
    await replica(markB).checkpoint();
    expect(markB.read()!.size).toBe(5);
    await w.close();
    copyFileSync(w.db, `${w.db}.backup`);
    const logA = w.reopen();
    await w.append(5, 4);
    const signed = await logA.checkpoint();
    expect(w.mark.read()!.size).toBe(9);
    // B (mark at 5) and a new replica C (no mark) see A's checkpoint at 9 and adopt it.
    expect((await replica(markB).checkpoint()).note).toBe(signed.note);
    expect((await replica(markC).checkpoint()).note).toBe(signed.note);
    expect(markB.read()).toEqual(signed.checkpoint);
    expect(markC.read()).toEqual(signed.checkpoint);
    await w.close();
    copyFileSync(`${w.db}.backup`, w.db);
    w.reopen();
    await w.append(5, 4, 'other');
    await expectWritError(replica(markB).checkpoint(), 'ERR_AUDIT_INCONSISTENT', /another root than the one this issuer signed/);
    await expectWritError(replica(markC).checkpoint(), 'ERR_AUDIT_INCONSISTENT', /another root than the one this issuer signed/);
    expect(w.refused).toHaveLength(2);
    expect((await w.store().latestAuditCheckpoint())!.size).toBe(5);
  });

  it('signs a consistent extension of the mark, also after a restart', async () => {
    const w = world();
    let log = w.reopen();
    await w.append(0, 3);
    await log.checkpoint();
    await w.close();
    log = w.reopen();
    await w.append(3, 4);
    expect((await log.checkpoint()).checkpoint.size).toBe(7);
    expect(w.mark.read()!.size).toBe(7);
    expect(w.refused).toEqual([]);
  });

  it.each([
    ['not JSON', 'garbage'],
    ['another member', formatHighWater({ origin: 'example.org/audit', size: 1, root: Buffer.alloc(32) }).replace('"v":1', '"v":1,"x":2')],
    ['a short root', '{"v":1,"origin":"example.org/audit","size":1,"root":"AAAA"}'],
    ['a negative size', '{"v":1,"origin":"example.org/audit","size":-1,"root":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}'],
  ])('a mark file that does not parse (%s) is refused, never taken as absent', async (_n, text) => {
    const w = world();
    const log = w.reopen();
    await w.append(0, 2);
    writeFileSync(join(w.dir, HIGH_WATER_FILE), text);
    await expectWritError(log.checkpoint(), 'ERR_AUDIT_INCONSISTENT', /audit\(high-water\)/);
    expect(await w.store().latestAuditCheckpoint()).toBeUndefined();
  });

  it('a mark file that cannot be read (not ENOENT) is refused, not taken as absent', async () => {
    const w = world();
    const log = w.reopen();
    await w.append(0, 2);
    mkdirSync(join(w.dir, HIGH_WATER_FILE));
    await expectWritError(log.checkpoint(), 'ERR_AUDIT_INCONSISTENT', /cannot read/);
  });

  it('a mark for another log is refused', async () => {
    const w = world();
    const log = w.reopen();
    await w.append(0, 2);
    w.mark.write({ origin: 'other.org/audit', size: 0, root: Buffer.alloc(32) });
    await expectWritError(log.checkpoint(), 'ERR_AUDIT_INCONSISTENT', /high-water mark is for the log "other.org\/audit"/);
  });
});
