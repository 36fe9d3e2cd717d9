/**
 * DER templates for the certificates writ signs: X.509-SVIDs and its own CA certificates
 * (X509-SVID §4, RFC 5280). Purpose-built: the constant parts of an SVID are encoded once
 * per signing CA, so minting costs one signature plus a few small buffer copies.
 */
import { createHash, randomFillSync, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import * as der from '../der/der.js';
import { OID } from '../x509/oids.js';

/** Serial numbers: 16 random bytes, positive, non-zero first byte (RFC 5280 §4.1.2.2: ≤ 20 octets). */
export function randomSerial(): Buffer {
  const b = Buffer.from(randomChunk(16));
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b;
}

// CSPRNG bytes drawn from a pool refilled 4 KiB at a time (one syscall per 256 serials).
const pool = Buffer.alloc(4096);
let poolOff = pool.length;
function randomChunk(n: number): Buffer {
  if (poolOff + n > pool.length) {
    randomFillSync(pool);
    poolOff = 0;
  }
  const out = pool.subarray(poolOff, poolOff + n);
  poolOff += n;
  return out;
}

/** The signature algorithm and hash that a CA key implies. */
export function signatureSchemeFor(key: KeyObject): { algorithm: Buffer; hash: string } {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec' && curve === 'prime256v1') return { algorithm: der.seq(der.oid(OID.ecdsaSha256)), hash: 'sha256' };
  if (key.asymmetricKeyType === 'ec' && curve === 'secp384r1') return { algorithm: der.seq(der.oid(OID.ecdsaSha384)), hash: 'sha384' };
  throw new Error(`template: unsupported CA key ${key.asymmetricKeyType}/${curve}`);
}

/** The certificate signature algorithm for a signer's JWS algorithm (the CA's key type fixes it). */
export function signatureSchemeForAlg(alg: string): { algorithm: Buffer; hash: string } {
  if (alg === 'ES256') return { algorithm: der.seq(der.oid(OID.ecdsaSha256)), hash: 'sha256' };
  if (alg === 'ES384') return { algorithm: der.seq(der.oid(OID.ecdsaSha384)), hash: 'sha384' };
  throw new Error(`template: unsupported CA signing algorithm ${alg}`);
}

export interface NameAttr {
  readonly oid: string;
  readonly value: string;
}

/** A Name (RDNSequence), one attribute per RDN, UTF8String values (PrintableString for C). */
export function encodeName(attrs: readonly NameAttr[]): Buffer {
  return der.seq(...attrs.map((a) => der.set(der.seq(der.oid(a.oid), a.oid === OID.countryName ? der.printable(a.value) : der.utf8(a.value)))));
}

export function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? der.seq(der.oid(id), der.bool(true), der.octets(value)) : der.seq(der.oid(id), der.octets(value));
}

export function basicConstraints(ca: boolean, pathLen?: number): Buffer {
  const parts: Buffer[] = [];
  if (ca) parts.push(der.bool(true));
  if (ca && pathLen !== undefined) parts.push(der.smallInt(pathLen));
  return extension(OID.basicConstraints, true, der.seq(...parts));
}

/** keyUsage from bit numbers (RFC 5280 §4.2.1.3), DER named-bit-list minimal encoding. */
export function keyUsage(bits: readonly number[]): Buffer {
  const max = Math.max(...bits);
  const nbytes = (max >> 3) + 1;
  const bytes = Buffer.alloc(nbytes);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  const unused = 7 - (max & 7);
  return extension(OID.keyUsage, true, der.tlv(der.TAG.BIT_STRING, Buffer.from([unused]), bytes));
}

export function extKeyUsage(oids: readonly string[]): Buffer {
  return extension(OID.extKeyUsage, false, der.seq(...oids.map(der.oid)));
}

/** subjectAltName with URI, DNS and IP names. */
export function subjectAltName(uris: readonly string[], dns: readonly string[] = [], ips: readonly string[] = []): Buffer {
  const names = [
    ...uris.map((u) => der.tlv(0x86, Buffer.from(u, 'latin1'))),
    ...dns.map((d) => der.tlv(0x82, Buffer.from(d, 'latin1'))),
    ...ips.map((ip) => der.tlv(0x87, ipBytes(ip))),
  ];
  return extension(OID.subjectAltName, false, der.seq(...names));
}

function ipBytes(ip: string): Buffer {
  const v = isIP(ip);
  if (v === 4) return Buffer.from(ip.split('.').map(Number));
  if (v === 6) {
    const [head, tail] = ip.split('::') as [string, string | undefined];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    const out = Buffer.alloc(16);
    for (let i = 0; i < groups.length; i++) out.writeUInt16BE(parseInt(groups[i]!, 16), i * 2);
    return out;
  }
  throw new Error(`template: not an IP address: ${ip}`);
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING contents. */
export function keyIdentifier(spki: Buffer): Buffer {
  const outer = der.children(der.parseOne(spki, der.TAG.SEQUENCE));
  const bits = der.decodeBitString(outer[1]!);
  return createHash('sha1').update(bits.bytes).digest();
}

export const subjectKeyId = (spki: Buffer): Buffer => extension(OID.subjectKeyId, false, der.octets(keyIdentifier(spki)));
export const authorityKeyId = (issuerSpki: Buffer): Buffer => extension(OID.authorityKeyId, false, der.seq(der.tlv(0x80, keyIdentifier(issuerSpki))));

const VERSION_3 = der.ctx(0, true, der.smallInt(2));

export interface TbsParts {
  readonly serial: Buffer;
  readonly algorithm: Buffer;
  readonly issuer: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subject: Buffer;
  readonly spki: Buffer;
  readonly extensions: readonly Buffer[];
}

export function encodeTbs(p: TbsParts): Buffer {
  return der.seq(
    VERSION_3,
    der.uint(p.serial),
    p.algorithm,
    p.issuer,
    der.seq(der.time(p.notBefore), der.time(p.notAfter)),
    p.subject,
    p.spki,
    der.ctx(3, true, der.seq(...p.extensions)),
  );
}

/** Signs a TBSCertificate and returns the DER certificate. */
export function signCertificate(tbs: Buffer, algorithm: Buffer, hash: string, key: KeyObject): Buffer {
  return der.seq(tbs, algorithm, der.bitString(sign(hash, tbs, key)));
}

/**
 * Signs a TBSCertificate with a signer whose key may live outside this process (a KMS, a TPM):
 * its JWS signature (IEEE P1363 r‖s for ECDSA) becomes the X.509 ECDSA-Sig-Value (RFC 3279).
 */
export async function signCertificateWith(
  tbs: Buffer,
  algorithm: Buffer,
  signer: { readonly alg: string; sign(input: Buffer): Promise<Buffer> },
): Promise<Buffer> {
  const p1363 = await signer.sign(tbs);
  const n = signer.alg === 'ES256' ? 32 : signer.alg === 'ES384' ? 48 : 0;
  if (n === 0 || p1363.length !== 2 * n) throw new Error(`template: a ${signer.alg} signer returned ${p1363.length} signature bytes`);
  const ecdsaSig = der.seq(der.uint(p1363.subarray(0, n)), der.uint(p1363.subarray(n)));
  return der.seq(tbs, algorithm, der.bitString(ecdsaSig));
}

// ------------------------------------------------------------ single-pass leaf template

/** Bytes a DER header takes for contents of length n (one-byte tags). */
function headerLen(n: number): number {
  return n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : 5;
}

function writeHeader(out: Buffer, off: number, tag: number, n: number): number {
  out[off++] = tag;
  if (n < 0x80) out[off++] = n;
  else if (n < 0x100) {
    out[off++] = 0x81;
    out[off++] = n;
  } else if (n < 0x10000) {
    out[off++] = 0x82;
    out[off++] = n >> 8;
    out[off++] = n & 0xff;
  } else {
    out[off++] = 0x83;
    out[off++] = (n >> 16) & 0xff;
    out[off++] = (n >> 8) & 0xff;
    out[off++] = n & 0xff;
  }
  return off;
}

function writeUtcTime(out: Buffer, off: number, d: Date): number {
  out[off++] = der.TAG.UTC_TIME;
  out[off++] = 13;
  for (const v of [d.getUTCFullYear() % 100, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]) {
    out[off++] = 0x30 + Math.floor(v / 10);
    out[off++] = 0x30 + (v % 10);
  }
  out[off++] = 0x5a;
  return off;
}

const SKI_EXT_HEAD = Buffer.from('301d0603551d0e04160414', 'hex');
const SAN_OID = Buffer.from('0603551d11', 'hex');
const UTC_MAX = Date.UTC(2050, 0, 1);
const UTC_MIN = Date.UTC(1950, 0, 1);

/** The parts of a leaf TBSCertificate that are the same for every SVID under one CA. */
export interface LeafTemplate {
  readonly algorithm: Buffer;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  /** Encoded extensions that never change (constraints, key usages, AKI). */
  readonly constantExtensions: Buffer;
}

/**
 * Encodes a leaf TBSCertificate in one allocation: version 3, a 16-byte positive serial,
 * UTCTime validity, the subject key, and extensions = constant ‖ SKI ‖ SAN(one URI).
 * Returns undefined when a field falls outside the fast path (the caller uses encodeTbs).
 */
export function encodeLeafTbs(tpl: LeafTemplate, serial: Buffer, notBefore: Date, notAfter: Date, spki: Buffer, uri: string): Buffer | undefined {
  const nb = notBefore.getTime();
  const na = notAfter.getTime();
  if (serial.length !== 16 || serial[0]! & 0x80 || serial[0] === 0) return undefined;
  if (nb < UTC_MIN || nb >= UTC_MAX || na < UTC_MIN || na >= UTC_MAX) return undefined;
  const uriLen = Buffer.byteLength(uri, 'latin1');
  const uriTlv = headerLen(uriLen) + uriLen;
  const gnSeq = headerLen(uriTlv) + uriTlv;
  const octet = headerLen(gnSeq) + gnSeq;
  const sanBody = SAN_OID.length + octet;
  const sanExt = headerLen(sanBody) + sanBody;
  const extsBody = tpl.constantExtensions.length + SKI_EXT_HEAD.length + 20 + sanExt;
  const extsSeq = headerLen(extsBody) + extsBody;
  const ctx3 = headerLen(extsSeq) + extsSeq;
  const body = 5 + 18 + tpl.algorithm.length + tpl.issuer.length + 32 + tpl.subject.length + spki.length + ctx3;
  const out = Buffer.allocUnsafe(headerLen(body) + body);
  let o = writeHeader(out, 0, der.TAG.SEQUENCE, body);
  // [0] EXPLICIT version v3, then the 16-byte serial's INTEGER header.
  for (const b of [0xa0, 0x03, 0x02, 0x01, 0x02, der.TAG.INTEGER, 16]) out[o++] = b;
  o += serial.copy(out, o);
  o += tpl.algorithm.copy(out, o);
  o += tpl.issuer.copy(out, o);
  out[o++] = der.TAG.SEQUENCE;
  out[o++] = 30;
  o = writeUtcTime(out, o, notBefore);
  o = writeUtcTime(out, o, notAfter);
  o += tpl.subject.copy(out, o);
  o += spki.copy(out, o);
  o = writeHeader(out, o, 0xa3, extsSeq);
  o = writeHeader(out, o, der.TAG.SEQUENCE, extsBody);
  o += tpl.constantExtensions.copy(out, o);
  o += SKI_EXT_HEAD.copy(out, o);
  o += keyIdentifier(spki).copy(out, o);
  o = writeHeader(out, o, der.TAG.SEQUENCE, sanBody);
  o += SAN_OID.copy(out, o);
  o = writeHeader(out, o, der.TAG.OCTET_STRING, gnSeq);
  o = writeHeader(out, o, der.TAG.SEQUENCE, uriTlv);
  o = writeHeader(out, o, 0x86, uriLen);
  o += out.write(uri, o, 'latin1');
  if (o !== out.length) throw new Error('template: leaf TBS length mismatch');
  return out;
}
