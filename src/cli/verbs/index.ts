/**
 * Every verb of the `writ` executable, one per line; evidence plug-ins add their own verbs
 * (e.g. `writ tpm check-quote`) through the agent builtins list.
 */
import type { CliCatalog, Verb } from '../verb.js';
import { agentAttestVerb } from './agent/attest.js';
import { agentKeygenVerb } from './agent/keygen.js';
import { agentRunVerb } from './agent/run.js';
import { agentHealthcheckVerb } from './agent/healthcheck.js';
import { approvalApproveVerb } from './approval/approve.js';
import { approvalDenyVerb } from './approval/deny.js';
import { approvalListVerb } from './approval/list.js';
import { approvalShowVerb } from './approval/show.js';
import { auditCheckpointVerb } from './audit/checkpoint.js';
import { auditKeyVerb } from './audit/key.js';
import { auditListVerb } from './audit/list.js';
import { auditProveVerb } from './audit/prove.js';
import { auditShowVerb } from './audit/show.js';
import { auditVerifyVerb } from './audit/verify.js';
import { auditVerifyLogVerb } from './audit/verify-log.js';
import { auditWitnessVerb } from './audit/witness.js';
import { bundleShowVerb } from './bundle-show.js';
import { datastoreMigrateVerb } from './datastore/migrate.js';
import { devIdpVerb } from './dev/idp.js';
import { devIdpTokenVerb } from './dev/idp-token.js';
import { enclaveCheckVerb } from './enclave-check.js';
import { escalateVerb } from './escalate.js';
import { entryCreateVerb } from './entry/create.js';
import { entryDeleteVerb } from './entry/delete.js';
import { entryListVerb } from './entry/list.js';
import { entryShowVerb } from './entry/show.js';
import { grantCreateVerb } from './grant/create.js';
import { grantDelegateVerb } from './grant/delegate.js';
import { healthcheckVerb } from './healthcheck.js';
import { policyDecisionsVerb } from './policy/decisions.js';
import { policyListVerb } from './policy/list.js';
import { policyPushVerb } from './policy/push.js';
import { policyShowVerb } from './policy/show.js';
import { proofCreateVerb } from './proof-create.js';
import { revokeVerb } from './revoke.js';
import { revocationWatchVerb } from './revocation/watch.js';
import { serverVerb } from './server.js';
import { taskEndVerb } from './task/end.js';
import { taskListVerb } from './task/list.js';
import { taskShowVerb } from './task/show.js';
import { tokenCreateVerb } from './token-create.js';
import { verifyVerb } from './verify.js';

export const CORE_VERBS: readonly Verb[] = [
  serverVerb,
  healthcheckVerb,
  datastoreMigrateVerb,
  entryCreateVerb,
  entryListVerb,
  entryShowVerb,
  entryDeleteVerb,
  tokenCreateVerb,
  bundleShowVerb,
  policyPushVerb,
  policyShowVerb,
  policyListVerb,
  policyDecisionsVerb,
  agentAttestVerb,
  agentKeygenVerb,
  agentRunVerb,
  agentHealthcheckVerb,
  grantCreateVerb,
  grantDelegateVerb,
  proofCreateVerb,
  verifyVerb,
  revokeVerb,
  escalateVerb,
  approvalListVerb,
  approvalShowVerb,
  approvalDenyVerb,
  approvalApproveVerb,
  taskEndVerb,
  taskListVerb,
  taskShowVerb,
  enclaveCheckVerb,
  revocationWatchVerb,
  auditCheckpointVerb,
  auditKeyVerb,
  auditListVerb,
  auditProveVerb,
  auditShowVerb,
  auditVerifyVerb,
  auditVerifyLogVerb,
  auditWitnessVerb,
  devIdpVerb,
  devIdpTokenVerb,
];

/** The core verbs and those the evidence types add. */
export function allVerbs(catalog: CliCatalog): Verb[] {
  const plugin: Verb[] = catalog.producers.flatMap((p) =>
    (p.commands ?? []).map(
      (c): Verb => ({
        name: c.name,
        summary: c.summary,
        options: c.options,
        ...(c.positionals ? { positionals: c.positionals, maxPositionals: 1 } : {}),
        run: (ctx) => c.run(ctx),
      }),
    ),
  );
  return [...CORE_VERBS, ...plugin];
}
