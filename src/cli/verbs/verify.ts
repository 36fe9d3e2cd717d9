/** `writ verify`: relying-party verification of a writ and its proof, offline, against the SPIFFE bundle. */
import { EvidenceCatalog } from '../../attestation/catalog.js';
import { parseDuration } from '../../config/duration.js';
import { readInputFile } from '../../config/files.js';
import { listOption, stringOption, UsageError, type OptionSpecs } from '../../config/options.js';
import { isWritError } from '../../errors.js';
import { parseSpiffeBundle, X509_SVID_USE } from '../../spiffe/bundle.js';
import { trustDomainId } from '../../spiffe/id.js';
import { parseCertificate } from '../../x509/certificate.js';
import { authorize, verifyWrit, type WritRequirements } from '../../writ/verify.js';
import { withReplayFile } from '../replay-file.js';
import { STATUS_LIST_OPTIONS, statusListRevocation } from '../status-list-option.js';
import { openWatchOption, WATCH_OPTIONS } from '../watch-option.js';
import { required, type CliCatalog, type Verb } from '../verb.js';

const CORE: OptionSpecs = {
  bundle: { type: 'string', value: 'JWKS', help: "the issuer's SPIFFE bundle, JWKS (bundle.jwks, or `writ bundle show --format jwks`)" },
  audience: { type: 'string', value: 'A', help: 'this relying party (the proof must be for it)' },
  writ: { type: 'string', value: 'F', help: 'the writ presented' },
  proof: { type: 'string', value: 'F', help: 'its proof of possession' },
  method: { type: 'string', value: 'M', help: 'the method the proof must be for' },
  deep: { type: 'boolean', help: 'also check every grant signature and re-verify the embedded evidence against your roots' },
  'trust-domain': { type: 'string', value: 'TD', help: "the issuer's trust domain (default: the one the bundle names)" },
  'require-evidence': { type: 'string', multiple: true, value: 'T', help: 'accept only these evidence types' },
  'require-selector': { type: 'string', multiple: true, value: 'S', help: 'require this selector' },
  'max-policy-age': { type: 'string', value: 'D', help: 'refuse policy snapshots older than this' },
  'require-principal-issuer': { type: 'string', value: 'ISS', help: "the principal's OIDC issuer must be this" },
  'replay-cache': { type: 'string', value: 'FILE', help: 'remember proof ids across runs in this file' },
  action: { type: 'string', value: 'A', help: 'also decide this action (with --resource)' },
  resource: { type: 'string', value: 'R', help: 'on this resource' },
  at: { type: 'string', value: 'INSTANT', help: 'verify at this ISO 8601 instant instead of now' },
  'approval-rp-id': {
    type: 'string',
    value: 'RPID',
    help: "with --deep: approvals' passkey assertions must be for this RP ID (default: each step-up grant's own)",
  },
  'approval-origin': {
    type: 'string',
    multiple: true,
    value: 'ORIGIN',
    help: 'with --deep: approvals must have been made on this origin (default: each step-up grant’s own)',
  },
  json: { type: 'boolean', help: 'print the report as JSON' },
};

function options(catalog: CliCatalog): OptionSpecs {
  return { ...CORE, ...STATUS_LIST_OPTIONS, ...WATCH_OPTIONS, ...new EvidenceCatalog(catalog.evidence).relyingPartyOptions() };
}

/** The trust domain a SPIFFE bundle document's X.509 authorities name. */
function bundleTrustDomain(doc: { keys?: Array<{ use?: string; x5c?: string[] }> }): string | undefined {
  for (const k of doc.keys ?? []) {
    if (k.use !== X509_SVID_USE || !k.x5c?.[0]) continue;
    const uri = parseCertificate(Buffer.from(k.x5c[0], 'base64')).uris.find((u) => u.startsWith('spiffe://'));
    if (uri) return new URL(uri).host;
  }
  return undefined;
}

/**
 * The bundle file as a SPIFFE JWKS, with the mistakes people make named. A file of the wrong
 * kind is a failure (exit 1), like a missing one: the command line itself was well formed.
 */
function readBundle(file: string): { text: string; doc: { keys?: Array<{ use?: string; x5c?: string[] }> } } {
  const text = readInputFile(file, '--bundle').toString('utf8');
  if (text.includes('-----BEGIN')) {
    throw new Error(`--bundle: ${file} is PEM; writ verify needs the SPIFFE bundle as JWKS (bundle.jwks beside it, or \`writ bundle show --format jwks\`)`);
  }
  try {
    return { text, doc: JSON.parse(text) as { keys?: Array<{ use?: string; x5c?: string[] }> } };
  } catch {
    throw new Error(`--bundle: ${file} is not JSON; writ verify needs the SPIFFE bundle as JWKS (bundle.jwks)`);
  }
}

export const verifyVerb: Verb = {
  name: ['verify'],
  summary: 'verify a writ and its proof offline; exit 0 only when both are valid (and, with --action/--resource, the action is allowed)',
  required: ['bundle', 'audience', 'writ', 'proof'],
  options,
  async run({ values, catalog, io, now }) {
    const atText = stringOption(values, 'at');
    const at = atText === undefined ? now() : new Date(atText);
    if (Number.isNaN(at.getTime())) throw new UsageError('--at must be an ISO 8601 instant, e.g. 2026-11-23T10:00:00Z');
    const { text, doc } = readBundle(required(values, 'bundle'));
    const td = stringOption(values, 'trust-domain') ?? bundleTrustDomain(doc);
    if (!td) throw new UsageError('--trust-domain is required: the bundle names no SPIFFE trust domain');
    const bundle = parseSpiffeBundle(td, text);
    const maxAge = stringOption(values, 'max-policy-age');
    let maxAgeS: number | undefined;
    if (maxAge) {
      try {
        maxAgeS = Math.round(parseDuration(maxAge) / 1000);
      } catch (e) {
        throw new UsageError(`--max-policy-age: ${(e as Error).message}`);
      }
    }
    const requirements: WritRequirements = {
      ...(values['require-evidence'] ? { evidenceTypes: listOption(values, 'require-evidence') } : {}),
      ...(values['require-selector'] ? { selectors: listOption(values, 'require-selector') } : {}),
      ...(maxAgeS !== undefined ? { maxPolicyAgeSeconds: maxAgeS } : {}),
      ...(values['require-principal-issuer'] ? { principalIssuer: stringOption(values, 'require-principal-issuer')! } : {}),
    };
    const action = stringOption(values, 'action');
    const resource = stringOption(values, 'resource');
    if ((action === undefined) !== (resource === undefined)) throw new UsageError('--action and --resource go together');
    const deep = values.deep === true;
    if ((values['approval-rp-id'] || values['approval-origin']) && !deep) throw new UsageError('--approval-rp-id and --approval-origin go with --deep');
    const reverifiers = deep ? new EvidenceCatalog(catalog.evidence).reverifiersFromOptions(values) : new Map();
    const json = values.json === true;
    const method = stringOption(values, 'method');
    const writ = readInputFile(required(values, 'writ'), '--writ').toString('utf8').trim();
    const proof = readInputFile(required(values, 'proof'), '--proof').toString('utf8').trim();
    if (stringOption(values, 'watch') !== undefined && stringOption(values, 'status-list') !== undefined)
      throw new UsageError('give one revocation source: --watch or --status-list');
    const watch = await openWatchOption(values, bundle);
    try {
      const revocation = watch ?? (await statusListRevocation(values, { bundle, writ, now: at }));
      const v = withReplayFile(stringOption(values, 'replay-cache'), Math.floor(at.getTime() / 1000), (cache) =>
        verifyWrit({
          writ,
          proof,
          trust: { issuer: trustDomainId(td), writKeys: bundle.writAuthorities ?? new Map() },
          audience: required(values, 'audience'),
          ...(method ? { method } : {}),
          now: at,
          level: deep ? 'deep' : 'standard',
          ...(cache ? { replayCache: cache } : {}),
          ...(revocation ? { revocation } : {}),
          requirements,
          reverifiers,
          approvals: {
            ...(values['approval-rp-id'] ? { rpId: stringOption(values, 'approval-rp-id')! } : {}),
            ...(values['approval-origin'] ? { origins: listOption(values, 'approval-origin') } : {}),
          },
        }),
      );
      const authz = action ? authorize(v, action, resource!) : undefined;
      if (json) {
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
          ...(v.renewed ? { renewed: v.renewed } : {}),
          policy: v.policy,
          constraints: v.constraints,
          approvals: v.approvals.map((a) => ({
            id: a.id,
            approvalId: a.approvalId,
            approver: a.approver,
            permission: a.permission,
            inherit: a.inherit,
            inherited: a.inherited,
            expiresAt: a.expiresAt,
            ...(a.assertion
              ? {
                  assertion: {
                    checked: true,
                    algorithm: a.assertion.algorithm,
                    credentialId: a.assertion.credentialId,
                    origin: a.assertion.origin,
                    rpId: a.assertion.rpId,
                    flags: a.assertion.flags,
                    signCount: a.assertion.signCount,
                  },
                }
              : { assertion: { checked: false } }),
          })),
          checks: v.checks,
          ...(authz ? { authorization: { action, resource, ...authz } } : {}),
        };
        io.out(`${JSON.stringify(report, null, 2)}\n`);
      } else if (!authz || authz.decision === 'allow') {
        io.out(`valid (${v.level}): ${v.chain.join(' -> ')}\ntask ${v.task.id}: ${v.task.goal}\n`);
        if (v.renewed)
          io.out(`renewed via ${v.renewed.via} (replaced SVID serial ${v.renewed.serial}); evidence type ${v.evidenceType} is the original attestation's\n`);
        for (const c of v.checks) io.out(`  [${c.by === 'verifier' ? 'checked  ' : c.by === 'issuer' ? 'issuer   ' : 'unchecked'}] ${c.check}\n`);
        for (const a of v.approvals)
          io.out(
            `approval ${a.approvalId}: ${a.permission.action} on ${a.permission.resource} approved by ${a.approver.iss}#${a.approver.sub}${a.inherited ? ' (inherited)' : ''}, ${a.assertion ? `passkey assertion checked (${a.assertion.algorithm}, credential ${a.assertion.credentialId.slice(0, 16)}…)` : 'passkey assertion not checked (use --deep)'}\n`,
          );
        if (authz?.decision === 'allow') io.out(`${action} on ${resource}: allow${authz.approval ? ` (by step-up grant ${authz.approval})` : ''}\n`);
      }
      if (authz && authz.decision !== 'allow') {
        const why =
          authz.decision === 'escalate'
            ? 'needs an approver (an escalation rule matches)'
            : authz.reason === 'boundary'
              ? 'a boundary forbids it'
              : 'outside the scope';
        io.err(`writ: ${action} on ${resource} is not allowed: ${authz.decision}, ${why} (the writ itself is valid)\n`);
        return 1;
      }
      return 0;
    } catch (e) {
      if (!isWritError(e)) throw e;
      if (json) io.out(`${JSON.stringify({ valid: false, code: e.code, error: e.message }, null, 2)}\n`);
      else io.err(`writ: invalid: ${e.message}\n`);
      return 1;
    } finally {
      watch?.close();
    }
  },
};
