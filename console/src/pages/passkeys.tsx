/**
 * Passkey registration for approvers: WebAuthn create() with the options the issuer makes for the
 * signed-in identity (user verification required); the issuer checks the attestation and binds
 * the credential to that OIDC identity. The session alone does not add a passkey
 * (docs/policy.md §Registering a passkey): an approver who has one first confirms with it (a
 * WebAuthn get() over the SHA-256 of a statement naming this registration); the first passkey
 * needs a recent sign-in, and the page offers a fresh one (/console/login?fresh=1) when it is not.
 */
import { startAuthentication, startRegistration } from '@simplewebauthn/browser';
import { useState } from 'preact/hooks';
import { approvals, describe } from '../client';

/** The issuer's refusal of a first passkey for a sign-in too old (or without auth_time). */
const NEEDS_FRESH_SIGN_IN = /needs a (fresh )?sign-in|sign in again/;

/** A registration begun and confirmed by an existing passkey, waiting for the user's second gesture to create the new one. */
interface Confirmed {
  readonly optionsJson: string;
  readonly authorizationJson: string;
}

export function PasskeysPage(p: { onSignedOut: () => void }) {
  const [status, setStatus] = useState<{ ok: boolean; text: string; fresh?: boolean }>();
  const [confirmed, setConfirmed] = useState<Confirmed>();
  const [busy, setBusy] = useState(false);
  const fail = (e: unknown) => {
    const d = describe(e);
    if (d.signedOut) p.onSignedOut();
    const text = d.message || String(e);
    setStatus({ ok: false, text, fresh: NEEDS_FRESH_SIGN_IN.test(text) });
  };
  const create = async (optionsJson: string, authorizationJson: string) => {
    const response = await startRegistration({ optionsJSON: JSON.parse(optionsJson) });
    const done = await approvals.finishPasskeyRegistration({ responseJson: JSON.stringify(response), authorizationJson });
    setStatus({ ok: true, text: `Passkey registered (credential ${done.credentialId.slice(0, 12)}…). You can approve escalations with it.` });
  };
  const register = async () => {
    setBusy(true);
    setStatus(undefined);
    setConfirmed(undefined);
    try {
      const begin = await approvals.beginPasskeyRegistration({});
      if (begin.authorizationOptionsJson === '') return await create(begin.optionsJson, '');
      // Confirm with a registered passkey; creating the new one is a second click (browsers
      // want a user gesture for each WebAuthn call, and the user may switch authenticators).
      const assertion = await startAuthentication({ optionsJSON: JSON.parse(begin.authorizationOptionsJson) });
      setConfirmed({ optionsJson: begin.optionsJson, authorizationJson: JSON.stringify(assertion) });
    } catch (e) {
      fail(e);
    } finally {
      setBusy(false);
    }
  };
  const createConfirmed = async () => {
    if (!confirmed) return;
    setBusy(true);
    try {
      await create(confirmed.optionsJson, confirmed.authorizationJson);
    } catch (e) {
      fail(e);
    } finally {
      setConfirmed(undefined);
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="pk">
      <h1 id="pk">Passkeys</h1>
      <p>
        Approving an escalation takes a passkey: your authenticator signs the exact request you approve, and the step-up grant carries that signature, so a
        relying party can check that you approved it.
      </p>
      <p>
        Your first passkey needs a recent sign-in. Adding another needs one you already have: you confirm with it first, so a stolen session cannot add its own.
      </p>
      <button type="button" class="primary" onClick={register} disabled={busy || confirmed !== undefined}>
        Register a passkey
      </button>
      {confirmed && (
        <p role="status" data-step="create">
          Confirmed with your registered passkey. Now create the new one on the authenticator you are adding:{' '}
          <button type="button" class="primary" onClick={createConfirmed} disabled={busy}>
            Create the new passkey
          </button>
        </p>
      )}
      {status && (
        <p role={status.ok ? 'status' : 'alert'} class={status.ok ? 'proof ok' : 'error'} data-passkey={status.ok ? 'registered' : 'failed'}>
          {status.text}
          {status.fresh && (
            <>
              {' '}
              <a href="/console/login?fresh=1">Sign in again</a>, then come back to Passkeys.
            </>
          )}
        </p>
      )}
    </section>
  );
}
