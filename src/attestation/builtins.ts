/** The one place that lists every evidence type writ verifies (SPIRE catalog). */
import type { StoreTx } from '../store/store.js';
import { joinTokenVerifier } from './join-token/join-token.js';
import { tpmVerifier, type TpmVerifierSettings } from './tpm/verifier.js';
import { VerifierRegistry } from './registry.js';

export interface BuiltinDeps {
  readonly store: Pick<StoreTx, 'getJoinToken' | 'getTpmRecord'>;
  readonly tpm: TpmVerifierSettings;
}

export function builtinVerifiers(deps: BuiltinDeps): VerifierRegistry {
  return new VerifierRegistry([joinTokenVerifier({ tokens: deps.store }), tpmVerifier({ records: deps.store, settings: deps.tpm })]);
}
