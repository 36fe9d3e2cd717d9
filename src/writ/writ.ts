/**
 * The writ (docs/writ-format.md §The writ): a JWS with `typ` "writ+jwt", signed by the
 * issuer's writ key, binding an attested SPIFFE identity to its delegation chain and the
 * policy decision that allowed it. Minted by the issuer; parsed strictly by every verifier.
 * UNTRUSTED input enters in `parseWrit`.
 */
import { BoundedCache, deepFreeze } from '../cache/bounded.js';
import { WritVerifyError } from '../errors.js';
import { claimReader } from '../jose/claims.js';
import { decodeJws, isJkt, sha256b64url, signJwsWith, type DecodedJws, type JwsSigner } from '../jose/jws.js';
import { parsePolicyRef, parsePrincipal, parseTask, type PolicyRef, type PrincipalRef, type Task } from '../delegation/grant.js';

export const WRIT_TYP = 'writ+jwt';

/** RFC 8693 §4.1 actor claim: the delegator, with the actors before it nested inside. */
export interface ActClaim {
  readonly sub: string;
  /** Present on the innermost actor, the human principal: the OIDC issuer. */
  readonly iss?: string;
  readonly act?: ActClaim;
}

export interface WritAttestation {
  /** Evidence type. */
  readonly type: string;
  /** Selectors the issuer derived, "type:value". */
  readonly sel: readonly string[];
  /** Binding digest B, base64url. */
  readonly bind: string;
  /** The issuer's nonce that went into B, base64url. */
  readonly nonce: string;
  /** SHA-256 of the verified evidence, base64url. */
  readonly ev_sha256: string;
  /** The evidence itself, base64url, when it can be re-verified by a relying party. */
  readonly ev?: string;
  /**
   * Present only on a writ minted by an SVID renewal: `nonce` and `ev_sha256` are then the
   * renewal handshake's (`via`), while `type` and `sel` are the original attestation's; `serial`
   * is the replaced X.509-SVID's serial, lower-case hex.
   */
  readonly renewed?: WritRenewal;
}

export interface WritRenewal {
  readonly via: 'x509_svid';
  readonly serial: string;
}

/** An X.509 serial as the issuer writes it: lower-case hex, at most 20 bytes (RFC 5280 §4.1.2.2). */
const SERIAL_HEX = /^[0-9a-f]{1,40}$/;

export interface WritPolicy extends PolicyRef {
  /** When the snapshot was created (Unix seconds), for relying parties' maximum policy age. */
  readonly iat: number;
}

export interface WritClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud?: readonly string[];
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  readonly cnf: { readonly jkt: string };
  /** The X.509-SVID issued in the same handshake: SHA-256 thumbprint of its DER, base64url. */
  readonly svid: { readonly 'x5t#S256': string };
  readonly principal: PrincipalRef;
  readonly act: ActClaim;
  readonly task: Task;
  /** Compact grants, root first. */
  readonly grants: readonly string[];
  /** Grant ids, root first. */
  readonly lineage: readonly string[];
  readonly att: WritAttestation;
  readonly pol: WritPolicy;
  /** The registration entry the agent's selectors matched (what an entry revocation names). */
  readonly reg?: string;
  /** Step-up grants (approvals) it carries, compact, 1..MAX_STEP_UPS; bound into `att.bind` (binding v2). */
  readonly stepup?: readonly string[];
  /** Where its revocation status is published (draft-ietf-oauth-status-list §6.1). */
  readonly status?: { readonly status_list: { readonly idx: number; readonly uri: string } };
}

export interface Writ {
  readonly jws: DecodedJws;
  readonly claims: WritClaims;
  /** base64url SHA-256 of the compact writ: what a proof's `wth` must be. */
  readonly hash: string;
}

const fail = (msg: string): never => {
  throw new WritVerifyError('ERR_WRIT_INVALID', `writ: ${msg}`);
};

const B64U = /^[A-Za-z0-9_-]+$/;
const KEYS = [
  'iss',
  'sub',
  'aud',
  'jti',
  'iat',
  'exp',
  'cnf',
  'svid',
  'principal',
  'act',
  'task',
  'grants',
  'lineage',
  'att',
  'pol',
  'reg',
  'stepup',
  'status',
];
/** Most step-up grants one writ carries. */
export const MAX_STEP_UPS = 8;
/** Longest status list URI a writ may name. */
const MAX_STATUS_URI = 2048;
/** Deepest act nesting: a root plus MAX_DELEGATION_DEPTH hops, and the principal. */
const MAX_ACT_DEPTH = 10;

const read = claimReader(fail);
const only = read.object;
const str = read.string;
const int = read.int;
const strings = read.strings;

function parseAct(v: unknown, depth: number): ActClaim {
  if (depth > MAX_ACT_DEPTH) fail('act is nested too deeply');
  const a = only(v, 'act', ['sub', 'iss', 'act']);
  return {
    sub: str(a.sub, 'act.sub'),
    ...(a.iss !== undefined ? { iss: str(a.iss, 'act.iss') } : {}),
    ...(a.act !== undefined ? { act: parseAct(a.act, depth + 1) } : {}),
  };
}

function parseStatus(v: unknown): NonNullable<WritClaims['status']> {
  const st = only(v, 'status', ['status_list']);
  const sl = only(st.status_list, 'status.status_list', ['idx', 'uri']);
  const idx = int(sl.idx, 'status.status_list.idx');
  if (idx < 0) fail('status.status_list.idx must not be negative');
  const uri = str(sl.uri, 'status.status_list.uri', MAX_STATUS_URI);
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return fail('status.status_list.uri must be a URL');
  }
  if (u.protocol !== 'https:') fail('status.status_list.uri must be an https URL');
  return { status_list: { idx, uri } };
}

function parseRenewed(v: unknown): WritRenewal {
  const r = only(v, 'att.renewed', ['via', 'serial']);
  if (r.via !== 'x509_svid') fail('att.renewed.via must be "x509_svid"');
  const serial = str(r.serial, 'att.renewed.serial', 40);
  if (!SERIAL_HEX.test(serial)) fail('att.renewed.serial must be lower-case hex');
  return { via: 'x509_svid', serial };
}

/** Decodes a writ and checks its structure. No signature or semantic check. */
export function parseWrit(compact: string): Writ {
  const jws = decodeJws(compact, WRIT_TYP);
  if (typeof jws.header.kid !== 'string' || jws.header.kid === '') fail('the header has no kid');
  if ('jwk' in jws.header || 'x5c' in jws.header || 'jku' in jws.header || 'x5u' in jws.header)
    fail('the header may not carry keys or key locations: the issuer key comes from the trust bundle');
  let claims: WritClaims;
  try {
    const c = only(jws.payload, 'claims', KEYS);
    const cnf = only(c.cnf, 'cnf', ['jkt']);
    const svid = only(c.svid, 'svid', ['x5t#S256']);
    const att = only(c.att, 'att', ['type', 'sel', 'bind', 'nonce', 'ev_sha256', 'ev', 'renewed']);
    const pol = only(c.pol, 'pol', ['snap', 'decision', 'policies', 'iat']);
    claims = {
      iss: str(c.iss, 'iss'),
      sub: str(c.sub, 'sub'),
      ...(c.aud !== undefined ? { aud: strings(c.aud, 'aud', 16) } : {}),
      jti: str(c.jti, 'jti', 64, B64U),
      iat: int(c.iat, 'iat'),
      exp: int(c.exp, 'exp'),
      cnf: { jkt: isJkt(cnf.jkt) ? cnf.jkt : fail('cnf.jkt must be an RFC 7638 thumbprint (43 canonical base64url characters)') },
      svid: { 'x5t#S256': str(svid['x5t#S256'], 'svid.x5t#S256', 43, /^[A-Za-z0-9_-]{43}$/) },
      principal: parsePrincipal(c.principal),
      act: parseAct(c.act, 0),
      task: parseTask(c.task),
      grants: Object.freeze(strings(c.grants, 'grants', 9)),
      lineage: strings(c.lineage, 'lineage', 9),
      att: {
        type: str(att.type, 'att.type', 64),
        sel: strings(att.sel, 'att.sel', 256),
        bind: str(att.bind, 'att.bind', 43, /^[A-Za-z0-9_-]{43}$/),
        nonce: str(att.nonce, 'att.nonce', 43, /^[A-Za-z0-9_-]{43}$/),
        ev_sha256: str(att.ev_sha256, 'att.ev_sha256', 43, /^[A-Za-z0-9_-]{43}$/),
        ...(att.ev !== undefined ? { ev: str(att.ev, 'att.ev', 64 * 1024, B64U) } : {}),
        ...(att.renewed !== undefined ? { renewed: parseRenewed(att.renewed) } : {}),
      },
      pol: { ...parsePolicyRef({ snap: pol.snap, decision: pol.decision, policies: pol.policies }), iat: int(pol.iat, 'pol.iat') },
      ...(c.reg !== undefined ? { reg: str(c.reg, 'reg', 64) } : {}),
      ...(c.stepup !== undefined ? { stepup: Object.freeze(strings(c.stepup, 'stepup', MAX_STEP_UPS)) } : {}),
      ...(c.status !== undefined ? { status: parseStatus(c.status) } : {}),
    };
  } catch (e) {
    if (e instanceof WritVerifyError) throw e;
    throw new WritVerifyError('ERR_WRIT_INVALID', `writ: ${(e as Error).message}`, { cause: e });
  }
  if (claims.exp <= claims.iat) fail('exp must be after iat');
  if (claims.grants.length === 0 || claims.grants.length !== claims.lineage.length) fail('grants and lineage must be non-empty and of equal length');
  if (claims.stepup !== undefined && claims.stepup.length === 0) fail('stepup is absent when there are none, never empty');
  return { jws, claims, hash: sha256b64url(compact) };
}

/** Writs parsed recently, by their exact compact serialisation. Parsing only: signatures are checked on every use. */
const WRIT_CACHE_SIZE = 1024;
const writCache = new BoundedCache<string, Writ>(WRIT_CACHE_SIZE);

/**
 * `parseWrit`, cached by the exact bytes: an agent presents the same writ with a fresh proof each
 * time. The result is deep-frozen: a caller that changes it cannot change what later readers see.
 */
export function parseWritCached(compact: string): Writ {
  return writCache.getOrSet(compact, () => deepFreeze(parseWrit(compact)));
}

/** Signs writ claims with the issuer's writ key (held wherever its custody keeps it). */
export function signWrit(claims: WritClaims, signer: JwsSigner, kid: string): Promise<string> {
  return signJwsWith({ typ: WRIT_TYP, kid }, { ...claims }, signer);
}
