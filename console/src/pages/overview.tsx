import { useEffect, useState } from 'preact/hooks';
import type { GetOverviewResponse } from '../../../src/gen/writ/v1/console_pb';
import { client, describe } from '../client';
import { when } from '../format';

/** Health for operators: version, trust domain, datastore, key rotation state, log size. */
export function OverviewPage(p: { operator: boolean; onSignedOut: () => void }) {
  const [o, setO] = useState<GetOverviewResponse>();
  const [error, setError] = useState('');
  useEffect(() => {
    if (!p.operator) return;
    client.getOverview({}).then(setO, (e) => {
      const d = describe(e);
      if (d.signedOut) p.onSignedOut();
      setError(d.message);
    });
  }, [p.operator]);
  if (!p.operator) return <p>The overview is for operators.</p>;
  if (error) return <p role="alert" class="error">{error}</p>;
  if (!o) return <p aria-busy="true">Loading…</p>;
  return (
    <section aria-labelledby="ov">
      <h1 id="ov">Overview</h1>
      <dl class="facts">
        <dt>Issuer version</dt><dd>{o.version}</dd>
        <dt>Trust domain</dt><dd>{o.trustDomain}</dd>
        <dt>Datastore</dt><dd>{o.datastore}</dd>
        <dt>Tasks</dt><dd>{String(o.tasks)}</dd>
        <dt>SVIDs issued</dt><dd>{String(o.issued)}</dd>
        <dt>Audit log</dt><dd>{String(o.auditSize)} records</dd>
      </dl>
      <h2>Keys</h2>
      <div class="scroll">
        <table>
          <caption>CA and signing keys, and where each is in its rotation (prepared → active → retired)</caption>
          <thead><tr><th scope="col">Purpose</th><th scope="col">State</th><th scope="col">Not after</th><th scope="col">Id</th></tr></thead>
          <tbody>
            {o.keys.map((k) => (
              <tr key={k.id}><td>{k.purpose}</td><td><span class={`state ${k.state}`}>{k.state}</span></td><td>{when(k.notAfter)}</td><td class="mono">{k.id}</td></tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
