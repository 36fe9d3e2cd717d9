/**
 * Replaying an event log against quoted PCR values: only events in PCRs the quote covers are
 * trusted, and for each such PCR the replay must reproduce the quoted value exactly.
 */
import { createHash } from 'node:crypto';
import { AttestationError } from '../../errors.js';
import { HASHES } from '../../tpm/constants.js';
import { AGENT_CODE_EVENT, EV_NO_ACTION, parseEventLog, type LogEvent } from '../../tpm/eventlog.js';
import type { PcrSelection } from '../../tpm/structures.js';
import type { PcrValues } from './quote.js';

const fail = (msg: string) => new AttestationError('ERR_EVIDENCE_INVALID', `attestation(tpm): ${msg}`);

const STARTUP_LOCALITY = Buffer.from('StartupLocality\0', 'latin1');

/**
 * Replays `log` for every quoted PCR that has events; returns the trusted events (those in
 * quoted PCRs). Throws when a replayed value differs from the quoted one.
 */
export function replayLog(log: Buffer, selection: readonly PcrSelection[], values: PcrValues): LogEvent[] {
  const { events } = parseEventLog(log);
  const trusted: LogEvent[] = [];
  for (const bank of selection) {
    const h = HASHES.get(bank.hash)!;
    for (const pcr of bank.pcrs) {
      const mine = events.filter((e) => e.pcr === pcr);
      if (mine.length === 0) continue;
      let value = Buffer.alloc(h.size);
      for (const e of mine) {
        if (e.type === EV_NO_ACTION) {
          // H-CRTM: the StartupLocality event sets PCR 0's initial value to the locality.
          if (pcr === 0 && e.data.length === 17 && e.data.subarray(0, 16).equals(STARTUP_LOCALITY)) {
            value = Buffer.alloc(h.size);
            value[h.size - 1] = e.data[16]!;
          }
          continue;
        }
        const d = e.digests.get(bank.hash);
        if (!d) throw fail(`event log has no ${h.name} digest for an event in PCR ${pcr}`);
        value = createHash(h.name).update(value).update(d).digest();
      }
      const quoted = values.get(bank.hash)?.get(pcr);
      if (!quoted?.equals(value)) throw fail(`event log replay does not match quoted PCR ${h.name}:${pcr}`);
      trusted.push(...mine.filter((e) => e.type !== EV_NO_ACTION && e.digests.has(bank.hash)));
    }
  }
  return trusted;
}

/** The agent code digest: the last writ agent-code event among trusted events in `pcr`. */
export function agentCodeDigest(trusted: readonly LogEvent[], pcr: number, hash: number): Buffer | undefined {
  const prefix = Buffer.from(AGENT_CODE_EVENT, 'latin1');
  const ev = trusted.filter((e) => e.pcr === pcr && e.data.subarray(0, prefix.length).equals(prefix));
  return ev.length ? ev[ev.length - 1]!.digests.get(hash) : undefined;
}
