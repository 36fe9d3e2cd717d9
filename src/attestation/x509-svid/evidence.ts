/**
 * The wire format of `x509_svid` renewal evidence, shared by the sidecar and the verifier
 * (README.md §Evidence). One strict JSON object, standard base64 as the TPM evidence uses
 * (tpm/evidence.ts): known members only, no duplicates, canonical base64, bounded counts and
 * sizes. UNTRUSTED input enters in `parseRenewalEvidence`.
 *
 *   { "x5c": ["<DER leaf>", "<DER intermediate>", ...], "signature": "<sig>" }
 *
 * `signature` is the current SVID key's signature, with the algorithm writ uses for that key's
 * type (jose/jws.ts `algForKey`: ES256/ES384/ES512 by curve, PS256 for RSA; EC signatures are
 * IEEE P1363 r‖s), over `renewalMessage(nonce, newSpki)`.
 */
import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import { AttestationError } from '../../errors.js';
import { claimReader } from '../../jose/claims.js';
import { JWS_ALGORITHMS, algForKey, signOpts, type JwsSigner } from '../../jose/jws.js';
import { parseStrictJson, StrictJsonError } from '../../jose/strict-json.js';
import { MAX_CHAIN_LENGTH } from '../../x509/path.js';

export const X509_SVID_TYPE = 'x509_svid';
/** Domain separation: what the signed message begins with (then one zero byte, the nonce, SHA-256 of the new key). */
export const RENEWAL_CONTEXT = 'writ-x509-svid-renewal-v1';
/** The challenge nonce is 32 bytes: the issuer nonce, or the binding digest when grants are bound. */
export const RENEWAL_NONCE_BYTES = 32;
/** Largest certificate in a renewal chain (an RSA-4096 CA certificate is under 2 KiB). */
export const MAX_RENEWAL_CERT_BYTES = 8 * 1024;
/** Largest signature (an RSA-8192 signature is 1024 bytes), as for key proofs. */
export const MAX_RENEWAL_SIGNATURE_BYTES = 1024;
/** Largest evidence message: a full chain of the largest certificates, base64, and a signature. */
export const MAX_X509_SVID_EVIDENCE_BYTES = Math.ceil(((MAX_CHAIN_LENGTH * MAX_RENEWAL_CERT_BYTES + MAX_RENEWAL_SIGNATURE_BYTES) * 4) / 3) + 1024;

const fail = (msg: string) => new AttestationError('ERR_SVID_RENEWAL_INVALID', `attestation(x509_svid): evidence: ${msg}`);

const read = claimReader((msg) => {
  throw fail(msg);
});

export interface RenewalEvidence {
  /** The current X.509-SVID chain, DER, leaf first. */
  readonly chain: readonly Buffer[];
  readonly signature: Buffer;
}

/**
 * The exact bytes the current SVID key signs:
 * `"writ-x509-svid-renewal-v1" ‖ 0x00 ‖ nonce (32 bytes) ‖ SHA-256(new agent key SPKI DER)`.
 */
export function renewalMessage(nonce: Uint8Array, newSpki: Uint8Array): Buffer {
  if (nonce.length !== RENEWAL_NONCE_BYTES) throw fail(`the challenge nonce must be ${RENEWAL_NONCE_BYTES} bytes`);
  return Buffer.concat([Buffer.from(RENEWAL_CONTEXT, 'latin1'), Buffer.from([0]), Buffer.from(nonce), createHash('sha256').update(newSpki).digest()]);
}

function b64(v: unknown, what: string, max: number): Buffer {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) throw fail(`${what} must be standard base64`);
  const b = Buffer.from(v, 'base64');
  if (b.toString('base64') !== v) throw fail(`${what} must be canonical base64 (unused bits zero)`);
  if (b.length === 0 || b.length > max) throw fail(`${what} must be 1..${max} bytes`);
  return b;
}

/** Parses one renewal evidence message. Strict: exact members, bounded sizes, canonical base64. */
export function parseRenewalEvidence(evidence: Uint8Array): RenewalEvidence {
  if (evidence.length > MAX_X509_SVID_EVIDENCE_BYTES) throw fail(`larger than ${MAX_X509_SVID_EVIDENCE_BYTES} bytes`);
  const text = Buffer.from(evidence).toString('utf8');
  // A byte sequence that is not UTF-8 decodes with U+FFFD; refuse it rather than read a changed text.
  if (!Buffer.from(text, 'utf8').equals(Buffer.from(evidence))) throw fail('not UTF-8');
  let v: unknown;
  try {
    v = parseStrictJson(text, 3);
  } catch (e) {
    throw fail(`not strict JSON${e instanceof StrictJsonError ? `: ${e.message}` : ''}`);
  }
  const o = read.object(v, 'evidence', ['x5c', 'signature']);
  if (!Array.isArray(o.x5c) || o.x5c.length === 0 || o.x5c.length > MAX_CHAIN_LENGTH)
    throw fail(`x5c must be a list of 1..${MAX_CHAIN_LENGTH} certificates, leaf first`);
  const chain = o.x5c.map((c, i) => b64(c, `x5c[${i}]`, MAX_RENEWAL_CERT_BYTES));
  if (o.signature === undefined) throw fail('signature is missing');
  const signature = b64(o.signature, 'signature', MAX_RENEWAL_SIGNATURE_BYTES);
  return { chain, signature };
}

export function encodeRenewalEvidence(e: RenewalEvidence): Buffer {
  return Buffer.from(JSON.stringify({ x5c: e.chain.map((c) => c.toString('base64')), signature: e.signature.toString('base64') }));
}

/** The agent's side: the current SVID key signs the challenge nonce and the new key (in this process or in a TPM). */
export async function signRenewal(signer: JwsSigner, nonce: Uint8Array, newSpki: Uint8Array): Promise<Buffer> {
  if (signer.alg !== algForKey(signer.publicKey))
    throw new AttestationError('ERR_SVID_RENEWAL_INVALID', `attestation(x509_svid): renewals are signed with ${algForKey(signer.publicKey)} for this key`);
  return signer.sign(renewalMessage(nonce, newSpki));
}

/** A renewal signature made in this process (tests, tools). */
export function signRenewalWith(privateKey: KeyObject, nonce: Uint8Array, newSpki: Uint8Array): Buffer {
  const spec = JWS_ALGORITHMS.get(algForKey(privateKey))!;
  return sign(spec.hash, renewalMessage(nonce, newSpki), signOpts(spec, privateKey));
}

/**
 * True when `signature` is `leafKey`'s signature over this renewal message. The algorithm is the
 * one writ uses for the key's type, never one the agent names (no algorithm confusion).
 */
export function renewalSignatureValid(leafKey: KeyObject, nonce: Uint8Array, newSpki: Uint8Array, signature: Uint8Array): boolean {
  let alg;
  try {
    alg = algForKey(leafKey);
  } catch {
    return false;
  }
  const spec = JWS_ALGORITHMS.get(alg)!;
  try {
    return verify(spec.hash, renewalMessage(nonce, newSpki), signOpts(spec, leafKey), Buffer.from(signature));
  } catch {
    return false;
  }
}
