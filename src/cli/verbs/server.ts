/** `writ server`: runs the issuer until SIGINT or SIGTERM. */
import { loadRawConfig } from '../../config/config.js';
import { readInputFile } from '../../config/files.js';
import { stringOption } from '../../config/options.js';
import { WritServer } from '../../server/server.js';
import { serverSettings } from '../../server/settings.js';
import type { Verb } from '../verb.js';

export const serverVerb: Verb = {
  name: ['server'],
  summary: 'run the issuer (gRPC over TLS, the admin socket, metrics, the HTTPS listener); stops cleanly on SIGINT/SIGTERM',
  options: {
    config: { type: 'string', value: 'FILE', help: 'YAML configuration (or WRIT_CONFIG); the environment and flags override it' },
    'data-dir': { type: 'string', value: 'DIR', help: 'where the database, keys and bundle live (default ./.writ)' },
    listen: { type: 'string', value: 'HOST:PORT', help: 'the public TLS port (default 127.0.0.1:8443)' },
    'trust-domain': { type: 'string', value: 'TD', help: 'the SPIFFE trust domain (default writ.local)' },
    'admin-socket': { type: 'string', value: 'PATH', help: 'the admin Unix socket (default <data-dir>/admin.sock)' },
    'metrics-listen': { type: 'string', value: 'HOST:PORT', help: 'serve Prometheus metrics here (off by default)' },
    'http-listen': { type: 'string', value: 'HOST:PORT', help: 'the HTTPS listener: status lists and the SPIFFE bundle endpoint (off by default)' },
    'log-level': { type: 'string', value: 'LEVEL', help: 'trace, debug, info, warn or error (default info)' },
  },
  async run({ values, env, catalog, io }) {
    // A configuration file that cannot be read is said in words (the YAML layer would show the errno).
    const configFile = stringOption(values, 'config');
    if (configFile !== undefined) readInputFile(configFile, '--config');
    else if (env.WRIT_CONFIG) readInputFile(env.WRIT_CONFIG, 'WRIT_CONFIG');
    const { raw, problems } = loadRawConfig(
      {
        config: stringOption(values, 'config'),
        dataDir: stringOption(values, 'data-dir'),
        listen: stringOption(values, 'listen'),
        trustDomain: stringOption(values, 'trust-domain'),
        adminSocket: stringOption(values, 'admin-socket'),
        metricsListen: stringOption(values, 'metrics-listen'),
        httpListen: stringOption(values, 'http-listen'),
        logLevel: stringOption(values, 'log-level'),
      },
      env,
    );
    const settings = serverSettings(raw, problems, catalog.evidence);
    const server = await WritServer.start(settings, { env, evidence: catalog.evidence });
    io.err(
      `\nwrit server is running for trust domain ${settings.trustDomain}\n` +
        `  public gRPC (TLS) : ${server.address}\n` +
        (server.http ? `  HTTPS             : ${server.http.url} (port ${server.httpPort}: /status/<list>, /.well-known/spiffe-bundle)\n` : '') +
        (server.http?.console ? `  web console       : ${server.http.url}/console/\n` : '') +
        `  admin socket      : ${settings.adminSocket}\n` +
        `  datastore         : ${server.datastoreDescription}\n` +
        `  trust bundle      : ${server.bundlePemPath} (SPIFFE JWKS: ${server.bundleJwksPath})\n` +
        (server.metricsPort ? `  metrics           : http://${settings.metricsListen!.host}:${server.metricsPort}/metrics\n` : '') +
        `\nNext, in another shell:\n` +
        `  ./bin/writ healthcheck --data-dir ${settings.dataDir} --wait 30s\n` +
        `  ./bin/writ token create --data-dir ${settings.dataDir} --spiffe-id spiffe://${settings.trustDomain}/agent/demo\n` +
        `  ./bin/writ agent attest --server ${server.address} --bundle ${server.bundlePemPath} --join-token <TOKEN> --out ./svid\n\n`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await server.stop();
    return 0;
  },
};
