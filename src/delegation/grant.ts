/**
 * Grants: the signed links of a delegation chain (docs/writ-format.md §Grants). A root grant
 * is signed by the issuer's writ key on the principal's behalf; a hop grant is signed by the
 * parent agent's key, the key its parent grant was delegated to, and carries that public key
 * in its `jwk` header so the link can be checked offline. UNTRUSTED input enters here.
 */
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { BoundedCache, deepFreeze } from '../cache/bounded.js';
import { DelegationError } from '../errors.js';
import { decodeJws, isJkt, keyFromJwk, publicJwk, sha256b64url, signJws, signJwsWith, type DecodedJws, type JwsSigner } from '../jose/jws.js';
import { claimReader } from '../jose/claims.js';
import { checkAttenuation, parsePermissions, type Constraints, type Permission } from './scope.js';

/** JWS `typ` of a grant. */
export const GRANT_TYP = 'writ-grant+jwt';
/** Deepest delegation the issuer allows: a root plus this many hops. */
export const MAX_DELEGATION_DEPTH = 8;
/** Longest task goal text, bytes. */
export const MAX_GOAL_BYTES = 1024;
/** Task ids: ASCII only, so that what is shown is what is hashed (no Unicode look-alikes). */
export const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const GRANT_ID = /^[A-Za-z0-9_-]{22}$/;
const MAX_PRINCIPAL_BYTES = 512;

export interface Task {
  readonly id: string;
  readonly goal: string;
  /** Unix seconds at which the task ends; nothing in it outlives this. */
  readonly exp: number;
}

export interface PrincipalRef {
  /** OIDC issuer URL. */
  readonly iss: string;
  /** OIDC subject. */
  readonly sub: string;
}

export interface PolicyRef {
  /** Hex SHA-256 of the policy snapshot that decided. */
  readonly snap: string;
  readonly decision: 'allow';
  /** Ids of the policies that determined the decision. */
  readonly policies: readonly string[];
}

export interface GrantClaims extends Constraints {
  readonly iss: string;
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  /** jti of the root grant of the chain (its own for a root). */
  readonly rid: string;
  /** base64url SHA-256 of the parent grant's compact JWS; absent on a root. */
  readonly prev?: string;
  readonly depth: number;
  readonly max_depth: number;
  readonly task: Task;
  readonly principal: PrincipalRef;
  /** The delegating agent (hop grants only): its SPIFFE ID and the jti of its writ. */
  readonly from?: { readonly sub: string; readonly writ: string };
  /** The delegate's key: RFC 7638 thumbprint. */
  readonly dlg: { readonly jkt: string };
  /** Root grants only: the decision that allowed the principal to delegate this. */
  readonly pol?: PolicyRef;
}

export interface Grant {
  readonly jws: DecodedJws;
  readonly claims: GrantClaims;
  /** base64url SHA-256 of the compact grant: what a child's `prev` names. */
  readonly hash: string;
  /** Thumbprint of the key that signed a hop grant (from its `jwk` header). */
  readonly signerJkt?: string;
  readonly signerKey?: KeyObject;
}

const fail = (msg: string): never => {
  throw new DelegationError(`delegation: ${msg}`);
};

const read = claimReader(fail);
const str = (v: unknown, what: string, max = 512): string => read.string(v, what, max);
const int = read.int;
const obj = (v: unknown, what: string, keys: readonly string[]) => read.object(v, what, keys);

export function parseTask(v: unknown): Task {
  const t = obj(v, 'task', ['id', 'goal', 'exp']);
  const id = str(t.id, 'task.id', 128);
  if (!TASK_ID.test(id)) fail('task.id must be 1..128 ASCII letters, digits or . _ : - (starting with a letter or digit)');
  return { id, goal: str(t.goal, 'task.goal', MAX_GOAL_BYTES), exp: int(t.exp, 'task.exp') };
}

export function parsePrincipal(v: unknown): PrincipalRef {
  const p = obj(v, 'principal', ['iss', 'sub']);
  return { iss: str(p.iss, 'principal.iss', MAX_PRINCIPAL_BYTES), sub: str(p.sub, 'principal.sub', MAX_PRINCIPAL_BYTES) };
}

export function parsePolicyRef(v: unknown): PolicyRef {
  const p = obj(v, 'pol', ['snap', 'decision', 'policies']);
  if (typeof p.snap !== 'string' || !/^[0-9a-f]{64}$/.test(p.snap)) fail('pol.snap must be a hex SHA-256');
  if (p.decision !== 'allow') fail('pol.decision must be "allow"');
  if (!Array.isArray(p.policies) || p.policies.length > 64 || !p.policies.every((x) => typeof x === 'string' && x.length <= 128))
    fail('pol.policies must be up to 64 policy ids');
  return { snap: p.snap as string, decision: 'allow', policies: p.policies as string[] };
}

const GRANT_KEYS = [
  'iss',
  'jti',
  'iat',
  'exp',
  'rid',
  'prev',
  'depth',
  'max_depth',
  'task',
  'principal',
  'from',
  'dlg',
  'scope',
  'boundaries',
  'escalate',
  'pol',
];

/** Decodes and structurally checks one grant. Signatures and chain rules are checked by the chain. */
export function parseGrant(compact: string): Grant {
  const jws = decodeJws(compact, GRANT_TYP);
  const c = obj(jws.payload, 'grant', GRANT_KEYS);
  const jti = str(c.jti, 'jti', 22);
  if (!GRANT_ID.test(jti)) fail('jti must be 22 base64url characters (128 random bits)');
  const dlg = obj(c.dlg, 'dlg', ['jkt']);
  if (!isJkt(dlg.jkt)) fail('dlg.jkt must be an RFC 7638 SHA-256 thumbprint (43 canonical base64url characters)');
  const depth = int(c.depth, 'depth');
  const claims: GrantClaims = {
    iss: str(c.iss, 'iss'),
    jti,
    iat: int(c.iat, 'iat'),
    exp: int(c.exp, 'exp'),
    rid: str(c.rid, 'rid', 22),
    depth,
    max_depth: int(c.max_depth, 'max_depth'),
    task: parseTask(c.task),
    principal: parsePrincipal(c.principal),
    dlg: { jkt: dlg.jkt as string },
    scope: parsePermissions(c.scope, 'scope'),
    boundaries: parsePermissions(c.boundaries, 'boundaries'),
    escalate: parsePermissions(c.escalate, 'escalate'),
    ...(c.prev !== undefined ? { prev: str(c.prev, 'prev', 43) } : {}),
    ...(c.from !== undefined ? { from: parseFrom(c.from) } : {}),
    ...(c.pol !== undefined ? { pol: parsePolicyRef(c.pol) } : {}),
  };
  if (claims.max_depth > MAX_DELEGATION_DEPTH) fail(`max_depth ${claims.max_depth} exceeds ${MAX_DELEGATION_DEPTH}`);
  if (claims.exp <= claims.iat) fail('exp must be after iat');
  if (claims.exp > claims.task.exp) fail('the grant outlives its task');
  const root = depth === 0;
  if (root !== (claims.prev === undefined) || root !== (claims.from === undefined) || root !== (claims.pol !== undefined)) {
    fail('a root grant has pol and no prev/from; a hop grant has prev and from and no pol');
  }
  if (root && claims.rid !== claims.jti) fail('a root grant is its own rid');
  if (root) {
    if (typeof jws.header.kid !== 'string' || 'jwk' in jws.header) fail('a root grant is signed by the issuer: kid header, no jwk');
    return { jws, claims, hash: sha256b64url(compact) };
  }
  if ('kid' in jws.header) fail('a hop grant is signed by the parent agent: jwk header, no kid');
  const signer = keyFromJwk(jws.header.jwk);
  return { jws, claims, hash: sha256b64url(compact), signerKey: signer.key, signerJkt: signer.jkt };
}

/** Grants parsed recently, by their exact compact serialisation (a grant is immutable). */
const GRANT_CACHE_SIZE = 4096;
const grantCache = new BoundedCache<string, Grant>(GRANT_CACHE_SIZE);

/** `parseGrant`, cached by the exact bytes: chains repeat across the writs of one task. Deep-frozen, as every cached parse. */
export function parseGrantCached(compact: string): Grant {
  return grantCache.getOrSet(compact, () => deepFreeze(parseGrant(compact)));
}

function parseFrom(v: unknown): { sub: string; writ: string } {
  const f = obj(v, 'from', ['sub', 'writ']);
  return { sub: str(f.sub, 'from.sub', 2048), writ: str(f.writ, 'from.writ', 64) };
}

/** A fresh grant id: 128 random bits, base64url. */
export const newGrantId = (): string => randomBytes(16).toString('base64url');

/** What a delegator asks for; the rest of a hop grant is derived from the parent. */
export interface HopRequest {
  readonly childJkt: string;
  /** Narrower scope; defaults to the parent's. */
  readonly scope?: readonly Permission[];
  /** Added to the parent's boundaries. */
  readonly boundaries?: readonly Permission[];
  /** Added to the parent's escalation rules. */
  readonly escalate?: readonly Permission[];
  /** Unix seconds; defaults to (and is capped at) the parent's exp. */
  readonly exp?: number;
  readonly now: number;
  /** The delegating agent: its SPIFFE ID and its writ's jti. */
  readonly from: { readonly sub: string; readonly writ: string };
}

/** The claims of a hop grant below `parent`: attenuation applied here, checked again by every verifier. */
function hopClaims(parentCompact: string, req: HopRequest): GrantClaims {
  const parent = parseGrant(parentCompact).claims;
  if (!isJkt(req.childJkt)) fail('the child key thumbprint must be 43 canonical base64url characters');
  if (parent.depth + 1 > parent.max_depth) fail(`delegation depth ${parent.depth + 1} would exceed the root's limit of ${parent.max_depth}`);
  if (req.exp !== undefined && req.exp > parent.exp)
    fail(`the grant would end after its parent (${new Date(parent.exp * 1000).toISOString()}); ask for a shorter lifetime`);
  const exp = req.exp ?? parent.exp;
  if (exp <= req.now) fail('the parent grant has expired');
  const scope = [...(req.scope ?? parent.scope)];
  const boundaries = [...parent.boundaries, ...(req.boundaries ?? [])];
  const escalate = [...parent.escalate, ...(req.escalate ?? [])];
  // Refuse before signing what every verifier would refuse: a child never gets more than its parent.
  checkAttenuation(parent, { scope, boundaries, escalate }, parent.depth + 1);
  return {
    iss: parent.iss,
    jti: newGrantId(),
    iat: req.now,
    exp,
    rid: parent.rid,
    prev: sha256b64url(parentCompact),
    depth: parent.depth + 1,
    max_depth: parent.max_depth,
    task: parent.task,
    principal: parent.principal,
    from: req.from,
    dlg: { jkt: req.childJkt },
    scope,
    boundaries,
    escalate,
  };
}

/** Signs a hop grant below `parent` with the parent agent's private key (library form of `writ grant delegate`). */
export function delegateGrant(parentCompact: string, parentKey: KeyObject, req: HopRequest): string {
  if (parentKey.type !== 'private') fail("delegating needs the parent agent's private key");
  return signJws({ typ: GRANT_TYP, jwk: publicJwk(createPublicKey(parentKey)) }, { ...hopClaims(parentCompact, req) }, parentKey);
}

/** `delegateGrant` with a signer whose key may live in a TPM. */
export function delegateGrantWith(parentCompact: string, signer: JwsSigner, req: HopRequest): Promise<string> {
  return signJwsWith({ typ: GRANT_TYP, jwk: publicJwk(signer.publicKey) }, { ...hopClaims(parentCompact, req) }, signer);
}

/** Signs a root grant with the issuer's writ key (held wherever its custody keeps it). */
export function signRootGrant(claims: GrantClaims, signer: JwsSigner, kid: string): Promise<string> {
  return signJwsWith({ typ: GRANT_TYP, kid }, { ...claims }, signer);
}
