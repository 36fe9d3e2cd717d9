/** The operator's changes are audited in their own transaction: entries, join-token entries, policy pushes and activations. */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRecord } from '../../src/audit/record.js';
import { ManualClock } from '../../src/clock.js';
import { EntryError } from '../../src/errors.js';
import { Admin } from '../../src/issuance/admin.js';
import { PolicySnapshots } from '../../src/issuance/policies.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { POLICY } from '../helpers/policies.js';
import { tmpDir } from '../helpers/tmp.js';

const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

function setup() {
  const store = new SqliteStore(join(tmpDir('writ-audit-admin-'), 'w.db'));
  stores.push(store);
  const clock = new ManualClock(1_700_000_000_000);
  const admin = new Admin({ store, clock, settings: { trustDomain: 'example.org', joinTokenDefaultTtlMs: 60_000, joinTokenMaxTtlMs: 600_000 } });
  return { store, admin, policies: new PolicySnapshots({ store, clock }) };
}
const records = async (store: SqliteStore) => (await store.listAuditRecords(0, 100)).map((r) => parseRecord(r.canonical));
const operator = { kind: 'operator', id: 'admin' };

describe('audited operator changes', () => {
  it('an entry created and deleted: one record each, the operator as actor, no principal', async () => {
    const { store, admin } = setup();
    const e = await admin.createEntry({
      spiffeId: 'spiffe://example.org/agent/a',
      selectors: [{ type: 'unix', value: 'uid:1000' }],
      x509SvidTtl: 0,
      jwtSvidTtl: 0,
      scopeCeiling: [],
      hint: '',
    });
    await admin.deleteEntry(e.id);
    await expect(admin.deleteEntry(e.id)).rejects.toThrow(EntryError);
    expect(await records(store)).toMatchObject([
      { seq: 0, event: 'entry.created', actor: operator, principal: null, resource: `entry:${e.id}`, created: [e.id] },
      { seq: 1, event: 'entry.deleted', actor: operator, principal: null, resource: `entry:${e.id}`, created: [] },
    ]);
  });

  it('a join token alone is recorded by its id (an operator-minted credential), never its secret', async () => {
    const { store, admin } = setup();
    const t = await admin.createJoinToken(undefined);
    expect(await records(store)).toMatchObject([{ seq: 0, event: 'join_token.created', actor: operator, resource: `join_token:${t.id}`, created: [t.id] }]);
    const [row] = await store.listAuditRecords(0, 10);
    expect(row!.canonical.toString()).not.toContain(t.token.split('.')[1]!);
  });

  it('a join token with an entry records the token and the entry, never the token’s secret', async () => {
    const { store, admin } = setup();
    const t = await admin.createJoinToken(undefined, 'spiffe://example.org/agent/b');
    const rows = await store.listAuditRecords(0, 10);
    expect(rows.map((r) => parseRecord(r.canonical).event)).toEqual(['join_token.created', 'entry.created']);
    const secret = t.token.split('.')[1]!;
    for (const r of rows) {
      expect(r.canonical.toString()).not.toContain(secret);
      expect(r.canonical.toString()).not.toContain(t.token);
    }
  });

  it('a refused entry (a duplicate) leaves no record', async () => {
    const { store, admin } = setup();
    const input = {
      spiffeId: 'spiffe://example.org/agent/a',
      selectors: [{ type: 'unix', value: 'uid:1' }],
      x509SvidTtl: 0,
      jwtSvidTtl: 0,
      scopeCeiling: [],
      hint: '',
    };
    await admin.createEntry(input);
    await expect(admin.createEntry(input)).rejects.toThrow(/already exists/);
    expect(await store.getAuditSize()).toBe(1);
  });

  it('a policy push records the new snapshot and its activation; pushing it again records only the activation', async () => {
    const { store, policies } = setup();
    const p = await policies.push([{ name: 'acme.cedar', text: POLICY }]);
    await policies.push([{ name: 'acme.cedar', text: POLICY }]);
    const rs = await records(store);
    expect(rs.map((r) => r.event)).toEqual(['policy.pushed', 'policy.activated', 'policy.activated']);
    expect(rs[0]).toMatchObject({ actor: operator, snapshot: p.digest, created: [p.digest] });
    expect(rs[0]!.policies.length).toBe(p.policies);
    expect(rs[2]).toMatchObject({ snapshot: p.digest, created: [] });
  });

  it('a policy that does not validate is refused and leaves no record', async () => {
    const { store, policies } = setup();
    await expect(policies.push([{ name: 'bad.cedar', text: 'permit(principal, action, resource) when { principal.nope };' }])).rejects.toThrow();
    expect(await store.getAuditSize()).toBe(0);
  });
});
