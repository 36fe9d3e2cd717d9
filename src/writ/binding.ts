/**
 * The binding digest B (docs/writ-format.md §Binding digest): what the hardware signs at the
 * handshake, committing to the agent key, the grant chain, the policy snapshot, the task and
 * the issuer's nonce. Fields are fixed-order and length-prefixed, so no two inputs share an
 * encoding; the text fields are compared as the exact bytes that were signed.
 *
 *   B = SHA-256( "writ-binding-v1" 0x00
 *                ‖ field(jkt)        32 bytes: the RFC 7638 SHA-256 thumbprint, decoded
 *                ‖ field(chain)      32 bytes: the grant-chain digest
 *                ‖ field(snapshot)   32 bytes: the policy snapshot digest, decoded from hex
 *                ‖ field(task id)    its UTF-8 bytes (ASCII by the task-id grammar)
 *                ‖ field(nonce)      32 bytes: the issuer's nonce )
 *   field(x) = u32be(len(x)) ‖ x
 *
 * A writ that carries step-up grants binds them too: the label is "writ-binding-v2" and a sixth
 * field, the step-up list digest (32 bytes), follows the nonce. Without step-up grants it is v1,
 * byte for byte as before.
 */
import { createHash } from 'node:crypto';
import { WritVerifyError } from '../errors.js';
import { isJkt } from '../jose/jws.js';

export const BINDING_LABEL = 'writ-binding-v1\0';
/** The label when the writ carries step-up grants (docs/writ-format.md §Binding digest). */
export const BINDING_LABEL_V2 = 'writ-binding-v2\0';

export interface BindingInput {
  /** base64url RFC 7638 thumbprint (43 characters). */
  readonly jkt: string;
  readonly chainDigest: Buffer;
  /** hex SHA-256. */
  readonly policySnapshot: string;
  readonly taskId: string;
  readonly nonce: Buffer;
  /** The step-up list digest (src/delegation/step-up.ts `stepUpListDigest`), when the writ carries step-up grants. */
  readonly stepUpDigest?: Buffer;
}

function fixed(b: Buffer, what: string): Buffer {
  if (b.length !== 32) throw new WritVerifyError('ERR_WRIT_INVALID', `writ: ${what} must be 32 bytes`);
  return b;
}

/** The canonical byte string B hashes; exported for the test vectors in docs/writ-format.md. */
export function bindingPreimage(i: BindingInput): Buffer {
  if (!isJkt(i.jkt)) throw new WritVerifyError('ERR_WRIT_INVALID', 'writ: key thumbprint must be 43 canonical base64url characters');
  if (!/^[0-9a-f]{64}$/.test(i.policySnapshot))
    throw new WritVerifyError('ERR_WRIT_INVALID', 'writ: policy snapshot digest must be 64 lower-case hex characters');
  const fields = [
    fixed(Buffer.from(i.jkt, 'base64url'), 'key thumbprint'),
    fixed(i.chainDigest, 'grant-chain digest'),
    Buffer.from(i.policySnapshot, 'hex'),
    Buffer.from(i.taskId, 'utf8'),
    fixed(i.nonce, 'nonce'),
    ...(i.stepUpDigest !== undefined ? [fixed(i.stepUpDigest, 'step-up list digest')] : []),
  ];
  const parts: Buffer[] = [Buffer.from(i.stepUpDigest !== undefined ? BINDING_LABEL_V2 : BINDING_LABEL, 'latin1')];
  for (const f of fields) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(f.length);
    parts.push(len, f);
  }
  return Buffer.concat(parts);
}

export function bindingDigest(i: BindingInput): Buffer {
  return createHash('sha256').update(bindingPreimage(i)).digest();
}
