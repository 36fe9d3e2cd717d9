/**
 * TPM 2.0 structures writ builds and reads (Part 2): TPMT_PUBLIC, TPML_PCR_SELECTION,
 * TPMS_ATTEST, TPMT_SIGNATURE, Names. Parsers are strict: exact lengths, known algorithms only,
 * no trailing bytes. UNTRUSTED input (evidence) is parsed here.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { AttestationError } from '../errors.js';
import { HASHES, TPMA_OBJECT, TPM_ALG, TPM_ECC, TPM_GENERATED_VALUE, TPM_ST } from './constants.js';
import { TpmReader, TpmWriter } from './marshal.js';

const bad = (msg: string) => new AttestationError('ERR_EVIDENCE_INVALID', `tpm: ${msg}`);

export interface SymDef {
  readonly algorithm: number;
  readonly keyBits?: number;
  readonly mode?: number;
}

export type TpmPublic =
  | {
      readonly type: typeof TPM_ALG.RSA;
      readonly nameAlg: number;
      readonly attributes: number;
      readonly authPolicy: Buffer;
      readonly symmetric: SymDef;
      readonly scheme: { scheme: number; hashAlg?: number };
      readonly keyBits: number;
      readonly exponent: number;
      readonly modulus: Buffer;
      /** The exact TPMT_PUBLIC bytes (what the Name hashes). */
      readonly bytes: Buffer;
    }
  | {
      readonly type: typeof TPM_ALG.ECC;
      readonly nameAlg: number;
      readonly attributes: number;
      readonly authPolicy: Buffer;
      readonly symmetric: SymDef;
      readonly scheme: { scheme: number; hashAlg?: number };
      readonly curve: number;
      readonly kdf: { scheme: number; hashAlg?: number };
      readonly x: Buffer;
      readonly y: Buffer;
      readonly bytes: Buffer;
    };

/** A TPMT_PUBLIC before marshalling (distributes over the RSA/ECC union). */
export type PublicTemplate = TpmPublic extends infer T ? (T extends unknown ? Omit<T, 'bytes'> : never) : never;

function writeSym(w: TpmWriter, s: SymDef): void {
  w.u16(s.algorithm);
  if (s.algorithm !== TPM_ALG.NULL) w.u16(s.keyBits!).u16(s.mode!);
}

function writeScheme(w: TpmWriter, s: { scheme: number; hashAlg?: number }): void {
  w.u16(s.scheme);
  if (s.scheme !== TPM_ALG.NULL) w.u16(s.hashAlg!);
}

/** Marshals a TPMT_PUBLIC. */
export function marshalPublic(p: PublicTemplate): Buffer {
  const w = new TpmWriter().u16(p.type).u16(p.nameAlg).u32(p.attributes).tpm2b(p.authPolicy);
  writeSym(w, p.symmetric);
  writeScheme(w, p.scheme);
  if (p.type === TPM_ALG.RSA) {
    w.u16(p.keyBits).u32(p.exponent).tpm2b(p.modulus);
  } else {
    w.u16(p.curve);
    writeScheme(w, p.kdf);
    w.tpm2b(p.x).tpm2b(p.y);
  }
  return w.done();
}

function readSym(r: TpmReader): SymDef {
  const algorithm = r.u16('symmetric.algorithm');
  if (algorithm === TPM_ALG.NULL) return { algorithm };
  if (algorithm !== TPM_ALG.AES) throw bad(`unsupported symmetric algorithm 0x${algorithm.toString(16)}`);
  return { algorithm, keyBits: r.u16('symmetric.keyBits'), mode: r.u16('symmetric.mode') };
}

function readScheme(r: TpmReader, field: string): { scheme: number; hashAlg?: number } {
  const scheme = r.u16(`${field}.scheme`);
  if (scheme === TPM_ALG.NULL) return { scheme };
  return { scheme, hashAlg: r.u16(`${field}.hashAlg`) };
}

/** TPMA_OBJECT bits that are reserved (Part 2, Table 31): a TPM never sets them. */
export const TPMA_OBJECT_RESERVED = (1 << 0) | (1 << 3) | (0xf << 12) | (0xfff << 20);

/** Parses one TPMT_PUBLIC filling `buf` exactly (RSA or ECC keys only). */
export function parsePublic(buf: Buffer): TpmPublic {
  const r = new TpmReader(buf, 'TPMT_PUBLIC');
  const type = r.u16('type');
  const nameAlg = r.u16('nameAlg');
  if (!HASHES.has(nameAlg)) throw bad(`unsupported nameAlg 0x${nameAlg.toString(16)}`);
  const attributes = r.u32('objectAttributes');
  if ((attributes & TPMA_OBJECT_RESERVED) >>> 0 !== 0) throw bad(`reserved objectAttributes bits set (0x${attributes.toString(16)})`);
  const authPolicy = r.tpm2b('authPolicy', 64);
  const symmetric = readSym(r);
  const scheme = readScheme(r, 'scheme');
  if (type === TPM_ALG.RSA) {
    const keyBits = r.u16('keyBits');
    const exponent = r.u32('exponent');
    const modulus = r.tpm2b('unique.rsa', 512);
    r.end();
    if (modulus.length * 8 !== keyBits) throw bad(`RSA modulus of ${modulus.length * 8} bits, keyBits says ${keyBits}`);
    return { type, nameAlg, attributes, authPolicy, symmetric, scheme, keyBits, exponent, modulus, bytes: Buffer.from(buf) };
  }
  if (type === TPM_ALG.ECC) {
    const curve = r.u16('curveID');
    const kdf = readScheme(r, 'kdf');
    const x = r.tpm2b('unique.ecc.x', 66);
    const y = r.tpm2b('unique.ecc.y', 66);
    r.end();
    return { type, nameAlg, attributes, authPolicy, symmetric, scheme, curve, kdf, x, y, bytes: Buffer.from(buf) };
  }
  throw bad(`unsupported key type 0x${type.toString(16)}`);
}

/** Parses a TPM2B_PUBLIC (u16 size ‖ TPMT_PUBLIC). */
export function parsePublic2b(buf: Buffer): TpmPublic {
  const r = new TpmReader(buf, 'TPM2B_PUBLIC');
  const inner = r.tpm2b('publicArea', 2048);
  r.end();
  return parsePublic(Buffer.from(inner));
}

/** The object's Name: nameAlg ‖ H_nameAlg(TPMT_PUBLIC) (Part 1 §16). Computed, never taken from a client. */
export function objectName(p: TpmPublic): Buffer {
  const h = HASHES.get(p.nameAlg)!;
  const n = Buffer.alloc(2);
  n.writeUInt16BE(p.nameAlg);
  return Buffer.concat([n, createHash(h.name).update(p.bytes).digest()]);
}

const CURVES: ReadonlyMap<number, { jwk: string; size: number }> = new Map([
  [TPM_ECC.NIST_P256, { jwk: 'P-256', size: 32 }],
  [TPM_ECC.NIST_P384, { jwk: 'P-384', size: 48 }],
]);

/** The public key as a Node KeyObject. */
export function publicKeyOf(p: TpmPublic): KeyObject {
  if (p.type === TPM_ALG.RSA) {
    const e = Buffer.alloc(4);
    e.writeUInt32BE(p.exponent === 0 ? 65537 : p.exponent);
    const eTrim = e.subarray(e.findIndex((b) => b !== 0));
    return createPublicKey({ key: { kty: 'RSA', n: p.modulus.toString('base64url'), e: eTrim.toString('base64url') }, format: 'jwk' });
  }
  const c = CURVES.get(p.curve);
  if (!c) throw bad(`unsupported curve 0x${p.curve.toString(16)}`);
  if (p.x.length !== c.size || p.y.length !== c.size) throw bad('ECC point has the wrong size for its curve');
  try {
    return createPublicKey({ key: { kty: 'EC', crv: c.jwk, x: p.x.toString('base64url'), y: p.y.toString('base64url') }, format: 'jwk' });
  } catch (e) {
    throw bad(`ECC point is not on the curve: ${(e as Error).message}`);
  }
}

// ------------------------------------------------------------------ templates

/** The attributes every attestation key must have: a restricted, TPM-bound signing key. */
export const AK_ATTRS =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.userWithAuth |
  TPMA_OBJECT.noDA |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.sign;

/** An ECC P-256, SHA-256 key template with empty auth policy and unique field. */
function eccP256(attributes: number, symmetric: SymDef, scheme: { scheme: number; hashAlg?: number }): PublicTemplate {
  return {
    type: TPM_ALG.ECC,
    nameAlg: TPM_ALG.SHA256,
    attributes,
    authPolicy: Buffer.alloc(0),
    symmetric,
    scheme,
    curve: TPM_ECC.NIST_P256,
    kdf: { scheme: TPM_ALG.NULL },
    x: Buffer.alloc(0),
    y: Buffer.alloc(0),
  };
}

/** A storage root key: ECC P-256 restricted decryption key, AES-128-CFB (TCG "SRK" template). */
export function srkTemplate(): PublicTemplate {
  return eccP256(
    TPMA_OBJECT.fixedTPM |
      TPMA_OBJECT.fixedParent |
      TPMA_OBJECT.sensitiveDataOrigin |
      TPMA_OBJECT.userWithAuth |
      TPMA_OBJECT.noDA |
      TPMA_OBJECT.restricted |
      TPMA_OBJECT.decrypt,
    { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
    { scheme: TPM_ALG.NULL },
  );
}

/** A TPM-resident signing key for the agent's SVID: ECC P-256, ECDSA-SHA256, not restricted. */
export function residentKeyTemplate(): PublicTemplate {
  return eccP256(
    TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA | TPMA_OBJECT.sign,
    { algorithm: TPM_ALG.NULL },
    { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 },
  );
}

/** AK template: ECC P-256 with ECDSA-SHA256, or RSA 2048 with RSASSA-SHA256. */
export function akTemplate(kind: 'ecc' | 'rsa'): PublicTemplate {
  if (kind === 'ecc') return eccP256(AK_ATTRS, { algorithm: TPM_ALG.NULL }, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 });
  return {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    attributes: AK_ATTRS,
    authPolicy: Buffer.alloc(0),
    symmetric: { algorithm: TPM_ALG.NULL },
    scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 },
    keyBits: 2048,
    exponent: 0,
    modulus: Buffer.alloc(0),
  };
}

// ------------------------------------------------------------------ PCR selections

export interface PcrSelection {
  /** TPM hash algorithm of the bank. */
  readonly hash: number;
  /** PCR indices, ascending. */
  readonly pcrs: readonly number[];
}

/** Most PCR banks in one selection, and the PCR index limit (24 PCRs per bank). */
const MAX_BANKS = 4;
export const PCR_COUNT = 24;

export function marshalPcrSelection(sel: readonly PcrSelection[]): Buffer {
  const w = new TpmWriter().u32(sel.length);
  for (const s of sel) {
    const bits = Buffer.alloc(3);
    for (const p of s.pcrs) bits[p >> 3]! |= 1 << (p & 7);
    w.u16(s.hash).u8(3).bytes(bits);
  }
  return w.done();
}

export function readPcrSelection(r: TpmReader): PcrSelection[] {
  const count = r.u32('pcrSelect.count');
  if (count > MAX_BANKS) throw bad(`PCR selection with ${count} banks`);
  const out: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hash = r.u16('pcrSelect.hash');
    if (!HASHES.has(hash)) throw bad(`PCR bank with unknown hash 0x${hash.toString(16)}`);
    const size = r.u8('pcrSelect.sizeofSelect');
    if (size < 3 || size > 4) throw bad(`PCR select of ${size} bytes`);
    const bits = r.bytes(size, 'pcrSelect.bitmap');
    const pcrs: number[] = [];
    for (let p = 0; p < size * 8; p++) if (bits[p >> 3]! & (1 << (p & 7))) pcrs.push(p);
    if (pcrs.some((p) => p >= PCR_COUNT)) throw bad('PCR index beyond 23');
    out.push({ hash, pcrs });
  }
  return out;
}

/** "sha256:0,1,2,3,7+sha1:0" → selections (the tpm2-tools syntax). UNTRUSTED in the agent: it comes in the issuer's challenge. */
export function parsePcrSelectionSpec(spec: string): PcrSelection[] {
  return spec.split('+').map((bank) => {
    const m = /^(sha1|sha256|sha384|sha512):(\d+(?:,\d+)*)$/.exec(bank.trim());
    if (!m) throw bad(`bad PCR selection ${JSON.stringify(bank.slice(0, 64))} (want e.g. sha256:0,1,2,3,7)`);
    const hash = { sha1: TPM_ALG.SHA1, sha256: TPM_ALG.SHA256, sha384: TPM_ALG.SHA384, sha512: TPM_ALG.SHA512 }[m[1] as 'sha256'];
    const pcrs = [...new Set(m[2]!.split(',').map(Number))].sort((a, b) => a - b);
    if (pcrs.some((p) => p >= PCR_COUNT)) throw bad(`PCR index beyond ${PCR_COUNT - 1}`);
    return { hash, pcrs };
  });
}

export function formatPcrSelection(sel: readonly PcrSelection[]): string {
  return sel.map((s) => `${HASHES.get(s.hash)?.name ?? s.hash}:${s.pcrs.join(',')}`).join('+');
}

export function samePcrSelection(a: readonly PcrSelection[], b: readonly PcrSelection[]): boolean {
  return (
    a.length === b.length && a.every((s, i) => s.hash === b[i]!.hash && s.pcrs.length === b[i]!.pcrs.length && s.pcrs.every((p, j) => p === b[i]!.pcrs[j]))
  );
}

// ------------------------------------------------------------------ attestation structures

export interface ClockInfo {
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
  readonly safe: boolean;
}

export type TpmAttest = {
  readonly magic: number;
  readonly qualifiedSigner: Buffer;
  readonly extraData: Buffer;
  readonly clockInfo: ClockInfo;
  readonly firmwareVersion: bigint;
  readonly bytes: Buffer;
} & (
  | { readonly type: typeof TPM_ST.ATTEST_QUOTE; readonly pcrSelect: PcrSelection[]; readonly pcrDigest: Buffer }
  | { readonly type: typeof TPM_ST.ATTEST_CERTIFY; readonly name: Buffer; readonly qualifiedName: Buffer }
);

/** Parses a TPMS_ATTEST (quote or certify) filling `buf` exactly. */
export function parseAttest(buf: Buffer): TpmAttest {
  const r = new TpmReader(buf, 'TPMS_ATTEST');
  const magic = r.u32('magic');
  if (magic !== TPM_GENERATED_VALUE) throw bad('attest magic is not TPM_GENERATED_VALUE');
  const type = r.u16('type');
  const qualifiedSigner = r.tpm2b('qualifiedSigner', 2 + 64);
  const extraData = r.tpm2b('extraData', 64);
  const clockInfo: ClockInfo = {
    clock: r.u64('clock'),
    resetCount: r.u32('resetCount'),
    restartCount: r.u32('restartCount'),
    safe: (() => {
      const s = r.u8('safe');
      if (s > 1) throw bad('clockInfo.safe is not a boolean');
      return s === 1;
    })(),
  };
  const firmwareVersion = r.u64('firmwareVersion');
  const base = { magic, qualifiedSigner, extraData, clockInfo, firmwareVersion, bytes: Buffer.from(buf) };
  if (type === TPM_ST.ATTEST_QUOTE) {
    const pcrSelect = readPcrSelection(r);
    const pcrDigest = r.tpm2b('pcrDigest', 64);
    r.end();
    return { ...base, type, pcrSelect, pcrDigest };
  }
  if (type === TPM_ST.ATTEST_CERTIFY) {
    const name = r.tpm2b('certifyInfo.name', 2 + 64);
    const qualifiedName = r.tpm2b('certifyInfo.qualifiedName', 2 + 64);
    r.end();
    return { ...base, type, name, qualifiedName };
  }
  throw bad(`unsupported attest type 0x${type.toString(16)}`);
}

export type TpmSignature =
  | { readonly sigAlg: typeof TPM_ALG.ECDSA; readonly hash: number; readonly r: Buffer; readonly s: Buffer }
  | { readonly sigAlg: typeof TPM_ALG.RSASSA | typeof TPM_ALG.RSAPSS; readonly hash: number; readonly sig: Buffer };

/** Parses a TPMT_SIGNATURE filling `buf` exactly. */
export function parseSignature(buf: Buffer): TpmSignature {
  const rd = new TpmReader(buf, 'TPMT_SIGNATURE');
  const sigAlg = rd.u16('sigAlg');
  const hash = rd.u16('hash');
  if (!HASHES.has(hash)) throw bad(`signature hash 0x${hash.toString(16)} unsupported`);
  if (sigAlg === TPM_ALG.ECDSA) {
    const r = rd.tpm2b('signatureR', 66);
    const s = rd.tpm2b('signatureS', 66);
    rd.end();
    return { sigAlg, hash, r, s };
  }
  if (sigAlg === TPM_ALG.RSASSA || sigAlg === TPM_ALG.RSAPSS) {
    const sig = rd.tpm2b('sig', 512);
    rd.end();
    return { sigAlg, hash, sig };
  }
  throw bad(`unsupported signature algorithm 0x${sigAlg.toString(16)}`);
}

export function marshalSignature(s: TpmSignature): Buffer {
  const w = new TpmWriter().u16(s.sigAlg).u16(s.hash);
  if (s.sigAlg === TPM_ALG.ECDSA) w.tpm2b(s.r).tpm2b(s.s);
  else w.tpm2b(s.sig);
  return w.done();
}
