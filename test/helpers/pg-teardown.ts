/**
 * vitest globalSetup (vitest.config.ts): its teardown ends every private PostgreSQL cluster of
 * this run that a test left behind (test/helpers/pg-cluster.ts). pg_ctl detaches the postmaster,
 * and a fork stopped with SIGTERM runs no 'exit' listener, so a failed test could otherwise leak
 * a running postgres. Only this run's clusters: their directories carry its id
 * (`writ-pgc-<run>-*`, the id handed to the forks in WRIT_PGC_RUN), so runs of other checkouts
 * sharing /tmp are left alone. A postmaster is stopped by the PID in its postmaster.pid, and only
 * when that process is a postgres of that data directory: SIGQUIT (immediate shutdown), then
 * SIGKILL if it is still there after 5 s; then the directory is removed.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

process.env.WRIT_PGC_RUN ??= `${process.pid}${randomBytes(3).toString('hex')}`;

/** The start of every cluster directory's name in this run. */
export const PG_CLUSTER_DIR_PREFIX = `writ-pgc-${process.env.WRIT_PGC_RUN}-`;

function postmasterOf(dir: string): number | undefined {
  const data = join(dir, 'data');
  try {
    const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isSafeInteger(pid) || pid <= 1) return undefined;
    // Not a recycled PID: the process must be a postgres running on this data directory.
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.includes(data) ? pid : undefined;
  } catch {
    return undefined;
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Ends and removes every leftover cluster directory of this run; returns what it found. */
export async function sweepPgClusters(prefix = PG_CLUSTER_DIR_PREFIX): Promise<string[]> {
  const found: string[] = [];
  for (const base of new Set(['/tmp', tmpdir()])) {
    let names: string[];
    try {
      names = readdirSync(base);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const dir = join(base, name);
      found.push(dir);
      const pid = postmasterOf(dir);
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGQUIT');
        } catch {
          // Gone meanwhile.
        }
        const end = Date.now() + 5_000;
        while (alive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
        if (alive(pid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone meanwhile.
          }
        }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return found;
}

export default function setup(): () => Promise<void> {
  return async () => {
    const left = await sweepPgClusters();
    if (left.length > 0) console.warn(`pg-teardown: removed ${left.length} private PostgreSQL cluster(s) a test left behind: ${left.join(', ')}`);
  };
}
