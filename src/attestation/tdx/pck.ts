/**
 * The PCK certificate chain inside a TDX quote (certification data type 5: PEM, leaf first) and
 * the Intel SGX extensions of the PCK certificate (Intel SGX PCK Certificate and CRL Profile,
 * OID 1.2.840.113741.1.13.1: PPID, TCB, PCE-ID, FMSPC). UNTRUSTED input: the PEM text must be
 * certificates and whitespace only (then NUL terminators), two or three of them, and the path
 * leaf → PCK Platform/Processor CA must validate to a pinned anchor; a root copied in the quote
 * is never one, and must be the anchor's own certificate when it is there.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { BoundedCache } from '../../cache/bounded.js';
import { SeqReader, TAG, children, decodeOid, decodeSmallInt, parseOne, type Tlv } from '../../der/der.js';
import { decodePem, encodePem } from '../../der/pem.js';
import { parseCertificate, type ParsedCertificate } from '../../x509/certificate.js';
import { OID } from '../../x509/oids.js';
import { pathProblem } from '../../x509/path.js';
import { TdxError } from './errors.js';
import { sha256Hex } from './roots.js';

export const OID_SGX_EXTENSIONS = '1.2.840.113741.1.13.1';
const OID_PPID = `${OID_SGX_EXTENSIONS}.1`;
const OID_TCB = `${OID_SGX_EXTENSIONS}.2`;
const OID_PCEID = `${OID_SGX_EXTENSIONS}.3`;
const OID_FMSPC = `${OID_SGX_EXTENSIONS}.4`;

export const PCK_LEAF_CN = 'Intel SGX PCK Certificate';
/** The intermediates that issue PCK certificates; any other product's CA is refused. */
export const PCK_CA_CNS: readonly string[] = ['Intel SGX PCK Platform CA', 'Intel SGX PCK Processor CA'];
/** Most entries of one SGX extension sequence (Intel's profile: 7 at the top, 18 in the TCB). */
const MAX_SGX_ENTRIES = 32;

export interface PckTcb {
  /** SGX TCB components 1..16 (CPUSVN components as Intel's TCB info orders them). */
  readonly sgxComponents: readonly number[];
  readonly pceSvn: number;
  readonly cpuSvn: Buffer;
}

export interface PckInfo {
  readonly leaf: ParsedCertificate;
  readonly ca: ParsedCertificate;
  /** The leaf's public key (P-256): it must have signed the QE report. */
  readonly key: KeyObject;
  readonly caName: string;
  readonly ppid: Buffer;
  readonly fmspc: Buffer;
  readonly pceId: Buffer;
  readonly tcb: PckTcb;
  /** SHA-256 of the anchor the chain reached. */
  readonly anchorSha256: string;
}

const fail = (msg: string): never => {
  throw new TdxError('chain', `PCK chain: ${msg}`);
};

/**
 * Splits the embedded PEM strictly: CERTIFICATE blocks exactly as Intel's QE writes them (the
 * canonical RFC 7468 form: 64-character base64 lines, `\n` line ends, nothing between blocks),
 * optionally followed by one NUL terminator. The text is not signed, so any other spelling of
 * the same certificates is refused rather than accepted as the same evidence.
 */
export function splitPckChain(pem: Buffer): Buffer[] {
  const end = pem.length > 0 && pem[pem.length - 1] === 0 ? pem.length - 1 : pem.length;
  const text = pem.subarray(0, end).toString('latin1');
  if (/[^\x20-\x7e\n]/.test(text)) fail('PEM text holds bytes that are not printable ASCII or newlines');
  let blocks: ReturnType<typeof decodePem>;
  try {
    blocks = decodePem(text);
  } catch (e) {
    return fail((e as Error).message);
  }
  if (blocks.length < 2 || blocks.length > 3) fail(`${blocks.length} certificates; want the PCK certificate, its CA, and optionally the root`);
  if (blocks.some((b) => b.label !== 'CERTIFICATE')) fail('a PEM block is not a CERTIFICATE');
  if (blocks.map((b) => encodePem('CERTIFICATE', b.der)).join('') !== text) fail('not the canonical PEM encoding of its certificates');
  return blocks.map((b) => b.der);
}

/** The commonName of a Name (DER), when it has exactly one. */
export function commonName(name: Buffer): string | undefined {
  const found: string[] = [];
  for (const rdn of children(parseOne(name, TAG.SEQUENCE))) {
    for (const atv of children(rdn)) {
      const r = new SeqReader(atv, 'AttributeTypeAndValue');
      const type = decodeOid(r.next(TAG.OID, 'type'));
      if (type === OID.commonName) found.push(r.next(r.peekTag() ?? TAG.UTF8_STRING, 'value').value.toString('utf8'));
    }
  }
  return found.length === 1 ? found[0] : undefined;
}

function extensionValue(cert: ParsedCertificate, oid: string): Buffer | undefined {
  const tbs = children(parseOne(cert.tbs, TAG.SEQUENCE));
  const wrap = tbs.find((t) => t.tag === 0xa3);
  if (!wrap) return undefined;
  for (const e of children(children(wrap)[0]!)) {
    const r = new SeqReader(e, 'extension');
    if (decodeOid(r.next(TAG.OID, 'extnID')) !== oid) continue;
    r.optional(TAG.BOOLEAN);
    return r.next(TAG.OCTET_STRING, 'extnValue').value;
  }
  return undefined;
}

function entries(t: Tlv, what: string): Map<string, Tlv> {
  const items = children(t);
  if (items.length > MAX_SGX_ENTRIES) fail(`${what}: more than ${MAX_SGX_ENTRIES} entries`);
  const out = new Map<string, Tlv>();
  for (const item of items) {
    const r = new SeqReader(item, what);
    const id = decodeOid(r.next(TAG.OID, `${what} id`));
    const value = r.next(r.peekTag() ?? TAG.NULL, `${what} value`);
    r.end(what);
    if (out.has(id)) fail(`${what}: duplicate ${id}`);
    out.set(id, value);
  }
  return out;
}

function octets(m: Map<string, Tlv>, id: string, n: number, what: string): Buffer {
  const t = m.get(id);
  if (!t || t.tag !== TAG.OCTET_STRING || t.value.length !== n) return fail(`SGX extension ${what} missing or not ${n} bytes`);
  return Buffer.from(t.value);
}

/** Parses the SGX extensions of a PCK certificate. */
export function parseSgxExtensions(cert: ParsedCertificate): { ppid: Buffer; fmspc: Buffer; pceId: Buffer; tcb: PckTcb } {
  const value = extensionValue(cert, OID_SGX_EXTENSIONS);
  if (!value) return fail('the PCK certificate has no SGX extensions');
  const top = entries(parseOne(value, TAG.SEQUENCE), 'SGX extensions');
  const tcbTlv = top.get(OID_TCB);
  if (!tcbTlv || tcbTlv.tag !== TAG.SEQUENCE) return fail('SGX extension TCB missing');
  const tcb = entries(tcbTlv, 'SGX TCB');
  const sgxComponents: number[] = [];
  for (let i = 1; i <= 16; i++) {
    const t = tcb.get(`${OID_TCB}.${i}`);
    if (!t || t.tag !== TAG.INTEGER) return fail(`SGX TCB component ${i} missing`);
    const v = decodeSmallInt(t);
    if (v > 255) fail(`SGX TCB component ${i} is out of range`);
    sgxComponents.push(v);
  }
  const pce = tcb.get(`${OID_TCB}.17`);
  if (!pce || pce.tag !== TAG.INTEGER) return fail('SGX TCB PCESVN missing');
  const pceSvn = decodeSmallInt(pce);
  if (pceSvn > 0xffff) fail('SGX TCB PCESVN is out of range');
  return {
    ppid: octets(top, OID_PPID, 16, 'PPID'),
    fmspc: octets(top, OID_FMSPC, 6, 'FMSPC'),
    pceId: octets(top, OID_PCEID, 2, 'PCE-ID'),
    tcb: { sgxComponents, pceSvn, cpuSvn: octets(tcb, `${OID_TCB}.18`, 16, 'CPUSVN') },
  };
}

/** Verified PCK chains (by SHA-256 of the exact embedded PEM), each with the window all its certificates are valid in. */
export type PckChainCache = BoundedCache<string, { readonly info: PckInfo; readonly from: number; readonly until: number }>;
/** Entries of a verifier's PCK chain cache: one per platform, a fleet's worth. */
export const PCK_CACHE_SIZE = 4096;
export const newPckChainCache = (): PckChainCache => new BoundedCache(PCK_CACHE_SIZE);

/**
 * `verifyPckChain` through `cache`, for a fixed set of anchors (the cache belongs to one
 * verifier): a chain verified before is reused while the instant is inside the validity of every
 * certificate of its path, anchor included.
 */
export function verifyPckChainCached(pem: Buffer, anchors: readonly Buffer[], at: Date, cache: PckChainCache): PckInfo {
  const key = createHash('sha256').update(pem).digest('hex');
  const t = at.getTime();
  const hit = cache.get(key);
  if (hit && t >= hit.from && t <= hit.until) return hit.info;
  const info = verifyPckChain(pem, anchors, at);
  const anchor = parseCertificate(anchors.find((a) => sha256Hex(a) === info.anchorSha256)!);
  const certs = [info.leaf, info.ca, anchor];
  cache.set(key, { info, from: Math.max(...certs.map((c) => c.notBefore.getTime())), until: Math.min(...certs.map((c) => c.notAfter.getTime())) });
  return info;
}

/**
 * Verifies the embedded chain to one of `anchors` (DER) at `at`: PCK certificate (P-256, with
 * SGX extensions, named as Intel names it) issued by a PCK Platform or Processor CA, which
 * chains to a pinned anchor, recognised by its key.
 */
export function verifyPckChain(pem: Buffer, anchors: readonly Buffer[], at: Date): PckInfo {
  if (anchors.length === 0) fail('no Intel SGX root is configured');
  const ders = splitPckChain(pem);
  let certs: ParsedCertificate[];
  try {
    certs = ders.map((d) => parseCertificate(d));
  } catch (e) {
    return fail(`a certificate is malformed: ${(e as Error).message}`);
  }
  const [leaf, ca, copiedRoot] = certs as [ParsedCertificate, ParsedCertificate, ParsedCertificate | undefined];
  const names = (): { caName: string; sgx: ReturnType<typeof parseSgxExtensions> } => {
    const leafName = commonName(leaf.subject);
    const caName = commonName(ca.subject);
    if (leafName !== PCK_LEAF_CN) return fail(`the leaf is ${JSON.stringify(leafName ?? '')}, not an ${PCK_LEAF_CN}`);
    if (caName === undefined || !PCK_CA_CNS.includes(caName))
      return fail(`the leaf's issuer is ${JSON.stringify(caName ?? '')}, not a PCK Platform or Processor CA`);
    return { caName, sgx: parseSgxExtensions(leaf) };
  };
  let caName: string;
  let sgx: ReturnType<typeof parseSgxExtensions>;
  try {
    ({ caName, sgx } = names());
  } catch (e) {
    if (e instanceof TdxError) throw e;
    return fail(`a certificate is malformed: ${(e as Error).message}`);
  }
  if (leaf.basicConstraints?.ca) fail('the PCK certificate is a CA certificate');
  if (leaf.unknownCritical.length) fail(`the PCK certificate has unknown critical extension ${leaf.unknownCritical[0]}`);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: leaf.spki, format: 'der', type: 'spki' });
  } catch (e) {
    return fail(`the PCK public key cannot be decoded: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') fail('the PCK key is not ECDSA P-256');
  const atMs = at.getTime();
  const anchor = anchors.find((a) => pathProblem([leaf, ca], [a], atMs) === undefined);
  if (!anchor) return fail(`does not chain to a pinned Intel SGX root: ${pathProblem([leaf, ca], anchors, atMs)}`);
  // A root in the evidence is never an anchor; when one is there it must be the pinned one.
  if (copiedRoot && !copiedRoot.der.equals(anchor))
    fail('the root certificate inside the quote is not the pinned root (a root in the evidence is never trusted)');
  return { leaf, ca, key, caName, ...sgx, anchorSha256: sha256Hex(anchor) };
}
