/** gRPC AdminService (admin socket only): registration entries and join tokens. */
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  CreateEntryResponseSchema,
  CreateJoinTokenResponseSchema,
  DeleteEntryResponseSchema,
  EntrySchema,
  GetEntryResponseSchema,
  ListEntriesResponseSchema,
  type Entry as PbEntry,
} from '../../gen/writ/v1/admin_pb.js';
import { EntryError } from '../../errors.js';
import type { Admin } from '../../issuance/admin.js';
import type { Entry } from '../../registration/entry.js';
import { toGrpcFailure } from '../status.js';

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

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => void;

function unary<Req, Res>(logger: Logger, name: string, fn: (req: Req) => Promise<Res>): Unary<Req, Res> {
  return (call, cb) => {
    fn(call.request).then(
      (res) => cb(null, res),
      (e) => {
        const f = toGrpcFailure(e);
        logger.warn({ rpc: name, code: f.writCode, reason: f.internal }, 'admin call failed');
        const metadata = new grpc.Metadata();
        metadata.set('writ-error-code', f.writCode);
        cb({ code: f.code, details: f.details, metadata });
      },
    );
  };
}

export function adminService(deps: { admin: Admin; logger: Logger }): grpc.UntypedServiceImplementation {
  const { admin, logger } = deps;
  return {
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
      });
    }),
  };
}
