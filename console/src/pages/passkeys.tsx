/**
 * Passkey registration for approvers: WebAuthn create() with the options the issuer makes for the
 * signed-in identity (user verification required); the issuer checks the attestation and binds
 * the credential to that OIDC identity.
 */
import { startRegistration } from '@simplewebauthn/browser';
import { useState } from 'preact/hooks';
import { approvals, describe } from '../client';

export function PasskeysPage(p: { onSignedOut: () => void }) {
  const [status, setStatus] = useState<{ ok: boolean; text: string }>();
  const [busy, setBusy] = useState(false);
  const register = async () => {
    setBusy(true);
    setStatus(undefined);
    try {
      const begin = await approvals.beginPasskeyRegistration({});
      const response = await startRegistration({ optionsJSON: JSON.parse(begin.optionsJson) });
      const done = await approvals.finishPasskeyRegistration({ responseJson: JSON.stringify(response) });
      setStatus({ ok: true, text: `Passkey registered (credential ${done.credentialId.slice(0, 12)}…). You can approve escalations with it.` });
    } catch (e) {
      const d = describe(e);
      if (d.signedOut) p.onSignedOut();
      setStatus({ ok: false, text: d.message || String(e) });
    } finally {
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
      <button type="button" class="primary" onClick={register} disabled={busy}>Register a passkey</button>
      {status && (
        <p role={status.ok ? 'status' : 'alert'} class={status.ok ? 'proof ok' : 'error'} data-passkey={status.ok ? 'registered' : 'failed'}>
          {status.text}
        </p>
      )}
    </section>
  );
}
