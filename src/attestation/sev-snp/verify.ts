/**
 * Verification of one SEV-SNP report with its certificates, shared by the issuer's verifier,
 * the relying party's re-verifier and `writ enclave check --type sev-snp`: the report signed by
 * the VCEK or VLEK (P-384, SHA-384), that certificate signed by the ASK or ASVK, that by an ARK
 * whose SHA-256 fingerprint is pinned (RSASSA-PSS SHA-384 throughout), every certificate valid
 * at the instant given, the product named consistently by the chain, the VCEK and the report's
 * CPUID; then the platform policy (debug, SMT, migration agent, VMPL, reported TCB against the
 * certificate and a minimum, CHIP_ID against the VCEK's hwID) and the report data.
 *
 * Certificates that come with the evidence are UNTRUSTED: they are candidates that must chain
 * to a pinned ARK, and an ARK inside the evidence counts only if its fingerprint is pinned.
 */
import { createHash, verify, type KeyObject, timingSafeEqual } from 'node:crypto';
import { BoundedCache } from '../../cache/bounded.js';
import { AttestationError } from '../../errors.js';
import type { Selector } from '../../registration/entry.js';
import {
  AMD_OID,
  hwIdExtension,
  parseAmdCertificate,
  parseCertTable,
  pssSignedBy,
  publicKeyOf,
  splExtension,
  stringExtension,
  type AmdCertificate,
  type TableEntry,
} from './certs.js';
import { parseSnpReport, POLICY, policyBit, REPORT_SIZE, type SigningKey, type SnpReport } from './report.js';

export const SEV_SNP_TYPE = 'sev_snp';

export const PRODUCTS = ['Milan', 'Genoa', 'Turin'] as const;
export type Product = (typeof PRODUCTS)[number];

/**
 * SHA-256 of the DER of each AMD Root Key as AMD KDS serves it (`/vcek/v1/{product}/cert_chain`);
 * the same values go-sev-guest and virtee ship. The shipped default pins.
 */
export const AMD_ARK_FINGERPRINTS: Readonly<Record<Product, string>> = {
  Milan: '69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd',
  Genoa: '4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1',
  Turin: '1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a',
};

/** Largest evidence accepted: a report and a table of VCEK/VLEK, ASK and ARK (about 6 KiB in practice). */
export const MAX_SNP_EVIDENCE_BYTES = REPORT_SIZE + 16 * 1024;
/** Most untrusted candidate certificates one verification looks through. */
const MAX_CANDIDATES = 32;

/** What a verifier trusts. */
export interface SnpTrust {
  /** Pinned ARK fingerprints: SHA-256 of the DER, lower-case hex. */
  readonly arkFingerprints: ReadonlySet<string>;
  /** Operator-supplied certificates (a KDS cert_chain: ASK or ASVK, then ARK), DER; candidates like any other. */
  readonly certificates: readonly Buffer[];
}

/** Components of a TCB_VERSION (Milan/Genoa: bootloader, TEE, SNP, microcode; Turin adds FMC). */
export interface Tcb {
  readonly bootloader: number;
  readonly tee: number;
  readonly snp: number;
  readonly microcode: number;
  readonly fmc?: number;
}

export interface SnpPolicy {
  readonly allowDebug: boolean;
  readonly allowSmt: boolean;
  readonly allowMigrationAgent: boolean;
  /** Highest VMPL accepted (0 = only the most privileged level). */
  readonly maxVmpl: number;
  /** Each reported TCB component must be at least this. */
  readonly minimumTcb: Tcb;
  readonly products: readonly Product[];
  readonly allowVlek: boolean;
}

export const DEFAULT_SNP_POLICY: SnpPolicy = {
  allowDebug: false,
  allowSmt: true,
  allowMigrationAgent: false,
  maxVmpl: 0,
  minimumTcb: { bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: 0 },
  products: PRODUCTS,
  allowVlek: true,
};

export interface SnpInput {
  /** The report, exactly REPORT_SIZE bytes. */
  readonly report: Buffer;
  /** Certificates that came with it (the evidence's table, `--certs`): untrusted candidates. */
  readonly certificates: readonly TableEntry[];
  /** Certificates of unknown role (e.g. a `--certs` file): leaf or intermediate candidates. */
  readonly looseCertificates?: readonly Buffer[];
}

export interface SnpVerified {
  readonly report: SnpReport;
  readonly product: Product;
  readonly signer: SigningKey;
  readonly tcb: Tcb;
  readonly leaf: AmdCertificate;
  /** The ASK or ASVK and the ARK the chain was verified through. */
  readonly ask: AmdCertificate;
  readonly ark: AmdCertificate;
  readonly arkFingerprint: string;
  readonly selectors: readonly Selector[];
  /** The selector naming the chip (VCEK only): what a platform revocation names. */
  readonly platform?: string;
}

const fail = (msg: string) => new AttestationError('ERR_EVIDENCE_INVALID', `attestation(${SEV_SNP_TYPE}): ${msg}`);
const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writ's SEV-SNP evidence: the report, then a canonical GHCB certificate table holding the VCEK or VLEK. */
export function parseSnpEvidence(evidence: Buffer): { report: Buffer; certificates: TableEntry[] } {
  if (evidence.length > MAX_SNP_EVIDENCE_BYTES) throw fail(`evidence is larger than ${MAX_SNP_EVIDENCE_BYTES} bytes`);
  if (evidence.length <= REPORT_SIZE) throw fail(`evidence is ${evidence.length} bytes: a ${REPORT_SIZE}-byte report and a certificate table expected`);
  return { report: evidence.subarray(0, REPORT_SIZE), certificates: parseCertTable(evidence.subarray(REPORT_SIZE), true) };
}

/** Decodes a TCB_VERSION for `product`; reserved bytes must be zero. */
export function decodeTcb(raw: Buffer, product: Product, what: string): Tcb {
  if (product === 'Turin') {
    if (raw[4] || raw[5] || raw[6]) throw fail(`${what}: reserved TCB bytes are not zero`);
    return { fmc: raw[0]!, bootloader: raw[1]!, tee: raw[2]!, snp: raw[3]!, microcode: raw[7]! };
  }
  if (raw[2] || raw[3] || raw[4] || raw[5]) throw fail(`${what}: reserved TCB bytes are not zero`);
  return { bootloader: raw[0]!, tee: raw[1]!, snp: raw[6]!, microcode: raw[7]! };
}

export function formatTcb(t: Tcb): string {
  return `${t.fmc !== undefined ? `fmc=${t.fmc},` : ''}bootloader=${t.bootloader},tee=${t.tee},snp=${t.snp},microcode=${t.microcode}`;
}

/** "bootloader=2,tee=0,snp=5,microcode=68[,fmc=0]"; omitted components are 0. */
export function parseTcbSpec(spec: string): Tcb {
  const out: Record<string, number> = { bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: 0 };
  if (spec.trim() === '') return out as unknown as Tcb;
  const seen = new Set<string>();
  for (const part of spec.split(',')) {
    const m = /^\s*(bootloader|tee|snp|microcode|fmc)=(\d{1,3})\s*$/.exec(part);
    if (!m || Number(m[2]) > 255) throw new Error(`${JSON.stringify(part)} is not NAME=0..255 (names: bootloader, tee, snp, microcode, fmc)`);
    if (seen.has(m[1]!)) throw new Error(`${m[1]} given twice`);
    seen.add(m[1]!);
    out[m[1]!] = Number(m[2]);
  }
  return out as unknown as Tcb;
}

/** The product a version 3+ report's CPUID names (family 19h: Milan, Genoa; 1Ah: Turin). */
function productOfCpuid(c: { family: number; model: number }): Product | undefined {
  const m = c.model >> 4;
  if (c.family === 0x19 && m === 0x0) return 'Milan';
  if (c.family === 0x19 && (m === 0x1 || m === 0xa)) return 'Genoa';
  if (c.family === 0x1a && (m === 0x0 || m === 0x1)) return 'Turin';
  return undefined;
}

function validAt(c: AmdCertificate, at: Date, what: string): void {
  const t = at.getTime();
  if (t < c.notBefore.getTime()) throw fail(`${what} is not yet valid at ${at.toISOString()} (notBefore ${c.notBefore.toISOString()})`);
  if (t > c.notAfter.getTime()) throw fail(`${what} has expired at ${at.toISOString()} (notAfter ${c.notAfter.toISOString()})`);
}

const hex = (b: Buffer) => b.toString('hex');
/** Printable ASCII text as a selector value: space and '%' percent-encoded (selector values have no spaces). */
const selectorText = (t: string) => t.replace(/[ %]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const isZero = (b: Buffer) => b.every((x) => x === 0);

/**
 * Verifies `input` against `trust` and `policy` at `at`; `reportData`, when given, is the exact
 * 64-byte REPORT_DATA required. Each check that passed is appended to `done` (for the offline
 * checker's report); the first that fails throws ERR_EVIDENCE_INVALID saying why.
 */
export function verifySnp(input: SnpInput, trust: SnpTrust, policy: SnpPolicy, at: Date, reportData?: Buffer, done: string[] = []): SnpVerified {
  const report = parseSnpReport(input.report);
  done.push(`report parsed strictly: version ${report.version}, ${REPORT_SIZE} bytes, reserved fields zero, signed by the ${report.signingKey.toUpperCase()}`);
  if (report.signingKey === 'vlek' && !policy.allowVlek) throw fail('the report is signed by a VLEK, which this policy does not accept');

  const leafName = report.signingKey === 'vcek' ? 'SEV-VCEK' : 'SEV-VLEK';
  const { leaf, leafKey, ask, ark, fp } = resolveChainCached(report.signingKey, input, trust);
  if (!verify('sha384', report.signed, { key: leafKey, dsaEncoding: 'ieee-p1363' }, report.signatureP1363))
    throw fail(`the report signature does not verify with the ${leafName} key`);
  done.push(`report signature (ECDSA P-384 SHA-384 over bytes 0x000..0x29f) verifies with the ${leafName} key`);
  validAt(leaf, at, leafName);
  validAt(ask, at, `CN=${ask.commonName}`);
  validAt(ark, at, `CN=${ark.commonName}`);
  done.push(
    `${leafName} ← CN=${ask.commonName} ← CN=${ark.commonName} (RSASSA-PSS SHA-384), the ARK pinned by SHA-256 ${fp}, all valid at ${at.toISOString()}`,
  );

  // The product, named the same way by every link.
  const product = PRODUCTS.find((p) => ark.commonName === `ARK-${p}`);
  if (!product) throw fail(`the ARK's name CN=${ark.commonName} is not ARK-Milan, ARK-Genoa or ARK-Turin`);
  const askName = report.signingKey === 'vcek' ? `SEV-${product}` : `SEV-VLEK-${product}`;
  if (ask.commonName !== askName)
    throw fail(`the ${leafName} is signed by CN=${ask.commonName}, not ${askName} (an intermediate of another product or key type)`);
  const productName = stringExtension(leaf, AMD_OID.productName, leafName);
  if (productName === undefined) throw fail(`${leafName} has no productName extension`);
  if (productName !== product && !productName.startsWith(`${product}-`)) throw fail(`${leafName} is for product ${productName}, but the chain is ${product}'s`);
  if (report.cpuid) {
    const cp = productOfCpuid(report.cpuid);
    const fms = `family 0x${report.cpuid.family.toString(16)} model 0x${report.cpuid.model.toString(16)}`;
    if (!cp) throw fail(`the report's CPUID (${fms}) names no known SEV-SNP product`);
    if (cp !== product) throw fail(`the report's CPUID (${fms}) names ${cp}, but the chain is ${product}'s`);
  }
  if (!policy.products.includes(product)) throw fail(`product ${product} is not accepted (accepted: ${policy.products.join(', ')})`);
  done.push(`product ${product} (${productName}) named by the ARK, the ${askName}, the ${leafName}${report.cpuid ? ' and the report CPUID' : ''}`);

  // The reported TCB is the one the certificate was issued for, and not below the minimum.
  const tcb = decodeTcb(report.reportedTcb, product, 'reported TCB');
  const certTcb: Record<string, number | undefined> = {
    bootloader: splExtension(leaf, AMD_OID.blSpl, leafName),
    tee: splExtension(leaf, AMD_OID.teeSpl, leafName),
    snp: splExtension(leaf, AMD_OID.snpSpl, leafName),
    microcode: splExtension(leaf, AMD_OID.ucodeSpl, leafName),
    ...(product === 'Turin' ? { fmc: splExtension(leaf, AMD_OID.fmcSpl, leafName) } : {}),
  };
  for (const [k, v] of Object.entries(certTcb)) {
    const reported = tcb[k as keyof Tcb];
    if (v === undefined) throw fail(`${leafName} has no ${k} SPL extension`);
    if (v !== reported) throw fail(`reported TCB ${k} ${reported} differs from the ${leafName}'s ${v} (the certificate is for another TCB)`);
    const min = policy.minimumTcb[k as keyof Tcb] ?? 0;
    if (reported! < min) throw fail(`reported TCB ${k} ${reported} is below the minimum ${min}`);
  }
  done.push(
    `reported TCB ${formatTcb(tcb)} equals the ${leafName}'s and is not below ${formatTcb(product === 'Turin' ? policy.minimumTcb : { ...policy.minimumTcb, fmc: undefined })}`,
  );

  // CHIP_ID is the chip the VCEK was issued to (a VLEK names a cloud provider instead).
  if (report.signingKey === 'vcek') {
    const hwId = hwIdExtension(leaf, leafName);
    if (!hwId) throw fail('the VCEK has no hwID extension');
    if (hwId.length !== (product === 'Turin' ? 8 : 64))
      throw fail(`the VCEK's hwID is ${hwId.length} bytes, not ${product === 'Turin' ? 8 : 64} as on ${product}`);
    if (report.maskChipId || isZero(report.chipId)) throw fail('CHIP_ID is masked (all zero): the report cannot be tied to the VCEK');
    const tail = report.chipId.subarray(hwId.length);
    if (!report.chipId.subarray(0, hwId.length).equals(hwId) || !isZero(tail)) throw fail("CHIP_ID differs from the VCEK's hwID");
    done.push("CHIP_ID equals the VCEK's hwID");
  }

  // Guest policy and privilege level.
  if (policyBit(report, POLICY.debug) && !policy.allowDebug) throw fail('the guest policy allows debugging (DEBUG bit set): refused (allow_debug)');
  if (policyBit(report, POLICY.smt) && !policy.allowSmt) throw fail('the guest policy allows SMT: refused (allow_smt)');
  if (policyBit(report, POLICY.migrateMa) && !policy.allowMigrationAgent)
    throw fail('the guest policy allows a migration agent: refused (allow_migration_agent)');
  if (report.vmpl > policy.maxVmpl) throw fail(`the report was requested at VMPL ${report.vmpl}, above the maximum ${policy.maxVmpl}`);
  done.push(
    `guest policy 0x${report.policy.toString(16)} (debug ${policyBit(report, POLICY.debug) ? 'on, allowed' : 'off'}, SMT ${policyBit(report, POLICY.smt) ? 'allowed' : 'off'}, migration agent ${policyBit(report, POLICY.migrateMa) ? 'allowed' : 'off'}), VMPL ${report.vmpl} ≤ ${policy.maxVmpl}`,
  );

  if (reportData) {
    if (reportData.length !== 64 || report.reportData.length !== 64 || !timingSafeEqual(reportData, report.reportData))
      throw fail('REPORT_DATA differs from the expected value (not this handshake)');
    done.push('REPORT_DATA equals the expected value');
  }

  const platform = report.signingKey === 'vcek' ? `chip_id:${hex(report.chipId)}` : undefined;
  const csp = report.signingKey === 'vlek' ? stringExtension(leaf, AMD_OID.cspId, leafName) : undefined;
  const flag = (b: number) => (policyBit(report, b) ? '1' : '0');
  const values = [
    `product:${product}`,
    `measurement:${hex(report.measurement)}`,
    `host_data:${hex(report.hostData)}`,
    ...(platform ? [platform] : []),
    `signer:${report.signingKey}`,
    ...(csp ? [`csp_id:${selectorText(csp)}`] : []),
    `vmpl:${report.vmpl}`,
    `guest_svn:${report.guestSvn}`,
    `family_id:${hex(report.familyId)}`,
    `image_id:${hex(report.imageId)}`,
    ...(isZero(report.idKeyDigest) ? [] : [`id_key_digest:${hex(report.idKeyDigest)}`]),
    ...(report.authorKeyEn ? [`author_key_digest:${hex(report.authorKeyDigest)}`] : []),
    `policy:debug=${flag(POLICY.debug)}`,
    `policy:smt=${flag(POLICY.smt)}`,
    `policy:migrate_ma=${flag(POLICY.migrateMa)}`,
    `policy:single_socket=${flag(POLICY.singleSocket)}`,
    `policy:abi=${(report.policy >> 8n) & 0xffn}.${report.policy & 0xffn}`,
    `tcb:${formatTcb(tcb)}`,
  ];
  return {
    report,
    product,
    signer: report.signingKey,
    tcb,
    leaf,
    ask,
    ark,
    arkFingerprint: fp,
    selectors: values.map((value) => ({ type: SEV_SNP_TYPE, value })),
    ...(platform ? { platform: `${SEV_SNP_TYPE}:${platform}` } : {}),
  };
}

/**
 * Finds leaf ← ASK/ASVK ← ARK among untrusted `pool`, every link a PSS SHA-384 signature, the
 * ARK self-signed and pinned by fingerprint. Validity times are the caller's to check.
 */
export function chainToPinnedArk(
  leaf: AmdCertificate,
  pool: readonly AmdCertificate[],
  trust: SnpTrust,
): { ask: AmdCertificate; ark: AmdCertificate; fp: string } {
  const issuers = (child: AmdCertificate) =>
    pool.filter((c) => c.subject.equals(child.issuer) && c.ca && c.keyCertSign && pssSignedBy(child, publicKeyOf(c, `CN=${c.commonName}`)));
  const asks = issuers(leaf).filter((c) => !c.issuer.equals(c.subject));
  if (asks.length === 0)
    throw fail(
      `no certificate given signed the ${leaf.commonName} certificate (its issuer is CN=${leaf.issuerCommonName}; RSASSA-PSS SHA-384 expected; the vendor chain comes inside the evidence, in the --certs file or as the trusted roots)`,
    );
  let chain: { ask: AmdCertificate; ark: AmdCertificate; fp: string } | undefined;
  let unpinned: string | undefined;
  for (const ask of asks) {
    for (const ark of issuers(ask)) {
      if (!ark.issuer.equals(ark.subject) || !pssSignedBy(ark, publicKeyOf(ark, 'ARK'))) continue;
      const fp = sha256hex(ark.der);
      if (!trust.arkFingerprints.has(fp)) {
        unpinned ??= fp;
        continue;
      }
      chain = { ask, ark, fp };
      break;
    }
    if (chain) break;
  }
  if (!chain)
    throw fail(
      unpinned
        ? `the chain ends at a self-signed ARK (CN=${asks[0]!.commonName}'s issuer, SHA-256 ${unpinned}) whose fingerprint is not pinned`
        : `no self-signed ARK given signed CN=${asks[0]!.commonName}`,
    );
  return chain;
}

interface ResolvedChain {
  readonly leaf: AmdCertificate;
  readonly leafKey: KeyObject;
  readonly ask: AmdCertificate;
  readonly ark: AmdCertificate;
  readonly fp: string;
}

/** Chains resolved recently, per trust: a chain's signatures are facts about its bytes (validity is checked on every use). */
export const CHAIN_CACHE_SIZE = 1024;
const chainCaches = new WeakMap<SnpTrust, BoundedCache<string, ResolvedChain>>();

function resolveChainCached(signingKey: SigningKey, input: SnpInput, trust: SnpTrust): ResolvedChain {
  let cache = chainCaches.get(trust);
  if (!cache) {
    cache = new BoundedCache(CHAIN_CACHE_SIZE);
    chainCaches.set(trust, cache);
  }
  const h = createHash('sha256').update(signingKey);
  for (const d of [...input.certificates.map((e) => Buffer.concat([Buffer.from(e.kind), e.der])), ...(input.looseCertificates ?? [])])
    h.update(createHash('sha256').update(d).digest());
  return cache.getOrSet(h.digest('hex'), () => resolveChain(signingKey, input, trust));
}

/** The leaf the report names, and its chain to a pinned ARK; everything here depends on the certificates' bytes alone. */
function resolveChain(signingKey: SigningKey, input: SnpInput, trust: SnpTrust): ResolvedChain {
  // The leaf: the table entry for the key the report says signed it, or a loose certificate with its name.
  const leafName = signingKey === 'vcek' ? 'SEV-VCEK' : 'SEV-VLEK';
  const loose = (input.looseCertificates ?? []).map((d, i) => parseAmdCertificate(d, `certificate ${i + 1}`));
  const tabled = input.certificates.filter((e) => e.kind === signingKey).map((e) => parseAmdCertificate(e.der, leafName));
  const leaves = [...tabled, ...loose.filter((c) => c.commonName === leafName)];
  if (leaves.length === 0) throw fail(`no ${leafName} certificate came with the report`);
  if (leaves.some((l) => !l.der.equals(leaves[0]!.der))) throw fail(`more than one ${leafName} certificate came with the report`);
  const leaf = leaves[0]!;
  const leafKey = publicKeyOf(leaf, leafName);
  if (leafKey.asymmetricKeyType !== 'ec' || leafKey.asymmetricKeyDetails?.namedCurve !== 'secp384r1') throw fail(`${leafName} key is not ECDSA P-384`);
  if (leaf.commonName !== leafName) throw fail(`the ${signingKey.toUpperCase()} certificate's subject is CN=${leaf.commonName}, not ${leafName}`);
  if (leaf.ca) throw fail(`${leafName} is a CA certificate`);

  // The chain: leaf ← ASK/ASVK ← pinned ARK, from untrusted candidates (duplicates dropped).
  const all: AmdCertificate[] = [
    ...input.certificates
      .filter((e) => e.kind === 'ask' || e.kind === 'ark')
      .map((e) => parseAmdCertificate(e.der, `${e.kind.toUpperCase()} from the evidence`)),
    ...loose.filter((c) => c.commonName !== leafName),
    ...trust.certificates.map((d, i) => parseAmdCertificate(d, `trusted certificate ${i + 1}`)),
  ];
  if (all.length > MAX_CANDIDATES) throw fail(`more than ${MAX_CANDIDATES} candidate certificates`);
  const pool = all.filter((c, i) => all.findIndex((d) => d.der.equals(c.der)) === i);
  return { leaf, leafKey, ...chainToPinnedArk(leaf, pool, trust) };
}
