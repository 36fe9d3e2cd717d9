/**
 * The handshake benchmarks' clients in a process of their own (child_process.fork), so that the
 * server process does only the server's work: the parent sends one job per message over IPC,
 * the child answers with its LoadResult. Same driver, same client code as in-process.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { attest } from '../../src/agent/attest-client.js';
import { FloorClient, type HandshakeSizes } from './grpc-floor.js';
import { profiled, runLoad, type LoadResult } from './load.js';

export type ClientJob =
  | {
      readonly kind: 'floor';
      readonly address: string;
      readonly bundlePem: string;
      readonly sizes: HandshakeSizes;
      readonly total: number;
      readonly concurrency: number;
      /** One channel per concurrent client, reused, instead of a new one per exchange. */
      readonly reuse: boolean;
      readonly profile?: string;
    }
  | {
      readonly kind: 'attest';
      readonly address: string;
      readonly bundlePem: string;
      /** One join token per handshake. */
      readonly tokens: readonly string[];
      /** DER SubjectPublicKeyInfo of the agent key of each handshake, base64. */
      /** PKCS#8 DER, base64: the client signs the handshake's key proof. */
      readonly privateKeys: readonly string[];
      readonly jwtAudiences: readonly string[];
      readonly grants: readonly string[];
      readonly concurrency: number;
      readonly profile?: string;
    };

/** Runs one job here, in whichever process this is. */
export async function runJob(job: ClientJob): Promise<LoadResult> {
  if (job.kind === 'floor') {
    const floor = new FloorClient(job.address, job.bundlePem, job.sizes);
    if (!job.reuse) return profiled(job.profile, () => runLoad(job.total, job.concurrency, () => floor.once()));
    const channels = Array.from({ length: job.concurrency }, () => floor.channel());
    try {
      return await profiled(job.profile, () => runLoad(job.total, job.concurrency, (_, w) => floor.exchange(channels[w]!)));
    } finally {
      for (const c of channels) c.close();
    }
  }
  // Parsed before the timed load: the key is the agent's, made long before a handshake.
  const keys = job.privateKeys.map((k) => createPrivateKey({ key: Buffer.from(k, 'base64'), format: 'der', type: 'pkcs8' }));
  if (keys.length !== job.tokens.length) throw new Error('bench: one key per token');
  return profiled(job.profile, () =>
    runLoad(job.tokens.length, job.concurrency, async (i) => {
      const out = await attest({
        server: job.address,
        bundlePem: job.bundlePem,
        evidenceType: 'join_token',
        key: keys[i]!,
        respond: () => Buffer.from(job.tokens[i]!),
        jwtAudiences: job.jwtAudiences,
        grants: job.grants,
      });
      if (job.grants.length > 0 && !out.writ) throw new Error('bench: no writ');
    }),
  );
}

/** A forked client process that runs jobs one at a time. */
export class ClientProcess {
  private readonly child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.child = child;
  }

  static start(): ClientProcess {
    const profile = process.env.BENCH_PROFILE;
    return new ClientProcess(
      fork(fileURLToPath(import.meta.url), ['--client'], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        env: { ...process.env, ...(profile ? { BENCH_PROFILE: profile } : {}) },
      }),
    );
  }

  run(job: ClientJob): Promise<LoadResult> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`bench client exited (${code})`));
      this.child.once('exit', onExit);
      this.child.once('message', (m: { ok: true; result: LoadResult } | { ok: false; error: string }) => {
        this.child.off('exit', onExit);
        if (m.ok) resolve(m.result);
        else reject(new Error(`bench client: ${m.error}`));
      });
      this.child.send(job);
    });
  }

  stop(): void {
    this.child.disconnect();
  }
}

if (process.argv[2] === '--client' && process.send) {
  process.on('message', (job: ClientJob) => {
    runJob(job).then(
      (result) => process.send!({ ok: true, result }),
      (e: unknown) => process.send!({ ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
    );
  });
}
