/**
 * gRPC AuditService: checkpoints and proofs for anyone (hashes and sizes only), record contents
 * only on the admin listener (`records`). Sizes and positions are UNTRUSTED: bounded before use.
 */
import { create } from '@bufbuild/protobuf';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { type AuditLog, verifyStoredLog } from '../../audit/log.js';
import type { Store } from '../../store/store.js';
import { MAX_TREE_SIZE } from '../../audit/merkle.js';
import { encodeRecord } from '../../audit/record.js';
import { AuditError } from '../../errors.js';
import {
  GetCheckpointResponseSchema,
  GetRecordResponseSchema,
  type GetRecordRequest,
  ProveConsistencyResponseSchema,
  type ProveConsistencyRequest,
  ProveInclusionResponseSchema,
  type ProveInclusionRequest,
  ListRecordsResponseSchema,
  type ListRecordsRequest,
  VerifyLogResponseSchema,
} from '../../gen/writ/v1/audit_pb.js';
import type { RateLimiter } from '../rate-limit.js';
import { unary } from '../unary.js';

/** A uint64 from the wire as a tree position or size, refused past the largest tree. */
function size(v: bigint, what: string): number {
  if (v > BigInt(MAX_TREE_SIZE)) throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit: ${what} ${v} is past the largest tree`);
  return Number(v);
}

function instant(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new AuditError('ERR_AUDIT_RECORD_INVALID', 'audit: since is not a time');
  return Number(v);
}

export function auditService(deps: {
  audit: AuditLog;
  store: Store;
  logger: Logger;
  records: boolean;
  limiter?: RateLimiter;
}): grpc.UntypedServiceImplementation {
  const { audit, logger } = deps;
  return {
    getCheckpoint: unary(
      logger,
      'GetCheckpoint',
      async () => {
        // On demand: the last checkpoint again when nothing was appended since, else a new one.
        const c = await audit.checkpoint();
        return create(GetCheckpointResponseSchema, { checkpoint: c.note, verifierKey: audit.verifierKey });
      },
      deps.limiter,
    ),
    proveInclusion: unary(
      logger,
      'ProveInclusion',
      async (req: ProveInclusionRequest) => {
        const b = await audit.prove(size(req.seq, 'seq'), size(req.treeSize, 'tree size'));
        return create(ProveInclusionResponseSchema, { hashes: b.proof.map((h) => new Uint8Array(h)) });
      },
      deps.limiter,
    ),
    proveConsistency: unary(
      logger,
      'ProveConsistency',
      async (req: ProveConsistencyRequest) => {
        const p = await audit.consistency(size(req.fromSize, 'from size'), size(req.toSize, 'to size'));
        return create(ProveConsistencyResponseSchema, { hashes: p.map((h) => new Uint8Array(h)) });
      },
      deps.limiter,
    ),
    getRecord: unary(
      logger,
      'GetRecord',
      async (req: GetRecordRequest) => {
        if (!deps.records) throw new AuditError('ERR_AUDIT_DENIED', 'audit: record contents are served on the admin listener only');
        const r = await audit.record(size(req.seq, 'seq'));
        return create(GetRecordResponseSchema, { record: new Uint8Array(r) });
      },
      deps.limiter,
    ),
    listRecords: unary(logger, 'ListRecords', async (req: ListRecordsRequest) => {
      if (!deps.records) throw new AuditError('ERR_AUDIT_DENIED', 'audit: record contents are served on the admin listener only');
      const limit = req.limit === 0 ? 50 : req.limit;
      if (limit > 1000) throw new AuditError('ERR_AUDIT_RECORD_INVALID', 'audit: a listing returns at most 1000 records');
      const rs = await audit.list(
        {
          ...(req.task ? { task: req.task } : {}),
          ...(req.principal ? { principal: req.principal } : {}),
          ...(req.actor ? { actor: req.actor } : {}),
          ...(req.since ? { since: instant(req.since) } : {}),
        },
        limit,
      );
      return create(ListRecordsResponseSchema, { records: rs.map((r) => new Uint8Array(encodeRecord(r))) });
    }),
    verifyLog: unary(logger, 'VerifyLog', async () => {
      if (!deps.records) throw new AuditError('ERR_AUDIT_DENIED', 'audit: verify-log runs on the admin listener only');
      const r = await verifyStoredLog(deps.store, audit.verifier);
      if (r.ok) return create(VerifyLogResponseSchema, { ok: true, treeSize: BigInt(r.size), root: new Uint8Array(r.root) });
      logger.error({ seq: r.seq, problem: r.problem }, 'audit log does not verify');
      return create(VerifyLogResponseSchema, { ok: false, hasSeq: r.seq !== null, seq: BigInt(r.seq ?? 0), problem: r.problem });
    }),
  };
}
