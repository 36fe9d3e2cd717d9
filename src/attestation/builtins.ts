/** The one place that lists every evidence type writ verifies (SPIRE catalog). */
import type { StoreTx } from '../store/store.js';
import { joinTokenVerifier } from './join-token/join-token.js';
import { TPM_TYPE, tpmVerifier, type TpmVerifierSettings } from './tpm/verifier.js';
import { tpmReverifier } from './tpm/reverify.js';
import type { EvidenceReverifier } from './verifier.js';
import { VerifierRegistry } from './registry.js';

export interface BuiltinDeps {
  readonly store: Pick<StoreTx, 'getJoinToken' | 'getTpmRecord'>;
  readonly tpm: TpmVerifierSettings;
}

export function builtinVerifiers(deps: BuiltinDeps): VerifierRegistry {
  return new VerifierRegistry([joinTokenVerifier({ tokens: deps.store }), tpmVerifier({ records: deps.store, settings: deps.tpm })]);
}

/**
 * Evidence types a relying party can re-verify offline, by type. A join token is a secret
 * and is never embedded, so it has no re-verifier: its writs are taken on the issuer's word.
 */
export function builtinReverifiers(): ReadonlyMap<string, EvidenceReverifier> {
  return new Map([[TPM_TYPE, tpmReverifier()]]);
}
