/**
 * `writ agent run`: the sidecar. Attests with any evidence type the agent builtins list, holds
 * the agent key (a 0600 PKCS#8 file, a key made in memory, or a key the evidence type holds,
 * e.g. TPM-resident), serves the SPIFFE Workload API on a Unix socket, renews, and stops
 * cleanly on SIGINT/SIGTERM (streams ended, socket removed).
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { statSync } from 'node:fs';
import { checkServerAddress } from '../../../agent/attest-client.js';
import { readPrivateKey } from '../../../agent/keys.js';
import { grpcWatchConnector } from '../../../agent/revocation-client.js';
import type { EvidenceProducer } from '../../../attestation/plugin.js';
import { parsePermissionFlag, type Permission } from '../../../delegation/scope.js';
import { ConfigError } from '../../../errors.js';
import { jwkThumbprint } from '../../../jose/jws.js';
import { delegateFromParent } from '../../../sidecar/parent-client.js';
import { listOption, stringOption, UsageError, type OptionSpecs, type OptionValues } from '../../../config/options.js';
import { checkAudiences, MAX_JWT_AUDIENCES } from '../../../sidecar/daemon.js';
import { LatestBundle, renewingSource } from '../../../sidecar/identity-source.js';
import { SidecarMetrics } from '../../../sidecar/metrics.js';
import { StepUpHolder } from '../../../sidecar/step-ups.js';
import { runSidecar } from '../../../sidecar/run.js';
import { parseHostPort } from '../../../config/config.js';
import { resolveGroup, socketPath } from '../../../sidecar/socket.js';
import type { SidecarStatus } from '../../../sidecar/state.js';
import { readPemBundle } from '../../bundle-file.js';
import { seconds } from '../../durations.js';
import { readGrantFiles } from '../../grant-files.js';
import { PERMISSION_OPTIONS } from '../grant/permissions.js';
import { required, type CliCatalog, type Verb } from '../../verb.js';
import { selectProducer } from './attest.js';
import { readConfigFile } from './run-config.js';

const CORE: OptionSpecs = {
  config: { type: 'string', value: 'FILE', help: 'a YAML mapping of these options (e.g. `server: HOST:PORT`, lists for repeatable ones); flags override it' },
  server: { type: 'string', value: 'HOST:PORT', help: "the issuer's public port" },
  bundle: { type: 'string', value: 'FILE', help: "the issuer's trust bundle, PEM (the server writes bundle.pem)" },
  socket: { type: 'string', value: 'PATH', help: 'the Workload API socket (default: SPIFFE_ENDPOINT_SOCKET=unix:///PATH)' },
  'socket-group': { type: 'string', value: 'GROUP', help: 'let this group connect too (socket mode 0660; default 0600, owner only)' },
  key: { type: 'string', value: 'FILE', help: 'the agent key, PKCS#8 PEM, mode 0600 (default: a new P-256 key that never leaves memory)' },
  grant: { type: 'string', multiple: true, value: 'FILE', help: 'grant chain files (compact grants, one per line, root first): the sidecar also holds a writ' },
  'writ-audience': { type: 'string', multiple: true, value: 'AUD', help: 'an audience the writ names (with --grant)' },
  'jwt-audience': { type: 'string', multiple: true, value: 'AUD', help: 'mint a JWT-SVID for this audience with every attestation and renewal' },
  evidence: { type: 'string', value: 'TYPE', help: 'the evidence type, for types selected by name (see below)' },
  'parent-socket': {
    type: 'string',
    value: 'PATH',
    help: "a child agent: get the grant chain from the parent sidecar's Delegate on this socket (then --scope, --boundary, --escalate, --grant-ttl)",
  },
  ...PERMISSION_OPTIONS,
  'grant-ttl': { type: 'string', value: 'D', help: "with --parent-socket: the child grant's lifetime (default: what is left of the parent's)" },
  'metrics-listen': {
    type: 'string',
    value: 'HOST:PORT',
    help: 'serve Prometheus metrics on GET /metrics there (identities, renewals and failures, expiry, revocation staleness and lag)',
  },
  'revocation-max-staleness': {
    type: 'string',
    value: 'D',
    help: 'refuse to Delegate when the issuer last confirmed the revocation view longer ago than this (default 15s)',
  },
};

function options(catalog: CliCatalog): OptionSpecs {
  return Object.assign({}, CORE, ...catalog.producers.map((p) => p.options));
}

/** A key file anyone but its owner can read is refused: the sidecar is the key's only custodian. */
function readOwnerOnlyKey(file: string): KeyObject {
  const key = readPrivateKey(file);
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new UsageError(`--key: ${file} is mode ${mode.toString(8).padStart(4, '0')}; the agent key must be 0600 (chmod 600 ${file})`);
  return key;
}

/** What `writ agent run` starts with, every option checked. */
interface RunOptions {
  readonly producer: EvidenceProducer;
  readonly server: string;
  readonly bundlePem: string;
  readonly path: string;
  readonly gid: number | undefined;
  readonly maxStaleMs: number | undefined;
  readonly metricsAt: { host: string; port: number } | undefined;
  readonly parent: string | undefined;
  readonly scope: Permission[];
  readonly boundaries: Permission[];
  readonly escalate: Permission[];
  readonly ttlSeconds: number | undefined;
  readonly key: KeyObject | undefined;
  readonly grants: readonly string[];
  readonly writAudiences: readonly string[];
  readonly jwtAudiences: readonly string[];
}

/**
 * Checks every option's value before anything starts. With --config, every problem at once, the
 * file's shape and the values (ConfigError, as `writ server --config`: exit 1, "invalid
 * configuration: a; b; c"); an option whose file value has the wrong shape is reported once,
 * not again as missing. From flags alone, the first, as before (a usage error, exit 2).
 */
function checkRunOptions(
  values: OptionValues,
  env: Record<string, string | undefined>,
  catalog: CliCatalog,
  file: { readonly problems: readonly string[]; readonly invalid: ReadonlySet<string> } | undefined,
): RunOptions {
  /** Each problem, and the option to name in the list when its message does not. */
  const problems: Array<{ readonly error: unknown; readonly option?: string }> = [];
  const reported = (name: string) => file?.invalid.has(name) === true;
  const check = <T>(f: () => T, option?: string): T | undefined => {
    try {
      return f();
    } catch (error) {
      problems.push(option ? { error, option } : { error });
      return undefined;
    }
  };
  const problem = (message: string) => problems.push({ error: new UsageError(message) });
  const producer = check(() => selectProducer(catalog.producers, values, CORE));
  const server = reported('server') ? undefined : check(() => checkServerAddress(required(values, 'server')));
  const bundlePem = reported('bundle') ? undefined : check(() => readPemBundle(required(values, 'bundle')));
  const path = reported('socket') ? undefined : check(() => socketPath(stringOption(values, 'socket'), env));
  const group = stringOption(values, 'socket-group');
  const gid = group !== undefined ? check(() => resolveGroup(group)) : undefined;
  const staleness = stringOption(values, 'revocation-max-staleness');
  const maxStaleMs = staleness !== undefined ? check(() => seconds(staleness, '--revocation-max-staleness') * 1000) : undefined;
  if (maxStaleMs !== undefined && maxStaleMs < 1000) problem('--revocation-max-staleness must be at least 1s');
  const ml = stringOption(values, 'metrics-listen');
  const metricsAt =
    ml !== undefined
      ? check(() => {
          try {
            return parseHostPort(ml);
          } catch (e) {
            throw new UsageError(`--metrics-listen: ${(e as Error).message}`);
          }
        })
      : undefined;
  const parent = stringOption(values, 'parent-socket');
  const perms = (flag: string) => check(() => listOption(values, flag).map(parsePermissionFlag), flag) ?? [];
  for (const f of ['scope', 'boundary', 'escalate', 'grant-ttl']) if (!parent && values[f] !== undefined) problem(`--${f} needs --parent-socket`);
  if (parent && values.grant !== undefined) problem('--grant and --parent-socket are exclusive: the parent sidecar supplies the chain');
  const keyFile = stringOption(values, 'key');
  const evidenceKey = producer?.keys?.selected(values) ?? false;
  if (keyFile && evidenceKey) problem(`--key cannot be used with a key the ${producer!.type} evidence holds`);
  if (parent && evidenceKey) problem('--parent-socket needs a key in this process (--key, or none: a new one)');
  const key = keyFile ? check(() => readOwnerOnlyKey(keyFile)) : undefined;
  const grants = check(() => readGrantFiles(listOption(values, 'grant'))) ?? [];
  const ttl = stringOption(values, 'grant-ttl');
  const ttlSeconds = ttl !== undefined && parent ? check(() => seconds(ttl, '--grant-ttl')) : undefined;
  const writAudiences = listOption(values, 'writ-audience');
  if (writAudiences.length && !parent && values.grant === undefined) problem('--writ-audience needs --grant or --parent-socket');
  const jwtAudiences = listOption(values, 'jwt-audience');
  for (const a of jwtAudiences) check(() => checkAudiences([a]), 'jwt-audience');
  if (jwtAudiences.length > MAX_JWT_AUDIENCES) problem(`at most ${MAX_JWT_AUDIENCES} --jwt-audience`);
  const result = { scope: perms('scope'), boundaries: perms('boundary'), escalate: perms('escalate') };
  if (file && (file.problems.length > 0 || problems.length > 0))
    throw new ConfigError([
      ...file.problems,
      ...problems.map(({ error, option }) => `${option ? `--${option}: ` : ''}${error instanceof Error ? error.message : String(error)}`),
    ]);
  if (problems.length > 0) throw problems[0]!.error;
  return {
    producer: producer!,
    server: server!,
    bundlePem: bundlePem!,
    path: path!,
    gid,
    maxStaleMs,
    metricsAt,
    parent,
    ...result,
    ttlSeconds,
    key,
    grants,
    writAudiences,
    jwtAudiences,
  };
}

export const agentRunVerb: Verb = {
  name: ['agent', 'run'],
  summary: 'the sidecar: attest, serve the SPIFFE Workload API on a Unix socket, renew; stops cleanly on SIGINT/SIGTERM',
  required: ['server', 'bundle'],
  options,
  note: 'Evidence: exactly one of the evidence options below selects the type, whose evidence makes the first attestation. Renewals are by the current X.509-SVID (what a one-time join token needs); fresh evidence from the type again only when the issuer answers ERR_FRESH_EVIDENCE_REQUIRED (its policy, by default for every type but one-time tokens) or refuses the SVID (ERR_SVID_SUPERSEDED, ERR_SVID_RENEWAL_INVALID). Logs are JSON lines on stderr.',
  async run({ values: flags, env, catalog, io }) {
    const configFile = stringOption(flags, 'config');
    const file = configFile ? readConfigFile(configFile, options(catalog), flags) : undefined;
    const {
      producer,
      server,
      bundlePem,
      path,
      gid,
      maxStaleMs,
      metricsAt,
      parent,
      scope,
      boundaries,
      escalate,
      ttlSeconds,
      key: keyRead,
      grants: grantsRead,
      writAudiences,
      jwtAudiences,
    } = checkRunOptions(file?.values ?? flags, env, catalog, file);
    const values = file?.values ?? flags;
    const log = (msg: string) => io.err(`${JSON.stringify({ time: new Date().toISOString(), msg })}\n`);
    let key = keyRead;
    let grants = grantsRead;
    if (parent) {
      // The child's key must exist before the parent delegates to it: a new one, never written.
      key ??= generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
      const d = await delegateFromParent({
        socket: parent,
        childJkt: jwkThumbprint(createPublicKey(key)),
        scope,
        boundaries,
        escalate,
        ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
      });
      grants = d.grants;
      log(`sidecar: the parent sidecar delegated grant ${d.grantId} (depth ${d.grants.length - 1}, until ${new Date(d.expiresAt).toISOString()})`);
    }
    if (writAudiences.length && grants.length === 0) throw new UsageError('--writ-audience needs --grant or --parent-socket');
    const now = () => Date.now();
    // Approvals of this agent's escalations, presented on every renewal (AgentService.Escalate).
    const stepUps = new StepUpHolder();
    const latest = new LatestBundle(bundlePem);
    const running = await runSidecar({
      source: renewingSource(
        { server, bundlePem, producer, values, ...(key ? { key } : {}), grants, writAudiences, stepUps: () => stepUps.current(now()) },
        now,
        log,
      ),
      ...(grants.length > 0 ? { escalation: { server, bundlePem: () => latest.current(), stepUps } } : {}),
      jwtAudiences,
      now,
      log,
      socketPath: path,
      ...(gid !== undefined ? { socketGid: gid } : {}),
      // The bundle the issuer last served (renewals follow its CA rotations), else the startup file's.
      revocation: { addresses: [server], connector: grpcWatchConnector(() => latest.current()) },
      ...(maxStaleMs !== undefined ? { maxRevocationStalenessMs: maxStaleMs } : {}),
    });
    const offBundle = running.sidecar.subscribe((s) => latest.observe(s));
    latest.observe(running.sidecar.current());
    log(`sidecar: Workload API and writ.agent.v1.AgentService on unix://${path}`);
    const metrics = metricsAt ? new SidecarMetrics(running.sidecar, now, running.guard) : undefined;
    const metricsServer = metrics && metricsAt ? await metrics.serve(metricsAt.host, metricsAt.port) : undefined;
    if (metricsServer) log(`sidecar: metrics on http://${metricsAt!.host}:${metricsServer.port}/metrics`);
    // The SPIFFE ID on stdout once, when the first identity is served (a supervisor's readiness signal).
    let printed = false;
    const printOnce = (s: SidecarStatus) => {
      if (printed || s.state !== 'serving') return;
      printed = true;
      io.out(`${s.identity.spiffeId}\n`);
    };
    const off = running.sidecar.subscribe(printOnce);
    printOnce(running.sidecar.current());
    let stop: () => void = () => {};
    const code = await new Promise<number>((resolve) => {
      stop = () => resolve(0);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      running.sidecar.subscribe((s) => {
        if (s.state === 'revoked') resolve(1);
      });
    });
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    off();
    offBundle();
    metrics?.close();
    if (metricsServer) await new Promise<void>((r) => metricsServer.server.close(() => r()));
    await running.close();
    log('sidecar: stopped');
    return code;
  },
};
