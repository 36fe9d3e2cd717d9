/**
 * Measured agent code: the sidecar hashes the agent it launches, extends the digest into an
 * application PCR, and keeps a crypto-agile log of what that PCR holds, so a verifier can
 * replay it against the quote. A log that no longer replays (a reboot reset the PCR, or
 * someone else extended it) is started afresh after resetting the PCR.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../config/files.js';
import type { Tpm } from '../../tpm/client.js';
import { TPM_ALG } from '../../tpm/constants.js';
import { AGENT_CODE_EVENT, EV_IPL, encodeEventLog, parseEventLog, type LogEvent } from '../../tpm/eventlog.js';

export interface MeasureOptions {
  /** The agent executable or image to measure. */
  readonly path: string;
  /** Where the sidecar keeps its log of the application PCR. */
  readonly logFile: string;
  /** The application PCR (default 23). */
  readonly pcr?: number;
}

async function sha256File(path: string): Promise<Buffer> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest();
}

function replayValue(events: readonly LogEvent[], pcr: number): Buffer {
  let v = Buffer.alloc(32);
  for (const e of events) if (e.pcr === pcr) v = createHash('sha256').update(v).update(e.digests.get(TPM_ALG.SHA256)!).digest();
  return v;
}

/** Measures the agent into the PCR and returns the log to send as evidence, plus the digest. */
export async function measureAgent(tpm: Tpm, o: MeasureOptions): Promise<{ log: Buffer; digest: Buffer }> {
  const pcr = o.pcr ?? 23;
  const digest = await sha256File(o.path);
  const current = (await tpm.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [pcr] }])).get(TPM_ALG.SHA256)!.get(pcr)!;
  let events: LogEvent[] = [];
  if (existsSync(o.logFile)) {
    try {
      events = parseEventLog(readFileSync(o.logFile)).events;
    } catch {
      events = [];
    }
  }
  if (!replayValue(events, pcr).equals(current)) {
    await tpm.pcrReset(pcr);
    events = [];
  }
  await tpm.pcrExtend(pcr, TPM_ALG.SHA256, digest);
  events.push({ pcr, type: EV_IPL, digests: new Map([[TPM_ALG.SHA256, digest]]), data: Buffer.from(`${AGENT_CODE_EVENT}${o.path}`, 'utf8') });
  const log = encodeEventLog(new Map([[TPM_ALG.SHA256, 32]]), events);
  writeFileAtomic(o.logFile, log, 0o600);
  return { log, digest };
}
