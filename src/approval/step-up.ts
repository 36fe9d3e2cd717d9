/**
 * The step-up grant (docs/writ-format.md §Step-up grants): what an approval adds to an agent's
 * authority within its task. A JWS with `typ` "writ-stepup+jwt" signed by the issuer's writ key,
 * naming the approval, the approver, the permission added, the agent (SPIFFE ID and key), its
 * lineage and task, and embedding the approver's WebAuthn assertion and credential public key,
 * so that a relying party can check offline that this human approved this step with their own
 * key. Minting lives in `mintStepUpGrant` alone, so the format can be swapped in one place.
 * UNTRUSTED input enters in `parseStepUpGrant`.
 */
import { ApprovalError } from '../errors.js';
import { claimReader } from '../jose/claims.js';
import { decodeJws, isJkt, signJwsWith, verifyJws, type DecodedJws, type JwsSigner } from '../jose/jws.js';
import type { KeyObject } from 'node:crypto';
import { parsePermissions, type Permission } from '../delegation/scope.js';
import { APPROVAL_ID, type ApprovalRequestDoc } from './request.js';

export const STEP_UP_TYP = 'writ-stepup+jwt';
/** Most step-up grants one writ carries (one per approved permission). */
export const MAX_STEP_UPS = 16;

/** The approver's WebAuthn assertion as the authenticator produced it (all base64url). */
export interface StepUpAssertion {
  readonly credential_id: string;
  /** COSE_Key (RFC 9052 §7) of the credential, as registered. */
  readonly public_key: string;
  /** COSE algorithm of that key (-7: ES256). */
  readonly alg: number;
  readonly authenticator_data: string;
  readonly client_data_json: string;
  readonly signature: string;
}

export interface StepUpClaims {
  readonly iss: string;
  /** The approval id. */
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  /** The agent the approval is for, and its key. */
  readonly sub: string;
  readonly cnf: { readonly jkt: string };
  readonly task: { readonly id: string; readonly exp: number };
  /** The requesting writ's grant ids, root first: the approval holds on exactly this lineage. */
  readonly lineage: readonly string[];
  /** The approver (OIDC issuer and subject). */
  readonly approver: { readonly iss: string; readonly sub: string };
  /** The permissions added. */
  readonly add: readonly Permission[];
  /** Whether agents this one delegates to inherit the approval (never, today). */
  readonly inherit: boolean;
  /** The approval request the passkey signed (its canonical SHA-256 is the WebAuthn challenge). */
  readonly request: ApprovalRequestDoc;
  readonly webauthn: StepUpAssertion;
}

export interface StepUpGrant {
  readonly jws: DecodedJws;
  readonly claims: StepUpClaims;
}

/** Mints a step-up grant with the issuer's writ key (the one function to swap for another format). */
export function mintStepUpGrant(claims: StepUpClaims, signer: JwsSigner, kid: string): Promise<string> {
  return signJwsWith({ typ: STEP_UP_TYP, kid }, { ...claims }, signer);
}

const fail = (msg: string): never => {
  throw new ApprovalError('ERR_APPROVAL_DENIED', `approval(step-up): ${msg}`);
};
const read = claimReader(fail);
const B64U = /^[A-Za-z0-9_-]+$/;
const KEYS = ['iss', 'jti', 'iat', 'exp', 'sub', 'cnf', 'task', 'lineage', 'approver', 'add', 'inherit', 'request', 'webauthn'];

/**
 * Decodes a step-up grant and checks its issuer signature (node:crypto, through jose/jws.ts) and
 * structure. What it must match (agent, lineage, task, the issuer's record) the caller checks.
 */
export function parseStepUpGrant(compact: string, issuer: string, keys: ReadonlyMap<string, KeyObject>): StepUpGrant {
  let jws: DecodedJws;
  try {
    jws = decodeJws(compact, STEP_UP_TYP);
  } catch (e) {
    return fail(`not a step-up grant: ${(e as Error).message}`);
  }
  const kid = jws.header.kid;
  if (typeof kid !== 'string' || 'jwk' in jws.header) fail('a step-up grant is signed by the issuer: kid header, no jwk');
  const key = keys.get(kid as string);
  if (!key) fail('signed by a key the trust bundle does not hold (kid unknown)');
  if (!verifyJws(jws, key!)) fail('issuer signature does not verify');
  const c = read.object(jws.payload, 'step-up grant', KEYS);
  const task = read.object(c.task, 'task', ['id', 'exp']);
  const approver = read.object(c.approver, 'approver', ['iss', 'sub']);
  const cnf = read.object(c.cnf, 'cnf', ['jkt']);
  const w = read.object(c.webauthn, 'webauthn', ['credential_id', 'public_key', 'alg', 'authenticator_data', 'client_data_json', 'signature']);
  if (!isJkt(cnf.jkt)) fail('cnf.jkt must be an RFC 7638 thumbprint');
  if (typeof c.inherit !== 'boolean') fail('inherit must be a boolean');
  if (typeof w.alg !== 'number' || !Number.isSafeInteger(w.alg)) fail('webauthn.alg must be an integer');
  if (typeof c.request !== 'object' || c.request === null || Array.isArray(c.request)) fail('request must be an object');
  let add: Permission[];
  try {
    add = parsePermissions(c.add, 'add');
  } catch (e) {
    return fail((e as Error).message);
  }
  const claims: StepUpClaims = {
    iss: read.string(c.iss, 'iss'),
    jti: read.string(c.jti, 'jti', 22, APPROVAL_ID),
    iat: read.int(c.iat, 'iat'),
    exp: read.int(c.exp, 'exp'),
    sub: read.string(c.sub, 'sub'),
    cnf: { jkt: cnf.jkt as string },
    task: { id: read.string(task.id, 'task.id', 128), exp: read.int(task.exp, 'task.exp') },
    lineage: read.strings(c.lineage, 'lineage', 9),
    approver: { iss: read.string(approver.iss, 'approver.iss'), sub: read.string(approver.sub, 'approver.sub') },
    add,
    inherit: c.inherit as boolean,
    request: c.request as ApprovalRequestDoc,
    webauthn: {
      credential_id: read.string(w.credential_id, 'webauthn.credential_id', 1024, B64U),
      public_key: read.string(w.public_key, 'webauthn.public_key', 1024, B64U),
      alg: w.alg as number,
      authenticator_data: read.string(w.authenticator_data, 'webauthn.authenticator_data', 4096, B64U),
      client_data_json: read.string(w.client_data_json, 'webauthn.client_data_json', 4096, B64U),
      signature: read.string(w.signature, 'webauthn.signature', 1024, B64U),
    },
  };
  if (claims.iss !== issuer) fail(`issued by ${claims.iss.slice(0, 80)}, not ${issuer}`);
  if (claims.exp <= claims.iat || claims.exp > claims.task.exp) fail('exp must be after iat and within the task');
  if (claims.add.length === 0) fail('adds no permission');
  return { jws, claims };
}
