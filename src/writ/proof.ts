/**
 * Proof of possession (docs/writ-format.md §Proof of possession): a short-lived JWS with
 * `typ` "writ-pop+jwt", signed by the writ's `cnf` key and carrying that public key in its
 * `jwk` header, bound to the audience, the method or RPC name, the time, a one-time id and
 * the hash of the writ (DPoP, RFC 9449, adapted). A writ without a proof is refused.
 * UNTRUSTED input enters in `verifyProof`.
 */
import { randomBytes, createPublicKey, type KeyObject } from 'node:crypto';
import { WritVerifyError } from '../errors.js';
import { decodeJws, keyFromJwk, publicJwk, sha256b64url, signJws, signJwsWith, verifyJws, type JwsSigner } from '../jose/jws.js';

export const PROOF_TYP = 'writ-pop+jwt';
/** Longest lifetime a proof may claim (exp − iat), seconds. */
export const MAX_PROOF_LIFETIME_S = 300;
/** Default lifetime of a proof we create, seconds. */
export const DEFAULT_PROOF_LIFETIME_S = 60;
/** Clock skew tolerated on `iat`, seconds. */
export const PROOF_SKEW_S = 5;
/** Largest proof parsed, bytes. */
export const MAX_PROOF_BYTES = 4096;

export interface ProofRequest {
  readonly audience: string;
  /** The HTTP method and target, or the gRPC method name, the proof is for. */
  readonly method: string;
  readonly now: Date;
  readonly lifetimeS?: number;
}

function proofClaims(writCompact: string, r: ProofRequest): Record<string, unknown> {
  const iat = Math.floor(r.now.getTime() / 1000);
  const life = r.lifetimeS ?? DEFAULT_PROOF_LIFETIME_S;
  // Refused, not cut: a caller asking for more than a verifier accepts should learn it here.
  if (!Number.isSafeInteger(life) || life < 1 || life > MAX_PROOF_LIFETIME_S) fail(`a proof lives 1..${MAX_PROOF_LIFETIME_S} seconds; ${life} asked for`);
  return { aud: r.audience, htm: r.method, iat, exp: iat + life, jti: randomBytes(16).toString('base64url'), wth: sha256b64url(writCompact) };
}

/** Signs a proof of possession for `writCompact` with the writ's private key. */
export function createProof(writCompact: string, key: KeyObject, r: ProofRequest): string {
  return signJws({ typ: PROOF_TYP, jwk: publicJwk(createPublicKey(key)) }, proofClaims(writCompact, r), key);
}

/** `createProof` with a signer whose key may live in a TPM. */
export function createProofWith(writCompact: string, signer: JwsSigner, r: ProofRequest): Promise<string> {
  return signJwsWith({ typ: PROOF_TYP, jwk: publicJwk(signer.publicKey) }, proofClaims(writCompact, r), signer);
}

/**
 * Where a verifier remembers proof ids until they expire, so that each proof is accepted once.
 * In memory per process by default (`ProofReplayCache`); a relying party with several replicas
 * plugs in a shared one. Ids are recorded only once everything else about a presentation has
 * been checked, so a proof presented with an expired or revoked writ is not used up.
 */
export interface ReplayCache {
  /**
   * Records `id` as used until `expS` (Unix seconds) on behalf of `owner` (the writ's cnf key
   * thumbprint); false if it was recorded before. Throws when `owner` has no room left.
   */
  checkAndRecord(id: string, expS: number, nowS: number, owner?: string): boolean;
}

/** Most live proof ids one key may have in a cache: 100 proofs a second, for 5 minutes. */
export const MAX_PROOFS_PER_KEY = 30_000;

/**
 * Remembers proof ids until they expire, each key (`owner`) with its own quota, so one key's
 * flood of proofs cannot fill the cache for everyone else. Full means refuse, never forget.
 */
export class ProofReplayCache implements ReplayCache {
  private readonly byOwner = new Map<string, Map<string, number>>();
  private total = 0;

  constructor(
    private readonly max = 1_000_000,
    private readonly perOwner = MAX_PROOFS_PER_KEY,
  ) {}

  checkAndRecord(id: string, expS: number, nowS: number, owner = ''): boolean {
    let mine = this.byOwner.get(owner);
    if (mine?.has(id)) return false;
    if (mine && mine.size >= this.perOwner) {
      this.prune(owner, mine, nowS);
      if (mine.size >= this.perOwner)
        throw new WritVerifyError('ERR_PROOF_INVALID', `proof: this key has ${this.perOwner} live proofs in the replay cache; refusing rather than forgetting`);
    }
    if (this.total >= this.max) {
      for (const [o, m] of this.byOwner) this.prune(o, m, nowS);
      if (this.total >= this.max) throw new WritVerifyError('ERR_PROOF_INVALID', 'proof: replay cache is full; refusing rather than forgetting');
    }
    if (!mine) {
      mine = new Map();
      this.byOwner.set(owner, mine);
    }
    mine.set(id, expS);
    this.total++;
    return true;
  }

  private prune(owner: string, m: Map<string, number>, nowS: number): void {
    for (const [k, exp] of m) {
      if (exp <= nowS) {
        m.delete(k);
        this.total--;
      }
    }
    if (m.size === 0) this.byOwner.delete(owner);
  }

  get size(): number {
    return this.total;
  }

  /** Recorded ids with their owner and expiry (Unix seconds), e.g. to persist the cache. */
  *entries(): IterableIterator<[string, number, string]> {
    for (const [owner, m] of this.byOwner) for (const [id, exp] of m) yield [id, exp, owner];
  }
}

export interface ProofCheck {
  /** The writ exactly as presented. */
  readonly writCompact: string;
  /** base64url SHA-256 of `writCompact`, when the caller has it already. */
  readonly writHash?: string;
  readonly jkt: string;
  readonly audience: string;
  /** When given, the proof's `htm` must equal it. */
  readonly method?: string;
  readonly now: Date;
}

/** A proof that passed every check; its one-time id is recorded by `recordProof`, last. */
export interface CheckedProof {
  readonly jti: string;
  readonly method: string;
  /** Until when the id must be remembered (Unix seconds). */
  readonly rememberUntil: number;
  readonly owner: string;
}

const fail = (msg: string): never => {
  throw new WritVerifyError('ERR_PROOF_INVALID', `proof: ${msg}`);
};

const ONLY = ['aud', 'htm', 'iat', 'exp', 'jti', 'wth'];

/** Checks a proof of possession for a writ; does not record its one-time id (see `recordProof`). */
export function checkProof(proof: string, c: ProofCheck): CheckedProof {
  if (typeof proof !== 'string' || proof === '') fail('a proof of possession is required: writs are never accepted as bearer tokens');
  const d = decodeJws(proof, PROOF_TYP, MAX_PROOF_BYTES);
  if ('kid' in d.header || 'x5c' in d.header) fail('the proof names its key only in the jwk header');
  const { key, jkt } = keyFromJwk(d.header.jwk);
  // Key first: a proof by any other key is someone else's, whatever it says.
  if (jkt !== c.jkt) fail("signed by a key other than the writ's cnf key");
  if (!verifyJws(d, key)) fail('signature does not verify');
  const p = d.payload;
  const extra = Object.keys(p).filter((k) => !ONLY.includes(k));
  if (extra.length) fail(`unknown claims ${extra.join(', ').slice(0, 60)}`);
  if (p.wth !== (c.writHash ?? sha256b64url(c.writCompact))) fail('made for another writ (wth does not match)');
  if (p.aud !== c.audience) fail('made for another audience');
  if (typeof p.htm !== 'string' || p.htm === '' || p.htm.length > 256) fail('htm (method) is missing');
  if (c.method !== undefined && p.htm !== c.method) fail('made for another method');
  if (typeof p.iat !== 'number' || typeof p.exp !== 'number' || !Number.isSafeInteger(p.iat) || !Number.isSafeInteger(p.exp))
    fail('iat and exp must be integers');
  const iat = p.iat as number;
  const exp = p.exp as number;
  const now = Math.floor(c.now.getTime() / 1000);
  if (exp <= iat || exp - iat > MAX_PROOF_LIFETIME_S) fail(`lifetime must be 1..${MAX_PROOF_LIFETIME_S} seconds`);
  if (iat > now + PROOF_SKEW_S) fail('issued in the future');
  if (exp <= now) fail('expired');
  if (typeof p.jti !== 'string' || !/^[A-Za-z0-9_-]{22,64}$/.test(p.jti)) fail('jti must be 22..64 base64url characters (at least 128 random bits)');
  return { jti: p.jti as string, method: p.htm as string, rememberUntil: exp + PROOF_SKEW_S, owner: c.jkt };
}

/** Records a checked proof's one-time id: ERR_PROOF_REPLAYED if it was used before. */
export function recordProof(p: CheckedProof, cache: ReplayCache, now: Date): void {
  if (!cache.checkAndRecord(`${p.owner}:${p.jti}`, p.rememberUntil, Math.floor(now.getTime() / 1000), p.owner)) {
    throw new WritVerifyError('ERR_PROOF_REPLAYED', 'proof: this proof was already used (one-time id seen before)');
  }
}

/** `checkProof` then `recordProof`: for callers with nothing else to check in between. */
export function verifyProof(proof: string, c: ProofCheck & { readonly cache: ReplayCache }): { jti: string; method: string } {
  const p = checkProof(proof, c);
  recordProof(p, c.cache, c.now);
  return { jti: p.jti, method: p.method };
}
