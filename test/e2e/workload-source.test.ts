/**
 * The relying-party Workload API client (src/workload/) against two sidecars, one per workload,
 * each attesting a different fake HSM device to the same issuer: mTLS between the workloads
 * authorized by SPIFFE ID, a wrong ID refused on both sides, a rotation taken by new connections,
 * and a revoked sidecar reported by the source, which then refuses a TLS context.
 */
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_EVIDENCE } from '../../src/attestation/builtins.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { renewingSource } from '../../src/sidecar/identity-source.js';
import {
  JWTSource,
  X509Source,
  authorizeAny,
  authorizeID,
  authorizeMemberOf,
  secureContext,
  socketTarget,
  tlsClientOptions,
  tlsServer,
  type Authorizer,
} from '../../src/workload/index.js';
import { FAKE_TYPE, fakePlugin, fakeProducer } from '../fakes/evidence-fake/plugin.js';
import { startServer } from '../helpers/server.js';
import { startSidecar } from '../helpers/sidecar.js';
import { runSidecar } from '../../src/sidecar/run.js';

const A = 'spiffe://example.org/workload/a';
const B = 'spiffe://example.org/workload/b';

type Sc = Awaited<ReturnType<typeof startSidecar>>;

/** One mTLS exchange: B's server echoes its peer's ID; resolves with what A read, rejects on refusal. */
function exchange(client: X509Source, server: X509Source, clientAuth: Authorizer, serverAuth: Authorizer): Promise<{ got: string; serverCert: Buffer }> {
  return new Promise((resolve, reject) => {
    const srv = tlsServer(server, serverAuth, (s, peer) => s.end(peer.uri));
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      const c = tls.connect({ host: '127.0.0.1', port, ...tlsClientOptions(client, clientAuth) });
      let got = '';
      c.on('data', (d) => {
        got += d;
      });
      c.on('end', () => {
        const serverCert = c.getPeerCertificate().raw;
        c.destroy();
        srv.close();
        got === '' ? reject(new Error('closed by the server')) : resolve({ got, serverCert });
      });
      c.on('error', (e) => {
        srv.close();
        reject(e);
      });
    });
  });
}

describe('X509Source / JWTSource against two sidecars', () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  let dir: string;
  const scs: Sc[] = [];
  const sources: Array<{ close(): void }> = [];
  let a: Sc;
  let b: Sc;
  let srcA: X509Source;
  let srcB: X509Source;
  let sidecarAt: (id: string, path: string) => Promise<Sc>;
  let keyOfB: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wrp-'));
    const dev = (n: string) => {
      const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      writeFileSync(join(dir, `${n}.pub`), k.publicKey.export({ type: 'spki', format: 'pem' }));
      writeFileSync(join(dir, `${n}.key`), k.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      return join(dir, `${n}.key`);
    };
    const keyA = dev('a');
    const keyB = dev('b');
    s = await startServer(
      { attestation: { [FAKE_TYPE]: { devices: [join(dir, 'a.pub'), join(dir, 'b.pub')] } } },
      { evidence: [...BUILTIN_EVIDENCE, fakePlugin] },
    );
    const admin = adminClients(s.adminSocket).admin;
    keyOfB = keyB;
    sidecarAt = async (_id: string, path: string) => {
      const src = renewingSource(
        { server: s.address, bundlePem: s.bundlePem, producer: fakeProducer, values: { 'fake-hsm': keyOfB }, timeoutMs: 10_000 },
        Date.now,
      );
      const r = await runSidecar({ source: src, now: Date.now, socketPath: path });
      const sc = { ...r, dir, path } as Sc;
      scs.push(sc);
      return sc;
    };
    const sidecar = async (id: string, key: string, ttl: number) => {
      const spki = createPublicKey(readFileSync(key)).export({ type: 'spki', format: 'der' });
      await admin.createEntry({
        entry: {
          spiffeId: id,
          selectors: [{ type: FAKE_TYPE, value: `device:${createHash('sha256').update(spki).digest('hex')}` }],
          x509SvidTtl: ttl,
          jwtSvidTtl: 60,
        },
      });
      const src = renewingSource(
        {
          server: s.address,
          bundlePem: s.bundlePem,
          producer: fakeProducer,
          values: { 'fake-hsm': key },
          key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
          timeoutMs: 10_000,
        },
        Date.now,
      );
      const sc = await startSidecar(src);
      scs.push(sc);
      await sc.sidecar.ready();
      return sc;
    };
    // B's 4 s X.509-SVIDs rotate (at half, ±10%) within the test.
    a = await sidecar(A, keyA, 600);
    b = await sidecar(B, keyB, 4);
    srcA = await X509Source.open({ address: `unix://${a.path}` });
    srcB = await X509Source.open({ address: `unix://${b.path}` });
    sources.push(srcA, srcB);
  }, 60_000);
  afterAll(async () => {
    for (const x of sources) x.close();
    for (const sc of scs) await sc.close();
    await s?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses the socket address as the Workload Endpoint spec says', () => {
    expect(socketTarget('unix:///run/agent.sock')).toBe('unix:/run/agent.sock');
    expect(socketTarget('unix:/run/agent.sock')).toBe('unix:/run/agent.sock');
    for (const bad of ['unix://host/run/agent.sock', 'unix:agent.sock', 'tcp://127.0.0.1:1', 'unix:///a.sock?x=1', 'nonsense']) {
      expect(() => socketTarget(bad), bad).toThrow(/unix:\/\/\/absolute\/path|not a URL/);
    }
  });

  it('holds each workload its own verified SVID, key and bundle', () => {
    expect(srcA.svid().id.uri).toBe(A);
    expect(srcB.svid().id.uri).toBe(B);
    expect(srcA.bundle().trustDomain).toBe('example.org');
    expect(srcA.svid().chain.length).toBeGreaterThan(0);
  });

  it('mTLS between the workloads, each authorizing the other by SPIFFE ID', async () => {
    const { got } = await exchange(srcA, srcB, authorizeID(B), authorizeID(A));
    expect(got).toBe(A);
    expect((await exchange(srcA, srcB, authorizeMemberOf('example.org'), authorizeAny())).got).toBe(A);
  });

  it('a client refuses a server whose ID is not the one expected', async () => {
    await expect(exchange(srcA, srcB, authorizeID('spiffe://example.org/workload/c'), authorizeAny())).rejects.toThrow(
      /unexpected ID "spiffe:\/\/example.org\/workload\/b"/,
    );
    await expect(exchange(srcA, srcB, authorizeMemberOf('other.org'), authorizeAny())).rejects.toThrow(/unexpected trust domain/);
  });

  it('a server refuses a client whose ID is not the one expected: its handler never sees it', async () => {
    await expect(exchange(srcA, srcB, authorizeID(B), authorizeID('spiffe://example.org/workload/c'))).rejects.toThrow();
  });

  it('a client without an SVID is refused by the bundle check (requestCert + rejectUnauthorized)', async () => {
    const srv = tlsServer(srcB, authorizeAny(), (sock) => sock.end('served'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    const opts = tlsClientOptions(srcA, authorizeAny());
    const err = await new Promise<Error | string>((resolve) => {
      const c = tls.connect({ host: '127.0.0.1', port, ca: opts.ca, checkServerIdentity: opts.checkServerIdentity, minVersion: 'TLSv1.3' });
      let got = '';
      c.on('data', (d) => {
        got += d;
      });
      c.on('error', resolve);
      c.on('close', () => resolve(got));
    });
    srv.close();
    expect(err).not.toBe('served');
  });

  it('a rotation is taken by new connections', async () => {
    const first = srcB.svid().chain[0]!;
    const { serverCert: before } = await exchange(srcA, srcB, authorizeID(B), authorizeAny());
    expect(before.equals(first)).toBe(true);
    await new Promise<void>((resolve) => {
      const off = srcB.onUpdate((st) => {
        if (st.state === 'serving' && !st.svid.chain[0]!.equals(first)) {
          off();
          resolve();
        }
      });
    });
    const { serverCert: after } = await exchange(srcA, srcB, authorizeID(B), authorizeAny());
    expect(after.equals(first)).toBe(false);
    expect(after.equals(srcB.svid().chain[0]!)).toBe(true);
  }, 30_000);

  it('JWTSource: fetch(audience) validated, validate(token, audience) checks the audience', async () => {
    const jA = await JWTSource.open({ address: `unix://${a.path}` });
    const jB = await JWTSource.open({ address: `unix://${b.path}` });
    sources.push(jA, jB);
    const svid = await jA.fetch('https://b.example');
    expect(svid.id.uri).toBe(A);
    expect(jB.validate(svid.token, 'https://b.example').id.uri).toBe(A);
    expect(() => jB.validate(svid.token, 'https://other.example')).toThrow(/expected audience/);
    const [h, p] = svid.token.split('.');
    expect(() => jB.validate(`${h}.${p}.${Buffer.from('x'.repeat(64)).toString('base64url')}`, 'https://b.example')).toThrow(/signature/);
  });

  it('a source opened before its sidecar exists retries with backoff and takes the first SVID once it serves', async () => {
    const path = join(dir, 'late.sock');
    const src = new X509Source({ address: `unix://${path}`, backoffBaseMs: 20, backoffCapMs: 100 });
    sources.push(src);
    expect(src.current().state).toBe('pending');
    expect(() => secureContext(src)).toThrow(/no X.509-SVID yet/);
    const first = src.waitUntilUpdated(30_000);
    await sidecarAt(B, path);
    await first;
    expect(src.svid().id.uri).toBe(B);
  }, 40_000);

  it('a revoked sidecar: the source reports it, drops the SVID and refuses a TLS context', async () => {
    const refused = new Promise<string>((resolve) => {
      const off = srcA.onUpdate((st) => {
        if (st.state === 'refused') {
          off();
          resolve(st.reason);
        }
      });
    });
    a.sidecar.revoke('test revocation');
    expect(await refused).toContain('revoked');
    expect(srcA.current().state).toBe('refused');
    expect(() => srcA.svid()).toThrow(/no X.509-SVID: .*revoked/);
    expect(() => secureContext(srcA)).toThrow(/revoked/);
    expect(() => tlsClientOptions(srcA, authorizeAny())).toThrow(/revoked/);
    await expect(X509Source.open({ address: `unix://${a.path}` })).rejects.toThrow(/refused: .*revoked/);
  });
});
