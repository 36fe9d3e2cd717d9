/** The TCG default EK templates writ uses and accepts (TCG EK Credential Profile 2.0, annex B). */
import { EK_POLICY_SHA256, TPM_ALG, TPM_ECC } from './constants.js';
import { marshalPublic, type PublicTemplate, type TpmPublic } from './structures.js';

/** PolicyB digest (SHA-384) of the high-range EK templates (TCG EK Credential Profile 2.0, B.4). */
export const EK_POLICY_B_SHA384 = Buffer.from('b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12', 'hex');

/** The TCG templates writ accepts: L-1 (RSA 2048) and H-3 (ECC P-384). */
export const EK_TEMPLATES: ReadonlyArray<{ name: 'rsa2048' | 'ecc384'; nvIndex: number; persistentHandle: number; template: PublicTemplate }> = [
  {
    name: 'rsa2048',
    nvIndex: 0x01c00002,
    persistentHandle: 0x81010001,
    template: {
      type: TPM_ALG.RSA,
      nameAlg: TPM_ALG.SHA256,
      attributes: 0x000300b2,
      authPolicy: EK_POLICY_SHA256,
      symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
      scheme: { scheme: TPM_ALG.NULL },
      keyBits: 2048,
      exponent: 0,
      modulus: Buffer.alloc(256),
    },
  },
  {
    name: 'ecc384',
    nvIndex: 0x01c00016,
    persistentHandle: 0x81010016,
    template: {
      type: TPM_ALG.ECC,
      nameAlg: TPM_ALG.SHA384,
      attributes: 0x000300f2,
      authPolicy: EK_POLICY_B_SHA384,
      symmetric: { algorithm: TPM_ALG.AES, keyBits: 256, mode: TPM_ALG.CFB },
      scheme: { scheme: TPM_ALG.NULL },
      curve: TPM_ECC.NIST_P384,
      kdf: { scheme: TPM_ALG.NULL },
      x: Buffer.alloc(0),
      y: Buffer.alloc(0),
    },
  },
];

/** True when `pub` is an instance of `template`: everything but the unique field is equal. */
export function isInstanceOf(pub: TpmPublic, t: PublicTemplate): boolean {
  if (t.type === TPM_ALG.RSA && pub.type === TPM_ALG.RSA) return marshalPublic({ ...t, modulus: pub.modulus }).equals(pub.bytes);
  if (t.type === TPM_ALG.ECC && pub.type === TPM_ALG.ECC) return marshalPublic({ ...t, x: pub.x, y: pub.y }).equals(pub.bytes);
  return false;
}

/** True when `ek` was made from one of the TCG default EK templates writ accepts. */
export function matchesEkTemplate(ek: TpmPublic): boolean {
  return EK_TEMPLATES.some(({ template }) => isInstanceOf(ek, template));
}
