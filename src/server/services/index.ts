/**
 * The issuer's services, one row each (descriptor, implementation, listeners). Registration,
 * reflection and health are derived from this list (service-table.ts).
 */
import { AdminService, file_writ_v1_admin } from '../../gen/writ/v1/admin_pb.js';
import { ApprovalService, file_writ_v1_approval } from '../../gen/writ/v1/approval_pb.js';
import { approvalService } from './approval.js';
import { AuditService, file_writ_v1_audit } from '../../gen/writ/v1/audit_pb.js';
import { auditService } from './audit.js';
import { AttestationService, file_writ_v1_attestation } from '../../gen/writ/v1/attestation_pb.js';
import { BundleService, file_writ_v1_bundle } from '../../gen/writ/v1/bundle_pb.js';
import { GrantService, file_writ_v1_grant } from '../../gen/writ/v1/grant_pb.js';
import { VerifyService, file_writ_v1_verify } from '../../gen/writ/v1/verify_pb.js';
import { RevocationService, file_writ_v1_revocation } from '../../gen/writ/v1/revocation_pb.js';
import { revocationService } from './revocation.js';
import type { ServerCore } from '../core.js';
import type { ServiceEntry } from '../service-table.js';
import { adminService } from './admin.js';
import { attestationService } from './attestation.js';
import { bundleService } from './bundle.js';
import { grantService } from './grant.js';
import { verifyService } from './verify.js';

const revocationDeps = (c: ServerCore) => ({
  revocations: c.revocations,
  feed: c.feed,
  store: c.store,
  ca: c.ca,
  clock: c.clock,
  logger: c.logger,
  principals: c.principals,
  replayCache: c.replayCache,
  watchStreams: c.watchStreams,
});

export function serviceTable(c: ServerCore): ServiceEntry[] {
  return [
    {
      service: AttestationService,
      file: file_writ_v1_attestation,
      on: ['public'],
      impl: attestationService({ issuer: c.issuer, logger: c.logger, metrics: c.metrics, limiter: c.limits.handshakes, refusals: c.refusals }),
    },
    { service: BundleService, file: file_writ_v1_bundle, on: ['public', 'admin'], impl: bundleService({ ca: c.ca }) },
    // Checkpoints and proofs for anyone; record contents on the admin listener only.
    {
      service: AuditService,
      file: file_writ_v1_audit,
      on: ['public'],
      impl: auditService({ audit: c.audit, store: c.store, logger: c.logger, records: false, limiter: c.limits.calls }),
    },
    { service: AuditService, file: file_writ_v1_audit, on: ['admin'], impl: auditService({ audit: c.audit, store: c.store, logger: c.logger, records: true }) },
    { service: GrantService, file: file_writ_v1_grant, on: ['public'], impl: grantService({ grants: c.grants, logger: c.logger, limiter: c.limits.calls }) },
    {
      service: ApprovalService,
      file: file_writ_v1_approval,
      on: ['public'],
      impl: approvalService({ approvals: c.approvals, logger: c.logger, limiter: c.limits.calls, watchStreams: c.watchStreams }),
    },
    {
      service: VerifyService,
      file: file_writ_v1_verify,
      on: ['public'],
      impl: verifyService({
        ca: c.ca,
        clock: c.clock,
        logger: c.logger,
        reverifiers: c.evidence.reverifiersFromSettings(),
        replayCache: c.replayCache,
        limiter: c.limits.calls,
        store: c.store,
      }),
    },
    {
      service: AdminService,
      file: file_writ_v1_admin,
      on: ['admin'],
      impl: adminService({ admin: c.admin, logger: c.logger, policies: c.policies, store: c.store, tasks: c.tasks }),
    },
    {
      service: RevocationService,
      file: file_writ_v1_revocation,
      on: ['public'],
      impl: revocationService({ ...revocationDeps(c), operator: false, limiter: c.limits.calls }),
    },
    { service: RevocationService, file: file_writ_v1_revocation, on: ['admin'], impl: revocationService({ ...revocationDeps(c), operator: true }) },
  ];
}
