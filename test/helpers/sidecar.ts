/**
 * Sidecar tests' fixtures: an issuer that trusts a fake HSM device (repeatable evidence, so
 * renewals with fresh evidence work), in-process sidecars against it, and a Workload API client
 * built from the upstream proto (../shared/interop/workload.proto) with @grpc/proto-loader,
 * not from writ's generated code.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILTIN_EVIDENCE } from '../../src/attestation/builtins.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { renewingSource, type IdentitySource } from '../../src/sidecar/identity-source.js';
import { runSidecar, type RunningSidecar, type RunSidecarOptions } from '../../src/sidecar/run.js';
import { FAKE_TYPE, fakePlugin, fakeProducer } from '../fakes/evidence-fake/plugin.js';
import { SHARED } from './shared.js';
import { startServer } from './server.js';

export const WORKLOAD_PROTO = join(SHARED, 'interop', 'workload.proto');

export type Issuer = Awaited<ReturnType<typeof startServer>>;

export interface HsmIssuer {
  readonly s: Issuer;
  readonly dir: string;
  readonly deviceKey: string;
  /** Registers the device under `spiffeId` with these TTLs (seconds). */
  entry(spiffeId: string, x509Ttl: number, jwtTtl?: number): Promise<void>;
  /** Stops the issuer, keeping its data directory and port for `restart()` (an outage). */
  halt(): Promise<void>;
  /** Starts it again on the same port with the same data (keys, entries). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** An issuer trusting one fake HSM device, with a fresh device key and data directory. */
export async function startHsmIssuer(): Promise<HsmIssuer> {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-'));
  const devicePub = join(dir, 'device.pub');
  const device = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const key = join(dir, 'device.key');
  writeFileSync(devicePub, device.publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(key, device.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const start = (raw: Record<string, unknown>) =>
    startServer({ ...raw, attestation: { [FAKE_TYPE]: { devices: [devicePub] } } }, { evidence: [...BUILTIN_EVIDENCE, fakePlugin] });
  let s = await start({});
  const dataDir = s.dataDir;
  let halted = false;
  return {
    get s() {
      return s;
    },
    dir,
    deviceKey: key,
    async entry(spiffeId, x509Ttl, jwtTtl = 0) {
      const { createPublicKey } = await import('node:crypto');
      const { readFileSync } = await import('node:fs');
      const spki = createPublicKey(readFileSync(key)).export({ type: 'spki', format: 'der' });
      const value = `device:${createHash('sha256').update(spki).digest('hex')}`;
      await adminClients(s.adminSocket).admin.createEntry({
        entry: { spiffeId, selectors: [{ type: FAKE_TYPE, value }], x509SvidTtl: x509Ttl, jwtSvidTtl: jwtTtl },
      });
    },
    async halt() {
      halted = true;
      await s.server.stop(0);
    },
    async restart() {
      const address = s.address;
      s = await start({ data_dir: dataDir, listen: address });
      halted = false;
    },
    async stop() {
      if (halted) rmSync(s.dataDir, { recursive: true, force: true });
      else await s.stop();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The identity source of a sidecar attesting with the fake HSM (fresh evidence every time). */
export function hsmSource(i: { address: string; bundlePem: string; deviceKey: string; key?: KeyObject }): IdentitySource {
  return renewingSource(
    {
      server: i.address,
      bundlePem: i.bundlePem,
      producer: fakeProducer,
      values: { 'fake-hsm': i.deviceKey },
      key: i.key ?? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
      timeoutMs: 10_000,
    },
    Date.now,
  );
}

/** An in-process sidecar on a fresh socket. */
export async function startSidecar(
  source: IdentitySource,
  extra: Partial<Omit<RunSidecarOptions, 'source' | 'socketPath'>> = {},
): Promise<RunningSidecar & { dir: string; path: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'wsk-'));
  const path = join(dir, 'agent.sock');
  const r = await runSidecar({ source, now: Date.now, socketPath: path, ...extra });
  return {
    ...r,
    dir,
    path,
    async close() {
      await r.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: proto-loader clients are untyped by design.
export type WorkloadClient = any;

let workloadCtor: grpc.ServiceClientConstructor | undefined;
/** A Workload API client from the upstream proto, with its own connection. */
export function workloadClient(path: string): WorkloadClient {
  if (!workloadCtor) {
    const def = protoLoader.loadSync(WORKLOAD_PROTO, { keepCase: true, longs: String, defaults: true, includeDirs: [] });
    workloadCtor = (grpc.loadPackageDefinition(def) as unknown as { SpiffeWorkloadAPI: grpc.ServiceClientConstructor }).SpiffeWorkloadAPI;
  }
  return new workloadCtor(`unix:${path}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

export function securityHeader(): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set('workload.spiffe.io', 'true');
  return m;
}

/** Resolves with the next `n` messages of a stream (or rejects with its error); the caller's cancel() is not an error. */
export function nextMessages<T>(call: grpc.ClientReadableStream<T>, n: number): Promise<T[]> {
  call.on('error', () => {});
  return new Promise((resolve, reject) => {
    const got: T[] = [];
    const onData = (m: T) => {
      got.push(m);
      if (got.length === n) {
        call.off('data', onData);
        call.off('error', reject);
        resolve(got);
      }
    };
    call.on('data', onData);
    call.on('error', reject);
  });
}

export function unary<Req, Res>(client: WorkloadClient, method: string, req: Req, md: grpc.Metadata = securityHeader()): Promise<Res> {
  return new Promise((resolve, reject) => {
    client[method](req, md, { deadline: new Date(Date.now() + 30_000) }, (e: grpc.ServiceError | null, r: Res) => (e ? reject(e) : resolve(r)));
  });
}
