import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/errors.js';
import { STATUS_BY_CODE } from '../src/server/status.js';
import { REPO_ROOT } from './helpers/shared.js';

function srcFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? (n === 'gen' ? [] : srcFiles(p)) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('the error contract', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'errors.md'), 'utf8');
  const documented = [...doc.matchAll(/^\| `(ERR_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
  const sources = srcFiles(join(REPO_ROOT, 'src'))
    .filter((f) => !f.endsWith('status.ts'))
    // In errors.ts only the subclasses count (each fixes its code), not the list of codes.
    .map((f) => (f.endsWith('errors.ts') ? readFileSync(f, 'utf8').split('] as const;')[1]! : readFileSync(f, 'utf8')))
    .join('\n');

  it.each(ERROR_CODES.map((c) => [c]))('%s is mapped to a gRPC status, documented, and raised somewhere', (code) => {
    expect(STATUS_BY_CODE[code]).toBeDefined();
    expect(documented).toContain(code);
    expect(sources.includes(`'${code}'`) || sources.includes(`"${code}"`), `${code} is never raised`).toBe(true);
  });

  it('documents no code that does not exist, and maps none that does not exist', () => {
    expect(documented.filter((c) => !(ERROR_CODES as readonly string[]).includes(c!))).toEqual([]);
    expect(Object.keys(STATUS_BY_CODE).sort()).toEqual([...ERROR_CODES].sort());
  });

  it('gives a public text to every code whose message is not shown', () => {
    for (const [code, m] of Object.entries(STATUS_BY_CODE)) if (!m.showMessage) expect(m.publicMessage, code).toBeTruthy();
  });
});
