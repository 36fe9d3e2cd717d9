/**
 * The floor of the handshake benchmarks: a bare gRPC bidirectional stream with the issuer's TLS
 * setup (a serving certificate from the issuer's own CA chain, `RotatingServerCredentials`, the
 * server options of `writ server`; the client credentials and channel options of `attest()`),
 * exchanging two round trips of pre-serialised messages of the sizes a real handshake sends.
 * Whatever a handshake costs above this is writ's own work.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import type { Http2SecureServer } from 'node:http2';
import { ISSUER_CHANNEL_OPTIONS, issuerChannelCredentials } from '../../src/agent/attest-client.js';
import { SERVER_OPTIONS } from '../../src/server/server.js';
import { RotatingServerCredentials } from '../../src/server/tls.js';

/** Bytes of the four messages of one handshake, as protobuf puts them on the wire. */
export interface HandshakeSizes {
  readonly hello: number;
  readonly challenge: number;
  readonly evidence: number;
  readonly result: number;
}

const FLOOR_PATH = '/writ.bench.v1.Floor/Exchange';
const raw = (b: Buffer): Buffer => b;

/** A bidi method that passes bytes through (no protobuf: the floor has nothing to parse). */
const FLOOR_SERVICE: grpc.ServiceDefinition = {
  exchange: {
    path: FLOOR_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

export interface FloorServer {
  readonly address: string;
  /** TLS connections accepted so far. */
  connections(): number;
  stop(): Promise<void>;
}

/**
 * Starts the floor server on 127.0.0.1:0: the first message is answered with `challenge`
 * bytes, the second with `result` bytes and the end of the stream, as the issuer does.
 */
export async function startFloorServer(tls: { cert: string; key: string }, sizes: HandshakeSizes): Promise<FloorServer> {
  const challenge = randomBytes(sizes.challenge);
  const result = randomBytes(sizes.result);
  const server = new grpc.Server(SERVER_OPTIONS);
  server.addService(FLOOR_SERVICE, {
    exchange(call: grpc.ServerDuplexStream<Buffer, Buffer>) {
      let n = 0;
      call.on('data', () => {
        n++;
        if (n === 1) call.write(challenge);
        else if (n === 2) {
          call.write(result);
          call.end();
        }
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', new RotatingServerCredentials(tls), (e, p) => (e ? reject(e) : resolve(p))),
  );
  // Peer addresses do not tell connections apart (loopback reuses ports in TIME_WAIT): count
  // the TLS connections grpc-js's HTTP/2 server accepts (a private field; the bench fails loudly if it moves).
  const h2 = (server as unknown as { http2Servers?: Map<Http2SecureServer, unknown> }).http2Servers;
  if (!(h2 instanceof Map) || h2.size !== 1) throw new Error('bench: cannot reach the HTTP/2 server of the floor server to count connections');
  let accepted = 0;
  for (const s of h2.keys()) s.on('secureConnection', () => accepted++);
  return {
    address: `127.0.0.1:${port}`,
    connections: () => accepted,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** A floor client: `exchange()` runs one two-round-trip stream on `client` (a channel). */
export class FloorClient {
  private readonly hello: Buffer;
  private readonly evidence: Buffer;

  constructor(
    private readonly address: string,
    private readonly bundlePem: string,
    sizes: HandshakeSizes,
  ) {
    this.hello = randomBytes(sizes.hello);
    this.evidence = randomBytes(sizes.evidence);
  }

  /** A channel as `attest()` makes one: the same credentials (made the same way) and options. */
  channel(): grpc.Client {
    return new grpc.Client(this.address, issuerChannelCredentials(this.bundlePem), ISSUER_CHANNEL_OPTIONS);
  }

  /** One exchange on a new channel, closed afterwards, as `attest()` does. */
  async once(): Promise<void> {
    const client = this.channel();
    try {
      await this.exchange(client);
    } finally {
      client.close();
    }
  }

  /** hello → challenge → evidence → result on one stream of `client`. */
  exchange(client: grpc.Client): Promise<void> {
    const deadline = new Date(Date.now() + 30_000);
    return new Promise<void>((resolve, reject) => {
      const call = client.makeBidiStreamRequest<Buffer, Buffer>(FLOOR_PATH, raw, raw, { deadline });
      let n = 0;
      call.on('data', () => {
        n++;
        if (n === 1) call.write(this.evidence);
        else if (n === 2) {
          call.end();
          resolve();
        }
      });
      call.on('error', reject);
      call.on('end', () => (n < 2 ? reject(new Error('floor: stream ended early')) : undefined));
      call.write(this.hello);
    });
  }
}
