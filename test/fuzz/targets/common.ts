/** Helpers the targets share: reading outside vectors, and TPM structures built as a TPM builds them. */
import { createPublicKey, sign, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WritError } from '../../../src/errors.js';
import { TPM_ALG, TPM_ECC, TPM_GENERATED_VALUE, TPM_ST } from '../../../src/tpm/constants.js';
import { TpmWriter } from '../../../src/tpm/marshal.js';
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
} from '../../../src/tpm/structures.js';
import { pcrDigest, type PcrValues } from '../../../src/attestation/tpm/quote.js';
import { HAVE_VECTORS, vectorPath } from '../engine/paths.js';
import { certsOfPem, ecKey, rsaKey } from '../fixtures.js';

let warned = false;
/** Every file under vectors/<dir> (recursively), or none (with one warning) when ../shared is absent. */
export function vectorFiles(dir: string, filter: (name: string) => boolean = () => true): Buffer[] {
  if (!HAVE_VECTORS) {
    if (!warned) process.stderr.write('fuzz: ../shared/vectors not found: seeding from generated inputs only\n');
    warned = true;
    return [];
  }
  const out: Buffer[] = [];
  const walk = (p: string) => {
    for (const n of readdirSync(p).sort()) {
      const f = join(p, n);
      if (statSync(f).isDirectory()) walk(f);
      else if (filter(n)) out.push(readFileSync(f));
    }
  };
  walk(vectorPath(dir));
  return out;
}

/** Real certificates (DER) from the vectors: go-spiffe fixtures, enclave vendor roots and chains. */
export function vectorCertificates(): Buffer[] {
  const pems = [
    ...vectorFiles('spiffe', (n) => n.endsWith('.pem')),
    ...vectorFiles('enclave', (n) => n.endsWith('.pem')),
    ...vectorFiles('sev-snp', (n) => n.endsWith('.pem')),
  ];
  const ders = [
    ...vectorFiles('enclave', (n) => n.endsWith('.der') || n.endsWith('.cert') || n.endsWith('.crt')),
    ...vectorFiles('sev-snp', (n) => n.endsWith('.der')),
  ];
  return [...pems.flatMap((p) => certsOfPem(p.toString('latin1'))), ...ders.filter((d) => d[0] === 0x30)];
}

/** Calls `fn`, swallowing only a WritError: a parser's typed refusal ends this branch, anything else propagates. */
export function soft<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (e instanceof WritError) return undefined;
    throw e;
  }
}

// ------------------------------------------------------------------ TPM

export const SEL: readonly PcrSelection[] = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 7] }];
export const QUOTE_NONCE = Buffer.alloc(32, 0x4e);
export const PCR_VALUES: PcrValues = new Map([[TPM_ALG.SHA256, new Map(SEL[0]!.pcrs.map((p) => [p, Buffer.alloc(32, p + 1)]))]]);

export interface TpmKey {
  readonly pub: TpmPublic;
  readonly key: KeyObject;
}

/** An AK as a TPM would make it from akTemplate, with a fixed software key in its unique field. */
export function akFor(kind: 'ecc' | 'ecc384' | 'rsa'): TpmKey {
  if (kind === 'rsa') {
    const key = rsaKey();
    const n = Buffer.from(createPublicKey(key).export({ format: 'jwk' }).n!, 'base64url');
    return { key, pub: parsePublic(marshalPublic({ ...akTemplate('rsa'), modulus: n } as PublicTemplate)) };
  }
  const key = kind === 'ecc' ? ecKey('tpm ak') : ecKey('tpm ak 384', 'P-384');
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  const base = akTemplate('ecc');
  const tpl = {
    ...base,
    ...(kind === 'ecc384' ? { curve: TPM_ECC.NIST_P384, scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA384 } } : {}),
    x: Buffer.from(jwk.x!, 'base64url'),
    y: Buffer.from(jwk.y!, 'base64url'),
  } as PublicTemplate;
  return { key, pub: parsePublic(marshalPublic(tpl)) };
}

/** TPMS_ATTEST of a quote (or a certification of `certified`) by `ak`, as TPM2_Quote / TPM2_Certify write it. */
export function attestBy(ak: TpmKey, o: { certified?: TpmPublic; nonce?: Buffer } = {}): Buffer {
  const w = new TpmWriter()
    .u32(TPM_GENERATED_VALUE)
    .u16(o.certified ? TPM_ST.ATTEST_CERTIFY : TPM_ST.ATTEST_QUOTE)
    .tpm2b(objectName(ak.pub))
    .tpm2b(o.nonce ?? QUOTE_NONCE)
    .bytes(Buffer.from('0000000000abcdef', 'hex'))
    .u32(3)
    .u32(1)
    .u8(1)
    .bytes(Buffer.from('0001000200030004', 'hex'));
  if (o.certified) w.tpm2b(objectName(o.certified)).tpm2b(objectName(o.certified));
  else w.bytes(marshalPcrSelection(SEL)).tpm2b(pcrDigest(ak.pub.scheme.hashAlg!, SEL, PCR_VALUES));
  return w.done();
}

/** TPMT_SIGNATURE by `ak` over `message` with the AK's scheme (ECDSA r, s as TPM2Bs of the curve size). */
export function tpmSign(ak: TpmKey, message: Buffer): Buffer {
  const hashAlg = ak.pub.scheme.hashAlg!;
  const hash = hashAlg === TPM_ALG.SHA384 ? 'sha384' : 'sha256';
  if (ak.pub.type === TPM_ALG.ECC) {
    const rs = sign(hash, message, { key: ak.key, dsaEncoding: 'ieee-p1363' });
    const half = rs.length / 2;
    return marshalSignature({ sigAlg: TPM_ALG.ECDSA, hash: hashAlg, r: rs.subarray(0, half), s: rs.subarray(half) });
  }
  return marshalSignature({ sigAlg: TPM_ALG.RSASSA, hash: hashAlg, sig: sign(hash, message, ak.key) });
}

/** The PCR values of SEL, concatenated in selection order. */
export const pcrBytes = (values: PcrValues = PCR_VALUES): Buffer => Buffer.concat(SEL.flatMap((b) => b.pcrs.map((p) => values.get(b.hash)!.get(p)!)));
