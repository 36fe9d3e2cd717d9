/**
 * A fake configfs-tsm report directory, for agents in this process or in a child process (the
 * real `writ` binary): `provider`, `generation` and `inblob` are plain files, `outblob` is a
 * FIFO. An agent writes `inblob`, reads `generation`, then opens `outblob`; the fake's open of
 * `outblob` returns only then, so it reads the complete `inblob` (and removes it), answers
 * `report(inblob)` on `outblob` (writing `auxblob` first when there is one), and waits for the
 * next `inblob`. The
 * kernel bumps `generation` when `inblob` is written; the fake keeps it still (a test that
 * wants "another writer" changes it from its `report`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open, readFile, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeTsm {
  /** The report directory (`--tsm-report-dir`, TsmOptions.dir). */
  readonly dir: string;
  /** Every inblob received, in order. */
  readonly inblobs: Buffer[];
  stop(): void;
}

export function startFakeTsm(
  provider: string,
  report: (inblob: Buffer) => { outblob: Buffer; auxblob?: Buffer } | Promise<{ outblob: Buffer; auxblob?: Buffer }>,
): FakeTsm {
  const dir = mkdtempSync(join(tmpdir(), 'writ-tsm-'));
  writeFileSync(join(dir, 'provider'), `${provider}\n`);
  writeFileSync(join(dir, 'generation'), '0\n');
  if (spawnSync('mkfifo', [join(dir, 'outblob')]).status !== 0) throw new Error('mkfifo failed');
  let stopped = false;
  const inblobs: Buffer[] = [];
  const loop = async () => {
    while (!stopped) {
      // Wait for an agent's inblob (removed after each report, so a reader of the last report
      // still holding outblob open is never answered twice).
      while (!stopped && !existsSync(join(dir, 'inblob'))) await new Promise((r) => setTimeout(r, 5));
      if (stopped) return;
      const out = await open(join(dir, 'outblob'), 'w'); // returns once the agent opens it to read
      try {
        if (stopped) return;
        const inblob = await readFile(join(dir, 'inblob'));
        await unlink(join(dir, 'inblob'));
        inblobs.push(inblob);
        const r = await report(inblob);
        if (r.auxblob) await writeFile(join(dir, 'auxblob'), r.auxblob);
        await out.writeFile(r.outblob);
      } finally {
        await out.close();
      }
    }
  };
  void loop().catch(() => undefined);
  return {
    dir,
    inblobs,
    stop() {
      stopped = true;
      // Opening a FIFO read-write never blocks and releases the fake's pending open of it.
      spawnSync('sh', ['-c', 'exec 3<>"$1"; exec 3>&-', 'sh', join(dir, 'outblob')], { stdio: 'ignore', timeout: 2000 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
