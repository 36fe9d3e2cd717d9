/** gRPC AdminService (admin socket only): registration entries, join tokens, policies, decisions. */
import { create } from '@bufbuild/protobuf';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  CreateEntryResponseSchema,
  GetPolicyResponseSchema,
  ListDecisionsResponseSchema,
  ListPoliciesResponseSchema,
  PushPolicyResponseSchema,
  type PolicyFile,
  CreateJoinTokenResponseSchema,
  DeleteEntryResponseSchema,
  EntrySchema,
  GetEntryResponseSchema,
  GetTaskResponseSchema,
  ListTasksResponseSchema,
  ListEntriesResponseSchema,
  type Entry as PbEntry,
} from '../../gen/writ/v1/admin_pb.js';
import { EntryError } from '../../errors.js';
import type { Admin } from '../../issuance/admin.js';
import type { Entry } from '../../registration/entry.js';
import { unary } from '../unary.js';
import type { PolicySnapshots } from '../../issuance/policies.js';
import type { Store } from '../../store/store.js';
import type { RevokedBy, Tasks, TaskSummary, TaskTree } from '../../issuance/tasks.js';

function toPb(e: Entry): PbEntry {
  return create(EntrySchema, {
    id: e.id,
    spiffeId: e.spiffeId,
    selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
    x509SvidTtl: e.x509SvidTtl,
    jwtSvidTtl: e.jwtSvidTtl,
    scopeCeiling: [...e.scopeCeiling],
    hint: e.hint,
    createdAt: BigInt(Math.floor(e.createdAt / 1000)),
  });
}

/** Most decisions one ListDecisions call returns. */
export const MAX_DECISIONS_LISTED = 1000;

function revokedByPb(r: RevokedBy | undefined) {
  return r
    ? { sequence: BigInt(r.seq), kind: r.kind ?? '', target: r.target ?? '', actor: r.actor ?? '', reason: r.reason ?? '', at: BigInt(r.at) }
    : undefined;
}

function taskPb(s: TaskSummary) {
  const t = s.task;
  return {
    id: t.id,
    principal: `${t.principalIss}#${t.principalSub}`,
    goal: t.goal,
    createdAt: BigInt(t.createdAt),
    expiresAt: BigInt(t.expiresAt),
    state: s.state,
    endedAt: BigInt(t.endedAt ?? 0),
    endedBy: t.endedBy ?? '',
    endReason: t.endReason ?? '',
  };
}

function taskTreePb(tree: TaskTree) {
  return create(GetTaskResponseSchema, {
    task: taskPb(tree),
    grants: tree.grants.map((g) => ({
      id: g.jti,
      depth: g.depth,
      fromWrit: g.fromWrit ?? '',
      from: g.from,
      delegateJkt: g.delegateJkt,
      scope: [...g.scope],
      boundaries: [...g.boundaries],
      escalate: [...g.escalate],
      maxDepth: g.maxDepth,
      createdAt: BigInt(g.createdAt),
      expiresAt: BigInt(g.expiresAt),
      state: g.state,
      revokedBy: revokedByPb(g.revokedBy),
    })),
    writs: tree.writs.map((w) => ({
      id: w.jti,
      grant: w.grant,
      spiffeId: w.spiffeId,
      jkt: w.jkt,
      evidenceType: w.evidenceType,
      entryId: w.entryId,
      platform: w.platform,
      issuedAt: BigInt(w.issuedAt),
      expiresAt: BigInt(w.expiresAt),
      state: w.state,
      revokedBy: revokedByPb(w.revokedBy),
    })),
    truncated: tree.truncated,
  });
}

export function adminService(deps: { admin: Admin; logger: Logger; policies: PolicySnapshots; store: Store; tasks: Tasks }): grpc.UntypedServiceImplementation {
  const { admin, logger, policies, store, tasks } = deps;
  return {
    listTasks: unary(logger, 'ListTasks', async (req: { limit: number }) =>
      create(ListTasksResponseSchema, { tasks: (await tasks.list(req.limit || 100)).map(taskPb) }),
    ),
    getTask: unary(logger, 'GetTask', async (req: { id: string }) => taskTreePb(await tasks.show(req.id))),
    pushPolicy: unary(logger, 'PushPolicy', async (req: { files: PolicyFile[] }) => {
      const r = await policies.push(req.files.map((f) => ({ name: f.name, text: f.text })));
      logger.info({ digest: r.digest, created: r.created, policies: r.policies }, 'policy snapshot activated');
      return create(PushPolicyResponseSchema, { digest: r.digest, created: r.created, policies: r.policies });
    }),
    getPolicy: unary(logger, 'GetPolicy', async (req: { digest: string }) => {
      const active = await store.getActivePolicy();
      const snap = req.digest ? await policies.get(req.digest) : await policies.active();
      return create(GetPolicyResponseSchema, {
        digest: snap.digest,
        createdAt: BigInt(Math.floor(snap.createdAt / 1000)),
        active: active?.digest === snap.digest,
        policies: snap.policies.map((p) => ({ id: p.id, text: p.text, effect: p.effect, escalate: p.escalate ?? '' })),
      });
    }),
    listPolicies: unary(logger, 'ListPolicies', async () =>
      create(ListPoliciesResponseSchema, {
        snapshots: (await policies.list()).map((s) => ({
          digest: s.digest,
          createdAt: BigInt(Math.floor(s.createdAt / 1000)),
          policies: s.policies,
          active: s.active,
        })),
      }),
    ),
    listDecisions: unary(logger, 'ListDecisions', async (req: { limit: number }) =>
      create(ListDecisionsResponseSchema, {
        decisions: (await store.listDecisions(Math.min(req.limit || 50, MAX_DECISIONS_LISTED))).map((d) => ({
          ...d,
          at: BigInt(d.at),
          policies: [...d.policies],
        })),
      }),
    ),
    createEntry: unary(logger, 'CreateEntry', async (req: { entry?: PbEntry }) => {
      const e = req.entry;
      if (!e) throw new EntryError('ERR_ENTRY_INVALID', 'entry: missing entry');
      const created = await admin.createEntry({
        spiffeId: e.spiffeId,
        selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
        x509SvidTtl: e.x509SvidTtl,
        jwtSvidTtl: e.jwtSvidTtl,
        scopeCeiling: e.scopeCeiling,
        hint: e.hint,
      });
      logger.info({ entryId: created.id, spiffeId: created.spiffeId }, 'entry created');
      return create(CreateEntryResponseSchema, { entry: toPb(created) });
    }),
    listEntries: unary(logger, 'ListEntries', async () => create(ListEntriesResponseSchema, { entries: (await admin.listEntries()).map(toPb) })),
    getEntry: unary(logger, 'GetEntry', async (req: { id: string }) => create(GetEntryResponseSchema, { entry: toPb(await admin.getEntry(req.id)) })),
    deleteEntry: unary(logger, 'DeleteEntry', async (req: { id: string }) => {
      await admin.deleteEntry(req.id);
      logger.info({ entryId: req.id }, 'entry deleted');
      return create(DeleteEntryResponseSchema, {});
    }),
    createJoinToken: unary(logger, 'CreateJoinToken', async (req: { ttl: number; spiffeId: string }) => {
      const t = await admin.createJoinToken(req.ttl * 1000, req.spiffeId || undefined);
      logger.info({ tokenId: t.id, entryId: t.entryId, expiresAt: t.expiresAt.toISOString() }, 'join token created');
      return create(CreateJoinTokenResponseSchema, {
        token: t.token,
        id: t.id,
        expiresAt: BigInt(Math.floor(t.expiresAt.getTime() / 1000)),
        entryId: t.entryId ?? '',
        selector: t.selector,
      });
    }),
  };
}
