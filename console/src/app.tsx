/**
 * The console shell: the session (GetSession), a skip link, the navigation and the page the
 * location hash names (#/overview, #/approvals, #/tasks, #/tasks/<id>, #/audit, #/passkeys). Signed out, one link starts
 * the OpenID Connect sign-in (/console/login, a full-page navigation the issuer answers).
 */
import { useEffect, useState } from 'preact/hooks';
import type { GetSessionResponse } from '../../src/gen/writ/v1/console_pb';
import { client, describe } from './client';
import { ApprovalsPage } from './pages/approvals';
import { AuditPage } from './pages/audit';
import { OverviewPage } from './pages/overview';
import { PasskeysPage } from './pages/passkeys';
import { TasksPage } from './pages/tasks';
import { TreePage } from './pages/tree';

const route = () => location.hash.replace(/^#/, '') || '/tasks';

export function App() {
  const [session, setSession] = useState<GetSessionResponse | null | undefined>(undefined);
  const [error, setError] = useState('');
  const [path, setPath] = useState(route());

  useEffect(() => {
    const on = () => setPath(route());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  useEffect(() => {
    client.getSession({}).then(setSession, (e) => {
      const d = describe(e);
      if (!d.signedOut) setError(d.message);
      setSession(null);
    });
  }, []);

  const signOut = async () => {
    try {
      await client.signOut({});
    } finally {
      setSession(null);
      location.hash = '';
    }
  };

  if (session === undefined) return <main class="center" aria-busy="true"><p>Loading…</p></main>;
  if (session === null)
    return (
      <main id="main" class="center signin">
        <h1>writ console</h1>
        <p>Approvals, delegation trees, revocation and the audit log of this issuer.</p>
        {error && <p role="alert" class="error">{error}</p>}
        <p><a class="button primary" href="/console/login">Sign in</a></p>
        <p class="muted">You sign in with the OpenID Connect provider this issuer trusts for principals.</p>
      </main>
    );

  const onSignedOut = () => setSession(null);
  const [, top, arg] = path.split('/');
  const page =
    top === 'overview' ? <OverviewPage operator={session.operator} onSignedOut={onSignedOut} /> :
    top === 'approvals' ? <ApprovalsPage onSignedOut={onSignedOut} /> :
    top === 'passkeys' ? <PasskeysPage onSignedOut={onSignedOut} /> :
    top === 'audit' ? <AuditPage operator={session.operator} onSignedOut={onSignedOut} /> :
    top === 'tasks' && arg ? <TreePage taskId={decodeURIComponent(arg)} operator={session.operator} onSignedOut={onSignedOut} /> :
    <TasksPage onSignedOut={onSignedOut} />;
  const link = (href: string, label: string, active: boolean) => (
    <a href={href} aria-current={active ? 'page' : undefined}>{label}</a>
  );
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
      <header class="bar">
        <span class="brand">writ</span>
        <nav aria-label="Console">
          {session.operator && link('#/overview', 'Overview', top === 'overview')}
          {link('#/approvals', 'Approvals', top === 'approvals')}
          {link('#/tasks', 'Tasks', top === 'tasks' || top === '')}
          {link('#/audit', 'Audit', top === 'audit')}
          {link('#/passkeys', 'Passkeys', top === 'passkeys')}
        </nav>
        <span class="who" title={`${session.issuer}#${session.subject}`}>
          {session.subject}{session.operator && <span class="badge">operator</span>}
        </span>
        <button type="button" onClick={signOut}>Sign out</button>
      </header>
      <main id="main" tabIndex={-1}>{page}</main>
    </>
  );
}
