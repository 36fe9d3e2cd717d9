/**
 * The passkey registration statement (docs/policy.md §Registering a passkey): what an approver's
 * existing passkey signs to add another one. Its canonical form (RFC 8785) names the issuer, the
 * owner, the new registration's own challenge, the relying party and an expiry; the WebAuthn
 * challenge of the authorizing assertion is its SHA-256. So the assertion is good for exactly one
 * registration ceremony, of this owner, on this issuer: a stolen ID token cannot add a passkey,
 * and an assertion made for an approval (whose statement has another `typ`) cannot either.
 */
import { createHash } from 'node:crypto';
import { WebAuthnError } from '../errors.js';
import { canonicalBytes } from '../jose/jcs.js';
import { parseClientData, verifyAssertion } from '../webauthn/assertion.js';

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

/** A base64url member of a WebAuthn response JSON, bounded; UNTRUSTED. */
function b64Member(v: unknown, what: string): Buffer {
  if (typeof v !== 'string' || !/^[A-Za-z0-9_-]{1,8192}$/.test(v)) throw new WebAuthnError(`approval(webauthn): the response has no ${what}`);
  return Buffer.from(v, 'base64url');
}

/**
 * UNTRUSTED: a registration response's `clientDataJSON` (base64url). The challenge it names, as
 * the client encoded it, parsed strictly (webauthn/assertion.ts parseClientData): the key the
 * issuer finds the ceremony by, before anything else is checked.
 */
export function registrationChallengeOf(clientDataJSON: unknown): string {
  return parseClientData(b64Member(clientDataJSON, 'clientDataJSON')).challenge;
}

/**
 * UNTRUSTED: the authorizing assertion's response members. Checks it as any approval assertion is
 * checked (webauthn/assertion.ts verifyAssertion: type webauthn.get, challenge = SHA-256 of the
 * canonical statement, origin, RP ID hash, UP and UV, signature by the registered key), then that
 * the sign count moved past the stored one (WebAuthn §7.2 step 22: either non-zero and not
 * greater is a clone or a replay). Returns the new sign count.
 */
export function verifyRegistrationAuthorization(o: {
  readonly response: { readonly authenticatorData?: unknown; readonly clientDataJSON?: unknown; readonly signature?: unknown } | undefined;
  readonly statement: PasskeyRegistrationStatement;
  readonly credentialPublicKey: Buffer;
  readonly storedSignCount: number;
}): number {
  const verified = verifyAssertion({
    authenticatorData: b64Member(o.response?.authenticatorData, 'authenticatorData'),
    clientDataJSON: b64Member(o.response?.clientDataJSON, 'clientDataJSON'),
    signature: b64Member(o.response?.signature, 'signature'),
    credentialPublicKey: o.credentialPublicKey,
    expectedChallenge: passkeyRegistrationChallenge(o.statement),
    expectedOrigin: o.statement.origin,
    expectedRpId: o.statement.rpId,
    requireUserVerification: true,
  });
  if ((verified.signCount !== 0 || o.storedSignCount !== 0) && verified.signCount <= o.storedSignCount)
    throw new WebAuthnError(`approval(webauthn): the authorizing passkey's sign count ${verified.signCount} did not move past ${o.storedSignCount}`);
  return verified.signCount;
}
