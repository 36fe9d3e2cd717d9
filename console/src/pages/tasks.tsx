import { useEffect, useState } from 'preact/hooks';
import type { TaskSummary } from '../../../src/gen/writ/v1/console_pb';
import { client, describe } from '../client';
import { when } from '../format';

/** Tasks, newest first: an operator sees every one, a principal their own. */
export function TasksPage(p: { onSignedOut: () => void }) {
  const [tasks, setTasks] = useState<TaskSummary[]>();
  const [error, setError] = useState('');
  useEffect(() => {
    client.listTasks({ limit: 200 }).then(
      (r) => setTasks(r.tasks),
      (e) => {
        const d = describe(e);
        if (d.signedOut) p.onSignedOut();
        setError(d.message);
      },
    );
  }, []);
  if (error) return <p role="alert" class="error">{error}</p>;
  if (!tasks) return <p aria-busy="true">Loading…</p>;
  return (
    <section aria-labelledby="tk">
      <h1 id="tk">Tasks</h1>
      {tasks.length === 0 ? (
        <p>No tasks yet. A principal starts one with <code>writ grant create</code>.</p>
      ) : (
        <ul class="cards">
          {tasks.map((t) => (
            <li key={t.id} class="card">
              <a href={`#/tasks/${encodeURIComponent(t.id)}`} class="title">{t.id}</a>
              <span class={`state ${t.endedAt > 0n ? 'ended' : 'active'}`}>{t.endedAt > 0n ? 'ended' : 'running'}</span>
              <p class="goal">{t.goal}</p>
              <p class="muted">{t.principal} · started {when(t.createdAt)} · ends {when(t.expiresAt)}</p>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
