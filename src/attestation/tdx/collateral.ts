/**
 * Intel collateral for TDX (Intel PCS API v4; Intel SGX/TDX DCAP Quote Verification Library,
 * TcbLevelCheck, TdxModuleCheck, QE identity check): the TDX TCB info and the TD_QE identity,
 * each signed by the Intel SGX TCB Signing certificate that chains to the pinned root, the root
 * CA CRL and the PCK CRL. Taken in the JSON shape dcap-qvl and Phala's collateral services write
 * (`tcb_info`, `tcb_info_signature`, `tcb_info_issuer_chain`, `qe_identity`, ..., `pck_crl`,
 * `root_ca_crl` as hex DER). UNTRUSTED until verified: every signature is checked over the exact
 * signed JSON text before a field of it is read, and every document must be valid at the instant.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { BoundedCache } from '../../cache/bounded.js';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readInputFile } from '../../config/files.js';
import { SeqReader, TAG, decodeBitString, decodeTime, integerBytes, oid, parseOne, seq } from '../../der/der.js';
import { decodePem } from '../../der/pem.js';
import { parseStrictJson } from '../../jose/strict-json.js';
import { parseCertificate, type ParsedCertificate } from '../../x509/certificate.js';
import { OID } from '../../x509/oids.js';
import { pathProblem } from '../../x509/path.js';
import { TdxError } from './errors.js';
import { commonName, type PckInfo } from './pck.js';
import type { TdxQuote } from './quote.js';
import type { TcbVerdict } from './verify.js';

/** Largest collateral document accepted (Intel's are about 20 KB). */
export const MAX_COLLATERAL_BYTES = 256 * 1024;
/** Most TCB levels, module identities or CRL entries read from one document. */
const MAX_ITEMS = 4096;
const TCB_SIGNING_CN = 'Intel SGX TCB Signing';
const ECDSA_SHA256_DER = seq(oid(OID.ecdsaSha256));

export interface TdxCollateral {
  readonly tcbInfo: string;
  readonly tcbInfoSignature: Buffer;
  readonly tcbInfoChain: readonly Buffer[];
  readonly qeIdentity: string;
  readonly qeIdentitySignature: Buffer;
  readonly qeIdentityChain: readonly Buffer[];
  readonly pckCrl: Buffer;
  readonly pckCrlChain: readonly Buffer[];
  readonly rootCrl: Buffer;
  /** The FMSPC the TCB info names (upper-case hex), read before verification only to pick the document. */
  readonly fmspc: string;
}

const bad = (msg: string): never => {
  throw new TdxError('collateral', `collateral: ${msg}`);
};

type Obj = Record<string, unknown>;
const obj = (v: unknown, what: string): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : bad(`${what} is not an object`));
const str = (o: Obj, k: string, what: string): string => (typeof o[k] === 'string' ? (o[k] as string) : bad(`${what}.${k} is not a string`));
const num = (o: Obj, k: string, what: string): number =>
  typeof o[k] === 'number' && Number.isInteger(o[k]) && (o[k] as number) >= 0 && (o[k] as number) <= 0xffff
    ? (o[k] as number)
    : bad(`${what}.${k} is not a small integer`);
const arr = (o: Obj, k: string, what: string): unknown[] => {
  const v = o[k];
  if (!Array.isArray(v) || v.length > MAX_ITEMS) return bad(`${what}.${k} is not a list of at most ${MAX_ITEMS}`);
  return v;
};
const hexOf = (s: string, bytes: number | undefined, what: string): Buffer => {
  if (!/^([0-9a-fA-F]{2})*$/.test(s) || (bytes !== undefined && s.length !== bytes * 2)) bad(`${what} is not ${bytes ?? 'some'} bytes of hex`);
  return Buffer.from(s, 'hex');
};
const date = (s: string, what: string): number => {
  const t = Date.parse(s);
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(s) || Number.isNaN(t)) bad(`${what} is not an ISO 8601 UTC instant`);
  return t;
};
const pemChain = (s: string, what: string): Buffer[] => {
  try {
    const blocks = decodePem(s).filter((b) => b.label === 'CERTIFICATE');
    if (blocks.length === 0 || blocks.length > 4) bad(`${what} holds ${blocks.length} certificates`);
    return blocks.map((b) => b.der);
  } catch (e) {
    if (e instanceof TdxError) throw e;
    return bad(`${what}: ${(e as Error).message}`);
  }
};

function parseJson(text: string, what: string): unknown {
  try {
    return parseStrictJson(text);
  } catch (e) {
    return bad(`${what} is not strict JSON: ${(e as Error).message}`);
  }
}

/** Parses one collateral document (dcap-qvl's JSON shape); signatures are checked by `evaluateTcb`. */
export function parseTdxCollateral(text: string): TdxCollateral {
  if (text.length > MAX_COLLATERAL_BYTES) bad(`larger than ${MAX_COLLATERAL_BYTES} bytes`);
  const o = obj(parseJson(text, 'the collateral'), 'the collateral');
  const tcbInfo = str(o, 'tcb_info', 'collateral');
  const fmspc = str(obj(parseJson(tcbInfo, 'tcb_info'), 'tcb_info'), 'fmspc', 'tcb_info');
  return {
    tcbInfo,
    tcbInfoSignature: hexOf(str(o, 'tcb_info_signature', 'collateral'), 64, 'tcb_info_signature'),
    tcbInfoChain: pemChain(str(o, 'tcb_info_issuer_chain', 'collateral'), 'tcb_info_issuer_chain'),
    qeIdentity: str(o, 'qe_identity', 'collateral'),
    qeIdentitySignature: hexOf(str(o, 'qe_identity_signature', 'collateral'), 64, 'qe_identity_signature'),
    qeIdentityChain: pemChain(str(o, 'qe_identity_issuer_chain', 'collateral'), 'qe_identity_issuer_chain'),
    pckCrl: hexOf(str(o, 'pck_crl', 'collateral'), undefined, 'pck_crl'),
    pckCrlChain: pemChain(str(o, 'pck_crl_issuer_chain', 'collateral'), 'pck_crl_issuer_chain'),
    rootCrl: hexOf(str(o, 'root_ca_crl', 'collateral'), undefined, 'root_ca_crl'),
    fmspc: hexOf(fmspc, 6, 'tcb_info.fmspc').toString('hex'),
  };
}

interface Crl {
  readonly issuer: Buffer;
  readonly thisUpdate: number;
  readonly nextUpdate: number;
  readonly revoked: ReadonlySet<string>;
  readonly tbs: Buffer;
  readonly signature: Buffer;
}

/** A CRL (RFC 5280 §5) as Intel issues it: v2, ECDSA-SHA256, nextUpdate present. */
export function parseCrl(der: Buffer, what: string): Crl {
  try {
    const outer = new SeqReader(parseOne(der, TAG.SEQUENCE), what);
    const tbsTlv = outer.next(TAG.SEQUENCE, 'tbsCertList');
    const alg = outer.next(TAG.SEQUENCE, 'signatureAlgorithm');
    const sig = decodeBitString(outer.next(TAG.BIT_STRING, 'signature'));
    outer.end(what);
    if (!alg.bytes.equals(ECDSA_SHA256_DER) || sig.unused !== 0) bad(`${what} is not signed with ECDSA-SHA256`);
    const tbs = new SeqReader(tbsTlv, 'tbsCertList');
    const version = tbs.optional(TAG.INTEGER);
    if (!version || integerBytes(version).length !== 1 || version.value[0] !== 1) bad(`${what} is not a v2 CRL`);
    if (!tbs.next(TAG.SEQUENCE, 'signature').bytes.equals(ECDSA_SHA256_DER)) bad(`${what}: inner signature algorithm differs`);
    const issuer = tbs.next(TAG.SEQUENCE, 'issuer').bytes;
    const timeTag = () => (tbs.peekTag() === TAG.GENERALIZED_TIME ? TAG.GENERALIZED_TIME : TAG.UTC_TIME);
    const thisUpdate = decodeTime(tbs.next(timeTag(), 'thisUpdate')).getTime();
    const nextUpdate = decodeTime(tbs.next(timeTag(), 'nextUpdate')).getTime();
    const revoked = new Set<string>();
    const list = tbs.optional(TAG.SEQUENCE);
    if (list) {
      const entries = new SeqReader(list, 'revokedCertificates');
      for (let i = 0; entries.peekTag() !== undefined; i++) {
        if (i >= MAX_ITEMS) bad(`${what} has more than ${MAX_ITEMS} entries`);
        const e = new SeqReader(entries.next(TAG.SEQUENCE, 'revoked entry'), 'revoked entry');
        revoked.add(integerBytes(e.next(TAG.INTEGER, 'userCertificate')).toString('hex'));
      }
    }
    tbs.optional(0xa0);
    tbs.end('tbsCertList');
    return { issuer, thisUpdate, nextUpdate, revoked, tbs: tbsTlv.bytes, signature: sig.bytes };
  } catch (e) {
    if (e instanceof TdxError) throw e;
    return bad(`${what} is malformed: ${(e as Error).message}`);
  }
}

const keyOf = (c: ParsedCertificate): KeyObject => createPublicKey({ key: c.spki, format: 'der', type: 'spki' });

function checkCrl(crl: Crl, issuer: ParsedCertificate, atMs: number, what: string): void {
  if (!crl.issuer.equals(issuer.subject)) bad(`${what} is issued by another CA than the one it must cover`);
  let ok = false;
  try {
    ok = verify('sha256', crl.tbs, keyOf(issuer), crl.signature);
  } catch {
    ok = false;
  }
  if (!ok) bad(`${what} signature does not verify`);
  if (atMs < crl.thisUpdate || atMs > crl.nextUpdate) bad(`${what} is not current at the verification instant`);
}

/** Verifies a signing chain (TCB Signing certificate, then optionally the root) and a signature by it over the exact text. */
function verifySigned(
  text: string,
  signature: Buffer,
  chain: readonly Buffer[],
  anchors: readonly Buffer[],
  atMs: number,
  rootCrl: Crl,
  what: string,
): ParsedCertificate {
  let signer: ParsedCertificate;
  try {
    signer = parseCertificate(chain[0]!);
  } catch (e) {
    throw new TdxError('collateral', `collateral: ${what} signing certificate is malformed: ${(e as Error).message}`);
  }
  // As in the quote, a root in the document is never an anchor: it must be a pinned one.
  if (chain.slice(1).some((c) => !anchors.some((a) => a.equals(c)))) bad(`${what} issuer chain holds a root that is not pinned`);
  if (commonName(signer.subject) !== TCB_SIGNING_CN) bad(`${what} is not signed by an ${TCB_SIGNING_CN} certificate`);
  const problem = pathProblem([signer], anchors, atMs);
  if (problem) bad(`${what} signing certificate does not chain to a pinned Intel SGX root: ${problem}`);
  if (rootCrl.revoked.has(signer.serial.toString('hex'))) bad(`${what} signing certificate is revoked`);
  let ok = false;
  try {
    ok = verify('sha256', Buffer.from(text, 'utf8'), { key: keyOf(signer), dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    ok = false;
  }
  if (!ok) bad(`${what} signature does not verify`);
  return signer;
}

/** The TCB statuses Intel's collateral uses. */
export const TCB_STATUSES: readonly string[] = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
  'Revoked',
];
const status = (o: Obj, what: string): string => {
  const s = str(o, 'tcbStatus', what);
  return TCB_STATUSES.includes(s) ? s : bad(`${what}.tcbStatus ${JSON.stringify(s.slice(0, 40))} is not a known status`);
};
const advisories = (o: Obj, what: string): string[] =>
  o.advisoryIDs === undefined
    ? []
    : arr(o, 'advisoryIDs', what).map((a) => (typeof a === 'string' && /^INTEL-SA-\d{5}$/.test(a) ? a : bad(`${what}.advisoryIDs`)));

/** Intel's convergence of the platform status with the QE's or the TDX module's (QVL `convergeTcbStatus`). */
export function convergeStatus(platform: string, other: string): string {
  if (platform === 'Revoked' || other === 'Revoked') return 'Revoked';
  if (other !== 'OutOfDate') return platform;
  if (platform === 'ConfigurationNeeded' || platform === 'ConfigurationAndSWHardeningNeeded' || platform === 'OutOfDateConfigurationNeeded')
    return 'OutOfDateConfigurationNeeded';
  return 'OutOfDate';
}

const svns = (comps: unknown[], what: string): number[] => {
  if (comps.length !== 16) bad(`${what} does not have 16 components`);
  return comps.map((c, i) => num(obj(c, `${what}[${i}]`), 'svn', `${what}[${i}]`));
};

function masked(a: Buffer, mask: Buffer): Buffer {
  return Buffer.from(a.map((x, i) => x & mask[i]!));
}

/** A collateral document whose signatures, chains, CRLs and dates were checked, for one PCK CA. */
export interface VerifiedCollateral {
  readonly tcb: Obj;
  readonly qe: Obj;
  readonly rootRevoked: ReadonlySet<string>;
  readonly pckRevoked: ReadonlySet<string>;
  /** The window inside which every document, CRL and certificate checked is current. */
  readonly from: number;
  readonly until: number;
}

/**
 * Checks everything of a document that does not depend on the quote: the root CRL (pinned root),
 * the PCK CRL (by `pckCa`), the TCB info and QE identity signatures over their exact text by a
 * TCB Signing certificate to the pinned root, their ids, versions and dates.
 */
export function verifyCollateral(c: TdxCollateral, pckCa: ParsedCertificate, anchors: readonly Buffer[], at: Date): VerifiedCollateral {
  const atMs = at.getTime();
  const rootCrl = parseCrl(c.rootCrl, 'root CA CRL');
  const rootAnchor = anchors.map((a) => parseCertificate(a)).find((a) => a.subject.equals(rootCrl.issuer));
  if (!rootAnchor) return bad('root CA CRL is not issued by a pinned root');
  checkCrl(rootCrl, rootAnchor, atMs, 'root CA CRL');
  const pckCrl = parseCrl(c.pckCrl, 'PCK CRL');
  checkCrl(pckCrl, pckCa, atMs, 'PCK CRL');
  const tcbSigner = verifySigned(c.tcbInfo, c.tcbInfoSignature, c.tcbInfoChain, anchors, atMs, rootCrl, 'TCB info');
  const qeSigner = verifySigned(c.qeIdentity, c.qeIdentitySignature, c.qeIdentityChain, anchors, atMs, rootCrl, 'QE identity');
  const tcb = obj(parseJson(c.tcbInfo, 'tcb_info'), 'tcb_info');
  const qe = obj(parseJson(c.qeIdentity, 'qe_identity'), 'qe_identity');
  if (str(tcb, 'id', 'tcb_info') !== 'TDX' || num(tcb, 'version', 'tcb_info') !== 3) bad('tcb_info is not a TDX TCB info v3');
  if (num(tcb, 'tcbType', 'tcb_info') !== 0) bad('tcb_info.tcbType is not 0 (the only type Intel defines)');
  const tcbFrom = date(str(tcb, 'issueDate', 'tcb_info'), 'tcb_info.issueDate');
  const tcbUntil = date(str(tcb, 'nextUpdate', 'tcb_info'), 'tcb_info.nextUpdate');
  if (atMs < tcbFrom || atMs > tcbUntil) bad('TCB info is not current at the verification instant');
  if (str(qe, 'id', 'qe_identity') !== 'TD_QE' || num(qe, 'version', 'qe_identity') !== 2) bad('qe_identity is not a TD_QE identity v2');
  const qeFrom = date(str(qe, 'issueDate', 'qe_identity'), 'qe_identity.issueDate');
  const qeUntil = date(str(qe, 'nextUpdate', 'qe_identity'), 'qe_identity.nextUpdate');
  if (atMs < qeFrom || atMs > qeUntil) bad('QE identity is not current at the verification instant');
  const certs = [rootAnchor, tcbSigner, qeSigner];
  return {
    tcb,
    qe,
    rootRevoked: rootCrl.revoked,
    pckRevoked: pckCrl.revoked,
    from: Math.max(rootCrl.thisUpdate, pckCrl.thisUpdate, tcbFrom, qeFrom, ...certs.map((x) => x.notBefore.getTime())),
    until: Math.min(rootCrl.nextUpdate, pckCrl.nextUpdate, tcbUntil, qeUntil, ...certs.map((x) => x.notAfter.getTime())),
  };
}

/**
 * The TCB status of a verified quote from one collateral document: signatures, chains, CRLs and
 * dates first (`verifyCollateral`, or its result `checked` for this PCK CA at this instant); then
 * revocation of the PCK certificate and its CA, the FMSPC, the QE identity, the TDX module
 * identity and the TCB level.
 */
export function evaluateTdxTcb(q: TdxQuote, pck: PckInfo, c: TdxCollateral, anchors: readonly Buffer[], at: Date, checked?: VerifiedCollateral): TcbVerdict {
  const v = checked ?? verifyCollateral(c, pck.ca, anchors, at);
  const { tcb, qe } = v;
  if (v.rootRevoked.has(pck.ca.serial.toString('hex'))) bad(`the ${pck.caName} is revoked`);
  if (v.pckRevoked.has(pck.leaf.serial.toString('hex'))) bad('the PCK certificate is revoked');
  if (!hexOf(str(tcb, 'fmspc', 'tcb_info'), 6, 'tcb_info.fmspc').equals(pck.fmspc)) bad('TCB info is for another FMSPC than the PCK certificate');
  if (!hexOf(str(tcb, 'pceId', 'tcb_info'), 2, 'tcb_info.pceId').equals(pck.pceId)) bad('TCB info is for another PCE than the PCK certificate');

  // The quoting enclave is Intel's TD QE, at a known TCB.
  const r = q.qeReport;
  if (!hexOf(str(qe, 'mrsigner', 'qe_identity'), 32, 'qe_identity.mrsigner').equals(r.mrSigner))
    throw new TdxError('qe', 'the QE is not signed by the key the QE identity names');
  if (num(qe, 'isvprodid', 'qe_identity') !== r.isvProdId) throw new TdxError('qe', 'the QE product id is not the QE identity one');
  const miscMask = hexOf(str(qe, 'miscselectMask', 'qe_identity'), 4, 'miscselectMask').readUInt32BE(0);
  const misc = hexOf(str(qe, 'miscselect', 'qe_identity'), 4, 'miscselect').readUInt32BE(0);
  if ((r.miscSelect & miscMask) >>> 0 !== (misc & miscMask) >>> 0) throw new TdxError('qe', 'the QE MISCSELECT does not match the QE identity');
  const attrMask = hexOf(str(qe, 'attributesMask', 'qe_identity'), 16, 'attributesMask');
  if (!masked(r.attributes, attrMask).equals(masked(hexOf(str(qe, 'attributes', 'qe_identity'), 16, 'attributes'), attrMask)))
    throw new TdxError('qe', 'the QE attributes do not match the QE identity');
  const qeLevel = arr(qe, 'tcbLevels', 'qe_identity')
    .map((l, i) => obj(l, `qe_identity.tcbLevels[${i}]`))
    .find((l, i) => r.isvSvn >= num(obj(l.tcb, `qe_identity.tcbLevels[${i}].tcb`), 'isvsvn', 'tcb'));
  if (!qeLevel) throw new TdxError('policy', `the QE ISVSVN ${r.isvSvn} is below every level of the QE identity`);
  const qeStatus = status(qeLevel, 'qe_identity level');

  // The TDX module: version 0 is described by tdxModule, later ones by tdxModuleIdentities.
  const tee = q.body.teeTcbSvn;
  const moduleVersion = tee[1]!;
  let moduleStatus = 'UpToDate';
  let moduleAdvisories: string[] = [];
  const checkModule = (m: Obj, what: string) => {
    if (!hexOf(str(m, 'mrsigner', what), 48, `${what}.mrsigner`).equals(q.body.mrSignerSeam))
      throw new TdxError('policy', `MRSIGNERSEAM is not the ${what} signer`);
    const mask = hexOf(str(m, 'attributesMask', what), 8, `${what}.attributesMask`);
    if (!masked(q.body.seamAttributes, mask).equals(masked(hexOf(str(m, 'attributes', what), 8, `${what}.attributes`), mask)))
      throw new TdxError('policy', `SEAM attributes do not match ${what}`);
  };
  if (moduleVersion === 0) checkModule(obj(tcb.tdxModule, 'tcb_info.tdxModule'), 'tcb_info.tdxModule');
  else {
    const id = `TDX_${moduleVersion.toString(16).toUpperCase().padStart(2, '0')}`;
    const m = arr(tcb, 'tdxModuleIdentities', 'tcb_info')
      .map((x, i) => obj(x, `tdxModuleIdentities[${i}]`))
      .find((x) => x.id === id);
    if (!m) throw new TdxError('policy', `TDX module ${id} is not in the TCB info`);
    checkModule(m, id);
    const level = arr(m, 'tcbLevels', id)
      .map((x, i) => obj(x, `${id}.tcbLevels[${i}]`))
      .find((x) => tee[0]! >= num(obj(x.tcb, `${id} tcb`), 'isvsvn', `${id} tcb`));
    if (!level) throw new TdxError('policy', `TDX module ${id} SVN ${tee[0]} is below every level of the TCB info`);
    moduleStatus = status(level, id);
    moduleAdvisories = advisories(level, id);
  }

  // The first TCB level the platform (PCK TCB) and the TD's TEE TCB SVN both reach.
  const from = moduleVersion > 0 ? 2 : 0;
  for (const [i, raw] of arr(tcb, 'tcbLevels', 'tcb_info').entries()) {
    const level = obj(raw, `tcb_info.tcbLevels[${i}]`);
    const t = obj(level.tcb, `tcb_info.tcbLevels[${i}].tcb`);
    const sgx = svns(arr(t, 'sgxtcbcomponents', 'tcb'), `tcbLevels[${i}].sgxtcbcomponents`);
    const tdx = svns(arr(t, 'tdxtcbcomponents', 'tcb'), `tcbLevels[${i}].tdxtcbcomponents`);
    if (pck.tcb.pceSvn < num(t, 'pcesvn', 'tcb') || sgx.some((s, k) => pck.tcb.sgxComponents[k]! < s)) continue;
    if (tdx.some((s, k) => k >= from && tee[k]! < s)) continue;
    const platform = status(level, `tcbLevels[${i}]`);
    return {
      evaluated: true,
      status: convergeStatus(convergeStatus(platform, qeStatus), moduleStatus),
      advisories: [...new Set([...advisories(level, `tcbLevels[${i}]`), ...moduleAdvisories, ...advisories(qeLevel, 'qe_identity level')])].sort(),
    };
  }
  throw new TdxError('policy', 'no TCB level of the TCB info matches the platform and TD (TCB unrecognized)');
}

/** Verified documents kept per (document, PCK CA): a fleet has few FMSPCs and few CAs. */
export const COLLATERAL_CACHE_SIZE = 256;

/**
 * An evaluator over the documents an operator supplied: the one for the PCK's FMSPC, if any. A
 * document verified for a PCK CA is reused while the instant is inside the window its CRLs,
 * documents and signing certificates are all current in.
 */
export function collateralEvaluator(docs: readonly TdxCollateral[], anchors: readonly Buffer[]) {
  const cache = new BoundedCache<string, VerifiedCollateral>(COLLATERAL_CACHE_SIZE);
  return (q: TdxQuote, pck: PckInfo, at: Date): TcbVerdict => {
    const fmspc = pck.fmspc.toString('hex');
    const i = docs.findIndex((d) => d.fmspc === fmspc);
    if (i < 0) return { evaluated: false, why: `no Intel collateral was supplied for FMSPC ${fmspc}` };
    const key = `${i}:${createHash('sha256').update(pck.ca.der).digest('hex')}`;
    const t = at.getTime();
    let v = cache.get(key);
    if (!v || t < v.from || t > v.until) {
      v = verifyCollateral(docs[i]!, pck.ca, anchors, at);
      cache.set(key, v);
    }
    return evaluateTdxTcb(q, pck, docs[i]!, anchors, at, v);
  };
}

/** Collateral documents from files, or from every `*.json` file of a directory. */
export function readCollateralFiles(paths: readonly string[], what: string): TdxCollateral[] {
  return paths.flatMap((p) => {
    const files = statSync(p, { throwIfNoEntry: false })?.isDirectory()
      ? readdirSync(p)
          .filter((n) => n.endsWith('.json'))
          .sort()
          .map((n) => join(p, n))
      : [p];
    return files.map((f) => {
      try {
        return parseTdxCollateral(readInputFile(f, what).toString('utf8'));
      } catch (e) {
        throw new Error(`${what}: ${f}: ${(e as Error).message}`);
      }
    });
  });
}
