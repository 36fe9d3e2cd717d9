/**
 * Proof that the agent holds the private key its hello names (docs/writ-format.md §Handshake).
 * A hello with a bare public key is answered with a challenge; the first evidence message then
 * carries the agent key's signature over a domain-separated message that ends with the
 * challenge nonce (the binding digest when grants are bound), so the signature is fresh and
 * cannot be lifted from any other protocol writ speaks. The algorithm is the one writ uses for
 * the key's type (jose/jws.ts `algForKey`), never one the agent names. A hello with a CSR has
 * proven possession already and sends none. UNTRUSTED input enters in `verifyKeyProof`.
 */
import { sign, verify, type KeyObject } from 'node:crypto';
import { AttestationError } from '../errors.js';
import { JWS_ALGORITHMS, algForKey, signOpts, type JwsSigner } from '../jose/jws.js';

/** Domain separation: what the signed message begins with (followed by one zero byte and the nonce). */
export const KEY_PROOF_CONTEXT = 'writ-key-proof-v1';
/** Largest key proof accepted (an RSA-8192 signature is 1024 bytes). */
export const MAX_KEY_PROOF_BYTES = 1024;

/** The exact bytes the agent key signs. */
export function keyProofMessage(nonce: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(KEY_PROOF_CONTEXT, 'latin1'), Buffer.from([0]), Buffer.from(nonce)]);
}

/** The agent's side: signs the challenge nonce with the agent key (in this process or in a TPM). */
export async function signKeyProof(signer: JwsSigner, nonce: Uint8Array): Promise<Buffer> {
  if (signer.alg !== algForKey(signer.publicKey))
    throw new AttestationError('ERR_KEY_PROOF_INVALID', `attestation: key proofs are signed with ${algForKey(signer.publicKey)} for this key`);
  return signer.sign(keyProofMessage(nonce));
}

/** A key proof made in this process (tests, tools). */
export function signKeyProofWith(privateKey: KeyObject, nonce: Uint8Array): Buffer {
  const spec = JWS_ALGORITHMS.get(algForKey(privateKey))!;
  return sign(spec.hash, keyProofMessage(nonce), signOpts(spec, privateKey));
}

/** The issuer's side: throws unless `proof` is the agent key's signature over this handshake's nonce. */
export function verifyKeyProof(publicKey: KeyObject, nonce: Uint8Array, proof: Uint8Array): void {
  if (proof.length === 0)
    throw new AttestationError(
      'ERR_KEY_PROOF_INVALID',
      'attestation: the hello named a bare public key, so the first evidence must carry key_proof (a signature over the challenge)',
    );
  if (proof.length > MAX_KEY_PROOF_BYTES)
    throw new AttestationError('ERR_KEY_PROOF_INVALID', `attestation: key_proof larger than ${MAX_KEY_PROOF_BYTES} bytes`);
  const spec = JWS_ALGORITHMS.get(algForKey(publicKey))!;
  if (!verify(spec.hash, keyProofMessage(nonce), signOpts(spec, publicKey), Buffer.from(proof))) {
    throw new AttestationError('ERR_KEY_PROOF_INVALID', 'attestation: key_proof does not verify: the agent does not hold the private key its hello names');
  }
}
