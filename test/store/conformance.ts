/**
 * The store conformance suite: the contract of src/store/store.ts, which every backend must
 * pass (test/store/sqlite.test.ts, test/store/postgres.test.ts). `open` makes a fresh, empty,
 * migrated store; the suite closes each store it opens.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { verifyCheckpoint } from '../../src/audit/checkpoint.js';
import { openAuditSigner } from '../../src/audit/keys.js';
import { AuditLog, appendAudit, storeNodes } from '../../src/audit/log.js';
import { leafHash, MemoryTree, rootHash, verifyConsistency, verifyInclusion } from '../../src/audit/merkle.js';
import { noteSigner } from '../../src/audit/note.js';
import { type NewAuditRecord, parseRecord } from '../../src/audit/record.js';
import { KeyEncryptor } from '../../src/ca/key-encryptor.js';
import { ManualClock } from '../../src/clock.js';
import { AuditError, StoreError } from '../../src/errors.js';
import type { Entry } from '../../src/registration/entry.js';
import type { Backend } from '../../src/store/dialect.js';
import type {
  ApprovalRecord,
  AttestedAgentRecord,
  CaKeyRecord,
  DecisionRecord,
  GrantRecord,
  IssuedSvidRecord,
  JoinTokenRecord,
  NewRevocation,
  PasskeyCeremonyRecord,
  PasskeyRecord,
  PolicySnapshotRecord,
  Store,
  StoreTx,
  TaskRecord,
  TpmRecord,
  WritMatch,
  WritRecord,
} from '../../src/store/store.js';

export interface ConformanceOptions {
  readonly backend: Backend;
  /** A fresh, empty, migrated store. */
  readonly open: () => Promise<Store>;
}

// Fixtures. Every field differs from its neighbours, so a swapped column cannot round-trip.
export const entry = (id: string, over: Partial<Entry> = {}): Entry => ({
  id,
  spiffeId: `spiffe://example.org/w/${id}`,
  selectors: [{ type: 'join_token', value: id }],
  x509SvidTtl: 3600,
  jwtSvidTtl: 300,
  scopeCeiling: ['read:docs/*', 'write:tmp/*'],
  hint: `hint for ${id}`,
  createdAt: 1_700_000_000_000,
  ...over,
});
const keyOf = (e: Entry) =>
  e.selectors
    .map((s) => `${s.type}:${s.value}`)
    .sort()
    .join('\n');

export const token = (over: Partial<JoinTokenRecord> = {}): JoinTokenRecord => ({
  id: randomBytes(8).toString('hex'),
  secretHash: randomBytes(32),
  expiresAt: 10_000,
  createdAt: 1_000,
  usedAt: null,
  ...over,
});

export const caKey = (id: string, over: Partial<CaKeyRecord> = {}): CaKeyRecord => ({
  id,
  kind: 'jwt',
  state: 'prepared',
  certDer: Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]),
  publicKeyDer: randomBytes(91),
  sealedKey: randomBytes(120),
  notBefore: 1_000,
  notAfter: 2_000,
  ...over,
});

export const tpm = (ekHash: string, over: Partial<TpmRecord> = {}): TpmRecord => ({
  ekHash,
  akName: Buffer.concat([Buffer.from([0x00, 0x0b]), randomBytes(32)]),
  firmwareVersion: '2305843009213693952',
  resetCount: 3,
  restartCount: 7,
  clock: '18446744073709551615',
  activatedAt: 1_700_000_000_001,
  updatedAt: 1_700_000_000_002,
  ...over,
});

export const grant = (jti: string, over: Partial<GrantRecord> = {}): GrantRecord => ({
  jti,
  issuer: 'spiffe://example.org',
  rid: `root-of-${jti}`,
  depth: 2,
  taskId: `task-${jti}`,
  principalIss: 'https://idp.example.com',
  principalSub: 'alice',
  principalGroups: ['eng', 'oncall'],
  delegateJkt: `jkt-${jti}`,
  expiresAt: 1_700_000_360_000,
  compact: `${jti}.payload.sig`,
  createdAt: 1_700_000_000_000,
  revokedAt: null,
  ...over,
});

export const writ = (jti: string, over: Partial<WritRecord> = {}): WritRecord => ({
  jti,
  spiffeId: 'spiffe://example.org/agent/a',
  jkt: `jkt-${jti}`,
  chainDigest: randomBytes(32),
  lineage: ['g-root', 'g-hop'],
  taskId: 'task-1',
  evidenceDigest: randomBytes(32),
  issuedAt: 1_700_000_000_000,
  expiresAt: 1_700_000_060_000,
  principal: 'https://idp.example.com#alice',
  parentJti: null,
  entryId: 'entry-1',
  platform: '',
  evidenceType: 'join_token',
  statusList: null,
  statusIdx: null,
  revokedAt: null,
  revokedSeq: null,
  ...over,
});

export const task = (id: string, over: Partial<TaskRecord> = {}): TaskRecord => ({
  id,
  principalIss: 'https://idp.example.com',
  principalSub: 'alice',
  goal: `goal of ${id}`,
  expiresAt: 1_700_000_900_000,
  createdAt: 1_700_000_000_000,
  endedAt: null,
  endedBy: null,
  endReason: null,
  ...over,
});

export const revocation = (kind: string, target: string, over: Partial<NewRevocation> = {}): NewRevocation => ({
  kind,
  target,
  reason: `because ${target}`,
  actor: 'operator',
  principal: 'https://idp.example.com#alice',
  at: 1_700_000_000_000,
  derivedFrom: null,
  expiresAt: 1_700_000_500_000,
  ...over,
});

export const decision = (over: Partial<DecisionRecord> = {}): DecisionRecord => ({
  at: 1_700_000_000_000,
  actor: 'spiffe://example.org/agent/a',
  principal: 'https://idp.example.com#alice',
  action: 'repo:read',
  decision: 'allow',
  snapshot: 'a'.repeat(64),
  policies: ['p1', 'p2'],
  reason: 'permitted by p1',
  ...over,
});

export const snapshot = (digest: string, over: Partial<PolicySnapshotRecord> = {}): PolicySnapshotRecord => ({
  digest,
  policies: [
    { id: 'p1', text: 'permit(principal, action, resource);' },
    { id: 'p2', text: 'forbid(principal, action == Action::"x", resource);\n// ünïcode' },
  ],
  createdAt: 1_000,
  ...over,
});

export const issued = (id: string, over: Partial<IssuedSvidRecord> = {}): IssuedSvidRecord => ({
  id,
  kind: 'x509',
  spiffeId: 'spiffe://example.org/agent/a',
  entryId: 'e1',
  evidenceType: 'join_token',
  issuedAt: 1_000,
  expiresAt: 2_000,
  ...over,
});

export const approval = (id: string, over: Partial<ApprovalRecord> = {}): ApprovalRecord => ({
  id,
  taskId: 'task-1',
  principalIss: 'https://idp.example',
  principalSub: 'alice',
  actor: 'spiffe://example.org/agent/a',
  actorJkt: 'j'.repeat(43),
  writJti: 'w1',
  lineage: ['g1', 'g2'],
  action: 'deploy:prod',
  resource: 'svc://payments',
  reason: 'ship the fix',
  policies: ['prod-needs-approval'],
  snapshot: 'd'.repeat(64),
  request: '{"id":"' + id + '"}',
  digest: 'a'.repeat(64),
  createdAt: 1_000,
  expiresAt: 2_000,
  state: 'pending',
  decidedAt: null,
  decidedBy: null,
  decisionReason: null,
  credentialId: null,
  stepUp: null,
  ...over,
});

export const passkey = (id: string, over: Partial<PasskeyRecord> = {}): PasskeyRecord => ({
  id,
  ownerIss: 'https://idp.example',
  ownerSub: 'bob',
  publicKey: Buffer.from([0xa5, 1, 2, 3, 0x26]),
  signCount: 0,
  createdAt: 1_000,
  usedAt: null,
  ...over,
});

export const ceremony = (challenge: string, over: Partial<PasskeyCeremonyRecord> = {}): PasskeyCeremonyRecord => ({
  challenge,
  owner: 'https://idp.example#bob',
  statement: null,
  createdAt: 1_000,
  expiresAt: 2_000,
  ...over,
});

export const attestedAgent = (id: string, over: Partial<AttestedAgentRecord> = {}): AttestedAgentRecord => ({
  id,
  spiffeId: 'spiffe://example.org/agent/a',
  entryId: 'e1',
  evidenceType: 'join_token',
  selectors: [{ type: 'join_token', value: '00112233445566ff' }],
  platform: '',
  keyResidency: '',
  evidenceDigest: Buffer.alloc(32, 7),
  serial: `5e${id}`,
  jkt: 'jkt-1',
  svidExpiresAt: 2_000,
  attestedAt: 1_000,
  renewedAt: null,
  renewals: 0,
  ...over,
});

/** A promise and its resolver, to hold a transaction open at a chosen point. */
export const auditRecord = (i: number, over: Partial<NewAuditRecord> = {}): NewAuditRecord => ({
  at: 1_700_000_000_000 + i,
  event: 'handshake.issued',
  actor: { kind: 'agent', spiffeId: `spiffe://example.org/agent/${i}`, jkt: `jkt-${i}` },
  principal: { iss: 'https://idp.example.org', sub: `user-${i % 3}` },
  task: `task-${i % 2}`,
  lineage: [`g-${i}`],
  action: null,
  resource: null,
  decision: 'allow',
  reason: null,
  policies: ['p1'],
  snapshot: 'c'.repeat(64),
  evidence: 'd'.repeat(64),
  created: [`w-${i}`],
  ...over,
});

export function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/**
 * Resolves each caller once `n` have arrived, or `ms` after the first arrived: on a backend
 * that runs transactions one at a time nobody waits for ever, and on one that runs them at
 * once every transaction reads before any writes.
 */
export function barrier(n: number, ms = 50): () => Promise<void> {
  let arrived = 0;
  const all = gate();
  let timer: NodeJS.Timeout | undefined;
  return () => {
    if (++arrived >= n) {
      clearTimeout(timer);
      all.open();
    }
    timer ??= setTimeout(all.open, ms);
    return all.wait;
  };
}

/** Runs `n` transactions at once, so that a pooled backend has `n` connections open before a race. */
export async function warm(s: Store, n: number): Promise<void> {
  const all = barrier(n, 20);
  await Promise.all(
    Array.from({ length: n }, () =>
      s.transaction(async (tx) => {
        await tx.getBundleSequence();
        await all();
      }),
    ),
  );
}

/** The rejection of `p`, which must reject. */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e,
  );
}

export function storeConformance({ backend, open }: ConformanceOptions): void {
  const prefix = `store(${backend}): `;
  /** A StoreError of this backend whose message names `what`. */
  const expectStoreError = (e: unknown, what: RegExp) => {
    expect(e).toBeInstanceOf(StoreError);
    const err = e as StoreError;
    expect(err.code).toBe('ERR_STORE');
    expect(err.message.startsWith(prefix), err.message).toBe(true);
    expect(err.message).toMatch(what);
  };
  const UNIQUE = /unique constraint violated/;

  let s: Store;
  const extra: Store[] = [];
  describe(`store conformance (${backend})`, () => {
    beforeEach(async () => {
      s = await open();
    });
    afterEach(async () => {
      await s.close();
      for (const x of extra.splice(0)) await x.close();
    });

    describe('transactions', () => {
      it('commits every write of a transaction and returns what fn returns', async () => {
        const t = token();
        const out = await s.transaction(async (tx) => {
          await tx.createJoinToken(t);
          await tx.createEntry(entry('e1'), keyOf(entry('e1')));
          await tx.putGrant(grant('g1'));
          return { seq: await tx.bumpBundleSequence() };
        });
        expect(out).toEqual({ seq: 1 });
        expect(await s.getJoinToken(t.id)).toEqual(t);
        expect(await s.getEntry('e1')).toEqual(entry('e1'));
        expect(await s.getGrant('g1')).toEqual(grant('g1'));
        expect(await s.getBundleSequence()).toBe(1);
      });

      it('a throw in fn rolls back every write and rethrows the same error', async () => {
        await s.putPolicySnapshot(snapshot('0'.repeat(64)));
        const t = token();
        const crash = new Error('crash in the middle');
        const err = await rejection(
          s.transaction(async (tx) => {
            await tx.createJoinToken(t);
            await tx.createEntry(entry('e1'), keyOf(entry('e1')));
            await tx.bumpBundleSequence();
            await tx.putTpmRecord(tpm('ek1'));
            await tx.putCaKey(caKey('k1'));
            await tx.putPolicySnapshot(snapshot('1'.repeat(64)));
            await tx.setActivePolicy({ digest: '0'.repeat(64), activatedAt: 5 });
            await tx.putGrant(grant('g1'));
            await tx.recordWrit(writ('w1'));
            await tx.recordDecision(decision());
            await tx.recordIssued(issued('i1'));
            expect(await tx.getJoinToken(t.id)).toEqual(t); // a transaction reads its own writes
            throw crash;
          }),
        );
        expect(err).toBe(crash);
        expect(await s.getJoinToken(t.id)).toBeUndefined();
        expect(await s.listEntries()).toEqual([]);
        expect(await s.listEntriesBySelectors(['join_token:e1'])).toEqual([]);
        expect(await s.getBundleSequence()).toBe(0);
        expect(await s.getTpmRecord('ek1')).toBeUndefined();
        expect(await s.listCaKeys()).toEqual([]);
        expect((await s.listPolicySnapshots()).map((p) => p.digest)).toEqual(['0'.repeat(64)]);
        expect(await s.getActivePolicy()).toBeUndefined();
        expect(await s.getGrant('g1')).toBeUndefined();
        expect(await s.getWrit('w1')).toBeUndefined();
        expect(await s.listDecisions(10)).toEqual([]);
        expect(await s.countIssued()).toBe(0);
      });

      it('a failed statement rolls back the writes before it and surfaces as StoreError', async () => {
        await s.createEntry(entry('e1'), 'k1');
        const err = await rejection(
          s.transaction(async (tx) => {
            await tx.createJoinToken(token({ id: 'tok' }));
            await tx.createEntry(entry('e2'), 'k2');
            await tx.createEntry(entry('e1'), 'k3'); // same id
          }),
        );
        expectStoreError(err, UNIQUE);
        expect((await s.listEntries()).map((e) => e.id)).toEqual(['e1']);
        expect(await s.getJoinToken('tok')).toBeUndefined();
      });

      it('never commits a transaction in which a statement failed, even when fn caught the error', async () => {
        await s.putGrant(grant('g1'));
        const err = await rejection(
          s.transaction(async (tx) => {
            await tx.createJoinToken(token({ id: 'tok' }));
            await tx.putGrant(grant('g1')).catch(() => undefined); // swallowed
            await tx.putGrant(grant('g2'));
            return 'done';
          }),
        );
        expectStoreError(err, /rolled back/);
        expect(await s.getJoinToken('tok')).toBeUndefined();
        expect(await s.getGrant('g2')).toBeUndefined();
        expect(await s.getGrant('g1')).toEqual(grant('g1'));
      });

      it('refuses statements on a transaction handle after its transaction ended', async () => {
        let kept: StoreTx | undefined;
        await s.transaction(async (tx) => {
          kept = tx;
        });
        expectStoreError(await rejection(kept!.createJoinToken(token({ id: 'late' }))), /ended/);
        expectStoreError(await rejection(kept!.getJoinToken('late')), /ended/);
        expect(await s.getJoinToken('late')).toBeUndefined();
      });

      it('no reader sees a write of a transaction that has not committed', async () => {
        const t = token();
        const g = gate();
        const written = gate();
        const tx = s.transaction(async (tx) => {
          await tx.createJoinToken(t);
          written.open();
          await g.wait;
          throw new Error('abort');
        });
        await written.wait;
        const read = s.getJoinToken(t.id); // before the transaction ends
        const listed = s.transaction((tx) => tx.getJoinToken(t.id));
        g.open();
        await expect(tx).rejects.toThrow('abort');
        expect(await read).toBeUndefined();
        expect(await listed).toBeUndefined();
      });

      it('runs concurrent transactions as if one after another (no lost update)', async () => {
        // Each reads the counter, yields, writes counter + 1: interleaving would lose increments.
        const N = 10;
        await s.putTpmRecord(tpm('ek', { resetCount: 0 }));
        await warm(s, N);
        const allRead = barrier(N);
        await Promise.all(
          Array.from({ length: N }, () => {
            let runs = 0;
            return s.transaction(async (tx) => {
              const r = await tx.getTpmRecord('ek');
              if (++runs === 1) await allRead();
              await tx.putTpmRecord({ ...r!, resetCount: r!.resetCount + 1 });
            });
          }),
        );
        expect((await s.getTpmRecord('ek'))!.resetCount).toBe(N);
      });
    });

    describe('join tokens', () => {
      it('round-trips a token', async () => {
        const t = token({ expiresAt: Number.MAX_SAFE_INTEGER, createdAt: 1_700_000_000_000 });
        await s.createJoinToken(t);
        const got = await s.getJoinToken(t.id);
        expect(got).toEqual(t);
        expect(Buffer.isBuffer(got!.secretHash)).toBe(true);
        expect(await s.getJoinToken('unknown')).toBeUndefined();
      });

      it('consumes a token once, recording when, and only while unexpired', async () => {
        const t = token({ expiresAt: 5_000 });
        await s.createJoinToken(t);
        expect(await s.consumeJoinToken(t.id, 2_000)).toBe(true);
        expect(await s.consumeJoinToken(t.id, 2_001)).toBe(false);
        expect((await s.getJoinToken(t.id))!.usedAt).toBe(2_000);

        const late = token({ expiresAt: 5_000 });
        await s.createJoinToken(late);
        expect(await s.consumeJoinToken(late.id, 5_000)).toBe(false); // expires at 5000: not after
        expect(await s.consumeJoinToken(late.id, 9_000)).toBe(false);
        expect((await s.getJoinToken(late.id))!.usedAt).toBeNull();
        expect(await s.consumeJoinToken(late.id, 4_999)).toBe(true);
        expect(await s.consumeJoinToken('unknown', 1)).toBe(false);
      });

      it('consumes a token exactly once when concurrent transactions race for it', async () => {
        const t = token();
        await s.createJoinToken(t);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            s.transaction(async (tx) => {
              const seen = await tx.getJoinToken(t.id);
              if (seen?.usedAt !== null) return false;
              return tx.consumeJoinToken(t.id, 2_000 + i);
            }),
          ),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        expect((await s.getJoinToken(t.id))!.usedAt).toBe(2_000 + results.indexOf(true));
      });

      it('consumes a token exactly once when concurrent single calls race for it', async () => {
        const t = token();
        await s.createJoinToken(t);
        const results = await Promise.all(Array.from({ length: 20 }, () => s.consumeJoinToken(t.id, 2_000)));
        expect(results.filter(Boolean)).toHaveLength(1);
      });

      it('prunes tokens that expired before the given time, and returns how many', async () => {
        await s.createJoinToken(token({ id: 'a', expiresAt: 100 }));
        await s.createJoinToken(token({ id: 'b', expiresAt: 200 }));
        await s.createJoinToken(token({ id: 'c', expiresAt: 300 }));
        expect(await s.pruneJoinTokens(200)).toBe(1);
        expect(await s.getJoinToken('a')).toBeUndefined();
        expect(await s.getJoinToken('b')).toBeDefined();
        expect(await s.pruneJoinTokens(1_000)).toBe(2);
        expect(await s.pruneJoinTokens(1_000)).toBe(0);
      });

      it('refuses a second token with the same id and keeps the first', async () => {
        const t = token();
        await s.createJoinToken(t);
        expectStoreError(await rejection(s.createJoinToken({ ...t, secretHash: randomBytes(32) })), UNIQUE);
        expect(await s.getJoinToken(t.id)).toEqual(t);
      });
    });

    describe('attested agents', () => {
      const next = (serial: string, at = 1_500) => ({ serial, jkt: 'jkt-2', svidExpiresAt: 3_000, keyResidency: '', renewedAt: at });

      it('keeps an attested agent and finds it by its latest serial only', async () => {
        const a = attestedAgent('a1', { platform: 'tpm:ek_hash:ab', keyResidency: 'tpm' });
        await s.putAttestedAgent(a);
        expect(await s.getAttestedAgentBySerial(a.serial)).toEqual(a);
        expect(await s.getAttestedAgentBySerial('unknown')).toBeUndefined();
        expect(await s.renewAttestedAgent('a1', a.serial, next('5e02', 1_600))).toBe(true);
        expect(await s.getAttestedAgentBySerial(a.serial)).toBeUndefined();
        expect(await s.getAttestedAgentBySerial('5e02')).toEqual({ ...a, ...next('5e02', 1_600), renewals: 1 });
      });

      it('renews only from the latest serial, and a superseded one changes nothing', async () => {
        const a = attestedAgent('a1');
        await s.putAttestedAgent(a);
        expect(await s.renewAttestedAgent('a1', a.serial, next('5e02'))).toBe(true);
        expect(await s.renewAttestedAgent('a1', a.serial, next('5e03'))).toBe(false);
        expect(await s.renewAttestedAgent('other', '5e02', next('5e03'))).toBe(false);
        expect(await s.getAttestedAgentBySerial('5e03')).toBeUndefined();
        expect((await s.getAttestedAgentBySerial('5e02'))!.renewals).toBe(1);
      });

      it('renews exactly once when concurrent transactions race with the same serial', async () => {
        const a = attestedAgent('a1');
        await s.putAttestedAgent(a);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            s.transaction(async (tx) => {
              if (!(await tx.getAttestedAgentBySerial(a.serial))) return false;
              return tx.renewAttestedAgent('a1', a.serial, next(`7${i.toString(16).padStart(3, '0')}`));
            }),
          ),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        const won = `7${results.indexOf(true).toString(16).padStart(3, '0')}`;
        expect((await s.getAttestedAgentBySerial(won))!.renewals).toBe(1);
      });

      it('renews exactly once when concurrent single calls race with the same serial', async () => {
        const a = attestedAgent('a1');
        await s.putAttestedAgent(a);
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => s.renewAttestedAgent('a1', a.serial, next(`8${i}`))));
        expect(results.filter(Boolean)).toHaveLength(1);
      });

      it('refuses a second agent with the same id or the same serial', async () => {
        await s.putAttestedAgent(attestedAgent('a1'));
        expectStoreError(await rejection(s.putAttestedAgent(attestedAgent('a1', { serial: '99' }))), UNIQUE);
        expectStoreError(await rejection(s.putAttestedAgent(attestedAgent('a2', { serial: '5ea1' }))), UNIQUE);
        await s.putAttestedAgent(attestedAgent('a2'));
        // A renewal may not take a serial another agent holds either.
        expectStoreError(await rejection(s.renewAttestedAgent('a2', '5ea2', next('5ea1'))), UNIQUE);
        expect(await s.getAttestedAgentBySerial('5ea2')).toBeDefined();
      });

      it('knows an agent by the key and the platform of its latest SVID only', async () => {
        await s.putAttestedAgent(attestedAgent('a1', { platform: 'tpm:ek_hash:ab' }));
        expect(await s.attestedAgentKnown('jkt', 'jkt-1')).toBe(true);
        expect(await s.attestedAgentKnown('platform', 'tpm:ek_hash:ab')).toBe(true);
        expect(await s.attestedAgentKnown('jkt', 'jkt-2')).toBe(false);
        expect(await s.attestedAgentKnown('platform', '')).toBe(false);
        await s.putAttestedAgent(attestedAgent('a2'));
        expect(await s.attestedAgentKnown('platform', '')).toBe(false);
        expect(await s.renewAttestedAgent('a1', '5ea1', { serial: '5e02', jkt: 'jkt-2', svidExpiresAt: 3_000, keyResidency: '', renewedAt: 1_500 })).toBe(true);
        expect(await s.attestedAgentKnown('jkt', 'jkt-2')).toBe(true);
        // a2 still holds jkt-1.
        expect(await s.attestedAgentKnown('jkt', 'jkt-1')).toBe(true);
      });

      it('prunes agents whose latest SVID expired before the given time, and returns how many', async () => {
        await s.putAttestedAgent(attestedAgent('a1', { svidExpiresAt: 100 }));
        await s.putAttestedAgent(attestedAgent('a2', { svidExpiresAt: 200 }));
        expect(await s.pruneAttestedAgents(200)).toBe(1);
        expect(await s.getAttestedAgentBySerial('5ea1')).toBeUndefined();
        expect(await s.getAttestedAgentBySerial('5ea2')).toBeDefined();
        expect(await s.pruneAttestedAgents(201)).toBe(1);
      });

      it('rolls an agent record back with the transaction that wrote it', async () => {
        await expect(
          s.transaction(async (tx) => {
            await tx.putAttestedAgent(attestedAgent('a1'));
            throw new Error('abort');
          }),
        ).rejects.toThrow('abort');
        expect(await s.getAttestedAgentBySerial('5ea1')).toBeUndefined();
      });
    });

    describe('entries', () => {
      it('round-trips an entry with its selectors and scope ceiling', async () => {
        const e = entry('e1', {
          selectors: [
            { type: 'tpm', value: 'ek_hash:abc' },
            { type: 'unix', value: 'uid:0' },
          ],
          scopeCeiling: [],
          hint: '',
          x509SvidTtl: 0,
        });
        await s.createEntry(e, keyOf(e));
        expect(await s.getEntry('e1')).toEqual(e);
        expect(await s.getEntry('e2')).toBeUndefined();
      });

      it('lists entries by creation time, then id in byte order', async () => {
        await s.createEntry(entry('b', { createdAt: 2 }), 'kb');
        await s.createEntry(entry('a', { createdAt: 2 }), 'ka');
        await s.createEntry(entry('Z', { createdAt: 2 }), 'kZ');
        await s.createEntry(entry('_', { createdAt: 2 }), 'k_');
        await s.createEntry(entry('c', { createdAt: 1 }), 'kc');
        expect((await s.listEntries()).map((e) => e.id)).toEqual(['c', 'Z', '_', 'a', 'b']);
      });

      it('says whether an entry with this SPIFFE ID and exactly these selectors exists', async () => {
        const e = entry('e1');
        await s.createEntry(e, 'k1');
        expect(await s.entryExists(e.spiffeId, 'k1')).toBe(true);
        expect(await s.entryExists(e.spiffeId, 'k2')).toBe(false);
        expect(await s.entryExists('spiffe://example.org/other', 'k1')).toBe(false);
      });

      it('refuses a second entry with the same SPIFFE ID and selectors key, writing nothing of it', async () => {
        const e = entry('e1');
        await s.createEntry(e, 'k1');
        const dup = entry('e2', { spiffeId: e.spiffeId, selectors: [{ type: 'x', value: 'only-in-e2' }] });
        expectStoreError(await rejection(s.createEntry(dup, 'k1')), UNIQUE);
        expect(await s.getEntry('e2')).toBeUndefined();
        expect(await s.listEntriesBySelectors(['x:only-in-e2'])).toEqual([]);
      });

      it('writes an entry and its selector index together or not at all', async () => {
        // The same selector twice collides in the index after the entry row was inserted.
        const e = entry('e1', {
          selectors: [
            { type: 'a', value: '1' },
            { type: 'a', value: '1' },
          ],
        });
        expectStoreError(await rejection(s.createEntry(e, 'k1')), UNIQUE);
        expect(await s.getEntry('e1')).toBeUndefined();
        expect(await s.entryExists(e.spiffeId, 'k1')).toBe(false);
      });

      it('deletes an entry once, with its selector index', async () => {
        await s.createEntry(entry('e1'), 'k1');
        expect(await s.deleteEntry('e1')).toBe(true);
        expect(await s.deleteEntry('e1')).toBe(false);
        expect(await s.getEntry('e1')).toBeUndefined();
        expect(await s.listEntriesBySelectors(['join_token:e1'])).toEqual([]);
        await s.createEntry(entry('e1'), 'k1'); // the id and key are free again
        expect((await s.listEntriesBySelectors(['join_token:e1'])).map((e) => e.id)).toEqual(['e1']);
      });
    });

    describe('entry lookup by selectors', () => {
      beforeEach(async () => {
        const add = (id: string, createdAt: number, ...sel: string[]) =>
          s.createEntry(
            entry(id, {
              createdAt,
              selectors: sel.map((x) => ({ type: x.slice(0, x.indexOf(':')), value: x.slice(x.indexOf(':') + 1) })),
            }),
            sel.join('\n'),
          );
        await add('e1', 10, 'a:1', 'b:2');
        await add('e2', 5, 'c:3');
        await add('e3', 20, 'b:2', 'c:3', 'd:4');
        await add('odd', 30, 'q:"quoted", {braces} and \\backslash', 'q:NULL', 'q:');
      });
      const ids = async (sel: string[]) => (await s.listEntriesBySelectors(sel)).map((e) => e.id);

      it('returns the entries having at least one of the selectors, each once, by creation time', async () => {
        expect(await ids(['b:2'])).toEqual(['e1', 'e3']);
        expect(await ids(['a:1', 'c:3'])).toEqual(['e2', 'e1', 'e3']);
        expect(await ids(['b:2', 'c:3', 'd:4', 'a:1'])).toEqual(['e2', 'e1', 'e3']);
        expect(await ids(['c:3', 'c:3'])).toEqual(['e2', 'e3']);
      });

      it('matches whole selectors only', async () => {
        expect(await ids(['z:9'])).toEqual([]);
        expect(await ids(['b'])).toEqual([]);
        expect(await ids(['b:'])).toEqual([]);
        expect(await ids(['b:2 '])).toEqual([]);
        expect(await ids(['B:2'])).toEqual([]);
        expect(await ids(['%'])).toEqual([]);
        expect(await ids([])).toEqual([]);
      });

      it('matches selectors with quotes, braces, backslashes and the word NULL verbatim', async () => {
        expect(await ids(['q:"quoted", {braces} and \\backslash'])).toEqual(['odd']);
        expect(await ids(['q:NULL'])).toEqual(['odd']);
        expect(await ids(['q:'])).toEqual(['odd']);
        expect(await ids(['q:"quoted"'])).toEqual([]);
        expect(await ids(['q:null'])).toEqual([]);
      });
    });

    describe('CA keys and the bundle sequence', () => {
      it('round-trips keys (empty certificate for JWT and writ keys), ordered by not-before then id', async () => {
        const keys = [
          caKey('k-b', { kind: 'x509-root', state: 'active', notBefore: 5 }),
          caKey('k-a', { kind: 'x509-intermediate', state: 'retired', notBefore: 5 }),
          caKey('k-c', { kind: 'jwt', certDer: Buffer.alloc(0), notBefore: 1 }),
          caKey('k-d', { kind: 'writ', certDer: Buffer.alloc(0), state: 'active', notBefore: 9, notAfter: Number.MAX_SAFE_INTEGER }),
        ];
        for (const k of keys) await s.putCaKey(k);
        const got = await s.listCaKeys();
        expect(got.map((k) => k.id)).toEqual(['k-c', 'k-a', 'k-b', 'k-d']);
        expect(got).toEqual([keys[2], keys[1], keys[0], keys[3]]);
        expect(got[0]!.certDer).toHaveLength(0);
      });

      it('changes a key state and deletes keys', async () => {
        await s.putCaKey(caKey('k1'));
        await s.setCaKeyState('k1', 'active');
        expect((await s.listCaKeys())[0]!.state).toBe('active');
        await s.deleteCaKey('k1');
        await s.deleteCaKey('k1'); // deleting an absent key is not an error
        expect(await s.listCaKeys()).toEqual([]);
      });

      it('allows one active key per kind', async () => {
        await s.putCaKey(caKey('j1', { state: 'active' }));
        await s.putCaKey(caKey('w1', { kind: 'writ', state: 'active' }));
        expectStoreError(await rejection(s.putCaKey(caKey('j2', { state: 'active' }))), UNIQUE);
        await s.putCaKey(caKey('j2'));
        expectStoreError(await rejection(s.setCaKeyState('j2', 'active')), UNIQUE);
        expect((await s.listCaKeys()).map((k) => `${k.id}:${k.state}`)).toEqual(['j1:active', 'j2:prepared', 'w1:active']);
      });

      it('refuses an unknown key kind or state', async () => {
        expectStoreError(await rejection(s.putCaKey(caKey('k1', { kind: 'hmac' as CaKeyRecord['kind'] }))), /check constraint violated/);
        expectStoreError(await rejection(s.putCaKey(caKey('k2', { state: 'revoked' as CaKeyRecord['state'] }))), /check constraint violated/);
        expect(await s.listCaKeys()).toEqual([]);
      });

      it('starts the bundle sequence at 0 and bumps it by one, also across concurrent transactions', async () => {
        expect(await s.getBundleSequence()).toBe(0);
        expect(await s.bumpBundleSequence()).toBe(1);
        const got = await Promise.all(Array.from({ length: 10 }, () => s.transaction((tx) => tx.bumpBundleSequence())));
        expect([...got].sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        expect(await s.getBundleSequence()).toBe(11);
      });
    });

    describe('TPM records', () => {
      it('round-trips a record with a u64 clock and replaces it by EK', async () => {
        const r = tpm('ek1');
        await s.putTpmRecord(r);
        expect(await s.getTpmRecord('ek1')).toEqual(r);
        expect(await s.getTpmRecord('ek2')).toBeUndefined();
        const next = tpm('ek1', { resetCount: 4, restartCount: 0, clock: '1', updatedAt: 1_700_000_000_003 });
        await s.putTpmRecord(next);
        expect(await s.getTpmRecord('ek1')).toEqual(next);
      });

      it('keeps counters strictly increasing when concurrent handshakes of one TPM commit', async () => {
        // What the TPM verifier does at commit: re-read, refuse a quote that is not newer, write.
        await s.putTpmRecord(tpm('ek', { clock: '0' }));
        const clocks = [5, 3, 9, 7, 1, 8, 2, 6, 4, 10];
        const accepted: number[] = [];
        await warm(s, clocks.length);
        const allRead = barrier(clocks.length);
        const results = await Promise.allSettled(
          clocks.map((c) => {
            let runs = 0;
            return s.transaction(async (tx) => {
              const r = (await tx.getTpmRecord('ek'))!;
              if (++runs === 1) await allRead();
              if (BigInt(r.clock) >= BigInt(c)) throw new Error(`clock ${c} is not after ${r.clock}`);
              await tx.putTpmRecord({ ...r, clock: String(c) });
              return c;
            });
          }),
        );
        for (const r of results) {
          if (r.status === 'fulfilled') accepted.push(r.value);
          else expect(String(r.reason)).toMatch(/is not after/);
        }
        expect((await s.getTpmRecord('ek'))!.clock).toBe('10');
        expect(accepted).toContain(10);
      });
    });

    describe('policy snapshots', () => {
      it('round-trips a snapshot; the first one stored under a digest stays', async () => {
        const first = snapshot('a'.repeat(64));
        await s.putPolicySnapshot(first);
        await s.putPolicySnapshot(snapshot('a'.repeat(64), { policies: [{ id: 'other', text: 'x' }], createdAt: 6 }));
        await s.transaction((tx) => tx.putPolicySnapshot(snapshot('a'.repeat(64), { policies: [], createdAt: 7 })));
        expect(await s.getPolicySnapshot('a'.repeat(64))).toEqual(first);
        expect(await s.getPolicySnapshot('b'.repeat(64))).toBeUndefined();
      });

      it('lists snapshots newest first, ties by digest', async () => {
        await s.putPolicySnapshot(snapshot('b'.repeat(64), { createdAt: 1 }));
        await s.putPolicySnapshot(snapshot('c'.repeat(64), { createdAt: 3 }));
        await s.putPolicySnapshot(snapshot('a'.repeat(64), { createdAt: 1 }));
        expect((await s.listPolicySnapshots()).map((p) => p.digest[0])).toEqual(['c', 'a', 'b']);
      });

      it('has one active snapshot, which must exist', async () => {
        expect(await s.getActivePolicy()).toBeUndefined();
        expectStoreError(await rejection(s.setActivePolicy({ digest: 'b'.repeat(64), activatedAt: 1 })), /foreign key constraint violated/);
        await s.putPolicySnapshot(snapshot('a'.repeat(64)));
        await s.putPolicySnapshot(snapshot('c'.repeat(64)));
        await s.setActivePolicy({ digest: 'a'.repeat(64), activatedAt: 7 });
        expect(await s.getActivePolicy()).toEqual({ digest: 'a'.repeat(64), activatedAt: 7 });
        await s.setActivePolicy({ digest: 'c'.repeat(64), activatedAt: 8 });
        expect(await s.getActivePolicy()).toEqual({ digest: 'c'.repeat(64), activatedAt: 8 });
      });
    });

    describe('approvals and passkeys', () => {
      const approved = {
        state: 'approved',
        decidedAt: 1_500,
        decidedBy: 'https://idp.example#bob',
        decisionReason: null,
        credentialId: 'c1',
        stepUp: 'x.y.z',
      } as const;

      it('round-trips an approval request and lists them newest first, filtered by state and task', async () => {
        const a = approval('r1');
        await s.createApproval(a);
        await s.createApproval(approval('r2', { createdAt: 1_100, taskId: 'task-2' }));
        expect(await s.getApproval('r1')).toEqual(a);
        expect(await s.getApproval('nope')).toBeUndefined();
        expect((await s.listApprovals({}, 10)).map((r) => r.id)).toEqual(['r2', 'r1']);
        expect((await s.listApprovals({ taskId: 'task-1' }, 10)).map((r) => r.id)).toEqual(['r1']);
        expect((await s.listApprovals({ state: 'pending' }, 1)).map((r) => r.id)).toEqual(['r2']);
        expect(await s.listApprovals({ state: 'approved' }, 10)).toEqual([]);
      });

      it('decides a pending request exactly once, and never after it expired', async () => {
        await s.createApproval(approval('r1'));
        await s.createApproval(approval('r2'));
        expect(await s.decideApproval('r1', approved, 1_500)).toBe(true);
        expect(await s.decideApproval('r1', { ...approved, state: 'denied' }, 1_500)).toBe(false);
        expect(await s.getApproval('r1')).toEqual({ ...approval('r1'), ...approved });
        expect(await s.decideApproval('r2', approved, 2_000)).toBe(false);
        expect((await s.getApproval('r2'))!.state).toBe('pending');
        expect(await s.decideApproval('unknown', approved, 1_500)).toBe(false);
      });

      it('decides once when concurrent transactions race over the same request', async () => {
        await s.createApproval(approval('r1'));
        const won = await Promise.all(
          Array.from({ length: 10 }, (_, i) => s.transaction((tx) => tx.decideApproval('r1', { ...approved, decidedBy: `https://idp.example#a${i}` }, 1_500))),
        );
        expect(won.filter(Boolean)).toHaveLength(1);
      });

      it('refuses a second request with the same id, and an unknown state', async () => {
        await s.createApproval(approval('r1'));
        expectStoreError(await rejection(s.createApproval(approval('r1', { reason: 'other' }))), UNIQUE);
        expect(await rejection(s.createApproval(approval('r3', { state: 'revoked' as never })))).toBeInstanceOf(StoreError);
      });

      it('filters by live state at now, task and principal in SQL, and pages newest first by (created_at, id)', async () => {
        await s.createApproval(approval('r1', { createdAt: 1_000, expiresAt: 1_500 }));
        await s.createApproval(approval('r2', { createdAt: 1_100, taskId: 'task-2', principalSub: 'carol' }));
        await s.createApproval(approval('r3', { createdAt: 1_100 }));
        await s.createApproval(approval('r4', { createdAt: 1_200, state: 'expired' }));
        await s.createApproval(approval('r5', { createdAt: 1_300, state: 'denied', decidedAt: 1_301, decidedBy: 'i#b', decisionReason: 'no' }));
        const ids = async (f: Parameters<typeof s.listApprovals>[0], n = 10) => (await s.listApprovals(f, n)).map((r) => r.id);
        expect(await ids({})).toEqual(['r5', 'r4', 'r3', 'r2', 'r1']);
        expect(await ids({ state: 'pending', now: 1_600 })).toEqual(['r3', 'r2']);
        expect(await ids({ state: 'expired', now: 1_600 })).toEqual(['r4', 'r1']);
        expect(await ids({ state: 'pending' })).toEqual(['r3', 'r2', 'r1']);
        expect(await ids({ state: 'expired' })).toEqual(['r4']);
        expect(await ids({ state: 'denied', now: 1_600 })).toEqual(['r5']);
        expect(await ids({ principal: { iss: 'https://idp.example', sub: 'carol' } })).toEqual(['r2']);
        expect(await ids({ principal: { iss: 'https://other.example', sub: 'carol' } })).toEqual([]);
        expect(await ids({ taskId: 'task-2', state: 'pending', now: 1_600 })).toEqual(['r2']);
        // Keyset: strictly after the given position; equal created_at ordered by id, descending.
        expect(await ids({ after: { createdAt: 1_100, id: 'r3' } })).toEqual(['r2', 'r1']);
        expect(await ids({ after: { createdAt: 1_100, id: 'r2' } })).toEqual(['r1']);
        expect(await ids({ after: { createdAt: 1_000, id: 'r1' } })).toEqual([]);
        const pages: string[][] = [];
        let after: { createdAt: number; id: string } | undefined;
        for (;;) {
          const page = await s.listApprovals({ ...(after ? { after } : {}) }, 2);
          if (page.length === 0) break;
          pages.push(page.map((r) => r.id));
          const last = page[page.length - 1]!;
          after = { createdAt: last.createdAt, id: last.id };
        }
        expect(pages).toEqual([['r5', 'r4'], ['r3', 'r2'], ['r1']]);
      });

      it('a flood of 1000 requests from one task hides no other task’s request: filtered in SQL, not after the newest 500', async () => {
        await s.createApproval(approval('other', { createdAt: 500, taskId: 'task-2', expiresAt: 1_000_000 }));
        await s.transaction(async (tx) => {
          for (let i = 0; i < 1000; i++)
            await tx.createApproval(approval(`flood-${String(i).padStart(4, '0')}`, { createdAt: 1_000 + i, expiresAt: 1_000_000 }));
        });
        expect((await s.listApprovals({ taskId: 'task-2', state: 'pending', now: 2_000 }, 100)).map((r) => r.id)).toEqual(['other']);
        // Paging through everything pending reaches it, past the flood.
        const seen: string[] = [];
        let after: { createdAt: number; id: string } | undefined;
        for (let pages = 0; pages < 20; pages++) {
          const page = await s.listApprovals({ state: 'pending', now: 2_000, ...(after ? { after } : {}) }, 100);
          if (page.length === 0) break;
          seen.push(...page.map((r) => r.id));
          after = { createdAt: page[page.length - 1]!.createdAt, id: page[page.length - 1]!.id };
        }
        expect(seen).toHaveLength(1001);
        expect(seen[1000]).toBe('other');
        expect(await s.countPendingApprovals('task-1', undefined, 2_000, 5_000)).toBe(1000);
        expect(await s.countPendingApprovals('task-1', undefined, 2_000, 256)).toBe(256);
      });

      it('counts pending, unexpired requests per task and writ, and finds the pending one for a permission', async () => {
        await s.createApproval(approval('r1', { expiresAt: 2_000 }));
        await s.createApproval(approval('r2', { writJti: 'w2', expiresAt: 3_000 }));
        await s.createApproval(approval('r3', { writJti: 'w2', expiresAt: 1_200 }));
        await s.createApproval(approval('r4', { writJti: 'w2', state: 'denied' }));
        await s.createApproval(approval('r5', { taskId: 'task-2', writJti: 'w3' }));
        expect(await s.countPendingApprovals('task-1', undefined, 1_500, 10)).toBe(2);
        expect(await s.countPendingApprovals('task-1', 'w2', 1_500, 10)).toBe(1);
        expect(await s.countPendingApprovals('task-1', 'w2', 1_100, 10)).toBe(2);
        expect(await s.countPendingApprovals('task-1', 'w2', 1_100, 1)).toBe(1);
        expect(await s.countPendingApprovals('task-3', undefined, 1_500, 10)).toBe(0);
        expect((await s.findPendingApproval('w2', 'deploy:prod', 'svc://payments', 1_500))?.id).toBe('r2');
        expect(await s.findPendingApproval('w2', 'deploy:prod', 'svc://payments', 3_000)).toBeUndefined();
        expect(await s.findPendingApproval('w2', 'deploy:prod', 'svc://other', 1_500)).toBeUndefined();
        expect(await s.findPendingApproval('w1', 'deploy:prod', 'svc://payments', 2_000)).toBeUndefined();
      });

      it('stores expiry once, only past it, only from pending; an expired request is not decided', async () => {
        await s.createApproval(approval('r1', { expiresAt: 2_000 }));
        await s.createApproval(approval('r2', { expiresAt: 1_500 }));
        await s.createApproval(approval('r3', { expiresAt: 1_000, state: 'denied' }));
        expect((await s.listExpiredPending(2_000, 10)).map((r) => r.id)).toEqual(['r2', 'r1']);
        expect((await s.listExpiredPending(1_600, 10)).map((r) => r.id)).toEqual(['r2']);
        expect(await s.expireApproval('r1', 1_999)).toBe(false);
        expect(await s.expireApproval('r3', 2_000)).toBe(false);
        const won = await Promise.all(Array.from({ length: 10 }, () => s.transaction((tx) => tx.expireApproval('r1', 2_000))));
        expect(won.filter(Boolean)).toHaveLength(1);
        expect((await s.getApproval('r1'))!.state).toBe('expired');
        expect(await s.decideApproval('r1', approved, 1_000)).toBe(false);
        expect((await s.listExpiredPending(2_000, 10)).map((r) => r.id)).toEqual(['r2']);
      });

      it('keeps passkeys by owner and moves a sign count only from its current value', async () => {
        const k = passkey('c1');
        await s.putPasskey(k);
        await s.putPasskey(passkey('c2', { ownerSub: 'carol' }));
        expect(await s.getPasskey('c1')).toEqual(k);
        expect((await s.listPasskeys('https://idp.example', 'bob')).map((p) => p.id)).toEqual(['c1']);
        expect(await s.listPasskeys('https://other.example', 'bob')).toEqual([]);
        expect(await s.usePasskey('c1', 0, 5, 1_200)).toBe(true);
        expect(await s.usePasskey('c1', 0, 6, 1_300)).toBe(false);
        expect(await s.getPasskey('c1')).toEqual({ ...k, signCount: 5, usedAt: 1_200 });
        expectStoreError(await rejection(s.putPasskey(passkey('c1', { ownerSub: 'mallory' }))), UNIQUE);
      });

      it('keeps registration ceremonies for every replica: listed by owner oldest first, counted while live, taken once, pruned', async () => {
        const a = ceremony('ch-a', { statement: '{"typ":"writ-passkey-registration"}' });
        await s.putPasskeyCeremony(a);
        await s.putPasskeyCeremony(ceremony('ch-b', { createdAt: 1_100 }));
        await s.putPasskeyCeremony(ceremony('ch-c', { owner: 'https://idp.example#carol', expiresAt: 1_500 }));
        expectStoreError(await rejection(s.putPasskeyCeremony(ceremony('ch-a', { owner: 'https://idp.example#mallory' }))), UNIQUE);
        expect((await s.listPasskeyCeremonies('https://idp.example#bob', 1_200)).map((c) => c.challenge)).toEqual(['ch-a', 'ch-b']);
        expect(await s.listPasskeyCeremonies('https://idp.example#carol', 1_500)).toEqual([]);
        expect(await s.countPasskeyCeremonies(1_200)).toBe(3);
        expect(await s.countPasskeyCeremonies(1_500)).toBe(2);
        expect(await s.takePasskeyCeremony('ch-a')).toEqual(a);
        expect(await s.takePasskeyCeremony('ch-a')).toBeUndefined();
        expect(await s.takePasskeyCeremony('nope')).toBeUndefined();
        expect(await s.prunePasskeyCeremonies(1_500)).toBe(1);
        expect(await s.countPasskeyCeremonies(0)).toBe(1);
      });

      it('gives a ceremony to exactly one of concurrent takers', async () => {
        await s.putPasskeyCeremony(ceremony('ch-race'));
        const got = await Promise.all(Array.from({ length: 10 }, () => s.transaction((tx) => tx.takePasskeyCeremony('ch-race'))));
        expect(got.filter((c) => c !== undefined)).toHaveLength(1);
      });
    });

    describe('grants, writs, decisions, issued SVIDs', () => {
      it('round-trips grants, revoked or not, and refuses a second grant with the same id', async () => {
        const g = grant('g1');
        const revoked = grant('g2', { principalGroups: [], revokedAt: 1_700_000_000_500, depth: 0 });
        await s.putGrant(g);
        await s.putGrant(revoked);
        expect(await s.getGrant('g1')).toEqual(g);
        expect(await s.getGrant('g2')).toEqual(revoked);
        expect(await s.getGrant('g3')).toBeUndefined();
        expectStoreError(await rejection(s.putGrant({ ...g, compact: 'x.y.z' })), UNIQUE);
        expect(await s.getGrant('g1')).toEqual(g);
      });

      it('round-trips writs and refuses a second writ with the same id', async () => {
        const w = writ('w1');
        await s.recordWrit(w);
        const got = await s.getWrit('w1');
        expect(got).toEqual(w);
        expect(Buffer.isBuffer(got!.chainDigest)).toBe(true);
        expect(await s.getWrit('w2')).toBeUndefined();
        expectStoreError(await rejection(s.recordWrit(writ('w1'))), UNIQUE);
        expect(await s.getWrit('w1')).toEqual(w);
      });

      it('writes a writ and its lineage index together or not at all', async () => {
        // A null grant id fails the lineage index's NOT NULL after the writ row and the first
        // lineage row were written: a half-written writ would be found by its jti but not be
        // killed by a revocation of its first grant.
        const w = writ('w1', { lineage: ['g1', null as unknown as string] });
        expectStoreError(await rejection(s.recordWrit(w)), /not-null constraint violated/);
        expect(await s.getWrit('w1')).toBeUndefined();
        expect(await s.countWrits({ by: 'grant', value: 'g1' })).toBe(0);
        expect(await s.countWrits({ by: 'jti', value: 'w1' })).toBe(0);
        await s.recordWrit(writ('w1', { lineage: ['g1'] })); // the id is free
        expect(await s.countWrits({ by: 'grant', value: 'g1' })).toBe(1);
      });

      it('lists decisions newest first, up to the limit', async () => {
        const ds = (['allow', 'deny', 'escalate', 'allow'] as const).map((d, i) =>
          decision({ at: 100 - i, decision: d, reason: `r${i}`, policies: i ? [`p${i}`] : [] }),
        );
        for (const d of ds) await s.recordDecision(d);
        expect(await s.listDecisions(10)).toEqual([...ds].reverse());
        expect(await s.listDecisions(2)).toEqual([ds[3], ds[2]]);
        expect(await s.listDecisions(0)).toEqual([]);
        expectStoreError(await rejection(s.listDecisions(-1)), /limit/);
        expectStoreError(await rejection(s.recordDecision(decision({ decision: 'maybe' as DecisionRecord['decision'] }))), /check constraint violated/);
        expect(await s.listDecisions(10)).toHaveLength(4);
      });

      it('counts and prunes issued SVIDs, refusing a duplicate id', async () => {
        await s.recordIssued(issued('i1', { expiresAt: 100 }));
        await s.recordIssued(issued('i2', { kind: 'jwt', expiresAt: 200 }));
        await s.recordIssued(issued('i3', { expiresAt: 300 }));
        expectStoreError(await rejection(s.recordIssued(issued('i1'))), UNIQUE);
        expect(await s.countIssued()).toBe(3);
        expect(await s.pruneIssued(200)).toBe(1);
        expect(await s.countIssued()).toBe(2);
        expect(await s.pruneIssued(301)).toBe(2);
        expect(await s.countIssued()).toBe(0);
      });
    });

    describe('revocations, tasks, status lists', () => {
      /** w1 (A) → w2 (B, delegated from w1) → w3 (C, from w2); w4 elsewhere; w5 a renewal of A. */
      async function tree() {
        const ws = [
          writ('w1', { spiffeId: 'spiffe://example.org/a', jkt: 'kA', lineage: ['g1'], entryId: 'eA', platform: 'tpm:ek_hash:aa', taskId: 't1' }),
          writ('w2', { spiffeId: 'spiffe://example.org/b', jkt: 'kB', lineage: ['g1', 'g2'], parentJti: 'w1', entryId: 'eB', taskId: 't1' }),
          writ('w3', { spiffeId: 'spiffe://example.org/c', jkt: 'kC', lineage: ['g1', 'g2', 'g3'], parentJti: 'w2', entryId: 'eC', taskId: 't1' }),
          writ('w4', { spiffeId: 'spiffe://example.org/d', jkt: 'kD', lineage: ['g9'], entryId: 'eD', taskId: 't2', principal: 'https://idp.example.com#bob' }),
          writ('w5', {
            spiffeId: 'spiffe://example.org/a',
            jkt: 'kA',
            lineage: ['g1'],
            entryId: 'eA',
            platform: 'tpm:ek_hash:aa',
            taskId: 't1',
            issuedAt: 1_700_000_000_001,
          }),
        ];
        for (const w of ws) await s.recordWrit(w);
        return ws;
      }
      const revokedJtis = async () =>
        (await Promise.all(['w1', 'w2', 'w3', 'w4', 'w5'].map((j) => s.getWrit(j)))).filter((w) => w?.revokedAt !== null).map((w) => w!.jti);

      it('revokes the writs a match selects and every writ delegated from them, once, recording when and by which revocation', async () => {
        await tree();
        expect(await s.revokeWrits({ by: 'grant', value: 'g2' }, 500, 7)).toBe(2);
        expect(await revokedJtis()).toEqual(['w2', 'w3']);
        expect(await s.getWrit('w3')).toMatchObject({ revokedAt: 500, revokedSeq: 7 });
        // Already revoked: not marked again, the first revocation stays.
        expect(await s.revokeWrits({ by: 'jti', value: 'w2' }, 600, 8)).toBe(0);
        expect(await s.getWrit('w2')).toMatchObject({ revokedAt: 500, revokedSeq: 7 });
        // Through a revoked writ to its live descendants: none left here; by key, A's two writs.
        expect(await s.revokeWrits({ by: 'jkt', value: 'kA' }, 700, 9)).toBe(2);
        expect(await revokedJtis()).toEqual(['w1', 'w2', 'w3', 'w5']);
        expect(await s.getWrit('w4')).toMatchObject({ revokedAt: null, revokedSeq: null });
      });

      it.each([
        ['jti', 'w1', ['w1', 'w2', 'w3']],
        ['task', 't1', ['w1', 'w2', 'w3', 'w5']],
        ['principal', 'https://idp.example.com#bob', ['w4']],
        ['spiffe_id', 'spiffe://example.org/b', ['w2', 'w3']],
        ['jkt', 'kC', ['w3']],
        ['entry', 'eA', ['w1', 'w2', 'w3', 'w5']],
        ['platform', 'tpm:ek_hash:aa', ['w1', 'w2', 'w3', 'w5']],
        ['grant', 'g1', ['w1', 'w2', 'w3', 'w5']],
        ['grant', 'g3', ['w3']],
        ['jti', 'nope', []],
      ] as const)('revokeWrits by %s %s kills %j', async (by, value, killed) => {
        await tree();
        expect(await s.revokeWrits({ by, value }, 500, 1)).toBe(killed.length);
        expect(await revokedJtis()).toEqual(killed);
      });

      it('a delegated writ descends from a writ whose parent link was stored even when a descendant came first', async () => {
        // C's record is written before B's (the order handshakes commit in does not matter).
        await s.recordWrit(writ('w3', { lineage: ['g1', 'g2', 'g3'], parentJti: 'w2' }));
        await s.recordWrit(writ('w2', { lineage: ['g1', 'g2'], parentJti: 'w1' }));
        await s.recordWrit(writ('w1', { lineage: ['g1'] }));
        expect(await s.revokeWrits({ by: 'jti', value: 'w1' }, 1, 1)).toBe(3);
      });

      it('lists the writs a match selects directly whose kill set still holds a live writ, oldest first, with its latest expiry; counts writs in any state', async () => {
        await tree();
        const now = 1_700_000_000_000;
        const roots = async (by: WritMatch['by'], value: string, at = now, limit = 10) =>
          (await s.killRoots({ by, value }, at, limit)).map((r) => [r.writ.jti, r.lastExpiresAt]);
        expect(await roots('spiffe_id', 'spiffe://example.org/a')).toEqual([
          ['w1', 1_700_000_060_000],
          ['w5', 1_700_000_060_000],
        ]);
        expect(await roots('spiffe_id', 'spiffe://example.org/a', now, 1)).toEqual([['w1', 1_700_000_060_000]]);
        expect(await roots('grant', 'g2')).toEqual([
          ['w2', 1_700_000_060_000],
          ['w3', 1_700_000_060_000],
        ]);
        // Revoked writs still count: what they kill is decided by the revocation at hand.
        await s.revokeWrits({ by: 'jti', value: 'w1' }, now, 1);
        expect((await roots('platform', 'tpm:ek_hash:aa')).map(([j]) => j)).toEqual(['w1', 'w5']);
        // expiresAt is 1_700_000_060_000: at that instant a writ is no longer live.
        expect(await roots('task', 't2', 1_700_000_060_000)).toEqual([]);
        expect(await roots('task', 't2', 1_700_000_059_999)).toHaveLength(1);
        expect(await s.countWrits({ by: 'platform', value: 'tpm:ek_hash:aa' })).toBe(2);
        expect(await s.countWrits({ by: 'entry', value: 'eB' })).toBe(1);
        expect(await s.countWrits({ by: 'entry', value: 'nope' })).toBe(0);
        expectStoreError(await rejection(s.killRoots({ by: 'task', value: 't1' }, now, -1)), /limit/);
      });

      it('an expired writ whose descendants live is still a kill root, with the latest expiry among them', async () => {
        // A (w1) expired at 60 s; B (w2, from w1) lives to 1800 s, C (w3, from w2) to 900 s.
        await s.recordWrit(writ('w1', { entryId: 'eA', platform: 'tpm:ek_hash:aa', expiresAt: 1_700_000_060_000 }));
        await s.recordWrit(writ('w2', { parentJti: 'w1', entryId: 'eB', expiresAt: 1_700_001_800_000 }));
        await s.recordWrit(writ('w3', { parentJti: 'w2', entryId: 'eC', expiresAt: 1_700_000_900_000 }));
        await s.recordWrit(writ('w4', { entryId: 'eA', expiresAt: 1_700_000_060_000 }));
        const at = 1_700_000_120_000;
        for (const m of [
          { by: 'entry', value: 'eA' },
          { by: 'platform', value: 'tpm:ek_hash:aa' },
          { by: 'jti', value: 'w1' },
        ] as const) {
          expect((await s.killRoots(m, at, 10)).map((r) => [r.writ.jti, r.lastExpiresAt])).toEqual([['w1', 1_700_001_800_000]]);
        }
        expect(await s.killRoots({ by: 'entry', value: 'eA' }, 1_700_001_800_000, 10)).toEqual([]);
      });

      it('lists grants and writs of a task oldest first, up to the limit', async () => {
        await tree();
        for (const [jti, at] of [
          ['gB', 2],
          ['gA', 1],
          ['gC', 2],
        ] as const) {
          await s.putGrant(grant(jti, { taskId: 't1', createdAt: at }));
        }
        await s.putGrant(grant('gX', { taskId: 't2' }));
        expect((await s.listGrantsByTask('t1', 10)).map((g) => g.jti)).toEqual(['gA', 'gB', 'gC']);
        expect((await s.listGrantsByTask('t1', 2)).map((g) => g.jti)).toEqual(['gA', 'gB']);
        expect((await s.listWritsByTask('t1', 10)).map((w) => w.jti)).toEqual(['w1', 'w2', 'w3', 'w5']);
        expect(await s.listWritsByTask('none', 10)).toEqual([]);
        expectStoreError(await rejection(s.listWritsByTask('t1', -1)), /limit/);
        expectStoreError(await rejection(s.listGrantsByTask('t1', 1.5)), /limit/);
      });

      it('revokes a grant once; knows delegated keys and principals with tasks', async () => {
        await s.putGrant(grant('g1', { delegateJkt: 'kZ' }));
        expect(await s.revokeGrant('g1', 5)).toBe(true);
        expect(await s.revokeGrant('g1', 6)).toBe(false);
        expect(await s.revokeGrant('nope', 6)).toBe(false);
        expect((await s.getGrant('g1'))!.revokedAt).toBe(5);
        expect(await s.keyDelegated('kZ')).toBe(true);
        expect(await s.keyDelegated('kY')).toBe(false);
        await s.createTask(task('t1', { principalSub: 'carol' }));
        expect(await s.principalKnown('https://idp.example.com', 'carol')).toBe(true);
        expect(await s.principalKnown('https://idp.example.com', 'dave')).toBe(false);
        expect(await s.principalKnown('https://other.example.com', 'carol')).toBe(false);
      });

      it('round-trips tasks; extends only later; ends once; lists newest first', async () => {
        const t1 = task('t1');
        await s.createTask(t1);
        await s.createTask(task('t2', { createdAt: 1_700_000_000_005 }));
        expect(await s.getTask('t1')).toEqual(t1);
        expect(await s.getTask('t3')).toBeUndefined();
        expectStoreError(await rejection(s.createTask(task('t1', { goal: 'other' }))), UNIQUE);
        await s.extendTask('t1', 1_700_000_999_000);
        await s.extendTask('t1', 1_700_000_100_000);
        expect((await s.getTask('t1'))!.expiresAt).toBe(1_700_000_999_000);
        expect(await s.endTask('t1', 77, 'principal https://idp.example.com#alice', 'done')).toBe(true);
        expect(await s.endTask('t1', 78, 'operator', 'again')).toBe(false);
        expect(await s.endTask('nope', 78, 'operator', '')).toBe(false);
        expect(await s.getTask('t1')).toMatchObject({ endedAt: 77, endedBy: 'principal https://idp.example.com#alice', endReason: 'done' });
        expect((await s.listTasks(10)).map((t) => t.id)).toEqual(['t2', 't1']);
        expect((await s.listTasks(1)).map((t) => t.id)).toEqual(['t2']);
      });

      it('gives revocations strictly increasing sequences, once per (kind, target), and finds them by key', async () => {
        expect(await s.revocationBounds()).toEqual({ oldest: 0, newest: 0 });
        const a = await s.insertRevocation(revocation('grant', 'g1'));
        const b = await s.insertRevocation(revocation('task', 't1', { expiresAt: null, reason: '' }));
        const c = await s.insertRevocation(revocation('writ', 'w1', { derivedFrom: b }));
        expect(b).toBeGreaterThan(a);
        expect(c).toBeGreaterThan(b);
        expectStoreError(await rejection(s.insertRevocation(revocation('grant', 'g1', { reason: 'again' }))), UNIQUE);
        expectStoreError(await rejection(s.insertRevocation(revocation('gadget', 'x'))), /check constraint violated/);
        expect(await s.getRevocation('grant', 'g1')).toEqual({ ...revocation('grant', 'g1'), seq: a });
        expect(await s.getRevocation('grant', 'g2')).toBeUndefined();
        expect(await s.getRevocation('task', 'g1')).toBeUndefined();
        expect((await s.findRevocations(['writ:w1', 'nope:x', 'grant:g1'])).map((r) => r.seq)).toEqual([a, c]);
        expect(await s.findRevocations([])).toEqual([]);
        expect((await s.findRevocations(['writ:w1']))[0]).toMatchObject({ derivedFrom: b, kind: 'writ', target: 'w1' });
        expect((await s.listRevocationsSince(a, 10)).map((r) => r.seq)).toEqual([b, c]);
        expect((await s.listRevocationsSince(0, 1)).map((r) => r.seq)).toEqual([a]);
        expect(await s.listRevocationsSince(c, 10)).toEqual([]);
        expect(await s.revocationBounds()).toEqual({ oldest: a, newest: c });
      });

      it('commits revocations in sequence order: a later sequence never becomes visible before an earlier one, so a tailing reader misses none', async () => {
        // A draws its sequence and holds its transaction open; B starts after it.
        const held = gate();
        const drawn = gate();
        const a = s.transaction(async (tx) => {
          const seq = await tx.insertRevocation(revocation('grant', 'held'));
          drawn.open();
          await held.wait;
          return seq;
        });
        await drawn.wait;
        const b = s.insertRevocation(revocation('grant', 'after'));
        // Give B every chance to commit first (it must not: it waits for A, whatever the backend).
        await Promise.race([b.then(() => undefined), new Promise((r) => setTimeout(r, 200))]);
        // A reader now (on SQLite it waits its turn behind A): B's revocation never without A's before it.
        const read = s.listRevocationsSince(0, 10);
        await Promise.race([read.then(() => undefined), new Promise((r) => setTimeout(r, 200))]);
        held.open();
        const [sa, sb] = await Promise.all([a, b]);
        expect(['', 'held', 'held,after']).toContain((await read).map((r) => r.target).join(','));
        expect(sb).toBeGreaterThan(sa);
        expect((await s.listRevocationsSince(0, 10)).map((r) => r.seq)).toEqual([sa, sb]);
      });

      it('a reader tailing "sequence > last" while revocations race sees every one of them', async () => {
        const n = 40;
        let done = false;
        const tailed: number[] = [];
        const reader = (async () => {
          let last = 0;
          for (;;) {
            const finished = done;
            const page = await s.listRevocationsSince(last, 1000);
            for (const r of page) tailed.push(r.seq);
            if (page.length > 0) last = page[page.length - 1]!.seq;
            if (finished && page.length === 0) return;
            await new Promise((r) => setImmediate(r));
          }
        })();
        const committed = await Promise.all(
          Array.from({ length: n }, (_, i) =>
            s.transaction(async (tx) => {
              const seq = await tx.insertRevocation(revocation('writ', `race-${i}`));
              // Hold some transactions open after drawing the sequence, in no particular order.
              for (let k = 0; k < (i * 7) % 5; k++) await new Promise((r) => setImmediate(r));
              await tx.getBundleSequence();
              return seq;
            }),
          ),
        );
        done = true;
        await reader;
        expect(tailed).toEqual([...committed].sort((x, y) => x - y));
      });

      it('prunes revocations that can no longer matter, never the newest (its sequence is where subscribers resume)', async () => {
        const a = await s.insertRevocation(revocation('grant', 'g1', { expiresAt: 100 }));
        const b = await s.insertRevocation(revocation('grant', 'g2', { expiresAt: null }));
        const c = await s.insertRevocation(revocation('grant', 'g3', { expiresAt: 100 }));
        expect(await s.pruneRevocations(101)).toBe(1);
        expect(await s.getRevocation('grant', 'g1')).toBeUndefined();
        expect(await s.revocationBounds()).toEqual({ oldest: b, newest: c });
        expect(await s.pruneRevocations(10_000)).toBe(0);
        // A sequence is never given again.
        const d = await s.insertRevocation(revocation('grant', 'g4'));
        expect(d).toBeGreaterThan(c);
        expect(a).toBeLessThan(b);
      });

      it('allocates status list indexes: the newest list is current, an index goes to one writ, revoked writs are listed by index', async () => {
        expect(await s.currentStatusList()).toBeUndefined();
        await s.createStatusList({ id: 1, size: 1024, allocated: 0, createdAt: 10 });
        await s.createStatusList({ id: 2, size: 2048, allocated: 0, createdAt: 20 });
        expectStoreError(await rejection(s.createStatusList({ id: 2, size: 1, allocated: 0, createdAt: 30 })), UNIQUE);
        expect(await s.currentStatusList()).toEqual({ id: 2, size: 2048, allocated: 0, createdAt: 20 });
        await s.recordWrit(writ('w1', { statusList: 2, statusIdx: 17 }));
        await s.recordWrit(writ('w2', { statusList: 2, statusIdx: 5 }));
        await s.recordWrit(writ('w3', { statusList: 1, statusIdx: 17 }));
        expectStoreError(await rejection(s.recordWrit(writ('w4', { statusList: 2, statusIdx: 17 }))), UNIQUE);
        expect(await s.statusIndexTaken(2, 17)).toBe(true);
        expect(await s.statusIndexTaken(2, 18)).toBe(false);
        await s.countStatusAllocation(2);
        await s.countStatusAllocation(2);
        expect(await s.getStatusList(2)).toMatchObject({ allocated: 2 });
        expect(await s.getStatusList(3)).toBeUndefined();
        expect(await s.revokedStatusIndexes(2)).toEqual([]);
        await s.revokeWrits({ by: 'jti', value: 'w1' }, 1, 1);
        await s.revokeWrits({ by: 'jti', value: 'w3' }, 1, 2);
        expect(await s.revokedStatusIndexes(2)).toEqual([17]);
        expect(await s.revokedStatusIndexes(1)).toEqual([17]);
      });

      it('a revocation and its effect commit together or not at all', async () => {
        await tree();
        await rejection(
          s.transaction(async (tx) => {
            const seq = await tx.insertRevocation(revocation('grant', 'g1'));
            await tx.revokeWrits({ by: 'grant', value: 'g1' }, 1, seq);
            await tx.insertRevocation(revocation('grant', 'g1'));
          }),
        );
        expect(await s.getRevocation('grant', 'g1')).toBeUndefined();
        expect(await revokedJtis()).toEqual([]);
      });
    });

    describe('audit log', () => {
      const origin = 'example.org/audit';
      const signer = noteSigner(origin, generateKeyPairSync('ed25519').privateKey);
      const clock = new ManualClock(1_700_000_000_000);
      const append = (n: number, from = 0) =>
        s.transaction(async (tx) => {
          for (let i = from; i < from + n; i++) await appendAudit(tx, auditRecord(i));
        });

      it('starts empty: size 0, no records, the empty root, no checkpoint', async () => {
        expect(await s.getAuditSize()).toBe(0);
        expect(await s.getAuditTail()).toEqual({ size: 0, lastLeaf: undefined });
        expect(await s.listAuditRecords(0, 10)).toEqual([]);
        expect((await rootHash(storeNodes(s), 0)).toString('hex')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
        expect(await s.latestAuditCheckpoint()).toBeUndefined();
      });

      it('appends in the caller’s transaction: records, leaf hashes and query columns round-trip', async () => {
        await append(5);
        expect(await s.getAuditSize()).toBe(5);
        const rows = await s.listAuditRecords(0, 10);
        expect(await s.getAuditTail()).toEqual({ size: 5, lastLeaf: rows[4]!.leafHash });
        expect(rows.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4]);
        const r3 = rows[3]!;
        expect(parseRecord(r3.canonical)).toEqual({ v: 1, seq: 3, ...auditRecord(3) });
        expect(r3.leafHash.equals(leafHash(r3.canonical))).toBe(true);
        expect([r3.actor, r3.principal, r3.task, r3.event]).toEqual([
          'spiffe://example.org/agent/3',
          'https://idp.example.org#user-0',
          'task-1',
          'handshake.issued',
        ]);
        expect(await s.getAuditRecord(3)).toEqual(r3);
        expect(await s.getAuditRecord(5)).toBeUndefined();
        expect((await s.listAuditRecords(2, 2)).map((r) => r.seq)).toEqual([2, 3]);
        expectStoreError(await rejection(s.listAuditRecords(0, -1)), /limit/);
      });

      it('finds records by task, principal or actor, newest first, before a position', async () => {
        await append(9);
        const seqs = (rs: { seq: number }[]) => rs.map((r) => r.seq);
        expect(seqs(await s.findAuditRecords({ column: 'task', value: 'task-1' }, 100, 10))).toEqual([7, 5, 3, 1]);
        expect(seqs(await s.findAuditRecords({ column: 'task', value: 'task-1' }, 5, 10))).toEqual([3, 1]);
        expect(seqs(await s.findAuditRecords({ column: 'principal', value: 'https://idp.example.org#user-2' }, 100, 2))).toEqual([8, 5]);
        expect(seqs(await s.findAuditRecords({ column: 'actor', value: 'spiffe://example.org/agent/4' }, 100, 10))).toEqual([4]);
        expect(seqs(await s.findAuditRecords(undefined, 3, 10))).toEqual([2, 1, 0]);
        expect(await s.findAuditRecords({ column: 'task', value: 'none' }, 100, 10)).toEqual([]);
        expectStoreError(await rejection(s.findAuditRecords(undefined, 100, -1)), /limit/);
      });

      it('finds the same records through the batched index (audit_index) as by reading every record, at every batch edge', async () => {
        // 150 records: batches [0, 64) and [64, 128) indexed, 22 past them; some without task or principal (not indexed for those).
        const rec = (i: number) =>
          auditRecord(i, {
            task: i % 5 === 0 ? null : `task-${i % 3}`,
            principal: i % 7 === 0 ? null : { iss: 'https://idp.example.org', sub: `user-${i % 4}` },
            actor: { kind: 'agent', spiffeId: `spiffe://example.org/agent/${i % 2}`, jkt: 'j' },
          });
        for (let from = 0; from < 150; from += 10)
          await s.transaction(async (tx) => {
            for (let i = from; i < from + 10; i++) await appendAudit(tx, rec(i));
          });
        const all = (await s.listAuditRecords(0, 200)).reverse();
        const seqs = (rs: { seq: number }[]) => rs.map((r) => r.seq);
        const filters = [
          ...[0, 1, 2].map((t) => ({ column: 'task' as const, value: `task-${t}` })),
          ...[0, 1, 2, 3].map((u) => ({ column: 'principal' as const, value: `https://idp.example.org#user-${u}` })),
          ...[0, 1].map((a) => ({ column: 'actor' as const, value: `spiffe://example.org/agent/${a}` })),
          { column: 'task' as const, value: '' },
          { column: 'principal' as const, value: '' },
        ];
        for (const by of filters)
          for (const before of [150, 149, 128, 127, 100, 64, 63, 1, 0])
            for (const limit of [1, 7, 200]) {
              const want = all.filter((r) => r.seq < before && r[by.column] === by.value && by.value !== '').slice(0, limit);
              expect(seqs(await s.findAuditRecords(by, before, limit)), `${by.column}=${by.value} before ${before} limit ${limit}`).toEqual(seqs(want));
            }
        expect(await s.findAuditRecords({ column: 'task', value: 'task-1' }, 150, 200)).toEqual(all.filter((r) => r.task === 'task-1'));
      });

      it('a rolled-back transaction takes its records and their places back', async () => {
        await append(2);
        await expect(
          s.transaction(async (tx) => {
            await appendAudit(tx, auditRecord(2));
            await tx.createTask(task('t-audit'));
            throw new Error('the change failed');
          }),
        ).rejects.toThrow('the change failed');
        expect(await s.getAuditSize()).toBe(2);
        expect(await s.getTask('t-audit')).toBeUndefined();
        await append(1, 2);
        expect((await s.getAuditRecord(2))!.seq).toBe(2);
      });

      it('refuses a record with a secret and writes nothing of it', async () => {
        const err = await rejection(s.transaction((tx) => appendAudit(tx, auditRecord(0, { reason: `${'a'.repeat(16)}.${'B'.repeat(43)}` }))));
        expect(err).toBeInstanceOf(AuditError);
        expect(await s.getAuditSize()).toBe(0);
      });

      it('gives concurrent appenders distinct places, and the tree stays whole', async () => {
        await Promise.all(Array.from({ length: 6 }, (_, i) => s.transaction((tx) => appendAudit(tx, auditRecord(i)))));
        const rows = await s.listAuditRecords(0, 10);
        expect(rows.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5]);
        expect(rows.map((r) => parseRecord(r.canonical).seq)).toEqual([0, 1, 2, 3, 4, 5]);
        const log = new AuditLog({ store: s, signer, clock });
        const root = await rootHash(storeNodes(s), 6);
        for (const r of rows) verifyInclusion(r.seq, 6, r.leafHash, (await log.prove(r.seq, 6)).proof, root);
      });

      it('stores the tree nodes of 16 leaves and up once, and the lower ones hashed from the records’ leaf hashes', async () => {
        await append(40);
        // Of these ids only (4, 0), (5, 0) and (4, 1) are stored: 15, 31 and 47.
        const got = await s.getAuditNodes([0, 1, 2, 4, 15, 31, 47, 79, 99]);
        expect([...got.keys()].sort((a, b) => a - b)).toEqual([15, 31, 47]);
        expectStoreError(await rejection(s.putAuditNodes([{ id: 15, hash: Buffer.alloc(32) }])), UNIQUE);
        const leaves = await s.getAuditLeafHashes([0, 1, 39, 40]);
        expect([...leaves.keys()].sort((a, b) => a - b)).toEqual([0, 1, 39]);
        expect(leaves.get(39)!.equals((await s.getAuditRecord(39))!.leafHash)).toBe(true);
        // Through storeNodes, every node of the tree of 40 is what MemoryTree (which stores all) has.
        const tree = new MemoryTree();
        for (const r of await s.listAuditRecords(0, 40)) tree.append(r.canonical);
        const ids = Array.from({ length: 100 }, (_, i) => i);
        expect(await storeNodes(s).nodes(ids)).toEqual(await tree.nodes(ids));
      });

      it('signs checkpoints that extend each other, proves inclusion and consistency', async () => {
        const log = new AuditLog({ store: s, signer, clock });
        await append(7);
        const c7 = await log.checkpoint();
        expect(verifyCheckpoint(c7.note, signer)).toEqual(c7.checkpoint);
        expect(c7.checkpoint.size).toBe(7);
        expect((await log.checkpoint()).note).toBe(c7.note);
        await append(6, 7);
        const c13 = await log.checkpoint();
        expect(c13.checkpoint.size).toBe(13);
        verifyConsistency(7, 13, await log.consistency(7, 13), c7.checkpoint.root, c13.checkpoint.root);
        const b = await log.prove(4, 13);
        verifyInclusion(4, 13, leafHash(b.record), b.proof, c13.checkpoint.root);
        expect((await log.latest())!.note).toBe(c13.note);
        expect((await s.getAuditCheckpoint(7))!.note).toBe(c7.note);
        await expect(log.prove(13, 13)).rejects.toThrow(AuditError);
        await expect(log.prove(0, 14)).rejects.toThrow(AuditError);
      });

      it('refuses to sign a checkpoint over a rewritten tree, and signs nothing', async () => {
        const log = new AuditLog({ store: s, signer, clock });
        await append(4);
        await log.checkpoint();
        // Another history of five records (record 1 denied, not allowed), under the honest checkpoint of four.
        const other = await open();
        extra.push(other);
        await other.transaction(async (tx) => {
          for (let i = 0; i < 5; i++) await appendAudit(tx, auditRecord(i, { decision: i === 1 ? 'deny' : 'allow' }));
        });
        const last = (await s.latestAuditCheckpoint())!;
        await other.putAuditCheckpoint(last);
        const forkLog = new AuditLog({ store: other, signer, clock });
        const err = await rejection(forkLog.checkpoint());
        expect(err).toBeInstanceOf(AuditError);
        expect((err as AuditError).code).toBe('ERR_AUDIT_INCONSISTENT');
        expect((await other.latestAuditCheckpoint())!.size).toBe(4);
      });

      it('keeps one sealed audit key, opened again with the same key-encryption key only', async () => {
        const kek = KeyEncryptor.randomKek();
        const a = await openAuditSigner({ store: s, encryptor: new KeyEncryptor(kek), origin, clock });
        const b = await openAuditSigner({ store: s, encryptor: new KeyEncryptor(kek), origin, clock });
        expect(b.vkey).toBe(a.vkey);
        const keys = await s.listAuditKeys();
        expect(keys).toHaveLength(1);
        expect(keys[0]!.sealedKey.includes(keys[0]!.publicKey)).toBe(false);
        await expect(openAuditSigner({ store: s, encryptor: new KeyEncryptor(KeyEncryptor.randomKek()), origin, clock })).rejects.toThrow(/cannot decrypt/);
        await expect(openAuditSigner({ store: s, encryptor: new KeyEncryptor(kek), origin: 'other.example/audit', clock })).rejects.toThrow(/origin/);
        expectStoreError(await rejection(s.putAuditKey({ ...keys[0]!, id: 'second' })), UNIQUE);
      });
    });

    describe('closing', () => {
      it('refuses every call after close, and closes once', async () => {
        const other = await open();
        await other.close();
        await other.close();
        expectStoreError(await rejection(other.getJoinToken('x')), /closed/);
        expectStoreError(await rejection(other.createEntry(entry('e1'), 'k')), /closed/);
        expectStoreError(await rejection(other.transaction(async () => 1)), /closed/);
      });

      it('lets a transaction in progress finish before it closes', async () => {
        const other = await open();
        extra.push(other);
        const g = gate();
        const started = gate();
        const tx = other.transaction(async (tx) => {
          started.open();
          await g.wait;
          await tx.createJoinToken(token({ id: 'in-flight' }));
          return tx.getJoinToken('in-flight');
        });
        await started.wait;
        const closing = other.close();
        g.open();
        expect((await tx)?.id).toBe('in-flight');
        await closing;
      });
    });
  });
}
