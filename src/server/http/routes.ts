/**
 * What the issuer's HTTPS listener serves, one route each:
 * - `GET /status/<id>`: the Token Status List token of list `<id>` (draft-ietf-oauth-status-list
 *   §8: `application/statuslist+jwt`, `Accept` honoured, cacheable for its `ttl`);
 * - `GET /.well-known/spiffe-bundle`: the trust bundle as a SPIFFE bundle (JWKS), the endpoint of
 *   the SPIFFE Federation `https_spiffe` profile (§5.2.2: the server presents an X509-SVID,
 *   `spiffe://<td>/writ/server`; the path is the operator's choice).
 */
import type { CaManager } from '../../ca/manager.js';
import { STATUS_LIST_MEDIA_TYPE, STATUS_LIST_PATH_PREFIX, type StatusListPublisher } from '../../issuance/status-list-publisher.js';
import { bundleDocuments } from '../bundle-documents.js';
import { accepts, textReply, type HttpRoute } from './router.js';

/** Where the SPIFFE bundle endpoint is served. */
export const BUNDLE_ENDPOINT_PATH = '/.well-known/spiffe-bundle';
/** Largest list id in a path (list ids count up from 1). */
const MAX_LIST_ID = 2 ** 31 - 1;

/** Anyone may read these documents, from any origin (the draft's §8 asks status list providers for CORS). */
const PUBLIC = { 'access-control-allow-origin': '*' };

/** True when an `If-None-Match` header names `etag` (or `*`). */
function notModified(header: string | string[] | undefined, etag: string): boolean {
  if (typeof header !== 'string') return false;
  return header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}

export function statusListRoute(publisher: Pick<StatusListPublisher, 'get'>): HttpRoute {
  return {
    path: STATUS_LIST_PATH_PREFIX,
    prefix: true,
    summary: 'Token Status Lists (application/statuslist+jwt)',
    async get(req) {
      // Canonical decimal only: `/status/01` is not list 1 (the URI a writ names is compared exactly).
      if (!/^[1-9][0-9]{0,9}$/.test(req.param) || Number(req.param) > MAX_LIST_ID) return textReply(404, 'no such status list');
      if (!accepts(req.headers.accept, STATUS_LIST_MEDIA_TYPE)) return textReply(406, `this resource is ${STATUS_LIST_MEDIA_TYPE}`);
      const p = await publisher.get(Number(req.param));
      if (!p) return textReply(404, 'no such status list');
      const headers = { ...PUBLIC, 'cache-control': `max-age=${p.ttl}`, etag: p.etag, vary: 'accept' };
      if (notModified(req.headers['if-none-match'], p.etag)) return { status: 304, headers };
      return { status: 200, headers: { ...headers, 'content-type': STATUS_LIST_MEDIA_TYPE }, body: p.token };
    },
  };
}

export function bundleRoute(ca: Pick<CaManager, 'bundle'>): HttpRoute {
  return {
    path: BUNDLE_ENDPOINT_PATH,
    summary: 'SPIFFE bundle endpoint (https_spiffe, JWKS)',
    get() {
      const jwks = bundleDocuments(ca.bundle()).jwks;
      return { status: 200, headers: { ...PUBLIC, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-cache' }, body: jwks };
    },
  };
}

/** The issuer's route table. */
export function issuerRoutes(d: { publisher: Pick<StatusListPublisher, 'get'>; ca: Pick<CaManager, 'bundle'> }): HttpRoute[] {
  return [statusListRoute(d.publisher), bundleRoute(d.ca)];
}
