/**
 * JWT-SVIDs from the Workload API (go-spiffe's workloadapi.JWTSource): FetchJWTSVID per
 * audience, and local validation against the JWT bundles watched on FetchJWTBundles (algorithm,
 * `kid`, signature with node:crypto, expiry, audience: svid/jwt-svid.ts).
 * UNTRUSTED: bundle documents are parsed bounded (spiffe/bundle.ts); a fetched token is
 * validated before it is returned, and must name the requested audience.
 */
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { SidecarError, SvidError } from '../errors.js';
import { JWTSVIDRequestSchema, type JWTBundlesResponse, type JWTSVIDResponse } from '../gen/spiffe/workload/workload_pb.js';
import { BundleSet, parseJwtBundle, type Bundle } from '../spiffe/bundle.js';
import { MAX_JWT_BYTES, validateJwtSvid, type JwtSvid } from '../svid/jwt-svid.js';
import { BACKOFF_BASE_MS, BACKOFF_CAP_MS, SECURITY_HEADER, tdOfKey, Watch, workloadChannel, type SourceOptions } from './source.js';

/** Most trust domains in one JWT bundles message. */
export const MAX_JWT_BUNDLES = 64;

export function jwtBundlesUpdate(m: JWTBundlesResponse): BundleSet {
  const entries = Object.entries(m.bundles);
  if (entries.length > MAX_JWT_BUNDLES) throw new Error(`more than ${MAX_JWT_BUNDLES} bundles`);
  const bundles: Bundle[] = entries.map(([k, v]) => parseJwtBundle(tdOfKey(k), v));
  return new BundleSet(bundles);
}

export class JWTSource {
  private bundles: BundleSet | undefined;
  private refused: string | undefined;
  private readonly client: grpc.Client;
  private readonly watch: Watch<JWTBundlesResponse>;
  private readonly now: () => number;
  private readonly waiters = new Set<() => void>();

  constructor(o: SourceOptions = {}) {
    this.now = o.now ?? Date.now;
    this.client = workloadChannel(o.address);
    this.watch = new Watch<JWTBundlesResponse>(
      this.client,
      'fetchJWTBundles',
      { random: o.random ?? Math.random, backoffBaseMs: o.backoffBaseMs ?? BACKOFF_BASE_MS, backoffCapMs: o.backoffCapMs ?? BACKOFF_CAP_MS },
      (m) => {
        this.bundles = jwtBundlesUpdate(m);
        this.refused = undefined;
        for (const w of this.waiters) w();
      },
      (_code, reason) => {
        this.bundles = undefined;
        this.refused = reason;
        for (const w of this.waiters) w();
      },
    );
    this.watch.start();
  }

  static async open(o: SourceOptions & { timeoutMs?: number } = {}): Promise<JWTSource> {
    const s = new JWTSource(o);
    const timeoutMs = o.timeoutMs ?? 30_000;
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new SidecarError('ERR_SIDECAR_NOT_SERVING', `workload: no JWT bundle within ${timeoutMs} ms`)), timeoutMs);
        const w = () => {
          if (!s.bundles && !s.refused) return;
          clearTimeout(t);
          s.waiters.delete(w);
          if (s.bundles) resolve();
          else reject(new SidecarError('ERR_SIDECAR_NOT_SERVING', `workload: the sidecar refused: ${s.refused}`));
        };
        s.waiters.add(w);
        w();
      });
      return s;
    } catch (e) {
      s.close();
      throw e;
    }
  }

  private set(): BundleSet {
    if (!this.bundles) throw new SidecarError('ERR_SIDECAR_NOT_SERVING', `workload: no JWT bundle${this.refused ? `: ${this.refused}` : ' yet'}`);
    return this.bundles;
  }

  /** A JWT-SVID for one audience, validated against the current JWT bundles before it is returned. */
  async fetch(audience: string, timeoutMs = 30_000): Promise<JwtSvid> {
    const bundles = this.set();
    const md = new grpc.Metadata();
    md.set(SECURITY_HEADER, 'true');
    const r = await new Promise<JWTSVIDResponse>((resolve, reject) => {
      const fn = (
        this.client as unknown as Record<
          string,
          (req: unknown, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: JWTSVIDResponse) => void) => void
        >
      ).fetchJWTSVID!;
      fn.call(this.client, create(JWTSVIDRequestSchema, { audience: [audience] }), md, { deadline: new Date(this.now() + timeoutMs) }, (e, res) =>
        e ? reject(new SidecarError('ERR_SIDECAR_NOT_SERVING', `workload: FetchJWTSVID: ${e.details}`, { cause: e })) : resolve(res),
      );
    });
    const token = r.svids[0]?.svid;
    if (!token || token.length > MAX_JWT_BYTES) throw new SvidError('ERR_JWT_SVID_INVALID', 'workload: the sidecar sent no usable JWT-SVID');
    return validateJwtSvid(token, bundles, [audience], new Date(this.now()));
  }

  /** Validates a peer's JWT-SVID for `audience` against the current JWT bundles (throws SvidError). */
  validate(token: string, audience: string): JwtSvid {
    return validateJwtSvid(token, this.set(), [audience], new Date(this.now()));
  }

  close(): void {
    this.watch.close();
    this.client.close();
    this.waiters.clear();
  }
}
