/**
 * The issuer's HTTPS listener (node:https): TLS 1.2+ with the issuer's serving certificate,
 * replaced on renewal (`setSecureContext`, new connections at once), a route table
 * (router.ts), and strict request handling: GET and HEAD only, where a route is defined (404
 * elsewhere, 405 for another method); requests carry no body (413); bounded target, headers
 * and time; no directory listing (nothing is served from files); security headers on every
 * reply. A route with its own `node` handler (the console's Connect calls) takes POST and reads
 * its bounded body itself. UNTRUSTED input (the whole request) enters here.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { RateLimiter } from '../rate-limit.js';
import { matchRoute, textReply, type HttpReply, type HttpRoute } from './router.js';

/** Longest request target (path and query), bytes: status list and bundle paths are short. */
export const MAX_URL_BYTES = 2048;
/** Largest request head (Node answers 431 past it). */
export const MAX_HEADER_BYTES = 8 * 1024;
/** Time to receive a request's headers, and the whole request. */
export const HEADERS_TIMEOUT_MS = 5_000;
export const REQUEST_TIMEOUT_MS = 10_000;
/** How often request and header timeouts are enforced. */
export const TIMEOUT_CHECK_MS = 1_000;
/** TLS handshake time, and idle time of a kept-alive connection. */
export const HANDSHAKE_TIMEOUT_MS = 5_000;
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** A socket with no traffic for this long is closed. */
export const IDLE_SOCKET_TIMEOUT_MS = 30_000;
/** Requests on one connection before it is closed (spreads load across replicas). */
export const MAX_REQUESTS_PER_SOCKET = 1000;
/** Open connections at once; beyond it new ones are refused. */
export const MAX_HTTP_CONNECTIONS = 10_000;

/** Mozilla "intermediate" TLS configuration (SPIFFE Federation §5 asks bundle endpoints for it). */
const TLS_OPTIONS: SecureContextOptions = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
};

/** On every reply: nothing here is a page to frame, sniff or leak a referrer from. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'strict-transport-security': 'max-age=31536000',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
};

export interface HttpsListenerDeps {
  readonly routes: readonly HttpRoute[];
  readonly logger: Logger;
  /** Requests one peer address may make (429 past it). */
  readonly limiter?: RateLimiter;
}

export class HttpsListener {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private tlsSet = false;
  /** The bound port (0 until `listen`). */
  port = 0;

  constructor(private readonly deps: HttpsListenerDeps) {
    this.server = createServer(
      {
        ...TLS_OPTIONS,
        maxHeaderSize: MAX_HEADER_BYTES,
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        requestTimeout: REQUEST_TIMEOUT_MS,
        headersTimeout: HEADERS_TIMEOUT_MS,
        // How often the two timeouts above are enforced (Node's default is 30 s).
        connectionsCheckingInterval: TIMEOUT_CHECK_MS,
      },
      (req, res) => void this.handle(req, res),
    );
    this.server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    this.server.maxRequestsPerSocket = MAX_REQUESTS_PER_SOCKET;
    this.server.maxConnections = MAX_HTTP_CONNECTIONS;
    this.server.setTimeout(IDLE_SOCKET_TIMEOUT_MS, (s: Socket) => s.destroy());
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    this.server.on('tlsClientError', (e: Error) => this.deps.logger.debug({ err: e.message }, 'https: TLS handshake failed'));
  }

  /** The serving certificate and key (server/serving-cert.ts calls it on every renewal). */
  update(next: SecureContextOptions): void {
    this.server.setSecureContext({ ...TLS_OPTIONS, ...next });
    this.tlsSet = true;
  }

  /** Binds host:port (port 0: the system chooses); resolves with the bound port. */
  async listen(host: string, port: number): Promise<number> {
    if (!this.tlsSet) throw new Error('https: no serving certificate yet');
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : port;
    return this.port;
  }

  /** Stops accepting, lets requests in flight finish for `graceMs`, then closes what is left. */
  async close(graceMs = 5000): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const t = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, graceMs);
    t.unref();
    await closed;
    clearTimeout(t);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const peer = req.socket.remoteAddress ?? '';
    const head = req.method === 'HEAD';
    // A request with a body is answered and its connection closed: the body is never read.
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
    const send = (r: HttpReply) => this.send(res, r, head, hasBody);
    try {
      const target = req.url ?? '';
      if (Buffer.byteLength(target) > MAX_URL_BYTES) return send(textReply(414, `request target longer than ${MAX_URL_BYTES} bytes`));
      if (!target.startsWith('/')) return send(textReply(400, 'the request target must be a path'));
      const q = target.indexOf('?');
      const path = q < 0 ? target : target.slice(0, q);
      const m = matchRoute(this.deps.routes, path);
      if (!m) return send(textReply(404, 'not found'));
      if (m.route.node && req.method !== 'GET' && req.method !== 'HEAD') {
        if (this.deps.limiter && !this.deps.limiter.take(peer)) return send(textReply(429, 'too many requests', { 'retry-after': '1' }));
        for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
        return await m.route.node(req, res);
      }
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return send(textReply(405, `${String(req.method).slice(0, 16)} is not allowed here`, { allow: 'GET, HEAD' }));
      if (hasBody) return send(textReply(413, 'requests to this listener carry no body'));
      if (this.deps.limiter && !this.deps.limiter.take(peer)) return send(textReply(429, 'too many requests', { 'retry-after': '1' }));
      send(await m.route.get({ path, param: m.param, query: q < 0 ? '' : target.slice(q + 1), headers: req.headers, peer }));
    } catch (e) {
      this.deps.logger.error({ err: e, path: (req.url ?? '').slice(0, 200), peer }, 'https: request failed');
      if (!res.headersSent) send(textReply(500, 'internal error'));
      else res.destroy();
    }
  }

  private send(res: ServerResponse, r: HttpReply, head: boolean, close: boolean): void {
    const body = r.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body, 'utf8');
    res.writeHead(r.status, {
      ...SECURITY_HEADERS,
      ...r.headers,
      ...(r.status === 304 ? {} : { 'content-length': String(body.length) }),
      ...(close ? { connection: 'close' } : {}),
    });
    res.end(head || r.status === 304 ? undefined : body);
  }
}
