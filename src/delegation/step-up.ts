/**
 * Step-up grants (docs/writ-format.md §Step-up grants): an approval of one escalation, signed
 * by the issuer's writ key, that embeds the approver's WebAuthn assertion over the approval
 * request and the approver's credential public key. A relying party checks offline that the
 * issuer granted this permission to this agent within this task, and (with the assertion) that
 * the named human approved exactly this step with their own authenticator.
 *
 *   approval request  the statement the approver's authenticator signs: its RFC 8785 (JCS)
 *                     canonical form, hashed with SHA-256, is the WebAuthn challenge;
 *   step-up grant     a JWS `typ` "writ-step-up+jwt" carrying that request and the assertion.
 *
 * UNTRUSTED input enters in `parseStepUpGrant` and `verifyStepUpGrant`.
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { BoundedCache, deepFreeze } from '../cache/bounded.js';
import { isWritError, StepUpError } from '../errors.js';
import { canonicalize, JcsError } from '../jose/jcs.js';
import { claimReader } from '../jose/claims.js';
import { b64urlDecode, decodeJws, isJkt, sha256b64url, signJwsWith, verifyJws, type DecodedJws, type JwsSigner } from '../jose/jws.js';
import { parseCoseKey, type CoseKey } from '../webauthn/cose.js';
import { verifyAssertion, type VerifiedAssertion } from '../webauthn/assertion.js';
import { parsePrincipal, parseTask, type PrincipalRef, type Task } from './grant.js';
import { parsePermissions, type Permission } from './scope.js';

/** JWS `typ` of a step-up grant. */
export const STEP_UP_TYP = 'writ-step-up+jwt';
/** The `v` member of every approval request: what keeps its hash from meaning anything else. */
export const APPROVAL_REQUEST_V = 'writ-approval-v1';
/** Largest compact step-up grant: an ES256 one is ~2 KiB, an RSA-4096 credential's ~4.5 KiB. */
export const MAX_STEP_UP_BYTES = 8 * 1024;
/** Longest reason an agent may give, bytes. */
export const MAX_REASON_BYTES = 1024;
/** Longest RP ID (a domain name, RFC 1035 §2.3.4). */
const MAX_RP_ID_BYTES = 253;
/** Clock skew tolerated on step-up grant times, seconds (the writ's). */
const SKEW_S = 5;

const ID = /^[A-Za-z0-9_-]{22}$/;
/** An RP ID is a registrable domain or host: lower-case labels, dots; no port, no scheme (WebAuthn §5.1.4 / URL host). */
const RP_ID = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** The agent an approval is granted to: its SPIFFE ID, its key and its leaf grant. */
export interface ApprovalAgent {
  /** SPIFFE ID of the agent that asked (its writ's `sub`). */
  readonly sub: string;
  /** RFC 7638 thumbprint of its key (its writ's `cnf.jkt`, its last grant's `dlg.jkt`). */
  readonly jkt: string;
  /** `jti` of its last grant (the last entry of its writ's `lineage`). */
  readonly grant: string;
}

/**
 * What the approver approves, exactly (docs/writ-format.md §The approval request). Every member
 * is required; nothing else may be present. Its JCS form's SHA-256 is the WebAuthn challenge.
 */
export interface ApprovalRequest {
  readonly v: typeof APPROVAL_REQUEST_V;
  /** The approval id: 128 random bits, 22 base64url characters. */
  readonly id: string;
  /** `spiffe://<td>`: the issuer that asks the approver and signs the step-up grant. */
  readonly iss: string;
  readonly task: Task;
  /** The task's principal (the human who delegated it). */
  readonly principal: PrincipalRef;
  readonly agent: ApprovalAgent;
  /** The one permission added. */
  readonly permission: Permission;
  /** May the agent's children (writs whose lineage holds `agent.grant`) carry it? */
  readonly inherit: boolean;
  /** The agent's reason, shown to the approver. */
  readonly reason: string;
  /** The approver, as their OIDC issuer and subject. */
  readonly approver: PrincipalRef;
  /** The approval confers nothing after this instant (Unix seconds); ≤ `task.exp`. */
  readonly exp: number;
}

/** The WebAuthn assertion and the credential it was made with, as a step-up grant embeds them (base64url). */
export interface StepUpWebAuthn {
  /** The RP ID the credential is scoped to (the issuer's console host). */
  readonly rp_id: string;
  /** The origin the approval ceremony ran on, as client data names it. */
  readonly origin: string;
  /** The credential id (informational: it names the registration, it is not signed). */
  readonly cred_id: string;
  readonly authenticator_data: string;
  readonly client_data_json: string;
  readonly signature: string;
  /** The credential public key exactly as registered: COSE_Key CBOR. */
  readonly cose_key: string;
  /** The same key as DER SubjectPublicKeyInfo, for verifiers without CBOR. */
  readonly spki: string;
}

export interface StepUpClaims {
  readonly iss: string;
  /** The step-up grant id: 128 random bits. */
  readonly jti: string;
  readonly iat: number;
  /** ≤ `req.exp` ≤ `req.task.exp`. */
  readonly exp: number;
  readonly req: ApprovalRequest;
  readonly webauthn: StepUpWebAuthn;
}

export interface StepUpGrant {
  readonly jws: DecodedJws;
  readonly claims: StepUpClaims;
  /** base64url SHA-256 of the compact grant. */
  readonly hash: string;
}

const fail = (msg: string, cause?: unknown): never => {
  throw new StepUpError(`step-up: ${msg}`, cause === undefined ? undefined : { cause });
};

const read = claimReader((m) => fail(m));
const only = read.object;
const str = read.string;
const int = read.int;

/** Runs a parser of another module, reporting its refusal as a step-up refusal. */
function wrap<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof StepUpError) throw e;
    if (isWritError(e) || e instanceof JcsError) return fail(`${what}: ${(e as Error).message}`, e);
    throw e;
  }
}

const REQUEST_KEYS = ['v', 'id', 'iss', 'task', 'principal', 'agent', 'permission', 'inherit', 'reason', 'approver', 'exp'];

/** Parses an approval request from UNTRUSTED JSON: exactly its members, each in its grammar. */
export function parseApprovalRequest(v: unknown): ApprovalRequest {
  const r = only(v, 'req', REQUEST_KEYS);
  for (const k of REQUEST_KEYS) if (r[k] === undefined) fail(`req.${k} is missing`);
  if (r.v !== APPROVAL_REQUEST_V) fail(`req.v must be "${APPROVAL_REQUEST_V}"`);
  const a = only(r.agent, 'req.agent', ['sub', 'jkt', 'grant']);
  if (!isJkt(a.jkt)) fail('req.agent.jkt must be an RFC 7638 thumbprint (43 canonical base64url characters)');
  if (typeof r.inherit !== 'boolean') fail('req.inherit must be a boolean');
  const task = wrap('req.task', () => parseTask(r.task));
  const exp = int(r.exp, 'req.exp');
  if (exp > task.exp) fail('req.exp is after the task ends');
  const perm = wrap('req.permission', () => parsePermissions([r.permission], 'req.permission'))[0]!;
  return {
    v: APPROVAL_REQUEST_V,
    id: str(r.id, 'req.id', 22, ID),
    iss: str(r.iss, 'req.iss', 256, /^spiffe:\/\/[a-z0-9._-]+$/),
    task,
    principal: wrap('req.principal', () => parsePrincipal(r.principal)),
    agent: { sub: str(a.sub, 'req.agent.sub', 2048, /^spiffe:\/\//), jkt: a.jkt as string, grant: str(a.grant, 'req.agent.grant', 22, ID) },
    permission: { action: perm.action, resource: perm.resource },
    inherit: r.inherit as boolean,
    reason: str(r.reason, 'req.reason', MAX_REASON_BYTES),
    approver: wrap('req.approver', () => parsePrincipal(r.approver)),
    exp,
  };
}

/** The canonical bytes of an approval request: RFC 8785 JCS of exactly its members, UTF-8. */
export function approvalRequestBytes(request: ApprovalRequest): Buffer {
  const r = parseApprovalRequest(request);
  return Buffer.from(
    wrap('req', () => canonicalize(r)),
    'utf8',
  );
}

/** The WebAuthn challenge for an approval: SHA-256 of its canonical bytes (32 bytes). */
export function approvalChallenge(request: ApprovalRequest): Buffer {
  return createHash('sha256').update(approvalRequestBytes(request)).digest();
}

const b64 = (v: unknown, what: string, max: number): Buffer => {
  const s = str(v, what, max, /^[A-Za-z0-9_-]+$/);
  return wrap(what, () => {
    try {
      return b64urlDecode(s);
    } catch (e) {
      return fail(`${what} is not canonical base64url`, e);
    }
  });
};

/** An origin as client data names it: scheme, host and port of an https URL (http only for localhost), nothing else. */
function checkOrigin(origin: string): void {
  const u = URL.canParse(origin) ? new URL(origin) : fail('webauthn.origin is not a URL origin');
  const local = u.hostname === 'localhost' || u.hostname === '127.0.0.1' || u.hostname === '[::1]';
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && local)) fail('webauthn.origin must be https (http only on localhost)');
  if (u.origin !== origin) fail('webauthn.origin must be an origin exactly as browsers serialise it (scheme://host[:port])');
}

const WEBAUTHN_KEYS = ['rp_id', 'origin', 'cred_id', 'authenticator_data', 'client_data_json', 'signature', 'cose_key', 'spki'];

/** Decodes a step-up grant and checks its structure. No signature or assertion check. */
export function parseStepUpGrant(compact: string): StepUpGrant {
  const jws = wrap('jws', () => decodeJws(compact, STEP_UP_TYP, MAX_STEP_UP_BYTES));
  if (typeof jws.header.kid !== 'string' || jws.header.kid === '') fail('the header has no kid');
  for (const h of ['jwk', 'x5c', 'jku', 'x5u'])
    if (h in jws.header) fail('the header may not carry keys or key locations: the issuer key comes from the trust bundle');
  const c = only(jws.payload, 'claims', ['iss', 'jti', 'iat', 'exp', 'req', 'webauthn']);
  const w = only(c.webauthn, 'webauthn', WEBAUTHN_KEYS);
  for (const k of WEBAUTHN_KEYS) if (w[k] === undefined) fail(`webauthn.${k} is missing`);
  const rpId = str(w.rp_id, 'webauthn.rp_id', MAX_RP_ID_BYTES, RP_ID);
  const origin = str(w.origin, 'webauthn.origin', 2048);
  checkOrigin(origin);
  // Decoded here so a malformed one is refused at parse time; kept in their wire form.
  b64(w.cred_id, 'webauthn.cred_id', 1366);
  b64(w.authenticator_data, 'webauthn.authenticator_data', 1366);
  b64(w.client_data_json, 'webauthn.client_data_json', 5462);
  b64(w.signature, 'webauthn.signature', 1366);
  b64(w.cose_key, 'webauthn.cose_key', 2731);
  b64(w.spki, 'webauthn.spki', 2731);
  const claims: StepUpClaims = {
    iss: str(c.iss, 'iss', 256),
    jti: str(c.jti, 'jti', 22, ID),
    iat: int(c.iat, 'iat'),
    exp: int(c.exp, 'exp'),
    req: parseApprovalRequest(c.req),
    webauthn: {
      rp_id: rpId,
      origin,
      cred_id: w.cred_id as string,
      authenticator_data: w.authenticator_data as string,
      client_data_json: w.client_data_json as string,
      signature: w.signature as string,
      cose_key: w.cose_key as string,
      spki: w.spki as string,
    },
  };
  if (claims.exp <= claims.iat) fail('exp must be after iat');
  if (claims.exp > claims.req.exp) fail('the step-up grant outlives its approval (exp after req.exp)');
  if (claims.req.iss !== claims.iss) fail('req.iss is not the grant issuer');
  return { jws, claims, hash: sha256b64url(compact) };
}

/** Step-up grants parsed recently, by their exact bytes (a writ repeats them on every presentation). */
const STEP_UP_CACHE_SIZE = 1024;
const stepUpCache = new BoundedCache<string, StepUpGrant>(STEP_UP_CACHE_SIZE);

/** `parseStepUpGrant`, cached by the exact bytes and deep-frozen. */
export function parseStepUpGrantCached(compact: string): StepUpGrant {
  return stepUpCache.getOrSet(compact, () => deepFreeze(parseStepUpGrant(compact)));
}

export interface StepUpAssertionInput {
  /** From the approver's `navigator.credentials.get()` response. */
  readonly authenticatorData: Buffer | Uint8Array;
  readonly clientDataJSON: Buffer | Uint8Array;
  readonly signature: Buffer | Uint8Array;
  /** The credential's raw id. */
  readonly credentialId: Buffer | Uint8Array;
}

export interface MintStepUpInput {
  readonly request: ApprovalRequest;
  readonly assertion: StepUpAssertionInput;
  /** The approver's credential public key as registered (COSE_Key CBOR). */
  readonly credentialPublicKey: Buffer | Uint8Array;
  /** The RP ID the credential was registered for, and the origin the approval ran on. */
  readonly rpId: string;
  readonly origin: string;
  /** Unix seconds. */
  readonly now: number;
  /** Defaults to (and may not pass) `request.exp`. */
  readonly exp?: number;
  /** The step-up grant id; a fresh 128-bit one by default. */
  readonly jti?: string;
  /** Default true; only a test of a verifier's refusals turns it off. */
  readonly requireUserVerification?: boolean;
}

const buf = (b: Buffer | Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/**
 * Mints a step-up grant: checks the assertion against the request (the issuer never signs one a
 * relying party would refuse), signs with the issuer's writ key, then verifies its own output.
 */
export async function mintStepUpGrant(input: MintStepUpInput, signer: JwsSigner, kid: string): Promise<string> {
  const req = parseApprovalRequest(input.request);
  const exp = input.exp ?? req.exp;
  if (exp > req.exp) fail('the step-up grant would outlive the approval (exp after request.exp)');
  if (exp <= input.now) fail('the approval has expired');
  const cose = wrap('credential public key', () => parseCoseKey(input.credentialPublicKey));
  const a = input.assertion;
  wrap('assertion', () =>
    verifyAssertion({
      authenticatorData: a.authenticatorData,
      clientDataJSON: a.clientDataJSON,
      signature: a.signature,
      credentialPublicKey: cose,
      expectedChallenge: approvalChallenge(req),
      expectedOrigin: input.origin,
      expectedRpId: input.rpId,
      requireUserVerification: input.requireUserVerification ?? true,
    }),
  );
  const claims: StepUpClaims = {
    iss: req.iss,
    jti: input.jti ?? randomBytes(16).toString('base64url'),
    iat: input.now,
    exp,
    req,
    webauthn: {
      rp_id: input.rpId,
      origin: input.origin,
      cred_id: buf(a.credentialId).toString('base64url'),
      authenticator_data: buf(a.authenticatorData).toString('base64url'),
      client_data_json: buf(a.clientDataJSON).toString('base64url'),
      signature: buf(a.signature).toString('base64url'),
      cose_key: buf(input.credentialPublicKey).toString('base64url'),
      spki: cose.spki.toString('base64url'),
    },
  };
  const compact = await signJwsWith({ typ: STEP_UP_TYP, kid }, { ...claims }, signer);
  verifyStepUpGrant(compact, {
    issuer: req.iss,
    writKeys: new Map([[kid, signer.publicKey]]),
    now: new Date(input.now * 1000),
    requireUserVerification: input.requireUserVerification ?? true,
  });
  return compact;
}

export interface VerifyStepUpOptions {
  /** The issuer's trust domain ID, `spiffe://<td>`. */
  readonly issuer: string;
  /** The issuer's writ keys by kid (`use` "writ" in its SPIFFE bundle). */
  readonly writKeys: ReadonlyMap<string, KeyObject>;
  readonly now: Date;
  /** The task it must be for: an id, or a whole task (id, goal and exp all equal). */
  readonly expectedTask?: string | Task;
  /** The principal the task must belong to. */
  readonly expectedPrincipal?: PrincipalRef;
  /** The agent it must be granted to: key thumbprint, leaf grant id and SPIFFE ID, each when given. */
  readonly agentJkt?: string;
  readonly agentGrant?: string;
  readonly agentSub?: string;
  /** Check the embedded WebAuthn assertion (default true). */
  readonly assertion?: boolean;
  /** Pin the RP ID and origins the approval must have been made on; by default the grant's own (the issuer's word). */
  readonly expectedRpId?: string;
  readonly expectedOrigins?: readonly string[];
  /** Default true. */
  readonly requireUserVerification?: boolean;
}

export interface VerifiedStepUp {
  readonly grant: StepUpGrant;
  readonly id: string;
  readonly approvalId: string;
  readonly approver: PrincipalRef;
  readonly permission: Permission;
  readonly inherit: boolean;
  readonly agent: ApprovalAgent;
  readonly task: Task;
  readonly expiresAt: number;
  /** Present when the assertion was checked. */
  readonly assertion?: VerifiedAssertion & { readonly credentialId: string };
  /** What was checked here, in order. */
  readonly checks: readonly string[];
}

/** Credential keys parsed before, by their base64url COSE bytes (parsing validates the point). */
const COSE_CACHE_SIZE = 1024;
const coseCache = new BoundedCache<string, CoseKey>(COSE_CACHE_SIZE);

/**
 * Verifies a step-up grant offline (docs/writ-format.md §Verifying a step-up grant): the
 * issuer's signature by a writ key of the bundle, its times, task, principal and agent as
 * expected, and (by default) the embedded WebAuthn assertion: its challenge the SHA-256 of the
 * request's JCS form, made on the named RP ID and origin, user present and verified, signed by
 * the embedded credential key, whose SPKI form is the one embedded.
 */
export function verifyStepUpGrant(compact: string, o: VerifyStepUpOptions): VerifiedStepUp {
  const checks: string[] = [];
  const g = parseStepUpGrantCached(compact);
  const c = g.claims;
  const r = c.req;
  if (c.iss !== o.issuer) fail(`issued by ${c.iss.slice(0, 80)}, not the trusted issuer ${o.issuer}`);
  const key = o.writKeys.get(g.jws.header.kid as string);
  if (!key) fail('signed by a key the trust bundle does not hold (kid unknown)');
  if (!verifyJws(g.jws, key!)) fail('issuer signature does not verify');
  checks.push(`issuer signature by writ key ${g.jws.header.kid as string}`);
  const now = Math.floor(o.now.getTime() / 1000);
  if (c.iat > now + SKEW_S) fail('issued in the future');
  if (c.exp <= now - SKEW_S) fail('expired');
  if (r.task.exp <= now - SKEW_S) fail(`the task ${r.task.id} has ended`);
  checks.push('times: issued, not expired, within the approval and the task');
  if (o.expectedTask !== undefined) {
    const t = o.expectedTask;
    const same = typeof t === 'string' ? r.task.id === t : r.task.id === t.id && r.task.goal === t.goal && r.task.exp === t.exp;
    if (!same) fail(`granted for another task (${r.task.id})`);
    checks.push(`task ${r.task.id}`);
  }
  if (o.expectedPrincipal && (r.principal.iss !== o.expectedPrincipal.iss || r.principal.sub !== o.expectedPrincipal.sub))
    fail('granted within another principal’s task');
  if (o.agentJkt !== undefined && r.agent.jkt !== o.agentJkt) fail('granted to another agent key');
  if (o.agentGrant !== undefined && r.agent.grant !== o.agentGrant) fail('granted to another agent grant');
  if (o.agentSub !== undefined && r.agent.sub !== o.agentSub) fail('granted to another agent');
  if (o.agentJkt !== undefined || o.agentGrant !== undefined || o.agentSub !== undefined) checks.push('granted to this agent');

  let assertion: VerifiedStepUp['assertion'];
  if (o.assertion ?? true) {
    const w = c.webauthn;
    if (o.expectedRpId !== undefined && w.rp_id !== o.expectedRpId) fail(`approved on RP ID ${w.rp_id}, not ${o.expectedRpId}`);
    const cose = wrap('webauthn.cose_key', () => coseCache.getOrSet(w.cose_key, () => parseCoseKey(Buffer.from(w.cose_key, 'base64url'))));
    if (cose.spki.toString('base64url') !== w.spki) fail('webauthn.spki is not the SubjectPublicKeyInfo of webauthn.cose_key');
    const v = wrap('webauthn assertion', () =>
      verifyAssertion({
        authenticatorData: Buffer.from(w.authenticator_data, 'base64url'),
        clientDataJSON: Buffer.from(w.client_data_json, 'base64url'),
        signature: Buffer.from(w.signature, 'base64url'),
        credentialPublicKey: cose,
        expectedChallenge: approvalChallenge(r),
        expectedOrigin: o.expectedOrigins ?? [w.origin],
        expectedRpId: w.rp_id,
        requireUserVerification: o.requireUserVerification ?? true,
      }),
    );
    assertion = { ...v, credentialId: w.cred_id };
    checks.push(
      `WebAuthn assertion by ${r.approver.iss}#${r.approver.sub} (${v.algorithm} credential ${w.cred_id.slice(0, 16)}…): challenge = SHA-256 of the approval request, origin ${v.origin}, RP ID ${v.rpId}, user present${v.flags.uv ? ' and verified' : ''}, signature`,
    );
  }
  return {
    grant: g,
    id: c.jti,
    approvalId: r.id,
    approver: r.approver,
    permission: r.permission,
    inherit: r.inherit,
    agent: r.agent,
    task: r.task,
    expiresAt: c.exp,
    ...(assertion ? { assertion } : {}),
    checks,
  };
}

const LIST_LABEL = Buffer.from('writ-step-up-list-v1\0', 'latin1');

/** SHA-256("writ-step-up-list-v1" 0x00 ‖ u32be(n) ‖ for each: u32be(len) ‖ ASCII compact JWS): what a writ's binding commits to. */
export function stepUpListDigest(grants: readonly string[]): Buffer {
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const h = createHash('sha256').update(LIST_LABEL).update(u32(grants.length));
  for (const s of grants) {
    const b = Buffer.from(s, 'latin1');
    h.update(u32(b.length)).update(b);
  }
  return h.digest();
}

/** A fresh approval id: 128 random bits, base64url. */
export const newApprovalId = (): string => randomBytes(16).toString('base64url');
