/**
 * Keys at rest: every CA and JWT private key is stored as PKCS#8 sealed with AES-256-GCM
 * under a key-encryption key (KEK), with the key's id as associated data so a sealed key
 * cannot be swapped onto another record.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { CaError } from '../errors.js';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class KeyEncryptor {
  private readonly kek: Buffer;
  constructor(kek: Buffer) {
    if (kek.length !== 32) throw new CaError('ERR_KEY_DECRYPT', 'ca: key-encryption key must be 32 bytes');
    this.kek = Buffer.from(kek);
  }

  /** Derives a KEK from a passphrase with scrypt (N=2^15, r=8, p=1). */
  static fromPassphrase(passphrase: string, salt: Buffer): KeyEncryptor {
    if (passphrase.length < 12) throw new CaError('ERR_KEY_DECRYPT', 'ca: key passphrase must be at least 12 characters');
    return new KeyEncryptor(scryptSync(passphrase, salt, 32, { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }));
  }

  seal(plaintext: Buffer, aad: string): Buffer {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.kek, iv);
    c.setAAD(Buffer.from(aad));
    const ct = Buffer.concat([c.update(plaintext), c.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, c.getAuthTag(), ct]);
  }

  open(sealed: Buffer, aad: string): Buffer {
    if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== VERSION) throw new CaError('ERR_KEY_DECRYPT', `ca: sealed key ${aad} has an unknown format`);
    const iv = sealed.subarray(1, 1 + IV_BYTES);
    const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const d = createDecipheriv('aes-256-gcm', this.kek, iv);
    d.setAAD(Buffer.from(aad));
    d.setAuthTag(tag);
    try {
      return Buffer.concat([d.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)), d.final()]);
    } catch (e) {
      throw new CaError('ERR_KEY_DECRYPT', `ca: cannot decrypt key ${aad}: wrong key-encryption key or tampered record`, { cause: e });
    }
  }

  static randomKek(): Buffer {
    return randomBytes(32);
  }
}
