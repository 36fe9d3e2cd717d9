/**
 * TPM structures made in software exactly as a TPM makes them (as test/bench/run.ts does): keys
 * with the public area a TPM would report, TPMS_ATTEST for quotes and certifications, and
 * TPMT_SIGNATURE under a key's own scheme. For tests of the checks that need no TPM.
 */
import { constants, createDecipheriv, createECDH, createHash, createHmac, generateKeyPairSync, privateDecrypt, sign, type KeyObject } from 'node:crypto';
import { pcrDigest } from '../../src/attestation/tpm/quote.js';
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from '../../src/tpm/constants.js';
import { TpmReader, TpmWriter } from '../../src/tpm/marshal.js';
import {
  akTemplate,
  marshalPcrSelection,
  marshalPublic,
  marshalSignature,
  objectName,
  parsePublic,
  type PcrSelection,
  type PublicTemplate,
  type TpmPublic,
} from '../../src/tpm/structures.js';

export interface SoftKey {
  pub: TpmPublic;
  key: KeyObject;
}

/** A key made in software with the public area a TPM would report for `template` (plus `over`). */
export function softKey(template: PublicTemplate, over: Partial<PublicTemplate> = {}, curve = 'prime256v1', bits = 2048): SoftKey {
  if (template.type === TPM_ALG.RSA) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
    const n = Buffer.from(publicKey.export({ format: 'jwk' }).n!, 'base64url');
    return { key: privateKey, pub: parsePublic(marshalPublic({ ...template, keyBits: bits, modulus: n, ...over } as PublicTemplate)) };
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  const j = publicKey.export({ format: 'jwk' });
  return {
    key: privateKey,
    pub: parsePublic(marshalPublic({ ...template, x: Buffer.from(j.x!, 'base64url'), y: Buffer.from(j.y!, 'base64url'), ...over } as PublicTemplate)),
  };
}

export const ak = (kind: 'ecc' | 'rsa' = 'ecc', over: Partial<PublicTemplate> = {}) => softKey(akTemplate(kind), over);

/** The TPMT_SIGNATURE a TPM would return for `message` under the key's own scheme. */
export function tpmSign(k: SoftKey, message: Buffer, o: { sigAlg?: number; hash?: number } = {}): Buffer {
  const sigAlg = o.sigAlg ?? k.pub.scheme.scheme;
  const hash = o.hash ?? k.pub.scheme.hashAlg!;
  const hashName = { [TPM_ALG.SHA256]: 'sha256', [TPM_ALG.SHA384]: 'sha384', [TPM_ALG.SHA512]: 'sha512', [TPM_ALG.SHA1]: 'sha1' }[hash]!;
  if (sigAlg === TPM_ALG.ECDSA) {
    const rs = sign(hashName, message, { key: k.key, dsaEncoding: 'ieee-p1363' });
    return marshalSignature({ sigAlg, hash, r: rs.subarray(0, rs.length / 2), s: rs.subarray(rs.length / 2) });
  }
  const padding = sigAlg === TPM_ALG.RSAPSS ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING;
  return marshalSignature({ sigAlg: sigAlg as typeof TPM_ALG.RSASSA, hash, sig: sign(hashName, message, { key: k.key, padding, saltLength: 32 }) });
}

export const SEL: PcrSelection[] = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 7] }];
export const values = (sel = SEL) => new Map(sel.map((b) => [b.hash, new Map(b.pcrs.map((p) => [p, createHash('sha256').update(`pcr${p}`).digest()]))]));

export interface QuoteOpts {
  type?: number;
  nonce?: Buffer;
  sel?: PcrSelection[];
  digest?: Buffer;
  safe?: number;
  resetCount?: number;
  restartCount?: number;
  clock?: bigint;
  name?: Buffer;
  /** firmwareVersion (default 0x0202020202020202). */
  firmware?: bigint;
}

/** A TPMS_ATTEST exactly as TPM2_Quote (or TPM2_Certify, with `name`) writes it. */
export function attest(signer: SoftKey, o: QuoteOpts = {}): Buffer {
  const w = new TpmWriter()
    .u32(TPM_GENERATED_VALUE)
    .u16(o.type ?? TPM_ST.ATTEST_QUOTE)
    .tpm2b(objectName(signer.pub))
    .tpm2b(o.nonce ?? NONCE);
  const clock = Buffer.alloc(8);
  clock.writeBigUInt64BE(o.clock ?? 1000n);
  const firmware = Buffer.alloc(8, 2);
  if (o.firmware !== undefined) firmware.writeBigUInt64BE(o.firmware);
  w.bytes(clock)
    .u32(o.resetCount ?? 3)
    .u32(o.restartCount ?? 0)
    .u8(o.safe ?? 1)
    .bytes(firmware);
  if ((o.type ?? TPM_ST.ATTEST_QUOTE) === TPM_ST.ATTEST_QUOTE) {
    const sel = o.sel ?? SEL;
    w.bytes(marshalPcrSelection(sel)).tpm2b(o.digest ?? pcrDigest(TPM_ALG.SHA256, sel, values(sel)));
  } else {
    w.tpm2b(o.name ?? Buffer.alloc(34)).tpm2b(Buffer.alloc(34));
  }
  return w.done();
}

export const NONCE = createHash('sha256').update('binding digest').digest();

/** KDFa as Part 1 §11.4.10.2 states it, written out again here. */
export function refKdfa(hash: string, key: Buffer, label: string, u: Buffer, v: Buffer, bits: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 1; Buffer.concat(out).length * 8 < bits; i++) {
    const ctr = Buffer.alloc(4);
    ctr.writeUInt32BE(i);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bits);
    out.push(
      createHmac(hash, key)
        .update(Buffer.concat([ctr, Buffer.from(`${label}\0`), u, v, len]))
        .digest(),
    );
  }
  return Buffer.concat(out).subarray(0, bits / 8);
}

export function refKdfe(hash: string, z: Buffer, label: string, u: Buffer, v: Buffer, bits: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 1; Buffer.concat(out).length * 8 < bits; i++) {
    const ctr = Buffer.alloc(4);
    ctr.writeUInt32BE(i);
    out.push(
      createHash(hash)
        .update(Buffer.concat([ctr, z, Buffer.from(`${label}\0`), u, v]))
        .digest(),
    );
  }
  return Buffer.concat(out).subarray(0, bits / 8);
}

/** TPM2_ActivateCredential's work, given the EK's private key: the credential, or an error. */
export function activate(ek: TpmPublic, ekKey: KeyObject, akName: Buffer, blob: Buffer, secret: Buffer, ecdh?: { curve: string; size: number }): Buffer {
  const hash = ek.nameAlg === TPM_ALG.SHA384 ? 'sha384' : 'sha256';
  const hsize = hash === 'sha384' ? 48 : 32;
  let seed: Buffer;
  if (!ecdh) {
    seed = privateDecrypt({ key: ekKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash, oaepLabel: Buffer.from('IDENTITY\0') }, secret);
  } else {
    const r = new TpmReader(secret, 'secret');
    const ex = r.tpm2b('x', 66);
    const ey = r.tpm2b('y', 66);
    r.end();
    const d = createECDH(ecdh.curve);
    d.setPrivateKey(Buffer.from(ekKey.export({ format: 'jwk' }).d!, 'base64url'));
    const z = d.computeSecret(Buffer.concat([Buffer.from([4]), ex, ey]));
    seed = refKdfe(hash, z, 'IDENTITY', ex, (ek as { x: Buffer }).x, hsize * 8);
  }
  const r = new TpmReader(blob, 'blob');
  const integrity = r.tpm2b('integrity', 64);
  const enc = blob.subarray(2 + integrity.length);
  const hmacKey = refKdfa(hash, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), hsize * 8);
  if (!createHmac(hash, hmacKey).update(enc).update(akName).digest().equals(integrity)) throw new Error('integrity check failed');
  const bits = ek.symmetric.keyBits!;
  const symKey = refKdfa(hash, seed, 'STORAGE', akName, Buffer.alloc(0), bits);
  const d = createDecipheriv(`aes-${bits}-cfb`, symKey, Buffer.alloc(16));
  const plain = Buffer.concat([d.update(enc), d.final()]);
  const pr = new TpmReader(plain, 'credential');
  const cred = pr.tpm2b('credential', 64);
  pr.end();
  return cred;
}
