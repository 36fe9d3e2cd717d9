/** Every fuzz target, in the order `make fuzz` runs them. One per parser of untrusted bytes (docs/fuzzing.md). */
import { parseSelector } from '../../../src/registration/entry.js';
import type { FuzzTarget } from '../engine/contract.js';
import { derTarget, pemTarget } from './der.js';
import { bundleJwksTarget, bundlePemTarget, jwtSvidTarget, spiffeIdTarget, x509SvidParseTarget, x509SvidVerifyTarget } from './spiffe.js';
import { csrTarget, publicKeyTarget, x509Target } from './x509.js';
import { eventLogTarget, tpmAttestTarget, tpmEvidenceTarget, tpmPcrSelectionTarget, tpmPublicTarget, tpmQuoteTarget, tpmSignatureTarget } from './tpm.js';
import { jwkTarget, jwsTarget, strictJsonTarget } from './jose.js';
import { grantChainTarget, grantTarget, proofTarget, writSignatureTarget, writTarget } from './writ.js';
import { nitroDocumentTarget } from './nitro.js';
import { tdxQuoteTarget } from './tdx.js';
import { snpEvidenceTarget } from './sev-snp.js';
import { auditBundleTarget, auditCheckpointTarget, auditRecordTarget } from './audit.js';
import { x509SvidRenewalTarget } from './x509-svid-renewal.js';
import { assertionTarget, coseKeyTarget, stepUpTarget } from './webauthn.js';

const selectorTarget: FuzzTarget = {
  name: 'selector',
  parsers: 'src/registration/entry.ts: parseSelector',
  contract: 'returns the selector or throws a WritError (ERR_ENTRY_INVALID)',
  maxLen: 2048,
  sources: ['src/registration/entry.ts'],
  setup: () => ({
    seeds: ['join_token:0123456789abcdef', 'tpm:ek_hash:abc:def', 'tpm:model:swtpm', 'k8s_psat:pod-uid:1234'].map((s) => Buffer.from(s)),
    run(data) {
      parseSelector(data.toString('utf8'));
      return undefined;
    },
  }),
};

export const TARGETS: readonly FuzzTarget[] = [
  derTarget,
  pemTarget,
  x509Target,
  publicKeyTarget,
  csrTarget,
  spiffeIdTarget,
  bundleJwksTarget,
  bundlePemTarget,
  x509SvidParseTarget,
  x509SvidVerifyTarget,
  jwtSvidTarget,
  tpmPublicTarget,
  tpmAttestTarget,
  tpmSignatureTarget,
  tpmPcrSelectionTarget,
  tpmEvidenceTarget,
  eventLogTarget,
  tpmQuoteTarget,
  strictJsonTarget,
  jwsTarget,
  jwkTarget,
  grantTarget,
  grantChainTarget,
  writTarget,
  writSignatureTarget,
  proofTarget,
  selectorTarget,
  nitroDocumentTarget,
  tdxQuoteTarget,
  snpEvidenceTarget,
  auditRecordTarget,
  auditCheckpointTarget,
  auditBundleTarget,
  x509SvidRenewalTarget,
  coseKeyTarget,
  assertionTarget,
  stepUpTarget,
];
