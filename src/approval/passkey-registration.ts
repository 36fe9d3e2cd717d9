/**
 * The passkey registration statement (docs/policy.md §Registering a passkey): what an approver's
 * existing passkey signs to add another one. Its canonical form (RFC 8785) names the issuer, the
 * owner, the new registration's own challenge, the relying party and an expiry; the WebAuthn
 * challenge of the authorizing assertion is its SHA-256. So the assertion is good for exactly one
 * registration ceremony, of this owner, on this issuer: a stolen ID token cannot add a passkey,
 * and an assertion made for an approval (whose statement has another `typ`) cannot either.
 */
import { createHash } from 'node:crypto';
import { canonicalBytes } from '../jose/jcs.js';

export const PASSKEY_REGISTRATION_TYP = 'writ-passkey-registration';
export const PASSKEY_REGISTRATION_VERSION = 1;

export interface PasskeyRegistrationStatement {
  readonly typ: typeof PASSKEY_REGISTRATION_TYP;
  readonly v: typeof PASSKEY_REGISTRATION_VERSION;
  /** The issuer's trust domain ID. */
  readonly iss: string;
  /** The approver the passkeys belong to (OIDC issuer and subject). */
  readonly owner: { readonly iss: string; readonly sub: string };
  /** The new registration's challenge (base64url), as in its creation options. */
  readonly challenge: string;
  readonly rpId: string;
  readonly origin: string;
  /** When the registration ceremony ends, Unix seconds. */
  readonly exp: number;
}

export function passkeyRegistrationStatement(s: Omit<PasskeyRegistrationStatement, 'typ' | 'v'>): PasskeyRegistrationStatement {
  return {
    typ: PASSKEY_REGISTRATION_TYP,
    v: PASSKEY_REGISTRATION_VERSION,
    iss: s.iss,
    owner: { iss: s.owner.iss, sub: s.owner.sub },
    challenge: s.challenge,
    rpId: s.rpId,
    origin: s.origin,
    exp: s.exp,
  };
}

/** The canonical bytes of a statement (RFC 8785). */
export const passkeyRegistrationBytes = (s: PasskeyRegistrationStatement): Buffer => canonicalBytes(s);

/** SHA-256 of the canonical statement: the authorizing assertion's WebAuthn challenge (raw bytes). */
export function passkeyRegistrationChallenge(s: PasskeyRegistrationStatement): Buffer {
  return createHash('sha256').update(passkeyRegistrationBytes(s)).digest();
}
