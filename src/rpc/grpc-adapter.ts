/**
 * protobuf-es v2 does not emit grpc-js service definitions (protobuf-es issue 252): this turns
 * a generated service descriptor into a grpc-js ServiceDefinition with toBinary/fromBinary.
 */
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
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

/**
 * A frozen message is serialized once, however many streams it is written to (the revocation
 * fan-out writes one event to every subscriber); anything else, every time.
 */
function serializer<D extends DescMessage>(desc: D): (m: MessageShape<D>) => Buffer {
  const once = new WeakMap<object, Buffer>();
  return (m) => {
    if (!Object.isFrozen(m)) return Buffer.from(toBinary(desc, m));
    let b = once.get(m);
    if (!b) {
      b = Buffer.from(toBinary(desc, m));
      once.set(m, b);
    }
    return b;
  };
}

function deserializer<D extends DescMessage>(desc: D): (b: Buffer) => MessageShape<D> {
  return (b) => fromBinary(desc, b);
}

// A service descriptor never changes: its client class is made once (about 30 us each time otherwise).
const clientConstructors = new WeakMap<DescService, grpc.ServiceClientConstructor>();

/** A typed grpc-js client constructor for a generated service (one per service). */
export function grpcClientConstructor(svc: DescService): grpc.ServiceClientConstructor {
  let ctor = clientConstructors.get(svc);
  if (!ctor) {
    ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(svc), svc.name);
    clientConstructors.set(svc, ctor);
  }
  return ctor;
}

/**
 * One unary call on a fresh channel to `target`: the request is built from `req` with the
 * method's input schema, the channel is closed afterwards, and failures reject with the
 * grpc-js ServiceError (callers map it to their own error).
 */
export async function unaryCall<Res>(
  target: string,
  credentials: grpc.ChannelCredentials,
  svc: DescService,
  method: string,
  req: unknown,
  opts: { deadline: Date; channelOptions?: grpc.ChannelOptions },
): Promise<Res> {
  const m = svc.methods.find((x) => x.localName === method);
  if (m?.methodKind !== 'unary') throw new Error(`rpc: no unary method ${method} on ${svc.typeName}`);
  const message = create(m.input, req as never);
  const Client = grpcClientConstructor(svc);
  const client = new Client(target, credentials, opts.channelOptions);
  try {
    return await new Promise<Res>((resolve, reject) => {
      const fn = (client as unknown as Record<string, (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method]!;
      fn.call(client, message, { deadline: opts.deadline }, (e, r) => (e ? reject(e) : resolve(r)));
    });
  } finally {
    client.close();
  }
}

/** The unary methods of a generated service, typed from its descriptor: a misspelled method or a wrong response type does not compile. */
export type UnaryClient<S extends GenServiceMethods> = {
  [K in keyof S as S[K]['methodKind'] extends 'unary' ? K : never]: (req: MessageInitShape<S[K]['input']>) => Promise<MessageShape<S[K]['output']>>;
};

/**
 * A typed client over `call`, which performs one unary call of a method (e.g. `unaryCall` on a
 * fresh channel, with the caller's deadline and error mapping).
 */
export function unaryClient<S extends GenServiceMethods>(svc: GenService<S>, call: (method: DescMethod, req: unknown) => Promise<unknown>): UnaryClient<S> {
  const out: Record<string, (req: unknown) => Promise<unknown>> = {};
  for (const m of svc.methods) if (m.methodKind === 'unary') out[m.localName] = (req) => call(m, req);
  return out as UnaryClient<S>;
}
