/**
 * The `sev_snp` evidence type's issuer side: its settings (`attestation.sev_snp`), the
 * verifier, the relying party's re-verification (`writ verify --deep`) and the offline checker
 * (`writ enclave check --type sev-snp`). README.md in this folder documents the options.
 */
import { createHash } from 'node:crypto';
import { certificatesInFile, readInputFile } from '../../config/files.js';
import { stringOption, UsageError, type OptionValues } from '../../config/options.js';
import type { Section } from '../../config/section.js';
import { AttestationError } from '../../errors.js';
import { enclaveRootFiles, ENCLAVE_ROOTS_OPTION } from '../enclave/options.js';
import { printChecks, type CheckLine } from '../enclave/report.js';
import type { EvidencePlugin, OfflineCheck } from '../plugin.js';
import type { EvidenceReverifier, EvidenceVerifier } from '../verifier.js';
import { encodeCertTable, parseAmdCertificate, parseCertTable, type TableEntry } from './certs.js';
import { REPORT_SIZE } from './report.js';
import {
  AMD_ARK_FINGERPRINTS,
  DEFAULT_SNP_POLICY,
  formatTcb,
  MAX_SNP_EVIDENCE_BYTES,
  parseSnpEvidence,
  parseTcbSpec,
  PRODUCTS,
  SEV_SNP_TYPE,
  verifySnp,
  type Product,
  type SnpPolicy,
  type SnpTrust,
  type SnpVerified,
} from './verify.js';

/** The name on the command line (`--evidence sev-snp`, `--type sev-snp`, `--enclave-roots sev-snp=FILE`). */
export const SEV_SNP_CLI_NAME = 'sev-snp';

export interface SnpSettings {
  readonly trust: SnpTrust;
  readonly policy: SnpPolicy;
  /** Where the trust came from, for the startup log. */
  readonly rootFiles: readonly string[];
}

const SHIPPED_PINS: ReadonlySet<string> = new Set(Object.values(AMD_ARK_FINGERPRINTS));

/**
 * Trust from a vendor chain as AMD KDS ships it (ASK or ASVK, then ARK): the self-signed
 * certificates in it are the pinned anchors; the others are candidate intermediates.
 */
export function trustFromChain(certs: readonly Buffer[]): SnpTrust {
  const pins = new Set<string>();
  for (const [i, der] of certs.entries()) {
    const c = parseAmdCertificate(der, `root file certificate ${i + 1}`);
    if (c.issuer.equals(c.subject)) pins.add(createHash('sha256').update(der).digest('hex'));
  }
  if (pins.size === 0) throw new AttestationError('ERR_EVIDENCE_INVALID', `attestation(${SEV_SNP_TYPE}): the vendor chain holds no self-signed ARK`);
  return { arkFingerprints: pins, certificates: certs };
}

/** The shipped trust: the pinned AMD ARKs; chains come from the evidence. */
export const SHIPPED_TRUST: SnpTrust = { arkFingerprints: SHIPPED_PINS, certificates: [] };

export function parseSnpSettings(s: Section): SnpSettings {
  s.only(['roots', 'ark_fingerprints', 'allow_debug', 'allow_smt', 'allow_migration_agent', 'max_vmpl', 'minimum_tcb', 'products', 'allow_vlek']);
  const rootFiles = s.files('roots');
  let trust = SHIPPED_TRUST;
  if (rootFiles.length && s.has('ark_fingerprints')) s.problem(`${s.name('roots')} and ${s.name('ark_fingerprints')}: give one of them`);
  if (rootFiles.length) {
    try {
      trust = trustFromChain(rootFiles.flatMap((f) => certificatesInFile(f, s.name('roots'))));
    } catch (e) {
      s.problem(`${s.name('roots')}: ${(e as Error).message}`);
    }
  } else if (s.has('ark_fingerprints')) {
    const fps = s.strings('ark_fingerprints', []).map((f) => f.replace(/:/g, '').toLowerCase());
    for (const f of fps)
      if (!/^[0-9a-f]{64}$/.test(f)) s.problem(`${s.name('ark_fingerprints')}: ${JSON.stringify(f)} is not a SHA-256 fingerprint (64 hex digits)`);
    if (fps.length === 0) s.problem(`${s.name('ark_fingerprints')} is empty: nothing would be trusted`);
    trust = { arkFingerprints: new Set(fps), certificates: [] };
  }
  let minimumTcb = DEFAULT_SNP_POLICY.minimumTcb;
  try {
    minimumTcb = parseTcbSpec(s.str('minimum_tcb', ''));
  } catch (e) {
    s.problem(`${s.name('minimum_tcb')}: ${(e as Error).message}`);
  }
  const products = s.strings('products', PRODUCTS);
  for (const p of products)
    if (!(PRODUCTS as readonly string[]).includes(p)) s.problem(`${s.name('products')}: ${JSON.stringify(p)} is not one of ${PRODUCTS.join(', ')}`);
  return {
    trust,
    rootFiles,
    policy: {
      allowDebug: s.bool('allow_debug', DEFAULT_SNP_POLICY.allowDebug),
      allowSmt: s.bool('allow_smt', DEFAULT_SNP_POLICY.allowSmt),
      allowMigrationAgent: s.bool('allow_migration_agent', DEFAULT_SNP_POLICY.allowMigrationAgent),
      maxVmpl: s.int('max_vmpl', DEFAULT_SNP_POLICY.maxVmpl, 0, 3),
      minimumTcb,
      products: products.filter((p): p is Product => (PRODUCTS as readonly string[]).includes(p)),
      allowVlek: s.bool('allow_vlek', DEFAULT_SNP_POLICY.allowVlek),
    },
  };
}

/** REPORT_DATA a handshake's report must carry: the challenge nonce (B), then zero bytes. */
export function expectedReportData(nonce: Uint8Array): Buffer {
  if (nonce.length === 0 || nonce.length > 64)
    throw new AttestationError('ERR_EVIDENCE_INVALID', `attestation(${SEV_SNP_TYPE}): a nonce of 1..64 bytes expected`);
  const rd = Buffer.alloc(64);
  rd.set(nonce);
  return rd;
}

/**
 * The evidence to embed: the report and exactly the chain that was verified (leaf, ASK/ASVK,
 * ARK), so a relying party needs only the pinned ARK fingerprints.
 */
function publicEvidence(report: Buffer, v: SnpVerified): Buffer {
  return Buffer.concat([
    report,
    encodeCertTable([
      { kind: v.signer, der: v.leaf.der },
      { kind: 'ask', der: v.ask.der },
      { kind: 'ark', der: v.ark.der },
    ]),
  ]);
}

function verifyEvidence(evidence: Buffer, trust: SnpTrust, policy: SnpPolicy, at: Date, nonce: Uint8Array, done?: string[]) {
  const e = parseSnpEvidence(evidence);
  return { e, v: verifySnp(e, trust, policy, at, expectedReportData(nonce), done) };
}

function snpVerifier(settings: SnpSettings): EvidenceVerifier {
  return {
    type: SEV_SNP_TYPE,
    maxEvidenceBytes: MAX_SNP_EVIDENCE_BYTES,
    maxRounds: 1,
    async begin(ctx) {
      return {
        challenge: Buffer.alloc(0),
        async respond(evidence) {
          const { e, v } = verifyEvidence(evidence, settings.trust, settings.policy, ctx.now, ctx.nonce);
          const pub = publicEvidence(e.report, v);
          return {
            kind: 'attested',
            result: {
              selectors: v.selectors,
              ...(v.platform ? { platform: v.platform } : {}),
              evidenceDigest: createHash('sha256').update(pub).digest(),
              publicEvidence: pub,
            },
          };
        },
      };
    },
  };
}

export interface SnpRelyingTrust {
  readonly trust: SnpTrust;
  readonly policy: SnpPolicy;
}

function snpReverifier(t: SnpRelyingTrust): EvidenceReverifier {
  return {
    type: SEV_SNP_TYPE,
    reverify(evidence, ctx) {
      const done: string[] = [];
      const { v } = verifyEvidence(evidence, t.trust, t.policy, ctx.at, ctx.binding, done);
      return {
        selectors: v.selectors,
        checked: [...done.map((d) => `${SEV_SNP_TYPE}: ${d}`), `${SEV_SNP_TYPE}: REPORT_DATA is the binding digest recomputed from the writ, then zero bytes`],
        takenFromIssuer: [],
      };
    },
  };
}

/** Options a relying party and the offline checker share, beyond the common ones. */
const POLICY_OPTIONS = {
  'sev-snp-allow-debug': { type: 'boolean', help: 'accept SEV-SNP guests whose policy allows debugging' },
  'sev-snp-max-vmpl': { type: 'string', value: 'N', help: 'highest SEV-SNP VMPL accepted, 0..3 (default 0)' },
  'sev-snp-minimum-tcb': { type: 'string', value: 'SPEC', help: 'SEV-SNP minimum reported TCB, e.g. bootloader=3,tee=0,snp=8,microcode=115' },
} as const;

function policyFromOptions(values: OptionValues, allowDebug: boolean): SnpPolicy {
  const vmpl = stringOption(values, 'sev-snp-max-vmpl');
  if (vmpl !== undefined && !/^[0-3]$/.test(vmpl)) throw new UsageError('--sev-snp-max-vmpl must be 0..3');
  let minimumTcb = DEFAULT_SNP_POLICY.minimumTcb;
  const spec = stringOption(values, 'sev-snp-minimum-tcb');
  if (spec !== undefined) {
    try {
      minimumTcb = parseTcbSpec(spec);
    } catch (e) {
      throw new UsageError(`--sev-snp-minimum-tcb: ${(e as Error).message}`);
    }
  }
  return { ...DEFAULT_SNP_POLICY, allowDebug, minimumTcb, ...(vmpl !== undefined ? { maxVmpl: Number(vmpl) } : {}) };
}

function trustFromFiles(files: readonly string[], flag: string): SnpTrust {
  if (files.length === 0) return SHIPPED_TRUST;
  const certs = files.flatMap((f) => certificatesInFile(f, flag));
  try {
    return trustFromChain(certs);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

/** Report bytes and certificates from `writ enclave check` files: a bare report, or a report and a certificate table. */
function readCheckInput(values: OptionValues): { report: Buffer; certificates: TableEntry[]; looseCertificates: Buffer[] } {
  const data = readInputFile(stringOption(values, 'evidence')!, '--evidence');
  if (data.length > MAX_SNP_EVIDENCE_BYTES)
    throw new AttestationError('ERR_EVIDENCE_INVALID', `attestation(${SEV_SNP_TYPE}): --evidence is larger than ${MAX_SNP_EVIDENCE_BYTES} bytes`);
  const certsFile = stringOption(values, 'certs');
  const looseCertificates = certsFile ? certificatesInFile(certsFile, '--certs') : [];
  if (data.length <= REPORT_SIZE) return { report: data, certificates: [], looseCertificates };
  return { report: data.subarray(0, REPORT_SIZE), certificates: parseCertTable(data.subarray(REPORT_SIZE), false), looseCertificates };
}

const strip = (m: string) => m.replace(/^attestation\(sev_snp\): /, '');

export const snpOfflineCheck: OfflineCheck = {
  name: SEV_SNP_CLI_NAME,
  options: { 'sev-snp-max-vmpl': POLICY_OPTIONS['sev-snp-max-vmpl'], 'sev-snp-minimum-tcb': POLICY_OPTIONS['sev-snp-minimum-tcb'] },
  async run({ values, io, now }) {
    if (stringOption(values, 'collateral') !== undefined)
      throw new UsageError('--collateral: SEV-SNP is checked without collateral (the TCB is checked against the VCEK; give --sev-snp-minimum-tcb for a floor)');
    const at = stringOption(values, 'at') === undefined ? now() : new Date(stringOption(values, 'at')!);
    if (Number.isNaN(at.getTime())) throw new UsageError('--at must be an ISO 8601 instant');
    const rdHex = stringOption(values, 'report-data');
    if (rdHex !== undefined && !/^(?:[0-9a-fA-F]{2}){1,64}$/.test(rdHex))
      throw new UsageError('--report-data must be 1..64 bytes of hex (padded with zero bytes to 64)');
    const roots = stringOption(values, 'roots');
    const trust = trustFromFiles(roots ? [roots] : [], '--roots');
    const policy = policyFromOptions(values, values['allow-debug'] === true);
    const lines: CheckLine[] = [];
    const done: string[] = [];
    let verified: SnpVerified | undefined;
    try {
      const input = readCheckInput(values);
      verified = verifySnp(input, trust, policy, at, rdHex ? expectedReportData(Buffer.from(rdHex, 'hex')) : undefined, done);
    } catch (e) {
      if (!(e instanceof AttestationError)) throw e;
      lines.push(...done.map((check) => ({ status: 'ok' as const, check })));
      lines.push({ status: 'failed', check: 'SEV-SNP evidence', detail: strip(e.message) });
    }
    if (verified) {
      lines.push(...done.map((check) => ({ status: 'ok' as const, check })));
      if (!rdHex) lines.push({ status: 'unchecked', check: 'REPORT_DATA', detail: 'give --report-data HEX to check what the report commits to' });
    }
    lines.push({ status: 'unchecked', check: 'certificate revocation', detail: 'the AMD KDS CRLs of the ASK/ASVK are not consulted' });
    const extra = verified
      ? { product: verified.product, signer: verified.signer, tcb: formatTcb(verified.tcb), selectors: verified.selectors.map((s) => `${s.type}:${s.value}`) }
      : {};
    if (verified && values.json !== true) for (const s of extra.selectors ?? []) io.out(`selector  ${s}\n`);
    return printChecks(io, lines, values.json === true, extra);
  },
};

export const snpPlugin: EvidencePlugin<SnpSettings, SnpRelyingTrust> = {
  type: SEV_SNP_TYPE,
  settings: parseSnpSettings,
  describe: (s) =>
    `${s.trust.arkFingerprints.size} pinned ARK(s)${s.rootFiles.length ? ` from ${s.rootFiles.length} file(s)` : ' (shipped AMD roots)'}, debug ${s.policy.allowDebug ? 'allowed' : 'refused'}, VMPL ≤ ${s.policy.maxVmpl}, minimum TCB ${formatTcb(s.policy.minimumTcb)}${Object.values(s.policy.minimumTcb).every((v) => !v) ? ' (none: any firmware AMD signed for this chip is accepted; set minimum_tcb)' : ''}`,
  verifier: (settings) => snpVerifier(settings),
  relyingParty: {
    options: { ...ENCLAVE_ROOTS_OPTION, ...POLICY_OPTIONS },
    fromOptions: (values) => ({
      trust: trustFromFiles(enclaveRootFiles(values, SEV_SNP_CLI_NAME), `--enclave-roots ${SEV_SNP_CLI_NAME}=FILE`),
      policy: policyFromOptions(values, values['sev-snp-allow-debug'] === true),
    }),
    fromSettings: (s) => ({ trust: s.trust, policy: s.policy }),
    reverifier: snpReverifier,
  },
  offlineCheck: snpOfflineCheck,
};
