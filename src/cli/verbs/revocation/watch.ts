/**
 * `writ revocation watch`: follows the issuer's revocation stream and prints one line per event,
 * resuming from the last sequence after every disconnect (and from the next `--server` when one
 * fails), until SIGINT/SIGTERM, or with `--once` until it has caught up.
 */
import { checkServerAddress } from '../../../agent/attest-client.js';
import { grpcWatchConnector } from '../../../agent/revocation-client.js';
import { readInputFile } from '../../../config/files.js';
import { listOption, stringOption, UsageError } from '../../../config/options.js';
import { WatchRevocationSource, type WatchMessage } from '../../../revocation/watch-source.js';
import { required, type Verb } from '../../verb.js';

/** How long `--once` waits to catch up before it gives up. */
const ONCE_TIMEOUT_MS = 30_000;

/** Control characters shown as `?`: an actor or principal is printed as text, on one line. */
const oneLine = (s: string) => s.replace(/[\x00-\x1f\x7f]/g, '?');

/** One line of text per message; heartbeats print nothing (they are in --json). */
function text(m: WatchMessage): string | undefined {
  switch (m.type) {
    case 'revocation': {
      const r = m.revocation;
      const at = r.at > 0 && r.at <= 8.64e15 ? new Date(r.at).toISOString() : '?';
      const derived = r.derivedFrom !== undefined ? ` (derived from ${r.derivedFrom})` : '';
      return `${r.sequence} ${r.target.kind} ${r.target.id} revoked at ${at} by ${oneLine(r.actor)}${derived}: ${JSON.stringify(r.reason)}`;
    }
    case 'snapshot-begin':
      return `snapshot: events before ${m.oldestRetained} are no longer kept one by one; every revocation in force follows`;
    case 'snapshot-end':
      return `snapshot end at ${m.sequence}`;
    case 'heartbeat':
      return undefined;
  }
}

/** One JSON object per message, heartbeats included. */
function json(m: WatchMessage): string {
  if (m.type !== 'revocation') return JSON.stringify(m);
  const r = m.revocation;
  return JSON.stringify({
    type: 'revocation',
    sequence: r.sequence,
    kind: r.target.kind,
    target: r.target.id,
    reason: r.reason,
    at: r.at,
    actor: r.actor,
    principal: r.principal,
    ...(r.derivedFrom !== undefined ? { derivedFrom: r.derivedFrom } : {}),
    ...(r.snapshot ? { snapshot: true } : {}),
  });
}

export const revocationWatchVerb: Verb = {
  name: ['revocation', 'watch'],
  summary: "follow the issuer's revocation stream (RevocationService.Watch): one line per event, resuming after disconnects",
  required: ['server', 'bundle'],
  options: {
    server: { type: 'string', multiple: true, value: 'HOST:PORT', help: "the issuer's public port; several: the next one after each failure" },
    bundle: { type: 'string', value: 'FILE', help: "the issuer's trust bundle, PEM (checks its TLS certificate)" },
    since: { type: 'string', value: 'SEQ', help: 'print only events after this sequence (default 0: everything the issuer holds)' },
    json: { type: 'boolean', help: 'one JSON object per line, heartbeats and snapshot markers included' },
    once: { type: 'boolean', help: 'exit 0 once caught up (at the first heartbeat) instead of following' },
  },
  note: 'Text lines: SEQ KIND TARGET revoked at TIME by ACTOR[ (derived from SEQ)]: "REASON". Connection changes go to stderr.',
  async run({ values, io }) {
    const sinceText = stringOption(values, 'since') ?? '0';
    if (!/^\d{1,15}$/.test(sinceText)) throw new UsageError('--since must be a sequence number (a non-negative integer)');
    const addresses = listOption(values, 'server').map(checkServerAddress);
    if (addresses.length === 0) throw new UsageError('--server is required');
    const bundlePem = readInputFile(required(values, 'bundle'), '--bundle').toString('utf8');
    const asJson = values.json === true;
    const source = new WatchRevocationSource({ addresses, connector: grpcWatchConnector(bundlePem), since: Number(sinceText) });
    return await new Promise<number>((resolve) => {
      const finish = (code: number) => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        source.close();
        resolve(code);
      };
      const stop = () => finish(0);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      source.onMessage((m) => {
        const line = asJson ? json(m) : text(m);
        if (line !== undefined) io.out(`${line}\n`);
        if (m.type === 'heartbeat' && values.once === true) finish(0);
      });
      source.onConnection((e) => {
        if (e.type === 'synced') io.err(`watching ${e.address}: in sync at sequence ${e.sequence}\n`);
        if (e.type !== 'disconnected') return;
        const unusable = source.status().unusable;
        if (unusable) {
          io.err(`writ: ${unusable}\n`);
          finish(1);
          return;
        }
        io.err(`lost ${e.address}: ${e.reason}; resuming from ${source.sequence} in ${e.retryInMs} ms\n`);
      });
      source.start();
      if (values.once === true) {
        source.synced(ONCE_TIMEOUT_MS).catch((e: Error) => {
          io.err(`writ: ${e.message}\n`);
          finish(1);
        });
      }
    });
  },
};
