/**
 * A software WebAuthn authenticator for tests (ES256, Ed25519 and RS256 keys made with
 * node:crypto), building what a browser and an authenticator return, to the letter of W3C
 * WebAuthn Level 3: authenticator data (§6.1), client data JSON (§5.8.1, serialised as
 * §5.8.1.1 does: type, challenge, origin, crossOrigin in that order), the COSE_Key of the
 * credential (CTAP2 canonical CBOR), DER ECDSA signatures (§6.5.6) over
 * authenticatorData ‖ SHA-256(clientDataJSON), and a `none` attestation object for
 * registration (§8.7). Every field can be bent, so tests can make what a real one never would.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, constants, type KeyObject } from 'node:crypto';

export type SoftAlg = 'ES256' | 'EdDSA' | 'RS256';

/** CTAP2 canonical CBOR encoder for what tests need: integers, byte and text strings, arrays, maps, booleans. */
export type CborIn = number | string | boolean | null | Buffer | Uint8Array | CborIn[] | Map<number | string, CborIn>;

function head(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(n, 1);
    return b;
  }
  if (n < 0x100000000) {
    const b = Buffer.alloc(5);
    b[0] = (major << 5) | 26;
    b.writeUInt32BE(n, 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = (major << 5) | 27;
  b.writeBigUInt64BE(BigInt(n), 1);
  return b;
}

export function cborEncode(v: CborIn): Buffer {
  if (v === null) return Buffer.from([0xf6]);
  if (v === true) return Buffer.from([0xf5]);
  if (v === false) return Buffer.from([0xf4]);
  if (typeof v === 'number') return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    return Buffer.concat([head(3, b.length), b]);
  }
  if (v instanceof Uint8Array) return Buffer.concat([head(2, v.length), Buffer.from(v)]);
  if (Array.isArray(v)) return Buffer.concat([head(4, v.length), ...v.map(cborEncode)]);
  // CTAP2 canonical order: by encoded key length, then bytewise.
  const entries = [...v.entries()].map(([k, x]) => [cborEncode(k), cborEncode(x)] as const);
  entries.sort(([a], [b]) => a.length - b.length || Buffer.compare(a, b));
  return Buffer.concat([head(5, entries.length), ...entries.flat()]);
}

/** The COSE_Key of a public key (RFC 9053): EC2 P-256 with alg -7, OKP Ed25519 with -8, RSA with -257. */
export function coseKeyOf(pub: KeyObject, alg: SoftAlg): Map<number, CborIn> {
  const jwk = pub.export({ format: 'jwk' }) as Record<string, string>;
  const d = (s: string) => Buffer.from(s, 'base64url');
  if (alg === 'ES256')
    return new Map<number, CborIn>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, d(jwk.x!)],
      [-3, d(jwk.y!)],
    ]);
  if (alg === 'EdDSA')
    return new Map<number, CborIn>([
      [1, 1],
      [3, -8],
      [-1, 6],
      [-2, d(jwk.x!)],
    ]);
  return new Map<number, CborIn>([
    [1, 3],
    [3, -257],
    [-1, d(jwk.n!)],
    [-2, d(jwk.e!)],
  ]);
}

export interface AssertionOptions {
  readonly challenge: Buffer;
  readonly origin: string;
  /** Default: the authenticator's RP ID. */
  readonly rpId?: string;
  /** Flags byte; default UP | UV (0x05). */
  readonly flags?: number;
  /** Default: one more than the last. */
  readonly signCount?: number;
  /** Default "webauthn.get". */
  readonly type?: string;
  readonly crossOrigin?: boolean;
  /** Appended to client data JSON members (e.g. topOrigin, other_keys_can_be_added_here). */
  readonly extraClientData?: Record<string, unknown>;
  /** Client data JSON bytes to use verbatim instead of building them. */
  readonly clientDataJSON?: Buffer;
  /** Extension outputs (sets ED). */
  readonly extensions?: Map<number | string, CborIn>;
  /** ES256 only: sign as raw r‖s instead of DER. */
  readonly rawSignature?: boolean;
}

export interface SoftAssertion {
  readonly credentialId: Buffer;
  readonly authenticatorData: Buffer;
  readonly clientDataJSON: Buffer;
  readonly signature: Buffer;
  readonly userHandle: Buffer;
}

/** Client data JSON as browsers serialise it (§5.8.1.1): type, challenge, origin, crossOrigin, then the rest. */
export function clientDataJson(o: { type: string; challenge: Buffer; origin: string; crossOrigin?: boolean; extra?: Record<string, unknown> }): Buffer {
  const m: Record<string, unknown> = {
    type: o.type,
    challenge: o.challenge.toString('base64url'),
    origin: o.origin,
    crossOrigin: o.crossOrigin ?? false,
    ...o.extra,
  };
  return Buffer.from(JSON.stringify(m), 'utf8');
}

export class SoftAuthenticator {
  readonly credentialId = randomBytes(32);
  readonly userHandle = randomBytes(16);
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The credential public key, COSE_Key CBOR, as registration hands it to the relying party. */
  readonly coseKey: Buffer;
  readonly aaguid = Buffer.alloc(16);
  private count = 0;

  constructor(
    readonly alg: SoftAlg = 'ES256',
    readonly rpId = 'issuer.example',
  ) {
    this.privateKey =
      alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey
        : alg === 'EdDSA'
          ? generateKeyPairSync('ed25519').privateKey
          : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    this.publicKey = createPublicKey(this.privateKey);
    this.coseKey = cborEncode(coseKeyOf(this.publicKey, alg));
  }

  /** authenticatorData: SHA-256(rpId) ‖ flags ‖ signCount ‖ [attested credential data] ‖ [extensions]. */
  authData(rpId: string, flags: number, signCount: number, attested?: Buffer, extensions?: Map<number | string, CborIn>): Buffer {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(signCount);
    return Buffer.concat([
      createHash('sha256').update(rpId).digest(),
      Buffer.from([flags | (attested ? 0x40 : 0) | (extensions ? 0x80 : 0)]),
      c,
      ...(attested ? [attested] : []),
      ...(extensions ? [cborEncode(extensions)] : []),
    ]);
  }

  /** Signs authenticatorData ‖ SHA-256(clientDataJSON) with the credential key, as §6.5.6 says. */
  signOver(authenticatorData: Buffer, clientDataJSON: Buffer, raw = false): Buffer {
    const data = Buffer.concat([authenticatorData, createHash('sha256').update(clientDataJSON).digest()]);
    if (this.alg === 'EdDSA') return sign(null, data, this.privateKey);
    if (this.alg === 'RS256') return sign('sha256', data, { key: this.privateKey, padding: constants.RSA_PKCS1_PADDING });
    return sign('sha256', data, { key: this.privateKey, dsaEncoding: raw ? 'ieee-p1363' : 'der' });
  }

  /** navigator.credentials.get(): an assertion over `challenge` on `origin`. */
  getAssertion(o: AssertionOptions): SoftAssertion {
    this.count = o.signCount ?? this.count + 1;
    const authenticatorData = this.authData(o.rpId ?? this.rpId, o.flags ?? 0x05, this.count, undefined, o.extensions);
    const clientDataJSON =
      o.clientDataJSON ??
      clientDataJson({
        type: o.type ?? 'webauthn.get',
        challenge: o.challenge,
        origin: o.origin,
        ...(o.crossOrigin !== undefined ? { crossOrigin: o.crossOrigin } : {}),
        ...(o.extraClientData ? { extra: o.extraClientData } : {}),
      });
    return {
      credentialId: this.credentialId,
      authenticatorData,
      clientDataJSON,
      signature: this.signOver(authenticatorData, clientDataJSON, o.rawSignature),
      userHandle: this.userHandle,
    };
  }

  /**
   * navigator.credentials.create() with `none` attestation (§8.7): the attestation object and
   * client data JSON a relying party's registration check (e.g. @simplewebauthn/server's
   * verifyRegistrationResponse) takes.
   */
  makeCredential(o: { challenge: Buffer; origin: string; rpId?: string; flags?: number }): {
    credentialId: Buffer;
    attestationObject: Buffer;
    clientDataJSON: Buffer;
  } {
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(this.credentialId.length);
    const attested = Buffer.concat([this.aaguid, idLen, this.credentialId, this.coseKey]);
    const authData = this.authData(o.rpId ?? this.rpId, o.flags ?? 0x05, 0, attested);
    const attestationObject = cborEncode(
      new Map<string, CborIn>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', authData],
      ]),
    );
    return {
      credentialId: this.credentialId,
      attestationObject,
      clientDataJSON: clientDataJson({ type: 'webauthn.create', challenge: o.challenge, origin: o.origin }),
    };
  }
}
