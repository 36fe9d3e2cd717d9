/**
 * The sidecar's side of the spawn handshake over gRPC: TLS to the issuer checked against the
 * trust bundle and the issuer's SPIFFE ID (not a host name), hello with the agent key,
 * evidence for each challenge, and the issued SVIDs.
 */
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import type { KeyObject } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { signKeyProof } from '../attestation/key-proof.js';
import { parseHostPort } from '../config/config.js';
import { UsageError } from '../config/options.js';
import { keySigner, type JwsSigner } from '../jose/jws.js';
import { AttestRequestSchema, AttestationService, type AttestRequest, type AttestResponse } from '../gen/writ/v1/attestation_pb.js';
import { grpcClientConstructor } from '../rpc/grpc-adapter.js';
import { decodePem } from '../der/pem.js';
import { parseCertificate } from '../x509/certificate.js';
import { parseSpiffeId } from '../spiffe/id.js';

/** The issuer's SPIFFE ID path; must match server/server.ts. */
const ISSUER_ID_PATH = '/writ/server';

export interface AttestOptions {
  /** host:port of the issuer's public port. */
  readonly server: string;
  /** The issuer's trust bundle, PEM (X.509 authorities). */
  readonly bundlePem: string;
  readonly evidenceType: string;
  /**
   * The agent key: a private key in this process, or a signer whose key lives elsewhere (a
   * TPM). The hello names its public key and the first evidence carries its key proof
   * (attestation/key-proof.ts).
   */
  readonly key: KeyObject | JwsSigner;
  /** Answers each challenge with evidence. */
  readonly respond: (challenge: { nonce: Uint8Array; payload: Uint8Array }) => Promise<Buffer> | Buffer;
  readonly jwtAudiences?: readonly string[];
  /** Grant chain, root first; with it the result carries a writ. */
  readonly grants?: readonly string[];
  readonly writAudiences?: readonly string[];
  /** Step-up grants (approvals within the task) for the writ to carry; with grants only. */
  readonly stepUps?: readonly string[];
  readonly timeoutMs?: number;
}

export interface AttestOutcome {
  readonly spiffeId: string;
  readonly svidChain: Buffer[];
  readonly bundleJwks: string;
  readonly bundlePem: string;
  readonly jwtSvids: Array<{ audience: string; token: string }>;
  /** The writ, when grants were sent. */
  readonly writ?: string;
  /** The registration entry the identity was issued under, and the attested selectors (`type:value`); absent from an issuer older than these fields. */
  readonly entryId?: string;
  readonly selectors?: readonly string[];
}

/** The trust domain the bundle's first root names in its URI SAN. */
export function bundleTrustDomain(bundlePem: string): string {
  const certs = decodePem(bundlePem).filter((b) => b.label === 'CERTIFICATE');
  for (const c of certs) {
    const uri = parseCertificate(c.der).uris[0];
    if (uri) return parseSpiffeId(uri).trustDomain;
  }
  throw new Error('bundle: no certificate in the bundle names a SPIFFE trust domain');
}

/** TLS channel credentials that accept only the issuer's SVID under `bundlePem`. */
export function issuerChannelCredentials(bundlePem: string): grpc.ChannelCredentials {
  const expected = `URI:spiffe://${bundleTrustDomain(bundlePem)}${ISSUER_ID_PATH}`;
  return grpc.credentials.createSsl(Buffer.from(bundlePem), null, null, {
    // The chain was already verified against the bundle; the name to check is the SPIFFE ID.
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const sans = (cert.subjectaltname ?? '').split(', ');
      return sans.includes(expected) ? undefined : new Error(`issuer presented ${cert.subjectaltname ?? 'no SAN'}, expected ${expected}`);
    },
  });
}

export class GrpcCallError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly writCode?: string,
  ) {
    super(details);
    this.name = 'GrpcCallError';
  }
}

export function asCallError(e: grpc.ServiceError): GrpcCallError {
  const wc = e.metadata?.get('writ-error-code')[0];
  return new GrpcCallError(e.code, e.details || e.message, typeof wc === 'string' ? wc : undefined);
}

/** Why grpc-js could not reach a server, in words (its own text carries resolver and connection internals). */
export function unreachableReason(details: string): string {
  if (/ECONNREFUSED/.test(details)) return 'connection refused (is `writ server` listening there?)';
  if (/ENOTFOUND|EAI_AGAIN|Name resolution failed|DNS resolution failed/i.test(details)) return 'unknown host';
  if (/EHOSTUNREACH|ENETUNREACH/.test(details)) return 'host unreachable';
  if (/ETIMEDOUT|Deadline exceeded|DEADLINE_EXCEEDED/i.test(details)) return 'timed out';
  if (/certificate|SSL|TLS|handshake|issuer presented/i.test(details))
    return 'TLS handshake failed: the server there is not the writ issuer of this bundle (wrong port, or another trust domain)';
  return details.split(/\. Resolution note|\. Last error/)[0]!.slice(0, 200);
}

/** A call failure as the CLI shows it: unreachable issuers in words, everything else as the issuer said. */
export function issuerCallError(server: string, e: grpc.ServiceError): GrpcCallError {
  if (e.code === grpc.status.UNAVAILABLE && !e.metadata?.get('writ-error-code').length) {
    return new GrpcCallError(e.code, `cannot reach the issuer at ${server}: ${unreachableReason(e.details || e.message)}`);
  }
  if (e.code === grpc.status.DEADLINE_EXCEEDED) return new GrpcCallError(e.code, `the issuer at ${server} did not answer in time`);
  return asCallError(e);
}

/** `--server` must be HOST:PORT; a bare port or host is refused before anything is sent. */
export function checkServerAddress(server: string): string {
  try {
    parseHostPort(server);
  } catch {
    throw new UsageError(`--server must be HOST:PORT, e.g. 127.0.0.1:8443 (got ${JSON.stringify(server.slice(0, 80))})`);
  }
  return server;
}
/** The channel options of the handshake client (the benchmark's floor uses the same). */
export const ISSUER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
  // SNI must not be an IP (RFC 6066); the name checked is the SPIFFE ID, not this.
  'grpc.ssl_target_name_override': 'writ-issuer',
};

export async function attest(opts: AttestOptions): Promise<AttestOutcome> {
  const signer = 'sign' in opts.key ? opts.key : keySigner(opts.key);
  const publicKey = signer.publicKey.export({ type: 'spki', format: 'der' });
  let first = true;
  const Client = grpcClientConstructor(AttestationService);
  const client = new Client(opts.server, issuerChannelCredentials(opts.bundlePem), ISSUER_CHANNEL_OPTIONS);
  const deadline = new Date(Date.now() + (opts.timeoutMs ?? 30_000));
  try {
    return await new Promise<AttestOutcome>((resolve, reject) => {
      const call = (client as unknown as { attest(o: grpc.CallOptions): grpc.ClientDuplexStream<AttestRequest, AttestResponse> }).attest({ deadline });
      let settled = false;
      const done = (f: () => void) => {
        if (!settled) {
          settled = true;
          f();
        }
      };
      call.on('data', (res: AttestResponse) => {
        const step = res.step;
        if (step.case === 'challenge') {
          const challenge = step.value;
          const proof = first ? signKeyProof(signer, challenge.nonce) : undefined;
          first = false;
          Promise.all([opts.respond(challenge), proof]).then(
            ([payload, keyProof]) =>
              call.write(create(AttestRequestSchema, { step: { case: 'evidence', value: { payload, ...(keyProof ? { keyProof } : {}) } } })),
            (e) => {
              call.cancel();
              done(() => reject(e));
            },
          );
          return;
        }
        if (step.case === 'result') {
          const r = step.value;
          call.end();
          done(() =>
            resolve({
              spiffeId: r.spiffeId,
              svidChain: r.svidChain.map((c) => Buffer.from(c)),
              bundleJwks: r.bundleJwks,
              bundlePem: r.bundlePem,
              jwtSvids: r.jwtSvids.map((j) => ({ audience: j.audience, token: j.token })),
              ...(r.writ ? { writ: r.writ } : {}),
              ...(r.entryId ? { entryId: r.entryId } : {}),
              ...(r.selectors.length > 0 ? { selectors: [...r.selectors] } : {}),
            }),
          );
        }
      });
      call.on('error', (e: grpc.ServiceError) => done(() => reject(issuerCallError(opts.server, e))));
      call.on('end', () => done(() => reject(new Error('attest: the issuer closed the stream without a result'))));
      call.write(
        create(AttestRequestSchema, {
          step: {
            case: 'hello',
            value: {
              evidenceType: opts.evidenceType,
              publicKey,
              jwtAudiences: [...(opts.jwtAudiences ?? [])],
              grants: [...(opts.grants ?? [])],
              writAudiences: [...(opts.writAudiences ?? [])],
              stepUpGrants: [...(opts.stepUps ?? [])],
            },
          },
        }),
      );
    });
  } finally {
    client.close();
  }
}
