/**
 * AMD's SEV certificates (AMD KDS: the ARK, the ASK or ASVK it signs, the VCEK or VLEK they
 * sign; "Versioned Chip Endorsement Key" specification 57230) and the GHCB certificate table
 * the host hands the guest with a report (GHCB specification 56421, SNP extended guest request).
 * UNTRUSTED input: a small strict X.509 reader of exactly what these certificates hold (the
 * general x509/ parser decodes every extension value as DER, which a VCEK's raw 64-byte hwID is
 * not), RSASSA-PSS SHA-384 signatures checked with node:crypto over the exact TBS bytes with
 * only AMD's parameter encodings accepted.
 */
import { constants, createPublicKey, verify, type KeyObject } from 'node:crypto';
import {
  SeqReader,
  TAG,
  children,
  ctx,
  decodeBitString,
  decodeBoolean,
  decodeOid,
  decodeSmallInt,
  decodeTime,
  integerBytes,
  oid,
  parseOne,
  seq,
  smallInt,
  tlv,
  type Tlv,
} from '../../der/der.js';
import { AttestationError, WritError } from '../../errors.js';

/** Largest certificate accepted in a table (AMD's are under 2 KiB). */
export const MAX_CERT_BYTES = 8 * 1024;
/** Most entries in a certificate table (VCEK or VLEK, ASK, ARK, and a few extras). */
export const MAX_CERT_TABLE_ENTRIES = 8;
const ENTRY_SIZE = 24;
/** Most extensions on one AMD certificate (a VCEK has 11 to 13). */
const MAX_EXTENSIONS = 24;

const fail = (msg: string, cause?: unknown) =>
  new AttestationError('ERR_EVIDENCE_INVALID', `attestation(sev_snp): ${msg}`, cause === undefined ? undefined : { cause });

const OID_RSA_PSS = '1.2.840.113549.1.1.10';
const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
const OID_MGF1 = '1.2.840.113549.1.1.8';
const OID_CN = '2.5.4.3';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
/** AMD's VCEK/VLEK extensions, under 1.3.6.1.4.1.3704.1 (specification 57230 table 8). */
export const AMD_OID = {
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  fmcSpl: '1.3.6.1.4.1.3704.1.3.9',
  hwId: '1.3.6.1.4.1.3704.1.4',
  cspId: '1.3.6.1.4.1.3704.1.5',
} as const;

/**
 * The RSASSA-PSS AlgorithmIdentifiers AMD's certificates use (RFC 4055 §3.1): SHA-384, MGF1
 * with SHA-384, salt 48, trailer 1; the hash parameters NULL or absent and the trailer field
 * explicit or absent (both occur in KDS certificates). Matching whole encodings leaves no
 * parameter to play with.
 */
export const PSS_SHA384_ALGORITHMS: ReadonlySet<string> = (() => {
  const out = new Set<string>();
  for (const hashNull of [true, false])
    for (const trailer of [true, false]) {
      const h = hashNull ? seq(oid(OID_SHA384), tlv(TAG.NULL)) : seq(oid(OID_SHA384));
      const params = [ctx(0, true, h), ctx(1, true, seq(oid(OID_MGF1), h)), ctx(2, true, smallInt(48)), ...(trailer ? [ctx(3, true, smallInt(1))] : [])];
      out.add(seq(oid(OID_RSA_PSS), seq(...params)).toString('hex'));
    }
  return out;
})();

export interface AmdExtension {
  readonly critical: boolean;
  /** The extnValue OCTET STRING contents. */
  readonly value: Buffer;
}

export interface AmdCertificate {
  readonly der: Buffer;
  readonly tbs: Buffer;
  readonly signatureAlgorithmDer: Buffer;
  readonly signature: Buffer;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  /** The subject's commonName (UTF8String or PrintableString), or "" when absent. */
  readonly commonName: string;
  readonly issuerCommonName: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Buffer;
  readonly extensions: ReadonlyMap<string, AmdExtension>;
  readonly ca: boolean;
  readonly keyCertSign: boolean;
}

function commonNameOf(name: Tlv): string {
  let cn = '';
  for (const rdn of children(name)) {
    for (const atv of children(rdn)) {
      const r = new SeqReader(atv, 'attribute');
      const type = decodeOid(r.next(TAG.OID, 'attribute type'));
      const t = r.next(r.peekTag() ?? TAG.UTF8_STRING, 'attribute value');
      r.end('attribute');
      if (type !== OID_CN) continue;
      if (t.tag !== TAG.UTF8_STRING && t.tag !== TAG.PRINTABLE_STRING) throw fail('certificate: commonName is not a UTF8String or PrintableString');
      if (cn) throw fail('certificate: more than one commonName');
      cn = t.value.toString('utf8');
    }
  }
  return cn;
}

/** Parses one AMD certificate strictly; throws ERR_EVIDENCE_INVALID naming what is wrong. */
export function parseAmdCertificate(der: Buffer, what: string): AmdCertificate {
  if (der.length > MAX_CERT_BYTES) throw fail(`${what}: larger than ${MAX_CERT_BYTES} bytes`);
  try {
    const cert = new SeqReader(parseOne(der, TAG.SEQUENCE), 'certificate');
    const tbsTlv = cert.next(TAG.SEQUENCE, 'tbsCertificate');
    const outerAlg = cert.next(TAG.SEQUENCE, 'signatureAlgorithm');
    const sig = decodeBitString(cert.next(TAG.BIT_STRING, 'signature'));
    cert.end('certificate');
    if (sig.unused !== 0) throw fail(`${what}: signature has unused bits`);
    const tbs = new SeqReader(tbsTlv, 'tbsCertificate');
    const v = tbs.next(0xa0, 'version');
    const vi = children(v);
    if (vi.length !== 1 || decodeSmallInt(vi[0]!) !== 2) throw fail(`${what}: not an X.509 v3 certificate`);
    integerBytes(tbs.next(TAG.INTEGER, 'serialNumber'));
    const innerAlg = tbs.next(TAG.SEQUENCE, 'signature');
    if (!innerAlg.bytes.equals(outerAlg.bytes)) throw fail(`${what}: the two signature algorithms differ`);
    const issuer = tbs.next(TAG.SEQUENCE, 'issuer');
    const validity = new SeqReader(tbs.next(TAG.SEQUENCE, 'validity'), 'validity');
    const nb = validity.next(validity.peekTag() === TAG.UTC_TIME ? TAG.UTC_TIME : TAG.GENERALIZED_TIME, 'notBefore');
    const na = validity.next(validity.peekTag() === TAG.UTC_TIME ? TAG.UTC_TIME : TAG.GENERALIZED_TIME, 'notAfter');
    validity.end('validity');
    const subject = tbs.next(TAG.SEQUENCE, 'subject');
    const spki = tbs.next(TAG.SEQUENCE, 'subjectPublicKeyInfo');
    const extsWrap = tbs.next(0xa3, 'extensions');
    tbs.end('tbsCertificate');
    const wrap = children(extsWrap);
    if (wrap.length !== 1) throw fail(`${what}: bad extensions wrapper`);
    const exts = children(wrap[0]!);
    if (exts.length === 0 || exts.length > MAX_EXTENSIONS) throw fail(`${what}: 1..${MAX_EXTENSIONS} extensions expected, got ${exts.length}`);
    const extensions = new Map<string, AmdExtension>();
    for (const e of exts) {
      const r = new SeqReader(e, 'extension');
      const id = decodeOid(r.next(TAG.OID, 'extnID'));
      const crit = r.optional(TAG.BOOLEAN);
      const critical = crit ? decodeBoolean(crit) : false;
      if (crit && !critical) throw fail(`${what}: extension ${id} encodes the default critical=false`);
      const value = r.next(TAG.OCTET_STRING, 'extnValue').value;
      r.end('extension');
      if (extensions.has(id)) throw fail(`${what}: duplicate extension ${id}`);
      extensions.set(id, { critical, value });
    }
    let ca = false;
    let keyCertSign = false;
    for (const [id, e] of extensions) {
      if (id === OID_BASIC_CONSTRAINTS) {
        const bc = new SeqReader(parseOne(e.value, TAG.SEQUENCE), 'basicConstraints');
        const c = bc.optional(TAG.BOOLEAN);
        ca = c ? decodeBoolean(c) : false;
        bc.optional(TAG.INTEGER);
        bc.end('basicConstraints');
      } else if (id === OID_KEY_USAGE) {
        const ku = decodeBitString(parseOne(e.value, TAG.BIT_STRING)).bytes;
        keyCertSign = ((ku[0] ?? 0) & 0x04) !== 0;
      } else if (e.critical) throw fail(`${what}: unknown critical extension ${id}`);
    }
    return {
      der,
      tbs: tbsTlv.bytes,
      signatureAlgorithmDer: outerAlg.bytes,
      signature: sig.bytes,
      issuer: issuer.bytes,
      subject: subject.bytes,
      commonName: commonNameOf(subject),
      issuerCommonName: commonNameOf(issuer),
      notBefore: decodeTime(nb),
      notAfter: decodeTime(na),
      spki: spki.bytes,
      extensions,
      ca,
      keyCertSign,
    };
  } catch (e) {
    if (e instanceof AttestationError) throw e;
    if (e instanceof WritError) throw fail(`${what}: ${e.message}`, e);
    throw e;
  }
}

/** The certificate's public key, or a typed error when OpenSSL cannot decode it. */
export function publicKeyOf(c: AmdCertificate, what: string): KeyObject {
  try {
    return createPublicKey({ key: c.spki, format: 'der', type: 'spki' });
  } catch (e) {
    throw fail(`${what}: the public key does not decode`, e);
  }
}

/** True when `issuerKey` (RSA) signed `c` with RSASSA-PSS SHA-384, salt 48, AMD's encodings only. */
export function pssSignedBy(c: AmdCertificate, issuerKey: KeyObject): boolean {
  if (issuerKey.asymmetricKeyType !== 'rsa' || !PSS_SHA384_ALGORITHMS.has(c.signatureAlgorithmDer.toString('hex'))) return false;
  try {
    return verify('sha384', c.tbs, { key: issuerKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, c.signature);
  } catch {
    return false;
  }
}

/** An extension whose value is a DER INTEGER 0..255 (the SPL extensions), or undefined when absent. */
export function splExtension(c: AmdCertificate, id: string, what: string): number | undefined {
  const e = c.extensions.get(id);
  if (!e) return undefined;
  try {
    const n = decodeSmallInt(parseOne(e.value, TAG.INTEGER));
    if (n > 255) throw fail(`${what}: extension ${id} is ${n}, above 255`);
    return n;
  } catch (err) {
    if (err instanceof AttestationError) throw err;
    throw fail(`${what}: extension ${id} is not a DER INTEGER`, err);
  }
}

/** An IA5String extension (productName, cspId), or undefined when absent. */
export function stringExtension(c: AmdCertificate, id: string, what: string): string | undefined {
  const e = c.extensions.get(id);
  if (!e) return undefined;
  let t: Tlv;
  try {
    t = parseOne(e.value, TAG.IA5_STRING);
  } catch (err) {
    throw fail(`${what}: extension ${id} is not an IA5String`, err);
  }
  for (const ch of t.value) if (ch < 0x20 || ch > 0x7e) throw fail(`${what}: extension ${id} is not printable ASCII`);
  return t.value.toString('latin1');
}

/**
 * The VCEK's hwID: the raw chip id (64 bytes; 8 on Turin), which KDS stores either bare in the
 * extnValue or, in later certificates, wrapped in a DER OCTET STRING. The two are told apart by
 * length: a bare hwID is never 66 or 10 bytes.
 */
export function hwIdExtension(c: AmdCertificate, what: string): Buffer | undefined {
  const e = c.extensions.get(AMD_OID.hwId);
  if (!e) return undefined;
  const v = e.value;
  if (v.length === 64 || v.length === 8) return v;
  if ((v.length === 66 && v[0] === 0x04 && v[1] === 0x40) || (v.length === 10 && v[0] === 0x04 && v[1] === 0x08)) return v.subarray(2);
  throw fail(`${what}: hwID extension is ${v.length} bytes, not a 64- or 8-byte chip id`);
}

// ------------------------------------------------------------------ certificate table

/** GHCB certificate table GUIDs, in the byte order go-sev-guest and virtee write (RFC 4122). */
export const CERT_GUID = {
  vcek: '63da758d-e664-4564-adc5-f4b93be8accd',
  vlek: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  ask: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  ark: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
} as const;
export type CertKind = keyof typeof CERT_GUID;
const KIND_BY_GUID = new Map(Object.entries(CERT_GUID).map(([k, g]) => [g.replace(/-/g, ''), k as CertKind]));
const guidBytes = (g: string) => Buffer.from(g.replace(/-/g, ''), 'hex');

export interface TableEntry {
  readonly kind: CertKind;
  readonly der: Buffer;
}

/**
 * Parses a GHCB certificate table: 24-byte entries (GUID, offset, length, little-endian), ended
 * by an all-zero entry, then the certificates. `canonical` (writ's own evidence) demands what
 * `encodeCertTable` writes: only the four known GUIDs, each once, the certificates contiguous in
 * entry order right after the header, no trailing byte. Otherwise (a kernel's auxblob) unknown
 * GUIDs are skipped and trailing zero padding is accepted; entries still must lie inside the
 * data, after the header, without overlapping.
 */
export function parseCertTable(data: Buffer, canonical: boolean): TableEntry[] {
  const entries: { kind?: CertKind; guid: string; offset: number; length: number }[] = [];
  let off = 0;
  for (;;) {
    if (off + ENTRY_SIZE > data.length) throw fail('certificate table: truncated header (no terminating entry)');
    const guid = data.subarray(off, off + 16).toString('hex');
    const offset = data.readUInt32LE(off + 16);
    const length = data.readUInt32LE(off + 20);
    off += ENTRY_SIZE;
    if (offset === 0 && length === 0 && /^0+$/.test(guid)) break;
    if (entries.length === MAX_CERT_TABLE_ENTRIES) throw fail(`certificate table: more than ${MAX_CERT_TABLE_ENTRIES} entries`);
    entries.push({ guid, offset, length, ...(KIND_BY_GUID.has(guid) ? { kind: KIND_BY_GUID.get(guid)! } : {}) });
  }
  const header = off;
  const out: TableEntry[] = [];
  const seen = new Set<string>();
  const ranges: [number, number][] = [];
  let cursor = header;
  for (const e of entries) {
    if (seen.has(e.guid)) throw fail(`certificate table: GUID ${e.guid} appears twice`);
    seen.add(e.guid);
    if (e.length === 0 || e.length > MAX_CERT_BYTES) throw fail(`certificate table: entry length ${e.length} is not 1..${MAX_CERT_BYTES}`);
    if (e.offset < header || e.offset + e.length > data.length) throw fail('certificate table: an entry lies outside the certificate data');
    if (ranges.some(([a, b]) => e.offset < b && a < e.offset + e.length)) throw fail('certificate table: entries overlap');
    ranges.push([e.offset, e.offset + e.length]);
    if (canonical) {
      if (!e.kind) throw fail(`certificate table: unknown GUID ${e.guid}`);
      if (e.offset !== cursor) throw fail('certificate table: certificates are not contiguous in entry order');
      cursor += e.length;
    }
    if (e.kind) out.push({ kind: e.kind, der: data.subarray(e.offset, e.offset + e.length) });
  }
  const end = Math.max(header, ...ranges.map(([, b]) => b));
  if (canonical && end !== data.length) throw fail(`certificate table: ${data.length - end} trailing bytes`);
  if (!canonical) {
    const covered = (i: number) => ranges.some(([a, b]) => i >= a && i < b);
    for (let i = header; i < data.length; i++) if (data[i] !== 0 && !covered(i)) throw fail('certificate table: non-zero bytes outside every certificate');
  }
  return out;
}

/** The canonical certificate table of `entries` (the form `parseCertTable(…, true)` accepts). */
export function encodeCertTable(entries: readonly TableEntry[]): Buffer {
  const header = (entries.length + 1) * ENTRY_SIZE;
  const head = Buffer.alloc(header);
  let cursor = header;
  entries.forEach((e, i) => {
    guidBytes(CERT_GUID[e.kind]).copy(head, i * ENTRY_SIZE);
    head.writeUInt32LE(cursor, i * ENTRY_SIZE + 16);
    head.writeUInt32LE(e.der.length, i * ENTRY_SIZE + 20);
    cursor += e.der.length;
  });
  return Buffer.concat([head, ...entries.map((e) => e.der)]);
}
