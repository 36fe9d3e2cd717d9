/**
 * The relying party's check of a WebAuthn assertion (W3C WebAuthn Level 3 §7.2, "Verifying an
 * Authentication Assertion"), offline, with node:crypto: the authenticator data (§6.1) and the
 * client data (§5.8.1) parsed strictly, then the signature over
 * `authenticatorData ‖ SHA-256(clientDataJSON)` checked with the credential's COSE key, whose
 * `alg` alone fixes the algorithm. What it does not do, because no offline verifier can: look
 * the credential up, compare the signature counter with a stored one, or check that the
 * challenge was issued and not used before. Those are the registering issuer's (and its caller
 * is told so). UNTRUSTED input enters here: every argument but the expectations.
 */
import { createHash, timingSafeEqual, verify, constants } from 'node:crypto';
import { WebAuthnError } from '../errors.js';
import { parseOne, children, integerBytes, TAG } from '../der/der.js';
import { parseStrictJson } from '../jose/strict-json.js';
import { decodeCborAt, type CborValue } from './cbor.js';
import { parseCoseKey, type CoseAlgorithm, type CoseKey } from './cose.js';

/** Largest authenticator data read: 37 bytes plus extension outputs. */
export const MAX_AUTHENTICATOR_DATA_BYTES = 1024;
/** Largest client data JSON read; browsers send ~150 to ~400 bytes. */
export const MAX_CLIENT_DATA_BYTES = 4096;
/** Largest signature read: an RSA-8192 signature. */
export const MAX_SIGNATURE_BYTES = 1024;
/** Longest origin accepted in client data. */
const MAX_ORIGIN_BYTES = 2048;
/** Nesting of client data JSON: it is flat, but may carry members this verifier does not read. */
const CLIENT_DATA_DEPTH = 4;

/** Authenticator data flags (§6.1). */
export const FLAG = { UP: 0x01, UV: 0x04, BE: 0x08, BS: 0x10, AT: 0x40, ED: 0x80 } as const;

export interface AuthenticatorFlags {
  /** User present. */
  readonly up: boolean;
  /** User verified (PIN, biometric). */
  readonly uv: boolean;
  /** Backup eligible (a multi-device credential). */
  readonly be: boolean;
  /** Backed up. */
  readonly bs: boolean;
}

export interface AuthenticatorData {
  readonly rpIdHash: Buffer;
  /** The flags byte as sent. */
  readonly flagsByte: number;
  readonly flags: AuthenticatorFlags;
  readonly signCount: number;
  /** Extension outputs (CBOR map), when the ED flag is set. */
  readonly extensions?: ReadonlyMap<number | string, CborValue>;
}

export interface ClientData {
  readonly type: string;
  /** The challenge as the client encoded it (base64url). */
  readonly challenge: string;
  readonly origin: string;
  readonly crossOrigin?: boolean;
  readonly topOrigin?: string;
}

const fail = (msg: string, cause?: unknown): never => {
  throw new WebAuthnError(`webauthn: ${msg}`, cause === undefined ? undefined : { cause });
};

const asBuffer = (b: Buffer | Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/**
 * Parses assertion authenticator data (§6.1): rpIdHash (32) ‖ flags (1) ‖ signCount (u32be)
 * ‖ extensions (a CBOR map) exactly when ED is set, and nothing after. Attested credential data
 * (AT) belongs to registration, never to an assertion, and is refused; so are BS without BE
 * (§6.1.3) and trailing bytes.
 */
export function parseAuthenticatorData(data: Buffer | Uint8Array): AuthenticatorData {
  const b = asBuffer(data);
  if (b.length < 37) fail(`authenticator data is ${b.length} bytes; at least 37`);
  if (b.length > MAX_AUTHENTICATOR_DATA_BYTES) fail(`authenticator data is longer than ${MAX_AUTHENTICATOR_DATA_BYTES} bytes`);
  const flagsByte = b[32]!;
  if (flagsByte & FLAG.AT) fail('authenticator data of an assertion carries attested credential data (AT flag)');
  const flags = { up: !!(flagsByte & FLAG.UP), uv: !!(flagsByte & FLAG.UV), be: !!(flagsByte & FLAG.BE), bs: !!(flagsByte & FLAG.BS) };
  if (flags.bs && !flags.be) fail('authenticator data says backed up (BS) but not backup eligible (BE)');
  const signCount = b.readUInt32BE(33);
  let extensions: ReadonlyMap<number | string, CborValue> | undefined;
  if (flagsByte & FLAG.ED) {
    const { value, next } = decodeCborAt(b, 37);
    if (!(value instanceof Map)) fail('authenticator data extensions are not a CBOR map');
    if (next !== b.length) fail('trailing bytes after the authenticator data extensions');
    extensions = value as ReadonlyMap<number | string, CborValue>;
  } else if (b.length !== 37) fail('authenticator data has trailing bytes (no ED flag, so it is exactly 37 bytes)');
  return {
    rpIdHash: Buffer.from(b.subarray(0, 32)),
    flagsByte,
    flags,
    signCount,
    ...(extensions ? { extensions } : {}),
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses client data JSON (§5.8.1) strictly: valid UTF-8 without a byte order mark, strict JSON
 * (src/jose/strict-json.ts: a duplicate member is refused, never read first or last), an object
 * whose `type`, `challenge` and `origin` are strings and whose `crossOrigin` (if present) is a
 * boolean and `topOrigin` (if present) a string. Other members are allowed and ignored, as §5.8.1
 * requires (browsers add some on purpose, e.g. `other_keys_can_be_added_here`).
 */
export function parseClientData(json: Buffer | Uint8Array): ClientData {
  const b = asBuffer(json);
  if (b.length === 0 || b.length > MAX_CLIENT_DATA_BYTES) fail(`client data is 1..${MAX_CLIENT_DATA_BYTES} bytes`);
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) fail('client data starts with a byte order mark');
  let v: unknown;
  try {
    v = parseStrictJson(utf8.decode(b), CLIENT_DATA_DEPTH);
  } catch (e) {
    return fail(`client data is not strict UTF-8 JSON: ${(e as Error).message}`, e);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('client data is not a JSON object');
  const o = v as Record<string, unknown>;
  if (typeof o.type !== 'string') fail('client data type is not a string');
  if (typeof o.challenge !== 'string') fail('client data challenge is not a string');
  if (typeof o.origin !== 'string' || o.origin.length === 0 || Buffer.byteLength(o.origin) > MAX_ORIGIN_BYTES) fail('client data origin is not a string');
  if (o.crossOrigin !== undefined && typeof o.crossOrigin !== 'boolean') fail('client data crossOrigin is not a boolean');
  if (o.topOrigin !== undefined && typeof o.topOrigin !== 'string') fail('client data topOrigin is not a string');
  return {
    type: o.type as string,
    challenge: o.challenge as string,
    origin: o.origin as string,
    ...(o.crossOrigin !== undefined ? { crossOrigin: o.crossOrigin as boolean } : {}),
    ...(o.topOrigin !== undefined ? { topOrigin: o.topOrigin as string } : {}),
  };
}

/** Runs a DER reader, reporting its refusal as a WebAuthn one. */
/** `f()`, its DER failure refused as `what`, or by `instead` when it is given. */
function der<T>(f: () => T, what: string, instead?: () => never): T {
  try {
    return f();
  } catch (e) {
    if (instead) instead();
    return fail(`${what}: ${(e as Error).message}`, e);
  }
}

/** Curve order byte lengths, for the DER INTEGER bounds of ECDSA r and s. */
const EC_SIZE: Partial<Record<CoseAlgorithm, number>> = { ES256: 32, ES384: 48, ES512: 66 };

/**
 * An ECDSA signature must be DER `Ecdsa-Sig-Value` (WebAuthn §6.5.6): SEQUENCE of two minimal,
 * positive INTEGERs no longer than the curve order, and nothing after. A raw `r ‖ s` (what WebCrypto
 * and JOSE use) is refused by name rather than reinterpreted: it is a client bug, not a format.
 */
function checkEcdsaDer(sig: Buffer, alg: CoseAlgorithm): void {
  const size = EC_SIZE[alg]!;
  // A raw r ‖ s starts with 0x30 one time in 256, so the length alone names it once DER has failed.
  const raw = () => fail(`${alg} signature is raw r‖s (${sig.length} bytes); WebAuthn requires DER (§6.5.6)`);
  if (sig.length === 2 * size && sig[0] !== 0x30) raw();
  const parts = der(
    () => children(parseOne(sig, TAG.SEQUENCE)),
    `${alg} signature is not strict DER Ecdsa-Sig-Value`,
    sig.length === 2 * size ? raw : undefined,
  );
  if (parts.length !== 2) fail(`${alg} signature is not a SEQUENCE of two INTEGERs`);
  for (const p of parts) {
    const v = der(() => integerBytes(p), `${alg} signature`);
    if (v[0]! & 0x80) fail(`${alg} signature holds a negative integer`);
    const mag = v[0] === 0 ? v.subarray(1) : v;
    if (mag.length > size) fail(`${alg} signature integer is longer than the curve order`);
    if (mag.every((x) => x === 0)) fail(`${alg} signature integer is zero`);
  }
}

export interface VerifyAssertionOptions {
  /** authenticatorData as the authenticator returned it. UNTRUSTED. */
  readonly authenticatorData: Buffer | Uint8Array;
  /** clientDataJSON exactly as the client serialised it (the bytes that were hashed). UNTRUSTED. */
  readonly clientDataJSON: Buffer | Uint8Array;
  /** The assertion signature. UNTRUSTED. */
  readonly signature: Buffer | Uint8Array;
  /** The credential public key as registered: COSE_Key CBOR (or one parsed before). */
  readonly credentialPublicKey: Buffer | Uint8Array | CoseKey;
  /** The challenge the relying party asked to be signed (raw bytes, not base64url). */
  readonly expectedChallenge: Buffer | Uint8Array;
  /** The origin(s) the ceremony may have run on, compared exactly (e.g. `https://issuer.example:8444`). */
  readonly expectedOrigin: string | readonly string[];
  /** The RP ID the credential is scoped to: its SHA-256 must be the authenticator data's rpIdHash. */
  readonly expectedRpId: string;
  /** Require the UV flag (a PIN or biometric, not only presence). Default true. */
  readonly requireUserVerification?: boolean;
}

export interface VerifiedAssertion {
  readonly signCount: number;
  readonly flags: AuthenticatorFlags;
  readonly origin: string;
  readonly rpId: string;
  readonly algorithm: CoseAlgorithm;
  readonly extensions?: ReadonlyMap<number | string, CborValue>;
}

/**
 * Verifies a WebAuthn authentication assertion (§7.2 steps 11–21 that an offline relying party
 * can make): client data type `webauthn.get`, challenge equal to the expected bytes (decoded
 * from canonical base64url, compared in constant time), origin exactly one expected, not
 * cross-origin; rpIdHash = SHA-256(expectedRpId) in constant time; UP set, UV set unless not
 * required; the signature over authenticatorData ‖ SHA-256(clientDataJSON) by the credential key
 * with its own COSE algorithm. Throws `WebAuthnError` (ERR_WEBAUTHN_INVALID) naming the check.
 */
export function verifyAssertion(o: VerifyAssertionOptions): VerifiedAssertion {
  const cose: CoseKey = o.credentialPublicKey instanceof Uint8Array ? parseCoseKey(o.credentialPublicKey) : (o.credentialPublicKey as CoseKey);
  const authData = asBuffer(o.authenticatorData);
  const clientJson = asBuffer(o.clientDataJSON);
  const sig = asBuffer(o.signature);
  const expected = asBuffer(o.expectedChallenge);
  if (expected.length < 16) fail('the expected challenge must be at least 16 bytes');
  const origins = typeof o.expectedOrigin === 'string' ? [o.expectedOrigin] : o.expectedOrigin;
  if (origins.length === 0) fail('no expected origin was given');

  const cd = parseClientData(clientJson);
  if (cd.type !== 'webauthn.get') fail(`client data type is ${JSON.stringify(cd.type.slice(0, 40))}, not "webauthn.get"`);
  let challenge: Buffer | undefined;
  if (/^[A-Za-z0-9_-]+$/.test(cd.challenge)) {
    const c = Buffer.from(cd.challenge, 'base64url');
    if (c.toString('base64url') === cd.challenge) challenge = c;
  }
  if (!challenge) return fail('client data challenge is not canonical base64url');
  if (challenge.length !== expected.length || !timingSafeEqual(challenge, expected)) fail('client data challenge is not the expected challenge');
  if (!origins.includes(cd.origin)) fail(`client data origin ${JSON.stringify(cd.origin.slice(0, 100))} is not an expected origin`);
  if (cd.crossOrigin === true) fail('the assertion was made in a cross-origin iframe (crossOrigin true)');
  if (cd.topOrigin !== undefined) fail('client data names a topOrigin: the assertion was made in a cross-origin iframe');

  const ad = parseAuthenticatorData(authData);
  const rpIdHash = createHash('sha256').update(o.expectedRpId, 'utf8').digest();
  if (!timingSafeEqual(ad.rpIdHash, rpIdHash)) fail(`authenticator data rpIdHash is not SHA-256 of the RP ID ${o.expectedRpId}`);
  if (!ad.flags.up) fail('the user was not present (UP flag clear)');
  if ((o.requireUserVerification ?? true) && !ad.flags.uv) fail('the user was not verified (UV flag clear)');

  if (sig.length === 0 || sig.length > MAX_SIGNATURE_BYTES) fail(`the signature is 1..${MAX_SIGNATURE_BYTES} bytes`);
  const signed = Buffer.concat([authData, createHash('sha256').update(clientJson).digest()]);
  let ok: boolean;
  switch (cose.algorithm) {
    case 'ES256':
    case 'ES384':
    case 'ES512':
      checkEcdsaDer(sig, cose.algorithm);
      ok = verify(cose.hash!, signed, { key: cose.key, dsaEncoding: 'der' }, sig);
      break;
    case 'EdDSA':
      if (sig.length !== 64) fail('an Ed25519 signature is 64 bytes');
      ok = verify(null, signed, cose.key, sig);
      break;
    case 'RS256':
      if (sig.length !== Math.ceil((cose.key.asymmetricKeyDetails?.modulusLength ?? 0) / 8)) fail('an RS256 signature is as long as the modulus');
      ok = verify('sha256', signed, { key: cose.key, padding: constants.RSA_PKCS1_PADDING }, sig);
      break;
  }
  if (!ok) fail(`the ${cose.algorithm} signature over authenticatorData ‖ SHA-256(clientDataJSON) does not verify with the credential key`);
  return {
    signCount: ad.signCount,
    flags: ad.flags,
    origin: cd.origin,
    rpId: o.expectedRpId,
    algorithm: cose.algorithm,
    ...(ad.extensions ? { extensions: ad.extensions } : {}),
  };
}
