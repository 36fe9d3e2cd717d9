/**
 * The README's "A sidecar next to an agent", run as written: a real issuer (trust domain
 * writ.local, 4 s X.509-SVIDs so a rotation arrives within the test), a real `writ agent run`
 * process with the README's flags, and `node examples/sidecar/agent.mjs https://rp.example` with
 * SPIFFE_ENDPOINT_SOCKET as the README sets it. Its output is the README's: one x509-svid line for
 * the first SVID and one per rotation, one jwt-svid line, and once the sidecar is stopped
 * (SIGTERM, `kill %1`) the stream ending with UNAVAILABLE; and, before that, the README's Node
 * relying party, `node examples/sidecar/relying-party.mjs` (mTLS by SPIFFE ID both ways, a
 * JWT-SVID valid for its audience and refused for another), its output as the README shows it. A second case serves the example a
 * chain whose leaf's DER length takes three bytes (0x83), which the example's chain split must
 * read as DER does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClients } from '../../src/cli/admin-client.js';
import * as t from '../../src/svid/template.js';
import { startServer } from '../helpers/server.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { WORKLOAD_PROTO } from '../helpers/sidecar.js';
import { OID } from '../../src/x509/oids.js';
import { ecKey, makeCert } from '../helpers/testca.js';

const WRIT = join(REPO_ROOT, 'bin', 'writ');
const EXAMPLE = join(REPO_ROOT, 'examples', 'sidecar', 'agent.mjs');
const RELYING_PARTY = join(REPO_ROOT, 'examples', 'sidecar', 'relying-party.mjs');
const ID = 'spiffe://writ.local/agent/demo';
if (!existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js')))
  throw new Error('dist/ is missing: run `make build` (make test does) before the sidecar process tests');

/** A child process and its stdout lines as they arrive. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : -1))));
  return {
    child,
    lines,
    exited,
    stderr: () => stderr,
    /** Resolves once `pred` holds for the lines so far; rejects if the process exits first. */
    until(pred: (ls: string[]) => boolean, what: string): Promise<string[]> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pred(lines)) resolve(lines);
          else waiters.push(check);
        };
        void exited.then((code) => {
          if (!pred(lines)) reject(new Error(`${cmd} exited with ${code} before ${what}; stdout ${JSON.stringify(lines)}; stderr ${stderr.slice(-2000)}`));
        });
        check();
      });
    },
  };
}

const stopped = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;

describe('README: a sidecar next to an agent (examples/sidecar/agent.mjs, relying-party.mjs)', () => {
  let dir: string;
  let w: Awaited<ReturnType<typeof startServer>>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wex-'));
    w = await startServer({ trust_domain: 'writ.local', svid: { x509_ttl: '4s' } });
  });
  afterAll(async () => {
    for (const c of children) if (!stopped(c)) c.kill('SIGKILL');
    await w?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('agent.mjs prints the first X.509-SVID, a JWT-SVID, each rotation, and the stream ending when the sidecar stops; relying-party.mjs serves and checks mTLS and JWT-SVIDs', async () => {
    const bundle = join(dir, 'bundle.pem');
    writeFileSync(bundle, w.bundlePem);
    const socket = join(dir, 'agent.sock');
    // TOKEN=$(./bin/writ token create --spiffe-id spiffe://writ.local/agent/demo)
    const { token } = await adminClients(w.adminSocket).admin.createJoinToken({ ttl: 600, spiffeId: ID });
    const sidecar = run(
      WRIT,
      ['agent', 'run', '--server', w.address, '--bundle', bundle, '--join-token', token, '--socket', socket, '--jwt-audience', 'https://rp.example'],
      { SPIFFE_ENDPOINT_SOCKET: '' },
    );
    children.push(sidecar.child);
    expect((await sidecar.until((l) => l.length > 0, 'serving'))[0]).toBe(ID);

    const agent = run(process.execPath, [EXAMPLE, 'https://rp.example'], { SPIFFE_ENDPOINT_SOCKET: `unix://${socket}` });
    children.push(agent.child);
    const x509 = (ls: string[]) => ls.filter((l) => l.startsWith('x509-svid '));
    await agent.until((l) => x509(l).length >= 2 && l.some((x) => x.startsWith('jwt-svid ')), 'a rotation and a JWT-SVID');

    const line = /^x509-svid (\S+) serial ([0-9A-F]+) until (\S+) \(key (\d+) bytes of PKCS#8\)$/;
    const svids = x509(agent.lines).map((l) => {
      const m = line.exec(l);
      expect(m, l).not.toBeNull();
      return { id: m![1], serial: m![2]!, until: Date.parse(m![3]!), keyBytes: Number(m![4]) };
    });
    for (const s of svids) {
      expect(s.id).toBe(ID);
      expect(s.keyBytes).toBeGreaterThan(100);
    }
    // A rotation is a new certificate, valid longer than the one before it.
    expect(svids[1]!.serial).not.toBe(svids[0]!.serial);
    expect(svids[1]!.until).toBeGreaterThan(svids[0]!.until);
    const jwt = agent.lines.find((l) => l.startsWith('jwt-svid '))!;
    expect(jwt).toMatch(/^jwt-svid sub spiffe:\/\/writ\.local\/agent\/demo aud https:\/\/rp\.example exp \d{4}-\d\d-\d\dT[\d:.]+Z$/);

    // The relying party beside it: mTLS between two holders of the agent's SVID, each naming the
    // other's SPIFFE ID; a JWT-SVID valid for its audience and refused for another.
    const rp = run(process.execPath, [RELYING_PARTY, ID, 'https://rp.example'], { SPIFFE_ENDPOINT_SOCKET: `unix://${socket}` });
    children.push(rp.child);
    expect(await rp.exited, rp.stderr()).toBe(0);
    expect(rp.lines[0]).toBe(`mtls: hello ${ID}`);
    expect(rp.lines[1]).toBe(`jwt-svid valid: sub ${ID} aud https://rp.example`);
    expect(rp.lines[2]).toBe(
      'jwt-svid for https://other.example refused: jwtsvid: expected audience in ["https://other.example"] (audience=["https://rp.example"])',
    );

    // kill %1: the stream ends with UNAVAILABLE, the socket is removed, the example exits 0.
    sidecar.child.kill('SIGTERM');
    expect(await sidecar.exited).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect(await agent.exited).toBe(0);
    expect(agent.lines.at(-1)).toMatch(/^stream ended: UNAVAILABLE: /);
  }, 60_000);

  it('splits the chain by its DER length: a leaf longer than 64 KiB (length 0x83 ..) is read whole, not cut at two length bytes', async () => {
    // A leaf padded with a private extension of 70000 bytes: its SEQUENCE's length takes three bytes.
    const root = makeCert({ subjectCn: 'root', ca: true, uris: ['spiffe://writ.local'] });
    const pad = t.extension('1.3.6.1.4.1.55555.1', false, Buffer.concat([Buffer.from([0x04, 0x83, 0x01, 0x11, 0x70]), Buffer.alloc(70_000, 0x61)]));
    // Built as testca's makeCert does, without parsing it back: writ's own DER reader stops at 64 KiB.
    const now = Date.now();
    const tbs = t.encodeTbs({
      serial: t.randomSerial(),
      algorithm: t.signatureSchemeFor(root.key).algorithm,
      issuer: root.parsed.subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 3600_000),
      subject: t.encodeName([{ oid: OID.commonName, value: 'leaf' }]),
      spki: ecKey().spki,
      extensions: [t.subjectAltName([ID]), pad],
    });
    const scheme = t.signatureSchemeFor(root.key);
    const leaf = { der: t.signCertificate(tbs, scheme.algorithm, scheme.hash, root.key) };
    expect(leaf.der.subarray(0, 2)).toEqual(Buffer.from([0x30, 0x83]));
    const def = protoLoader.loadSync(WORKLOAD_PROTO, { keepCase: true, defaults: true });
    const api = (grpc.loadPackageDefinition(def) as unknown as { SpiffeWorkloadAPI: grpc.ServiceClientConstructor }).SpiffeWorkloadAPI;
    const server = new grpc.Server();
    server.addService(api.service, {
      FetchX509SVID(call: grpc.ServerWritableStream<unknown, unknown>) {
        call.write({ svids: [{ spiffe_id: ID, x509_svid: Buffer.concat([leaf.der, root.der]), x509_svid_key: Buffer.alloc(138), bundle: root.der }] });
        setTimeout(() => call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'gone' }), 200);
      },
      FetchJWTSVID(_call: unknown, cb: grpc.sendUnaryData<unknown>) {
        cb({ code: grpc.status.UNIMPLEMENTED, details: 'not here' });
      },
    });
    const socket = join(dir, 'fake.sock');
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())),
    );
    try {
      const agent = run(process.execPath, [EXAMPLE], { SPIFFE_ENDPOINT_SOCKET: `unix://${socket}` });
      children.push(agent.child);
      expect(await agent.exited, agent.stderr()).toBe(0);
      const want = new X509Certificate(leaf.der);
      expect(agent.lines).toContain(`x509-svid ${ID} serial ${want.serialNumber} until ${new Date(want.validTo).toISOString()} (key 138 bytes of PKCS#8)`);
    } finally {
      server.forceShutdown();
    }
  }, 30_000);
});
