/**
 * The audit log, filtered by task, principal or actor (a principal sees only their own records),
 * and for each record opened: its inclusion proof checked here, in the browser, against the
 * latest signed checkpoint (verify.ts, WebCrypto).
 */
import { useEffect, useState } from 'preact/hooks';
import type { AuditRecordSummary } from '../../../src/gen/writ/v1/console_pb';
import { client, describe } from '../client';
import { when } from '../format';
import { verifyRecordInclusion, type Verdict } from '../verify';

interface Shown {
  readonly seq: number;
  readonly text: string;
  readonly verdict?: Verdict;
}

const decoder = new TextDecoder();

function summary(r: AuditRecordSummary): { at: number; event: string; actor: string; decision: string; task: string } {
  const v = JSON.parse(decoder.decode(r.canonical)) as Record<string, unknown>;
  const a = v.actor as Record<string, string>;
  const actor = a.kind === 'agent' ? a.spiffeId : a.kind === 'principal' ? `${a.iss}#${a.sub}` : a.kind === 'operator' ? `operator ${a.id}` : a.kind;
  return { at: Number(v.at), event: String(v.event), actor: actor ?? '', decision: String(v.decision ?? ''), task: String(v.task ?? '') };
}

export function AuditPage(p: { operator: boolean; onSignedOut: () => void }) {
  const [filter, setFilter] = useState({ task: '', principal: '', actor: '' });
  const [records, setRecords] = useState<AuditRecordSummary[]>();
  const [error, setError] = useState('');
  const [shown, setShown] = useState<Shown>();
  const fail = (e: unknown) => {
    const d = describe(e);
    if (d.signedOut) p.onSignedOut();
    setError(d.message);
  };
  const load = (f = filter) => client.listAuditRecords({ ...f, limit: 100 }).then((r) => { setRecords(r.records); setError(''); }, fail);
  useEffect(() => void load(), []);

  const open = async (seq: bigint) => {
    setShown({ seq: Number(seq), text: '' });
    try {
      const r = await client.proveAuditRecord({ seq });
      const text = decoder.decode(r.canonical);
      setShown({ seq: Number(seq), text });
      const verdict = await verifyRecordInclusion({ seq: Number(r.seq), size: Number(r.size), canonical: r.canonical, proof: r.proof, checkpoint: r.checkpoint, verifierKey: r.verifierKey });
      setShown({ seq: Number(seq), text, verdict });
    } catch (e) {
      fail(e);
    }
  };

  const field = (name: 'task' | 'principal' | 'actor', label: string, hint: string) => (
    <div class="field">
      <label for={`f-${name}`}>{label}</label>
      <input id={`f-${name}`} name={name} value={filter[name]} placeholder={hint} maxLength={1024}
        onInput={(e) => setFilter({ ...filter, [name]: (e.target as HTMLInputElement).value })} />
    </div>
  );
  return (
    <section aria-labelledby="au">
      <h1 id="au">Audit log</h1>
      {!p.operator && <p class="muted">You see the records of your own tasks and grants.</p>}
      <form class="filters" onSubmit={(e) => { e.preventDefault(); void load(); }} aria-label="Filter records">
        {field('task', 'Task', 'task id')}
        {p.operator && field('principal', 'Principal', 'ISSUER#SUBJECT')}
        {field('actor', 'Actor', 'spiffe://… or principal ISS#SUB')}
        <button type="submit">Filter</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      {records && (
        <div class="scroll">
          <table class="records">
            <caption>{records.length} records, newest first</caption>
            <thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Event</th><th scope="col">Actor</th><th scope="col">Decision</th><th scope="col"><span class="sr-only">Open</span></th></tr></thead>
            <tbody>
              {records.map((r) => {
                const s = summary(r);
                return (
                  <tr key={String(r.seq)} data-seq={String(r.seq)}>
                    <td>{String(r.seq)}</td><td>{when(s.at)}</td><td>{s.event}</td><td class="mono wrap">{s.actor}</td><td>{s.decision}</td>
                    <td><button type="button" onClick={() => void open(r.seq)} aria-label={`Open record ${r.seq} and check its proof`}>Open</button></td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {shown && (
        <section class="record" aria-labelledby="rec" aria-live="polite">
          <h2 id="rec">Record {shown.seq}</h2>
          {!shown.verdict ? <p aria-busy="true">Checking its inclusion proof…</p> : shown.verdict.ok ? (
            <p class="proof ok" data-proof="verified">✔ Inclusion proof verified in this browser against the signed checkpoint of {shown.verdict.size} records (origin {shown.verdict.origin}, root <span class="mono">{shown.verdict.root}</span>).</p>
          ) : (
            <p class="proof bad" role="alert" data-proof="failed">✘ Proof check failed: {shown.verdict.reason}</p>
          )}
          <pre class="json">{shown.text && JSON.stringify(JSON.parse(shown.text), null, 2)}</pre>
        </section>
      )}
    </section>
  );
}
