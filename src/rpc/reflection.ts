/**
 * gRPC server reflection (grpc.reflection.v1 and, same wire format, v1alpha) built from the
 * descriptors protobuf-es embeds in the generated code, so grpcurl and friends work.
 */
import { create, toBinary, type DescFile, type DescMessage, type DescEnum } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type * as grpc from '@grpc/grpc-js';
import { ServerReflectionResponseSchema, type ServerReflectionRequest, type ServerReflectionResponse } from '../gen/grpc/reflection/v1/reflection_pb.js';

export function reflectionService(files: readonly DescFile[], serviceNames: () => string[]): grpc.UntypedServiceImplementation {
  const byName = new Map<string, DescFile>();
  const bySymbol = new Map<string, DescFile>();
  const addMessage = (f: DescFile, m: DescMessage) => {
    bySymbol.set(m.typeName, f);
    for (const n of m.nestedMessages) addMessage(f, n);
    for (const e of m.nestedEnums) bySymbol.set(e.typeName, f);
  };
  const addFile = (f: DescFile) => {
    if (byName.has(f.proto.name)) return;
    byName.set(f.proto.name, f);
    for (const m of f.messages) addMessage(f, m);
    for (const e of f.enums as DescEnum[]) bySymbol.set(e.typeName, f);
    for (const s of f.services) {
      bySymbol.set(s.typeName, f);
      for (const m of s.methods) bySymbol.set(`${s.typeName}.${m.name}`, f);
    }
    for (const d of f.dependencies) addFile(d);
  };
  for (const f of files) addFile(f);

  /** The file and its transitive dependencies, serialised. */
  const withDeps = (f: DescFile): Uint8Array[] => {
    const out: Uint8Array[] = [];
    const seen = new Set<string>();
    const walk = (x: DescFile) => {
      if (seen.has(x.proto.name)) return;
      seen.add(x.proto.name);
      out.push(toBinary(FileDescriptorProtoSchema, x.proto));
      for (const d of x.dependencies) walk(d);
    };
    walk(f);
    return out;
  };

  const answer = (req: ServerReflectionRequest): ServerReflectionResponse => {
    const base = { validHost: req.host, originalRequest: req };
    const notFound = (what: string) =>
      create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: { case: 'errorResponse', value: { errorCode: 5, errorMessage: `${what} not found` } },
      });
    const files = (f: DescFile | undefined, what: string) =>
      f
        ? create(ServerReflectionResponseSchema, { ...base, messageResponse: { case: 'fileDescriptorResponse', value: { fileDescriptorProto: withDeps(f) } } })
        : notFound(what);
    const r = req.messageRequest;
    switch (r.case) {
      case 'listServices':
        return create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: { case: 'listServicesResponse', value: { service: serviceNames().map((name) => ({ name })) } },
        });
      case 'fileByFilename':
        return files(byName.get(r.value), `file ${r.value}`);
      case 'fileContainingSymbol':
        return files(bySymbol.get(r.value), `symbol ${r.value}`);
      case 'allExtensionNumbersOfType':
        return create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: { case: 'allExtensionNumbersResponse', value: { baseTypeName: r.value, extensionNumber: [] } },
        });
      default:
        return create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: { case: 'errorResponse', value: { errorCode: 12, errorMessage: 'not implemented' } },
        });
    }
  };

  return {
    serverReflectionInfo(call: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>) {
      call.on('data', (req: ServerReflectionRequest) => call.write(answer(req)));
      call.on('end', () => call.end());
    },
  };
}
