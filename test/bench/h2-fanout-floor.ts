/**
 * The platform's floor for the revocation fan-out: raw node:http2 over TLS, no gRPC and no writ,
 * writing one 120-byte DATA frame to each of N sessions (one stream each), the clients in a child
 * process. Measures the server's CPU per fan-out (user + system) and the time until every client
 * has the frame. Run as `node h2-fanout-floor.js client PORT N CA_FILE` it is that child.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePem } from '../../src/der/pem.js';
import { makeCert } from '../helpers/testca.js';

const SELF = fileURLToPath(import.meta.url);

async function client(port: number, n: number, caFile: string): Promise<void> {
  const ca = readFileSync(caFile);
  let got = 0;
  for (let i = 0; i < n; i++) {
    const s = http2.connect(`https://127.0.0.1:${port}`, { ca, servername: 'floor', checkServerIdentity: () => undefined });
    s.on('error', () => {});
    const r = s.request({ ':path': '/' });
    r.on('data', () => {
      if (++got === n) {
        got = 0;
        process.send!('all');
      }
    });
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20));
  }
  process.send!('ready');
}

/** Server CPU and time to all, per fan-out, over `rounds` fan-outs to `n` sessions. */
export async function h2FanoutFloor(n: number, rounds: number): Promise<{ cpuMs: number[]; allMs: number[] }> {
  const cert = makeCert({ subjectCn: 'floor', ca: true, uris: ['spiffe://floor.example'] });
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-h2-'));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, encodePem('CERTIFICATE', cert.der));
  const streams: http2.ServerHttp2Stream[] = [];
  const server = http2.createSecureServer({ key: cert.key.export({ type: 'pkcs8', format: 'pem' }), cert: readFileSync(caFile) });
  server.on('stream', (st) => {
    st.respond({ ':status': 200 });
    streams.push(st);
  });
  server.on('sessionError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const child = fork(SELF, ['client', String(port), String(n), caFile], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.on('message', (m) => m === 'ready' && resolve());
      child.once('exit', (c) => reject(new Error(`bench: h2 floor client exited with ${c}`)));
    });
    while (streams.length < n) await new Promise((r) => setTimeout(r, 10));
    const frame = Buffer.alloc(120, 7);
    const cpuMs: number[] = [];
    const allMs: number[] = [];
    for (let k = 0; k < rounds; k++) {
      const all = new Promise((r) => child.once('message', r));
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (const st of streams) st.write(frame);
      await all;
      const cpu = process.cpuUsage(cpu0);
      allMs.push(performance.now() - t0);
      cpuMs.push((cpu.user + cpu.system) / 1000);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { cpuMs, allMs };
  } finally {
    child.kill('SIGTERM');
    for (const st of streams) st.close();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === SELF && process.argv[2] === 'client') {
  client(Number(process.argv[3]), Number(process.argv[4]), process.argv[5]!).catch((e) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  });
}
