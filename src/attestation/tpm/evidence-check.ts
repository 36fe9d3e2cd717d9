/**
 * The checks of TPM evidence that need no issuer state: EK (through the caller's verifier),
 * AK attributes, the quote over `nonce` and the PCR selection, event-log replay, and the
 * certification of a TPM-resident agent key. The issuer's verifier adds activation and
 * counters on top; a relying party's re-verification uses this alone.
 */
import type { KeyObject } from 'node:crypto';
import { AttestationError } from '../../errors.js';
import type { Selector } from '../../registration/entry.js';
import { HASHES, TPM_ALG } from '../../tpm/constants.js';
import { parseEventLog } from '../../tpm/eventlog.js';
import type { TpmEvidence } from '../../tpm/evidence.js';
import { parsePublic, publicKeyOf, type PcrSelection, type TpmPublic } from '../../tpm/structures.js';
import type { EkIdentity } from './ek.js';
import { verifyCertify, verifyQuote, type VerifiedQuote } from './quote.js';
import { agentCodeDigest, replayLog } from './replay.js';

/** The application PCRs agent code may be measured into (the TCG reserves 16..23 for applications). */
export const AGENT_PCR_RANGE = [16, 23] as const;
/** The application PCR the sidecar measures agent code into unless configured otherwise. */
export const DEFAULT_AGENT_PCR = 23;

const fail = (msg: string) => new AttestationError('ERR_EVIDENCE_INVALID', `attestation(tpm): ${msg}`);

export interface TpmEvidenceCheck {
  /** What the quote's qualifying data must equal: the handshake nonce or binding digest. */
  readonly nonce: Buffer;
  readonly selection: readonly PcrSelection[];
  /**
   * The application PCR the agent is measured into. Undefined (a relying party not told the
   * issuer's setting): the one PCR the agent log's events name, which must be in 16..23.
   */
  readonly agentPcr?: number;
  readonly verifyEk: (ek: TpmPublic) => EkIdentity;
  /** True when a certified TPM-resident key is the agent's key. */
  readonly residentKeyIs: (key: KeyObject) => boolean;
}

export interface CheckedTpmEvidence {
  readonly identity: EkIdentity;
  readonly ek: TpmPublic;
  readonly ak: TpmPublic;
  readonly attest: VerifiedQuote['attest'];
  readonly resident: boolean;
  readonly selectors: Selector[];
}

function selectorsOf(
  ek: EkIdentity,
  selection: readonly PcrSelection[],
  pcrs: ReadonlyMap<number, ReadonlyMap<number, Buffer>>,
  agentCode?: Buffer,
): Selector[] {
  const out: Selector[] = [{ type: 'tpm', value: `ek_hash:${ek.ekHash}` }];
  if (agentCode) out.push({ type: 'tpm', value: `agent_code:sha256:${agentCode.toString('hex')}` });
  if (ek.manufacturer) out.push({ type: 'tpm', value: `manufacturer:${ek.manufacturer}` });
  if (ek.model) out.push({ type: 'tpm', value: `model:${ek.model}` });
  if (ek.version) out.push({ type: 'tpm', value: `version:${ek.version}` });
  for (const bank of selection) {
    const name = HASHES.get(bank.hash)!.name;
    for (const p of bank.pcrs) out.push({ type: 'tpm', value: `pcr:${name}:${p}:${pcrs.get(bank.hash)!.get(p)!.toString('hex')}` });
  }
  return out;
}

/**
 * Replays the firmware log and the sidecar's agent log against the quote; returns the agent
 * code digest when the agent PCR is quoted and its log names one.
 */
function measuredAgentCode(e: TpmEvidence, selection: readonly PcrSelection[], configured: number | undefined): Buffer | undefined {
  if (e.eventLog) replayLog(e.eventLog, selection, e.pcrs);
  if (!e.appLog) return undefined;
  const { events } = parseEventLog(e.appLog);
  const agentPcr = configured ?? events[0]?.pcr ?? AGENT_PCR_RANGE[1];
  if (agentPcr < AGENT_PCR_RANGE[0] || agentPcr > AGENT_PCR_RANGE[1])
    throw fail(`the agent measurement log names PCR ${agentPcr}, outside ${AGENT_PCR_RANGE.join('..')}`);
  if (events.some((ev) => ev.pcr !== agentPcr)) throw fail(`the agent measurement log may only hold events for PCR ${agentPcr}`);
  const trusted = replayLog(e.appLog, selection, e.pcrs);
  return agentCodeDigest(trusted, agentPcr, TPM_ALG.SHA256);
}

export function checkTpmEvidence(e: TpmEvidence, c: TpmEvidenceCheck): CheckedTpmEvidence {
  const ek = parsePublic(e.ekPublic);
  const ak = parsePublic(e.akPublic);
  const identity = c.verifyEk(ek);
  const { attest } = verifyQuote(ak, e.attest, e.signature, c.nonce, c.selection, e.pcrs);
  const agentCode = measuredAgentCode(e, c.selection, c.agentPcr);
  let resident = false;
  if (e.certify) {
    const keyPub = parsePublic(e.certify.public);
    verifyCertify(ak, keyPub, e.certify.attest, e.certify.signature, c.nonce);
    if (!c.residentKeyIs(publicKeyOf(keyPub))) throw fail('the certified TPM key is not the key in the hello');
    resident = true;
  }
  const selectors = [...selectorsOf(identity, c.selection, e.pcrs, agentCode), ...(resident ? [{ type: 'tpm', value: 'key:resident' }] : [])];
  return { identity, ek, ak, attest, resident, selectors };
}
