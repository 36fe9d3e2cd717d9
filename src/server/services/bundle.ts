/** gRPC BundleService: the public trust bundle. */
import { create } from '@bufbuild/protobuf';
import type * as grpc from '@grpc/grpc-js';
import { GetBundleResponseSchema, type GetBundleRequest, type GetBundleResponse } from '../../gen/writ/v1/bundle_pb.js';
import type { CaManager } from '../../ca/manager.js';
import { bundleDocuments } from '../bundle-documents.js';

export function bundleService(deps: { ca: CaManager }): grpc.UntypedServiceImplementation {
  return {
    getBundle(_call: grpc.ServerUnaryCall<GetBundleRequest, GetBundleResponse>, cb: grpc.sendUnaryData<GetBundleResponse>) {
      const b = deps.ca.bundle();
      const d = bundleDocuments(b);
      cb(null, create(GetBundleResponseSchema, { trustDomain: b.trustDomain, jwks: d.jwks, pem: d.pem, sequence: BigInt(b.sequence ?? 0) }));
    },
  };
}
