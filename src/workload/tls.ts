/**
 * mTLS between workloads with SPIFFE ID authorization (go-spiffe's tlsconfig): the peer's chain
 * verifies to the source's bundle (OpenSSL, `rejectUnauthorized`) and again to the SPIFFE
 * X.509-SVID profile (svid/x509-svid.ts: exactly one URI SAN, a SPIFFE ID, leaf not a CA, now);
 * the authorizer then decides on that ID, compared exactly. Host names are never used.
 * Fail closed: every option builder throws when the source has no current SVID; a server refuses
 * connections while the source has none, and takes each rotation for new connections.
 */
import { X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import { SvidError } from '../errors.js';
import { BundleSet } from '../spiffe/bundle.js';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../spiffe/id.js';
import { verifyX509Svid } from '../svid/x509-svid.js';
import { MAX_CHAIN_LENGTH } from '../x509/path.js';
import type { X509Source } from './source.js';

/** Returns undefined to allow, or why the peer is refused. */
export type Authorizer = (id: SpiffeId) => string | undefined;

export const authorizeID = (expected: string): Authorizer => {
  const want = parseSpiffeId(expected).uri;
  return (id) => (id.uri === want ? undefined : `unexpected ID ${JSON.stringify(id.uri)}`);
};
export const authorizeOneOf = (...expected: string[]): Authorizer => {
  const want = new Set(expected.map((e) => parseSpiffeId(e).uri));
  return (id) => (want.has(id.uri) ? undefined : `unexpected ID ${JSON.stringify(id.uri)}`);
};
export const authorizeMemberOf = (trustDomain: string): Authorizer => {
  const td = parseTrustDomain(trustDomain.replace(/^spiffe:\/\//, '')).name;
  return (id) => (id.trustDomain === td ? undefined : `unexpected trust domain ${JSON.stringify(id.trustDomain)}`);
};
export const authorizeAny = (): Authorizer => () => undefined;

/** The peer's chain as presented (leaf first), DER, bounded. */
function peerChain(cert: tls.PeerCertificate | tls.DetailedPeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  let c: tls.DetailedPeerCertificate | undefined = cert as tls.DetailedPeerCertificate;
  const seen = new Set<unknown>();
  while (c?.raw && !seen.has(c)) {
    seen.add(c);
    out.push(c.raw);
    if (out.length > MAX_CHAIN_LENGTH) break;
    c = c.issuerCertificate;
  }
  return out;
}

/** The peer's SPIFFE ID, verified to `source`'s bundle now, then authorized; throws SvidError. */
export function authorizePeer(source: X509Source, chain: readonly Buffer[], authorize: Authorizer, at = new Date(source.clock())): SpiffeId {
  if (chain.length === 0) throw new SvidError('ERR_X509_SVID_INVALID', 'workload: the peer presented no certificate');
  const { id } = verifyX509Svid(chain, new BundleSet([source.bundle()]), at);
  const problem = authorize(id);
  if (problem) throw new SvidError('ERR_X509_SVID_INVALID', `workload: peer refused: ${problem}`);
  return id;
}

const pem = (der: Buffer) => new X509Certificate(der).toString();

/** Key, chain and CA of the current SVID; throws when the source has none. */
function material(source: X509Source): { key: string; cert: string; ca: string[] } {
  const svid = source.svid();
  const bundle = source.bundle();
  return {
    key: svid.key.export({ format: 'pem', type: 'pkcs8' }) as string,
    cert: svid.chain.map(pem).join(''),
    ca: bundle.x509Authorities.map(pem),
  };
}

/** A secure context of the current SVID (throws when there is none). */
export function secureContext(source: X509Source): tls.SecureContext {
  return tls.createSecureContext({ ...material(source), minVersion: 'TLSv1.3' });
}

/** `tls.connect` / `https.request` options: present our SVID, accept only a server `authorize` allows. */
export function tlsClientOptions(source: X509Source, authorize: Authorizer): tls.ConnectionOptions {
  return {
    ...material(source),
    minVersion: 'TLSv1.3',
    rejectUnauthorized: true,
    // Called after OpenSSL verified the chain to `ca`: the SPIFFE profile and the ID, never the host name.
    checkServerIdentity: (_host, cert) => {
      try {
        authorizePeer(source, peerChain(cert), authorize);
        return undefined;
      } catch (e) {
        return e as Error;
      }
    },
  };
}

/**
 * A TLS server presenting the current SVID and requiring a client SVID `authorize` allows. The
 * context follows every update; `onConnection` only sees authorized sockets (others are destroyed
 * before any byte is read). Node has no in-handshake hook for a client certificate, so a refused
 * client completes the handshake and is then disconnected.
 */
export function tlsServer(source: X509Source, authorize: Authorizer, onConnection: (s: tls.TLSSocket, peer: SpiffeId) => void): tls.Server {
  const server = tls.createServer({ ...material(source), minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true });
  const off = source.onUpdate((s) => {
    if (s.state === 'serving') server.setSecureContext({ ...material(source), minVersion: 'TLSv1.3' });
  });
  server.on('close', off);
  server.on('secureConnection', (socket) => {
    let peer: SpiffeId;
    try {
      peer = authorizePeer(source, peerChain(socket.getPeerCertificate(true)), authorize);
    } catch (e) {
      socket.destroy(e as Error);
      return;
    }
    onConnection(socket, peer);
  });
  server.on('tlsClientError', () => {});
  return server;
}
