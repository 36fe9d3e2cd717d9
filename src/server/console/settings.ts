/**
 * The `console:` section of the configuration: raw YAML → validated ConsoleSettings, every
 * problem reported at once. The console is served only when the HTTPS listener is on
 * (`http_listen`) and some `principals:` issuer is configured to sign in with.
 *
 * ```yaml
 * console:
 *   enabled: true                # default true
 *   issuer: https://idp.example  # one of principals[].issuer (default: the first)
 *   client_id: writ              # default: that issuer's audience (the ID token's aud)
 *   client_secret_file: secret   # optional: a confidential client (client_secret_post)
 *   session_ttl: 15m             # 1m..12h
 *   operators:
 *     subjects: [https://idp.example#alice]
 *     groups: [writ-operators]
 * ```
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConfigSection } from '../../config/config.js';
import { parseDuration } from '../../config/duration.js';

/** Keys of `console:`. */
export const CONSOLE_KEYS = ['enabled', 'issuer', 'client_id', 'client_secret_file', 'session_ttl', 'operators'] as const;
export const DEFAULT_SESSION_TTL_MS = 15 * 60_000;
/** A session outlives its sign-in by at most this: longer, and a stolen laptop keeps access. */
export const MAX_SESSION_TTL_MS = 12 * 3_600_000;
export const MIN_SESSION_TTL_MS = 60_000;
/** Most names in each operators list. */
export const MAX_OPERATOR_NAMES = 256;

export interface ConsoleSettings {
  readonly enabled: boolean;
  /** One of principals[].issuer; undefined: the first configured. */
  readonly issuer?: string;
  readonly clientId?: string;
  readonly clientSecret?: string;
  readonly sessionTtlMs: number;
  /** `iss#sub` of each operator. */
  readonly operatorSubjects: readonly string[];
  /** Members of any of these groups (from their ID token) are operators. */
  readonly operatorGroups: readonly string[];
}

type Raw = Record<string, unknown>;

function names(v: unknown, name: string, p: string[]): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '' && x.length <= 512)) {
    p.push(`${name} must be a list of non-empty strings`);
    return [];
  }
  if (v.length > MAX_OPERATOR_NAMES) p.push(`${name} has more than ${MAX_OPERATOR_NAMES} names`);
  return v as string[];
}

/** Validates a raw `console:` mapping; pushes problems, never throws. */
export function parseConsole(raw: unknown, problems: string[]): ConsoleSettings {
  const p = problems;
  const dflt: ConsoleSettings = { enabled: true, sessionTtlMs: DEFAULT_SESSION_TTL_MS, operatorSubjects: [], operatorGroups: [] };
  if (raw === undefined || raw === null) return dflt;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    p.push('console must be a mapping');
    return dflt;
  }
  const r = raw as Raw;
  for (const k of Object.keys(r)) if (!(CONSOLE_KEYS as readonly string[]).includes(k)) p.push(`unknown key console.${k}`);
  const str = (v: unknown, name: string): string | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v === '') {
      p.push(`${name} must be a non-empty string`);
      return undefined;
    }
    return v;
  };
  if (r.enabled !== undefined && typeof r.enabled !== 'boolean') p.push('console.enabled must be true or false');
  let sessionTtlMs = DEFAULT_SESSION_TTL_MS;
  const ttl = str(r.session_ttl, 'console.session_ttl');
  if (ttl !== undefined) {
    try {
      sessionTtlMs = parseDuration(ttl);
      if (sessionTtlMs < MIN_SESSION_TTL_MS || sessionTtlMs > MAX_SESSION_TTL_MS) p.push('console.session_ttl must be from 1m to 12h');
    } catch (e) {
      p.push(`console.session_ttl: ${(e as Error).message}`);
    }
  }
  let clientSecret: string | undefined;
  const secretFile = str(r.client_secret_file, 'console.client_secret_file');
  if (secretFile !== undefined) {
    try {
      clientSecret = readFileSync(resolve(secretFile), 'utf8').trim();
      if (clientSecret === '' || /[\r\n]/.test(clientSecret)) p.push('console.client_secret_file must hold the secret on one line');
    } catch (e) {
      p.push(`console.client_secret_file: ${(e as Error).message}`);
    }
  }
  const ops = r.operators;
  if (ops !== undefined && ops !== null && (typeof ops !== 'object' || Array.isArray(ops)))
    p.push('console.operators must be a mapping of subjects and groups');
  const o = (typeof ops === 'object' && ops !== null ? ops : {}) as Raw;
  for (const k of Object.keys(o)) if (k !== 'subjects' && k !== 'groups') p.push(`unknown key console.operators.${k}`);
  const operatorSubjects = names(o.subjects, 'console.operators.subjects', p);
  for (const s of operatorSubjects) if (!s.includes('#')) p.push(`console.operators.subjects: ${s.slice(0, 80)} must be ISSUER#SUBJECT`);
  const issuer = str(r.issuer, 'console.issuer');
  const clientId = str(r.client_id, 'console.client_id');
  return {
    enabled: r.enabled !== false,
    ...(issuer ? { issuer } : {}),
    ...(clientId ? { clientId } : {}),
    ...(clientSecret ? { clientSecret } : {}),
    sessionTtlMs,
    operatorSubjects,
    operatorGroups: names(o.groups, 'console.operators.groups', p),
  };
}

export const consoleSection: ConfigSection<ConsoleSettings> = {
  key: 'console',
  parse: (top) => parseConsole(top.raw.console, top.problems),
};
