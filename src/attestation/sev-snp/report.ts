/**
 * The SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP Firmware ABI specification 56860, table
 * "ATTESTATION_REPORT Structure"; the same offsets as go-sev-guest `abi.ReportToProto`),
 * versions 2 to 5. UNTRUSTED input: exactly REPORT_SIZE bytes, every reserved range must be
 * zero, every enumerated field one of its defined values; nothing here is trusted until the
 * signature over bytes 0x000..0x29F verifies (verify.ts).
 */
import { AttestationError } from '../../errors.js';

/** The ABI size of a report. */
export const REPORT_SIZE = 0x4a0;
/** The signature covers every byte before it. */
export const SIGNED_LENGTH = 0x2a0;
export const MIN_REPORT_VERSION = 2;
export const MAX_REPORT_VERSION = 5;
/** SIGNATURE_ALGO 1: ECDSA P-384 with SHA-384; the only one the ABI defines. */
export const SIG_ALGO_ECDSA_P384_SHA384 = 1;
/** r and s are 72-byte little-endian fields of which a P-384 value uses the low 48 bytes. */
const RS_FIELD = 72;
const P384_BYTES = 48;

/** Guest policy bits (ABI "GUEST_POLICY"). */
export const POLICY = {
  smt: 16,
  reservedOne: 17,
  migrateMa: 18,
  debug: 19,
  singleSocket: 20,
  cxlAllow: 21,
  memAes256Xts: 22,
  raplDis: 23,
  ciphertextHiding: 24,
  pageSwapDisable: 25,
} as const;
/** Policy bits 26..63 are reserved (must be zero). */
const POLICY_DEFINED_MASK = (1n << 26n) - 1n;
/** PLATFORM_INFO bits 0..7 are defined by ABI revisions up to 1.58; higher bits are refused. */
const PLATFORM_INFO_DEFINED_MASK = 0xffn;

export type SigningKey = 'vcek' | 'vlek';

export interface SnpReport {
  /** The whole report (REPORT_SIZE bytes). */
  readonly raw: Buffer;
  readonly version: number;
  readonly guestSvn: number;
  readonly policy: bigint;
  readonly familyId: Buffer;
  readonly imageId: Buffer;
  readonly vmpl: number;
  /** CURRENT_TCB, 8 raw bytes (layout depends on the product: see tcb.ts). */
  readonly currentTcb: Buffer;
  readonly platformInfo: bigint;
  readonly authorKeyEn: boolean;
  readonly maskChipId: boolean;
  readonly signingKey: SigningKey;
  readonly reportData: Buffer;
  readonly measurement: Buffer;
  readonly hostData: Buffer;
  readonly idKeyDigest: Buffer;
  readonly authorKeyDigest: Buffer;
  readonly reportId: Buffer;
  readonly reportIdMa: Buffer;
  readonly reportedTcb: Buffer;
  /** CPUID family, model, stepping (version 3 and later; undefined in version 2). */
  readonly cpuid?: { readonly family: number; readonly model: number; readonly stepping: number };
  readonly chipId: Buffer;
  readonly committedTcb: Buffer;
  readonly launchTcb: Buffer;
  /** The signed bytes, 0x000..0x29F. */
  readonly signed: Buffer;
  /** The signature as IEEE P1363 r ‖ s (96 bytes, big-endian), for node:crypto. */
  readonly signatureP1363: Buffer;
}

const fail = (msg: string) => new AttestationError('ERR_EVIDENCE_INVALID', `attestation(sev_snp): report: ${msg}`);

function mustBeZero(b: Buffer, from: number, to: number, what: string): void {
  for (let i = from; i < to; i++) if (b[i] !== 0) throw fail(`reserved bytes 0x${from.toString(16)}..0x${(to - 1).toString(16)} (${what}) are not zero`);
}

/** A 72-byte little-endian r or s as 48 big-endian bytes; the 24 high bytes must be zero. */
function p384Component(field: Buffer, what: string): Buffer {
  for (let i = P384_BYTES; i < RS_FIELD; i++) if (field[i] !== 0) throw fail(`signature ${what} does not fit P-384 (high bytes not zero)`);
  return Buffer.from(field.subarray(0, P384_BYTES)).reverse();
}

/** Parses one attestation report, strictly (see the file comment). */
export function parseSnpReport(input: Uint8Array): SnpReport {
  if (input.length !== REPORT_SIZE) throw fail(`is ${input.length} bytes, not ${REPORT_SIZE}`);
  const b = Buffer.from(input);
  const version = b.readUInt32LE(0x00);
  if (version < MIN_REPORT_VERSION || version > MAX_REPORT_VERSION)
    throw fail(`version ${version} is not supported (${MIN_REPORT_VERSION}..${MAX_REPORT_VERSION})`);
  const policy = b.readBigUInt64LE(0x08);
  if ((policy & (1n << BigInt(POLICY.reservedOne))) === 0n) throw fail('policy bit 17 is reserved and must be 1');
  if ((policy & ~POLICY_DEFINED_MASK) !== 0n) throw fail(`policy 0x${policy.toString(16)} sets reserved bits 26..63`);
  const vmpl = b.readUInt32LE(0x30);
  if (vmpl > 3) throw fail(`VMPL ${vmpl} is not 0..3`);
  const algo = b.readUInt32LE(0x34);
  if (algo !== SIG_ALGO_ECDSA_P384_SHA384) throw fail(`signature algorithm ${algo} is not ECDSA P-384 SHA-384`);
  const platformInfo = b.readBigUInt64LE(0x40);
  if ((platformInfo & ~PLATFORM_INFO_DEFINED_MASK) !== 0n) throw fail(`platform info 0x${platformInfo.toString(16)} sets undefined bits`);
  const signerInfo = b.readUInt32LE(0x48);
  if (signerInfo >>> 5 !== 0) throw fail('signer info sets reserved bits 5..31');
  const key = (signerInfo >>> 2) & 7;
  if (key === 7) throw fail('the report is not signed (SIGNING_KEY is NONE)');
  if (key > 1) throw fail(`SIGNING_KEY ${key} is reserved`);
  mustBeZero(b, 0x4c, 0x50, 'after signer info');
  const v3 = version >= 3;
  mustBeZero(b, v3 ? 0x18b : 0x188, 0x1a0, 'after reported TCB');
  mustBeZero(b, 0x1eb, 0x1ec, 'after current version');
  mustBeZero(b, 0x1ef, 0x1f0, 'after committed version');
  // Version 5 adds LAUNCH_MIT_VECTOR (0x1F8) and CURRENT_MIT_VECTOR (0x200).
  mustBeZero(b, version >= 5 ? 0x208 : 0x1f8, SIGNED_LENGTH, 'before the signature');
  const sig = b.subarray(SIGNED_LENGTH);
  const r = p384Component(sig.subarray(0, RS_FIELD), 'r');
  const s = p384Component(sig.subarray(RS_FIELD, 2 * RS_FIELD), 's');
  mustBeZero(b, SIGNED_LENGTH + 2 * RS_FIELD, REPORT_SIZE, 'after the signature');
  const at = (o: number, n: number) => b.subarray(o, o + n);
  return {
    raw: b,
    version,
    guestSvn: b.readUInt32LE(0x04),
    policy,
    familyId: at(0x10, 16),
    imageId: at(0x20, 16),
    vmpl,
    currentTcb: at(0x38, 8),
    platformInfo,
    authorKeyEn: (signerInfo & 1) !== 0,
    maskChipId: (signerInfo & 2) !== 0,
    signingKey: key === 0 ? 'vcek' : 'vlek',
    reportData: at(0x50, 64),
    measurement: at(0x90, 48),
    hostData: at(0xc0, 32),
    idKeyDigest: at(0xe0, 48),
    authorKeyDigest: at(0x110, 48),
    reportId: at(0x140, 32),
    reportIdMa: at(0x160, 32),
    reportedTcb: at(0x180, 8),
    ...(v3 ? { cpuid: { family: b[0x188]!, model: b[0x189]!, stepping: b[0x18a]! } } : {}),
    chipId: at(0x1a0, 64),
    committedTcb: at(0x1e0, 8),
    launchTcb: at(0x1f0, 8),
    signed: at(0, SIGNED_LENGTH),
    signatureP1363: Buffer.concat([r, s]),
  };
}

/** True when guest policy bit `bit` is set. */
export const policyBit = (r: SnpReport, bit: number): boolean => (r.policy & (1n << BigInt(bit))) !== 0n;
