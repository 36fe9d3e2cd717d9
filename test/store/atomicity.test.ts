/**
 * Every Store method called outside a transaction is atomic on its own (store.ts): it runs at
 * most one statement directly, and a method of several statements (an entry and its selector
 * index, a writ and its lineage index) runs all of them inside one transaction. A method added
 * to StoreTx without a row in CALLS does not compile, so a new multi-statement method cannot
 * slip in unwrapped. The conformance suite (conformance.ts) shows the effect with a failure
 * forced between the statements; this pins the rule for every method at once.
 */
import { describe, expect, it } from 'vitest';
import type { SqlValue, Row } from '../../src/store/codecs.js';
import type { Statement } from '../../src/store/queries.js';
import { type SqlDriver, type SqlExecutor, SqlStore } from '../../src/store/sql-store.js';
import { SqliteDriver } from '../../src/store/sqlite.js';
import type { StoreTx } from '../../src/store/store.js';
import { approval, attestedAgent, ceremony, passkey, caKey, entry, grant, token, tpm, writ } from './conformance.js';

/** Counts statements run directly and inside transactions, around a real SQLite driver. */
function recording(inner: SqlDriver) {
  const counts = { direct: 0, inTransaction: 0, transactions: 0 };
  const counted = (x: SqlExecutor, key: 'direct' | 'inTransaction'): SqlExecutor => {
    const count = () => {
      counts[key]++;
    };
    return {
      all: (s: Statement, p: readonly SqlValue[]): Promise<Row[]> => {
        count();
        return x.all(s, p);
      },
      get: (s: Statement, p: readonly SqlValue[]): Promise<Row | undefined> => {
        count();
        return x.get(s, p);
      },
      run: (s: Statement, p: readonly SqlValue[]): Promise<number> => {
        count();
        return x.run(s, p);
      },
    };
  };
  const driver: SqlDriver = {
    dialect: inner.dialect,
    direct: counted(inner.direct, 'direct'),
    transaction: (fn) => {
      counts.transactions++;
      return inner.transaction((x) => fn(counted(x, 'inTransaction')));
    },
    close: () => inner.close(),
  };
  return { driver, counts };
}

const e = entry('e1', {
  selectors: [
    { type: 'a', value: '1' },
    { type: 'b', value: '2' },
    { type: 'c', value: '3' },
  ],
});
const revocation = { kind: 'grant', target: 'g1', reason: '', actor: 'operator', principal: '', at: 1, derivedFrom: null, expiresAt: null };

/** One call of every StoreTx method; the type makes the table complete. */
const CALLS: { readonly [K in keyof StoreTx]: Parameters<StoreTx[K]> } = {
  createEntry: [e, 'a:1\nb:2\nc:3'],
  getEntry: ['e1'],
  listEntries: [],
  listEntriesBySelectors: [['a:1', 'b:2']],
  entryExists: [e.spiffeId, 'k'],
  deleteEntry: ['e1'],
  createJoinToken: [token()],
  getJoinToken: ['t'],
  consumeJoinToken: ['t', 1],
  pruneJoinTokens: [1],
  listCaKeys: [],
  putCaKey: [caKey('k1')],
  setCaKeyState: ['k1', 'active'],
  deleteCaKey: ['k1'],
  getBundleSequence: [],
  bumpBundleSequence: [],
  getTpmRecord: ['ek'],
  putTpmRecord: [tpm('ek')],
  putPolicySnapshot: [{ digest: 'd'.repeat(64), policies: [{ id: 'p', text: 'permit(principal, action, resource);' }], createdAt: 1 }],
  getPolicySnapshot: ['d'.repeat(64)],
  listPolicySnapshots: [],
  setActivePolicy: [{ digest: 'd'.repeat(64), activatedAt: 1 }],
  getActivePolicy: [],
  putGrant: [grant('g1')],
  getGrant: ['g1'],
  recordWrit: [writ('w1', { lineage: ['g1', 'g2', 'g3'] })],
  getWrit: ['w1'],
  recordDecision: [{ at: 1, actor: 'a', principal: 'p', action: 'x', decision: 'allow', snapshot: 's', policies: ['p1'], reason: '' }],
  listDecisions: [10],
  revokeGrant: ['g1', 1],
  listGrantsByTask: ['task-1', 10],
  listWritsByTask: ['task-1', 10],
  revokeWrits: [{ by: 'grant', value: 'g1' }, 1, 1],
  killRoots: [{ by: 'task', value: 'task-1' }, 1, 10],
  countWrits: [{ by: 'jkt', value: 'j' }],
  keyDelegated: ['j'],
  principalKnown: ['iss', 'sub'],
  getTask: ['task-1'],
  createTask: [{ id: 'task-1', principalIss: 'i', principalSub: 's', goal: 'g', expiresAt: 2, createdAt: 1, endedAt: null, endedBy: null, endReason: null }],
  extendTask: ['task-1', 3],
  endTask: ['task-1', 1, 'operator', 'done'],
  listTasks: [10],
  insertRevocation: [revocation],
  getRevocation: ['grant', 'g1'],
  findRevocations: [['grant:g1', 'task:task-1']],
  listRevocationsSince: [0, 10],
  revocationBounds: [],
  pruneRevocations: [1],
  currentStatusList: [],
  createStatusList: [{ id: 1, size: 16, allocated: 0, createdAt: 1 }],
  statusIndexTaken: [1, 3],
  countStatusAllocation: [1],
  getStatusList: [1],
  revokedStatusIndexes: [1],
  recordIssued: [{ id: 'i1', kind: 'x509', spiffeId: e.spiffeId, entryId: 'e1', evidenceType: 't', issuedAt: 1, expiresAt: 2 }],
  countIssued: [],
  pruneIssued: [1],
  createApproval: [approval('r1')],
  getApproval: ['r1'],
  listApprovals: [{ state: 'pending', taskId: 'task-1', now: 1 }, 10],
  decideApproval: ['r1', { state: 'denied', decidedAt: 1, decidedBy: 'i#s', decisionReason: 'no', credentialId: null, stepUp: null }, 1],
  countPendingApprovals: ['task-1', undefined, 1, 16],
  findPendingApproval: ['w1', 'repo:write', 'repo://acme/app', 1],
  listExpiredPending: [1, 10],
  expireApproval: ['r1', 1],
  putPasskey: [passkey('c1')],
  getPasskey: ['c1'],
  listPasskeys: ['i', 's'],
  usePasskey: ['c1', 0, 1, 1],
  putPasskeyCeremony: [ceremony('ch')],
  takePasskeyCeremony: ['ch'],
  listPasskeyCeremonies: ['i#s', 1],
  countPasskeyCeremonies: [1],
  prunePasskeyCeremonies: [1],
  putAttestedAgent: [attestedAgent('a1')],
  getAttestedAgentBySerial: ['5ea1'],
  renewAttestedAgent: ['a1', '5ea1', { serial: '5ea2', jkt: 'j', svidExpiresAt: 3, keyResidency: '', renewedAt: 2 }],
  attestedAgentKnown: ['jkt', 'j'],
  pruneAttestedAgents: [1],
  getAuditSize: [],
  getAuditTail: [],
  getAuditNodes: [[0, 1, 2]],
  getAuditLeafHashes: [[0, 1]],
  putAuditNodes: [
    [
      { id: 0, hash: Buffer.alloc(32) },
      { id: 2, hash: Buffer.alloc(32, 1) },
    ],
  ],
  insertAuditRecord: [
    // 63: the record that completes an index batch (sql-store.ts AUDIT_INDEX_BATCH) also writes the batch.
    { seq: 63, at: 1, event: 'revocation', actor: 'issuer', principal: '', task: '', canonical: Buffer.from('{}'), leafHash: Buffer.alloc(32) },
  ],
  getAuditRecord: [0],
  listAuditRecords: [0, 10],
  findAuditRecords: [{ column: 'task', value: 'task-1' }, 10, 10],
  putAuditCheckpoint: [{ size: 0, root: Buffer.alloc(32), note: 'n', signedAt: 1 }],
  latestAuditCheckpoint: [],
  getAuditCheckpoint: [0],
  putAuditKey: [{ id: 'a1', name: 'example.org/audit', publicKey: Buffer.alloc(32), sealedKey: Buffer.alloc(60), state: 'active', createdAt: 1 }],
  listAuditKeys: [],
};

describe('SqlStore: every method outside a transaction is atomic on its own', () => {
  it.each(Object.keys(CALLS) as (keyof StoreTx)[])('%s runs at most one statement directly, else all of them in one transaction', async (name) => {
    const { driver, counts } = recording(new SqliteDriver(':memory:'));
    const store = new SqlStore(driver);
    try {
      const call = store[name] as (...a: unknown[]) => Promise<unknown>;
      await call(...CALLS[name]).catch(() => undefined); // succeeding or not, the statements are what count
      expect(counts.direct + counts.inTransaction, 'every method runs a statement').toBeGreaterThan(0);
      if (counts.direct > 0) expect(counts, 'one direct statement, no transaction').toEqual({ direct: 1, inTransaction: 0, transactions: 0 });
      else expect(counts.transactions).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('the methods of several statements are the ones that take a transaction (so the test above sees them)', async () => {
    const multi: string[] = [];
    for (const name of Object.keys(CALLS) as (keyof StoreTx)[]) {
      const { driver, counts } = recording(new SqliteDriver(':memory:'));
      const store = new SqlStore(driver);
      await (store[name] as (...a: unknown[]) => Promise<unknown>)(...CALLS[name]).catch(() => undefined);
      if (counts.inTransaction > 1) multi.push(name);
      await store.close();
    }
    expect(multi.sort()).toEqual(['createEntry', 'insertAuditRecord', 'putAuditNodes', 'recordWrit']);
  });
});
