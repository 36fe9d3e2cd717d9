/**
 * Raw configuration (YAML file, then environment, then flags, each overriding the one before)
 * → validated settings. Every problem is reported at once (SPIRE buildConfig).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.js';
import { parseTrustDomain } from '../spiffe/id.js';
import { JWT_ALGORITHMS, type JwtAlg } from '../svid/jwt-svid.js';
import type { CaKeyType } from '../ca/manager.js';
import { parseDuration } from './duration.js';
import { parsePcrSelectionSpec } from '../tpm/structures.js';

export interface ServerSettings {
  readonly trustDomain: string;
  readonly dataDir: string;
  readonly listen: { host: string; port: number };
  readonly adminSocket: string;
  readonly metricsListen?: { host: string; port: number };
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  readonly ca: {
    readonly ttlMs: number;
    readonly rootTtlMs: number;
    readonly keyType: CaKeyType;
    readonly refreshHintSeconds: number;
    readonly keyPassphraseFile?: string;
    readonly upstream?: { certFile: string; keyFile: string; bundleFile: string };
  };
  readonly svid: { x509TtlMs: number; jwtTtlMs: number; jwtAlg: JwtAlg };
  readonly joinToken: { defaultTtlMs: number; maxTtlMs: number };
  /** Extra names on the issuer's serving certificate. */
  readonly servingNames: { dns: string[]; ips: string[] };
  /** Evidence plug-in settings. */
  readonly attestation: {
    readonly tpm: { readonly manufacturerRoots: string[]; readonly intermediates: string[]; readonly pcrSelection: string; readonly agentPcr: number };
  };
  /** Handshakes each peer address may start per second, and the burst it may save up. */
  readonly limits: { attestationsPerSecond: number; attestationBurst: number };
  /** Trusted OpenID Connect issuers whose users may create root grants. */
  readonly principals: ReadonlyArray<{ issuer: string; audience: string; jwksFile?: string; groupsClaim: string }>;
  /** Task lifetimes a root grant may ask for. */
  readonly grants: { defaultTtlMs: number; maxTtlMs: number };
}

/** What flags contribute (undefined = not given). */
export interface ServerFlags {
  config?: string;
  dataDir?: string;
  listen?: string;
  trustDomain?: string;
  adminSocket?: string;
  metricsListen?: string;
  logLevel?: string;
}

export const DEFAULTS = {
  trust_domain: 'writ.local',
  data_dir: './.writ',
  listen: '127.0.0.1:8443',
  log_level: 'info',
  ca: { ttl: '24h', root_ttl: '8760h', key_type: 'ec-p256', refresh_hint: '5m' },
  svid: { x509_ttl: '1h', jwt_ttl: '5m', jwt_alg: 'ES256' },
  join_token: { default_ttl: '10m', max_ttl: '24h' },
  serving_names: { dns: ['localhost'], ips: ['127.0.0.1'] },
  limits: { attestations_per_second: 200, attestation_burst: 400 },
  tpm_pcr_selection: 'sha256:0,1,2,3,4,5,6,7',
  grants: { default_ttl: '1h', max_ttl: '24h' },
} as const;

const KNOWN: Record<string, readonly string[] | null> = {
  trust_domain: null,
  data_dir: null,
  listen: null,
  admin_socket: null,
  metrics_listen: null,
  log_level: null,
  ca: ['ttl', 'root_ttl', 'key_type', 'refresh_hint', 'key_passphrase_file', 'upstream'],
  svid: ['x509_ttl', 'jwt_ttl', 'jwt_alg'],
  join_token: ['default_ttl', 'max_ttl'],
  serving_names: ['dns', 'ips'],
  limits: ['attestations_per_second', 'attestation_burst'],
  attestation: ['tpm'],
  principals: null,
  grants: ['default_ttl', 'max_ttl'],
};

type Raw = Record<string, unknown>;

/** Reads and merges the raw layers. */
export function loadRawConfig(flags: ServerFlags, env: NodeJS.ProcessEnv): { raw: Raw; problems: string[] } {
  const problems: string[] = [];
  let raw: Raw = {};
  const file = flags.config ?? env.WRIT_CONFIG;
  if (file) {
    try {
      const doc: unknown = parseYaml(readFileSync(file, 'utf8'));
      if (doc !== null && doc !== undefined) {
        if (typeof doc !== 'object' || Array.isArray(doc)) problems.push(`${file}: top level must be a mapping`);
        else raw = doc as Raw;
      }
    } catch (e) {
      problems.push(`${file}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  for (const [k, v] of Object.entries(raw)) {
    if (!(k in KNOWN)) problems.push(`unknown key ${k}`);
    const sub = KNOWN[k];
    if (sub && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const kk of Object.keys(v as Raw)) if (!sub.includes(kk)) problems.push(`unknown key ${k}.${kk}`);
    }
  }
  const layer = (key: string, envName: string, flag: string | undefined) => {
    if (env[envName] !== undefined && env[envName] !== '') raw[key] = env[envName];
    if (flag !== undefined) raw[key] = flag;
  };
  layer('trust_domain', 'WRIT_TRUST_DOMAIN', flags.trustDomain);
  layer('data_dir', 'WRIT_DATA_DIR', flags.dataDir);
  layer('listen', 'WRIT_LISTEN', flags.listen);
  layer('admin_socket', 'WRIT_ADMIN_SOCKET', flags.adminSocket);
  layer('metrics_listen', 'WRIT_METRICS_LISTEN', flags.metricsListen);
  layer('log_level', 'WRIT_LOG_LEVEL', flags.logLevel);
  return { raw, problems };
}

/** Parses host:port (IPv6 in brackets). */
export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) throw new Error(`${JSON.stringify(s)} is not host:port`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port ${port} out of range`);
  return { host: (m[1] ?? m[2])!, port };
}

/** Validates merged raw config into settings; throws ConfigError listing every problem. */
export function buildServerSettings(raw: Raw, problems: string[] = []): ServerSettings {
  const p = [...problems];
  const str = (v: unknown, name: string, dflt: string): string => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') {
      p.push(`${name} must be a string`);
      return dflt;
    }
    return v;
  };
  const section = (name: string): Raw => {
    const v = raw[name];
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) {
      p.push(`${name} must be a mapping`);
      return {};
    }
    return v as Raw;
  };
  const dur = (v: unknown, name: string, dflt: string): number => {
    try {
      const ms = parseDuration(str(v, name, dflt));
      if (ms <= 0) throw new Error('must be positive');
      return ms;
    } catch (e) {
      p.push(`${name}: ${(e as Error).message}`);
      return parseDuration(dflt);
    }
  };

  const trustDomain = str(raw.trust_domain, 'trust_domain', DEFAULTS.trust_domain);
  try {
    parseTrustDomain(trustDomain);
  } catch (e) {
    p.push(`trust_domain ${JSON.stringify(trustDomain)}: ${(e as Error).message}`);
  }
  const dataDir = resolve(str(raw.data_dir, 'data_dir', DEFAULTS.data_dir));
  let listen = { host: '127.0.0.1', port: 8443 };
  try {
    listen = parseHostPort(str(raw.listen, 'listen', DEFAULTS.listen));
  } catch (e) {
    p.push(`listen: ${(e as Error).message}`);
  }
  const adminRaw = str(raw.admin_socket, 'admin_socket', '');
  const adminSocket = adminRaw ? (isAbsolute(adminRaw) ? adminRaw : resolve(adminRaw)) : join(dataDir, 'admin.sock');
  // Unix socket paths are limited to 107 bytes on Linux (sun_path).
  if (Buffer.byteLength(adminSocket) > 107) p.push(`admin_socket path is longer than 107 bytes: ${adminSocket}`);
  let metricsListen: { host: string; port: number } | undefined;
  const ml = str(raw.metrics_listen, 'metrics_listen', '');
  if (ml) {
    try {
      metricsListen = parseHostPort(ml);
    } catch (e) {
      p.push(`metrics_listen: ${(e as Error).message}`);
    }
  }
  const logLevel = str(raw.log_level, 'log_level', DEFAULTS.log_level);
  if (!['trace', 'debug', 'info', 'warn', 'error'].includes(logLevel)) p.push(`log_level must be one of trace, debug, info, warn, error`);

  const ca = section('ca');
  const caTtl = dur(ca.ttl, 'ca.ttl', DEFAULTS.ca.ttl);
  const rootTtl = dur(ca.root_ttl, 'ca.root_ttl', DEFAULTS.ca.root_ttl);
  if (rootTtl < caTtl) p.push('ca.root_ttl must be at least ca.ttl');
  const keyType = str(ca.key_type, 'ca.key_type', DEFAULTS.ca.key_type);
  if (keyType !== 'ec-p256' && keyType !== 'ec-p384') p.push('ca.key_type must be ec-p256 or ec-p384');
  const refreshHint = dur(ca.refresh_hint, 'ca.refresh_hint', DEFAULTS.ca.refresh_hint);
  const passFile = str(ca.key_passphrase_file, 'ca.key_passphrase_file', '');
  let upstream: ServerSettings['ca']['upstream'];
  if (ca.upstream !== undefined && ca.upstream !== null) {
    const u = ca.upstream as Raw;
    const certFile = str(u.cert_file, 'ca.upstream.cert_file', '');
    const keyFile = str(u.key_file, 'ca.upstream.key_file', '');
    const bundleFile = str(u.bundle_file, 'ca.upstream.bundle_file', '');
    if (!certFile || !keyFile || !bundleFile) p.push('ca.upstream needs cert_file, key_file and bundle_file');
    for (const k of Object.keys(u)) if (!['cert_file', 'key_file', 'bundle_file'].includes(k)) p.push(`unknown key ca.upstream.${k}`);
    upstream = { certFile, keyFile, bundleFile };
  }

  const svid = section('svid');
  const x509Ttl = dur(svid.x509_ttl, 'svid.x509_ttl', DEFAULTS.svid.x509_ttl);
  const jwtTtl = dur(svid.jwt_ttl, 'svid.jwt_ttl', DEFAULTS.svid.jwt_ttl);
  const jwtAlg = str(svid.jwt_alg, 'svid.jwt_alg', DEFAULTS.svid.jwt_alg);
  if (!JWT_ALGORITHMS.has(jwtAlg)) p.push(`svid.jwt_alg must be one of ${[...JWT_ALGORITHMS.keys()].join(', ')}`);
  if (x509Ttl > caTtl) p.push('svid.x509_ttl must not exceed ca.ttl (SVIDs never outlive their CA)');
  if (jwtTtl > caTtl) p.push('svid.jwt_ttl must not exceed ca.ttl');

  const jt = section('join_token');
  const jtDefault = dur(jt.default_ttl, 'join_token.default_ttl', DEFAULTS.join_token.default_ttl);
  const jtMax = dur(jt.max_ttl, 'join_token.max_ttl', DEFAULTS.join_token.max_ttl);
  if (jtDefault > jtMax) p.push('join_token.default_ttl must not exceed join_token.max_ttl');

  const sn = section('serving_names');
  const list = (v: unknown, name: string, dflt: readonly string[]): string[] => {
    if (v === undefined || v === null) return [...dflt];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
      p.push(`${name} must be a list of strings`);
      return [...dflt];
    }
    return v as string[];
  };
  const servingNames = {
    dns: list(sn.dns, 'serving_names.dns', DEFAULTS.serving_names.dns),
    ips: list(sn.ips, 'serving_names.ips', DEFAULTS.serving_names.ips),
  };
  if (listen.host !== '0.0.0.0' && listen.host !== '::' && /^[\d.]+$|:/.test(listen.host) && !servingNames.ips.includes(listen.host)) {
    servingNames.ips.push(listen.host);
  }

  const lim = section('limits');
  const num = (v: unknown, name: string, dflt: number): number => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      p.push(`${name} must be a positive number`);
      return dflt;
    }
    return v;
  };
  const limits = {
    attestationsPerSecond: num(lim.attestations_per_second, 'limits.attestations_per_second', DEFAULTS.limits.attestations_per_second),
    attestationBurst: num(lim.attestation_burst, 'limits.attestation_burst', DEFAULTS.limits.attestation_burst),
  };

  const att = section('attestation');
  const tpmRaw = att.tpm === undefined || att.tpm === null ? {} : (att.tpm as Raw);
  for (const k of Object.keys(tpmRaw))
    if (!['manufacturer_roots', 'intermediates', 'pcr_selection', 'agent_pcr'].includes(k)) p.push(`unknown key attestation.tpm.${k}`);
  const files = (v: unknown, name: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
      p.push(`${name} must be a list of file paths`);
      return [];
    }
    return (v as string[]).map((f) => resolve(f));
  };
  const tpmSettings = {
    manufacturerRoots: files(tpmRaw.manufacturer_roots, 'attestation.tpm.manufacturer_roots'),
    intermediates: files(tpmRaw.intermediates, 'attestation.tpm.intermediates'),
    pcrSelection: str(tpmRaw.pcr_selection, 'attestation.tpm.pcr_selection', DEFAULTS.tpm_pcr_selection),
    agentPcr: 23,
  };
  if (tpmRaw.agent_pcr !== undefined) {
    if (!Number.isInteger(tpmRaw.agent_pcr) || (tpmRaw.agent_pcr as number) < 16 || (tpmRaw.agent_pcr as number) > 23)
      p.push('attestation.tpm.agent_pcr must be an integer 16..23');
    else tpmSettings.agentPcr = tpmRaw.agent_pcr as number;
  }
  try {
    parsePcrSelectionSpec(tpmSettings.pcrSelection);
  } catch (e) {
    p.push(`attestation.tpm.pcr_selection: ${(e as Error).message}`);
  }

  const principals: Array<ServerSettings['principals'][number]> = [];
  const pr = raw.principals;
  if (pr !== undefined && pr !== null && !Array.isArray(pr)) p.push('principals must be a list');
  (Array.isArray(pr) ? pr : []).forEach((v: unknown, i) => {
    const name = `principals[${i}]`;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      p.push(`${name} must be a mapping`);
      return;
    }
    const r = v as Raw;
    for (const k of Object.keys(r)) if (!['issuer', 'audience', 'jwks_file', 'groups_claim'].includes(k)) p.push(`unknown key ${name}.${k}`);
    const issuer = str(r.issuer, `${name}.issuer`, '');
    const audience = str(r.audience, `${name}.audience`, '');
    if (!issuer || !audience) p.push(`${name} needs issuer and audience`);
    const jwksFile = str(r.jwks_file, `${name}.jwks_file`, '');
    if (issuer && !jwksFile) {
      try {
        const u = new URL(issuer);
        const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
        if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback))
          p.push(`${name}.issuer must be https (http only on loopback) for discovery, or give jwks_file`);
      } catch {
        p.push(`${name}.issuer must be a URL`);
      }
    }
    if (principals.some((x) => x.issuer === issuer)) p.push(`${name}.issuer ${issuer} is listed twice`);
    principals.push({
      issuer,
      audience,
      ...(jwksFile ? { jwksFile: resolve(jwksFile) } : {}),
      groupsClaim: str(r.groups_claim, `${name}.groups_claim`, 'groups'),
    });
  });
  const gr = section('grants');
  const grants = {
    defaultTtlMs: dur(gr.default_ttl, 'grants.default_ttl', DEFAULTS.grants.default_ttl),
    maxTtlMs: dur(gr.max_ttl, 'grants.max_ttl', DEFAULTS.grants.max_ttl),
  };
  if (grants.defaultTtlMs > grants.maxTtlMs) p.push('grants.default_ttl must not exceed grants.max_ttl');

  if (p.length) throw new ConfigError(p);
  return {
    principals,
    grants,
    trustDomain,
    dataDir,
    listen,
    adminSocket,
    ...(metricsListen ? { metricsListen } : {}),
    logLevel: logLevel as ServerSettings['logLevel'],
    ca: {
      ttlMs: caTtl,
      rootTtlMs: rootTtl,
      keyType: keyType as CaKeyType,
      refreshHintSeconds: Math.round(refreshHint / 1000),
      ...(passFile ? { keyPassphraseFile: passFile } : {}),
      ...(upstream ? { upstream } : {}),
    },
    svid: { x509TtlMs: x509Ttl, jwtTtlMs: jwtTtl, jwtAlg: jwtAlg as JwtAlg },
    joinToken: { defaultTtlMs: jtDefault, maxTtlMs: jtMax },
    servingNames,
    limits,
    attestation: { tpm: tpmSettings },
  };
}
