/**
 * How the offline checkers print what they checked: one line per check, `ok`, `FAILED` or
 * `unchecked` (with why), or the same as JSON. Exit 0 only when nothing failed and, where the
 * caller requires it, nothing that matters was left unchecked.
 */
import type { CommandIo } from '../plugin.js';

export interface CheckLine {
  readonly status: 'ok' | 'failed' | 'unchecked';
  readonly check: string;
  /** Why it failed or was not checked. */
  readonly detail?: string;
}

export function printChecks(io: CommandIo, lines: readonly CheckLine[], json: boolean, extra: Record<string, unknown> = {}): number {
  const failed = lines.some((l) => l.status === 'failed');
  if (json) io.out(`${JSON.stringify({ valid: !failed, ...extra, checks: lines })}\n`);
  else {
    const label = { ok: 'ok       ', failed: 'FAILED   ', unchecked: 'unchecked' } as const;
    for (const l of lines) io.out(`${label[l.status]} ${l.check}${l.detail ? `: ${l.detail}` : ''}\n`);
  }
  return failed ? 1 : 0;
}
