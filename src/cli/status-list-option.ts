/**
 * `writ verify --status-list URL|FILE [--status-list-max-age D]`: revocation checked against the
 * issuer's Token Status List, fetched from an https URL (TLS checked against the bundle's X.509
 * authorities and the issuer's SPIFFE ID) or read from a saved `statuslist+jwt` file; either
 * way verified with the bundle's writ keys and required to be the list the writ names.
 */
import { parseDuration } from '../config/duration.js';
import { readInputFile } from '../config/files.js';
import { stringOption, UsageError, type OptionSpecs, type OptionValues } from '../config/options.js';
import { RevocationError } from '../errors.js';
import { DEFAULT_STATUS_LIST_MAX_AGE_MS, ISSUER_SERVER_ID_PATH, StatusListSource, httpsStatusListFetcher } from '../revocation/status-list-source.js';
import { marshalX509Pem, type Bundle } from '../spiffe/bundle.js';
import { parseWritCached } from '../writ/writ.js';

/** The status list URI a writ names, if it parses and names one (verifyWrit judges the rest). */
function writStatusUri(writ: string): string | undefined {
  try {
    return parseWritCached(writ).claims.status?.status_list.uri;
  } catch {
    return undefined;
  }
}

export const STATUS_LIST_OPTIONS: OptionSpecs = {
  'status-list': {
    type: 'string',
    value: 'URL|FILE',
    help: "check revocation against the issuer's Token Status List: fetch it from an https URL, or read a saved statuslist+jwt file",
  },
  'status-list-max-age': {
    type: 'string',
    value: 'D',
    help: `refuse a status list issued longer ago than this (default ${DEFAULT_STATUS_LIST_MAX_AGE_MS / 60_000}m)`,
  },
};

/**
 * The revocation source `--status-list` asks for, holding the list the writ names; undefined
 * without the option. A list that cannot be fetched or does not verify is a RevocationError.
 */
export async function statusListRevocation(values: OptionValues, ctx: { bundle: Bundle; writ: string; now: Date }): Promise<StatusListSource | undefined> {
  const where = stringOption(values, 'status-list');
  const maxAgeText = stringOption(values, 'status-list-max-age');
  if (where === undefined) {
    if (maxAgeText !== undefined) throw new UsageError('--status-list-max-age goes with --status-list');
    return undefined;
  }
  let maxAgeMs = DEFAULT_STATUS_LIST_MAX_AGE_MS;
  if (maxAgeText !== undefined) {
    try {
      maxAgeMs = parseDuration(maxAgeText);
    } catch (e) {
      throw new UsageError(`--status-list-max-age: ${(e as Error).message}`);
    }
    if (maxAgeMs < 1000) throw new UsageError('--status-list-max-age must be at least 1s');
  }
  const writKeys = ctx.bundle.writAuthorities ?? new Map();
  const now = () => ctx.now;
  if (/^https:\/\//i.test(where)) {
    const get = httpsStatusListFetcher({ ca: marshalX509Pem(ctx.bundle), spiffeId: `spiffe://${ctx.bundle.trustDomain}${ISSUER_SERVER_ID_PATH}` });
    // The URL given is fetched; the token must still be the list the writ names (its `sub`).
    const source = new StatusListSource({ writKeys, now, maxAgeMs, fetch: () => get(where) });
    await source.prepare(ctx.writ);
    return source;
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(where)) throw new UsageError('--status-list must be an https URL or a file');
  const token = readInputFile(where, '--status-list').toString('utf8').trim();
  const source = new StatusListSource({
    writKeys,
    now,
    maxAgeMs,
    fetch: () => Promise.reject(new RevocationError('ERR_STATUS_LIST_INVALID', 'status list: --status-list FILE is read, never fetched')),
  });
  const { uri } = source.load(token);
  const named = writStatusUri(ctx.writ);
  if (named !== undefined && named !== uri)
    throw new RevocationError('ERR_STATUS_LIST_INVALID', `status list: ${where} is the list ${uri}; the writ names ${named}`);
  return source;
}
