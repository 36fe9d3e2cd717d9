/**
 * What an agent does with its own writ: delegate a narrower part of it to a child key, and
 * prove possession when presenting it. Both refuse, before signing, what a verifier would
 * refuse: a key that is not the writ's `cnf` key, a wider child, a longer lifetime.
 */
import { delegateGrantWith } from '../delegation/grant.js';
import type { Permission } from '../delegation/scope.js';
import { jwkThumbprint, type JwsSigner } from '../jose/jws.js';
import { createProofWith, type ProofRequest } from '../writ/proof.js';
import { parseWrit } from '../writ/writ.js';

/** The key is not the one the writ is bound to: a failure (exit 1), not a usage error. */
function checkCnf(writ: string, signer: JwsSigner): ReturnType<typeof parseWrit>['claims'] {
  const claims = parseWrit(writ).claims;
  if (jwkThumbprint(signer.publicKey) !== claims.cnf.jkt) {
    throw new Error(`the key is not the one this writ is bound to (cnf.jkt ${claims.cnf.jkt}, key ${jwkThumbprint(signer.publicKey)})`);
  }
  return claims;
}

export interface DelegateRequest {
  readonly childJkt: string;
  /** Empty: the parent's scope. */
  readonly scope: readonly Permission[];
  readonly boundaries: readonly Permission[];
  readonly escalate: readonly Permission[];
  readonly ttlSeconds?: number;
  readonly now: Date;
}

/** The whole chain for the child (the writ's grants, then the new hop), root first. */
export async function delegateFromWrit(writ: string, signer: JwsSigner, r: DelegateRequest): Promise<string[]> {
  const claims = checkCnf(writ, signer);
  const nowS = Math.floor(r.now.getTime() / 1000);
  const hop = await delegateGrantWith(claims.grants[claims.grants.length - 1]!, signer, {
    childJkt: r.childJkt,
    ...(r.scope.length ? { scope: r.scope } : {}),
    boundaries: r.boundaries,
    escalate: r.escalate,
    ...(r.ttlSeconds !== undefined ? { exp: nowS + r.ttlSeconds } : {}),
    now: nowS,
    from: { sub: claims.sub, writ: claims.jti },
  });
  return [...claims.grants, hop];
}

/** A proof of possession of `writ`, signed with its `cnf` key. */
export async function proveWrit(writ: string, signer: JwsSigner, r: ProofRequest): Promise<string> {
  checkCnf(writ, signer);
  return createProofWith(writ, signer, r);
}
