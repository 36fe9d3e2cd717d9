import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, createPublicKey, sign, X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, issuerChannelCredentials, GrpcCallError } from '../../src/agent/attest-client.js';
import { signKeyProofWith } from '../../src/attestation/key-proof.js';
import { BUILTIN_EVIDENCE } from '../../src/attestation/builtins.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { grpcClientConstructor } from '../../src/rpc/grpc-adapter.js';
import { AdminService, type CreateJoinTokenResponse } from '../../src/gen/writ/v1/admin_pb.js';
import { AttestRequestSchema, AttestationService, type AttestRequest, type AttestResponse } from '../../src/gen/writ/v1/attestation_pb.js';
import { Health, HealthCheckRequestSchema, type HealthCheckResponse } from '../../src/gen/grpc/health/v1/health_pb.js';
import { ServerReflection, type ServerReflectionResponse } from '../../src/gen/grpc/reflection/v1/reflection_pb.js';
import { BundleSet, parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { verifyX509Svid } from '../../src/svid/x509-svid.js';
import { validateJwtSvid } from '../../src/svid/jwt-svid.js';
import { ManualClock } from '../../src/clock.js';
import { MAX_MESSAGE_BYTES } from '../../src/server/server.js';
import { startServer } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

type Started = Awaited<ReturnType<typeof startServer>>;
let s: Started;
const clock = new ManualClock(Date.now());

beforeAll(async () => {
  s = await startServer({ metrics_listen: '127.0.0.1:0' }, { clock });
});
afterAll(async () => {
  await s.stop();
});

const ecKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const spkiOf = (k: ReturnType<typeof ecKey>) => createPublicKey(k.privateKey).export({ type: 'spki', format: 'der' });

async function token(spiffeId?: string, ttl = 0): Promise<CreateJoinTokenResponse> {
  return adminClients(s.adminSocket).admin.createJoinToken({ ttl, spiffeId: spiffeId ?? '' });
}

/** A message, or one made from the challenge nonce once it arrives (evidence with its key proof). */
type Msg = AttestRequest | ((nonce: Uint8Array) => AttestRequest);

/** Runs a raw handshake with arbitrary messages and returns the gRPC error (or result). */
function rawAttest(messages: Msg[], opts: { endAfter?: boolean } = {}): Promise<{ err?: grpc.ServiceError; responses: AttestResponse[] }> {
  const Client = grpcClientConstructor(AttestationService);
  const client = new Client(s.address, issuerChannelCredentials(s.bundlePem), {
    'grpc.ssl_target_name_override': 'writ-issuer',
    'grpc.max_send_message_length': 8 * MAX_MESSAGE_BYTES,
  });
  return new Promise((resolve) => {
    const responses: AttestResponse[] = [];
    const challenges: Uint8Array[] = [];
    let waiting: ((n: Uint8Array) => void) | undefined;
    const call = (client as unknown as { attest(): grpc.ClientDuplexStream<AttestRequest, AttestResponse> }).attest();
    call.on('data', (r: AttestResponse) => {
      responses.push(r);
      if (r.step.case !== 'challenge') return;
      if (waiting) waiting(r.step.value.nonce);
      else challenges.push(r.step.value.nonce);
      waiting = undefined;
    });
    call.on('error', (err: grpc.ServiceError) => {
      client.close();
      resolve({ err, responses });
    });
    call.on('end', () => {
      client.close();
      resolve({ responses });
    });
    void (async () => {
      for (const m of messages) {
        if (typeof m !== 'function') call.write(m);
        else call.write(m(challenges.shift() ?? (await new Promise<Uint8Array>((r) => (waiting = r)))));
      }
      if (opts.endAfter) call.end();
    })();
  });
}

const hello = (v: Partial<{ evidenceType: string; publicKey: Uint8Array; csr: Uint8Array; grants: string[]; jwtAudiences: string[] }>) =>
  create(AttestRequestSchema, { step: { case: 'hello', value: { evidenceType: 'join_token', ...v } } });
const evidence = (payload: Uint8Array, keyProof?: Uint8Array) =>
  create(AttestRequestSchema, { step: { case: 'evidence', value: { payload, ...(keyProof ? { keyProof } : {}) } } });

/** A hello naming a fresh bare key, and evidence that proves possession of it over the challenge. */
function bare(payload: Uint8Array, v: Parameters<typeof hello>[0] = {}): [AttestRequest, Msg] {
  const k = ecKey();
  return [hello({ publicKey: spkiOf(k), ...v }), (nonce) => evidence(payload, signKeyProofWith(k.privateKey, nonce))];
}

async function expectNothingStored<T>(f: () => Promise<T>): Promise<T> {
  const before = await s.server.store.countIssued();
  const out = await f();
  expect(await s.server.store.countIssued()).toBe(before);
  return out;
}

describe('attestation over gRPC on loopback', () => {
  it('issues an X.509-SVID, the bundle and JWT-SVIDs for a join token', async () => {
    const t = await token('spiffe://example.org/agent/a');
    const key = ecKey();
    const res = await attest({
      server: s.address,
      bundlePem: s.bundlePem,
      evidenceType: 'join_token',
      key: key.privateKey,
      respond: () => Buffer.from(t.token),
      jwtAudiences: ['https://rp.example', 'spiffe://example.org/rp'],
    });
    expect(res.spiffeId).toBe('spiffe://example.org/agent/a');
    const bundle = parseSpiffeBundle('example.org', res.bundleJwks);
    const bundles = new BundleSet([bundle]);
    expect(verifyX509Svid(res.svidChain, bundles, clock.now()).id.uri).toBe(res.spiffeId);
    expect(new X509Certificate(res.svidChain[0]!).publicKey.export({ type: 'spki', format: 'der' }).equals(spkiOf(key))).toBe(true);
    expect(res.jwtSvids.map((j) => j.audience)).toEqual(['https://rp.example', 'spiffe://example.org/rp']);
    for (const j of res.jwtSvids) expect(validateJwtSvid(j.token, bundles, [j.audience], clock.now()).id.uri).toBe(res.spiffeId);
    const rec = await s.server.store.getJoinToken(t.id);
    expect(rec!.usedAt).not.toBeNull();
  });

  it('accepts a CSR (PKCS#10 from openssl) instead of a bare key', async () => {
    const dir = tmpDir();
    const key = ecKey();
    writeFileSync(join(dir, 'k.pem'), key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    execFileSync('openssl', ['req', '-new', '-key', join(dir, 'k.pem'), '-subj', '/CN=agent', '-outform', 'DER', '-out', join(dir, 'csr.der')]);
    const csr = readFileSync(join(dir, 'csr.der'));
    const t = await token('spiffe://example.org/agent/csr');
    const r2 = await rawAttest([hello({ csr }), evidence(Buffer.from(t.token))]);
    expect(r2.err).toBeUndefined();
    const result = r2.responses.find((x) => x.step.case === 'result')!;
    expect(result.step.case === 'result' && result.step.value.spiffeId).toBe('spiffe://example.org/agent/csr');
  });

  it('answers a second handshake with a new token without re-using the first', async () => {
    const t1 = await token('spiffe://example.org/agent/b');
    const ok = await rawAttest(bare(Buffer.from(t1.token)));
    expect(ok.err).toBeUndefined();
    const again = await expectNothingStored(() => rawAttest(bare(Buffer.from(t1.token))));
    expect(again.err!.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(again.err!.details).toBe('attestation(join_token): token has already been used');
    expect(again.err!.metadata.get('writ-error-code')).toEqual(['ERR_JOIN_TOKEN_INVALID']);
  });
});

describe('bad input: a clear gRPC error and nothing stored', () => {
  const cases: Array<[string, () => Promise<Msg[]>, grpc.status, RegExp]> = [
    ['malformed CSR', async () => [hello({ csr: Buffer.from('3003020100', 'hex') })], grpc.status.INVALID_ARGUMENT, /^csr: /],
    [
      'a CSR whose signature does not verify',
      async () => {
        const dir = tmpDir();
        writeFileSync(join(dir, 'k.pem'), ecKey().privateKey.export({ type: 'pkcs8', format: 'pem' }));
        execFileSync('openssl', ['req', '-new', '-key', join(dir, 'k.pem'), '-subj', '/CN=agent', '-outform', 'DER', '-out', join(dir, 'csr.der')]);
        const csr = readFileSync(join(dir, 'csr.der'));
        csr[csr.length - 5]! ^= 1;
        return [hello({ csr })];
      },
      grpc.status.INVALID_ARGUMENT,
      /csr: signature does not verify/,
    ],
    [
      'an RSA-1024 key',
      async () => [hello({ publicKey: generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' }) })],
      grpc.status.INVALID_ARGUMENT,
      /RSA modulus of 1024 bits/,
    ],
    [
      'a secp256k1 key',
      async () => [hello({ publicKey: generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ type: 'spki', format: 'der' }) })],
      grpc.status.INVALID_ARGUMENT,
      /unsupported EC curve secp256k1/,
    ],
    [
      'an Ed25519 key',
      async () => [hello({ publicKey: generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }) })],
      grpc.status.INVALID_ARGUMENT,
      /unsupported key type ed25519/,
    ],
    ['garbage instead of a key', async () => [hello({ publicKey: Buffer.from('not a key') })], grpc.status.INVALID_ARGUMENT, /not a DER SubjectPublicKeyInfo/],
    [
      'both a key and a CSR',
      async () => [hello({ publicKey: spkiOf(ecKey()), csr: Buffer.from([1]) })],
      grpc.status.INVALID_ARGUMENT,
      /exactly one of public_key and csr/,
    ],
    [
      'an unknown evidence type',
      async () => [hello({ evidenceType: 'magic_beans', publicKey: spkiOf(ecKey()) })],
      grpc.status.INVALID_ARGUMENT,
      new RegExp(
        `unknown evidence type "magic_beans" \\(supported: ${BUILTIN_EVIDENCE.map((p) => p.type)
          .sort()
          .join(', ')}\\)`,
      ),
    ],
    [
      'a malformed grant chain',
      async () => [hello({ publicKey: spkiOf(ecKey()), grants: ['x.y.z'] })],
      grpc.status.PERMISSION_DENIED,
      /delegation: grant 0: jws: header is not strict base64url JSON/,
    ],
    [
      'too many JWT audiences',
      async () => [hello({ publicKey: spkiOf(ecKey()), jwtAudiences: Array.from({ length: 9 }, (_, i) => `a${i}`) })],
      grpc.status.RESOURCE_EXHAUSTED,
      /at most 8/,
    ],
    ['evidence before hello', async () => [evidence(Buffer.from('x'))], grpc.status.INVALID_ARGUMENT, /evidence before hello/],
    [
      'hello twice',
      async () => [hello({ publicKey: spkiOf(ecKey()) }), hello({ publicKey: spkiOf(ecKey()) })],
      grpc.status.INVALID_ARGUMENT,
      /hello sent twice/,
    ],
    ['a malformed join token', async () => bare(Buffer.from('nope')), grpc.status.PERMISSION_DENIED, /token is malformed/],
    [
      'a join token with the wrong secret',
      async () => {
        const t = await token('spiffe://example.org/agent/w');
        return bare(Buffer.from(t.token.slice(0, -1) + (t.token.endsWith('A') ? 'B' : 'A')));
      },
      grpc.status.PERMISSION_DENIED,
      /token is not valid$/,
    ],
    ['oversized evidence for the type', async () => bare(Buffer.alloc(4096, 0x41)), grpc.status.RESOURCE_EXHAUSTED, /exceeds 128/],
    [
      'a bare public key without a key proof',
      async () => {
        const t = await token('spiffe://example.org/agent/nokp');
        return [hello({ publicKey: spkiOf(ecKey()) }), evidence(Buffer.from(t.token))];
      },
      grpc.status.PERMISSION_DENIED,
      /must carry key_proof/,
    ],
    [
      'a key proof by another key than the hello names',
      async () => {
        const t = await token('spiffe://example.org/agent/otherkp');
        const thief = ecKey();
        return [hello({ publicKey: spkiOf(ecKey()) }), (nonce: Uint8Array) => evidence(Buffer.from(t.token), signKeyProofWith(thief.privateKey, nonce))];
      },
      grpc.status.PERMISSION_DENIED,
      /key_proof does not verify/,
    ],
    [
      'a key proof over another nonce (replayed from another handshake)',
      async () => {
        const t = await token('spiffe://example.org/agent/replaykp');
        const k = ecKey();
        return [hello({ publicKey: spkiOf(k) }), evidence(Buffer.from(t.token), signKeyProofWith(k.privateKey, Buffer.alloc(32, 7)))];
      },
      grpc.status.PERMISSION_DENIED,
      /key_proof does not verify/,
    ],
    [
      'a key proof signed over the bare nonce without the domain-separation context',
      async () => {
        const t = await token('spiffe://example.org/agent/ctxkp');
        const k = ecKey();
        return [
          hello({ publicKey: spkiOf(k) }),
          (nonce: Uint8Array) => evidence(Buffer.from(t.token), sign('sha256', nonce, { key: k.privateKey, dsaEncoding: 'ieee-p1363' })),
        ];
      },
      grpc.status.PERMISSION_DENIED,
      /key_proof does not verify/,
    ],
    [
      'a token that maps to no entry',
      async () => {
        const t = await token();
        return bare(Buffer.from(t.token));
      },
      grpc.status.PERMISSION_DENIED,
      /no registration entry matches/,
    ],
  ];

  it.each(cases)('%s', async (_name, build, code, msg) => {
    const msgs = await build();
    const r = await expectNothingStored(() => rawAttest(msgs));
    expect(r.err, 'expected an error').toBeDefined();
    expect(r.err!.code).toBe(code);
    expect(r.err!.details).toMatch(msg);
  });

  it('a message over the size limit is refused by the transport', async () => {
    const r = await expectNothingStored(() => rawAttest([hello({ publicKey: Buffer.alloc(MAX_MESSAGE_BYTES + 10) })]));
    expect(r.err!.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  it('an expired join token is refused and not consumed', async () => {
    const t = await token('spiffe://example.org/agent/late', 60);
    clock.advance(61_000);
    try {
      const r = await expectNothingStored(() => rawAttest(bare(Buffer.from(t.token))));
      expect(r.err!.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(r.err!.details).toBe('attestation(join_token): token has expired');
      expect((await s.server.store.getJoinToken(t.id))?.usedAt ?? null).toBeNull();
    } finally {
      clock.advance(-61_000);
    }
  });

  it('a token is not consumed when issuance fails after attestation (no matching entry)', async () => {
    const t = await token();
    await rawAttest(bare(Buffer.from(t.token)));
    expect((await s.server.store.getJoinToken(t.id))!.usedAt).toBeNull();
  });

  it('a stream closed before the handshake ends is an error', async () => {
    const r = await rawAttest([hello({ publicKey: spkiOf(ecKey()) })], { endAfter: true });
    expect(r.err!.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(r.err!.details).toMatch(/stream closed before the handshake finished/);
  });

  it('SPIFFE IDs outside the trust domain are refused at entry creation, and nothing is stored', async () => {
    const before = (await s.server.store.listEntries()).length;
    const err = await adminClients(s.adminSocket)
      .admin.createEntry({
        entry: { spiffeId: 'spiffe://evil.org/agent', selectors: [{ type: 'join_token', value: 'x' }] },
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(GrpcCallError);
    expect((err as GrpcCallError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as GrpcCallError).details).toMatch(/outside the trust domain example.org/);
    const err2 = await token('spiffe://evil.org/agent').catch((e) => e);
    expect((err2 as GrpcCallError).details).toMatch(/outside the trust domain/);
    expect((await s.server.store.listEntries()).length).toBe(before);
  });
});

describe('operability', () => {
  it('answers grpc.health.v1 Check on the TLS port', async () => {
    const Client = grpcClientConstructor(Health);
    const c = new Client(s.address, issuerChannelCredentials(s.bundlePem), { 'grpc.ssl_target_name_override': 'writ-issuer' });
    const res = await new Promise<HealthCheckResponse>((resolve, reject) =>
      (c as unknown as { check(r: unknown, cb: (e: Error | null, r: HealthCheckResponse) => void): void }).check(
        create(HealthCheckRequestSchema, { service: '' }),
        (e, r) => (e ? reject(e) : resolve(r)),
      ),
    );
    c.close();
    expect(res.status).toBe(1);
  });

  it('lists services and serves descriptors through reflection', async () => {
    const Client = grpcClientConstructor(ServerReflection);
    const c = new Client(s.address, issuerChannelCredentials(s.bundlePem), { 'grpc.ssl_target_name_override': 'writ-issuer' });
    const call = (c as unknown as { serverReflectionInfo(): grpc.ClientDuplexStream<unknown, ServerReflectionResponse> }).serverReflectionInfo();
    const got: ServerReflectionResponse[] = [];
    const done = new Promise<void>((resolve) => {
      call.on('data', (r: ServerReflectionResponse) => {
        got.push(r);
        if (got.length === 2) call.end();
      });
      call.on('end', resolve);
    });
    const { ServerReflectionRequestSchema } = await import('../../src/gen/grpc/reflection/v1/reflection_pb.js');
    call.write(create(ServerReflectionRequestSchema, { messageRequest: { case: 'listServices', value: '' } }));
    call.write(create(ServerReflectionRequestSchema, { messageRequest: { case: 'fileContainingSymbol', value: 'writ.v1.AttestationService' } }));
    await done;
    c.close();
    const list = got[0]!.messageResponse;
    expect(list.case === 'listServicesResponse' && list.value.service.map((x) => x.name)).toContain('writ.v1.AttestationService');
    const fd = got[1]!.messageResponse;
    expect(fd.case === 'fileDescriptorResponse' && fd.value.fileDescriptorProto.length).toBeGreaterThan(0);
  });

  it('exposes Prometheus metrics with issuance counts and latency histograms', async () => {
    const res = await fetch(`http://127.0.0.1:${s.server.metricsPort}/metrics`);
    const body = await res.text();
    expect(body).toMatch(/writ_svids_issued_total\{kind="x509",evidence_type="join_token"\} [1-9]/);
    // Every handshake is in the +Inf bucket, whatever the machine's load made it take.
    expect(body).toMatch(/writ_handshake_duration_seconds_bucket\{le="0.1",evidence_type="join_token",result="ok"\} \d/);
    expect(body).toMatch(/writ_handshake_duration_seconds_bucket\{le="\+Inf",evidence_type="join_token",result="ok"\} [1-9]/);
    expect(body).toMatch(/writ_handshake_duration_seconds_count\{evidence_type="join_token",result="ok"\} [1-9]/);
    expect(body).toMatch(/writ_handshakes_total\{evidence_type="join_token",result="ERR_JOIN_TOKEN_INVALID"\} [1-9]/);
  });

  it('does not serve the admin API on the public port', async () => {
    const Client = grpcClientConstructor(AdminService);
    const c = new Client(s.address, issuerChannelCredentials(s.bundlePem), { 'grpc.ssl_target_name_override': 'writ-issuer' });
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      (c as unknown as { listEntries(r: unknown, cb: (e: grpc.ServiceError) => void): void }).listEntries(create(AdminService.method.listEntries.input), (e) =>
        resolve(e),
      ),
    );
    c.close();
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it("refuses a TLS peer whose SPIFFE ID is not the issuer's", async () => {
    const other = await startServer({ trust_domain: 'other.org' });
    try {
      const err = await attest({
        server: other.address,
        bundlePem: s.bundlePem,
        evidenceType: 'join_token',
        key: ecKey().privateKey,
        respond: () => Buffer.from('x'),
      }).catch((e) => e);
      expect(err).toBeInstanceOf(GrpcCallError);
      expect((err as GrpcCallError).code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      await other.stop();
    }
  });

  it('limits how many handshakes one peer may start', async () => {
    const limited = await startServer({ limits: { attestations_per_second: 1, attestation_burst: 2 } });
    try {
      const errs: Array<grpc.ServiceError | undefined> = [];
      for (let i = 0; i < 3; i++) {
        const r = await new Promise<grpc.ServiceError | undefined>((resolve) => {
          const Client = grpcClientConstructor(AttestationService);
          const c = new Client(limited.address, issuerChannelCredentials(limited.bundlePem), { 'grpc.ssl_target_name_override': 'writ-issuer' });
          const call = (c as unknown as { attest(): grpc.ClientDuplexStream<AttestRequest, AttestResponse> }).attest();
          call.on('data', () => call.end());
          call.on('error', (e: grpc.ServiceError) => {
            c.close();
            resolve(e);
          });
          call.write(hello({ publicKey: spkiOf(ecKey()) }));
        });
        errs.push(r);
      }
      expect(errs.slice(0, 2).map((e) => e?.details)).toEqual([expect.stringMatching(/stream closed/), expect.stringMatching(/stream closed/)]);
      expect(errs[2]!.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(errs[2]!.details).toMatch(/too many handshakes from this peer/);
    } finally {
      await limited.stop();
    }
  });

  it('the admin socket never appears at its path with looser permissions than 0600, not even between bind and chmod', async () => {
    const dir = tmpDir();
    const path = join(dir, 'admin.sock');
    const atBind: Array<number | null> = [];
    const original = grpc.Server.prototype.bindAsync;
    const previous = process.umask(0o000); // the worst case: a bare bind makes the socket 0777
    grpc.Server.prototype.bindAsync = function (this: grpc.Server, port, creds, cb) {
      return original.call(this, port, creds, (err, p) => {
        if (port.startsWith('unix:')) atBind.push(existsSync(path) ? statSync(path).mode & 0o777 : null);
        cb(err, p);
      });
    };
    let t: Awaited<ReturnType<typeof startServer>> | undefined;
    try {
      t = await startServer({ admin_socket: path });
    } finally {
      grpc.Server.prototype.bindAsync = original;
      process.umask(previous);
    }
    try {
      // When the bind completed nothing was at the final path yet (the socket is renamed there after chmod).
      expect(atBind).toEqual([null]);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(readdirSync(dir)).toEqual(['admin.sock']);
    } finally {
      await t.stop();
    }
  });

  it('the admin socket is private to its owner', () => {
    const mode = execFileSync('stat', ['-c', '%a', s.adminSocket]).toString().trim();
    expect(mode).toBe('600');
  });
});
