/**
 * The AWS Nitro Enclaves attestation document (aws/aws-nitro-enclaves-nsm-api,
 * docs/attestation_process.md §3): a COSE_Sign1 (RFC 9052 §4.2), tagged (18) or not, whose
 * protected header is exactly `{1: -35}` (ES384), whose unprotected header is empty, whose
 * payload is a CBOR map of the nine fields below and whose signature is the 96-byte raw r‖s of
 * ECDSA P-384 over the Sig_structure. UNTRUSTED input: parsing is strict and bounded, and
 * nothing parsed here is trusted until `verify.ts` has checked the signature and the chain.
 */
import { CborMap, CborTag, decodeCbor, encodeArray, encodeBytes, encodeText, type CborValue } from './cbor.js';
import { malformed } from './errors.js';

/** Largest document accepted: the AWS field bounds (certificate 1024, cabundle entries 1024 each, 32 PCRs of 64, public_key 1024, user_data 512, nonce 512) with room for a cabundle of MAX_CABUNDLE. */
export const MAX_NITRO_DOCUMENT_BYTES = 16 * 1024;
/** AWS bounds on the fields (attestation_process.md §3.2). */
export const MAX_CERT_BYTES = 1024;
export const MAX_PUBLIC_KEY_BYTES = 1024;
export const MAX_USER_DATA_BYTES = 512;
export const MAX_NONCE_BYTES = 512;
export const MAX_PCRS = 32;
/** Most certificates in `cabundle` (real documents carry 4: root, regional, zonal, instance). */
export const MAX_CABUNDLE = 7;
/** COSE algorithm ES384 (RFC 9053 §2.1). */
export const COSE_ALG_ES384 = -35;
/** COSE_Sign1's CBOR tag (RFC 9052 §2). */
export const COSE_SIGN1_TAG = 18;
/** Raw r‖s of a P-384 signature. */
export const ES384_SIGNATURE_BYTES = 96;

export interface NitroDocument {
  /** The enclave's module id, e.g. `i-0123…-enc0123…`. */
  readonly moduleId: string;
  /** The PCR bank's hash, always "SHA384". */
  readonly digest: 'SHA384';
  /** Milliseconds since the Unix epoch, when the NSM made the document. */
  readonly timestamp: number;
  /** PCR index → value (48 bytes for SHA384). */
  readonly pcrs: ReadonlyMap<number, Buffer>;
  /** The leaf certificate (DER) whose key signed the document. */
  readonly certificate: Buffer;
  /** The CA bundle as the document orders it: root first, then down to the leaf's issuer (DER). */
  readonly cabundle: readonly Buffer[];
  readonly publicKey?: Buffer;
  readonly userData?: Buffer;
  readonly nonce?: Buffer;
}

export interface CoseSign1 {
  /** The protected header's bytes as signed (the bstr's content). */
  readonly protected: Buffer;
  /** The payload's bytes as signed. */
  readonly payload: Buffer;
  readonly signature: Buffer;
  /** The exact bytes ES384 signs: the CBOR of ["Signature1", protected, h'', payload]. */
  readonly toBeSigned: Buffer;
  readonly document: NitroDocument;
}

const FIELDS = ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce'] as const;
type Field = (typeof FIELDS)[number];
const REQUIRED: readonly Field[] = ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle'];
const OPTIONAL: readonly Field[] = ['public_key', 'user_data', 'nonce'];

function bytesOf(v: CborValue | undefined, what: string, min: number, max: number): Buffer {
  if (!Buffer.isBuffer(v)) throw malformed(`${what} is not a byte string`);
  if (v.length < min || v.length > max) throw malformed(`${what} is ${v.length} bytes; ${min}..${max} accepted`);
  return v;
}

/** The exact Sig_structure bytes of RFC 9052 §4.4 for COSE_Sign1 with empty external_aad. */
export function sigStructure(protectedHeader: Buffer, payload: Buffer): Buffer {
  return encodeArray([encodeText('Signature1'), encodeBytes(protectedHeader), encodeBytes(Buffer.alloc(0)), encodeBytes(payload)]);
}

/** Parses the attestation document fields (the COSE payload). */
export function parseDocumentPayload(payload: Buffer): NitroDocument {
  const top = decodeCbor(payload);
  if (!(top instanceof CborMap)) throw malformed('the payload is not a CBOR map');
  const fields = new Map<Field, CborValue>();
  for (const [k, v] of top.entries) {
    if (typeof k !== 'string' || !(FIELDS as readonly string[]).includes(k))
      throw malformed(`unknown document field ${JSON.stringify(typeof k === 'string' ? k.slice(0, 32) : typeof k)}`);
    fields.set(k as Field, v);
  }
  for (const f of REQUIRED) {
    const v = fields.get(f);
    if (v === undefined || v === null) throw malformed(`the document has no ${f}`);
  }
  const moduleId = fields.get('module_id');
  if (typeof moduleId !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(moduleId)) throw malformed('module_id is not 1..128 printable ASCII characters');
  if (fields.get('digest') !== 'SHA384') throw malformed('digest is not "SHA384"');
  const timestamp = fields.get('timestamp');
  if (typeof timestamp !== 'number' || !Number.isInteger(timestamp) || timestamp <= 0) throw malformed('timestamp is not a positive integer');
  const pcrMap = fields.get('pcrs');
  if (!(pcrMap instanceof CborMap)) throw malformed('pcrs is not a map');
  if (pcrMap.entries.length === 0 || pcrMap.entries.length > MAX_PCRS) throw malformed(`pcrs has ${pcrMap.entries.length} entries; 1..${MAX_PCRS} accepted`);
  const pcrs = new Map<number, Buffer>();
  for (const [k, v] of pcrMap.entries) {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k >= MAX_PCRS) throw malformed(`a PCR index is not an integer 0..${MAX_PCRS - 1}`);
    // The bank is SHA384 (digest above): every PCR is 48 bytes.
    pcrs.set(k, bytesOf(v, `PCR${k}`, 48, 48));
  }
  const certificate = bytesOf(fields.get('certificate'), 'certificate', 1, MAX_CERT_BYTES);
  const bundle = fields.get('cabundle');
  if (!Array.isArray(bundle)) throw malformed('cabundle is not an array');
  const list = bundle as readonly CborValue[];
  if (list.length === 0 || list.length > MAX_CABUNDLE) throw malformed(`cabundle has ${list.length} certificates; 1..${MAX_CABUNDLE} accepted`);
  const cabundle = list.map((c, i) => bytesOf(c, `cabundle[${i}]`, 1, MAX_CERT_BYTES));
  const optional: Partial<Record<Field, Buffer>> = {};
  const bounds: Record<string, [number, number]> = { public_key: [1, MAX_PUBLIC_KEY_BYTES], user_data: [0, MAX_USER_DATA_BYTES], nonce: [0, MAX_NONCE_BYTES] };
  for (const f of OPTIONAL) {
    const v = fields.get(f);
    // Absent fields are either left out or encoded as null (both occur in genuine documents).
    if (v === undefined || v === null) continue;
    optional[f] = bytesOf(v, f, bounds[f]![0], bounds[f]![1]);
  }
  return {
    moduleId,
    digest: 'SHA384',
    timestamp,
    pcrs,
    certificate,
    cabundle,
    ...(optional.public_key ? { publicKey: optional.public_key } : {}),
    ...(optional.user_data ? { userData: optional.user_data } : {}),
    ...(optional.nonce ? { nonce: optional.nonce } : {}),
  };
}

/** Parses a COSE_Sign1 attestation document (tag 18 or untagged) to the byte. */
export function parseNitroDocument(bytes: Buffer): CoseSign1 {
  if (bytes.length > MAX_NITRO_DOCUMENT_BYTES) throw malformed(`the document is larger than ${MAX_NITRO_DOCUMENT_BYTES} bytes`);
  let top = decodeCbor(bytes);
  if (top instanceof CborTag) {
    if (top.tag !== COSE_SIGN1_TAG) throw malformed(`the document is tagged ${top.tag}, not COSE_Sign1 (18)`);
    top = top.value;
  }
  if (!Array.isArray(top) || top.length !== 4) throw malformed('the document is not a COSE_Sign1 array of 4');
  const [prot, unprot, payload, signature] = top as readonly CborValue[];
  if (!Buffer.isBuffer(prot)) throw malformed('the COSE protected header is not a byte string');
  const header = decodeCbor(prot);
  if (!(header instanceof CborMap) || header.entries.length !== 1 || header.get(1) !== COSE_ALG_ES384)
    throw malformed('the COSE protected header is not exactly {1: -35} (alg ES384)');
  if (!(unprot instanceof CborMap) || unprot.entries.length !== 0) throw malformed('the COSE unprotected header is not an empty map');
  if (!Buffer.isBuffer(payload)) throw malformed('the COSE payload is not a byte string (a detached payload is not accepted)');
  if (!Buffer.isBuffer(signature) || signature.length !== ES384_SIGNATURE_BYTES) throw malformed(`the COSE signature is not ${ES384_SIGNATURE_BYTES} bytes`);
  return { protected: prot, payload, signature, toBeSigned: sigStructure(prot, payload), document: parseDocumentPayload(payload) };
}
