/**
 * What the sidecar (`writ agent run`) holds and what the services on its Unix socket read: the
 * current identity (X.509-SVID, bundle, writ), its state, and a way to be told when it changes.
 * The SPIFFE Workload API (`sidecar/workload-api/`) and writ's own agent service
 * (`sidecar/agent-service/`) are both views of one `SidecarState`; neither renews, attests or
 * watches revocations itself (`sidecar/daemon.ts` does).
 */
import type { JwsSigner } from '../jose/jws.js';

/** The trust bundle of one trust domain, as the Workload API delivers it. */
export interface TrustBundle {
  readonly trustDomain: string;
  /** X.509 authorities, DER. */
  readonly x509Authorities: readonly Buffer[];
  /** The SPIFFE bundle as JWKS (JWT authorities), JSON text. */
  readonly jwks: string;
  /** PEM of the X.509 authorities (what the issuer returned). */
  readonly pem: string;
}

/** One identity the sidecar serves. Replaced whole on every renewal; never mutated. */
export interface SidecarIdentity {
  readonly spiffeId: string;
  /** The X.509-SVID chain, DER, leaf first. */
  readonly svidChain: readonly Buffer[];
  /** The agent key: every signature the sidecar makes on the agent's behalf. */
  readonly signer: JwsSigner;
  /**
   * PKCS#8 DER of the agent key, when it lives in this process. Absent when the key is held
   * where the process cannot read it (TPM-resident): the Workload API then cannot deliver an
   * X.509-SVID with its key, and says so.
   */
  readonly privateKeyPkcs8?: Buffer;
  readonly bundle: TrustBundle;
  /** The X.509-SVID's notAfter, ms since the epoch. */
  readonly notAfter: number;
  /** The writ (compact JWS), when the sidecar was started with a grant chain. */
  readonly writ?: string;
  /** The writ's `exp`, ms since the epoch. */
  readonly writExpiresAt?: number;
  /** The task the writ's lineage belongs to, when there is one. */
  readonly task?: string;
  /**
   * The registration entry and attested selectors (`type:value`) the issuer named in its answer:
   * how the revocation guard recognizes an entry or platform revocation of an identity without a
   * writ (a writ names both itself, in `reg` and `att.sel`).
   */
  readonly entryId?: string;
  readonly selectors?: readonly string[];
  /** When this identity was obtained, ms since the epoch. */
  readonly obtainedAt: number;
}

/**
 * - `pending`: no identity yet (the first attestation has not succeeded): callers get
 *   UNAVAILABLE so standard clients back off and retry.
 * - `serving`: an identity is current.
 * - `expired`: the last identity expired and renewal has not succeeded: nothing is served.
 * - `revoked`: the identity's lineage, task, key, SPIFFE ID or platform was revoked. Terminal:
 *   nothing is served, renewed or delegated again by this process.
 */
export type SidecarStatus =
  | { readonly state: 'pending'; readonly reason?: string }
  | { readonly state: 'serving'; readonly identity: SidecarIdentity }
  | { readonly state: 'expired'; readonly reason: string }
  | { readonly state: 'revoked'; readonly reason: string; readonly at: number };

/** How current the sidecar's view of revocations is. */
export interface RevocationFreshness {
  /** The last revocation sequence applied (0 before any). */
  readonly sequence: number;
  /** When the issuer last confirmed the view (event or heartbeat), ms since the epoch; 0 never. */
  readonly confirmedAt: number;
  readonly connected: boolean;
}

/** Why a renewal failed (daemon.ts `renewalFailure`): a bounded set, a metric label. */
export type RenewalFailure = 'unavailable' | 'refused' | 'terminal' | 'error';

/** Renewals since the start: successful ones (the first attestation excluded), failed ones by why. */
export interface RenewalCounts {
  readonly renewals: number;
  readonly failures: Readonly<Record<RenewalFailure, number>>;
}

export interface SidecarState {
  current(): SidecarStatus;
  /**
   * Called on every change of status or identity (a renewal is a change), synchronously, in
   * order. Returns the unsubscribe function.
   */
  subscribe(listener: (s: SidecarStatus) => void): () => void;
  /**
   * A JWT-SVID for these audiences (the first is `aud[0]`), from the cache while it has more
   * than half its lifetime left, else freshly issued; while that fails (the issuer unreachable),
   * the cached one until it expires. Rejects when not serving.
   */
  jwtSvid(audiences: readonly string[]): Promise<{ readonly spiffeId: string; readonly token: string }>;
  revocationFreshness(): RevocationFreshness;
  /** Renews now (an approval arrived); absent in states that cannot. */
  renewNow?(): void;
  /** Renewal counts (the daemon's), for metrics; absent where nothing renews. */
  renewalCounts?(): RenewalCounts;
}
