/**
 * The SPIFFE Workload API on the sidecar's socket, through a client we did not generate: the
 * upstream workload.proto (../shared/interop) loaded with @grpc/proto-loader, against a real
 * issuer on loopback and an in-process sidecar attesting with fresh (fake HSM) evidence.
 */
import * as grpc from '@grpc/grpc-js';
import { createPrivateKey, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitDerChain, parseCertificate } from '../../src/x509/certificate.js';
import { BundleSet, parseX509BundlePem } from '../../src/spiffe/bundle.js';
import { verifyX509Svid } from '../../src/svid/x509-svid.js';
import { claimSocketPath, resolveGroup, socketPath } from '../../src/sidecar/socket.js';
import type { IdentitySource } from '../../src/sidecar/identity-source.js';
import {
  hsmSource,
  nextMessages,
  securityHeader,
  startHsmIssuer,
  startSidecar,
  unary,
  workloadClient,
  type HsmIssuer,
  type WorkloadClient,
  WORKLOAD_PROTO,
} from '../helpers/sidecar.js';
import { REPO_ROOT } from '../helpers/shared.js';

const ID = 'spiffe://example.org/agent/sidecar';

interface X509Message {
  svids: Array<{ spiffe_id: string; x509_svid: Buffer; x509_svid_key: Buffer; bundle: Buffer; hint: string }>;
  crl: Buffer[];
  federated_bundles: Record<string, Buffer>;
}

const status = (e: unknown) => (e as grpc.ServiceError).code;
const details = (e: unknown) => (e as grpc.ServiceError).details;

async function refusal(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error('expected the call to fail');
}

function streamRefusal(call: grpc.ClientReadableStream<unknown>): Promise<grpc.ServiceError> {
  return new Promise((resolve, reject) => {
    call.on('data', () => reject(new Error('expected no message')));
    call.on('error', (e: grpc.ServiceError) => resolve(e));
  });
}

describe('the Workload API, through a client built from the upstream proto', () => {
  let issuer: HsmIssuer;
  let sc: Awaited<ReturnType<typeof startSidecar>>;
  let client: WorkloadClient;

  beforeAll(async () => {
    issuer = await startHsmIssuer();
    // 4 s X.509-SVIDs: a rotation (at half, ±10%) arrives within the test.
    await issuer.entry(ID, 4, 60);
    sc = await startSidecar(hsmSource({ address: issuer.s.address, bundlePem: issuer.s.bundlePem, deviceKey: issuer.deviceKey }));
    await sc.sidecar.ready();
    client = workloadClient(sc.path);
  }, 60_000);
  afterAll(async () => {
    client?.close();
    await sc?.close();
    await issuer?.stop();
  });

  it('streams the X.509-SVID: the chain leaf first, its PKCS#8 key, the bundle as DER, no federated bundles', async () => {
    const call = client.FetchX509SVID({}, securityHeader());
    const [m] = (await nextMessages(call, 1)) as X509Message[];
    call.cancel();
    expect(m!.svids).toHaveLength(1);
    const svid = m!.svids[0]!;
    expect(svid.spiffe_id).toBe(ID);
    const chain = splitDerChain(svid.x509_svid);
    const leaf = parseCertificate(chain[0]!);
    expect(leaf.uris).toEqual([ID]);
    // The key is the leaf's.
    const key = createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' });
    expect(createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(leaf.spki)).toBe(true);
    // The bundle is the issuer's X.509 authorities, and the chain verifies to it.
    const bundle = parseX509BundlePem('example.org', issuer.s.bundlePem);
    expect(svid.bundle.equals(Buffer.concat(bundle.x509Authorities))).toBe(true);
    expect(verifyX509Svid(chain, new BundleSet([bundle]), new Date()).id.uri).toBe(ID);
    expect(Object.keys(m!.federated_bundles)).toEqual([]);
    expect(m!.crl).toEqual([]);
  });

  it('sends a complete new message on rotation, never an expired SVID', async () => {
    const call = client.FetchX509SVID({}, securityHeader());
    const seen: Array<{ serial: string; notAfter: number; at: number }> = [];
    call.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      call.on('data', (m: X509Message) => {
        const leaf = parseCertificate(splitDerChain(m.svids[0]!.x509_svid)[0]!);
        seen.push({ serial: leaf.serial.toString('hex'), notAfter: leaf.notAfter.getTime(), at: Date.now() });
        if (seen.length === 2) resolve();
      });
      call.on('error', reject);
    });
    call.cancel();
    expect(seen[1]!.serial).not.toBe(seen[0]!.serial);
    expect(seen[1]!.notAfter).toBeGreaterThan(seen[0]!.notAfter);
    for (const s of seen) expect(s.at).toBeLessThan(s.notAfter);
  }, 30_000);

  it('streams the X.509 and JWT bundles keyed by the trust domain SPIFFE ID; the JWKS holds only JWT authorities', async () => {
    const x = client.FetchX509Bundles({}, securityHeader());
    const [xb] = (await nextMessages(x, 1)) as Array<{ bundles: Record<string, Buffer> }>;
    x.cancel();
    expect(Object.keys(xb!.bundles)).toEqual(['spiffe://example.org']);
    expect(xb!.bundles['spiffe://example.org']!.equals(Buffer.concat(parseX509BundlePem('example.org', issuer.s.bundlePem).x509Authorities))).toBe(true);
    const j = client.FetchJWTBundles({}, securityHeader());
    const [jb] = (await nextMessages(j, 1)) as Array<{ bundles: Record<string, Buffer> }>;
    j.cancel();
    const jwks = JSON.parse(jb!.bundles['spiffe://example.org']!.toString()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const k of jwks.keys) {
      expect(typeof k.kid).toBe('string');
      expect(k.use).toBe('jwt-svid');
      expect(k.x5c).toBeUndefined();
    }
  });

  it('issues a JWT-SVID for an audience, verifiable with the JWT bundle, and validates it', async () => {
    const r = await unary<unknown, { svids: Array<{ spiffe_id: string; svid: string }> }>(client, 'FetchJWTSVID', { audience: ['https://rp.example'] });
    expect(r.svids).toHaveLength(1);
    expect(r.svids[0]!.spiffe_id).toBe(ID);
    const token = r.svids[0]!.svid;
    const [h, p, sig] = token.split('.') as [string, string, string];
    const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { kid: string; alg: string };
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as { aud: string[]; sub: string };
    expect(payload.sub).toBe(ID);
    expect(payload.aud).toEqual(['https://rp.example']);
    const j = client.FetchJWTBundles({}, securityHeader());
    const [jb] = (await nextMessages(j, 1)) as Array<{ bundles: Record<string, Buffer> }>;
    j.cancel();
    const jwk = (JSON.parse(jb!.bundles['spiffe://example.org']!.toString()) as { keys: Array<{ kid: string }> }).keys.find((k) => k.kid === header.kid);
    expect(jwk).toBeDefined();
    expect(header.alg).toBe('ES256');
    const ok = cryptoVerify(
      'sha256',
      Buffer.from(`${h}.${p}`),
      { key: createPublicKey({ key: jwk as never, format: 'jwk' }), dsaEncoding: 'ieee-p1363' },
      Buffer.from(sig, 'base64url'),
    );
    expect(ok).toBe(true);
    // From the cache the second time: the same token.
    const again = await unary<unknown, { svids: Array<{ svid: string }> }>(client, 'FetchJWTSVID', { audience: ['https://rp.example'] });
    expect(again.svids[0]!.svid).toBe(token);

    const v = await unary<unknown, { spiffe_id: string; claims: { fields: Record<string, unknown> } }>(client, 'ValidateJWTSVID', {
      audience: 'https://rp.example',
      svid: token,
    });
    expect(v.spiffe_id).toBe(ID);
    expect(Object.keys(v.claims.fields)).toEqual(expect.arrayContaining(['sub', 'aud', 'exp', 'iat']));

    const wrongAud = await refusal(unary(client, 'ValidateJWTSVID', { audience: 'https://other.example', svid: token }));
    expect(status(wrongAud)).toBe(grpc.status.INVALID_ARGUMENT);
    expect(details(wrongAud)).toContain('expected audience');
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: 'spiffe://example.org/agent/admin' })).toString('base64url')}.${sig}`;
    const forged = await refusal(unary(client, 'ValidateJWTSVID', { audience: 'https://rp.example', svid: tampered }));
    expect(status(forged)).toBe(grpc.status.INVALID_ARGUMENT);
    expect(details(forged)).toContain('signature verification failed');
  }, 30_000);

  it('refuses JWT-SVID requests without an audience, with several, or for another or a malformed SPIFFE ID', async () => {
    const cases: Array<[unknown, grpc.status, string]> = [
      [{ audience: [] }, grpc.status.INVALID_ARGUMENT, 'audience must be specified'],
      [{ audience: [''] }, grpc.status.INVALID_ARGUMENT, 'an audience is empty'],
      [{ audience: ['x'.repeat(300)] }, grpc.status.INVALID_ARGUMENT, 'longer than 256 bytes'],
      [{ audience: ['a', 'b'] }, grpc.status.INVALID_ARGUMENT, 'one audience per JWT-SVID'],
      [{ audience: ['a'], spiffe_id: 'spiffe://example.org/agent/other' }, grpc.status.PERMISSION_DENIED, 'no identity issued for the requested SPIFFE ID'],
      [{ audience: ['a'], spiffe_id: 'spiffe://EXAMPLE.org/x' }, grpc.status.INVALID_ARGUMENT, 'invalid requested SPIFFE ID'],
      [{ audience: ['a'], spiffe_id: 'https://example.org/agent/sidecar' }, grpc.status.INVALID_ARGUMENT, 'invalid requested SPIFFE ID'],
      [{ audience: ['a'], spiffe_id: `spiffe://example.org/${'a'.repeat(3000)}` }, grpc.status.INVALID_ARGUMENT, 'spiffe_id is longer than 2048 bytes'],
    ];
    for (const [req, code, text] of cases) {
      const e = await refusal(unary(client, 'FetchJWTSVID', req));
      expect([status(e), details(e)], JSON.stringify(req).slice(0, 80)).toEqual([code, expect.stringContaining(text)]);
    }
    // Its own SPIFFE ID, named: served.
    const r = await unary<unknown, { svids: unknown[] }>(client, 'FetchJWTSVID', { audience: ['a'], spiffe_id: ID });
    expect(r.svids).toHaveLength(1);
    for (const [req, text] of [
      [{ audience: '', svid: 'x' }, 'audience must be specified'],
      [{ audience: 'a', svid: '' }, 'svid must be specified'],
      [{ audience: 'a', svid: 'not.a.jwt' }, 'unable to parse JWT token'],
    ] as const) {
      const e = await refusal(unary(client, 'ValidateJWTSVID', req));
      expect([status(e), details(e)]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringContaining(text)]);
    }
  });

  it('answers every method without the security header with INVALID_ARGUMENT, and the WIT methods with UNIMPLEMENTED', async () => {
    const none = new grpc.Metadata();
    const wrong = new grpc.Metadata();
    wrong.set('workload.spiffe.io', 'yes');
    for (const md of [none, wrong]) {
      for (const m of ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles']) {
        const e = await streamRefusal(client[m]({}, md));
        expect([m, status(e), details(e)]).toEqual([m, grpc.status.INVALID_ARGUMENT, 'security header missing from request']);
      }
      for (const [m, req] of [
        ['FetchJWTSVID', { audience: ['a'] }],
        ['ValidateJWTSVID', { audience: 'a', svid: 'x' }],
      ] as const) {
        const e = await refusal(unary(client, m, req, md));
        expect([m, status(e), details(e)]).toEqual([m, grpc.status.INVALID_ARGUMENT, 'security header missing from request']);
      }
    }
    for (const m of ['FetchWITSVID', 'FetchWITBundles']) {
      const e = await streamRefusal(client[m]({}, securityHeader()));
      expect(status(e)).toBe(grpc.status.UNIMPLEMENTED);
    }
  });

  it('refuses an oversized request with RESOURCE_EXHAUSTED and keeps serving', async () => {
    const e = await refusal(unary(client, 'ValidateJWTSVID', { audience: 'a', svid: 'x'.repeat(100 * 1024) }));
    expect(status(e)).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const r = await unary<unknown, { svids: unknown[] }>(client, 'FetchJWTSVID', { audience: ['https://rp.example'] });
    expect(r.svids).toHaveLength(1);
  });

  it('serves others while a client never reads its stream', async () => {
    // A raw HTTP/2 client that opens FetchX509SVID streams and never reads (its window fills).
    const http2 = await import('node:http2');
    const session = http2.connect('http://localhost', { createConnection: () => connect(sc.path) });
    const body = Buffer.from([0, 0, 0, 0, 0]);
    const stuck = Array.from({ length: 20 }, () => {
      const s = session.request({
        ':method': 'POST',
        ':path': '/SpiffeWorkloadAPI/FetchX509SVID',
        'content-type': 'application/grpc',
        te: 'trailers',
        'workload.spiffe.io': 'true',
      });
      s.end(body);
      s.pause();
      return s;
    });
    const other = workloadClient(sc.path);
    try {
      const call = other.FetchX509SVID({}, securityHeader());
      const msgs = (await nextMessages(call, 2)) as X509Message[];
      call.cancel();
      expect(msgs[1]!.svids[0]!.x509_svid.equals(msgs[0]!.svids[0]!.x509_svid)).toBe(false);
    } finally {
      other.close();
      for (const s of stuck) s.close();
      session.destroy();
    }
  }, 30_000);

  it('serves health for the Workload API', async () => {
    const { Health, HealthCheckResponse_ServingStatus } = await import('../../src/gen/grpc/health/v1/health_pb.js');
    const { unaryCall } = await import('../../src/rpc/grpc-adapter.js');
    const r = await unaryCall<{ status: number }>(
      `unix:${sc.path}`,
      grpc.credentials.createInsecure(),
      Health,
      'check',
      { service: 'SpiffeWorkloadAPI' },
      {
        deadline: new Date(Date.now() + 10_000),
      },
    );
    expect(r.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });
});

describe('the vendored proto', () => {
  it('is the upstream workload.proto byte for byte after its provenance header', () => {
    const vendored = readFileSync(join(REPO_ROOT, 'proto', 'spiffe', 'workload', 'workload.proto'), 'utf8');
    const body = vendored.slice(vendored.indexOf('syntax = "proto3";'));
    expect(body).toBe(readFileSync(WORKLOAD_PROTO, 'utf8'));
    expect(vendored.slice(0, vendored.indexOf('syntax'))).toContain('Apache License, Version 2.0');
  });
});

describe('the socket', () => {
  it('is owner-only, removed on close; a live socket is refused and a stale one replaced', async () => {
    const never: IdentitySource = { obtain: () => new Promise(() => {}) };
    const sc = await startSidecar(never);
    try {
      expect(lstatSync(sc.path).mode & 0o777).toBe(0o600);
      await expect(claimSocketPath(sc.path)).rejects.toThrow('another process is serving');
      // Before any identity: UNAVAILABLE, so standard clients back off and retry.
      const c = workloadClient(sc.path);
      const e = await streamRefusal(c.FetchX509SVID({}, securityHeader()));
      expect([status(e), details(e)]).toEqual([grpc.status.UNAVAILABLE, expect.stringContaining('no identity issued yet')]);
      const j = await refusal(unary(c, 'FetchJWTSVID', { audience: ['a'] }));
      expect(status(j)).toBe(grpc.status.UNAVAILABLE);
      c.close();
    } finally {
      await sc.close();
    }
    expect(existsSync(sc.path)).toBe(false);

    const dir = mkdtempSync(join(tmpdir(), 'wss-'));
    try {
      // A socket bound by a process that is gone (what a crash leaves): nobody answers on it.
      const { execFileSync } = await import('node:child_process');
      execFileSync('python3', ['-c', `import socket;s=socket.socket(socket.AF_UNIX);s.bind(${JSON.stringify(join(dir, 'dead.sock'))})`]);
      await claimSocketPath(join(dir, 'dead.sock'));
      expect(existsSync(join(dir, 'dead.sock'))).toBe(false);
      const file = join(dir, 'file');
      writeFileSync(file, 'x');
      await expect(claimSocketPath(file)).rejects.toThrow('is not a socket');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is 0660 and owned by the group given with a socket group', async () => {
    const gid = process.getgid!();
    const never: IdentitySource = { obtain: () => new Promise(() => {}) };
    const sc = await startSidecar(never, { socketGid: resolveGroup(String(gid)) });
    try {
      const st = lstatSync(sc.path);
      expect(st.mode & 0o777).toBe(0o660);
      expect(st.gid).toBe(gid);
    } finally {
      await sc.close();
    }
    expect(() => resolveGroup('no-such-group-writ')).toThrow('no group');
  });

  it('takes SPIFFE_ENDPOINT_SOCKET as unix:///path and refuses anything else', () => {
    expect(socketPath(undefined, { SPIFFE_ENDPOINT_SOCKET: 'unix:///run/a.sock' })).toBe('/run/a.sock');
    expect(socketPath(undefined, { SPIFFE_ENDPOINT_SOCKET: 'unix:/run/a.sock' })).toBe('/run/a.sock');
    expect(socketPath('/x/y.sock', { SPIFFE_ENDPOINT_SOCKET: 'unix:///run/a.sock' })).toBe('/x/y.sock');
    for (const bad of ['tcp://127.0.0.1:1', 'unix://relative/a.sock', 'unix:///a.sock?x=1', '/run/a.sock', 'unix:relative'])
      expect(() => socketPath(undefined, { SPIFFE_ENDPOINT_SOCKET: bad }), bad).toThrow('SPIFFE_ENDPOINT_SOCKET must be');
    expect(() => socketPath('relative.sock', {})).toThrow('--socket must be an absolute path');
    expect(() => socketPath(undefined, {})).toThrow('name the socket');
  });
});
