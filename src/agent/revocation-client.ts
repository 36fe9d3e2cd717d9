/**
 * The relying party's gRPC side of `RevocationService.Watch`: one server stream per
 * subscription over TLS, checked against the issuer's trust bundle and its SPIFFE ID (not a host
 * name), decoded into the transport-neutral messages revocation/watch-source.ts applies. Resume,
 * failover and freshness live there; this file only opens and closes streams.
 */
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { RevocationService, WatchRequestSchema, type WatchRequest, type WatchResponse } from '../gen/writ/v1/revocation_pb.js';
import { grpcClientConstructor } from '../rpc/grpc-adapter.js';
import type { WatchConnector, WatchStreamHandlers, WatchWireMessage } from '../revocation/watch-source.js';
import { issuerChannelCredentials, unreachableReason } from './attest-client.js';

export interface GrpcWatchOptions {
  /**
   * Each subscription on a connection of its own instead of sharing one per issuer address
   * (grpc-js pools connections by target and credentials). Separate relying parties do; a
   * process with many sources may not want to.
   */
  readonly ownConnection?: boolean;
  readonly channelOptions?: grpc.ChannelOptions;
}

/** Largest Watch message accepted: a revocation is well under 4 KiB. */
const MAX_WATCH_MESSAGE = 64 * 1024;

function toWire(m: WatchResponse): WatchWireMessage | undefined {
  const c = m.message;
  switch (c.case) {
    case 'revocation':
      return {
        type: 'revocation',
        sequence: Number(c.value.sequence),
        kind: c.value.kind,
        target: c.value.target,
        reason: c.value.reason,
        at: Number(c.value.at),
        actor: c.value.actor,
        principal: c.value.principal,
        derivedFrom: Number(c.value.derivedFrom),
        expiresAt: Number(c.value.expiresAt),
      };
    case 'heartbeat':
      return { type: 'heartbeat', sequence: Number(c.value.sequence), at: Number(c.value.at) };
    case 'snapshotBegin':
      return { type: 'snapshot-begin', oldestRetained: Number(c.value.oldestRetained) };
    case 'snapshotEnd':
      return { type: 'snapshot-end', sequence: Number(c.value.sequence) };
    default:
      return undefined;
  }
}

/** Why a Watch stream failed, in words, with the issuer's resume hint when it cut us off. */
function describe(e: grpc.ServiceError): { reason: string; resumeSince?: number } {
  const hint = e.metadata?.get('writ-resume-since')[0];
  const resume = typeof hint === 'string' && /^\d{1,15}$/.test(hint) ? Number(hint) : undefined;
  const reason =
    e.code === grpc.status.UNAVAILABLE && !e.metadata?.get('writ-error-code').length
      ? `unreachable: ${unreachableReason(e.details || e.message)}`
      : `${grpc.status[e.code] ?? e.code}: ${(e.details || e.message).slice(0, 300)}`;
  return { reason, ...(resume !== undefined ? { resumeSince: resume } : {}) };
}

/**
 * A WatchConnector over gRPC/TLS to issuers of the trust bundle `bundlePem` (X.509 authorities,
 * PEM). A function is asked again on every (re)connect, and the TLS credentials are rebuilt when
 * the PEM it returns changed: a relying party whose issuer rotates its CA passes the latest
 * bundle the issuer served (a sidecar: its current identity's), so Watch keeps verifying the
 * issuer after the CA it started with is retired. A function that throws fails that connect
 * (the watch source retries), never falls back to an older bundle by itself.
 */
export function grpcWatchConnector(bundlePem: string | (() => string), opts: GrpcWatchOptions = {}): WatchConnector {
  const current = typeof bundlePem === 'function' ? bundlePem : () => bundlePem;
  let builtFor: string | undefined;
  let built: grpc.ChannelCredentials | undefined;
  const credentialsNow = (): grpc.ChannelCredentials => {
    const pem = current();
    if (built === undefined || pem !== builtFor) {
      built = issuerChannelCredentials(pem);
      builtFor = pem;
    }
    return built;
  };
  // A fixed bundle is checked at once, as before; a function's is checked on each connect.
  if (typeof bundlePem === 'string') credentialsNow();
  const Client = grpcClientConstructor(RevocationService);
  const channelOptions: grpc.ChannelOptions = {
    // SNI must not be an IP (RFC 6066); the name checked is the SPIFFE ID, not this.
    'grpc.ssl_target_name_override': 'writ-issuer',
    'grpc.max_receive_message_length': MAX_WATCH_MESSAGE,
    ...(opts.ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {}),
    ...opts.channelOptions,
  };
  return {
    open(address: string, since: number, on: WatchStreamHandlers) {
      const client = new Client(address, credentialsNow(), channelOptions);
      const call = (client as unknown as { watch(r: WatchRequest, o: grpc.CallOptions): grpc.ClientReadableStream<WatchResponse> }).watch(
        create(WatchRequestSchema, { since: BigInt(since) }),
        {},
      );
      let over = false;
      const finish = (e?: { reason: string; resumeSince?: number }) => {
        if (over) return;
        over = true;
        call.removeAllListeners('data');
        client.close();
        if (e) on.end(e);
      };
      call.on('data', (m: WatchResponse) => {
        if (over) return;
        const w = toWire(m);
        if (w) on.message(w);
      });
      call.on('error', (e: grpc.ServiceError) => finish(describe(e)));
      call.on('end', () => finish({ reason: 'the issuer ended the stream' }));
      return {
        close() {
          if (over) return;
          over = true;
          call.removeAllListeners('data');
          call.cancel();
          client.close();
        },
      };
    },
  };
}
