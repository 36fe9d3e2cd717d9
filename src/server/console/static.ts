/**
 * The console's built files (console/, `npm run build:console` → dist/console), read from disk
 * once at start: `index.html` (never cached: it names the current hashed bundles) and
 * `assets/<name>-<hash>.<ext>` (immutable, cached for a year). Only files the build wrote are
 * served, looked up by exact name in a table: no path from a request ever reaches the file system.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A built asset name: vite's `[name]-[hash].[ext]`. */
export const ASSET_NAME = /^[A-Za-z0-9_-]{1,96}\.(js|css|svg|woff2)$/;

const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  woff2: 'font/woff2',
};

export interface ConsoleFiles {
  readonly index: Buffer;
  readonly assets: ReadonlyMap<string, { readonly body: Buffer; readonly type: string }>;
}

/** The repository (or installed package) root: the nearest directory above this file with a package.json. */
function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(d, 'package.json'))) return d;
    d = dirname(d);
  }
  return process.cwd();
}

/** Where the build puts the console: `$WRIT_CONSOLE_DIR`, else `<root>/dist/console`. */
export function consoleDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.WRIT_CONSOLE_DIR ?? join(packageRoot(), 'dist', 'console');
}

/** The built console, or undefined when it was not built. */
export function loadConsoleFiles(dir = consoleDir()): ConsoleFiles | undefined {
  const indexPath = join(dir, 'index.html');
  if (!existsSync(indexPath)) return undefined;
  const assets = new Map<string, { body: Buffer; type: string }>();
  const adir = join(dir, 'assets');
  if (existsSync(adir))
    for (const name of readdirSync(adir)) {
      const m = ASSET_NAME.exec(name);
      if (m) assets.set(name, { body: readFileSync(join(adir, name)), type: TYPES[m[1]!]! });
    }
  return { index: readFileSync(indexPath), assets };
}

/** The version in the package.json above this file (what `writ --version` says). */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
