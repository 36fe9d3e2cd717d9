/**
 * Revocations tells every listener of a committed revocation, in order, even when one throws
 * (review finding 12d: a throwing Watch feed skipped the status list publisher after the commit).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Revocations, type RevocationListener } from '../../src/issuance/revocations.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { RevocationRecord } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

describe('Revocations listeners', () => {
  it('a listener that throws does not keep the next from hearing of the revocation; the error is reported', async () => {
    const store = new SqliteStore(join(tmpDir('writ-revocations-'), 'w.db'));
    try {
      const now = Date.UTC(2026, 11, 1);
      await store.transaction((tx) =>
        tx.createTask({
          id: 'task-1',
          principalIss: 'https://idp.example',
          principalSub: 'bob',
          goal: 'g',
          expiresAt: now + 3_600_000,
          createdAt: now,
          endedAt: null,
          endedBy: null,
          endReason: null,
        }),
      );
      const errors: unknown[] = [];
      const r = new Revocations({ store, clock: { now: () => new Date(now) }, onListenerError: (e) => errors.push(e) });
      const heard: string[] = [];
      const boom: RevocationListener = {
        revoked: () => {
          heard.push('first');
          throw new Error('feed bug');
        },
      };
      const publisher: RevocationListener = { revoked: (rs: readonly RevocationRecord[]) => heard.push(`second ${rs[0]!.kind}:${rs[0]!.target}`) };
      r.listen(boom);
      r.listen(publisher);
      const res = await r.revoke('task', 'task-1', 'done', { kind: 'operator' });
      expect(res.records).toHaveLength(1);
      expect(heard).toEqual(['first', 'second task:task-1']);
      expect(errors.map((e) => (e as Error).message)).toEqual(['feed bug']);
      // Committed all the same.
      expect(await store.getRevocation('task', 'task-1')).toMatchObject({ reason: 'done', actor: 'operator' });
    } finally {
      await store.close();
    }
  });
});
