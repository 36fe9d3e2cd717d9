/**
 * One task as its delegation tree: the principal, then every agent and sub-agent (SPIFFE ID,
 * evidence, key, scope, boundaries, the escalations it asked for and their approvals, state), each with the revocations the signed-in human may
 * ask for. Polled every POLL_MS while the tab is visible, so a revocation, a spawn or a renewal
 * shows within a second. The time from opening the page to the first full render is kept in
 * `data-render-ms` (the console bench reads it).
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { GetTaskTreeResponse } from '../../../src/gen/writ/v1/console_pb';
import { client, describe } from '../client';
import { short, when } from '../format';
import { buildTree, type TreeNode } from '../tree';
import { RevokeDialog, type RevokeTarget } from './revoke-dialog';

export const POLL_MS = 500;

function Node(p: { n: TreeNode; operator: boolean; revoke: (t: RevokeTarget) => void }) {
  const { n } = p;
  const w = n.writ;
  const live = n.state === 'active';
  return (
    <li role="treeitem" aria-expanded={n.children.length ? true : undefined} aria-label={`${w.spiffeId}, ${n.state}`} class={`node ${n.state}`} data-jti={w.jti} data-state={n.state}>
      <div class="node-body">
        <div class="node-head">
          <span class="spiffe mono">{w.spiffeId}</span>
          <span class={`state ${n.state}`}>{n.state}</span>
        </div>
        <dl class="kv">
          <dt>evidence</dt><dd>{w.evidenceType}{w.platform && <> · <span class="mono">{short(w.platform, 28)}</span></>}</dd>
          <dt>key</dt><dd class="mono">{short(w.jkt, 16)}</dd>
          <dt>scope</dt><dd>{n.grant?.scope.join(', ') || '—'}</dd>
          {n.grant && n.grant.boundaries.length > 0 && <><dt>boundaries</dt><dd>{n.grant.boundaries.join(', ')}</dd></>}
          {n.approvals.length > 0 && (
            <>
              <dt>approvals</dt>
              <dd>
                <ul class="approvals">
                  {n.approvals.map((a) => (
                    <li key={a.id} data-approval-state={a.state}>
                      <span class="mono">{a.permission}</span> <span class={`state ${a.state === 'approved' ? 'active' : a.state === 'pending' ? 'prepared' : 'revoked'}`}>{a.state}</span>
                      {a.decidedBy && <span class="muted"> by {a.decidedBy}</span>}
                    </li>
                  ))}
                </ul>
              </dd>
            </>
          )}
          <dt>writ</dt><dd><span class="mono">{short(w.jti, 12)}</span> · until {when(w.expiresAt)}</dd>
        </dl>
        {live && (
          <div class="node-actions">
            {n.grant && <button type="button" onClick={() => p.revoke({ kind: 'grant', target: n.grant!.jti, what: `the grant this agent holds and everything delegated under it` })}>Revoke grant</button>}
            {p.operator && <button type="button" onClick={() => p.revoke({ kind: 'agent', target: w.spiffeId, what: `every writ of ${w.spiffeId}` })}>Revoke agent</button>}
            {p.operator && w.platform && <button type="button" onClick={() => p.revoke({ kind: 'platform', target: w.platform, what: `every agent attested on the platform ${w.platform}` })}>Revoke platform</button>}
          </div>
        )}
      </div>
      {n.children.length > 0 && (
        <ul role="group">
          {n.children.map((c) => <Node key={c.writ.jti} n={c} operator={p.operator} revoke={p.revoke} />)}
        </ul>
      )}
    </li>
  );
}

export function TreePage(p: { taskId: string; operator: boolean; onSignedOut: () => void }) {
  const [data, setData] = useState<GetTaskTreeResponse>();
  const [error, setError] = useState('');
  const [target, setTarget] = useState<RevokeTarget>();
  const started = useRef(performance.now());
  const fetched = useRef(0);
  const rendered = useRef<HTMLDivElement>(null);
  const load = () =>
    client.getTaskTree({ taskId: p.taskId }).then(
      (r) => {
        if (!fetched.current) fetched.current = performance.now() - started.current;
        setData(r);
        setError('');
      },
      (e) => {
        const d = describe(e);
        if (d.signedOut) p.onSignedOut();
        setError(d.message);
      },
    );
  useEffect(() => {
    started.current = performance.now();
    fetched.current = 0;
    void load();
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') void load();
    }, POLL_MS);
    return () => clearInterval(t);
  }, [p.taskId]);
  const tree = useMemo(() => (data ? buildTree(data) : undefined), [data]);
  useEffect(() => {
    const el = rendered.current;
    if (tree && el && !el.dataset.renderMs) {
      el.dataset.fetchMs = String(Math.round(fetched.current));
      el.dataset.renderMs = String(Math.round(performance.now() - started.current));
    }
  }, [tree]);

  if (error && !data) return <p role="alert" class="error">{error}</p>;
  if (!data || !tree) return <p aria-busy="true">Loading…</p>;
  const t = data.task!;
  const ended = t.endedAt > 0n;
  return (
    <section aria-labelledby="tt">
      <p><a href="#/tasks">← Tasks</a></p>
      <div class="task-head">
        <h1 id="tt">Task <span class="mono">{t.id}</span></h1>
        <span class={`state ${ended ? 'ended' : 'active'}`} data-task-state={ended ? 'ended' : 'running'}>{ended ? 'ended' : 'running'}</span>
        {!ended && <button type="button" class="danger" onClick={() => setTarget({ kind: 'task', target: t.id, what: `the task ${t.id} and every credential in it` })}>Revoke task</button>}
      </div>
      <p class="goal">{t.goal}</p>
      {ended && <p class="muted">Ended {when(t.endedAt)} by {t.endedBy}: {t.endReason}</p>}
      {error && <p role="alert" class="error">{error}</p>}
      {data.truncated && <p class="warn">This task has more credentials than one tree shows.</p>}
      <div ref={rendered} class="tree" data-count={tree.count}>
        <ul role="tree" aria-label={`Delegation tree of ${t.id}`}>
          <li role="treeitem" aria-expanded="true" class="node principal">
            <div class="node-body"><div class="node-head"><span>principal</span> <span class="mono">{t.principal}</span></div></div>
            <ul role="group">
              {tree.roots.map((n) => <Node key={n.writ.jti} n={n} operator={p.operator} revoke={setTarget} />)}
            </ul>
          </li>
        </ul>
        {tree.count === 0 && <p class="muted">No agent holds a writ of this task yet.</p>}
      </div>
      <RevokeDialog target={target} onClose={(done) => { setTarget(undefined); if (done) void load(); }} />
    </section>
  );
}
