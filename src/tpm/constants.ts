/** TPM 2.0 constants (TPM 2.0 Library, Part 2: Structures). */

export const TPM_ST = { NO_SESSIONS: 0x8001, SESSIONS: 0x8002, ATTEST_QUOTE: 0x8018, ATTEST_CERTIFY: 0x8017, HASHCHECK: 0x8024 } as const;

export const TPM_CC = {
  EvictControl: 0x120,
  Startup: 0x144,
  Shutdown: 0x145,
  ActivateCredential: 0x147,
  Certify: 0x148,
  NV_Read: 0x14e,
  PolicySecret: 0x151,
  Create: 0x153,
  Load: 0x157,
  Quote: 0x158,
  Sign: 0x15d,
  FlushContext: 0x165,
  LoadExternal: 0x167,
  MakeCredential: 0x168,
  NV_ReadPublic: 0x169,
  ReadPublic: 0x173,
  StartAuthSession: 0x176,
  GetCapability: 0x17a,
  PCR_Read: 0x17e,
  PCR_Extend: 0x182,
  PCR_Reset: 0x13d,
  CreatePrimary: 0x131,
} as const;

export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CFB: 0x0043,
} as const;

export const TPM_ECC = { NIST_P256: 0x0003, NIST_P384: 0x0004 } as const;

export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  PW: 0x40000009,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;

export const TPM_SE = { HMAC: 0x00, POLICY: 0x01 } as const;
export const TPM_SU = { CLEAR: 0x0000, STATE: 0x0001 } as const;

/** TPMA_OBJECT bits (Part 2 §8.3). */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

/** TPM_GENERATED_VALUE: the magic every TPMS_ATTEST starts with. */
export const TPM_GENERATED_VALUE = 0xff544347;

/** Digest sizes and Node hash names by TPM hash algorithm. */
export const HASHES: ReadonlyMap<number, { name: string; size: number }> = new Map([
  [TPM_ALG.SHA1, { name: 'sha1', size: 20 }],
  [TPM_ALG.SHA256, { name: 'sha256', size: 32 }],
  [TPM_ALG.SHA384, { name: 'sha384', size: 48 }],
  [TPM_ALG.SHA512, { name: 'sha512', size: 64 }],
]);

export const HASH_BY_NAME: ReadonlyMap<string, number> = new Map([
  ['sha1', TPM_ALG.SHA1],
  ['sha256', TPM_ALG.SHA256],
  ['sha384', TPM_ALG.SHA384],
  ['sha512', TPM_ALG.SHA512],
]);

/** NV indices of EK certificates (TCG EK Credential Profile §2.2.1.5). */
export const EK_CERT_NV = { RSA2048: 0x01c00002, ECC_P256: 0x01c0000a, ECC_P384: 0x01c00016 } as const;

/** Response codes writ treats specially (Part 2 §6.6). */
export const TPM_RC = {
  SUCCESS: 0x000,
  INITIALIZE: 0x100,
  LOCKOUT: 0x921,
  RETRY: 0x922,
  YIELDED: 0x908,
  CANCELED: 0x909,
  TESTING: 0x90a,
  NV_RATE: 0x920,
} as const;

/**
 * authPolicy of the TCG default EK templates: PolicySecret(TPM_RH_ENDORSEMENT) with SHA-256
 * (TCG EK Credential Profile 2.0, B.3.3).
 */
export const EK_POLICY_SHA256 = Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex');
