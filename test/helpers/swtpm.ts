/**
 * A real software TPM for tests: swtpm manufactured by swtpm_setup --create-ek-cert with its
 * own local CA (the "manufacturer"), on free loopback ports; stopped by its PID after an orderly
 * TPM2_Shutdown. Tests that need it skip loudly when swtpm is absent, except in CI.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tpm } from '../../src/tpm/client.js';

export const HAVE_SWTPM = ['swtpm', 'swtpm_setup', 'swtpm_localca'].every((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0);
export const HAVE_TPM2_TOOLS = spawnSync('sh', ['-c', 'command -v tpm2_checkquote']).status === 0;
if (!HAVE_SWTPM || !HAVE_TPM2_TOOLS) {
  if (process.env.CI) throw new Error('CI requires swtpm, swtpm-tools and tpm2-tools (scripts/install-test-deps.sh)');
  console.warn('\n*** swtpm or tpm2-tools not installed: TPM end-to-end or interop tests are SKIPPED (apt-get install swtpm swtpm-tools tpm2-tools) ***\n');
}

async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    if (port >= 65535) continue;
    const nextFree = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port + 1, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (nextFree) return port;
  }
  throw new Error('no free port pair for swtpm');
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`swtpm did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface Swtpm {
  readonly dir: string;
  readonly port: number;
  /** `swtpm:host=127.0.0.1,port=N`, for writ and for TPM2TOOLS_TCTI. */
  readonly spec: string;
  /** The manufacturer's root CA (swtpm-localca root) and its issuing CA, PEM files. */
  readonly rootPem: string;
  readonly intermediatePem: string;
  open(): Promise<Tpm>;
  stop(): Promise<void>;
}

/** Manufactures and starts a swtpm. */
export async function startSwtpm(): Promise<Swtpm> {
  const dir = mkdtempSync(join(tmpdir(), 'writ-swtpm-'));
  mkdirSync(join(dir, 'state'));
  mkdirSync(join(dir, 'localca'));
  writeFileSync(
    join(dir, 'swtpm-localca.conf'),
    `statedir = ${dir}/localca\nsigningkey = ${dir}/localca/signkey.pem\nissuercert = ${dir}/localca/issuercert.pem\ncertserial = ${dir}/localca/certserial\n`,
  );
  writeFileSync(join(dir, 'swtpm-localca.options'), '--platform-manufacturer writ-test\n--platform-version 2.1\n--platform-model swtpm\n');
  writeFileSync(
    join(dir, 'swtpm_setup.conf'),
    `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${dir}/swtpm-localca.conf\ncreate_certs_tool_options = ${dir}/swtpm-localca.options\n`,
  );
  const setup = spawnSync(
    'swtpm_setup',
    ['--tpm2', '--tpmstate', join(dir, 'state'), '--create-ek-cert', '--config', join(dir, 'swtpm_setup.conf'), '--overwrite'],
    { encoding: 'utf8' },
  );
  if (setup.status !== 0) throw new Error(`swtpm_setup failed: ${setup.stderr || setup.stdout}`);
  const port = await freePortPair();
  const child: ChildProcess = spawn(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${join(dir, 'state')}`,
      '--server',
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      '--ctrl',
      `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
      '--flags',
      'not-need-init,startup-clear',
    ],
    { stdio: 'ignore' },
  );
  await waitForPort(port, 10_000);
  const spec = `swtpm:host=127.0.0.1,port=${port}`;
  return {
    dir,
    port,
    spec,
    rootPem: join(dir, 'localca', 'swtpm-localca-rootca-cert.pem'),
    intermediatePem: join(dir, 'localca', 'issuercert.pem'),
    open: () => Tpm.open(spec),
    async stop() {
      // An orderly TPM2_Shutdown first, or the next start counts a dictionary-attack strike.
      try {
        const tpm = await Tpm.open(spec);
        await tpm.shutdown();
        await tpm.close();
      } catch {
        /* already gone */
      }
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function pem(path: string): string {
  return readFileSync(path, 'utf8');
}

/**
 * tpm2-openssl (the OpenSSL 3 provider for TPM keys) for the system `openssl`: a module, found as
 * tpm2.so in OpenSSL's MODULESDIR. The test that needs it skips loudly when it is absent, except
 * in CI (test/e2e/sidecar-tpm.test.ts).
 */
export const HAVE_TPM2_OPENSSL = (() => {
  const v = spawnSync('openssl', ['version', '-m'], { encoding: 'utf8' });
  const dir = /^MODULESDIR: "(.*)"$/m.exec(v.stdout ?? '')?.[1];
  return v.status === 0 && dir !== undefined && existsSync(join(dir, 'tpm2.so'));
})();

/** The TSS2 PRIVATE KEY PEM of a key made under the SRK (src/attestation/tpm/tss2-key.ts). */
export { tss2PrivateKeyPem } from '../../src/attestation/tpm/tss2-key.js';
