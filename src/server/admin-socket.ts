/**
 * The admin socket: one server per data directory, and a socket that is never reachable with
 * looser permissions than 0600, not even for an instant. It is bound inside a fresh 0700
 * directory beside its final path, chmod'ed there, and only then renamed into place.
 */
import { chmodSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';

/** Refuses to start if another server answers on the admin socket; removes a stale one. */
export async function claimSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new Error(`server: another writ server is serving ${path}; stop it or use another --data-dir`);
  rmSync(path, { force: true });
}

/**
 * Binds a Unix socket at `path` with mode 0600 from the moment anyone can reach it: `bindAt`
 * binds at the temporary path it is given; the socket is then chmod'ed and renamed over `path`.
 */
export async function bindPrivateSocket<T>(path: string, bindAt: (tmpPath: string) => Promise<T>): Promise<T> {
  // Short on purpose: a Unix socket path has at most 107 bytes (config checks this one fits too).
  const dir = mkdtempSync(join(dirname(path), '.w-'));
  try {
    const tmp = join(dir, 's');
    const out = await bindAt(tmp);
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
