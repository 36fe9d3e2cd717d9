/**
 * Revocations and task ends are audited in the transaction that makes them: one record each,
 * the revoker as actor and the principal concerned apart; a refused revocation writes none.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { MAX_AUDIT_LIST, parseRecord } from '../../src/audit/record.js';
import { ManualClock } from '../../src/clock.js';
import { RevocationError } from '../../src/errors.js';
import { createdIds, Revocations } from '../../src/issuance/revocations.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { tmpDir } from '../helpers/tmp.js';
import { task } from '../store/conformance.js';

const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

async function setup() {
  const store = new SqliteStore(join(tmpDir('writ-audit-rev-'), 'w.db'));
  stores.push(store);
  await store.createTask(task('triage-42', { principalIss: 'https://idp.example.org', principalSub: 'alice' }));
  return { store, revocations: new Revocations({ store, clock: new ManualClock(1_700_000_000_000) }) };
}
const records = async (store: SqliteStore) => (await store.listAuditRecords(0, 100)).map((r) => parseRecord(r.canonical));

describe('audited revocations', () => {
  it('a principal ending its task leaves one task.ended record, actor and principal apart', async () => {
    const { store, revocations } = await setup();
    const r = await revocations.revoke('task', 'triage-42', 'done', { kind: 'principal', iss: 'https://idp.example.org', sub: 'alice' });
    expect(await records(store)).toEqual([
      {
        v: 1,
        seq: 0,
        at: 1_700_000_000_000,
        event: 'task.ended',
        actor: { kind: 'principal', iss: 'https://idp.example.org', sub: 'alice' },
        principal: { iss: 'https://idp.example.org', sub: 'alice' },
        task: 'triage-42',
        lineage: [],
        action: 'revoke',
        resource: 'task:triage-42',
        decision: null,
        reason: 'done',
        policies: [],
        snapshot: null,
        evidence: null,
        created: [`revocation:${r.seq}`],
      },
    ]);
  });

  it('an operator revoking a principal is the actor; the principal is the one concerned', async () => {
    const { store, revocations } = await setup();
    await revocations.revoke('principal', 'https://idp.example.org#alice', '', { kind: 'operator' });
    const [rec] = await records(store);
    expect(rec).toMatchObject({
      event: 'revocation',
      actor: { kind: 'operator', id: 'admin' },
      principal: { iss: 'https://idp.example.org', sub: 'alice' },
      reason: null,
    });
  });

  it('a refused revocation (another principal, or revoked before) leaves no record', async () => {
    const { store, revocations } = await setup();
    await expect(revocations.revoke('task', 'triage-42', 'mine now', { kind: 'principal', iss: 'https://idp.example.org', sub: 'mallory' })).rejects.toThrow(
      RevocationError,
    );
    expect(await store.getAuditSize()).toBe(0);
    await revocations.revoke('task', 'triage-42', '', { kind: 'operator' });
    await expect(revocations.revoke('task', 'triage-42', '', { kind: 'operator' })).rejects.toThrow(/revoked before/);
    expect(await store.getAuditSize()).toBe(1);
  });

  it.each([
    ['a join token', `leaked ${'0'.repeat(16)}.${'A'.repeat(43)}`],
    ['a PEM private key block', 'see -----BEGIN EC PRIVATE KEY----- MHc...'],
  ])('a reason that carries %s is refused with the reason why, and nothing is revoked', async (_n, reason) => {
    const { store, revocations } = await setup();
    await expect(revocations.revoke('task', 'triage-42', reason, { kind: 'operator' })).rejects.toMatchObject({
      code: 'ERR_REVOCATION_INVALID',
      message: expect.stringMatching(/looks like a secret.*published on the Watch stream/),
    });
    expect(await store.getAuditSize()).toBe(0);
    expect((await store.getTask('triage-42'))!.endedAt).toBeNull();
  });

  it('a reason that only names a key ("enclave PRIVATE KEY leaked") is an incident report, not a secret: revoked and audited', async () => {
    const { store, revocations } = await setup();
    await revocations.revoke('task', 'triage-42', 'enclave PRIVATE KEY leaked', { kind: 'operator' });
    expect(await store.getAuditSize()).toBe(1);
    expect((await store.getTask('triage-42'))!.endedAt).not.toBeNull();
  });

  it('names every derived revocation while they fit in a record, and a range (or a digest) beyond', () => {
    expect(createdIds([7, 8, 9])).toEqual(['revocation:7', 'revocation:8', 'revocation:9']);
    const many = Array.from({ length: MAX_AUDIT_LIST + 1 }, (_, i) => 100 + i);
    expect(createdIds(many)).toEqual([`revocation:100..${100 + MAX_AUDIT_LIST}`]);
    const gaps = [...many.slice(0, -1), 1000];
    const ids = createdIds(gaps);
    expect(ids[0]).toBe('revocation:100..1000');
    expect(ids[1]).toBe(`revocations:${gaps.length}:sha256:${createHash('sha256').update(gaps.join(',')).digest('hex')}`);
    expect(createdIds(Array.from({ length: MAX_AUDIT_LIST }, (_, i) => i))).toHaveLength(MAX_AUDIT_LIST);
  });
});
