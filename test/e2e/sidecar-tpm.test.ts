/**
 * A sidecar whose agent key is resident in a TPM (swtpm): it serves the identity while the
 * private key stays in the TPM, so the Workload API cannot deliver an X.509-SVID with its key
 * (FAILED_PRECONDITION, saying why); JWT-SVIDs and bundles are still served, and writ's own
 * AgentService.FetchX509SVID serves the SVID itself (chain and bundle, no key).
 *
 * A real TLS 1.3 handshake signed inside the TPM: node:tls cannot take a key it does not hold
 * (its privateKeyEngine loads ENGINE keys only, and node's OpenSSL is linked statically, so no
 * system provider reaches it). The system OpenSSL 3 can, through tpm2-openssl: the test takes
 * the SVID chain from the sidecar's socket, gives `openssl s_server` that chain and the agent key
 * as a "TSS2 PRIVATE KEY" (the TPM-wrapped blob the sidecar loads, parent: the owner-hierarchy
 * SRK), and a node:tls client that trusts only the issuer's bundle and checks the server's SPIFFE
 * ID completes the handshake (the server's CertificateVerify is a TPM2_Sign) and exchanges bytes.
 * swtpm serves one connection at a time and the sidecar keeps its TPM connection while it serves,
 * so the use is sequenced: the sidecar attests and serves, then stops (flushing what it loaded),
 * then openssl uses the TPM. The provider is loaded after the default one and is asked for keys
 * and signatures only (`tpm2.digest!=yes,tpm2.cipher!=yes`): with TPM digests, the handshake
 * hash copies need more TPM object slots than swtpm has (TPM_RC_OBJECT_MEMORY).
 */
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate, createHash, createPublicKey, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TpmAttestor } from '../../src/attestation/tpm/attestor.js';
import { residentBlobText, tpmProducer } from '../../src/attestation/tpm/producer.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { encodePem } from '../../src/der/pem.js';
import { AgentService, KeyResidency, type FetchX509SVIDResponse } from '../../src/gen/writ/agent/v1/agent_pb.js';
import { grpcClientConstructor } from '../../src/rpc/grpc-adapter.js';
import { renewingSource } from '../../src/sidecar/identity-source.js';
import { securityHeaderInterceptor } from '../../src/sidecar/security-header.js';
import { BundleSet, parseX509BundlePem } from '../../src/spiffe/bundle.js';
import { verifyX509Svid } from '../../src/svid/x509-svid.js';
import { authorizeID } from '../../src/workload/tls.js';
import { parseCertificate } from '../../src/x509/certificate.js';
import { startServer } from '../helpers/server.js';
import { freePort } from '../helpers/ports.js';
import { nextMessages, securityHeader, startSidecar, unary, workloadClient } from '../helpers/sidecar.js';
import { HAVE_SWTPM, HAVE_TPM2_OPENSSL, startSwtpm, tss2PrivateKeyPem, type Swtpm } from '../helpers/swtpm.js';

const ID = 'spiffe://example.org/agent/tpm-sidecar';

if (HAVE_SWTPM && !HAVE_TPM2_OPENSSL) {
  if (process.env.CI) throw new Error('CI requires tpm2-openssl, the OpenSSL 3 TPM provider (scripts/install-test-deps.sh)');
  console.warn('\n*** tpm2-openssl not installed: the TLS handshake signed inside the TPM is SKIPPED (apt-get install tpm2-openssl) ***\n');
}

describe.skipIf(!HAVE_SWTPM)('a sidecar with a TPM-resident key (swtpm)', () => {
  let tpm: Swtpm;
  let s: Awaited<ReturnType<typeof startServer>>;
  let sc: Awaited<ReturnType<typeof startSidecar>>;
  let dir: string;
  /** The agent key as `writ agent keygen --tpm` makes it: TPMT_PUBLIC and the SRK-wrapped TPM2B_PRIVATE. */
  let agentKey: { spki: Buffer; public: Buffer; private: Buffer };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-tpmtls-'));
    tpm = await startSwtpm();
    agentKey = await residentKey(tpm);
    writeFileSync(join(dir, 'agent.key.tpm'), residentBlobText(agentKey));
    s = await startServer({
      attestation: { tpm: { manufacturer_roots: [tpm.rootPem], intermediates: [tpm.intermediatePem], pcr_selection: 'sha256:0,1,2,3,7' } },
    });
    await registerTpm(s, tpm);
    sc = await startSidecar(
      renewingSource(
        {
          server: s.address,
          bundlePem: s.bundlePem,
          producer: tpmProducer,
          values: { tpm: tpm.spec, 'tpm-key-file': join(dir, 'agent.key.tpm') },
          timeoutMs: 60_000,
        },
        Date.now,
      ),
      { jwtAudiences: ['https://rp.example'] },
    );
    await sc.sidecar.ready();
  }, 120_000);
  afterAll(async () => {
    await sc?.close();
    await s?.stop();
    await tpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the identity with no key in the process; FetchX509SVID says why it cannot deliver it; JWT-SVIDs still work', async () => {
    const st = sc.sidecar.current();
    if (st.state !== 'serving') throw new Error('not serving');
    expect(st.identity.privateKeyPkcs8).toBeUndefined();
    expect(parseCertificate(st.identity.svidChain[0]!).keyResidency).toBe('tpm');
    const client = workloadClient(sc.path);
    try {
      const e = await new Promise<grpc.ServiceError>((resolve, reject) => {
        const call = client.FetchX509SVID({}, securityHeader());
        call.on('data', () => reject(new Error('a key was delivered')));
        call.on('error', resolve);
      });
      expect(e.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(e.details).toContain('resident in a TPM');
      const jwt = await unary<unknown, { svids: Array<{ spiffe_id: string }> }>(client, 'FetchJWTSVID', { audience: ['https://rp.example'] });
      expect(jwt.svids[0]!.spiffe_id).toBe(ID);
      const b = client.FetchX509Bundles({}, securityHeader());
      const [m] = (await nextMessages(b, 1)) as Array<{ bundles: Record<string, Buffer> }>;
      b.cancel();
      expect(Object.keys(m!.bundles)).toEqual(['spiffe://example.org']);
    } finally {
      client.close();
    }
  }, 60_000);

  it("AgentService.FetchX509SVID serves the SVID over the socket: the sidecar's chain and bundle, residency TPM, the TPM key's public key, no private key", async () => {
    const st = sc.sidecar.current();
    if (st.state !== 'serving') throw new Error('not serving');
    const m = await fetchSvid(sc.path);
    expect(m.spiffeId).toBe(ID);
    expect(m.keyResidency).toBe(KeyResidency.TPM);
    expect(m.x509Svid.map((c) => Buffer.from(c))).toEqual(st.identity.svidChain);
    expect(m.bundle.map((c) => Buffer.from(c))).toEqual(st.identity.bundle.x509Authorities);
    expect(Number(m.expiresAt)).toBe(st.identity.notAfter);
    expect(parseCertificate(Buffer.from(m.x509Svid[0]!)).spki).toEqual(agentKey.spki);
  }, 60_000);

  it('attests afresh through the TPM session it holds (a new audience costs a handshake; the issuer wants a new quote for a tpm identity): a new SVID for the same TPM key, no second TPM connection', async () => {
    const before = sc.sidecar.current();
    if (before.state !== 'serving') throw new Error('not serving');
    const renewals = sc.sidecar.renewals;
    const client = workloadClient(sc.path);
    try {
      // Before the session was reused, this opened a second connection to swtpm, which serves one
      // at a time, and hung until the handshake's timeout.
      const t0 = performance.now();
      const jwt = await unary<unknown, { svids: Array<{ spiffe_id: string }> }>(client, 'FetchJWTSVID', { audience: ['https://other.example'] });
      expect(performance.now() - t0).toBeLessThan(20_000);
      expect(jwt.svids[0]!.spiffe_id).toBe(ID);
    } finally {
      client.close();
    }
    const after = sc.sidecar.current();
    if (after.state !== 'serving') throw new Error('not serving');
    expect(sc.sidecar.renewals).toBe(renewals + 1);
    const [was, now] = [before, after].map((x) => parseCertificate(x.identity.svidChain[0]!));
    expect(now!.serial.equals(was!.serial)).toBe(false);
    expect(now!.spki).toEqual(agentKey.spki);
    expect(now!.keyResidency).toBe('tpm');
    // The renewed identity signs inside the TPM, through the same session.
    const sig = await after.identity.signer.sign(Buffer.from('renewed'));
    expect(
      verify('sha256', Buffer.from('renewed'), { key: createPublicKey({ key: agentKey.spki, format: 'der', type: 'spki' }), dsaEncoding: 'ieee-p1363' }, sig),
    ).toBe(true);
    expect((await fetchSvid(sc.path)).x509Svid.map((c) => Buffer.from(c))).toEqual(after.identity.svidChain);
  }, 60_000);

  it.skipIf(!HAVE_TPM2_OPENSSL)(
    'a TLS 1.3 handshake signed inside the TPM: openssl s_server (tpm2-openssl) with the SVID from the socket and the TPM key; a node:tls client checking the SPIFFE ID exchanges bytes; another expected ID, another TPM key or no TPM provider fails',
    async () => {
      const m = await fetchSvid(sc.path);
      const chain = m.x509Svid.map((c) => Buffer.from(c));
      const bundlePem = m.bundle.map((c) => encodePem('CERTIFICATE', c)).join('');
      // swtpm serves one connection at a time: the sidecar lets go of the TPM before openssl uses it.
      await sc.close();
      writeFileSync(join(dir, 'svid.pem'), encodePem('CERTIFICATE', chain[0]!));
      writeFileSync(
        join(dir, 'chain.pem'),
        chain
          .slice(1)
          .map((c) => encodePem('CERTIFICATE', c))
          .join('') || '\n',
      );
      writeFileSync(join(dir, 'agent.key.pem'), tss2PrivateKeyPem(agentKey));

      const srv = await sServer(tpm, dir, 'agent.key.pem', chain.length > 1);
      try {
        const got = await tlsExchange(srv.port, bundlePem, ID);
        expect(got.protocol).toBe('TLSv1.3');
        expect(got.peerId).toBe(ID);
        // -rev: the server answers each line reversed, so the bytes went both ways through the session.
        expect(got.reply).toBe('tirw\n');
        expect(await srv.exited).toBe(0);
      } finally {
        srv.kill();
      }

      // The client expecting another SPIFFE ID refuses the same server.
      const srv2 = await sServer(tpm, dir, 'agent.key.pem', chain.length > 1);
      try {
        await expect(tlsExchange(srv2.port, bundlePem, 'spiffe://example.org/agent/someone-else')).rejects.toThrow(
          /peer refused: unexpected ID "spiffe:\/\/example.org\/agent\/tpm-sidecar"/,
        );
      } finally {
        srv2.kill();
      }

      // Another TPM key with the SVID: openssl refuses the pair before serving anything.
      writeFileSync(join(dir, 'other.key.pem'), tss2PrivateKeyPem(await residentKey(tpm)));
      const other = await sServer(tpm, dir, 'other.key.pem', chain.length > 1, false);
      expect(await other.exited).not.toBe(0);
      expect(other.stderr()).toMatch(/key values mismatch/);

      // The PEM alone is no key: OpenSSL without the TPM provider cannot load it.
      const noTpm = await sServer(tpm, dir, 'agent.key.pem', chain.length > 1, false, false);
      expect(await noTpm.exited).not.toBe(0);
      expect(noTpm.stderr()).toMatch(/Could not read server certificate private key/);
    },
    120_000,
  );
});

describe.skipIf(!HAVE_SWTPM)('a sidecar with a TPM-resident key renewing at half-life (swtpm, 4 s SVIDs)', () => {
  let tpm: Swtpm;
  let s: Awaited<ReturnType<typeof startServer>>;
  let sc: Awaited<ReturnType<typeof startSidecar>>;

  beforeAll(async () => {
    tpm = await startSwtpm();
    s = await startServer({
      attestation: { tpm: { manufacturer_roots: [tpm.rootPem], intermediates: [tpm.intermediatePem], pcr_selection: 'sha256:0,1,2,3,7' } },
    });
    await registerTpm(s, tpm, 4);
    sc = await startSidecar(
      renewingSource(
        { server: s.address, bundlePem: s.bundlePem, producer: tpmProducer, values: { tpm: tpm.spec, 'tpm-key': true }, timeoutMs: 30_000 },
        Date.now,
      ),
    );
    await sc.sidecar.ready();
  }, 120_000);
  afterAll(async () => {
    await sc?.close();
    await s?.stop();
    await tpm?.stop();
  });

  it('each renewal is a fresh TPM quote through the session that holds the key: three rotations, one key, never an expired SVID, no failure', async () => {
    const first = sc.sidecar.current();
    if (first.state !== 'serving') throw new Error('not serving');
    const key = parseCertificate(first.identity.svidChain[0]!).spki;
    const served: Array<{ serial: string; notAfter: number; at: number }> = [];
    const off = sc.sidecar.subscribe((st) => {
      if (st.state === 'serving')
        served.push({ serial: parseCertificate(st.identity.svidChain[0]!).serial.toString('hex'), notAfter: st.identity.notAfter, at: Date.now() });
    });
    try {
      await expect.poll(() => new Set(served.map((x) => x.serial)).size, { timeout: 20_000, interval: 100 }).toBeGreaterThanOrEqual(3);
    } finally {
      off();
    }
    for (const x of served) expect(x.notAfter).toBeGreaterThan(x.at);
    const now = sc.sidecar.current();
    if (now.state !== 'serving') throw new Error('not serving');
    expect(parseCertificate(now.identity.svidChain[0]!).spki).toEqual(key);
    expect(parseCertificate(now.identity.svidChain[0]!).keyResidency).toBe('tpm');
    expect(sc.sidecar.renewalCounts().failures).toEqual({ unavailable: 0, refused: 0, terminal: 0, error: 0 });
  }, 60_000);
});

/** A TPM-resident key made under the SRK and flushed, as `writ agent keygen --tpm` makes one (noDA: residentKeyTemplate). */
async function residentKey(s: Swtpm): Promise<{ spki: Buffer; public: Buffer; private: Buffer }> {
  const t = await s.open();
  const a = new TpmAttestor(t);
  try {
    return await a.createResidentKey();
  } finally {
    await a.close();
    await t.close();
  }
}

/** Registers ID for the swtpm's EK (its hash from the RSA EK certificate in NV), with an X.509-SVID TTL in seconds if given. */
async function registerTpm(s: Awaited<ReturnType<typeof startServer>>, tpm: Swtpm, x509SvidTtl?: number): Promise<void> {
  const t = await tpm.open();
  const cert = new X509Certificate(await t.nvRead(0x01c00002));
  await t.close();
  const ekHash = createHash('sha256')
    .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
  await adminClients(s.adminSocket).admin.createEntry({
    entry: { spiffeId: ID, selectors: [{ type: 'tpm', value: `ek_hash:${ekHash}` }], ...(x509SvidTtl ? { x509SvidTtl } : {}) },
  });
}

/** The first message of AgentService.FetchX509SVID on the sidecar's socket. */
async function fetchSvid(path: string): Promise<FetchX509SVIDResponse> {
  const Client = grpcClientConstructor(AgentService);
  const c = new Client(`unix:${path}`, grpc.credentials.createInsecure(), { interceptors: [securityHeaderInterceptor] }) as grpc.Client &
    Record<string, (r: unknown) => grpc.ClientReadableStream<FetchX509SVIDResponse>>;
  try {
    const call = c.fetchX509SVID!.call(c, {});
    const [m] = await nextMessages(call, 1);
    call.cancel();
    return m!;
  } finally {
    c.close();
  }
}

/**
 * `openssl s_server` for one connection with the SVID and a TPM key through tpm2-openssl
 * (TPM2OPENSSL_TCTI: the swtpm), TLS 1.3 only, `-rev` (each line read is sent back reversed).
 * Resolves once it listens (or, with `listens` false, at once: it is expected to refuse); `tpm2`
 * false: the default provider only.
 */
async function sServer(s: Swtpm, dir: string, key: string, withChain: boolean, listens = true, tpm2 = true) {
  const port = await freePort();
  const args = [
    's_server',
    '-provider',
    'default',
    ...(tpm2 ? ['-provider', 'tpm2', '-propquery', '?provider=tpm2,tpm2.digest!=yes,tpm2.cipher!=yes'] : []),
    '-cert',
    join(dir, 'svid.pem'),
    ...(withChain ? ['-cert_chain', join(dir, 'chain.pem')] : []),
    '-key',
    join(dir, key),
    '-accept',
    `127.0.0.1:${port}`,
    '-tls1_3',
    '-naccept',
    '1',
    '-rev',
  ];
  const child: ChildProcess = spawn('openssl', args, { env: { ...process.env, TPM2OPENSSL_TCTI: s.spec }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  if (listens) {
    const deadline = Date.now() + 30_000;
    while (!out.includes('ACCEPT')) {
      if (child.exitCode !== null) throw new Error(`openssl s_server exited ${child.exitCode}: ${err}`);
      if (Date.now() > deadline) throw new Error(`openssl s_server did not listen: ${err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return {
    port,
    exited,
    stderr: () => err,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

/**
 * A node:tls client: TLS 1.3, trusting only the issuer's bundle, the server's chain verified
 * again to the SPIFFE X.509-SVID profile and its ID authorized (workload/tls.ts's authorizeID),
 * never a host name; sends one line and reads the reply.
 */
function tlsExchange(port: number, bundlePem: string, expectedId: string): Promise<{ protocol: string | null; peerId: string; reply: string }> {
  const bundles = new BundleSet([parseX509BundlePem('example.org', bundlePem)]);
  let peerId = '';
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      host: '127.0.0.1',
      port,
      ca: bundlePem,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => {
        try {
          const chain: Buffer[] = [];
          for (
            let c: tls.DetailedPeerCertificate | undefined = cert as tls.DetailedPeerCertificate;
            c?.raw && !chain.some((x) => x.equals(c!.raw));
            c = c.issuerCertificate
          )
            chain.push(c.raw);
          const { id } = verifyX509Svid(chain, bundles, new Date());
          const problem = authorizeID(expectedId)(id);
          if (problem) return new Error(`peer refused: ${problem}`);
          peerId = id.uri;
          return undefined;
        } catch (e) {
          return e as Error;
        }
      },
    });
    let reply = '';
    sock.once('secureConnect', () => sock.write('writ\n'));
    sock.on('data', (d) => {
      reply += d;
      if (reply.endsWith('\n')) {
        const protocol = sock.getProtocol();
        sock.end();
        resolve({ protocol, peerId, reply });
      }
    });
    sock.once('error', reject);
    sock.setTimeout(30_000, () => sock.destroy(new Error('TLS exchange timed out')));
  });
}
