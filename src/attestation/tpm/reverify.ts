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

/** The application PCR the sidecar measures agent code into, unless configured otherwise. */
export const DEFAULT_AGENT_PCR = 23;

export function tpmReverifier(agentPcr = DEFAULT_AGENT_PCR): EvidenceReverifier {
  return {
    type: TPM_TYPE,
    reverify(evidence, ctx) {
      if (ctx.roots.length === 0)
        throw new AttestationError('ERR_EVIDENCE_INVALID', 'attestation(tpm): deep verification needs the TPM manufacturer roots (--tpm-roots)');
      const e = parseEvidence1(evidence);
      const attest = parseAttest(e.attest);
      if (attest.type !== TPM_ST.ATTEST_QUOTE) throw new AttestationError('ERR_EVIDENCE_INVALID', 'attestation(tpm): attest is not a quote');
      const checked = checkTpmEvidence(e, {
        nonce: ctx.binding,
        selection: attest.pcrSelect,
        agentPcr,
        verifyEk: (ek) => verifyEk(ek, e.ekCertificate, [...e.ekIntermediates, ...ctx.intermediates], ctx.roots, ctx.at),
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
