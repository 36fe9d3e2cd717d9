/**
 * Raw configuration (YAML file, then environment, then flags, each overriding the one before)
 * → validated settings. Every problem is reported at once (SPIRE buildConfig).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.js';
import { parseTrustDomain } from '../spiffe/id.js';
import { JWT_ALGORITHMS, type JwtAlg } from '../svid/jwt-svid.js';
import type { CaKeyType } from '../ca/manager.js';
import { Section, type Raw } from './section.js';

export interface ServerSettings {
  readonly trustDomain: string;
  readonly dataDir: string;
  readonly listen: { host: string; port: number };
  readonly adminSocket: string;
  readonly metricsListen?: { host: string; port: number };
  /** The HTTPS listener (status lists, the SPIFFE bundle endpoint); absent: off. */
  readonly httpListen?: { host: string; port: number };
  /**
   * The base URL relying parties reach that listener at (writs' `status.status_list.uri` start
   * with it); absent: `https://<http_listen host>:<bound port>`.
   */
  readonly httpPublicUrl?: string;
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
  /** Extra names on the issuer's serving certificate. */
  readonly servingNames: { dns: string[]; ips: string[] };
  /** Handshakes each peer address may start per second, and the burst it may save up. */
  readonly limits: { attestationsPerSecond: number; attestationBurst: number };
  /** Task lifetimes a root grant may ask for. */
  readonly grants: { defaultTtlMs: number; maxTtlMs: number };
  /** Where the issuer's state lives: SQLite in the data directory (default), or PostgreSQL shared by replicas. */
  readonly datastore: DatastoreSettings;
  /** Validated settings of the capability sections the composition root registered, by key. */
  readonly sections: ReadonlyMap<string, unknown>;
}

/**
 * The `datastore:` key. Settings name where the password is (a file or an environment
 * variable), never the password itself, so settings can be printed and logged.
 */
export type DatastoreSettings =
  | { readonly type: 'sqlite'; readonly path: string }
  | {
      readonly type: 'postgres';
      /** Without a password (refused in it: use `password_file` or `password_env`). */
      readonly connectionString: string;
      readonly passwordFile?: string;
      readonly passwordEnv?: string;
      /** The schema holding writ's tables (it must exist); absent: the role's search_path. */
      readonly schema?: string;
      readonly poolSize: number;
      readonly statementTimeoutMs: number;
      /** TLS to the server, verified against `caFile` (else the system's roots); client certificate optional. */
      readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string; readonly serverName?: string };
    };

/**
 * A top-level key a capability contributes (`attestation`, later `revocation`, `audit`, ...):
 * its parser reads its own key from the top-level section and records its problems there.
 */
export interface ConfigSection<T = unknown> {
  readonly key: string;
  parse(top: Section): T;
}

/** The validated settings of section `key`; throws if the composition root did not register it. */
export function sectionSettings<T>(settings: Pick<ServerSettings, 'sections'>, key: string): T {
  if (!settings.sections.has(key)) throw new Error(`config: no section ${key} is registered`);
  return settings.sections.get(key) as T;
}

/** What flags contribute (undefined = not given). */
export interface ServerFlags {
  config?: string;
  dataDir?: string;
  listen?: string;
  trustDomain?: string;
  adminSocket?: string;
  metricsListen?: string;
  httpListen?: string;
  logLevel?: string;
}

export const DEFAULTS = {
  trust_domain: 'writ.local',
  data_dir: './.writ',
  listen: '127.0.0.1:8443',
  log_level: 'info',
  ca: { ttl: '24h', root_ttl: '8760h', key_type: 'ec-p256', refresh_hint: '5m' },
  svid: { x509_ttl: '1h', jwt_ttl: '5m', jwt_alg: 'ES256' },
  serving_names: { dns: ['localhost'], ips: ['127.0.0.1'] },
  limits: { attestations_per_second: 200, attestation_burst: 400 },
  grants: { default_ttl: '1h', max_ttl: '24h' },
} as const;

const KNOWN: Record<string, readonly string[] | null> = {
  trust_domain: null,
  data_dir: null,
  listen: null,
  admin_socket: null,
  metrics_listen: null,
  http_listen: null,
  http_public_url: null,
  log_level: null,
  ca: ['ttl', 'root_ttl', 'key_type', 'refresh_hint', 'key_passphrase_file', 'upstream'],
  svid: ['x509_ttl', 'jwt_ttl', 'jwt_alg'],
  serving_names: ['dns', 'ips'],
  limits: ['attestations_per_second', 'attestation_burst'],
  grants: ['default_ttl', 'max_ttl'],
  datastore: ['type', 'path', 'connection_string', 'password_file', 'password_env', 'schema', 'pool_size', 'statement_timeout', 'tls'],
};

/** Pool sizes the configuration accepts (each replica opens this many connections, plus one to listen). */
export const DATASTORE_MAX_POOL_SIZE = 200;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PG_SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

/** The `datastore:` section; problems recorded on `top`. */
function datastoreSettings(top: Section, dataDir: string): DatastoreSettings {
  const d = top.section('datastore');
  const type = d.str('type', 'sqlite');
  const file = (key: string) => {
    const f = d.str(key, '');
    return f === '' ? '' : isAbsolute(f) ? f : resolve(f);
  };
  if (type === 'sqlite') {
    for (const k of ['connection_string', 'password_file', 'password_env', 'schema', 'pool_size', 'statement_timeout', 'tls'])
      if (d.has(k)) d.problem(`datastore.${k} applies to type postgres, not sqlite`);
    return { type, path: file('path') || join(dataDir, 'writ.db') };
  }
  if (type !== 'postgres') {
    d.problem(`datastore.type must be sqlite or postgres, not ${JSON.stringify(type.slice(0, 40))}`);
    return { type: 'sqlite', path: join(dataDir, 'writ.db') };
  }
  if (d.has('path')) d.problem('datastore.path applies to type sqlite (postgres takes connection_string)');
  const cs = d.str('connection_string', '');
  let connectionString = '';
  if (!cs) d.problem('datastore.connection_string is required for type postgres (postgres://USER@HOST:PORT/DATABASE)');
  else {
    try {
      const u = new URL(cs);
      if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Error('must be a postgres:// URL');
      if (u.password || [...u.searchParams.keys()].some((k) => /pass/i.test(k))) {
        throw new Error('must not carry a password: put it in datastore.password_file or datastore.password_env');
      }
      if ([...u.searchParams.keys()].some((k) => /^ssl/i.test(k))) throw new Error('must not carry ssl parameters: use datastore.tls');
      connectionString = cs;
    } catch (e) {
      // Never quote the string: it may hold a password.
      d.problem(`datastore.connection_string ${e instanceof TypeError ? 'is not a URL' : (e as Error).message}`);
    }
  }
  const passwordFile = file('password_file');
  const passwordEnv = d.str('password_env', '');
  if (passwordFile && passwordEnv) d.problem('datastore: give password_file or password_env, not both');
  if (passwordEnv && !ENV_NAME.test(passwordEnv)) d.problem('datastore.password_env must be the name of an environment variable');
  const schema = d.str('schema', '');
  if (schema && !PG_SCHEMA.test(schema)) d.problem(`datastore.schema must match ${PG_SCHEMA.source}`);
  let tls: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string } | undefined;
  if (d.has('tls')) {
    const t = d.section('tls').only(['ca_file', 'cert_file', 'key_file', 'server_name']);
    const f = (key: string) => {
      const v = t.str(key, '');
      return v === '' ? undefined : isAbsolute(v) ? v : resolve(v);
    };
    const caFile = f('ca_file');
    const certFile = f('cert_file');
    const keyFile = f('key_file');
    const serverName = t.str('server_name', '');
    if (!certFile !== !keyFile) t.problem('datastore.tls: cert_file and key_file go together');
    tls = { ...(caFile ? { caFile } : {}), ...(certFile ? { certFile } : {}), ...(keyFile ? { keyFile } : {}), ...(serverName ? { serverName } : {}) };
  }
  return {
    type,
    connectionString,
    ...(passwordFile ? { passwordFile } : {}),
    ...(passwordEnv ? { passwordEnv } : {}),
    ...(schema ? { schema } : {}),
    poolSize: d.int('pool_size', 10, 1, DATASTORE_MAX_POOL_SIZE),
    statementTimeoutMs: d.duration('statement_timeout', '5s'),
    ...(tls ? { tls } : {}),
  };
}

/** Reads and merges the raw layers; unknown keys are checked by `buildServerSettings`. */
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
  const layer = (key: string, envName: string, flag: string | undefined) => {
    if (env[envName] !== undefined && env[envName] !== '') raw[key] = env[envName];
    if (flag !== undefined) raw[key] = flag;
  };
  layer('trust_domain', 'WRIT_TRUST_DOMAIN', flags.trustDomain);
  layer('data_dir', 'WRIT_DATA_DIR', flags.dataDir);
  layer('listen', 'WRIT_LISTEN', flags.listen);
  layer('admin_socket', 'WRIT_ADMIN_SOCKET', flags.adminSocket);
  layer('metrics_listen', 'WRIT_METRICS_LISTEN', flags.metricsListen);
  layer('http_listen', 'WRIT_HTTP_LISTEN', flags.httpListen);
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

const UNSPECIFIED = new Set(['0.0.0.0', '::']);

/**
 * `http_listen` and `http_public_url`: the public URL must be https with a host, no user
 * information, query or fragment (writs name `<url>/status/<id>`), and is required when the
 * listener binds every address (no one host to name). `names`: hosts for the serving certificate.
 */
function httpSettings(top: Section, p: string[]): { listen?: { host: string; port: number }; publicUrl?: string; names: string[] } {
  const names: string[] = [];
  const hl = top.str('http_listen', '');
  const pu = top.str('http_public_url', '');
  if (!hl) {
    if (pu) p.push('http_public_url needs http_listen');
    return { names };
  }
  let listen: { host: string; port: number } | undefined;
  try {
    listen = parseHostPort(hl);
    if (!UNSPECIFIED.has(listen.host)) names.push(listen.host);
  } catch (e) {
    p.push(`http_listen: ${(e as Error).message}`);
  }
  if (!pu) {
    if (listen && UNSPECIFIED.has(listen.host)) p.push(`http_public_url is required when http_listen binds every address (${listen.host})`);
    return { ...(listen ? { listen } : {}), names };
  }
  let publicUrl: string | undefined;
  try {
    const u = new URL(pu);
    if (u.protocol !== 'https:') throw new Error('must be an https URL');
    if (u.username || u.password) throw new Error('must not carry user information');
    if (u.search || u.hash || pu.includes('?') || pu.includes('#')) throw new Error('must not carry a query or a fragment');
    publicUrl = `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
    names.push(u.hostname.replace(/^\[(.*)\]$/, '$1'));
  } catch (e) {
    p.push(`http_public_url ${JSON.stringify(pu.slice(0, 200))}: ${e instanceof TypeError ? 'is not a URL' : (e as Error).message}`);
  }
  return { ...(listen ? { listen } : {}), ...(publicUrl ? { publicUrl } : {}), names };
}

/**
 * Validates merged raw config into settings; throws ConfigError listing every problem, those of
 * the capability `sections` included.
 */
export function buildServerSettings(raw: Raw, problems: string[] = [], sections: readonly ConfigSection[] = []): ServerSettings {
  const p = [...problems];
  const top = new Section('', raw, p);
  const extra = sections.map((s) => s.key);
  for (const [k, v] of Object.entries(raw)) {
    if (!(k in KNOWN) && !extra.includes(k)) p.push(`unknown key ${k}`);
    const sub = KNOWN[k];
    if (sub && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const kk of Object.keys(v as Raw)) if (!sub.includes(kk)) p.push(`unknown key ${k}.${kk}`);
    }
  }

  const trustDomain = top.str('trust_domain', DEFAULTS.trust_domain);
  try {
    parseTrustDomain(trustDomain);
  } catch (e) {
    p.push(`trust_domain ${JSON.stringify(trustDomain)}: ${(e as Error).message}`);
  }
  const dataDir = resolve(top.str('data_dir', DEFAULTS.data_dir));
  let listen = { host: '127.0.0.1', port: 8443 };
  try {
    listen = parseHostPort(top.str('listen', DEFAULTS.listen));
  } catch (e) {
    p.push(`listen: ${(e as Error).message}`);
  }
  const adminRaw = top.str('admin_socket', '');
  const adminSocket = adminRaw ? (isAbsolute(adminRaw) ? adminRaw : resolve(adminRaw)) : join(dataDir, 'admin.sock');
  // Unix socket paths are limited to 107 bytes on Linux (sun_path); the socket is first bound at
  // <dir>/.w-XXXXXX/s (server/admin-socket.ts), which must fit as well.
  if (Math.max(Buffer.byteLength(adminSocket), Buffer.byteLength(dirname(adminSocket)) + 11) > 107)
    p.push(`admin_socket path is longer than 107 bytes (or its directory longer than 96): ${adminSocket}`);
  let metricsListen: { host: string; port: number } | undefined;
  const ml = top.str('metrics_listen', '');
  if (ml) {
    try {
      metricsListen = parseHostPort(ml);
    } catch (e) {
      p.push(`metrics_listen: ${(e as Error).message}`);
    }
  }
  const http = httpSettings(top, p);
  const logLevel = top.str('log_level', DEFAULTS.log_level);
  if (!['trace', 'debug', 'info', 'warn', 'error'].includes(logLevel)) p.push('log_level must be one of trace, debug, info, warn, error');

  const ca = top.section('ca');
  const caTtl = ca.duration('ttl', DEFAULTS.ca.ttl);
  const rootTtl = ca.duration('root_ttl', DEFAULTS.ca.root_ttl);
  if (rootTtl < caTtl) p.push('ca.root_ttl must be at least ca.ttl');
  const keyType = ca.str('key_type', DEFAULTS.ca.key_type);
  if (keyType !== 'ec-p256' && keyType !== 'ec-p384') p.push('ca.key_type must be ec-p256 or ec-p384');
  const refreshHint = ca.duration('refresh_hint', DEFAULTS.ca.refresh_hint);
  const passFile = ca.str('key_passphrase_file', '');
  let upstream: ServerSettings['ca']['upstream'];
  if (ca.has('upstream')) {
    const u = ca.section('upstream').only(['cert_file', 'key_file', 'bundle_file']);
    const certFile = u.str('cert_file', '');
    const keyFile = u.str('key_file', '');
    const bundleFile = u.str('bundle_file', '');
    if (!certFile || !keyFile || !bundleFile) p.push('ca.upstream needs cert_file, key_file and bundle_file');
    upstream = { certFile, keyFile, bundleFile };
  }

  const svid = top.section('svid');
  const x509Ttl = svid.duration('x509_ttl', DEFAULTS.svid.x509_ttl);
  const jwtTtl = svid.duration('jwt_ttl', DEFAULTS.svid.jwt_ttl);
  const jwtAlg = svid.str('jwt_alg', DEFAULTS.svid.jwt_alg);
  if (!JWT_ALGORITHMS.has(jwtAlg)) p.push(`svid.jwt_alg must be one of ${[...JWT_ALGORITHMS.keys()].join(', ')}`);
  if (x509Ttl > caTtl) p.push('svid.x509_ttl must not exceed ca.ttl (SVIDs never outlive their CA)');
  if (jwtTtl > caTtl) p.push('svid.jwt_ttl must not exceed ca.ttl');

  const sn = top.section('serving_names');
  const servingNames = { dns: sn.strings('dns', DEFAULTS.serving_names.dns), ips: sn.strings('ips', DEFAULTS.serving_names.ips) };
  if (listen.host !== '0.0.0.0' && listen.host !== '::' && /^[\d.]+$|:/.test(listen.host) && !servingNames.ips.includes(listen.host)) {
    servingNames.ips.push(listen.host);
  }
  // Clients that check host names (curl, browsers) reach the HTTPS listener by these.
  for (const h of http.names) {
    const list = /^[\d.]+$|:/.test(h) ? servingNames.ips : servingNames.dns;
    if (!list.includes(h)) list.push(h);
  }

  const lim = top.section('limits');
  const limits = {
    attestationsPerSecond: lim.positive('attestations_per_second', DEFAULTS.limits.attestations_per_second),
    attestationBurst: lim.positive('attestation_burst', DEFAULTS.limits.attestation_burst),
  };

  const gr = top.section('grants');
  const grants = {
    defaultTtlMs: gr.duration('default_ttl', DEFAULTS.grants.default_ttl),
    maxTtlMs: gr.duration('max_ttl', DEFAULTS.grants.max_ttl),
  };
  if (grants.defaultTtlMs > grants.maxTtlMs) p.push('grants.default_ttl must not exceed grants.max_ttl');

  const datastore = datastoreSettings(top, dataDir);
  const parsed = new Map<string, unknown>(sections.map((s) => [s.key, s.parse(top)]));

  if (p.length) throw new ConfigError(p);
  return {
    grants,
    trustDomain,
    dataDir,
    listen,
    adminSocket,
    ...(metricsListen ? { metricsListen } : {}),
    ...(http.listen ? { httpListen: http.listen } : {}),
    ...(http.publicUrl ? { httpPublicUrl: http.publicUrl } : {}),
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
    servingNames,
    limits,
    datastore,
    sections: parsed,
  };
}
