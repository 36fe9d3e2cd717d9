/**
 * CLI verbs of the writ itself: agent keys, grants, policies, proofs and offline
 * verification. argv → library calls; no domain logic here.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { jwkThumbprint } from '../jose/jws.js';
import { delegateGrantWith } from '../delegation/grant.js';
import { keySigner, type JwsSigner } from '../jose/jws.js';
import { Tpm } from '../tpm/client.js';
import { TpmAttestor } from '../agent/tpm-attestor.js';
import { parsePermissionFlag } from '../delegation/scope.js';
import { parseSpiffeBundle } from '../spiffe/bundle.js';
import { trustDomainId } from '../spiffe/id.js';
import { parseCertificate } from '../x509/certificate.js';
import { builtinReverifiers } from '../attestation/builtins.js';
import { certificatesInFile } from '../config/files.js';
import { parseDuration } from '../config/duration.js';
import { createProofWith, ProofReplayCache } from '../writ/proof.js';
import { authorize, verifyWrit, type WritRequirements } from '../writ/verify.js';
import { parseWrit } from '../writ/writ.js';
import { isWritError } from '../errors.js';
import { createGrant } from '../agent/grant-client.js';
import { adminCall } from './admin-client.js';
import { UsageError, need } from './args.js';
import {
  AdminService,
  type GetPolicyResponse,
  type ListDecisionsResponse,
  type ListPoliciesResponse,
  type PushPolicyResponse,
} from '../gen/writ/v1/admin_pb.js';

/** Reads a private key file (PKCS#8 PEM). */
export function readPrivateKey(file: string): KeyObject {
  return createPrivateKey(readFileSync(file));
}

/** Reads grant files: each holds one or more compact JWS, one per line, root first. */
export function readGrantFiles(files: readonly string[]): string[] {
  return files.flatMap((f) =>
    readFileSync(f, 'utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== ''),
  );
}

const writeAtomic = (file: string, text: string, mode = 0o644) => {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, file);
};

/**
 * Runs `fn` with the writ key: a PKCS#8 file (`--key`), or a TPM-resident key (`--tpm SPEC
 * --tpm-key svid.key.tpm`, as `writ agent attest --tpm-key` wrote it) signing inside the TPM.
 */
export async function withSigner<T>(values: { key?: string; tpm?: string; 'tpm-key-file'?: string }, fn: (s: JwsSigner) => Promise<T>): Promise<T> {
  if ((values.key === undefined) === (values['tpm-key-file'] === undefined)) throw new UsageError('give exactly one of --key and --tpm-key-file');
  if (values.key) return fn(keySigner(readPrivateKey(values.key)));
  const blob = readResidentBlob(values['tpm-key-file']!);
  const tpm = await Tpm.open(need(values.tpm, '--tpm'));
  const attestor = new TpmAttestor(tpm);
  try {
    await attestor.loadResidentKey(blob.public, blob.private);
    return await fn(attestor.residentSigner());
  } finally {
    await attestor.close();
    await tpm.close();
  }
}

/** The wrapped TPM-resident key (loadable by its TPM alone) as `writ agent keygen --tpm` writes it. */
export function readResidentBlob(file: string): { public: Buffer; private: Buffer } {
  const blob = JSON.parse(readFileSync(file, 'utf8')) as { public?: string; private?: string };
  if (typeof blob.public !== 'string' || typeof blob.private !== 'string')
    throw new UsageError(`${file} is not a TPM key blob (writ agent keygen --tpm writes one)`);
  return { public: Buffer.from(blob.public, 'base64'), private: Buffer.from(blob.private, 'base64') };
}

export const residentBlobText = (k: { public: Buffer; private: Buffer }): string =>
  `${JSON.stringify({ parent: 'srk:ecc-p256', public: k.public.toString('base64'), private: k.private.toString('base64') })}\n`;

/**
 * `writ agent keygen --out DIR [--type ec-p256|ec-p384] [--tpm SPEC]`: prints the key's RFC
 * 7638 thumbprint. With --tpm the key is made inside the TPM (never exportable) and only its
 * wrapped blob is written.
 */
export async function agentKeygen(values: { out?: string; type?: string; tpm?: string }): Promise<number> {
  const out = need(values.out, '--out');
  const type = values.type ?? 'ec-p256';
  if (type !== 'ec-p256' && type !== 'ec-p384') throw new UsageError('--type must be ec-p256 or ec-p384');
  if (values.tpm && type !== 'ec-p256') throw new UsageError('TPM-resident keys are ec-p256');
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const keyFile = join(out, values.tpm ? 'agent.key.tpm' : 'agent.key');
  if (existsSync(keyFile)) throw new UsageError(`${keyFile} exists; refusing to overwrite a key`);
  const publicKey = values.tpm ? await residentKeygen(values.tpm, keyFile) : softwareKeygen(type, keyFile);
  writeFileSync(join(out, 'agent.pub'), publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const jkt = jwkThumbprint(publicKey);
  writeFileSync(join(out, 'agent.jkt'), `${jkt}\n`);
  process.stdout.write(`${jkt}\n`);
  return 0;
}

/** A PKCS#8 key written to `keyFile` (0600, never over an existing file); returns its public key. */
function softwareKeygen(type: 'ec-p256' | 'ec-p384', keyFile: string): KeyObject {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: type === 'ec-p256' ? 'prime256v1' : 'secp384r1' });
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600, flag: 'wx' });
  return publicKey;
}

/** A key made inside the TPM under the SRK; only its wrapped blob is written. Returns its public key. */
async function residentKeygen(spec: string, keyFile: string): Promise<KeyObject> {
  const tpm = await Tpm.open(spec);
  const attestor = new TpmAttestor(tpm);
  try {
    writeFileSync(keyFile, residentBlobText(await attestor.createResidentKey()), { mode: 0o600, flag: 'wx' });
    return attestor.residentSigner().publicKey;
  } finally {
    await attestor.close();
    await tpm.close();
  }
}

/** `writ grant create ...`: a root grant from the issuer, for a principal's OIDC token. */
export async function grantCreate(values: Record<string, string | string[] | boolean | undefined>): Promise<number> {
  const tokenType = (values['token-type'] as string | undefined) ?? 'id_token';
  if (tokenType !== 'id_token' && tokenType !== 'jwt') throw new UsageError('--token-type must be id_token or jwt');
  const perms = (flag: string) => ((values[flag] as string[] | undefined) ?? []).map(parsePermissionFlag);
  const ttl = values.ttl as string | undefined;
  const maxDepth = values['max-depth'] === undefined ? 0 : Number(values['max-depth']);
  if (!Number.isInteger(maxDepth) || maxDepth < 0) throw new UsageError('--max-depth must be a non-negative integer');
  const res = await createGrant(
    need(values.server as string | undefined, '--server'),
    readFileSync(need(values.bundle as string | undefined, '--bundle'), 'utf8'),
    {
      subjectToken: readFileSync(need(values['token-file'] as string | undefined, '--token-file'), 'utf8').trim(),
      subjectTokenType: `urn:ietf:params:oauth:token-type:${tokenType}`,
      taskId: need(values['task-id'] as string | undefined, '--task-id'),
      goal: need(values.goal as string | undefined, '--goal'),
      ttlSeconds: ttl ? Math.round(parseDuration(ttl) / 1000) : 0,
      scope: perms('scope'),
      boundaries: perms('boundary'),
      escalate: perms('escalate'),
      maxDepth,
      delegateJkt: need(values.delegate as string | undefined, '--delegate'),
    },
  );
  writeAtomic(need(values.out as string | undefined, '--out'), `${res.grant}\n`);
  process.stdout.write(
    `grant ${res.grantId} for ${res.principalIss}#${res.principalSub}, task ends ${new Date(Number(res.expiresAt) * 1000).toISOString()}, policy ${res.policySnapshot.slice(0, 16)} (${res.policies.join(', ')})\n`,
  );
  return 0;
}

/** `writ grant delegate --writ F (--key F | --tpm SPEC --tpm-key-file F) --child JKT ...`: a hop grant signed by this agent's key. */
export async function grantDelegate(values: Record<string, string | string[] | boolean | undefined>, now: Date): Promise<number> {
  const writ = parseWrit(readFileSync(need(values.writ as string | undefined, '--writ'), 'utf8').trim()).claims;
  const perms = (flag: string) => ((values[flag] as string[] | undefined) ?? []).map(parsePermissionFlag);
  const scope = perms('scope');
  const ttl = values.ttl as string | undefined;
  const nowS = Math.floor(now.getTime() / 1000);
  const hop = await withSigner(values as { key?: string; tpm?: string; 'tpm-key-file'?: string }, async (signer) => {
    if (jwkThumbprint(signer.publicKey) !== writ.cnf.jkt) throw new UsageError('the key is not the one this writ is bound to (cnf)');
    return delegateGrantWith(writ.grants[writ.grants.length - 1]!, signer, {
      childJkt: need(values.child as string | undefined, '--child'),
      ...(scope.length ? { scope } : {}),
      boundaries: perms('boundary'),
      escalate: perms('escalate'),
      ...(ttl ? { exp: nowS + Math.round(parseDuration(ttl) / 1000) } : {}),
      now: nowS,
      from: { sub: writ.sub, writ: writ.jti },
    });
  });
  writeAtomic(need(values.out as string | undefined, '--out'), `${[...writ.grants, hop].join('\n')}\n`);
  process.stdout.write(`delegated to ${values.child as string} at depth ${writ.grants.length} (chain of ${writ.grants.length + 1} grants)\n`);
  return 0;
}

/** `writ policy push|show|list|decisions` over the admin socket. */
export async function policyCommand(sub: string | undefined, positionals: string[], values: Record<string, unknown>, socket: string): Promise<number> {
  const json = values.json === true;
  switch (sub) {
    case 'push': {
      const dir = need(positionals[0], 'DIR');
      const names = readdirSync(dir)
        .filter((n) => n.endsWith('.cedar'))
        .sort();
      if (names.length === 0) throw new UsageError(`${dir} holds no .cedar files`);
      const files = names.map((n) => ({ name: basename(n), text: readFileSync(join(dir, n), 'utf8') }));
      const r = await adminCall<PushPolicyResponse>(socket, AdminService, 'pushPolicy', { files });
      process.stdout.write(json ? `${JSON.stringify({ digest: r.digest, created: r.created, policies: r.policies })}\n` : `${r.digest}\n`);
      return 0;
    }
    case 'show': {
      const r = await adminCall<GetPolicyResponse>(socket, AdminService, 'getPolicy', { digest: positionals[0] ?? '' });
      if (json) {
        process.stdout.write(
          `${JSON.stringify({ digest: r.digest, createdAt: Number(r.createdAt), active: r.active, policies: r.policies.map((p) => ({ id: p.id, effect: p.effect, escalate: p.escalate || undefined, text: p.text })) }, null, 2)}\n`,
        );
      } else {
        process.stdout.write(`# snapshot ${r.digest}${r.active ? ' (active)' : ''}, created ${new Date(Number(r.createdAt) * 1000).toISOString()}\n`);
        for (const p of r.policies) process.stdout.write(`\n// ${p.id}\n${p.text}\n`);
      }
      return 0;
    }
    case 'list': {
      const r = await adminCall<ListPoliciesResponse>(socket, AdminService, 'listPolicies', {});
      if (json)
        process.stdout.write(
          `${JSON.stringify(r.snapshots.map((s) => ({ digest: s.digest, createdAt: Number(s.createdAt), policies: s.policies, active: s.active })))}\n`,
        );
      else
        for (const s of r.snapshots)
          process.stdout.write(`${s.digest}  ${new Date(Number(s.createdAt) * 1000).toISOString()}  ${s.policies} policies${s.active ? '  active' : ''}\n`);
      return 0;
    }
    case 'decisions': {
      const r = await adminCall<ListDecisionsResponse>(socket, AdminService, 'listDecisions', { limit: Number(values.limit ?? 50) });
      for (const d of r.decisions) {
        const line = {
          at: new Date(Number(d.at)).toISOString(),
          actor: d.actor,
          principal: d.principal,
          action: d.action,
          decision: d.decision,
          snapshot: d.snapshot,
          policies: d.policies,
          reason: d.reason,
        };
        process.stdout.write(
          json
            ? `${JSON.stringify(line)}\n`
            : `${line.at} ${d.decision.padEnd(8)} ${d.actor} for ${d.principal}: ${d.action} (${d.policies.join(', ') || '-'}) ${d.reason}\n`,
        );
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown policy command ${sub ?? '(none)'}; want push, show, list or decisions`);
  }
}

/** `writ proof create --writ F (--key F | --tpm SPEC --tpm-key-file F) --audience A --method M [--ttl D]`. */
export async function proofCreate(
  values: { writ?: string; key?: string; tpm?: string; 'tpm-key-file'?: string; audience?: string; method?: string; ttl?: string },
  now: Date,
): Promise<number> {
  const writ = readFileSync(need(values.writ, '--writ'), 'utf8').trim();
  const req = {
    audience: need(values.audience, '--audience'),
    method: need(values.method, '--method'),
    now,
    ...(values.ttl ? { lifetimeS: Math.round(parseDuration(values.ttl) / 1000) } : {}),
  };
  const proof = await withSigner(values, (signer) => createProofWith(writ, signer, req));
  process.stdout.write(`${proof}\n`);
  return 0;
}

/** The trust domain a SPIFFE bundle document's X.509 authorities name. */
function bundleTrustDomain(jwks: string): string | undefined {
  const doc = JSON.parse(jwks) as { keys?: Array<{ use?: string; x5c?: string[] }> };
  for (const k of doc.keys ?? []) {
    if (k.use !== 'x509-svid' || !k.x5c?.[0]) continue;
    const uri = parseCertificate(Buffer.from(k.x5c[0], 'base64')).uris.find((u) => u.startsWith('spiffe://'));
    if (uri) return new URL(uri).host;
  }
  return undefined;
}

/** A proof replay cache persisted in a file, so replays across invocations are caught. */
function fileCache(file: string | undefined, now: number): { cache: ProofReplayCache; save: () => void } {
  const cache = new ProofReplayCache();
  if (!file) return { cache, save: () => {} };
  const entries: Record<string, number> = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>) : {};
  for (const [id, exp] of Object.entries(entries)) if (exp > now) cache.checkAndRecord(id, exp, now);
  return {
    cache,
    save: () => {
      writeAtomic(file, JSON.stringify(Object.fromEntries(cache.entries())), 0o600);
    },
  };
}

/** `writ verify ...`: exit 0 only when the writ and its proof are valid. */
export function verifyCommand(values: Record<string, string | string[] | boolean | undefined>, now: Date): number {
  const jwks = readFileSync(need(values.bundle as string | undefined, '--bundle'), 'utf8');
  const td = (values['trust-domain'] as string | undefined) ?? bundleTrustDomain(jwks);
  if (!td) throw new UsageError('--trust-domain is required: the bundle names no SPIFFE trust domain');
  const bundle = parseSpiffeBundle(td, jwks);
  const roots = ((values['tpm-roots'] as string[] | undefined) ?? []).flatMap(certificatesInFile);
  const intermediates = ((values['tpm-intermediates'] as string[] | undefined) ?? []).flatMap(certificatesInFile);
  const maxAge = values['max-policy-age'] as string | undefined;
  const requirements: WritRequirements = {
    ...(values['require-evidence'] ? { evidenceTypes: values['require-evidence'] as string[] } : {}),
    ...(values['require-selector'] ? { selectors: values['require-selector'] as string[] } : {}),
    ...(maxAge ? { maxPolicyAgeSeconds: Math.round(parseDuration(maxAge) / 1000) } : {}),
    ...(values['require-principal-issuer'] ? { principalIssuer: values['require-principal-issuer'] as string } : {}),
  };
  const nowS = Math.floor(now.getTime() / 1000);
  const { cache, save } = fileCache(values['replay-cache'] as string | undefined, nowS);
  const json = values.json === true;
  const action = values.action as string | undefined;
  const resource = values.resource as string | undefined;
  if ((action === undefined) !== (resource === undefined)) throw new UsageError('--action and --resource go together');
  try {
    const v = verifyWrit({
      writ: readFileSync(need(values.writ as string | undefined, '--writ'), 'utf8').trim(),
      proof: readFileSync(need(values.proof as string | undefined, '--proof'), 'utf8').trim(),
      trust: { issuer: trustDomainId(td), writKeys: bundle.writAuthorities ?? new Map() },
      audience: need(values.audience as string | undefined, '--audience'),
      ...(values.method ? { method: values.method as string } : {}),
      now,
      level: values.deep ? 'deep' : 'standard',
      replayCache: cache,
      requirements,
      reverifiers: builtinReverifiers(),
      hardware: new Map([['tpm', { roots, intermediates }]]),
    });
    save();
    const authz = action ? authorize(v, action, resource!) : undefined;
    const report = {
      valid: true,
      level: v.level,
      spiffeId: v.spiffeId,
      principal: v.principal,
      chain: v.chain,
      task: v.task,
      lineage: v.lineage,
      expiresAt: v.expiresAt,
      evidenceType: v.evidenceType,
      selectors: v.selectors,
      policy: v.policy,
      constraints: v.constraints,
      checks: v.checks,
      ...(authz ? { authorization: { action, resource, ...authz } } : {}),
    };
    if (json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      process.stdout.write(`valid (${v.level}): ${v.chain.join(' -> ')}\ntask ${v.task.id}: ${v.task.goal}\n`);
      for (const c of v.checks) process.stdout.write(`  [${c.by === 'verifier' ? 'checked' : 'issuer '}] ${c.check}\n`);
      if (authz) process.stdout.write(`${action} on ${resource}: ${authz.decision}\n`);
    }
    return authz && authz.decision !== 'allow' ? 1 : 0;
  } catch (e) {
    if (!isWritError(e)) throw e;
    save();
    if (json) process.stdout.write(`${JSON.stringify({ valid: false, code: e.code, error: e.message }, null, 2)}\n`);
    else process.stderr.write(`writ: invalid: ${e.message}\n`);
    return 1;
  }
}
