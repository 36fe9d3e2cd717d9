import { X509Certificate, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { CaManager, type CaSettings } from '../../src/ca/manager.js';
import { KeyEncryptor } from '../../src/ca/key-encryptor.js';
import { SealedKeyCustody } from '../../src/ca/custody.js';
import { planRotation } from '../../src/ca/rotation.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { parseSpiffeId } from '../../src/spiffe/id.js';
import { BundleSet } from '../../src/spiffe/bundle.js';
import { verifyX509Svid } from '../../src/svid/x509-svid.js';
import { CaError } from '../../src/errors.js';
import { tmpDir } from '../helpers/tmp.js';

const H = 3600_000;
const settings: CaSettings = { trustDomain: 'example.org', caTtlMs: 24 * H, rootTtlMs: 240 * H, keyType: 'ec-p256', jwtAlg: 'ES256', refreshHintSeconds: 300 };
const agentSpki = createPublicKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey).export({ type: 'spki', format: 'der' });

async function setup(clock: ManualClock, dir = tmpDir(), kek = Buffer.alloc(32, 7)) {
  const store = new SqliteStore(join(dir, 'writ.db'));
  const ca = new CaManager({ store, clock, custody: new SealedKeyCustody(new KeyEncryptor(kek)), settings });
  await ca.init();
  return { store, ca, dir };
}

const states = (ca: CaManager, kind: string) =>
  ca
    .describe()
    .filter((k) => k.kind === kind)
    .map((k) => k.state)
    .sort();

describe('CA rotation (prepared at 1/2, active at 5/6, retired until expiry)', () => {
  it('creates a root, an intermediate and a JWT key on first start', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { ca, store } = await setup(clock);
    expect(states(ca, 'x509-root')).toEqual(['active']);
    expect(states(ca, 'x509-intermediate')).toEqual(['active']);
    expect(states(ca, 'jwt')).toEqual(['active']);
    const b = ca.bundle();
    expect(b.x509Authorities.length).toBe(1);
    expect(b.jwtAuthorities.size).toBe(1);
    expect(b.sequence).toBe(1);
    const root = new X509Certificate(b.x509Authorities[0]!);
    expect(root.ca).toBe(true);
    expect(root.subjectAltName).toBe('URI:spiffe://example.org');
    await store.close();
  });

  it('walks an intermediate and a JWT key through prepared → active → retired → gone', async () => {
    const t0 = Date.UTC(2030, 0, 1);
    const clock = new ManualClock(t0);
    const { ca, store } = await setup(clock);
    const firstJwt = ca.jwtSigner().kid;
    const firstSeq = ca.bundle().sequence!;

    clock.set(t0 + 11 * H);
    expect(await ca.rotate()).toBe(false);
    clock.set(t0 + 12 * H + 60_000);
    expect(await ca.rotate()).toBe(true);
    expect(states(ca, 'x509-intermediate')).toEqual(['active', 'prepared']);
    expect(states(ca, 'jwt')).toEqual(['active', 'prepared']);
    // The prepared JWT key is published before it is used.
    expect(ca.bundle().jwtAuthorities.size).toBe(2);
    expect(ca.bundle().sequence).toBe(firstSeq + 1);
    expect(ca.jwtSigner().kid).toBe(firstJwt);

    clock.set(t0 + 20 * H + 60_000);
    expect(await ca.rotate()).toBe(true);
    expect(states(ca, 'x509-intermediate')).toEqual(['active', 'retired']);
    expect(ca.jwtSigner().kid).not.toBe(firstJwt);
    expect(ca.bundle().jwtAuthorities.has(firstJwt)).toBe(true);

    clock.set(t0 + 24 * H + 1);
    expect(await ca.rotate()).toBe(true);
    expect(states(ca, 'x509-intermediate')).toEqual(['active']);
    expect(ca.bundle().jwtAuthorities.has(firstJwt)).toBe(false);
    expect(ca.bundle().sequence).toBe(firstSeq + 3);
    await store.close();
  });

  it('never mints an SVID that outlives its signing CA, and SVIDs chain to the bundle across a rotation', async () => {
    const t0 = Date.UTC(2030, 0, 1);
    const clock = new ManualClock(t0);
    const { ca, store } = await setup(clock);
    const id = parseSpiffeId('spiffe://example.org/agent');
    clock.set(t0 + 23 * H);
    await ca.rotate();
    const minter = ca.x509Minter();
    const svid = await minter.mint({ spiffeId: id, spki: agentSpki, notBefore: clock.now(), notAfter: new Date(clock.now().getTime() + 10 * H) });
    expect(svid.notAfter.getTime()).toBeLessThanOrEqual(minter.notAfter.getTime());
    const bundles = new BundleSet([ca.bundle()]);
    expect(verifyX509Svid(svid.chain.slice(0, 2), bundles, clock.now()).id.uri).toBe(id.uri);
    await store.close();
  });

  it('rotates the root too, keeping the old root in the bundle while intermediates it signed live', async () => {
    const t0 = Date.UTC(2030, 0, 1);
    const clock = new ManualClock(t0);
    const { ca, store } = await setup(clock);
    for (let h = 1; h <= 201; h++) {
      clock.set(t0 + h * H);
      await ca.rotate();
    }
    expect(states(ca, 'x509-root')).toEqual(['active', 'retired']);
    expect(ca.bundle().x509Authorities.length).toBe(2);
    const svid = await ca
      .x509Minter()
      .mint({ spiffeId: parseSpiffeId('spiffe://example.org/a'), spki: agentSpki, notBefore: clock.now(), notAfter: new Date(clock.now().getTime() + H) });
    expect(verifyX509Svid(svid.chain.slice(0, 2), new BundleSet([ca.bundle()]), clock.now()).id.uri).toBe('spiffe://example.org/a');
    await store.close();
  });

  it('recovers after downtime longer than a key lifetime', async () => {
    const t0 = Date.UTC(2030, 0, 1);
    const clock = new ManualClock(t0);
    const { ca, store } = await setup(clock);
    clock.set(t0 + 100 * H);
    await ca.rotate();
    expect(states(ca, 'x509-intermediate')).toEqual(['active']);
    expect(ca.describe().every((k) => k.notAfter.getTime() > clock.now().getTime())).toBe(true);
    await store.close();
  });
});

describe('CA keys at rest', () => {
  it('stores no private key in the clear and reloads the same keys after a restart', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const dir = tmpDir();
    const a = await setup(clock, dir);
    const before = a.ca.describe().map((k) => k.id);
    const kek = new KeyEncryptor(Buffer.alloc(32, 7));
    const records = await a.store.listCaKeys();
    expect(records.length).toBeGreaterThanOrEqual(4);
    for (const r of records) {
      // The private scalar (the last 32 bytes of an EC PKCS#8) appears nowhere in what is stored.
      const pkcs8 = kek.open(r.sealedKey, r.id);
      expect(r.sealedKey.includes(pkcs8.subarray(-32))).toBe(false);
    }
    const msg = Buffer.from('same key after a restart');
    await a.store.close();
    const b = await setup(clock, dir);
    expect(b.ca.describe().map((k) => k.id)).toEqual(before);
    const sig = await b.ca.jwtSigner().signer.sign(msg);
    expect(verify('sha256', msg, { key: a.ca.jwtSigner().signer.publicKey, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    await b.store.close();
  });

  it('refuses to start with the wrong key-encryption key', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const dir = tmpDir();
    const a = await setup(clock, dir);
    await a.store.close();
    const err = await setup(clock, dir, Buffer.alloc(32, 8)).catch((e) => e);
    expect(err).toBeInstanceOf(CaError);
    expect((err as CaError).code).toBe('ERR_KEY_DECRYPT');
  });

  it('a sealed key cannot be moved onto another record', () => {
    const enc = new KeyEncryptor(Buffer.alloc(32, 1));
    const sealed = enc.seal(Buffer.from('secret'), 'key-a');
    expect(enc.open(sealed, 'key-a').toString()).toBe('secret');
    expect(() => enc.open(sealed, 'key-b')).toThrow(/cannot decrypt/);
  });
});

describe('CA keys shared by replicas', () => {
  const t0 = Date.UTC(2030, 0, 1);
  /** Two managers (two replicas) on one store, at t0. */
  async function twoReplicas() {
    const clock = new ManualClock(t0);
    const dir = tmpDir();
    return { clock, a: await setup(clock, dir), b: await setup(clock, dir) };
  }
  const jwtIds = (ca: CaManager) => [...ca.bundle().jwtAuthorities.keys()].sort();

  it('a manager reloads keys and bundle when another one on the same store rotated (the bundle sequence moved)', async () => {
    const { clock, a, b } = await twoReplicas();
    expect(jwtIds(b.ca)).toEqual(jwtIds(a.ca));
    clock.set(t0 + 13 * H); // past half of the 24 h JWT key: B prepares the next one
    expect(await b.ca.rotate()).toBe(true);
    expect(jwtIds(b.ca).length).toBe(2);
    // A has not looked yet; its bundle is the old one until it sees the sequence move.
    expect(jwtIds(a.ca).length).toBe(1);
    expect(await a.ca.refresh()).toBe(true);
    expect(jwtIds(a.ca)).toEqual(jwtIds(b.ca));
    expect(a.ca.bundle().sequence).toBe(b.ca.bundle().sequence);
    // Nothing moved since: refresh is a no-op.
    expect(await a.ca.refresh()).toBe(false);
    await a.store.close();
    await b.store.close();
  });

  it('a rotation with nothing due reloads when another manager committed since the last load (and says the bundle changed)', async () => {
    const { clock, a, b } = await twoReplicas();
    clock.set(t0 + 13 * H);
    expect(await b.ca.rotate()).toBe(true);
    // A rotates before any wake-up told it of B's commit: nothing is left due, yet its keys are old.
    expect(await a.ca.rotate()).toBe(true);
    expect(jwtIds(a.ca)).toEqual(jwtIds(b.ca));
    expect(a.ca.loadedSequence).toBe(b.ca.loadedSequence);
    expect(await a.ca.rotate()).toBe(false);
    expect(await a.ca.refresh()).toBe(false);
    await a.store.close();
    await b.store.close();
  });
});

describe('rotation policy (planRotation)', () => {
  const key = (id: string, state: 'active' | 'prepared' | 'retired', notBefore: number, notAfter: number) => ({ id, state, notBefore, notAfter });
  it('creates an active key when there is none, and activates a prepared one instead when there is', () => {
    expect(planRotation([], 0)).toEqual([{ op: 'create', state: 'active' }]);
    expect(planRotation([key('p', 'prepared', 0, 100)], 10)).toEqual([{ op: 'activate', id: 'p' }]);
  });
  it('prepares at one half, activates at five sixths, deletes retired keys once expired', () => {
    const a = key('a', 'active', 0, 600);
    expect(planRotation([a], 299)).toEqual([]);
    expect(planRotation([a], 300)).toEqual([{ op: 'create', state: 'prepared' }]);
    expect(planRotation([a, key('p', 'prepared', 300, 900)], 499)).toEqual([]);
    expect(planRotation([a, key('p', 'prepared', 300, 900)], 500)).toEqual([
      { op: 'retire', id: 'a' },
      { op: 'activate', id: 'p' },
    ]);
    expect(planRotation([key('r', 'retired', 0, 600), key('n', 'active', 500, 1100)], 600)).toEqual([{ op: 'delete', id: 'r', why: 'retired key expired' }]);
  });
  it('after downtime past the activation point, the next key becomes active at once; an expired active key goes', () => {
    expect(planRotation([key('a', 'active', 0, 600)], 550)).toEqual([
      { op: 'retire', id: 'a' },
      { op: 'create', state: 'active' },
    ]);
    expect(planRotation([key('a', 'active', 0, 600)], 700)).toEqual([
      { op: 'delete', id: 'a', why: 'active key expired' },
      { op: 'create', state: 'active' },
    ]);
  });
});
