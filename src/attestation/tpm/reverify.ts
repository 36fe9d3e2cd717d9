/**
 * Relying-party re-verification of TPM evidence embedded in a writ: the EK chain to the
 * manufacturer roots the relying party trusts, the AK's attributes, the quote over the binding
 * digest recomputed from the writ, the PCRs, event logs, and the certification of a
 * TPM-resident agent key. What it cannot check is said: the AK was tied to this EK by an
 * interactive MakeCredential/ActivateCredential exchange with the issuer.
 */
import { AttestationError } from '../../errors.js';
import { jwkThumbprint } from '../../jose/jws.js';
import { parseEvidence1 } from '../../tpm/evidence.js';
import { TPM_ST } from '../../tpm/constants.js';
import { parseAttest } from '../../tpm/structures.js';
import type { EvidenceReverifier } from '../verifier.js';
import { verifyEk } from './ek.js';
import { checkTpmEvidence } from './evidence-check.js';
import { TPM_TYPE } from './verifier.js';

/** What a relying party trusts for TPM evidence. */
export interface TpmTrust {
  /** EK certificate trust anchors (DER): the manufacturers' roots. */
  readonly roots: readonly Buffer[];
  /** Intermediates the relying party supplies to complete EK chains (DER). */
  readonly intermediates: readonly Buffer[];
  /**
   * The application PCR the issuer measures agent code into; undefined: the one PCR (16..23)
   * the agent log names (the issuer enforced its own setting when it accepted the evidence).
   */
  readonly agentPcr?: number;
}

export function tpmReverifier(trust: TpmTrust): EvidenceReverifier {
  return {
    type: TPM_TYPE,
    reverify(evidence, ctx) {
      if (trust.roots.length === 0)
        throw new AttestationError('ERR_EVIDENCE_INVALID', 'attestation(tpm): deep verification needs the TPM manufacturer roots (--tpm-roots)');
      const e = parseEvidence1(evidence);
      const attest = parseAttest(e.attest);
      if (attest.type !== TPM_ST.ATTEST_QUOTE) throw new AttestationError('ERR_EVIDENCE_INVALID', 'attestation(tpm): attest is not a quote');
      const checked = checkTpmEvidence(e, {
        nonce: ctx.binding,
        selection: attest.pcrSelect,
        ...(trust.agentPcr !== undefined ? { agentPcr: trust.agentPcr } : {}),
        verifyEk: (ek) => verifyEk(ek, e.ekCertificate, [...e.ekIntermediates, ...trust.intermediates], trust.roots, ctx.at),
        residentKeyIs: (k) => jwkThumbprint(k) === ctx.agentJkt,
      });
      return {
        selectors: checked.selectors,
        checked: [
          'tpm: EK certificate chains to a trusted manufacturer root and matches the EK public area',
          'tpm: AK is a restricted, fixedTPM, fixedParent signing key',
          'tpm: quote signed by the AK over the binding digest recomputed from the writ',
          'tpm: PCR values match the quoted digest; event logs replay to them',
          ...(checked.resident ? ['tpm: the writ key is TPM-resident, certified by the AK'] : []),
        ],
        takenFromIssuer: [
          'tpm: the AK lives in the TPM that holds this EK (proven to the issuer by MakeCredential/ActivateCredential, an interactive exchange a relying party cannot replay)',
          'tpm: quote counters (reset/restart/clock) only moved forward for this TPM',
        ],
      };
    },
  };
}
