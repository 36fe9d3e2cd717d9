/**
 * The relying-party side of the SPIFFE Workload API (go-spiffe's workloadapi.X509Source /
 * JWTSource): a client of a sidecar's socket for a workload that uses its identity without the
 * issuer. It watches FetchX509SVID and FetchJWTBundles, reconnecting with exponential backoff
 * and jitter (500 ms doubling to 30 s), and holds the latest complete update.
 * UNTRUSTED: everything the socket returns is checked before it is held: the chain verifies to
 * the bundle sent with it (now), the leaf names the SPIFFE ID sent with it, the key is the leaf's.
 * Fail closed: PERMISSION_DENIED (Workload API §5.2.1: not entitled, e.g. revoked) or
 * FAILED_PRECONDITION (a key that cannot be delivered) drops what the source held; with no current
 * SVID it refuses to hand out a TLS context.
 */
import * as grpc from '@grpc/grpc-js';
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { SidecarError } from '../errors.js';
import { SpiffeWorkloadAPI, type X509SVIDResponse } from '../gen/spiffe/workload/workload_pb.js';
import { grpcClientConstructor } from '../rpc/grpc-adapter.js';
import { BundleSet, type Bundle } from '../spiffe/bundle.js';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../spiffe/id.js';
import { verifyX509Svid } from '../svid/x509-svid.js';
import { MAX_CHAIN_LENGTH } from '../x509/path.js';
import { splitDerChain } from '../x509/certificate.js';

export const SECURITY_HEADER = 'workload.spiffe.io';
/** Largest Workload API message accepted from the socket. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30_000;

/** `unix:///path` or `unix:/path` (SPIFFE Workload Endpoint §4), else `SPIFFE_ENDPOINT_SOCKET`. */
export function socketTarget(address = process.env.SPIFFE_ENDPOINT_SOCKET): string {
  if (!address) throw new SidecarError('ERR_SIDECAR_REQUEST_INVALID', 'workload: no socket address and SPIFFE_ENDPOINT_SOCKET is not set');
  let u: URL;
  try {
    u = new URL(address);
  } catch {
    throw new SidecarError('ERR_SIDECAR_REQUEST_INVALID', 'workload: the socket address is not a URL');
  }
  if (u.protocol !== 'unix:' || u.host !== '' || u.search !== '' || u.hash !== '' || !u.pathname.startsWith('/') || u.username || u.password) {
    throw new SidecarError('ERR_SIDECAR_REQUEST_INVALID', 'workload: the socket address must be unix:///absolute/path');
  }
  return `unix:${decodeURIComponent(u.pathname)}`;
}

export interface X509SvidHeld {
  readonly id: SpiffeId;
  /** Leaf first, DER. */
  readonly chain: readonly Buffer[];
  readonly key: KeyObject;
  readonly notAfter: Date;
}

export type SourceStatus =
  | { readonly state: 'pending' }
  | { readonly state: 'serving'; readonly svid: X509SvidHeld; readonly bundle: Bundle }
  | { readonly state: 'refused'; readonly code: grpc.status; readonly reason: string };

export interface SourceOptions {
  /** `unix:///path`; default SPIFFE_ENDPOINT_SOCKET. */
  readonly address?: string;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly backoffBaseMs?: number;
  readonly backoffCapMs?: number;
}

/** Most certificates in a chain or bundle taken from the socket. */
export const MAX_BUNDLE_CERTS = 64;

function splitDerChainBounded(b: Buffer, max: number): Buffer[] {
  const certs = splitDerChain(b);
  if (certs.length === 0) throw new Error('no certificate');
  if (certs.length > max) throw new Error(`more than ${max} certificates`);
  return certs;
}

export function backoffDelay(attempt: number, random: number, base = BACKOFF_BASE_MS, cap = BACKOFF_CAP_MS): number {
  const d = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.round(d * (0.8 + 0.4 * random));
}

type Listener<T> = (s: T) => void;

/** One watched server stream, reconnecting with backoff; `onMessage` throws to reject a message. */
class Watch<M> {
  private call: grpc.ClientReadableStream<M> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private closed = false;
  constructor(
    private readonly client: grpc.Client,
    private readonly method: string,
    private readonly o: Required<Pick<SourceOptions, 'random' | 'backoffBaseMs' | 'backoffCapMs'>>,
    private readonly onMessage: (m: M) => void,
    private readonly onRefused: (code: grpc.status, reason: string) => void,
  ) {}
  start(): void {
    if (this.closed) return;
    const md = new grpc.Metadata();
    md.set(SECURITY_HEADER, 'true');
    const fn = (this.client as unknown as Record<string, (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<M>>)[this.method]!;
    const call = fn.call(this.client, {}, md);
    this.call = call;
    call.on('data', (m: M) => {
      try {
        this.onMessage(m);
        this.attempt = 0;
      } catch (e) {
        this.onRefused(grpc.status.INVALID_ARGUMENT, `the sidecar sent an unacceptable message: ${(e as Error).message}`);
        call.cancel();
      }
    });
    call.on('error', (e: grpc.ServiceError) => {
      // Only the current stream decides: a late event of an older one never opens a second.
      if (this.closed || call !== this.call) return;
      // §5.2.1: not entitled: stop using what is held; a key that cannot be delivered likewise.
      if (e.code === grpc.status.PERMISSION_DENIED || e.code === grpc.status.FAILED_PRECONDITION || e.code === grpc.status.INVALID_ARGUMENT) {
        this.onRefused(e.code, e.details);
      }
      this.retry();
    });
    call.on('end', () => {
      if (call === this.call) this.retry();
    });
  }
  private retry(): void {
    if (this.closed || this.timer) return;
    this.call = undefined;
    const d = backoffDelay(this.attempt++, this.o.random(), this.o.backoffBaseMs, this.o.backoffCapMs);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.start();
    }, d);
    this.timer.unref();
  }
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.call?.cancel();
  }
}

function channel(address: string | undefined): grpc.Client {
  const Ctor = grpcClientConstructor(SpiffeWorkloadAPI);
  return new Ctor(socketTarget(address), grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.use_local_subchannel_pool': 1,
  });
}

const tdOfKey = (k: string): string => {
  if (!k.startsWith('spiffe://')) throw new Error(`bundle key ${JSON.stringify(k.slice(0, 64))} is not a trust domain's SPIFFE ID`);
  return parseTrustDomain(k.slice('spiffe://'.length)).name;
};

/** Checks one FetchX509SVID message; the first SVID is the default one (go-spiffe). */
export function x509Update(m: X509SVIDResponse, at: Date): { svid: X509SvidHeld; bundle: Bundle } {
  const s = m.svids[0];
  if (!s) throw new Error('no X.509-SVID in the message');
  const id = parseSpiffeId(s.spiffeId);
  const chain = splitDerChainBounded(Buffer.from(s.x509Svid), MAX_CHAIN_LENGTH);
  const authorities = splitDerChainBounded(Buffer.from(s.bundle), MAX_BUNDLE_CERTS);
  const bundle: Bundle = { trustDomain: id.trustDomain, x509Authorities: authorities, jwtAuthorities: new Map() };
  const v = verifyX509Svid(chain, new BundleSet([bundle]), at);
  if (v.id.uri !== id.uri) throw new Error('the leaf does not name the SPIFFE ID sent with it');
  const key = createPrivateKey({ key: Buffer.from(s.x509SvidKey), format: 'der', type: 'pkcs8' });
  if (!createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(v.chain[0]!.spki)) throw new Error("the key is not the leaf's");
  return { svid: { id, chain, key, notAfter: v.chain[0]!.notAfter }, bundle };
}

/** The current X.509-SVID and bundle of a workload, kept up to date from the socket. */
export class X509Source {
  private status: SourceStatus = { state: 'pending' };
  private readonly listeners = new Set<Listener<SourceStatus>>();
  private readonly client: grpc.Client;
  private readonly watch: Watch<X509SVIDResponse>;
  private readonly now: () => number;

  constructor(o: SourceOptions = {}) {
    this.now = o.now ?? Date.now;
    this.client = channel(o.address);
    this.watch = new Watch<X509SVIDResponse>(
      this.client,
      'fetchX509SVID',
      { random: o.random ?? Math.random, backoffBaseMs: o.backoffBaseMs ?? BACKOFF_BASE_MS, backoffCapMs: o.backoffCapMs ?? BACKOFF_CAP_MS },
      (m) => this.set({ state: 'serving', ...x509Update(m, new Date(this.now())) }),
      (code, reason) => this.set({ state: 'refused', code, reason }),
    );
    this.watch.start();
  }

  /** Opens a source and waits for its first X.509-SVID (rejects on a refusal or the timeout). */
  static async open(o: SourceOptions & { timeoutMs?: number } = {}): Promise<X509Source> {
    const s = new X509Source(o);
    try {
      await s.waitUntilUpdated(o.timeoutMs ?? 30_000);
      return s;
    } catch (e) {
      s.close();
      throw e;
    }
  }

  private set(s: SourceStatus): void {
    this.status = s;
    for (const l of this.listeners) l(s);
  }

  /** The source's clock (ms), by which SVIDs and peers are checked. */
  clock(): number {
    return this.now();
  }

  current(): SourceStatus {
    return this.status;
  }

  onUpdate(l: Listener<SourceStatus>): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Resolves at the next serving update (at once if serving); rejects on a refusal or the timeout. */
  waitUntilUpdated(timeoutMs: number): Promise<void> {
    if (this.status.state === 'serving') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        off();
        reject(new SidecarError('ERR_SIDECAR_NOT_SERVING', `workload: no X.509-SVID within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onUpdate((s) => {
        if (s.state === 'pending') return;
        clearTimeout(t);
        off();
        if (s.state === 'serving') resolve();
        else reject(new SidecarError('ERR_SIDECAR_NOT_SERVING', `workload: the sidecar refused: ${s.reason}`));
      });
    });
  }

  /** The current SVID; throws when there is none, it was refused, or it is past notAfter. */
  svid(): X509SvidHeld {
    return this.serving().svid;
  }

  bundle(): Bundle {
    return this.serving().bundle;
  }

  private serving(): { svid: X509SvidHeld; bundle: Bundle } {
    const s = this.status;
    if (s.state === 'pending') throw new SidecarError('ERR_SIDECAR_NOT_SERVING', 'workload: no X.509-SVID yet');
    if (s.state === 'refused') throw new SidecarError('ERR_SIDECAR_NOT_SERVING', `workload: no X.509-SVID: ${s.reason}`);
    if (s.svid.notAfter.getTime() <= this.now()) throw new SidecarError('ERR_SIDECAR_NOT_SERVING', 'workload: the X.509-SVID expired');
    return s;
  }

  close(): void {
    this.watch.close();
    this.client.close();
    this.listeners.clear();
  }
}

export { tdOfKey, channel as workloadChannel, Watch };
