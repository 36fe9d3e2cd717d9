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

export interface NameAttr {
  readonly oid: string;
  readonly value: string;
}

/** A Name (RDNSequence), one attribute per RDN, UTF8String values (PrintableString for C). */
export function encodeName(attrs: readonly NameAttr[]): Buffer {
  return der.seq(
    ...attrs.map((a) => der.set(der.seq(der.oid(a.oid), a.oid === OID.countryName ? der.printable(a.value) : der.utf8(a.value)))),
  );
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
    groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
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
export const authorityKeyId = (issuerSpki: Buffer): Buffer =>
  extension(OID.authorityKeyId, false, der.seq(der.tlv(0x80, keyIdentifier(issuerSpki))));

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
