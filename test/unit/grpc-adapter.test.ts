/** The protobuf-es → grpc-js adapter: what it serializes, and when it serializes only once. */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { RevocationService, WatchResponseSchema } from '../../src/gen/writ/v1/revocation_pb.js';
import { grpcServiceDefinition } from '../../src/rpc/grpc-adapter.js';

const watch = grpcServiceDefinition(RevocationService).watch!;
const heartbeat = (sequence: bigint) => create(WatchResponseSchema, { message: { case: 'heartbeat', value: { sequence, at: 1n } } });

describe('grpcServiceDefinition', () => {
  it('serializes a frozen message once for every stream it is written to, with the bytes toBinary gives', () => {
    const m = Object.freeze(heartbeat(7n));
    const a = watch.responseSerialize(m);
    expect(watch.responseSerialize(m)).toBe(a);
    expect(Buffer.compare(a, Buffer.from(toBinary(WatchResponseSchema, m)))).toBe(0);
    // Another frozen message has its own bytes.
    const other = watch.responseSerialize(Object.freeze(heartbeat(8n)));
    expect(fromBinary(WatchResponseSchema, other).message).toMatchObject({ case: 'heartbeat', value: { sequence: 8n } });
  });

  it('serializes a message that is not frozen every time (it may change between writes)', () => {
    const m = heartbeat(1n);
    const a = watch.responseSerialize(m);
    if (m.message.case === 'heartbeat') m.message.value.sequence = 2n;
    const b = watch.responseSerialize(m);
    expect(b).not.toBe(a);
    expect(fromBinary(WatchResponseSchema, b).message).toMatchObject({ value: { sequence: 2n } });
  });
});
