/**
 * Confirmation before a revocation: a modal dialog (native <dialog>: focus moves in and stays,
 * Escape cancels) that says what dies, asks for a reason, and only then calls Revoke.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { client, describe } from '../client';

export interface RevokeTarget {
  readonly kind: string;
  readonly target: string;
  /** What the human is shown: "the task t-1 and every credential in it". */
  readonly what: string;
}

export function RevokeDialog(p: { target: RevokeTarget | undefined; onClose: (revoked: boolean) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (p.target && !d.open) {
      setReason('');
      setError('');
      d.showModal();
    } else if (!p.target && d.open) d.close();
  }, [p.target]);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!p.target) return;
    setBusy(true);
    setError('');
    try {
      await client.revoke({ kind: p.target.kind, target: p.target.target, reason: reason.trim() });
      p.onClose(true);
    } catch (err) {
      setError(describe(err).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} aria-labelledby="rv-title" onClose={() => p.target && p.onClose(false)} class="dialog">
      <form onSubmit={submit}>
        <h2 id="rv-title">Revoke {p.target?.kind}?</h2>
        <p>This revokes {p.target?.what}. Relying parties and sidecars learn it at once; it cannot be undone.</p>
        <p class="mono small">{p.target?.kind} {p.target?.target}</p>
        <label for="rv-reason">Reason (recorded in the audit log)</label>
        <textarea id="rv-reason" required maxLength={512} rows={3} value={reason} onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)} />
        {error && <p role="alert" class="error">{error}</p>}
        <div class="actions">
          <button type="button" onClick={() => p.onClose(false)}>Cancel</button>
          <button type="submit" class="danger" disabled={busy || reason.trim() === ''}>Revoke</button>
        </div>
      </form>
    </dialog>
  );
}
