// An agent that takes its identity from the sidecar the SPIFFE way: SPIFFE_ENDPOINT_SOCKET,
// the upstream Workload API proto (vendored in proto/spiffe/workload), any gRPC client.
// Prints each X.509-SVID as it arrives (the first at once, then every rotation) and one JWT-SVID.
//   SPIFFE_ENDPOINT_SOCKET=unix:///tmp/agent.sock node examples/sidecar/agent.mjs https://rp.example
import { X509Certificate } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const proto = fileURLToPath(new URL('../../proto/spiffe/workload/workload.proto', import.meta.url));
const { SpiffeWorkloadAPI } = grpc.loadPackageDefinition(protoLoader.loadSync(proto, { keepCase: true, defaults: true }));
const socket = process.env.SPIFFE_ENDPOINT_SOCKET;
if (!socket?.startsWith('unix:///')) throw new Error('set SPIFFE_ENDPOINT_SOCKET=unix:///PATH');
const client = new SpiffeWorkloadAPI(`unix:${socket.slice('unix://'.length)}`, grpc.credentials.createInsecure());
const header = new grpc.Metadata();
header.set('workload.spiffe.io', 'true');

// x509_svid is the chain as DER certificates back to back, leaf first: the leaf is its SEQUENCE's
// tag, length and contents (a DER length is one byte below 0x80, else 0x81..0x84 and that many bytes).
const derLength = (b) => (b[1] < 0x80 ? 2 + b[1] : 2 + (b[1] & 0x7f) + b.readUIntBE(2, b[1] & 0x7f));

const stream = client.FetchX509SVID({}, header);
stream.on('data', (m) => {
  const s = m.svids[0];
  const leaf = new X509Certificate(s.x509_svid.subarray(0, derLength(s.x509_svid)));
  console.log(`x509-svid ${s.spiffe_id} serial ${leaf.serialNumber} until ${new Date(leaf.validTo).toISOString()} (key ${s.x509_svid_key.length} bytes of PKCS#8)`);
});
stream.on('error', (e) => {
  console.log(`stream ended: ${grpc.status[e.code]}: ${e.details}`);
  process.exit(0);
});
client.FetchJWTSVID({ audience: [process.argv[2] ?? 'https://rp.example'] }, header, (e, r) => {
  if (e) return console.log(`jwt-svid refused: ${grpc.status[e.code]}: ${e.details}`);
  const claims = JSON.parse(Buffer.from(r.svids[0].svid.split('.')[1], 'base64url'));
  console.log(`jwt-svid sub ${claims.sub} aud ${claims.aud} exp ${new Date(claims.exp * 1000).toISOString()}`);
});
process.once('SIGINT', () => process.exit(0));
