/**
 * Grant chains: the rules every link must keep, checked the same way by the issuer at the
 * handshake and by relying parties (docs/writ-format.md §Delegation rules). The chain is
 * root first. UNTRUSTED input enters here.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { DelegationError } from '../errors.js';
import { verifyJws } from '../jose/jws.js';
import { parseGrantCached, MAX_DELEGATION_DEPTH, type Grant } from './grant.js';
import { checkAttenuation } from './scope.js';

export interface ChainCheck {
  /** Root first. */
  readonly grants: readonly string[];
  /** The trust domain ID (`spiffe://td`) that issued the root; every grant names it. */
  readonly issuer: string;
  /**
   * The issuer's writ keys by kid. With keys, every signature is checked (issuer, deep
   * verification); without, signatures are taken on the word of whoever signed the writ
   * that carries the chain (standard verification), and every other rule is still checked.
   */
  readonly issuerKeys?: ReadonlyMap<string, KeyObject>;
  /** Unix seconds. Every grant must be valid at this instant. */
  readonly now: number;
  /** The key the last grant must be delegated to (the agent's RFC 7638 thumbprint). */
  readonly leafJkt: string;
  /** Allowed clock skew, seconds. */
  readonly skew?: number;
}

export interface VerifiedChain {
  readonly grants: readonly Grant[];
  readonly root: Grant;
  readonly leaf: Grant;
  /** SHA-256 over the exact compact grants (docs/writ-format.md §Grant-chain digest). */
  readonly digest: Buffer;
  /** Grant ids, root first: what revocation matches on. */
  readonly lineage: readonly string[];
  readonly signaturesChecked: boolean;
}

const fail = (msg: string): never => {
  throw new DelegationError(`delegation: ${msg}`);
};

const CHAIN_LABEL = Buffer.from('writ-grant-chain-v1\0', 'latin1');

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/** Digests of chains seen before, by the array that holds them (a cached writ's `grants`). */
const digests = new WeakMap<readonly string[], Buffer>();

/** The grant-chain digest: SHA-256("writ-grant-chain-v1\0" ‖ u32 n ‖ (u32 len ‖ ASCII JWS)…). */
export function chainDigest(grants: readonly string[]): Buffer {
  const hit = digests.get(grants);
  if (hit) return hit;
  const d = computeChainDigest(grants);
  // Only frozen arrays are memoised: a caller's mutable array could change under the cache.
  if (Object.isFrozen(grants)) digests.set(grants, d);
  return d;
}

function computeChainDigest(grants: readonly string[]): Buffer {
  const h = createHash('sha256').update(CHAIN_LABEL).update(u32(grants.length));
  for (const g of grants) {
    const b = Buffer.from(g, 'latin1');
    h.update(u32(b.length)).update(b);
  }
  return h.digest();
}

/** Checks a whole chain: signatures (when keys are given), links, attenuation, depth, times, cycles, key binding. */
export function verifyChain(c: ChainCheck): VerifiedChain {
  if (c.grants.length === 0) fail('the grant chain is empty');
  if (c.grants.length > MAX_DELEGATION_DEPTH + 1) fail(`the grant chain has more than ${MAX_DELEGATION_DEPTH + 1} grants`);
  const skew = c.skew ?? 0;
  const grants = c.grants.map((g, i) => {
    try {
      return parseGrantCached(g);
    } catch (e) {
      throw new DelegationError(`delegation: grant ${i}: ${(e as Error).message}`, { cause: e });
    }
  });
  const root = grants[0]!;
  const ids = new Set<string>();
  const keys = new Set<string>();
  grants.forEach((g, i) => {
    const cl = g.claims;
    if (cl.iss !== c.issuer) fail(`grant ${i} was issued by ${cl.iss.slice(0, 80)}, not ${c.issuer}`);
    if (cl.depth !== i) fail(`grant ${i} says depth ${cl.depth}`);
    if (cl.max_depth !== root.claims.max_depth) fail(`grant ${i} changes the root's depth limit`);
    if (i > root.claims.max_depth) fail(`grant ${i} is deeper than the root's limit of ${root.claims.max_depth}`);
    if (cl.rid !== root.claims.jti) fail(`grant ${i} belongs to another root`);
    if (ids.has(cl.jti)) fail(`grant ${i} repeats a grant id (a cycle)`);
    ids.add(cl.jti);
    if (keys.has(cl.dlg.jkt)) fail(`grant ${i} delegates to a key that already holds a grant in this chain (a cycle)`);
    keys.add(cl.dlg.jkt);
    if (cl.iat > c.now + skew) fail(`grant ${i} is not valid yet`);
    if (cl.exp <= c.now - skew) fail(`grant ${i} has expired`);
    if (i === 0) {
      if (c.issuerKeys) {
        const key = c.issuerKeys.get(String(g.jws.header.kid));
        if (!key) fail('the root grant is signed by a key the trust bundle does not hold');
        if (!verifyJws(g.jws, key!)) fail('the root grant signature does not verify');
      }
      return;
    }
    const parent = grants[i - 1]!;
    const pc = parent.claims;
    if (cl.prev !== parent.hash) fail(`grant ${i} does not link to grant ${i - 1} (prev is another grant's hash)`);
    if (g.signerJkt !== pc.dlg.jkt) fail(`grant ${i} is signed by a key other than the one grant ${i - 1} delegated to`);
    if (c.issuerKeys && !verifyJws(g.jws, g.signerKey!)) fail(`grant ${i} signature does not verify`);
    if (cl.task.id !== pc.task.id || cl.task.goal !== pc.task.goal || cl.task.exp !== pc.task.exp) fail(`grant ${i} changes the task`);
    if (cl.principal.iss !== pc.principal.iss || cl.principal.sub !== pc.principal.sub) fail(`grant ${i} changes the principal`);
    if (cl.exp > pc.exp) fail(`grant ${i} extends the expiry of grant ${i - 1}`);
    checkAttenuation(pc, cl, i);
  });
  const leaf = grants[grants.length - 1]!;
  if (leaf.claims.dlg.jkt !== c.leafJkt) fail('the last grant is delegated to another key than the one presented');
  return {
    grants,
    root,
    leaf,
    digest: chainDigest(c.grants),
    lineage: grants.map((g) => g.claims.jti),
    signaturesChecked: c.issuerKeys !== undefined,
  };
}
