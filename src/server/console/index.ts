/**
 * The web console's routes for the issuer's HTTPS listener, from the server core and the
 * `console:` settings; undefined when the console is off or no principal issuer is configured.
 */
import { sectionSettings } from '../../config/config.js';
import type { PrincipalIssuerSettings, Principal } from '../../principal/oidc.js';
import { principalsSection } from '../../principal/settings.js';
import type { ServerCore } from '../core.js';
import type { HttpRoute } from '../http/router.js';
import { OidcLogin } from './oidc-login.js';
import { consoleRoutes } from './routes.js';
import { ConsoleSessions } from './sessions.js';
import { consoleSection, type ConsoleSettings } from './settings.js';
import { loadConsoleFiles, packageVersion } from './static.js';

export { CONSOLE_CSP, CONSOLE_PATH, CONSOLE_RPC_PREFIX } from './routes.js';
export { SESSION_COOKIE } from './sessions.js';

/** Operators: named by `iss#sub`, or by a group of their ID token. */
export function operatorCheck(s: Pick<ConsoleSettings, 'operatorSubjects' | 'operatorGroups'>): (p: Principal) => boolean {
  const subjects = new Set(s.operatorSubjects);
  const groups = new Set(s.operatorGroups);
  return (p) => subjects.has(`${p.iss}#${p.sub}`) || p.groups.some((g) => groups.has(g));
}

export function webConsole(core: ServerCore, url: () => string): { routes: HttpRoute[]; sessions: ConsoleSessions } | undefined {
  const settings = sectionSettings<ConsoleSettings>(core.settings, consoleSection.key);
  const principals = sectionSettings<PrincipalIssuerSettings[]>(core.settings, principalsSection.key);
  if (!settings.enabled || principals.length === 0) return undefined;
  const idp = settings.issuer ? principals.find((p) => p.issuer === settings.issuer) : principals[0];
  if (!idp) throw new Error(`console: console.issuer ${settings.issuer} is not one of principals[].issuer`);
  const now = () => core.clock.now().getTime();
  const sessions = new ConsoleSessions(settings.sessionTtlMs, now);
  const login = new OidcLogin(
    {
      issuer: idp.issuer,
      clientId: settings.clientId ?? idp.audience,
      ...(settings.clientSecret ? { clientSecret: settings.clientSecret } : {}),
      redirectUri: () => `${url()}/console/callback`,
    },
    { principals: core.principals, now },
  );
  const routes = consoleRoutes({
    files: loadConsoleFiles(),
    login,
    sessions,
    origin: () => new URL(url()).origin,
    isOperator: operatorCheck(settings),
    store: core.store,
    ca: core.ca,
    audit: core.audit,
    revocations: core.revocations,
    approvals: core.approvals,
    logger: core.logger,
    now,
    version: packageVersion(),
    datastore: core.settings.datastore.type,
  });
  return { routes, sessions };
}
