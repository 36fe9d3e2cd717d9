/**
 * The issuer's own answer to "is this writ revoked?", for its VerifyService and for agents that
 * authenticate with a writ: every revocation that would kill it (revocation/target.ts) looked up
 * in the store, plus the writ's own record (killed through an ancestor, an entry or a platform).
 */
import { parseGrantCached } from '../delegation/grant.js';
import { revocationKeys, writFacts } from '../revocation/target.js';
import type { StoreTx } from '../store/store.js';
import type { RevocationSource } from '../writ/verify.js';
import type { WritClaims } from '../writ/writ.js';

/** Most lineage grants, ancestors and selectors looked at (a writ carries at most nine grants). */
const MAX_KEYS = 600;

export async function issuerRevocationSource(
  store: Pick<StoreTx, 'findRevocations' | 'getWrit' | 'revocationBounds'>,
  claims: WritClaims,
): Promise<RevocationSource> {
  let keys: string[] = [];
  try {
    keys = revocationKeys(writFacts(claims, claims.grants.map(parseGrantCached))).slice(0, MAX_KEYS);
  } catch {
    // A malformed chain: verifyWrit refuses it on its own terms.
  }
  const [hits, record, bounds] = await Promise.all([store.findRevocations(keys), store.getWrit(claims.jti), store.revocationBounds()]);
  const source = `the issuer's store at revocation sequence ${bounds.newest}`;
  const hit = hits[0];
  return {
    check: () => {
      if (hit) return { revoked: true, reason: `${hit.kind} ${hit.target} revoked by ${hit.actor}${hit.reason ? `: ${hit.reason}` : ''}`, source };
      if (record?.revokedAt) return { revoked: true, reason: `revoked with revocation ${record.revokedSeq}`, source };
      return { revoked: false, source };
    },
  };
}
