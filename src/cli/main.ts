/**
 * The `writ` executable: argv → settings → server, agent or operator call. No domain logic.
 * Exit codes: 0 success, 1 failure (one line on stderr), 2 usage error.
 */
import 'reflect-metadata';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { create } from '@bufbuild/protobuf';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { ConfigError, isWritError } from '../errors.js';
import { buildServerSettings, loadRawConfig } from '../config/config.js';
import { parseDuration } from '../config/duration.js';
import { certificatesInFile } from '../config/files.js';
import { WritServer } from '../server/server.js';
import {
  AdminService,
  CreateEntryRequestSchema,
  type CreateEntryResponse,
  type CreateJoinTokenResponse,
  type Entry,
  type GetEntryResponse,
  type ListEntriesResponse,
} from '../gen/writ/v1/admin_pb.js';
import { BundleService, type GetBundleResponse } from '../gen/writ/v1/bundle_pb.js';
import { parseSelector } from '../registration/entry.js';
import { encodePem } from '../der/pem.js';
import { parsePcrSelectionSpec } from '../tpm/structures.js';
import { checkQuoteOffline } from '../attestation/tpm/check-quote.js';
import { attest, GrpcCallError } from '../agent/attest-client.js';
import { TpmAttestor } from '../agent/tpm-attestor.js';
import { Tpm } from '../tpm/client.js';
import { adminCall, adminSocketPath } from './admin-client.js';

import { UsageError, bindValues, need } from './args.js';
import {
  agentKeygen,
  grantCreate,
  grantDelegate,
  policyCommand,
  proofCreate,
  readGrantFiles,
  readPrivateKey,
  readResidentBlob,
  residentBlobText,
  verifyCommand,
} from './writ-commands.js';
import { jwkThumbprint } from '../jose/jws.js';
import { parseWrit } from '../writ/writ.js';

const VERSION = '0.1.0';

const USAGE = `writ ${VERSION} — attestation-bound credentials for AI agents

Usage:
  writ server [--config FILE] [--data-dir DIR] [--listen HOST:PORT] [--trust-domain TD]
              [--admin-socket PATH] [--metrics-listen HOST:PORT] [--log-level LEVEL]
  writ entry create --spiffe-id ID --selector TYPE:VALUE... [--x509-ttl D] [--jwt-ttl D]
                    [--scope PATTERN...] [--hint TEXT] [--json]
  writ entry list [--json]
  writ entry show ID [--json]
  writ entry delete ID
  writ token create [--spiffe-id ID] [--ttl D]
  writ bundle show [--format pem|jwks]
  writ tpm check-quote --ak-pub F --attest F --sig F --pcrs F --pcr-selection SEL --nonce HEX
                      [--ek-cert F --ek-pub F --roots F [--intermediates F]] [--eventlog F]
  writ agent attest --server HOST:PORT --bundle FILE (--join-token TOKEN | --tpm SPEC) --out DIR
                    [--key FILE | --tpm-key | --tpm-key-file FILE] [--grant FILE...] [--writ-audience AUD...]
                    [--jwt-audience AUD...] [--ek rsa2048|ecc384] [--ak ecc|rsa]
                    [--measure AGENT_PATH --measure-log FILE] [--event-log FILE] [--tpm-key]
                    (SPEC: /dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321)
  writ agent keygen --out DIR [--type ec-p256|ec-p384] [--tpm SPEC]
  writ grant create --server HOST:PORT --bundle FILE --token-file F [--token-type id_token|jwt]
                    --task-id ID --goal TEXT [--ttl D] --scope ACTION=RESOURCE...
                    [--boundary ACTION=RESOURCE...] [--escalate ACTION=RESOURCE...]
                    [--max-depth N] --delegate THUMBPRINT --out FILE
  writ grant delegate --writ F (--key F | --tpm SPEC --tpm-key-file F) --child THUMBPRINT
                      [--scope A=R...] [--boundary A=R...] [--escalate A=R...] [--ttl D] --out FILE
  writ policy push DIR | show [DIGEST] [--json] | list [--json] | decisions [--limit N] [--json]
  writ proof create --writ F (--key F | --tpm SPEC --tpm-key-file F) --audience A --method M [--ttl D]
  writ verify --bundle JWKS --audience A --writ F --proof F [--method M] [--deep]
              [--tpm-roots F...] [--tpm-intermediates F...] [--trust-domain TD]
              [--require-evidence T...] [--require-selector S...] [--max-policy-age D]
              [--require-principal-issuer ISS] [--replay-cache FILE]
              [--action A --resource R] [--at INSTANT] [--json]

Operator verbs reach the running server through --data-dir DIR (default ./.writ, or
WRIT_DATA_DIR) or --admin-socket PATH. Durations look like 90s, 5m, 1h.
`;

const adminOpts = {
  'data-dir': { type: 'string' },
  'admin-socket': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, positionals = 0) {
  try {
    const r = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: positionals > 0, strict: true });
    if (r.positionals.length > positionals) throw new UsageError(`unexpected argument ${r.positionals[positionals]}`);
    return r;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError((e as Error).message);
  }
}

function seconds(d: string | undefined, flag: string): number {
  if (d === undefined) return 0;
  try {
    return Math.round(parseDuration(d) / 1000);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

function printEntry(e: Entry): void {
  process.stdout.write(
    `${[
      `Entry ID      : ${e.id}`,
      `SPIFFE ID     : ${e.spiffeId}`,
      ...e.selectors.map((s) => `Selector      : ${s.type}:${s.value}`),
      `X509-SVID TTL : ${e.x509SvidTtl ? `${e.x509SvidTtl}s` : 'default'}`,
      `JWT-SVID TTL  : ${e.jwtSvidTtl ? `${e.jwtSvidTtl}s` : 'default'}`,
      ...(e.scopeCeiling.length ? [`Scope ceiling : ${e.scopeCeiling.join(', ')}`] : []),
      ...(e.hint ? [`Hint          : ${e.hint}`] : []),
      `Created       : ${new Date(Number(e.createdAt) * 1000).toISOString()}`,
      '',
    ].join('\n')}\n`,
  );
}

function entryJson(e: Entry): Record<string, unknown> {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    selectors: e.selectors.map((s) => `${s.type}:${s.value}`),
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    scope_ceiling: e.scopeCeiling,
    hint: e.hint,
    created_at: Number(e.createdAt),
  };
}

async function cmdServer(args: string[]): Promise<number> {
  const { values } = parse(args, {
    config: { type: 'string' },
    'data-dir': { type: 'string' },
    listen: { type: 'string' },
    'trust-domain': { type: 'string' },
    'admin-socket': { type: 'string' },
    'metrics-listen': { type: 'string' },
    'log-level': { type: 'string' },
  });
  if (values.help) return usage();
  const { raw, problems } = loadRawConfig(
    {
      config: values.config,
      dataDir: values['data-dir'],
      listen: values.listen,
      trustDomain: values['trust-domain'],
      adminSocket: values['admin-socket'],
      metricsListen: values['metrics-listen'],
      logLevel: values['log-level'],
    },
    process.env,
  );
  const settings = buildServerSettings(raw, problems);
  const server = await WritServer.start(settings);
  process.stderr.write(
    `\nwrit server is running for trust domain ${settings.trustDomain}\n` +
      `  public gRPC (TLS) : ${server.address}\n` +
      `  admin socket      : ${settings.adminSocket}\n` +
      `  trust bundle      : ${server.bundlePemPath} (SPIFFE JWKS: ${server.bundleJwksPath})\n` +
      (server.metricsPort ? `  metrics           : http://${settings.metricsListen!.host}:${server.metricsPort}/metrics\n` : '') +
      `\nNext, in another shell:\n` +
      `  ./bin/writ token create --data-dir ${settings.dataDir} --spiffe-id spiffe://${settings.trustDomain}/agent/demo\n` +
      `  ./bin/writ agent attest --server ${server.address} --bundle ${server.bundlePemPath} --join-token <TOKEN> --out ./svid\n\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.stop();
  return 0;
}

async function cmdEntry(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const env = process.env;
  switch (sub) {
    case 'create': {
      const { values } = parse(rest, {
        ...adminOpts,
        'spiffe-id': { type: 'string' },
        selector: { type: 'string', multiple: true },
        'x509-ttl': { type: 'string' },
        'jwt-ttl': { type: 'string' },
        scope: { type: 'string', multiple: true },
        hint: { type: 'string' },
        json: { type: 'boolean' },
      });
      if (values.help) return usage();
      const selectors = need(values.selector, '--selector').map((s) => {
        try {
          return parseSelector(s);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
      });
      const res = await adminCall<CreateEntryResponse>(
        adminSocketPath(values, env),
        AdminService,
        'createEntry',
        create(CreateEntryRequestSchema, {
          entry: {
            spiffeId: need(values['spiffe-id'], '--spiffe-id'),
            selectors,
            x509SvidTtl: seconds(values['x509-ttl'], '--x509-ttl'),
            jwtSvidTtl: seconds(values['jwt-ttl'], '--jwt-ttl'),
            scopeCeiling: values.scope ?? [],
            hint: values.hint ?? '',
          },
        }),
      );
      if (values.json) process.stdout.write(`${JSON.stringify(entryJson(res.entry!))}\n`);
      else printEntry(res.entry!);
      return 0;
    }
    case 'list': {
      const { values } = parse(rest, { ...adminOpts, json: { type: 'boolean' } });
      if (values.help) return usage();
      const res = await adminCall<ListEntriesResponse>(adminSocketPath(values, env), AdminService, 'listEntries', {});
      if (values.json) process.stdout.write(`${JSON.stringify(res.entries.map(entryJson))}\n`);
      else {
        process.stdout.write(`Found ${res.entries.length} ${res.entries.length === 1 ? 'entry' : 'entries'}\n\n`);
        res.entries.forEach(printEntry);
      }
      return 0;
    }
    case 'show': {
      const { values, positionals } = parse(rest, { ...adminOpts, json: { type: 'boolean' } }, 1);
      if (values.help) return usage();
      const res = await adminCall<GetEntryResponse>(adminSocketPath(values, env), AdminService, 'getEntry', { id: need(positionals[0], 'entry ID') });
      if (values.json) process.stdout.write(`${JSON.stringify(entryJson(res.entry!))}\n`);
      else printEntry(res.entry!);
      return 0;
    }
    case 'delete': {
      const { values, positionals } = parse(rest, adminOpts, 1);
      if (values.help) return usage();
      const id = need(positionals[0], 'entry ID');
      await adminCall(adminSocketPath(values, env), AdminService, 'deleteEntry', { id });
      process.stderr.write(`deleted entry ${id}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown entry command ${sub ?? '(none)'}; want create, list, show or delete`);
  }
}

async function cmdToken(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'create') throw new UsageError(`unknown token command ${sub ?? '(none)'}; want create`);
  const { values } = parse(rest, { ...adminOpts, 'spiffe-id': { type: 'string' }, ttl: { type: 'string' } });
  if (values.help) return usage();
  const res = await adminCall<CreateJoinTokenResponse>(adminSocketPath(values, process.env), AdminService, 'createJoinToken', {
    ttl: seconds(values.ttl, '--ttl'),
    spiffeId: values['spiffe-id'] ?? '',
  });
  process.stdout.write(`${res.token}\n`);
  process.stderr.write(
    `join token ${res.id} expires ${new Date(Number(res.expiresAt) * 1000).toISOString()}; selector join_token:${res.id}` +
      (res.entryId ? `; entry ${res.entryId} maps it to ${values['spiffe-id']}` : '') +
      '\n',
  );
  return 0;
}

async function cmdBundle(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'show') throw new UsageError(`unknown bundle command ${sub ?? '(none)'}; want show`);
  const { values } = parse(rest, { ...adminOpts, format: { type: 'string' } });
  if (values.help) return usage();
  const format = values.format ?? 'pem';
  if (format !== 'pem' && format !== 'jwks') throw new UsageError('--format must be pem or jwks');
  const res = await adminCall<GetBundleResponse>(adminSocketPath(values, process.env), BundleService, 'getBundle', {});
  process.stdout.write(format === 'pem' ? res.pem : res.jwks);
  return 0;
}

async function cmdAgent(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'keygen') {
    const { values } = parse(rest, { out: { type: 'string' }, type: { type: 'string' }, tpm: { type: 'string' } });
    if (values.help) return usage();
    return await agentKeygen(values);
  }
  if (sub !== 'attest') throw new UsageError(`unknown agent command ${sub ?? '(none)'}; want attest or keygen`);
  const { values } = parse(rest, {
    key: { type: 'string' },
    'tpm-key-file': { type: 'string' },
    grant: { type: 'string', multiple: true },
    'writ-audience': { type: 'string', multiple: true },
    server: { type: 'string' },
    bundle: { type: 'string' },
    'join-token': { type: 'string' },
    tpm: { type: 'string' },
    ek: { type: 'string' },
    ak: { type: 'string' },
    measure: { type: 'string' },
    'measure-log': { type: 'string' },
    'event-log': { type: 'string' },
    'tpm-key': { type: 'boolean' },
    out: { type: 'string' },
    'jwt-audience': { type: 'string', multiple: true },
  });
  if (values.help) return usage();
  const server = need(values.server, '--server');
  const bundlePem = readFileSync(need(values.bundle, '--bundle'), 'utf8');
  const out = need(values.out, '--out');
  const token = values['join-token'];
  if ((token === undefined) === (values.tpm === undefined)) throw new UsageError('give exactly one of --join-token and --tpm');
  if (values.ek !== undefined && values.ek !== 'rsa2048' && values.ek !== 'ecc384') throw new UsageError('--ek must be rsa2048 or ecc384');
  if (values.ak !== undefined && values.ak !== 'ecc' && values.ak !== 'rsa') throw new UsageError('--ak must be ecc or rsa');
  if (values['tpm-key'] && values.tpm === undefined) throw new UsageError('--tpm-key needs --tpm');
  // A software key is generated (and written) only when neither --key nor --tpm-key names one.
  if ([values['tpm-key'], values.key, values['tpm-key-file']].filter((x) => x !== undefined && x !== false).length > 1)
    throw new UsageError('--tpm-key, --tpm-key-file and --key are exclusive');
  if (values['tpm-key-file'] && values.tpm === undefined) throw new UsageError('--tpm-key-file needs --tpm');
  const grants = readGrantFiles(values.grant ?? []);
  if (values['writ-audience'] && grants.length === 0) throw new UsageError('--writ-audience needs --grant');
  const privateKey = values.key ? readPrivateKey(values.key) : generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const publicKey = createPublicKey(privateKey);
  const common: { server: string; bundlePem: string; publicKey: Buffer; jwtAudiences: string[]; grants: string[]; writAudiences: string[] } = {
    server,
    bundlePem,
    publicKey: publicKey.export({ type: 'spki', format: 'der' }),
    jwtAudiences: values['jwt-audience'] ?? [],
    grants,
    writAudiences: values['writ-audience'] ?? [],
  };
  let res;
  let residentBlob: string | undefined;
  if (token !== undefined) {
    res = await attest({ ...common, evidenceType: 'join_token', respond: () => Buffer.from(token) });
  } else {
    const tpm = await Tpm.open(values.tpm!);
    if ((values.measure === undefined) !== (values['measure-log'] === undefined)) throw new UsageError('--measure and --measure-log go together');
    const attestor = new TpmAttestor(tpm, {
      ...(values.ek ? { ek: values.ek as 'rsa2048' } : {}),
      ...(values.ak ? { ak: values.ak as 'ecc' } : {}),
      ...(values.measure ? { measure: { path: values.measure, logFile: values['measure-log']! } } : {}),
      ...(values['event-log'] ? { eventLog: readFileSync(values['event-log']) } : {}),
    });
    try {
      if (values['tpm-key']) {
        const k = await attestor.createResidentKey();
        common.publicKey = k.spki;
        residentBlob = residentBlobText(k);
      } else if (values['tpm-key-file']) {
        const blob = readResidentBlob(values['tpm-key-file']);
        common.publicKey = await attestor.loadResidentKey(blob.public, blob.private);
      }
      res = await attest({ ...common, evidenceType: 'tpm', respond: (c) => attestor.respond(c) });
    } finally {
      await attestor.close();
      await tpm.close();
    }
  }
  mkdirSync(out, { recursive: true, mode: 0o700 });
  // A TPM-resident key never leaves the TPM: only its wrapped blob (loadable by this TPM alone) is written.
  if (residentBlob) writeFileSync(join(out, 'svid.key.tpm'), residentBlob, { mode: 0o600 });
  else if (!values.key && !values['tpm-key-file'])
    writeFileSync(join(out, 'svid.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  if (grants.length) {
    if (!res.writ) throw new Error('the issuer returned no writ for the grant chain');
    // The writ must be bound to the key we hold; refuse to store one that is not.
    const sent = createPublicKey({ key: common.publicKey, format: 'der', type: 'spki' });
    if (parseWrit(res.writ).claims.cnf.jkt !== jwkThumbprint(sent)) throw new Error('the issued writ is bound to another key');
    writeFileSync(join(out, 'writ.jws'), `${res.writ}\n`, { mode: 0o600 });
  }
  writeFileSync(join(out, 'svid.pem'), res.svidChain.map((c) => encodePem('CERTIFICATE', c)).join(''));
  writeFileSync(join(out, 'bundle.pem'), res.bundlePem);
  writeFileSync(join(out, 'bundle.jwks'), res.bundleJwks);
  if (res.jwtSvids.length) writeFileSync(join(out, 'jwt-svid.txt'), `${res.jwtSvids.map((j) => j.token).join('\n')}\n`, { mode: 0o600 });
  process.stdout.write(`${res.spiffeId}\n`);
  return 0;
}

async function cmdTpm(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'check-quote') throw new UsageError(`unknown tpm command ${sub ?? '(none)'}; want check-quote`);
  const { values } = parse(rest, {
    'ak-pub': { type: 'string' },
    attest: { type: 'string' },
    sig: { type: 'string' },
    pcrs: { type: 'string' },
    'pcr-selection': { type: 'string' },
    nonce: { type: 'string' },
    'ek-cert': { type: 'string' },
    'ek-pub': { type: 'string' },
    roots: { type: 'string' },
    intermediates: { type: 'string' },
    eventlog: { type: 'string' },
  });
  if (values.help) return usage();
  const nonceHex = need(values.nonce, '--nonce');
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(nonceHex)) throw new UsageError('--nonce must be hex');
  let selection;
  try {
    selection = parsePcrSelectionSpec(need(values['pcr-selection'], '--pcr-selection'));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const ekGiven = [values['ek-cert'], values['ek-pub'], values.roots].filter((v) => v !== undefined).length;
  if (ekGiven !== 0 && ekGiven !== 3) throw new UsageError('--ek-cert, --ek-pub and --roots go together');
  const report = checkQuoteOffline({
    akPublic: readFileSync(need(values['ak-pub'], '--ak-pub')),
    attest: readFileSync(need(values.attest, '--attest')),
    signature: readFileSync(need(values.sig, '--sig')),
    pcrValues: readFileSync(need(values.pcrs, '--pcrs')),
    selection,
    nonce: Buffer.from(nonceHex, 'hex'),
    ...(values.eventlog ? { eventLog: readFileSync(values.eventlog) } : {}),
    ...(ekGiven === 3
      ? {
          ek: {
            certificate: certificatesInFile(values['ek-cert']!)[0]!,
            public: readFileSync(values['ek-pub']!),
            roots: certificatesInFile(values.roots!),
            intermediates: values.intermediates ? certificatesInFile(values.intermediates) : [],
            at: new Date(),
          },
        }
      : {}),
  });
  process.stdout.write(`${report.checks.map((c) => `ok       ${c}`).join('\n')}\n`);
  process.stdout.write(`${report.notChecked.map((c) => `unchecked ${c}`).join('\n')}\n`);
  return 0;
}

async function cmdGrant(args: string[]): Promise<number> {
  const [sub, ...raw] = args;
  const rest = bindValues(raw, ['--delegate', '--child']);
  const perm = { type: 'string', multiple: true } as const;
  if (sub === 'create') {
    const { values } = parse(rest, {
      server: { type: 'string' },
      bundle: { type: 'string' },
      'token-file': { type: 'string' },
      'token-type': { type: 'string' },
      'task-id': { type: 'string' },
      goal: { type: 'string' },
      ttl: { type: 'string' },
      scope: perm,
      boundary: perm,
      escalate: perm,
      'max-depth': { type: 'string' },
      delegate: { type: 'string' },
      out: { type: 'string' },
    });
    if (values.help) return usage();
    return grantCreate(values);
  }
  if (sub === 'delegate') {
    const { values } = parse(rest, {
      writ: { type: 'string' },
      key: { type: 'string' },
      tpm: { type: 'string' },
      'tpm-key-file': { type: 'string' },
      child: { type: 'string' },
      scope: perm,
      boundary: perm,
      escalate: perm,
      ttl: { type: 'string' },
      out: { type: 'string' },
    });
    if (values.help) return usage();
    return grantDelegate(values, new Date());
  }
  throw new UsageError(`unknown grant command ${sub ?? '(none)'}; want create or delegate`);
}

async function cmdPolicy(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(
    rest,
    { json: { type: 'boolean' }, limit: { type: 'string' }, 'data-dir': { type: 'string' }, 'admin-socket': { type: 'string' } },
    1,
  );
  if (values.help) return usage();
  return policyCommand(sub, positionals, values, adminSocketPath(values, process.env));
}

async function cmdProof(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'create') throw new UsageError(`unknown proof command ${sub ?? '(none)'}; want create`);
  const { values } = parse(rest, {
    writ: { type: 'string' },
    key: { type: 'string' },
    tpm: { type: 'string' },
    'tpm-key-file': { type: 'string' },
    audience: { type: 'string' },
    method: { type: 'string' },
    ttl: { type: 'string' },
  });
  if (values.help) return usage();
  return proofCreate(values, new Date());
}

function cmdVerify(args: string[]): number {
  const many = { type: 'string', multiple: true } as const;
  const { values } = parse(args, {
    bundle: { type: 'string' },
    audience: { type: 'string' },
    writ: { type: 'string' },
    proof: { type: 'string' },
    method: { type: 'string' },
    deep: { type: 'boolean' },
    json: { type: 'boolean' },
    'tpm-roots': many,
    'tpm-intermediates': many,
    'trust-domain': { type: 'string' },
    'require-evidence': many,
    'require-selector': many,
    'max-policy-age': { type: 'string' },
    'require-principal-issuer': { type: 'string' },
    'replay-cache': { type: 'string' },
    action: { type: 'string' },
    resource: { type: 'string' },
    at: { type: 'string' },
  });
  if (values.help) return usage();
  const at = values.at === undefined ? new Date() : new Date(values.at);
  if (Number.isNaN(at.getTime())) throw new UsageError('--at must be an ISO 8601 instant, e.g. 2026-11-23T10:00:00Z');
  return verifyCommand(values, at);
}

function usage(): number {
  process.stdout.write(USAGE);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'server':
        return await cmdServer(rest);
      case 'entry':
        return await cmdEntry(rest);
      case 'token':
        return await cmdToken(rest);
      case 'bundle':
        return await cmdBundle(rest);
      case 'agent':
        return await cmdAgent(rest);
      case 'tpm':
        return await cmdTpm(rest);
      case 'grant':
        return await cmdGrant(rest);
      case 'policy':
        return await cmdPolicy(rest);
      case 'proof':
        return await cmdProof(rest);
      case 'verify':
        return cmdVerify(rest);
      case '--version':
      case 'version':
        process.stdout.write(`writ ${VERSION}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return usage();
      default:
        throw new UsageError(`unknown command ${cmd}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`writ: ${e.message}\nRun 'writ help' for usage.\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`writ: invalid configuration: ${e.problems.join('; ')}\n`);
      return 1;
    }
    const msg = e instanceof GrpcCallError ? e.details : isWritError(e) ? e.message : ((e as Error)?.message ?? String(e));
    process.stderr.write(`writ: ${msg.replace(/\s*\n\s*/g, ' ')}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`writ: ${(e as Error).message}\n`);
    process.exitCode = 1;
  },
);
