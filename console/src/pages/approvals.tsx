/**
 * Pending escalations the signed-in approver may decide (the Cedar `approve` policy says which),
 * with the agent's full context; approve with a passkey (navigator.credentials.get over a
 * challenge that is the SHA-256 of the canonical request) or deny with a reason. Polled, so new
 * requests and decisions made elsewhere appear.
 */
import { startAuthentication } from '@simplewebauthn/browser';
import { useEffect, useState } from 'preact/hooks';
import type { Approval } from '../../../src/gen/writ/v1/approval_pb';
import { approvals, describe } from '../client';
import { when } from '../format';

export const APPROVALS_POLL_MS = 1000;

function Request(p: { a: Approval; onDone: () => void; onSignedOut: () => void }) {
  const { a } = p;
  const [reason, setReason] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const fail = (e: unknown) => {
    const d = describe(e);
    if (d.signedOut) p.onSignedOut();
    setError(d.message || String(e));
  };
  const approve = async () => {
    setBusy(true);
    setError('');
    try {
      const begin = await approvals.beginApproval({ id: a.id });
      const assertion = await startAuthentication({ optionsJSON: JSON.parse(begin.optionsJson) });
      await approvals.approve({ id: a.id, assertionJson: JSON.stringify(assertion) });
      p.onDone();
    } catch (e) {
      fail(e);
    } finally {
      setBusy(false);
    }
  };
  const deny = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await approvals.deny({ id: a.id, reason: reason.trim() });
      p.onDone();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };
  const perm = `${a.permission?.action} ${a.permission?.resource}`;
  return (
    <li class="card" data-approval={a.id} aria-labelledby={`ap-${a.id}`}>
      <h2 id={`ap-${a.id}`} class="title">
        <span class="mono">{a.actor}</span> asks for <span class="mono">{perm}</span>
      </h2>
      <dl class="kv">
        <dt>why</dt><dd>{a.reason}</dd>
        <dt>task</dt><dd><a href={`#/tasks/${encodeURIComponent(a.taskId)}`}>{a.taskId}</a> · {a.taskGoal}</dd>
        <dt>principal</dt><dd class="mono">{a.principalIss}#{a.principalSub}</dd>
        <dt>delegation</dt><dd class="mono">{a.delegationPath.join(' → ')}</dd>
        <dt>asked by policy</dt><dd class="mono">{a.policies.join(', ') || '—'}</dd>
        <dt>expires</dt><dd>{when(a.expiresAt)}</dd>
      </dl>
      <div class="node-actions">
        <button type="button" class="primary" disabled={busy} onClick={approve}>Approve with passkey</button>
      </div>
      <form class="filters" onSubmit={deny} aria-label={`Deny the request of ${a.actor}`}>
        <div class="field">
          <label for={`deny-${a.id}`}>Reason to deny</label>
          <input id={`deny-${a.id}`} required maxLength={1024} value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
        </div>
        <button type="submit" class="danger" disabled={busy || reason.trim() === ''}>Deny</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
    </li>
  );
}

/** Most pending requests the page shows; past it the approver narrows with the CLI (--task, --principal). */
const MAX_SHOWN_PENDING = 1000;

/** Every page of pending requests (the issuer may answer a short page with a token: follow it), up to MAX_SHOWN_PENDING. */
async function pendingPages(): Promise<{ approvals: Approval[]; more: boolean }> {
  const out: Approval[] = [];
  let pageToken = '';
  for (let pages = 0; pages < 50 && out.length < MAX_SHOWN_PENDING; pages++) {
    const res = await approvals.listApprovals({ state: 'pending', pageSize: 100, pageToken });
    out.push(...res.approvals);
    pageToken = res.nextPageToken;
    if (!pageToken) return { approvals: out.slice(0, MAX_SHOWN_PENDING), more: out.length > MAX_SHOWN_PENDING };
  }
  return { approvals: out.slice(0, MAX_SHOWN_PENDING), more: true };
}

export function ApprovalsPage(p: { onSignedOut: () => void }) {
  const [list, setList] = useState<Approval[]>();
  const [more, setMore] = useState(false);
  const [decided, setDecided] = useState<Approval[]>([]);
  const [error, setError] = useState('');
  const load = async () => {
    try {
      const [pending, done] = await Promise.all([pendingPages(), approvals.listApprovals({ state: 'all', pageSize: 20 })]);
      setList(pending.approvals);
      setMore(pending.more);
      setDecided(done.approvals.filter((a) => a.state !== 'pending'));
      setError('');
    } catch (e) {
      const d = describe(e);
      if (d.signedOut) p.onSignedOut();
      setError(d.message);
    }
  };
  useEffect(() => {
    void load();
    const t = setInterval(() => document.visibilityState === 'visible' && void load(), APPROVALS_POLL_MS);
    return () => clearInterval(t);
  }, []);
  return (
    <section aria-labelledby="apx">
      <h1 id="apx">Approvals</h1>
      <p class="muted">Approving needs a passkey (<a href="#/passkeys">register one</a>).</p>
      {error && <p role="alert" class="error">{error}</p>}
      {!list ? <p aria-busy="true">Loading…</p> : list.length === 0 ? <p>No escalation waits for you.</p> : (
        <ul class="cards" aria-label="Pending requests">
          {list.map((a) => <Request key={a.id} a={a} onDone={() => void load()} onSignedOut={p.onSignedOut} />)}
        </ul>
      )}
      {more && <p class="muted">Showing the newest {MAX_SHOWN_PENDING} pending requests; narrow the list with <code>writ approval list --task</code> or <code>--principal</code>.</p>}
      {decided.length > 0 && (
        <>
          <h2>Decided</h2>
          <ul class="cards" aria-label="Decided requests">
            {decided.map((a) => (
              <li key={a.id} class="card" data-decided={a.id} data-state={a.state}>
                <span class={`state ${a.state === 'approved' ? 'active' : 'revoked'}`}>{a.state}</span>{' '}
                <span class="mono">{a.actor}</span> · <span class="mono">{a.permission?.action} {a.permission?.resource}</span>
                <p class="muted">{a.decidedBy} · {when(a.decidedAt)}{a.decisionReason && `: ${a.decisionReason}`}</p>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
