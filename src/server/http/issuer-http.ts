/**
 * The HTTPS listener of `writ server`, when `http_listen` is set: the status list publisher
 * (told of every committed revocation), the route table, a per-peer request budget, and the
 * public URL writs name once the port is bound; the web console's routes when it is on.
 */
import { sectionSettings, type ServerSettings } from '../../config/config.js';
import { StatusListPublisher, statusListSection, type StatusListSettings, type StatusListUris } from '../../issuance/status-list-publisher.js';
import type { ServerCore } from '../core.js';
import { PeerRateLimiter } from '../rate-limit.js';
import { HttpsListener } from './listener.js';
import { issuerRoutes } from './routes.js';
import { webConsole } from '../console/index.js';

const hostPort = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

export class IssuerHttp {
  readonly publisher: StatusListPublisher;
  readonly listener: HttpsListener;
  /** The base URL relying parties use (known after `listen`). */
  url = '';
  /** Whether the web console is served (`/console/`). */
  readonly console: boolean;

  constructor(
    private readonly core: ServerCore,
    private readonly uris: StatusListUris,
  ) {
    const settings = core.settings;
    this.publisher = new StatusListPublisher({
      store: core.store,
      ca: core.ca,
      clock: core.clock,
      uris,
      settings: sectionSettings<StatusListSettings>(settings, statusListSection.key),
    });
    core.revocations.listen(this.publisher);
    const { attestationsPerSecond: rate, attestationBurst: burst } = settings.limits;
    const ui = webConsole(core, () => this.url);
    this.console = ui !== undefined;
    this.listener = new HttpsListener({
      routes: [...issuerRoutes({ publisher: this.publisher, ca: core.ca }), ...(ui?.routes ?? [])],
      logger: core.logger,
      limiter: new PeerRateLimiter(rate, burst),
    });
  }

  /** Binds `http_listen`; from then on writs name `<public url>/status/<id>`. */
  async listen(listen: NonNullable<ServerSettings['httpListen']>): Promise<number> {
    const port = await this.listener.listen(listen.host, listen.port);
    this.url = this.core.settings.httpPublicUrl ?? `https://${hostPort(listen.host, port)}`;
    this.uris.bind(this.url);
    return port;
  }
}
