/**
 * Key custody: where the issuer's CA, JWT and writ keys live and how they sign. Everything else
 * sees only a `JwsSigner` (public key, algorithm, an async `sign`), so a KMS or a TPM-held CA
 * key is one more implementation of `KeyCustody`, not a change to rotation or minting (SPIRE
 * `pkg/server/plugin/keymanager`).
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { keySigner, type JwsAlg, type JwsSigner } from '../jose/jws.js';
import type { CaKeyRecord } from '../store/store.js';
import type { KeyEncryptor } from './key-encryptor.js';

/** What a new key must be. */
export type KeySpec = { readonly kty: 'ec'; readonly curve: 'P-256' | 'P-384' | 'P-521' } | { readonly kty: 'rsa'; readonly bits: 3072 };

export interface CustodyKey {
  /** DER SubjectPublicKeyInfo. */
  readonly publicKeyDer: Buffer;
  /** What the store keeps to find the key again: a sealed PKCS#8, or a KMS key name. */
  readonly sealedKey: Buffer;
}

export interface KeyCustody {
  /** Makes a key for the record `id`. */
  create(id: string, spec: KeySpec): Promise<CustodyKey>;
  /** A signer for a stored key, signing with `alg`. */
  signer(record: Pick<CaKeyRecord, 'id' | 'sealedKey'>, alg: JwsAlg): Promise<JwsSigner>;
}

const CURVES = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' } as const;

function generate(spec: KeySpec): KeyObject {
  if (spec.kty === 'rsa') return generateKeyPairSync('rsa', { modulusLength: spec.bits }).privateKey;
  return generateKeyPairSync('ec', { namedCurve: CURVES[spec.curve] }).privateKey;
}

/**
 * Keys generated in this process and stored as PKCS#8 sealed with AES-256-GCM under the
 * key-encryption key, the record id as associated data (key-encryptor.ts).
 */
export class SealedKeyCustody implements KeyCustody {
  constructor(private readonly encryptor: KeyEncryptor) {}

  async create(id: string, spec: KeySpec): Promise<CustodyKey> {
    const key = generate(spec);
    return {
      publicKeyDer: keySigner(
        key,
        spec.kty === 'rsa' ? 'PS256' : spec.curve === 'P-256' ? 'ES256' : spec.curve === 'P-384' ? 'ES384' : 'ES512',
      ).publicKey.export({ type: 'spki', format: 'der' }),
      sealedKey: this.encryptor.seal(key.export({ type: 'pkcs8', format: 'der' }), id),
    };
  }

  async signer(record: Pick<CaKeyRecord, 'id' | 'sealedKey'>, alg: JwsAlg): Promise<JwsSigner> {
    const pkcs8 = this.encryptor.open(record.sealedKey, record.id);
    return keySigner(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }), alg);
  }
}

/** A signer for a key given to the issuer in a file (an upstream CA). */
export function fileKeySigner(key: KeyObject): JwsSigner {
  return keySigner(key);
}
