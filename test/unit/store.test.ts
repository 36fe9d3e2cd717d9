import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteStore, MIGRATIONS } from '../../src/store/sqlite.js';
import { newJoinToken } from '../../src/attestation/join-token/join-token.js';
import { StoreError } from '../../src/errors.js';
import type { Entry } from '../../src/registration/entry.js';
import { tmpDir } from '../helpers/tmp.js';

const entry = (id: string, spiffeId = 'spiffe://example.org/a'): Entry => ({
  id,
  spiffeId,
  selectors: [{ type: 'join_token', value: id }],
  x509SvidTtl: 0,
  jwtSvidTtl: 0,
  scopeCeiling: ['read:docs/*'],
  hint: '',
  createdAt: 1,
});

describe('SqliteStore', () => {
  it('applies migrations once and records the schema version', async () => {
    const dir = tmpDir();
    const s1 = new SqliteStore(join(dir, 'w.db'));
    expect(s1.schemaVersion).toBe(MIGRATIONS.length);
    await s1.close();
    const s2 = new SqliteStore(join(dir, 'w.db'));
    expect(s2.schemaVersion).toBe(MIGRATIONS.length);
    await s2.close();
  });

  it('refuses a database from a newer binary', async () => {
    const dir = tmpDir();
    const s = new SqliteStore(join(dir, 'w.db'));
    await s.close();
    const raw = new Database(join(dir, 'w.db'));
    raw.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)').run(MIGRATIONS.length + 5);
    raw.close();
    expect(() => new SqliteStore(join(dir, 'w.db'))).toThrow(/newer than this binary/);
  });

  it('uses WAL journaling', async () => {
    const dir = tmpDir();
    const s = new SqliteStore(join(dir, 'w.db'));
    await s.close();
    const raw = new Database(join(dir, 'w.db'));
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
  });

  it('rolls back every write of a failed transaction', async () => {
    const s = new SqliteStore(join(tmpDir(), 'w.db'));
    const { record } = newJoinToken(new Date(0), 60_000);
    await expect(
      s.transaction(async (tx) => {
        await tx.createJoinToken(record);
        await tx.createEntry(entry('e1'), 'k1');
        await tx.bumpBundleSequence();
        throw new Error('crash in the middle');
      }),
    ).rejects.toThrow('crash in the middle');
    expect(await s.getJoinToken(record.id)).toBeUndefined();
    expect(await s.listEntries()).toEqual([]);
    expect(await s.getBundleSequence()).toBe(0);
    await s.close();
  });

  it('a constraint violation inside a transaction rolls back and surfaces as ERR_STORE', async () => {
    const s = new SqliteStore(join(tmpDir(), 'w.db'));
    await s.createEntry(entry('e1'), 'k1');
    const err = await s
      .transaction(async (tx) => {
        await tx.createEntry(entry('e2', 'spiffe://example.org/b'), 'k2');
        await tx.createEntry(entry('e1'), 'k3');
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((await s.listEntries()).map((e) => e.id)).toEqual(['e1']);
    await s.close();
  });

  it('consumes a join token exactly once, even under concurrent attempts', async () => {
    const s = new SqliteStore(join(tmpDir(), 'w.db'));
    const { record } = newJoinToken(new Date(1000), 60_000);
    await s.createJoinToken(record);
    const results = await Promise.all(Array.from({ length: 20 }, () => s.transaction((tx) => tx.consumeJoinToken(record.id, 2000))));
    expect(results.filter(Boolean).length).toBe(1);
    expect((await s.getJoinToken(record.id))!.usedAt).toBe(2000);
    await s.close();
  });

  it('does not consume an expired token', async () => {
    const s = new SqliteStore(join(tmpDir(), 'w.db'));
    const { record } = newJoinToken(new Date(1000), 1000);
    await s.createJoinToken(record);
    expect(await s.consumeJoinToken(record.id, 2000)).toBe(false);
    await s.close();
  });

  it('round-trips entries with their selectors and scope ceiling', async () => {
    const s = new SqliteStore(join(tmpDir(), 'w.db'));
    await s.createEntry(entry('e1'), 'k1');
    expect(await s.getEntry('e1')).toEqual(entry('e1'));
    expect(await s.entryExists('spiffe://example.org/a', 'k1')).toBe(true);
    expect(await s.deleteEntry('e1')).toBe(true);
    expect(await s.deleteEntry('e1')).toBe(false);
    await s.close();
  });
});

describe('SqliteStore selector index', () => {
  it('finds entries by any of their selectors and forgets deleted ones', async () => {
    const s = new SqliteStore(join(tmpDir(), 'w.db'));
    await s.createEntry(
      {
        ...entry('e1'),
        selectors: [
          { type: 'a', value: '1' },
          { type: 'b', value: '2' },
        ],
      },
      'k1',
    );
    await s.createEntry({ ...entry('e2', 'spiffe://example.org/b'), selectors: [{ type: 'c', value: '3' }] }, 'k2');
    expect((await s.listEntriesBySelectors(['b:2'])).map((e) => e.id)).toEqual(['e1']);
    expect((await s.listEntriesBySelectors(['a:1', 'c:3'])).map((e) => e.id)).toEqual(['e1', 'e2']);
    expect(await s.listEntriesBySelectors(['z:9'])).toEqual([]);
    await s.deleteEntry('e1');
    expect(await s.listEntriesBySelectors(['a:1', 'b:2'])).toEqual([]);
    await s.close();
  });
});

describe('SqliteStore: policies, grants, writs, decisions (migration 4)', () => {
  it('keeps CA keys across the migration that adds the writ key kind', async () => {
    const dir = tmpDir();
    const db = new Database(join(dir, 'w.db'));
    db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT');
    MIGRATIONS.slice(0, 3).forEach((m, i) => {
      db.exec(m);
      db.prepare('INSERT INTO schema_migrations VALUES (?, 0)').run(i + 1);
    });
    db.prepare("INSERT INTO ca_keys VALUES ('jwt-1', 'jwt', 'active', x'', x'01', x'02', 1, 2)").run();
    db.close();
    const s = new SqliteStore(join(dir, 'w.db'));
    expect(s.schemaVersion).toBe(MIGRATIONS.length);
    expect((await s.listCaKeys()).map((k) => k.id)).toEqual(['jwt-1']);
    await s.putCaKey({
      id: 'writ-1',
      kind: 'writ',
      state: 'active',
      certDer: Buffer.alloc(0),
      publicKeyDer: Buffer.from([1]),
      sealedKey: Buffer.from([2]),
      notBefore: 1,
      notAfter: 2,
    });
    expect((await s.listCaKeys()).map((k) => k.kind).sort()).toEqual(['jwt', 'writ']);
    await s.close();
  });

  it('stores immutable snapshots, one active; grants once; writs and decisions', async () => {
    const s = new SqliteStore(join(tmpDir(), 'w.db'));
    await s.putPolicySnapshot({ digest: 'a'.repeat(64), policies: [{ id: 'p', text: 'permit(principal, action, resource);' }], createdAt: 5 });
    await s.putPolicySnapshot({ digest: 'a'.repeat(64), policies: [{ id: 'other', text: 'x' }], createdAt: 6 }); // same address: ignored
    expect((await s.getPolicySnapshot('a'.repeat(64)))!.policies[0]!.id).toBe('p');
    await expect(s.setActivePolicy({ digest: 'b'.repeat(64), activatedAt: 1 })).rejects.toThrow(StoreError); // no such snapshot
    await s.setActivePolicy({ digest: 'a'.repeat(64), activatedAt: 7 });
    expect(await s.getActivePolicy()).toEqual({ digest: 'a'.repeat(64), activatedAt: 7 });
    const g = {
      jti: 'g1',
      issuer: 'spiffe://example.org',
      rid: 'g1',
      depth: 0,
      taskId: 't',
      principalIss: 'i',
      principalSub: 's',
      principalGroups: ['eng'],
      delegateJkt: 'k',
      expiresAt: 9,
      compact: 'a.b.c',
      createdAt: 1,
      revokedAt: null,
    };
    await s.putGrant(g);
    await expect(s.putGrant({ ...g, compact: 'x.y.z' })).rejects.toThrow(StoreError);
    expect(await s.getGrant('g1')).toEqual(g);
    const w = {
      jti: 'w1',
      spiffeId: 'spiffe://example.org/a',
      jkt: 'k',
      chainDigest: Buffer.alloc(32, 1),
      lineage: ['g1'],
      taskId: 't',
      evidenceDigest: Buffer.alloc(32, 2),
      issuedAt: 1,
      expiresAt: 2,
    };
    await s.recordWrit(w);
    expect(await s.getWrit('w1')).toEqual(w);
    await s.recordDecision({ at: 1, actor: 'a', principal: 'p', action: 'x', decision: 'escalate', snapshot: 'a'.repeat(64), policies: ['p1'], reason: 'r' });
    expect(await s.listDecisions(10)).toEqual([
      { at: 1, actor: 'a', principal: 'p', action: 'x', decision: 'escalate', snapshot: 'a'.repeat(64), policies: ['p1'], reason: 'r' },
    ]);
    await s.close();
  });
});
