/**
 * `writ verify --watch HOST:PORT`: the relying party subscribes to the issuer's revocation
 * stream, waits until it is in sync (the first heartbeat), and verifies with it as the
 * revocation source. TLS to the issuer is checked against the X.509 authorities of the same
 * SPIFFE bundle (JWKS) that `--bundle` gives for the writ keys: one trust anchor for both.
 */
import { grpcWatchConnector } from '../agent/revocation-client.js';
import { parseHostPort } from '../config/config.js';
import { parseDuration } from '../config/duration.js';
import { listOption, stringOption, UsageError, type OptionSpecs, type OptionValues } from '../config/options.js';
import { WatchRevocationSource } from '../revocation/watch-source.js';
import { marshalX509Pem, type Bundle } from '../spiffe/bundle.js';

/** How long `--watch` waits for the stream to sync by default. */
export const DEFAULT_WATCH_TIMEOUT_MS = 10_000;

export const WATCH_OPTIONS: OptionSpecs = {
  watch: {
    type: 'string',
    multiple: true,
    value: 'HOST:PORT',
    help: "check revocation against the issuer's Watch stream there (TLS checked against the bundle's X.509 authorities); several: failover",
  },
  'watch-timeout': { type: 'string', value: 'D', help: 'how long --watch waits for the stream to be in sync (default 10s)' },
};

/** The Watch-fed source `--watch` asks for, in sync; undefined without `--watch`. The caller closes it. */
export async function openWatchOption(values: OptionValues, bundle: Bundle): Promise<WatchRevocationSource | undefined> {
  const addresses = listOption(values, 'watch');
  if (addresses.length === 0) {
    if (values['watch-timeout'] !== undefined) throw new UsageError('--watch-timeout goes with --watch');
    return undefined;
  }
  for (const a of addresses) {
    try {
      parseHostPort(a);
    } catch {
      throw new UsageError(`--watch must be HOST:PORT, e.g. 127.0.0.1:8443 (got ${JSON.stringify(a.slice(0, 80))})`);
    }
  }
  let timeoutMs = DEFAULT_WATCH_TIMEOUT_MS;
  const t = stringOption(values, 'watch-timeout');
  if (t !== undefined) {
    try {
      timeoutMs = parseDuration(t);
    } catch (e) {
      throw new UsageError(`--watch-timeout: ${(e as Error).message}`);
    }
  }
  if (bundle.x509Authorities.length === 0) throw new UsageError("--watch: the --bundle has no X.509 authorities to check the issuer's TLS certificate with");
  const source = new WatchRevocationSource({ addresses, connector: grpcWatchConnector(marshalX509Pem(bundle)) }).start();
  try {
    await source.synced(timeoutMs);
  } catch (e) {
    source.close();
    throw e;
  }
  return source;
}
