/**
 * Step-up grants for tests: approval requests for an agent of a writ, and step-up grants made
 * from a software authenticator's assertion and signed by the test issuer's writ key, either
 * through `mintStepUpGrant` (what the issuer does) or raw, with any claim bent, so verifier tests
 * can make what the real issuer would refuse to.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { signJws, keySigner } from '../../src/jose/jws.js';
import {
  APPROVAL_REQUEST_V,
  STEP_UP_TYP,
  approvalChallenge,
  mintStepUpGrant,
  newApprovalId,
  type ApprovalRequest,
  type StepUpClaims,
  type StepUpWebAuthn,
} from '../../src/delegation/step-up.js';
import { parseGrant } from '../../src/delegation/grant.js';
import type { Permission } from '../../src/delegation/scope.js';
import { coseToSpki } from '../../src/webauthn/cose.js';
import type { AssertionOptions, SoftAuthenticator } from './soft-authenticator.js';
import type { Agent, FakeIssuer } from './writ-fixture.js';

export const CONSOLE_RP_ID = 'console.example.org';
export const CONSOLE_ORIGIN = 'https://console.example.org:8444';
export const APPROVER = { iss: 'https://idp.example.com', sub: 'bob' };

/** An approval request for `holder`, who holds `leafGrant` (its last grant), within that grant's task. */
export function approvalRequest(
  issuer: FakeIssuer,
  holder: Agent,
  leafGrant: string,
  o: { permission?: Permission; inherit?: boolean; exp?: number; approver?: { iss: string; sub: string }; reason?: string; id?: string } = {},
): ApprovalRequest {
  const g = parseGrant(leafGrant).claims;
  return {
    v: APPROVAL_REQUEST_V,
    id: o.id ?? newApprovalId(),
    iss: issuer.issuer,
    task: g.task,
    principal: g.principal,
    agent: { sub: holder.spiffeId, jkt: holder.jkt, grant: g.jti },
    permission: o.permission ?? { action: 'repo:delete', resource: 'repo://acme/widgets' },
    inherit: o.inherit ?? false,
    reason: o.reason ?? 'remove the duplicate widgets repository',
    approver: o.approver ?? APPROVER,
    exp: o.exp ?? g.task.exp,
  };
}

/** A step-up grant as the issuer mints it (assertion checked, own output verified). */
export function mintStepUp(issuer: FakeIssuer, authn: SoftAuthenticator, req: ApprovalRequest, now: number): Promise<string> {
  const a = authn.getAssertion({ challenge: approvalChallenge(req), origin: CONSOLE_ORIGIN, rpId: CONSOLE_RP_ID });
  return mintStepUpGrant(
    { request: req, assertion: a, credentialPublicKey: authn.coseKey, rpId: CONSOLE_RP_ID, origin: CONSOLE_ORIGIN, now },
    keySigner(issuer.key),
    issuer.kid,
  );
}

export interface RawStepUpOptions {
  readonly now: number;
  readonly exp?: number;
  /** Bend the assertion (another challenge, flags, origin, ...). */
  readonly assertion?: Partial<AssertionOptions>;
  /** Replace members of the embedded webauthn object after it is built. */
  readonly webauthn?: Partial<StepUpWebAuthn>;
  /** Replace claims after they are built (e.g. another req than the one signed by the approver). */
  readonly override?: Partial<StepUpClaims> & Record<string, unknown>;
  readonly header?: Record<string, unknown>;
  /** Sign with this key instead of the issuer's (kid still the issuer's). */
  readonly key?: KeyObject;
  readonly jti?: string;
}

/** A step-up grant built and signed directly, every part bendable. */
export function rawStepUp(issuer: FakeIssuer, authn: SoftAuthenticator, req: ApprovalRequest, o: RawStepUpOptions): string {
  const a = authn.getAssertion({ challenge: approvalChallenge(req), origin: CONSOLE_ORIGIN, rpId: CONSOLE_RP_ID, ...o.assertion });
  const webauthn: StepUpWebAuthn = {
    rp_id: CONSOLE_RP_ID,
    origin: CONSOLE_ORIGIN,
    cred_id: a.credentialId.toString('base64url'),
    authenticator_data: a.authenticatorData.toString('base64url'),
    client_data_json: a.clientDataJSON.toString('base64url'),
    signature: a.signature.toString('base64url'),
    cose_key: authn.coseKey.toString('base64url'),
    spki: coseToSpki(authn.coseKey).toString('base64url'),
    ...o.webauthn,
  };
  const claims = {
    iss: req.iss,
    jti: o.jti ?? createHash('sha256').update(`${req.id}${o.now}${Math.random()}`).digest().subarray(0, 16).toString('base64url'),
    iat: o.now,
    exp: o.exp ?? req.exp,
    req,
    webauthn,
    ...o.override,
  };
  return signJws({ typ: STEP_UP_TYP, kid: issuer.kid, ...o.header }, claims, o.key ?? issuer.key);
}
