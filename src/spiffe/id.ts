/**
 * SPIFFE IDs and trust domains (SPIFFE-ID spec, §2). Pure: no I/O.
 * Error strings follow go-spiffe's `spiffeid` package so conformance vectors classify alike.
 */
import { SpiffeIdError } from '../errors.js';

const SCHEME_PREFIX = 'spiffe://';
/** SPIFFE-ID §2.3: URIs longer than 2048 bytes are not interoperable. */
export const MAX_SPIFFE_ID_BYTES = 2048;
/** SPIFFE-ID §2.1: a trust domain name is at most 255 bytes. */
export const MAX_TRUST_DOMAIN_BYTES = 255;

export interface TrustDomain {
  readonly name: string;
}

export interface SpiffeId {
  readonly trustDomain: string;
  /** Empty, or starts with '/'. */
  readonly path: string;
  /** The canonical string form: spiffe://<trustDomain><path>. */
  readonly uri: string;
}

const err = {
  empty: 'cannot be empty',
  scheme: 'scheme is missing or invalid',
  tdChar: 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
  tdMissing: 'trust domain is missing',
  pathChar: 'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
  noLeadingSlash: 'path must have a leading slash',
  emptySegment: 'path cannot contain empty segments',
  dotSegment: 'path cannot contain dot segments',
  trailingSlash: 'path cannot have a trailing slash',
  tooLong: `spiffe id is longer than ${MAX_SPIFFE_ID_BYTES} bytes`,
  tdTooLong: `trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`,
};

function isTrustDomainChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x5f;
}

function isPathChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x5f;
}

/** Validates a SPIFFE ID path ('' or '/seg/seg'). Throws SpiffeIdError. */
export function validatePath(path: string): void {
  if (path === '') return;
  if (path.charCodeAt(0) !== 0x2f) throw new SpiffeIdError(err.noLeadingSlash);
  let segStart = 0;
  let i = 0;
  for (; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 0x2f) {
      checkSegment(path.slice(segStart, i), false);
      segStart = i;
      continue;
    }
    if (!isPathChar(c)) throw new SpiffeIdError(err.pathChar);
  }
  checkSegment(path.slice(segStart, i), true);
}

function checkSegment(seg: string, last: boolean): void {
  if (seg === '/') throw new SpiffeIdError(last ? err.trailingSlash : err.emptySegment);
  if (seg === '/.' || seg === '/..') throw new SpiffeIdError(err.dotSegment);
}

/** Parses a trust domain name (no scheme): lowercase letters, digits, '.', '-', '_'. */
export function parseTrustDomain(name: string): TrustDomain {
  if (name === '') throw new SpiffeIdError(err.tdMissing);
  if (Buffer.byteLength(name) > MAX_TRUST_DOMAIN_BYTES) throw new SpiffeIdError(err.tdTooLong);
  for (let i = 0; i < name.length; i++) {
    if (!isTrustDomainChar(name.charCodeAt(i))) throw new SpiffeIdError(err.tdChar);
  }
  return { name };
}

/**
 * Parses a SPIFFE ID (SPIFFE-ID §2): scheme `spiffe`, a trust domain, an optional path of
 * non-empty, non-dot segments; no port, userinfo, query, fragment or percent-encoding.
 * UNTRUSTED input: every character is checked.
 */
export function parseSpiffeId(id: string): SpiffeId {
  if (id === '') throw new SpiffeIdError(err.empty);
  if (!id.startsWith(SCHEME_PREFIX)) throw new SpiffeIdError(err.scheme);
  if (Buffer.byteLength(id) > MAX_SPIFFE_ID_BYTES) throw new SpiffeIdError(err.tooLong);
  const rest = id.slice(SCHEME_PREFIX.length);
  let i = 0;
  for (; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c === 0x2f) break;
    if (!isTrustDomainChar(c)) throw new SpiffeIdError(err.tdChar);
  }
  if (i === 0) throw new SpiffeIdError(err.tdMissing);
  const trustDomain = rest.slice(0, i);
  if (trustDomain.length > MAX_TRUST_DOMAIN_BYTES) throw new SpiffeIdError(err.tdTooLong);
  const path = rest.slice(i);
  validatePath(path);
  return { trustDomain, path, uri: id };
}

/** Builds a SPIFFE ID from a trust domain and a path, validating both. */
export function spiffeIdFromParts(trustDomain: string, path: string): SpiffeId {
  parseTrustDomain(trustDomain);
  validatePath(path);
  return parseSpiffeId(`${SCHEME_PREFIX}${trustDomain}${path}`);
}

/** The SPIFFE ID of a trust domain itself (no path), used by signing certificates. */
export function trustDomainId(trustDomain: string): string {
  return `${SCHEME_PREFIX}${parseTrustDomain(trustDomain).name}`;
}
