/**
 * The `principals:` section of the configuration: raw YAML values → validated
 * PrincipalIssuerSettings, every problem reported at once (SPIRE buildConfig). config/ calls
 * this from above; this module never reads files or the environment (`jwks_file` is resolved
 * against the working directory, as every other path in the configuration).
 */
import { resolve } from 'node:path';
import type { ConfigSection } from '../config/config.js';
import { parseDuration } from '../config/duration.js';
import { JWKS_TTL_MS, formatDuration, isSecureOrLoopback, type PrincipalIssuerSettings } from './oidc.js';

/** Keys one `principals:` item may have. */
export const PRINCIPAL_KEYS = ['issuer', 'audience', 'jwks_file', 'groups_claim', 'jwks_origins', 'max_key_age'] as const;
/** Most origins in one `jwks_origins` list. */
export const MAX_JWKS_ORIGINS = 16;

type Raw = Record<string, unknown>;

/**
 * Validates a raw `principals:` list. Pushes every problem onto `problems` (never throws) and
 * returns the items it could read; the caller refuses the configuration if any problem was
 * pushed. `undefined` or `null` is an empty list.
 */
export function parsePrincipals(raw: unknown, problems: string[]): PrincipalIssuerSettings[] {
  const p = problems;
  const out: PrincipalIssuerSettings[] = [];
  if (raw !== undefined && raw !== null && !Array.isArray(raw)) p.push('principals must be a list');
  const str = (v: unknown, name: string, dflt: string): string => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') {
      p.push(`${name} must be a string`);
      return dflt;
    }
    return v;
  };
  (Array.isArray(raw) ? raw : []).forEach((v: unknown, i) => {
    const name = `principals[${i}]`;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      p.push(`${name} must be a mapping`);
      return;
    }
    const r = v as Raw;
    for (const k of Object.keys(r)) if (!(PRINCIPAL_KEYS as readonly string[]).includes(k)) p.push(`unknown key ${name}.${k}`);
    const issuer = str(r.issuer, `${name}.issuer`, '');
    const audience = str(r.audience, `${name}.audience`, '');
    if (!issuer || !audience) p.push(`${name} needs issuer and audience`);
    const jwksFile = str(r.jwks_file, `${name}.jwks_file`, '');
    if (issuer && !jwksFile) {
      try {
        if (!isSecureOrLoopback(new URL(issuer))) p.push(`${name}.issuer must be https (http only on loopback) for discovery, or give jwks_file`);
      } catch {
        p.push(`${name}.issuer must be a URL`);
      }
    }
    if (out.some((x) => x.issuer === issuer)) p.push(`${name}.issuer ${issuer} is listed twice`);
    const jwksOrigins = origins(r.jwks_origins, `${name}.jwks_origins`, p);
    const maxKeyAgeMs = maxKeyAge(r.max_key_age, `${name}.max_key_age`, p);
    if (jwksFile && r.jwks_origins !== undefined && r.jwks_origins !== null) p.push(`${name}.jwks_origins applies to discovery only, not with jwks_file`);
    if (jwksFile && r.max_key_age !== undefined && r.max_key_age !== null)
      p.push(`${name}.max_key_age applies to discovery only: keys from jwks_file have no maximum age`);
    out.push({
      issuer,
      audience,
      ...(jwksFile ? { jwksFile: resolve(jwksFile) } : {}),
      groupsClaim: str(r.groups_claim, `${name}.groups_claim`, 'groups'),
      ...(jwksOrigins ? { jwksOrigins } : {}),
      ...(maxKeyAgeMs !== undefined ? { maxKeyAgeMs } : {}),
    });
  });
  return out;
}

/** `jwks_origins`: a non-empty list of `https://host[:port]` (http only on loopback), nothing after the origin. */
function origins(v: unknown, name: string, p: string[]): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    p.push(`${name} must be a list of origins, e.g. [https://keys.example.com]`);
    return undefined;
  }
  if (v.length === 0) p.push(`${name} must not be empty (leave it out to allow only the issuer's origin)`);
  if (v.length > MAX_JWKS_ORIGINS) p.push(`${name} has more than ${MAX_JWKS_ORIGINS} origins`);
  const out: string[] = [];
  (v as string[]).forEach((s, j) => {
    let u: URL | undefined;
    try {
      u = new URL(s);
    } catch {
      // reported below
    }
    const bare = u !== undefined && u.username === '' && u.password === '' && u.pathname === '/' && u.search === '' && u.hash === '' && !/[?#]/.test(s);
    if (!u || !bare || (u.protocol !== 'https:' && u.protocol !== 'http:')) {
      p.push(`${name}[${j}] must be an origin like https://keys.example.com (scheme, host and port only)`);
      return;
    }
    if (!isSecureOrLoopback(u)) {
      p.push(`${name}[${j}] must be https (http only on loopback)`);
      return;
    }
    out.push(u.origin);
  });
  return out;
}

/**
 * `max_key_age`: a duration, at least the refresh interval (keys are refetched every
 * JWKS_TTL_MS). Absent: undefined, and the verifier uses DEFAULT_MAX_KEY_AGE_MS.
 */
function maxKeyAge(v: unknown, name: string, p: string[]): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    p.push(`${name} must be a string`);
    return undefined;
  }
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch (e) {
    p.push(`${name}: ${(e as Error).message}`);
    return undefined;
  }
  if (ms < JWKS_TTL_MS) {
    p.push(`${name} must be at least ${formatDuration(JWKS_TTL_MS)} (keys are refreshed every ${formatDuration(JWKS_TTL_MS)})`);
    return undefined;
  }
  return ms;
}

/** The `principals:` key of the server configuration. */
export const principalsSection: ConfigSection<PrincipalIssuerSettings[]> = {
  key: 'principals',
  parse: (top) => parsePrincipals(top.raw.principals, top.problems),
};
