/**
 * The issuer's record of attested agents (SPIRE's attested nodes), written inside the issuance
 * transaction: a fresh attestation records a new agent with what its evidence proved and the
 * serial of its X.509-SVID; a renewal (attestation/x509-svid) moves that agent's latest serial
 * to the new SVID's with one conditional update, so of two renewals from the same SVID exactly
 * one issues anything, and a superseded (possibly stolen) SVID never renews.
 */
import { randomBytes } from 'node:crypto';
import { AttestationError } from '../errors.js';
import type { AttestationResult } from '../attestation/verifier.js';
import type { StoreTx } from '../store/store.js';

export interface IssuedX509 {
  readonly spiffeId: string;
  readonly entryId: string;
  /** The original evidence type (a renewal's, not `x509_svid`). */
  readonly evidenceType: string;
  readonly serial: string;
  readonly jkt: string;
  readonly expiresAt: number;
  readonly issuedAt: number;
}

export async function recordAttestedAgent(
  tx: Pick<StoreTx, 'putAttestedAgent' | 'renewAttestedAgent'>,
  result: AttestationResult,
  svid: IssuedX509,
): Promise<void> {
  const keyResidency = result.keyResidency ?? '';
  if (result.renewal) {
    const moved = await tx.renewAttestedAgent(result.renewal.agentId, result.renewal.serial, {
      serial: svid.serial,
      jkt: svid.jkt,
      svidExpiresAt: svid.expiresAt,
      keyResidency,
      renewedAt: svid.issuedAt,
    });
    if (!moved)
      throw new AttestationError(
        'ERR_SVID_SUPERSEDED',
        `attestation(x509_svid): X.509-SVID ${result.renewal.serial} was renewed by another handshake first: attest with fresh evidence`,
      );
    return;
  }
  await tx.putAttestedAgent({
    id: randomBytes(16).toString('hex'),
    spiffeId: svid.spiffeId,
    entryId: svid.entryId,
    evidenceType: svid.evidenceType,
    selectors: result.selectors,
    platform: result.platform ?? '',
    keyResidency,
    evidenceDigest: result.evidenceDigest,
    serial: svid.serial,
    jkt: svid.jkt,
    svidExpiresAt: svid.expiresAt,
    attestedAt: svid.issuedAt,
    renewedAt: null,
    renewals: 0,
  });
}
