/**
 * Refusals of peers the issuer cannot name are counted, not recorded one by one
 * (src/audit/tally.ts): the log grows by a bounded number of aggregate records per checkpoint
 * whatever an unauthenticated peer sends, and no count is lost to a rolled-back flush.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { appendAudit } from '../../src/audit/log.js';
import { parseRecord } from '../../src/audit/record.js';
import { flushTally, MAX_TALLY_BUCKETS, NAMED_REFUSALS_PER_WINDOW, NamedRefusalGate, RefusalTally } from '../../src/audit/tally.js';
import { isAuditedRefusal } from '../../src/issuance/issuer.js';
import { issuanceWorld, newAgent, TD } from '../helpers/issuance.js';
import { SqliteStore } from '../../src/store/sqlite.js';

const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});
function store(): SqliteStore {
  const s = new SqliteStore(':memory:');
  stores.push(s);
  return s;
}
const records = async (s: SqliteStore) => (await s.listAuditRecords(0, 1000)).map((r) => parseRecord(r.canonical));

describe('refusal tally', () => {
  it('writes one aggregate record per (event, reason, evidence type), the issuer the actor, the count in resource', async () => {
    const s = store();
    const t = new RefusalTally(new Set(['tpm', 'join_token']));
    for (let i = 0; i < 5; i++) t.add('handshake.refused', 'ERR_EVIDENCE_INVALID', 'tpm');
    t.add('handshake.refused', 'ERR_LIMIT_EXCEEDED', 'join_token');
    t.add('delegation.refused', 'ERR_GRANT_INVALID', 'tpm');
    await flushTally(s, t, 1_700_000_000_000);
    expect(await records(s)).toEqual([
      expect.objectContaining({
        event: 'handshake.refused',
        actor: { kind: 'issuer' },
        principal: null,
        reason: 'ERR_EVIDENCE_INVALID',
        action: 'attest with tpm',
        resource: 'refusals:5',
      }),
      expect.objectContaining({ event: 'handshake.refused', reason: 'ERR_LIMIT_EXCEEDED', action: 'attest with join_token', resource: 'refusals:1' }),
      expect.objectContaining({ event: 'delegation.refused', reason: 'ERR_GRANT_INVALID', action: 'hello with tpm', resource: 'refusals:1' }),
    ]);
    expect(t.pending).toBe(0);
    await flushTally(s, t, 1_700_000_001_000);
    expect(await s.getAuditSize()).toBe(3);
  });

  it('a peer-chosen evidence type is counted as unknown: a flood of distinct strings is one record', async () => {
    const s = store();
    const t = new RefusalTally(new Set(['tpm']));
    for (let i = 0; i < 10_000; i++) t.add('handshake.refused', 'ERR_EVIDENCE_TYPE_UNKNOWN', `junk-${i}`);
    await flushTally(s, t, 1);
    expect(await records(s)).toEqual([expect.objectContaining({ action: 'attest with unknown', resource: 'refusals:10000' })]);
  });

  it(`holds at most ${MAX_TALLY_BUCKETS} buckets: the rest are counted in one overflow bucket`, async () => {
    const s = store();
    const types = Array.from({ length: 100 }, (_, i) => `t${i}`);
    const t = new RefusalTally(new Set(types));
    for (const ty of types) t.add('handshake.refused', 'ERR_EVIDENCE_INVALID', ty);
    await flushTally(s, t, 1);
    const got = await records(s);
    expect(got).toHaveLength(MAX_TALLY_BUCKETS);
    expect(got.at(-1)).toMatchObject({ action: 'attest with other', reason: null, resource: `refusals:${100 - (MAX_TALLY_BUCKETS - 1)}` });
  });

  it('a flush that rolls back loses no count; counts made during a flush stay for the next', async () => {
    const s = store();
    const t = new RefusalTally(new Set(['tpm']));
    t.add('handshake.refused', 'ERR_EVIDENCE_INVALID', 'tpm');
    await expect(
      s.transaction(async (tx) => {
        await t.flush(tx, 1, appendAudit);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(await s.getAuditSize()).toBe(0);
    expect(t.pending).toBe(1);
    const committed = await s.transaction(async (tx) => {
      const done = await t.flush(tx, 2, appendAudit);
      t.add('handshake.refused', 'ERR_EVIDENCE_INVALID', 'tpm');
      return done;
    });
    committed();
    expect(t.pending).toBe(1);
    expect(await records(s)).toEqual([expect.objectContaining({ resource: 'refusals:1' })]);
  });
});

describe('named refusals are bounded too', () => {
  it(`the gate admits ${NAMED_REFUSALS_PER_WINDOW} per (actor, reason) and window, then none until the window turns`, () => {
    let now = 0;
    const g = new NamedRefusalGate(60_000, () => now);
    const admitted = Array.from({ length: NAMED_REFUSALS_PER_WINDOW + 5 }, () => g.admit('a', 'ERR_REVOKED')).filter(Boolean).length;
    expect(admitted).toBe(NAMED_REFUSALS_PER_WINDOW);
    expect(g.admit('a', 'ERR_POLICY_DENIED')).toBe(true);
    expect(g.admit('b', 'ERR_REVOKED')).toBe(true);
    now = 60_000;
    expect(g.admit('a', 'ERR_REVOKED')).toBe(true);
  });

  it('a revoked agent retrying writes at most the gate’s number of records; the rest are left for the server to tally', async () => {
    let now = 0;
    const w = await issuanceWorld({ refusalGate: new NamedRefusalGate(60_000, () => now) });
    try {
      await w.register('/agent/r', ['fake:r']);
      const agent = newAgent();
      await w.attest(agent, { sel: ['fake:r'] });
      await w.revocations.revoke('agent', `spiffe://${TD}/agent/r`, '', { kind: 'operator' });
      const from = await w.store.getAuditSize();
      const errors: unknown[] = [];
      for (let i = 0; i < NAMED_REFUSALS_PER_WINDOW + 7; i++) errors.push(await w.attest(agent, { sel: ['fake:r'] }).catch((e: unknown) => e));
      expect(await w.store.getAuditSize()).toBe(from + NAMED_REFUSALS_PER_WINDOW);
      expect(errors.filter(isAuditedRefusal)).toHaveLength(NAMED_REFUSALS_PER_WINDOW);
      now = 60_000;
      await w.attest(agent, { sel: ['fake:r'] }).catch(() => undefined);
      expect(await w.store.getAuditSize()).toBe(from + NAMED_REFUSALS_PER_WINDOW + 1);
    } finally {
      await w.close();
    }
  });

  it('a revoked agent with a fresh agent key each attempt still writes at most the gate’s number of records', async () => {
    const w = await issuanceWorld({ refusalGate: new NamedRefusalGate(60_000, () => 0) });
    try {
      await w.register('/agent/k', ['fake:k']);
      await w.attest(newAgent(), { sel: ['fake:k'] });
      await w.revocations.revoke('agent', `spiffe://${TD}/agent/k`, '', { kind: 'operator' });
      const from = await w.store.getAuditSize();
      const errors: unknown[] = [];
      // The peer picks the key: a new one per hello must not open a new window.
      for (let i = 0; i < NAMED_REFUSALS_PER_WINDOW + 7; i++) errors.push(await w.attest(newAgent(), { sel: ['fake:k'] }).catch((e: unknown) => e));
      expect(errors.every((e) => e instanceof Error)).toBe(true);
      expect(await w.store.getAuditSize()).toBe(from + NAMED_REFUSALS_PER_WINDOW);
      // The rest are left for the server's tally (not audited, so server.ts counts them).
      expect(errors.filter((e) => !isAuditedRefusal(e))).toHaveLength(7);
    } finally {
      await w.close();
    }
  });
});
