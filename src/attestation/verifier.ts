/**
 * The evidence plug-in contract (SPIRE node attestors). One verifier per evidence type;
 * `builtins.ts` is the one file that lists them. A verifier sees the handshake's nonce and
 * the agent's key, may send further challenges, and ends with selectors.
 */
import type { Selector } from '../registration/entry.js';
import type { AgentPublicKey } from '../svid/public-key.js';
import type { StoreTx } from '../store/store.js';

export interface AttestationContext {
  /** Fresh issuer nonce for this handshake (the binding digest, once grants are bound). */
  readonly nonce: Buffer;
  readonly agentKey: AgentPublicKey;
  readonly now: Date;
}

export interface AttestationResult {
  /** What the evidence proved, for registration entry matching. */
  readonly selectors: readonly Selector[];
  /** SHA-256 of the evidence that was verified. */
  readonly evidenceDigest: Buffer;
  /**
   * The selector that names the hardware instance the evidence came from (`tpm:ek_hash:<hex>`),
   * when there is one: what a platform revocation names.
   */
  readonly platform?: string;
  /**
   * Evidence a relying party can re-verify offline, to embed in the writ; absent when the
   * evidence is secret (a join token) or cannot be checked without the issuer.
   */
  readonly publicEvidence?: Buffer;
  /**
   * Set when the evidence proved the agent key cannot leave the hardware that holds it: a short
   * label (`[a-z0-9_-]{1,32}`, e.g. "tpm") that the X.509-SVID carries in writ's key-residency
   * extension and registration can select on.
   */
  readonly keyResidency?: string;
  /**
   * Set only by a renewal (`x509_svid`): the attested agent whose latest X.509-SVID (`serial`)
   * authenticated this handshake. The issuer names the original `evidenceType` in everything it
   * issues and records, issues only under the same entry, and moves the agent's latest serial
   * from `serial` to the new SVID's inside the issuance transaction (once only: a second renewal
   * from the same serial is refused). Absent: a fresh attestation, recorded as a new agent.
   */
  readonly renewal?: RenewalOf;
  /**
   * Runs inside the issuance transaction (e.g. consuming a one-time token). Throwing aborts
   * the issuance and rolls back every write.
   */
  readonly commit?: (tx: StoreTx, now: Date) => Promise<void>;
}

/** What a renewal renews (see `AttestationResult.renewal`). */
export interface RenewalOf {
  readonly agentId: string;
  /** Serial of the X.509-SVID that authenticated the renewal, lower-case hex. */
  readonly serial: string;
  /** The evidence type of the original attestation. */
  readonly evidenceType: string;
  /** The registration entry the identity was issued under. */
  readonly entryId: string;
}

export type VerifyStep = { readonly kind: 'challenge'; readonly payload: Buffer } | { readonly kind: 'attested'; readonly result: AttestationResult };

/** One handshake's state inside a verifier. */
export interface AttestationSession {
  /** Payload of the first challenge sent to the agent. */
  readonly challenge: Buffer;
  respond(evidence: Buffer): Promise<VerifyStep>;
}

/** What the writ says the evidence must show. The re-verifier holds its own trust anchors. */
export interface ReverifyContext {
  /** The binding digest recomputed from the writ: what the evidence must have signed. */
  readonly binding: Buffer;
  /** The agent key's RFC 7638 thumbprint (the writ's `cnf.jkt`). */
  readonly agentJkt: string;
  readonly at: Date;
}

export interface ReverifiedEvidence {
  /** Selectors recomputed from the evidence alone. */
  readonly selectors: readonly Selector[];
  /** What the relying party has now checked itself. */
  readonly checked: readonly string[];
  /** What the evidence cannot show and the relying party takes on the issuer's word. */
  readonly takenFromIssuer: readonly string[];
  /**
   * Selector types ("tdx:tcb_status") this relying party could not recompute (it lacks what the
   * issuer evaluated them from, e.g. Intel collateral): the writ's selectors of these types are
   * taken on the issuer's word and reported so; every other selector must be recomputed.
   */
  readonly issuerSelectorTypes?: readonly string[];
}

/**
 * Offline re-verification of embedded evidence by a relying party (deep verification), bound to
 * that relying party's trust anchors (see `RelyingPartySide` in plugin.ts).
 */
export interface EvidenceReverifier {
  readonly type: string;
  reverify(evidence: Buffer, ctx: ReverifyContext): ReverifiedEvidence;
}

export interface EvidenceVerifier {
  /** The evidence type agents name in their hello, e.g. "join_token". */
  readonly type: string;
  /** Largest evidence payload this type accepts, bytes. */
  readonly maxEvidenceBytes: number;
  /** Most evidence rounds in one handshake. */
  readonly maxRounds: number;
  begin(ctx: AttestationContext): Promise<AttestationSession>;
}
