/**
 * writ's AgentService (src/sidecar/agent-service/) mounted alone on a real Unix socket, over a
 * SidecarState the test provides, with a client and the few assertions its tests share: one
 * call, a server stream (FetchWrit, FetchX509SVID) that collects what arrives, and a refusal's status and writ error code.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'vitest';
import { AgentService, type FetchWritResponse, type FetchX509SVIDResponse } from '../../src/gen/writ/agent/v1/agent_pb.js';
import { grpcClientConstructor, grpcServiceDefinition } from '../../src/rpc/grpc-adapter.js';
import { agentService } from '../../src/sidecar/agent-service/service.js';
import { securityHeaderInterceptor } from '../../src/sidecar/security-header.js';
import type { SocketService } from '../../src/sidecar/socket-service.js';
import type { SidecarState } from '../../src/sidecar/state.js';
import { FakeSidecarState } from '../fakes/sidecar-state.js';

export type AgentClient = grpc.Client & Record<string, (...a: unknown[]) => unknown>;

export interface Harness<S extends SidecarState = FakeSidecarState> {
  readonly dir: string;
  readonly socket: string;
  readonly state: S;
  readonly svc: SocketService;
  readonly server: grpc.Server;
  readonly client: AgentClient;
  readonly logs: string[];
  now: number;
  stop(): Promise<void>;
}

export async function harness<S extends SidecarState = FakeSidecarState>(opts: Parameters<typeof agentService>[0] = {}, given?: S): Promise<Harness<S>> {
  const state = (given ?? new FakeSidecarState()) as S;
  const dir = mkdtempSync(join(tmpdir(), 'writ-as-'));
  const socket = join(dir, 'agent.sock');
  const svc = agentService(opts);
  const logs: string[] = [];
  const h = { dir, socket, state, svc, logs, now: Date.now() } as Harness<S>;
  const server = new grpc.Server();
  server.addService(grpcServiceDefinition(svc.service), svc.implementation({ state, now: () => h.now, log: (l) => logs.push(l) }));
  await new Promise<void>((res, rej) => server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
  const Client = grpcClientConstructor(AgentService);
  const client = new Client(`unix:${socket}`, grpc.credentials.createInsecure(), { interceptors: [securityHeaderInterceptor] }) as AgentClient;
  Object.assign(h, {
    server,
    client,
    async stop() {
      client.close();
      // Streams a test left open are cut, not waited for.
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  });
  return h;
}

export function call<T>(h: Pick<Harness, 'client'>, method: string, req: unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const m = AgentService.methods.find((x) => x.localName === method)!;
    (h.client[method] as (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: T) => void) => void).call(
      h.client,
      create(m.input, req as never),
      { deadline: new Date(Date.now() + 10_000) },
      (e, v) => (e ? reject(e) : resolve(v)),
    );
  });
}

/** The one assertion for a refusal: status, writ error code, and what the message says. */
export async function expectStatus(p: Promise<unknown>, code: grpc.status, writCode: string, message: RegExp): Promise<void> {
  const e = (await p.then(
    () => {
      throw new Error('accepted, but must be refused');
    },
    (x) => x,
  )) as grpc.ServiceError;
  expect({ code: grpc.status[e.code], writCode: e.metadata?.get('writ-error-code')[0], details: e.details }).toMatchObject({
    code: grpc.status[code],
    writCode,
  });
  expect(e.details).toMatch(message);
}

/** A FetchWrit stream, collecting what arrives and how it ends. */
export const fetchWrit = (h: Pick<Harness, 'client'>) => serverStream<FetchWritResponse>(h, 'fetchWrit');
/** A FetchX509SVID stream, collecting what arrives and how it ends. */
export const fetchX509Svid = (h: Pick<Harness, 'client'>) => serverStream<FetchX509SVIDResponse>(h, 'fetchX509SVID');

/** One of AgentService's server streams, collecting what arrives and how it ends. */
export function serverStream<T>(h: Pick<Harness, 'client'>, method: string) {
  const got: T[] = [];
  const call = (h.client[method] as (r: unknown) => grpc.ClientReadableStream<T>).call(h.client, {});
  const waiters: Array<() => void> = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  let error: grpc.ServiceError | undefined;
  call.on('data', (m: T) => {
    got.push(m);
    wake();
  });
  call.on('error', (e: grpc.ServiceError) => {
    error = e;
    wake();
  });
  const until = async (cond: () => boolean) => {
    while (!cond()) await new Promise<void>((r) => waiters.push(r));
  };
  return {
    call,
    got,
    messages: (n: number) => until(() => got.length >= n || error !== undefined).then(() => got),
    ended: () => until(() => error !== undefined).then(() => error!),
  };
}
