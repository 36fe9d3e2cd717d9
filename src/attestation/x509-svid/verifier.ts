/**
 * Renewal authenticated by the current X.509-SVID (SPIRE agents renew this way). The agent
 * presents its chain and the SVID key's signature over this handshake's nonce and new key; the
 * issuer checks, in order, each with its own refusal (README.md §Checks):
 *
 *  1. the payload parses (evidence.ts);
 *  2. the chain verifies to the issuer's *current* trust bundle at `now` (authorities kept
 *     after a rotation count; another CA or a self-signed leaf does not), and the leaf is an
 *     X.509-SVID of this trust domain (svid/x509-svid.ts `verifyX509Svid`);
 *  3. the signature verifies with the leaf key, with the algorithm its key type fixes;
 *  4. the leaf's serial is the latest one issued to its attested agent (store: attested_agents);
 *  5. the agent's original evidence type may renew by SVID (settings);
 *  6. the registration entry it was issued under still exists;
 *  7. the SVID's key is not revoked, inside the issuance transaction (where the handshake checks
 *     the SPIFFE ID, the new key, the entry and the platform).
 *
 * The result carries the selectors, platform and evidence type recorded at the original
 * attestation, so entry matching and policy see the identity as it was attested.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { AttestationError, RevocationError, SvidError } from '../../errors.js';
import { jwkThumbprint } from '../../jose/jws.js';
import { BundleSet, type Bundle } from '../../spiffe/bundle.js';
import type { StoreTx } from '../../store/store.js';
import { verifyX509Svid } from '../../svid/x509-svid.js';
import type { AttestationSession, EvidenceVerifier, VerifyStep } from '../verifier.js';
import { MAX_X509_SVID_EVIDENCE_BYTES, X509_SVID_TYPE, parseRenewalEvidence, renewalSignatureValid } from './evidence.js';

export interface X509SvidSettings {
  /**
   * Original evidence types whose identities must re-attest with fresh evidence instead of
   * renewing by SVID. Undefined: the default, every type but `join_token` (README.md §Policy).
   */
  readonly requireFreshEvidence?: readonly string[];
}

/** The one type a default configuration lets renew by SVID: its evidence cannot be shown twice. */
export const RENEWABLE_BY_DEFAULT: readonly string[] = ['join_token'];

/** True when identities first attested with `evidenceType` must bring fresh evidence. */
export function requiresFreshEvidence(settings: X509SvidSettings, evidenceType: string): boolean {
  return settings.requireFreshEvidence ? settings.requireFreshEvidence.includes(evidenceType) : !RENEWABLE_BY_DEFAULT.includes(evidenceType);
}

export interface X509SvidVerifierDeps {
  readonly store: Pick<StoreTx, 'getAttestedAgentBySerial' | 'getEntry'>;
  /** The issuer's current trust bundle (read per handshake, so rotations apply at once). */
  readonly trustBundle?: () => Bundle;
  readonly settings: X509SvidSettings;
}

const invalid = (msg: string, cause?: unknown) => new AttestationError('ERR_SVID_RENEWAL_INVALID', `attestation(x509_svid): ${msg}`, { cause });

async function refuseRevokedKey(store: Pick<StoreTx, 'findRevocations'>, jkt: string): Promise<void> {
  const hit = (await store.findRevocations([`key:${jkt}`]))[0];
  if (hit)
    throw new RevocationError(
      'ERR_REVOKED',
      `revocation: key ${hit.target} of the presented X.509-SVID is revoked (by ${hit.actor}${hit.reason ? `: ${hit.reason}` : ''})`,
    );
}

export function x509SvidVerifier(deps: X509SvidVerifierDeps): EvidenceVerifier {
  return {
    type: X509_SVID_TYPE,
    maxEvidenceBytes: MAX_X509_SVID_EVIDENCE_BYTES,
    maxRounds: 1,
    async begin(ctx): Promise<AttestationSession> {
      return {
        challenge: Buffer.alloc(0),
        async respond(evidence): Promise<VerifyStep> {
          // UNTRUSTED: the chain and signature the agent sent.
          const ev = parseRenewalEvidence(evidence);
          // Fail closed: an issuer wired without its bundle renews nothing.
          const bundle = deps.trustBundle?.();
          if (!bundle) throw invalid('the issuer has no X.509 trust bundle to verify SVIDs against');
          let verified;
          try {
            verified = verifyX509Svid(ev.chain, new BundleSet([bundle]), ctx.now);
          } catch (e) {
            if (e instanceof SvidError) throw invalid(`the presented chain is not a valid X.509-SVID of ${bundle.trustDomain}: ${e.message}`, e);
            throw e;
          }
          // The set holds this trust domain's bundle only: a leaf of another trust domain found none.
          const { id, chain } = verified;
          const leaf = chain[0]!;
          let leafKey: KeyObject;
          try {
            leafKey = createPublicKey({ key: leaf.spki, format: 'der', type: 'spki' });
          } catch (e) {
            throw invalid('the leaf key cannot be read', e);
          }
          if (!renewalSignatureValid(leafKey, ctx.nonce, ctx.agentKey.spki, ev.signature))
            throw invalid('the signature is not the presented SVID key’s over this challenge and new key (writ-x509-svid-renewal-v1)');

          // From here the caller has shown it holds a valid SVID of ours: refusals may say why.
          const serial = leaf.serial.toString('hex');
          const oldJkt = jwkThumbprint(leafKey);
          const agent = await deps.store.getAttestedAgentBySerial(serial);
          if (!agent || agent.spiffeId !== id.uri || agent.jkt !== oldJkt)
            throw new AttestationError(
              'ERR_SVID_SUPERSEDED',
              `attestation(x509_svid): X.509-SVID ${serial} is not the latest one issued to its agent (renewed already, or issued before renewal records existed): attest with fresh evidence`,
            );
          if (requiresFreshEvidence(deps.settings, agent.evidenceType))
            throw new AttestationError(
              'ERR_FRESH_EVIDENCE_REQUIRED',
              `attestation(x509_svid): identities attested with ${agent.evidenceType} must attest again with fresh ${agent.evidenceType} evidence (attestation.x509_svid.require_fresh_evidence)`,
            );
          const entry = await deps.store.getEntry(agent.entryId);
          if (!entry)
            throw new AttestationError(
              'ERR_NO_MATCHING_ENTRY',
              `attestation(x509_svid): the registration entry ${agent.entryId} that ${agent.spiffeId} was issued under no longer exists`,
            );

          // Key residency was proven for the old key only: it carries over only if the key stays.
          const sameKey = Buffer.from(ctx.agentKey.spki).equals(leafKey.export({ type: 'spki', format: 'der' }));
          return {
            kind: 'attested',
            result: {
              selectors: agent.selectors,
              evidenceDigest: createHash('sha256').update(evidence).digest(),
              ...(agent.platform ? { platform: agent.platform } : {}),
              ...(sameKey && agent.keyResidency ? { keyResidency: agent.keyResidency } : {}),
              renewal: { agentId: agent.id, serial, evidenceType: agent.evidenceType, entryId: agent.entryId },
              // Inside the issuance transaction, with the handshake's own revocation checks: a
              // revocation that commits first wins.
              commit: (tx) => refuseRevokedKey(tx, oldJkt),
            },
          };
        },
      };
    },
  };
}
