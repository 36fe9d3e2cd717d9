/**
 * protobuf-es v2 does not emit grpc-js service definitions (protobuf-es issue 252): this turns
 * a generated service descriptor into a grpc-js ServiceDefinition with toBinary/fromBinary.
 */
import { fromBinary, toBinary, type DescMessage, type DescService, type MessageShape } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';

export function grpcServiceDefinition(svc: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of svc.methods) {
    const clientStreams = m.methodKind === 'client_streaming' || m.methodKind === 'bidi_streaming';
    const serverStreams = m.methodKind === 'server_streaming' || m.methodKind === 'bidi_streaming';
    def[m.localName] = {
      path: `/${svc.typeName}/${m.name}`,
      requestStream: clientStreams,
      responseStream: serverStreams,
      originalName: m.name,
      requestSerialize: serializer(m.input) as (v: unknown) => Buffer,
      requestDeserialize: deserializer(m.input),
      responseSerialize: serializer(m.output) as (v: unknown) => Buffer,
      responseDeserialize: deserializer(m.output),
    };
  }
  return def;
}

function serializer<D extends DescMessage>(desc: D): (m: MessageShape<D>) => Buffer {
  return (m) => Buffer.from(toBinary(desc, m));
}

function deserializer<D extends DescMessage>(desc: D): (b: Buffer) => MessageShape<D> {
  return (b) => fromBinary(desc, b);
}

/** A typed grpc-js client constructor for a generated service. */
export function grpcClientConstructor(svc: DescService): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(grpcServiceDefinition(svc), svc.name);
}
