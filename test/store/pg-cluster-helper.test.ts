/**
 * The private PostgreSQL cluster of the restart tests (test/helpers/pg-cluster.ts) and the run's
 * teardown (test/helpers/pg-teardown.ts): the cluster binds no TCP address (trust auth reaches
 * only whoever can enter its 0700 directory), and a cluster a test left running is stopped and
 * removed by the sweep.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { PG_CLUSTER_UNAVAILABLE, startPgCluster } from '../helpers/pg-cluster.js';
import { PG_CLUSTER_DIR_PREFIX, sweepPgClusters } from '../helpers/pg-teardown.js';

const clusterDescribe = PG_CLUSTER_UNAVAILABLE === undefined ? describe : describe.skip;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

clusterDescribe('the private PostgreSQL cluster', () => {
  it('listens on its Unix socket only, and a leftover one is ended and removed by the sweep', { timeout: 120_000 }, async () => {
    const pgc = await startPgCluster();
    try {
      expect(basename(pgc.dir).startsWith(PG_CLUSTER_DIR_PREFIX)).toBe(true);
      // postmaster.pid, line 6: the first TCP address listened on (empty: none).
      const lines = readFileSync(join(pgc.dir, 'data', 'postmaster.pid'), 'utf8').split('\n');
      expect(lines[5]).toBe('');
      expect(existsSync(join(pgc.dir, `.s.PGSQL.${pgc.port}`))).toBe(true);
      const c = new pg.Client({ connectionString: pgc.url() });
      await c.connect();
      expect((await c.query("SELECT current_setting('listen_addresses') AS l")).rows[0].l).toBe('');
      await c.end();
      // Left running (what a failed test does): the sweep ends it by its PID and removes it.
      const pid = Number(lines[0]);
      expect(alive(pid)).toBe(true);
      expect(await sweepPgClusters(basename(pgc.dir))).toEqual([pgc.dir]);
      expect(alive(pid)).toBe(false);
      expect(existsSync(pgc.dir)).toBe(false);
    } finally {
      await pgc.destroy();
    }
  });
});
