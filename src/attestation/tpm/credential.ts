/**
 * TPM2_MakeCredential in software (Part 1 §24, Part 3 §12.6): binds a fresh secret to an
 * attestation key's Name so that only the TPM holding the EK, with that AK loaded, can recover
 * it with TPM2_ActivateCredential. RSA EKs: the seed is RSA-OAEP-encrypted with label
 * "IDENTITY"; ECC EKs: the seed comes from ECDH with an ephemeral key and KDFe.
 */
import { constants, createCipheriv, createECDH, createHash, createHmac, publicEncrypt, randomBytes } from 'node:crypto';
import { AttestationError } from '../../errors.js';
import { HASHES, TPM_ALG, TPM_ECC } from '../../tpm/constants.js';
import { TpmWriter } from '../../tpm/marshal.js';
import { publicKeyOf, type TpmPublic } from '../../tpm/structures.js';

/** KDFa (Part 1 §11.4.10.2): counter-mode HMAC KDF; `label` gets its terminating NUL here. */
export function kdfa(hashName: string, key: Buffer, label: string, contextU: Buffer, contextV: Buffer, bits: number): Buffer {
  const out: Buffer[] = [];
  const lbl = Buffer.concat([Buffer.from(label, 'latin1'), Buffer.from([0])]);
  const bitsBuf = Buffer.alloc(4);
  bitsBuf.writeUInt32BE(bits);
  let got = 0;
  for (let i = 1; got * 8 < bits; i++) {
    const ctr = Buffer.alloc(4);
    ctr.writeUInt32BE(i);
    const block = createHmac(hashName, key).update(ctr).update(lbl).update(contextU).update(contextV).update(bitsBuf).digest();
    out.push(block);
    got += block.length;
  }
  return Buffer.concat(out).subarray(0, bits / 8);
}

/** KDFe (Part 1 §11.4.10.3): counter-mode hash KDF over an ECDH Z. */
export function kdfe(hashName: string, z: Buffer, label: string, partyU: Buffer, partyV: Buffer, bits: number): Buffer {
  const out: Buffer[] = [];
  const lbl = Buffer.concat([Buffer.from(label, 'latin1'), Buffer.from([0])]);
  let got = 0;
  for (let i = 1; got * 8 < bits; i++) {
    const ctr = Buffer.alloc(4);
    ctr.writeUInt32BE(i);
    const block = createHash(hashName).update(ctr).update(z).update(lbl).update(partyU).update(partyV).digest();
    out.push(block);
    got += block.length;
  }
  return Buffer.concat(out).subarray(0, bits / 8);
}

export interface Credential {
  /** TPM2B_ID_OBJECT contents: integrity HMAC (TPM2B) ‖ encrypted identity. */
  readonly credentialBlob: Buffer;
  /** TPM2B_ENCRYPTED_SECRET contents. */
  readonly secret: Buffer;
}

const CURVE_NAMES: ReadonlyMap<number, { node: string; size: number }> = new Map([
  [TPM_ECC.NIST_P256, { node: 'prime256v1', size: 32 }],
  [TPM_ECC.NIST_P384, { node: 'secp384r1', size: 48 }],
]);

/**
 * Makes a credential for `ek` (a storage key: restricted decrypt with AES-CFB) that releases
 * `credential` only to the TPM that holds `ek` and has the object named `akName` loaded.
 */
export function makeCredential(ek: TpmPublic, akName: Buffer, credential: Buffer): Credential {
  const hash = HASHES.get(ek.nameAlg);
  if (!hash) throw new AttestationError('ERR_EVIDENCE_INVALID', 'attestation(tpm): EK nameAlg unsupported');
  if (ek.symmetric.algorithm !== TPM_ALG.AES || ek.symmetric.mode !== TPM_ALG.CFB) {
    throw new AttestationError('ERR_EVIDENCE_INVALID', 'attestation(tpm): EK is not an AES-CFB storage key');
  }
  if (credential.length > hash.size) throw new RangeError('credential longer than the EK name digest');
  let seed: Buffer;
  let secret: Buffer;
  if (ek.type === TPM_ALG.RSA) {
    seed = randomBytes(hash.size);
    secret = publicEncrypt(
      { key: publicKeyOf(ek), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash.name, oaepLabel: Buffer.from('IDENTITY\0', 'latin1') },
      seed,
    );
  } else {
    const curve = CURVE_NAMES.get(ek.curve);
    if (!curve) throw new AttestationError('ERR_EVIDENCE_INVALID', 'attestation(tpm): EK curve unsupported');
    const ecdh = createECDH(curve.node);
    ecdh.generateKeys();
    const point = Buffer.concat([Buffer.from([4]), ek.x, ek.y]);
    const z = ecdh.computeSecret(point);
    const eph = ecdh.getPublicKey();
    const ex = eph.subarray(1, 1 + curve.size);
    const ey = eph.subarray(1 + curve.size);
    seed = kdfe(hash.name, z, 'IDENTITY', ex, ek.x, hash.size * 8);
    secret = new TpmWriter().tpm2b(ex).tpm2b(ey).done();
  }
  const symBits = ek.symmetric.keyBits!;
  const symKey = kdfa(hash.name, seed, 'STORAGE', akName, Buffer.alloc(0), symBits);
  const plaintext = new TpmWriter().tpm2b(credential).done();
  const cipher = createCipheriv(`aes-${symBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const hmacKey = kdfa(hash.name, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), hash.size * 8);
  const integrity = createHmac(hash.name, hmacKey).update(encIdentity).update(akName).digest();
  return { credentialBlob: new TpmWriter().tpm2b(integrity).bytes(encIdentity).done(), secret };
}
