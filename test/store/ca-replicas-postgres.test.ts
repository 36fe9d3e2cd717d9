/**
 * Two CaManagers (two replicas, two pools) starting at once on one empty PostgreSQL schema, with
 * the interleaving of test/e2e/ha-replicas.test.ts's first test made deterministic: replica B reads
 * the bundle sequence, then replica A creates and commits the first CA, then B reads the keys. B
 * must load one snapshot (sequence and keys that belong together), so that right after init every
 * replica publishes the same bundle, sequence included.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SealedKeyCustody } from '../../src/ca/custody.js';
import { KeyEncryptor } from '../../src/ca/key-encryptor.js';
import { CaManager, type CaSettings } from '../../src/ca/manager.js';
import { ManualClock } from '../../src/clock.js';
import { bundleDocuments } from '../../src/server/bundle-documents.js';
import { PostgresStore } from '../../src/store/postgres.js';
import type { Store, StoreTx } from '../../src/store/store.js';
import { PG_UNREACHABLE, PG_URL } from '../helpers/ha.js';

const H = 3600_000;
const settings: CaSettings = { trustDomain: 'example.org', caTtlMs: 24 * H, rootTtlMs: 240 * H, keyType: 'ec-p256', jwtAlg: 'ES256', refreshHintSeconds: 300 };
const pgDescribe = PG_UNREACHABLE === undefined ? describe : describe.skip;

const admin = PG_UNREACHABLE === undefined ? new pg.Pool({ connectionString: PG_URL, max: 2 }) : undefined;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await admin?.end();
});

async function openTwo(): Promise<[PostgresStore, PostgresStore]> {
  const schema = `writ_t_${randomBytes(6).toString('hex')}`;
  await admin!.query(`CREATE SCHEMA ${schema}`);
  cleanups.push(async () => void (await admin!.query(`DROP SCHEMA ${schema} CASCADE`)));
  const open = async () => {
    const s = await PostgresStore.open({ connectionString: PG_URL, schema });
    cleanups.push(() => s.close());
    return s;
  };
  const a = await open();
  return [a, await open()];
}

/** `store`, where `between` runs once: after the first read of the bundle sequence (in a transaction or not), before it returns. */
function afterFirstSequenceRead(store: Store, between: () => Promise<void>): Store {
  let pending = true;
  const hook = async (read: () => Promise<number>) => {
    const n = await read();
    if (pending) {
      pending = false;
      await between();
    }
    return n;
  };
  const wrapTx = (tx: StoreTx): StoreTx =>
    new Proxy(tx, {
      get: (t, p) => (p === 'getBundleSequence' ? () => hook(() => t.getBundleSequence()) : Reflect.get(t, p, t)),
    });
  return new Proxy(store, {
    get: (s, p) => {
      if (p === 'getBundleSequence') return () => hook(() => s.getBundleSequence());
      if (p === 'transaction') return <T>(fn: (tx: StoreTx) => Promise<T>) => s.transaction((tx) => fn(wrapTx(tx)));
      return Reflect.get(s, p, s);
    },
  });
}

pgDescribe('CA keys of replicas starting at once on one PostgreSQL schema', () => {
  it('a replica whose first load straddles another replica committing the first CA loads a consistent snapshot, and publishes the same bundle at once', async () => {
    const [storeA, storeB] = await openTwo();
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const custody = () => new SealedKeyCustody(new KeyEncryptor(Buffer.alloc(32, 7)));
    const a = new CaManager({ store: storeA, clock, custody: custody(), settings });
    // B has read the sequence (0, the empty database's) when A commits root, intermediate, JWT and writ keys.
    const b = new CaManager({ store: afterFirstSequenceRead(storeB, () => a.init()), clock, custody: custody(), settings });
    await b.init();
    expect(a.loadedSequence).toBe(1);
    expect(await storeB.getBundleSequence()).toBe(1);
    // One CA: B made no keys of its own.
    expect(b.describe().map((k) => k.id)).toEqual(a.describe().map((k) => k.id));
    expect(b.jwtSigner().kid).toBe(a.jwtSigner().kid);
    // The keys B loaded belong to the sequence it loaded: the store's, not the empty database's.
    expect(b.loadedSequence).toBe(1);
    expect(bundleDocuments(b.bundle()).jwks).toBe(bundleDocuments(a.bundle()).jwks);
    expect(bundleDocuments(b.bundle()).pem).toBe(bundleDocuments(a.bundle()).pem);
    // Nothing is left for a later wake-up to catch up on.
    expect(await b.refresh()).toBe(false);
  });
});
