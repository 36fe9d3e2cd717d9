/**
 * The issuer's Token Status Lists (draft-ietf-oauth-status-list §5 Status List Token, §8
 * Status List Request): one `statuslist+jwt` per list, built from the store (the index of
 * every revoked writ set to INVALID), signed by the active writ key, `sub` = the exact URI
 * writs name. A built token is kept until a revocation commits (the listener bumps a
 * generation: the next request after `Revoke` returned re-signs), the writ key changes, or it
 * is half its `ttl` old; requests that arrive while a build is running share it.
 */
import { createHash } from 'node:crypto';
import { BoundedCache } from '../cache/bounded.js';
import type { CaManager } from '../ca/manager.js';
import type { Clock } from '../clock.js';
import type { ConfigSection } from '../config/config.js';
import { StatusList, STATUS, STATUS_LIST_TYP, signStatusListToken } from '../revocation/status-list.js';
import { trustDomainId } from '../spiffe/id.js';
import type { RevocationRecord, StoreTx } from '../store/store.js';
import type { RevocationListener } from './revocations.js';

/** The media type of a status list token (§8.1 of the draft: what `Accept` asks for and the answer's type). */
export const STATUS_LIST_MEDIA_TYPE = `application/${STATUS_LIST_TYP}`;
/** Where the HTTPS listener serves list `<id>`: `<public url>/status/<id>`. */
export const STATUS_LIST_PATH_PREFIX = '/status/';
/** Lists whose signed token is kept in memory (the newest lists are the ones fetched). */
export const MAX_CACHED_STATUS_LISTS = 256;
/** Shortest and longest `ttl` an operator may configure: relying parties re-fetch after it. */
export const MIN_STATUS_LIST_TTL_S = 1;
export const MAX_STATUS_LIST_TTL_S = 24 * 3600;

export interface StatusListSettings {
  /** `ttl` of every token: how long a relying party may cache it, seconds. */
  readonly ttlSeconds: number;
  /** `exp − iat` of every token, seconds (at most the signing writ key's remaining life). */
  readonly lifetimeSeconds: number;
}

/** The `status_lists:` key of the server configuration. */
export const statusListSection: ConfigSection<StatusListSettings> = {
  key: 'status_lists',
  parse(top) {
    const s = top.section('status_lists').only(['ttl', 'lifetime']);
    const ttl = Math.round(s.duration('ttl', '60s') / 1000);
    const lifetime = Math.round(s.duration('lifetime', '24h') / 1000);
    if (ttl < MIN_STATUS_LIST_TTL_S || ttl > MAX_STATUS_LIST_TTL_S) s.problem(`status_lists.ttl must be between 1s and 24h`);
    if (lifetime < 2 * ttl) s.problem('status_lists.lifetime must be at least twice status_lists.ttl');
    return { ttlSeconds: ttl, lifetimeSeconds: lifetime };
  },
};

/**
 * The URIs writs name for their list. The base is known once the HTTPS listener is bound (its
 * port may be chosen by the system), which is before the public port takes a handshake.
 */
export class StatusListUris {
  private base?: string;

  /** `base`: an https URL without a trailing slash, query or fragment. */
  bind(base: string): void {
    this.base = base.replace(/\/+$/, '');
  }

  get bound(): boolean {
    return this.base !== undefined;
  }

  uri(list: number): string {
    if (this.base === undefined) throw new Error('status lists: the HTTPS listener is not bound yet, so no writ can name its list');
    return `${this.base}${STATUS_LIST_PATH_PREFIX}${list}`;
  }
}

/** One signed list as served. */
export interface PublishedStatusList {
  readonly token: string;
  /** A strong entity tag (quoted): SHA-256 of the token, truncated. */
  readonly etag: string;
  readonly iat: number;
  readonly ttl: number;
  readonly kid: string;
  /** The revocation generation it reflects. */
  readonly generation: number;
}

export interface StatusListPublisherDeps {
  readonly store: Pick<StoreTx, 'getStatusList' | 'revokedStatusIndexes'>;
  readonly ca: Pick<CaManager, 'writSigner' | 'trustDomain'>;
  readonly clock: Clock;
  readonly uris: Pick<StatusListUris, 'uri'>;
  readonly settings: StatusListSettings;
}

interface Entry {
  built?: PublishedStatusList;
  building?: { generation: number; promise: Promise<PublishedStatusList | undefined> };
}

export class StatusListPublisher implements RevocationListener {
  private generation = 0;
  private readonly entries = new BoundedCache<number, Entry>(MAX_CACHED_STATUS_LISTS);
  /** Tokens signed so far (tests and metrics see how many requests shared one). */
  signed = 0;

  constructor(private readonly deps: StatusListPublisherDeps) {}

  /** From Revocations, after each commit: every cached list is stale from now on. */
  revoked(_records: readonly RevocationRecord[]): void {
    this.generation++;
  }

  /** The signed token of list `id`, or undefined when the issuer has no such list. */
  async get(id: number): Promise<PublishedStatusList | undefined> {
    const generation = this.generation;
    let e = this.entries.get(id);
    if (e?.built && this.fresh(e.built, generation)) return e.built;
    if (e?.building && e.building.generation >= generation) return e.building.promise;
    if (!e) {
      e = {};
      this.entries.set(id, e);
    }
    const entry = e;
    const promise = this.build(id, generation).then(
      (p) => {
        if (entry.building?.promise === promise) entry.building = undefined;
        if (!p) this.entries.delete(id);
        else if (!entry.built || entry.built.generation <= p.generation) entry.built = p;
        return p;
      },
      (err: unknown) => {
        if (entry.building?.promise === promise) entry.building = undefined;
        throw err;
      },
    );
    entry.building = { generation, promise };
    return promise;
  }

  private fresh(p: PublishedStatusList, generation: number): boolean {
    if (p.generation < generation) return false;
    if (p.kid !== this.deps.ca.writSigner().kid) return false;
    return this.nowS() - p.iat < p.ttl / 2;
  }

  private nowS(): number {
    return Math.floor(this.deps.clock.now().getTime() / 1000);
  }

  private async build(id: number, generation: number): Promise<PublishedStatusList | undefined> {
    const { store, ca, uris, settings } = this.deps;
    const record = await store.getStatusList(id);
    if (!record) return undefined;
    const list = StatusList.empty(record.size, 1);
    for (const idx of await store.revokedStatusIndexes(id)) list.set(idx, STATUS.INVALID);
    const signer = ca.writSigner();
    const iat = this.nowS();
    const exp = Math.min(iat + settings.lifetimeSeconds, Math.floor(signer.notAfter.getTime() / 1000));
    const token = await signStatusListToken(
      { iss: trustDomainId(ca.trustDomain), sub: uris.uri(id), iat, exp, ttl: settings.ttlSeconds, list },
      signer.signer,
      signer.kid,
    );
    this.signed++;
    const etag = `"${createHash('sha256').update(token).digest('base64url').slice(0, 27)}"`;
    return { token, etag, iat, ttl: settings.ttlSeconds, kid: signer.kid, generation };
  }
}
