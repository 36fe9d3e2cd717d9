/**
 * Renewal authenticated by the current X.509-SVID, as the sidecar performs it (SPIRE agents
 * renew this way; a join token cannot be shown twice). The same `Attest` handshake as a fresh
 * attestation, with evidence type `x509_svid`: the hello names the (possibly new) agent key, the
 * first evidence carries that key's proof and the current SVID chain with the current key's
 * signature over the challenge nonce and the new key (attestation/x509-svid/README.md). Either key
 * may live outside this process (a TPM-resident `JwsSigner`). Also mints JWT-SVIDs for new
 * audiences, and a writ within the task when grants are sent, without fresh evidence.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { X509_SVID_TYPE, encodeRenewalEvidence, signRenewal } from '../attestation/x509-svid/evidence.js';
import { jwkThumbprint, keySigner, type JwsSigner } from '../jose/jws.js';
import { leafSpiffeId } from '../svid/x509-svid.js';
import { parseCertificate } from '../x509/certificate.js';
import { parseWrit } from '../writ/writ.js';
import { attest, type AttestOutcome } from './attest-client.js';

export interface RenewOptions {
  /** host:port of the issuer's public port. */
  readonly server: string;
  /** The issuer's trust bundle, PEM (X.509 authorities). */
  readonly bundlePem: string;
  /** The X.509-SVID held now: its chain (DER, leaf first) and its key (a private key here, or a signer whose key lives elsewhere). */
  readonly current: { readonly svidChain: readonly Uint8Array[]; readonly signer: KeyObject | JwsSigner };
  /** The key the renewed SVID is for; absent: the current key again. */
  readonly newKey?: KeyObject | JwsSigner;
  /** Grant chain, root first; with it the result carries a writ (within the task, never past it). */
  readonly grants?: readonly string[];
  readonly jwtAudiences?: readonly string[];
  readonly writAudiences?: readonly string[];
  /** Step-up grants for the writ to carry (with grants only). */
  readonly stepUps?: readonly string[];
  readonly timeoutMs?: number;
}

const signerOf = (k: KeyObject | JwsSigner): JwsSigner => ('sign' in k ? k : keySigner(k));
const spkiOf = (k: KeyObject): Buffer => (k.type === 'private' ? createPublicKey(k) : k).export({ type: 'spki', format: 'der' });

/** Renews the X.509-SVID (and optionally JWT-SVIDs and the writ) with the current SVID as evidence; same outcome as `attest()`. */
export async function renewWithSvid(o: RenewOptions): Promise<AttestOutcome> {
  if (o.current.svidChain.length === 0) throw new Error('renew: the current SVID chain is empty');
  const chain = o.current.svidChain.map((c) => Buffer.from(c));
  const leaf = parseCertificate(chain[0]!);
  const currentId = leafSpiffeId(leaf).uri;
  const current = signerOf(o.current.signer);
  // Refuse before contacting the issuer when the key does not belong to the SVID.
  if (!spkiOf(current.publicKey).equals(spkiOf(createPublicKey({ key: leaf.spki, format: 'der', type: 'spki' }))))
    throw new Error('renew: the current signer’s key is not the key of the current X.509-SVID');
  const next = o.newKey ? signerOf(o.newKey) : current;
  const newSpki = spkiOf(next.publicKey);
  const outcome = await attest({
    server: o.server,
    bundlePem: o.bundlePem,
    evidenceType: X509_SVID_TYPE,
    key: next,
    respond: async (challenge) => encodeRenewalEvidence({ chain, signature: await signRenewal(current, challenge.nonce, newSpki) }),
    jwtAudiences: o.jwtAudiences ?? [],
    grants: o.grants ?? [],
    writAudiences: o.writAudiences ?? [],
    stepUps: o.stepUps ?? [],
    ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
  });
  // A renewal renews one identity, for the key asked for; refuse to keep anything else.
  if (outcome.spiffeId !== currentId) throw new Error(`renew: the issuer renewed ${outcome.spiffeId}, not ${currentId}`);
  const issuedLeaf = outcome.svidChain[0] && parseCertificate(outcome.svidChain[0]);
  if (!issuedLeaf || !spkiOf(createPublicKey({ key: issuedLeaf.spki, format: 'der', type: 'spki' })).equals(newSpki))
    throw new Error('renew: the renewed X.509-SVID is for another key');
  if ((o.grants ?? []).length > 0) {
    if (!outcome.writ) throw new Error('renew: the issuer returned no writ for the grant chain');
    if (parseWrit(outcome.writ).claims.cnf.jkt !== jwkThumbprint(next.publicKey)) throw new Error('renew: the issued writ is bound to another key');
  }
  return outcome;
}
