/** CreateGrant over the issuer's public port (TLS checked against the bundle and the issuer's SPIFFE ID). */
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { CreateGrantRequestSchema, GrantService, type CreateGrantResponse } from '../gen/writ/v1/grant_pb.js';
import { VerifyRequestSchema, VerifyService, type VerifyResponse } from '../gen/writ/v1/verify_pb.js';
import { grpcClientConstructor } from '../rpc/grpc-adapter.js';
import { asCallError, issuerChannelCredentials } from './attest-client.js';

async function unaryCall<Res>(server: string, bundlePem: string, svc: typeof GrantService | typeof VerifyService, method: string, message: unknown): Promise<Res> {
  const Client = grpcClientConstructor(svc);
  const client = new Client(server, issuerChannelCredentials(bundlePem), { 'grpc.ssl_target_name_override': 'writ-issuer' });
  try {
    return await new Promise<Res>((resolve, reject) => {
      const fn = (client as unknown as Record<string, (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method]!;
      fn.call(client, message, { deadline: new Date(Date.now() + 15_000) }, (e, r) => (e ? reject(asCallError(e)) : resolve(r)));
    });
  } finally {
    client.close();
  }
}

export type CreateGrantInput = MessageInitShape<typeof CreateGrantRequestSchema>;

export function createGrant(server: string, bundlePem: string, req: CreateGrantInput): Promise<CreateGrantResponse> {
  return unaryCall(server, bundlePem, GrantService, 'createGrant', create(CreateGrantRequestSchema, req));
}

export type VerifyInput = MessageInitShape<typeof VerifyRequestSchema>;

export function verifyRemote(server: string, bundlePem: string, req: VerifyInput): Promise<VerifyResponse> {
  return unaryCall(server, bundlePem, VerifyService, 'verify', create(VerifyRequestSchema, req));
}
