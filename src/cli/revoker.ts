/**
 * Who revokes, for `writ revoke` and `writ task end`: the operator on the admin socket (no
 * credential), or over the public port a principal with its OIDC token, or a delegating agent
 * with its writ and key (a proof of possession for the issuer's trust domain ID and the Revoke
 * method, made here and used once).
 */
import { readInputFile } from '../config/files.js';
import { stringOption, UsageError, type OptionSpecs, type OptionValues } from '../config/options.js';
import { bundleTrustDomain, checkServerAddress } from '../agent/attest-client.js';
import { proveWrit } from '../agent/delegate.js';
import { revokeRemote } from '../agent/grant-client.js';
import { keyOptions, openAgentKey } from '../agent/keys.js';
import type { RevokeResponse } from '../gen/writ/v1/revocation_pb.js';
import { revokeMethod } from '../writ/proof-methods.js';
import { trustDomainId } from '../spiffe/id.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from './admin-client.js';
import type { CliCatalog, VerbContext } from './verb.js';

/** The options of a principal on the public port. */
export const PRINCIPAL_OPTIONS: OptionSpecs = {
  server: { type: 'string', value: 'HOST:PORT', help: "the issuer's public port (instead of the admin socket)" },
  bundle: { type: 'string', value: 'FILE', help: "the issuer's trust bundle, PEM (with --server)" },
  'token-file': { type: 'string', value: 'F', help: 'as a principal: a file holding its ID token (or JWT)' },
  'token-type': { type: 'string', value: 'id_token|jwt', help: 'the RFC 8693 token type (default id_token)' },
};

export const REASON_OPTION: OptionSpecs = {
  reason: { type: 'string', value: 'TEXT', help: 'why, for the audit log and relying parties (at most 512 bytes)' },
};

/** Operator, principal and agent options. */
export function revokerOptions(catalog: CliCatalog): OptionSpecs {
  return {
    ...REASON_OPTION,
    ...ADMIN_OPTIONS,
    ...PRINCIPAL_OPTIONS,
    writ: { type: 'string', value: 'F', help: 'as a delegating agent: its writ (with its key)' },
    ...keyOptions(catalog.producers),
  };
}

export const REVOKER_NOTE =
  'as the operator: the admin socket (--data-dir or --admin-socket); as a principal: --server --bundle --token-file; as a delegating agent: --server --bundle --writ and its key';

function principalCredential(values: OptionValues) {
  const tokenType = stringOption(values, 'token-type') ?? 'id_token';
  if (tokenType !== 'id_token' && tokenType !== 'jwt') throw new UsageError('--token-type must be id_token or jwt');
  const token = readInputFile(stringOption(values, 'token-file')!, '--token-file').toString('utf8').trim();
  return { case: 'principal' as const, value: { subjectToken: token, subjectTokenType: `urn:ietf:params:oauth:token-type:${tokenType}` } };
}

/**
 * Sends one revocation as whoever the options name. `allowAgent` is false for verbs an agent
 * may not use (ending a task).
 */
export async function revokeAs(ctx: VerbContext, kind: string, target: string, allowAgent = true): Promise<RevokeResponse> {
  const { values, env, catalog } = ctx;
  const reason = stringOption(values, 'reason') ?? '';
  const server = stringOption(values, 'server');
  if (!server) {
    for (const f of ['bundle', 'token-file', 'token-type', 'writ']) {
      if (stringOption(values, f) !== undefined) throw new UsageError(`--${f} needs --server (the admin socket takes no credential)`);
    }
    return adminClients(adminSocketPath(values, env)).revocation.revoke({ kind, target, reason });
  }
  for (const f of ['data-dir', 'admin-socket']) {
    if (stringOption(values, f) !== undefined) throw new UsageError(`--${f} and --server exclude each other`);
  }
  const bundleFile = stringOption(values, 'bundle');
  if (!bundleFile) throw new UsageError('--server needs --bundle');
  const bundlePem = readInputFile(bundleFile, '--bundle').toString('utf8');
  const addr = checkServerAddress(server);
  const asPrincipal = stringOption(values, 'token-file') !== undefined;
  const writFile = stringOption(values, 'writ');
  if (asPrincipal === (writFile !== undefined)) {
    throw new UsageError(
      allowAgent
        ? 'with --server give exactly one of --token-file (a principal) and --writ with its key (an agent)'
        : 'with --server give --token-file (the principal)',
    );
  }
  if (asPrincipal) return revokeRemote(addr, bundlePem, { kind, target, reason, credential: principalCredential(values) });
  if (!allowAgent) throw new UsageError('an agent may not do this; give --token-file (the principal)');
  const writ = readInputFile(writFile!, '--writ').toString('utf8').trim();
  const opened = await openAgentKey(values, catalog.producers);
  let proof: string;
  try {
    proof = await proveWrit(writ, opened.key.signer, {
      audience: trustDomainId(bundleTrustDomain(bundlePem)),
      method: revokeMethod(kind, target),
      now: ctx.now(),
    });
  } finally {
    await opened.close();
  }
  return revokeRemote(addr, bundlePem, { kind, target, reason, credential: { case: 'agent', value: { writ, proof } } });
}

/** "revoked task t-1 (revocation 7), 3 live writs killed" */
export function revokedLine(kind: string, target: string, r: RevokeResponse): string {
  const n = r.writs;
  return `revoked ${kind} ${target} (revocation ${r.sequence}, ${new Date(Number(r.at)).toISOString()}); ${n} live writ${n === 1 ? '' : 's'} killed\n`;
}
