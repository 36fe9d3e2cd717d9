import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { BUILTIN_EVIDENCE } from '../../src/attestation/builtins.js';
import { serverSettings } from '../../src/server/settings.js';
import { WritServer, type StartOptions } from '../../src/server/server.js';

/** Starts a real writ server on 127.0.0.1:0 with a fresh data directory; `stop()` removes it. */
export async function startServer(raw: Record<string, unknown> = {}, opts: StartOptions = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-e2e-'));
  const settings = serverSettings(
    { data_dir: dataDir, listen: '127.0.0.1:0', trust_domain: 'example.org', log_level: 'error', ...raw },
    [],
    opts.evidence ?? BUILTIN_EVIDENCE,
  );
  const server = await WritServer.start(settings, { logger: pino({ level: 'silent' }), env: {}, ...opts });
  return {
    server,
    dataDir,
    address: server.address,
    bundlePem: readFileSync(server.bundlePemPath, 'utf8'),
    bundleJwksPath: server.bundleJwksPath,
    adminSocket: settings.adminSocket,
    async stop() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
