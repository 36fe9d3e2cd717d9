/** CreateGrant, Verify, Revoke and the audit checkpoint over the issuer's public port (TLS checked against the bundle and the issuer's SPIFFE ID). */
import type * as grpc from '@grpc/grpc-js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { GrantService, type CreateGrantRequestSchema, type CreateGrantResponse } from '../gen/writ/v1/grant_pb.js';
import { VerifyService, type VerifyRequestSchema, type VerifyResponse } from '../gen/writ/v1/verify_pb.js';
import { RevocationService, type RevokeRequestSchema, type RevokeResponse } from '../gen/writ/v1/revocation_pb.js';
import { AuditService, type GetCheckpointResponse, type ProveConsistencyResponse } from '../gen/writ/v1/audit_pb.js';
import { unaryCall } from '../rpc/grpc-adapter.js';
import { issuerCallError, issuerChannelCredentials } from './attest-client.js';

async function issuerCall<Res>(
  server: string,
  bundlePem: string,
  svc: typeof GrantService | typeof VerifyService | typeof RevocationService | typeof AuditService,
  method: string,
  req: unknown,
): Promise<Res> {
  try {
    // SNI must not be an IP (RFC 6066); the name checked is the SPIFFE ID, not this.
    return await unaryCall<Res>(server, issuerChannelCredentials(bundlePem), svc, method, req, {
      deadline: new Date(Date.now() + 15_000),
      channelOptions: { 'grpc.ssl_target_name_override': 'writ-issuer' },
    });
  } catch (e) {
    const err = e as grpc.ServiceError;
    throw typeof err.code === 'number' ? issuerCallError(server, err) : e;
  }
}

export type CreateGrantInput = MessageInitShape<typeof CreateGrantRequestSchema>;

export function createGrant(server: string, bundlePem: string, req: CreateGrantInput): Promise<CreateGrantResponse> {
  return issuerCall(server, bundlePem, GrantService, 'createGrant', req);
}

export type VerifyInput = MessageInitShape<typeof VerifyRequestSchema>;

export function verifyRemote(server: string, bundlePem: string, req: VerifyInput): Promise<VerifyResponse> {
  return issuerCall(server, bundlePem, VerifyService, 'verify', req);
}

export type RevokeInput = MessageInitShape<typeof RevokeRequestSchema>;

export function revokeRemote(server: string, bundlePem: string, req: RevokeInput): Promise<RevokeResponse> {
  return issuerCall(server, bundlePem, RevocationService, 'revoke', req);
}

/** The latest signed audit checkpoint and the audit verifier key, from the public port. */
export function auditCheckpointRemote(server: string, bundlePem: string): Promise<GetCheckpointResponse> {
  return issuerCall(server, bundlePem, AuditService, 'getCheckpoint', {});
}

/** The audit consistency proof between two tree sizes, from the public port. */
export function auditConsistencyRemote(server: string, bundlePem: string, fromSize: number, toSize: number): Promise<ProveConsistencyResponse> {
  return issuerCall(server, bundlePem, AuditService, 'proveConsistency', { fromSize: BigInt(fromSize), toSize: BigInt(toSize) });
}
