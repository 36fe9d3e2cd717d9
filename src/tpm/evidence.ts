/**
 * The wire format of TPM evidence in the attestation stream (JSON, standard base64), shared by
 * the sidecar and the verifier. Parsing is strict: known members only, bounded sizes.
 *
 *   challenge 1  { "pcr_selection": "sha256:0,1,2,3,7" }
 *   evidence 1   { "ek_public", "ek_certificate", "ek_intermediates": [], "ak_public",
 *                  "attest", "signature", "pcrs": { "sha256": { "0": "<hex>", ... } },
 *                  "event_log"?, "app_log"?,    (TCG crypto-agile logs: firmware, and the sidecar's)
 *                  "certify"?: { "public", "attest", "signature" } }   (TPM2_Certify of a TPM-resident agent key)
 *   challenge 2  { "credential_blob", "secret" }        (only when the AK is not yet activated)
 *   evidence 2   { "activated_secret" }
 */
import { AttestationError } from '../errors.js';
import { claimReader } from '../jose/claims.js';
import { parseStrictJson, StrictJsonError } from '../jose/strict-json.js';
import { HASH_BY_NAME, HASHES } from './constants.js';
import { PCR_COUNT } from './structures.js';

/** Largest TPM evidence message (firmware event logs run to a few hundred KiB). */
export const MAX_TPM_EVIDENCE_BYTES = 768 * 1024;
/** Largest event log carried in evidence. */
export const MAX_EVENT_LOG_BYTES = 512 * 1024;

const fail = (msg: string) => new AttestationError('ERR_EVIDENCE_INVALID', `attestation(tpm): evidence: ${msg}`);

export interface TpmEvidence {
  readonly ekPublic: Buffer;
  readonly ekCertificate: Buffer;
  readonly ekIntermediates: Buffer[];
  readonly akPublic: Buffer;
  readonly attest: Buffer;
  readonly signature: Buffer;
  readonly pcrs: Map<number, Map<number, Buffer>>;
  /** The firmware's TCG event log, if the sidecar sent it. */
  readonly eventLog?: Buffer;
  /** The sidecar's log of what it measured into the agent PCR. */
  readonly appLog?: Buffer;
  /** TPM2_Certify by the AK of the TPM-resident agent key (TPMT_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE). */
  readonly certify?: { readonly public: Buffer; readonly attest: Buffer; readonly signature: Buffer };
}

const b64 = (b: Buffer) => b.toString('base64');

const read = claimReader((msg) => {
  throw fail(msg);
});

/** An object with only the given members (nested values are checked by the caller). */
const members = (v: unknown, keys: readonly string[], what: string): Record<string, unknown> => read.object(v, what, keys);

/** Parses one bounded JSON message into an object with only the given members. */
function obj(text: Buffer, keys: readonly string[], what: string): Record<string, unknown> {
  if (text.length > MAX_TPM_EVIDENCE_BYTES) throw fail(`${what} larger than ${MAX_TPM_EVIDENCE_BYTES} bytes`);
  let v: unknown;
  try {
    // Strict: a duplicate member would let two readers of the same evidence see different values.
    v = parseStrictJson(text.toString('utf8'));
  } catch (e) {
    throw fail(`${what} is not strict JSON${e instanceof StrictJsonError ? `: ${e.message}` : ''}`);
  }
  return members(v, keys, what);
}

function bytes(v: unknown, name: string, max: number): Buffer {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) throw fail(`${name} must be standard base64`);
  const b = Buffer.from(v, 'base64');
  if (b.toString('base64') !== v) throw fail(`${name} must be canonical base64 (unused bits zero)`);
  if (b.length === 0 || b.length > max) throw fail(`${name} must be 1..${max} bytes`);
  return b;
}

export function encodeChallenge1(pcrSelection: string): Buffer {
  return Buffer.from(JSON.stringify({ pcr_selection: pcrSelection }));
}

export function parseChallenge1(b: Buffer | Uint8Array): { pcrSelection: string } {
  const o = obj(Buffer.from(b), ['pcr_selection'], 'challenge');
  if (typeof o.pcr_selection !== 'string' || o.pcr_selection.length > 256) throw fail('pcr_selection must be a string');
  return { pcrSelection: o.pcr_selection };
}

export function encodeEvidence1(e: TpmEvidence): Buffer {
  const pcrs: Record<string, Record<string, string>> = {};
  for (const [hash, values] of e.pcrs) {
    const bank: Record<string, string> = {};
    for (const [i, v] of values) bank[String(i)] = v.toString('hex');
    pcrs[HASHES.get(hash)!.name] = bank;
  }
  return Buffer.from(
    JSON.stringify({
      ek_public: b64(e.ekPublic),
      ek_certificate: b64(e.ekCertificate),
      ek_intermediates: e.ekIntermediates.map(b64),
      ak_public: b64(e.akPublic),
      attest: b64(e.attest),
      signature: b64(e.signature),
      pcrs,
      ...(e.eventLog ? { event_log: b64(e.eventLog) } : {}),
      ...(e.appLog ? { app_log: b64(e.appLog) } : {}),
      ...(e.certify ? { certify: { public: b64(e.certify.public), attest: b64(e.certify.attest), signature: b64(e.certify.signature) } } : {}),
    }),
  );
}

/** Most intermediates an agent may send for its EK certificate. */
const MAX_EK_INTERMEDIATES = 4;

export function parseEvidence1(b: Buffer): TpmEvidence {
  const o = obj(
    b,
    ['ek_public', 'ek_certificate', 'ek_intermediates', 'ak_public', 'attest', 'signature', 'pcrs', 'event_log', 'app_log', 'certify'],
    'evidence',
  );
  const inter = o.ek_intermediates ?? [];
  if (!Array.isArray(inter) || inter.length > MAX_EK_INTERMEDIATES) throw fail(`ek_intermediates must be a list of at most ${MAX_EK_INTERMEDIATES}`);
  const pcrsRaw = o.pcrs;
  if (typeof pcrsRaw !== 'object' || pcrsRaw === null || Array.isArray(pcrsRaw)) throw fail('pcrs must be an object');
  const pcrs = new Map<number, Map<number, Buffer>>();
  for (const [bankName, bank] of Object.entries(pcrsRaw as Record<string, unknown>)) {
    const hash = HASH_BY_NAME.get(bankName);
    if (hash === undefined) throw fail(`unknown PCR bank ${JSON.stringify(bankName.slice(0, 20))}`);
    if (typeof bank !== 'object' || bank === null || Array.isArray(bank)) throw fail(`pcrs.${bankName} must be an object`);
    const size = HASHES.get(hash)!.size;
    const m = new Map<number, Buffer>();
    for (const [idx, hex] of Object.entries(bank as Record<string, unknown>)) {
      if (!/^(?:[0-9]|1[0-9]|2[0-3])$/.test(idx) || Number(idx) >= PCR_COUNT) throw fail(`bad PCR index ${JSON.stringify(idx.slice(0, 8))}`);
      if (typeof hex !== 'string' || !/^[0-9a-f]*$/.test(hex) || hex.length !== size * 2)
        throw fail(`pcrs.${bankName}.${idx} must be ${size * 2} lower-case hex digits`);
      m.set(Number(idx), Buffer.from(hex, 'hex'));
    }
    pcrs.set(hash, m);
  }
  return {
    ekPublic: bytes(o.ek_public, 'ek_public', 1024),
    ekCertificate: bytes(o.ek_certificate, 'ek_certificate', 8192),
    ekIntermediates: inter.map((x, i) => bytes(x, `ek_intermediates[${i}]`, 8192)),
    akPublic: bytes(o.ak_public, 'ak_public', 1024),
    attest: bytes(o.attest, 'attest', 2048),
    signature: bytes(o.signature, 'signature', 1024),
    pcrs,
    ...(o.event_log !== undefined ? { eventLog: bytes(o.event_log, 'event_log', MAX_EVENT_LOG_BYTES) } : {}),
    ...(o.app_log !== undefined ? { appLog: bytes(o.app_log, 'app_log', MAX_EVENT_LOG_BYTES) } : {}),
    ...(o.certify !== undefined ? { certify: parseCertify(o.certify) } : {}),
  };
}

function parseCertify(v: unknown): { public: Buffer; attest: Buffer; signature: Buffer } {
  const o = members(v, ['public', 'attest', 'signature'], 'certify');
  return {
    public: bytes(o.public, 'certify.public', 1024),
    attest: bytes(o.attest, 'certify.attest', 2048),
    signature: bytes(o.signature, 'certify.signature', 1024),
  };
}

export function encodeChallenge2(credentialBlob: Buffer, secret: Buffer): Buffer {
  return Buffer.from(JSON.stringify({ credential_blob: b64(credentialBlob), secret: b64(secret) }));
}

export function parseChallenge2(b: Buffer | Uint8Array): { credentialBlob: Buffer; secret: Buffer } {
  const o = obj(Buffer.from(b), ['credential_blob', 'secret'], 'challenge');
  return { credentialBlob: bytes(o.credential_blob, 'credential_blob', 1024), secret: bytes(o.secret, 'secret', 1024) };
}

export function encodeEvidence2(activated: Buffer): Buffer {
  return Buffer.from(JSON.stringify({ activated_secret: b64(activated) }));
}

export function parseEvidence2(b: Buffer): { activatedSecret: Buffer } {
  const o = obj(b, ['activated_secret'], 'evidence');
  return { activatedSecret: bytes(o.activated_secret, 'activated_secret', 64) };
}
