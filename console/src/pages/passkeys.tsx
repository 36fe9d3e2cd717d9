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

export function PasskeysPage(p: { onSignedOut: () => void }) {
  const [status, setStatus] = useState<{ ok: boolean; text: string; fresh?: boolean }>();
  const [step, setStep] = useState('');
  const [busy, setBusy] = useState(false);
  const register = async () => {
    setBusy(true);
    setStatus(undefined);
    try {
      const begin = await approvals.beginPasskeyRegistration({});
      let authorizationJson = '';
      if (begin.authorizationOptionsJson !== '') {
        setStep('Confirm with one of your registered passkeys that you are adding another…');
        const assertion = await startAuthentication({ optionsJSON: JSON.parse(begin.authorizationOptionsJson) });
        authorizationJson = JSON.stringify(assertion);
      }
      setStep('Create the new passkey on your authenticator…');
      const response = await startRegistration({ optionsJSON: JSON.parse(begin.optionsJson) });
      const done = await approvals.finishPasskeyRegistration({ responseJson: JSON.stringify(response), authorizationJson });
      setStatus({ ok: true, text: `Passkey registered (credential ${done.credentialId.slice(0, 12)}…). You can approve escalations with it.` });
    } catch (e) {
      const d = describe(e);
      if (d.signedOut) p.onSignedOut();
      const text = d.message || String(e);
      setStatus({ ok: false, text, fresh: NEEDS_FRESH_SIGN_IN.test(text) });
    } finally {
      setStep('');
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
      <button type="button" class="primary" onClick={register} disabled={busy}>
        Register a passkey
      </button>
      {step && <p role="status">{step}</p>}
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
