// A Node relying party on the sidecar's socket, with writ's Workload API client (src/workload,
// built into dist/ by `make build`): an mTLS server that accepts only the SPIFFE ID it names, a
// client that accepts only the server's SPIFFE ID (never its host name; here both are this
// agent), and a JWT-SVID fetched and validated for an audience, refused for another.
//   SPIFFE_ENDPOINT_SOCKET=unix:///tmp/agent.sock node examples/sidecar/relying-party.mjs spiffe://writ.local/agent/demo https://rp.example
import { once } from 'node:events';
import * as tls from 'node:tls';
import { authorizeID, JWTSource, tlsClientOptions, tlsServer, X509Source } from '../../dist/src/workload/index.js';

const [id = 'spiffe://writ.local/agent/demo', audience = 'https://rp.example'] = process.argv.slice(2);
const source = await X509Source.open();
const server = tlsServer(source, authorizeID(id), (socket, peer) => socket.end(`hello ${peer.uri}\n`)).listen(0, '127.0.0.1');
await once(server, 'listening');
const client = tls.connect({ host: '127.0.0.1', port: server.address().port, ...tlsClientOptions(source, authorizeID(id)) });
client.on('data', (d) => process.stdout.write(`mtls: ${d}`));
await once(client, 'end');

const jwt = await JWTSource.open();
const svid = jwt.validate((await jwt.fetch(audience)).token, audience);
console.log(`jwt-svid valid: sub ${svid.id.uri} aud ${svid.audience.join(',')}`);
try {
  jwt.validate(svid.token, 'https://other.example');
} catch (e) {
  console.log(`jwt-svid for https://other.example refused: ${e.message}`);
}
server.close();
source.close();
jwt.close();
