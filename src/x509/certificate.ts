/**
 * Strict X.509 v3 certificate parsing (RFC 5280 §4.1) of the fields the SVID profile needs.
 * UNTRUSTED input: bounded, exact, duplicate extensions rejected. Signatures are checked
 * elsewhere with Node's crypto; this only exposes the exact bytes that were signed.
 */
import { FormatError } from '../errors.js';
import {
  SeqReader,
  TAG,
  children,
  decodeBitString,
  decodeBoolean,
  decodeOid,
  decodeSmallInt,
  decodeTime,
  integerBytes,
  parseOne,
  readTlv,
} from '../der/der.js';
import { OID, KEY_USAGE } from './oids.js';

export interface ParsedCertificate {
  readonly der: Buffer;
  readonly tbs: Buffer;
  readonly version: number;
  readonly serial: Buffer;
  readonly signatureAlgorithm: string;
  /** The whole signatureAlgorithm AlgorithmIdentifier, DER. */
  readonly signatureAlgorithmDer: Buffer;
  readonly signature: Buffer;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Buffer;
  readonly basicConstraints?: { ca: boolean; pathLen?: number; critical: boolean };
  /** keyUsage bits set, or undefined when the extension is absent. */
  readonly keyUsage?: ReadonlySet<number>;
  readonly extKeyUsage?: readonly string[];
  readonly subjectAltNameCritical?: boolean;
  readonly uris: readonly string[];
  /** directoryName entries of subjectAltName (raw Name DER), e.g. the TPM identity of an EK certificate. */
  readonly directoryNames: readonly Buffer[];
  readonly subjectKeyId?: Buffer;
  readonly authorityKeyId?: Buffer;
  readonly unknownCritical: readonly string[];
  /** writ's key-residency extension value ("tpm"), when present. */
  readonly keyResidency?: string;
}

function bad(msg: string): never {
  throw new FormatError('ERR_DER_MALFORMED', `x509: ${msg}`);
}

/** Most extensions we parse on one certificate. */
const MAX_EXTENSIONS = 32;
/** Most names we parse in one subjectAltName. */
const MAX_SAN_NAMES = 64;

export function parseCertificate(der: Buffer): ParsedCertificate {
  const cert = new SeqReader(parseOne(der, TAG.SEQUENCE), 'certificate');
  const tbsTlv = cert.next(TAG.SEQUENCE, 'tbsCertificate');
  const outerAlg = cert.next(TAG.SEQUENCE, 'signatureAlgorithm');
  const sigBits = decodeBitString(cert.next(TAG.BIT_STRING, 'signature'));
  cert.end('certificate');
  if (sigBits.unused !== 0) bad('signature has unused bits');

  const tbs = new SeqReader(tbsTlv, 'tbsCertificate');
  let version = 1;
  const v = tbs.optional(0xa0);
  if (v) {
    const inner = children(v);
    if (inner.length !== 1) bad('bad version');
    version = decodeSmallInt(inner[0]!) + 1;
    if (version !== 3 && version !== 2) bad(`unsupported version ${version}`);
  }
  const serial = integerBytes(tbs.next(TAG.INTEGER, 'serialNumber'));
  const innerAlg = tbs.next(TAG.SEQUENCE, 'signature');
  if (!innerAlg.bytes.equals(outerAlg.bytes)) bad('tbsCertificate signature algorithm differs from the outer one');
  const issuer = tbs.next(TAG.SEQUENCE, 'issuer').bytes;
  const validity = new SeqReader(tbs.next(TAG.SEQUENCE, 'validity'), 'validity');
  const nb = validity.next(validity.peekTag() === TAG.UTC_TIME ? TAG.UTC_TIME : TAG.GENERALIZED_TIME, 'notBefore');
  const na = validity.next(validity.peekTag() === TAG.UTC_TIME ? TAG.UTC_TIME : TAG.GENERALIZED_TIME, 'notAfter');
  validity.end('validity');
  const subject = tbs.next(TAG.SEQUENCE, 'subject').bytes;
  const spki = tbs.next(TAG.SEQUENCE, 'subjectPublicKeyInfo').bytes;
  tbs.optional(0x81); // issuerUniqueID
  tbs.optional(0x82); // subjectUniqueID
  const extsWrap = tbs.optional(0xa3);
  tbs.end('tbsCertificate');
  if (extsWrap && version !== 3) bad('extensions require version 3');

  const algSeq = new SeqReader(outerAlg, 'algorithm');
  const signatureAlgorithm = decodeOid(algSeq.next(TAG.OID, 'algorithm'));

  const out: {
    -readonly [K in keyof ParsedCertificate]: ParsedCertificate[K];
  } = {
    der,
    tbs: tbsTlv.bytes,
    version,
    serial,
    signatureAlgorithm,
    signatureAlgorithmDer: outerAlg.bytes,
    signature: sigBits.bytes,
    issuer,
    subject,
    notBefore: decodeTime(nb),
    notAfter: decodeTime(na),
    spki,
    uris: [],
    directoryNames: [],
    unknownCritical: [],
  };
  if (!extsWrap) return out;

  const wrap = children(extsWrap);
  if (wrap.length !== 1) bad('bad extensions wrapper');
  const exts = children(wrap[0]!);
  if (exts.length === 0) bad('empty extensions');
  if (exts.length > MAX_EXTENSIONS) bad(`more than ${MAX_EXTENSIONS} extensions`);
  const seen = new Set<string>();
  const unknownCritical: string[] = [];
  for (const e of exts) {
    const r = new SeqReader(e, 'extension');
    const id = decodeOid(r.next(TAG.OID, 'extnID'));
    const critTlv = r.optional(TAG.BOOLEAN);
    const critical = critTlv ? decodeBoolean(critTlv) : false;
    if (critTlv && !critical) bad('explicit default critical=false');
    const value = parseOne(r.next(TAG.OCTET_STRING, 'extnValue').value);
    r.end('extension');
    if (seen.has(id)) bad(`duplicate extension ${id}`);
    seen.add(id);
    switch (id) {
      case OID.basicConstraints: {
        const bc = new SeqReader(value, 'basicConstraints');
        const caTlv = bc.optional(TAG.BOOLEAN);
        const ca = caTlv ? decodeBoolean(caTlv) : false;
        if (caTlv && !ca) bad('basicConstraints: explicit default cA=false');
        const pl = bc.optional(TAG.INTEGER);
        bc.end('basicConstraints');
        out.basicConstraints = { ca, critical, ...(pl ? { pathLen: decodeSmallInt(pl) } : {}) };
        break;
      }
      case OID.keyUsage: {
        const { bytes } = decodeBitString(value);
        const bits = new Set<number>();
        for (let i = 0; i < bytes.length * 8 && i <= KEY_USAGE.decipherOnly; i++) {
          if (bytes[i >> 3]! & (0x80 >> (i & 7))) bits.add(i);
        }
        out.keyUsage = bits;
        break;
      }
      case OID.extKeyUsage: {
        const list = children(value).map(decodeOid);
        if (list.length === 0) bad('empty extKeyUsage');
        out.extKeyUsage = list;
        break;
      }
      case OID.subjectAltName: {
        const names = children(value);
        if (names.length === 0) bad('empty subjectAltName');
        if (names.length > MAX_SAN_NAMES) bad(`more than ${MAX_SAN_NAMES} subjectAltNames`);
        const uris: string[] = [];
        const dirs: Buffer[] = [];
        for (const n of names) {
          // directoryName [4] EXPLICIT Name
          if (n.tag === 0xa4) {
            const inner = children(n);
            if (inner.length !== 1 || inner[0]!.tag !== TAG.SEQUENCE) bad('bad directoryName in subjectAltName');
            dirs.push(inner[0]!.bytes);
          }
          if (n.tag === 0x86) {
            // uniformResourceIdentifier [6] IA5String: ASCII only.
            for (const b of n.value) if (b > 0x7e || b < 0x20) bad('non-IA5 URI in subjectAltName');
            uris.push(n.value.toString('latin1'));
          }
        }
        out.uris = uris;
        out.directoryNames = dirs;
        out.subjectAltNameCritical = critical;
        break;
      }
      case OID.subjectKeyId:
        if (value.tag !== TAG.OCTET_STRING) bad('bad subjectKeyIdentifier');
        out.subjectKeyId = value.value;
        break;
      case OID.authorityKeyId: {
        const aki = new SeqReader(value, 'authorityKeyIdentifier');
        const kid = aki.optional(0x80);
        if (kid) out.authorityKeyId = kid.value;
        break;
      }
      case OID.writKeyResidency:
        if (value.tag !== TAG.UTF8_STRING || value.value.length > 32) bad('bad key residency extension');
        out.keyResidency = value.value.toString('utf8');
        break;
      default:
        if (critical) unknownCritical.push(id);
    }
  }
  out.unknownCritical = unknownCritical;
  return out;
}

/** Splits concatenated DER certificates (as in a gRPC chain or `x5c`). */
export function splitDerChain(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    const { tlv, next } = readTlv(buf, off);
    out.push(tlv.bytes);
    off = next;
  }
  return out;
}
