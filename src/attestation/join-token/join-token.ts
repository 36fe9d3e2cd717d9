/**
 * Join tokens: one-time, short-lived secrets an operator hands to an agent. The token is
 * `<id>.<secret>`; only SHA-256(secret) is stored, compared in constant time, and the token
 * is consumed inside the issuance transaction. Selector: `join_token:<id>`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AttestationError } from '../../errors.js';
import type { JoinTokenRecord, StoreTx } from '../../store/store.js';
import type { AttestationSession, EvidenceVerifier, VerifyStep } from '../verifier.js';

export const JOIN_TOKEN_TYPE = 'join_token';
/** A token is 16 hex id characters, a dot and 43 base64url secret characters. */
const TOKEN = /^([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;
export const MAX_JOIN_TOKEN_BYTES = 128;

const hashSecret = (secret: string): Buffer => createHash('sha256').update(secret).digest();

/** Makes a new token; the caller stores `record` and shows `token` once. */
export function newJoinToken(now: Date, ttlMs: number): { token: string; record: JoinTokenRecord } {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return {
    token: `${id}.${secret}`,
    record: { id, secretHash: hashSecret(secret), expiresAt: now.getTime() + ttlMs, createdAt: now.getTime(), usedAt: null },
  };
}

/** The id part of a token, or undefined if it is not token-shaped. */
export function joinTokenId(token: string): string | undefined {
  return TOKEN.exec(token)?.[1];
}

export interface JoinTokenDeps {
  readonly tokens: Pick<StoreTx, 'getJoinToken'>;
}

const invalid = (msg: string) => new AttestationError('ERR_JOIN_TOKEN_INVALID', msg);

export function joinTokenVerifier(deps: JoinTokenDeps): EvidenceVerifier {
  return {
    type: JOIN_TOKEN_TYPE,
    maxEvidenceBytes: MAX_JOIN_TOKEN_BYTES,
    maxRounds: 1,
    async begin(ctx): Promise<AttestationSession> {
      return {
        challenge: Buffer.alloc(0),
        async respond(evidence): Promise<VerifyStep> {
          // UNTRUSTED: the token the agent sent.
          const m = TOKEN.exec(evidence.toString('latin1'));
          if (!m) throw invalid('token is malformed');
          const [, id, secret] = m as unknown as [string, string, string];
          const rec = await deps.tokens.getJoinToken(id);
          const presented = hashSecret(secret);
          // Same work whether or not the id exists; holders of a wrong secret learn nothing more.
          const expected = rec?.secretHash ?? Buffer.alloc(32);
          if (!timingSafeEqual(presented, expected) || !rec) throw invalid('token is not valid');
          if (rec.usedAt !== null) throw invalid('token has already been used');
          if (rec.expiresAt <= ctx.now.getTime()) throw invalid('token has expired');
          return {
            kind: 'attested',
            result: {
              selectors: [{ type: JOIN_TOKEN_TYPE, value: id }],
              evidenceDigest: createHash('sha256').update(evidence).digest(),
              commit: async (tx, now) => {
                if (!(await tx.consumeJoinToken(id, now.getTime()))) throw invalid('token has already been used');
              },
            },
          };
        },
      };
    },
  };
}
