/**
 * A scripted evidence verifier for unit tests of the handshake (src/issuance/issuer.ts): it
 * implements the real EvidenceVerifier contract (attestation/verifier.ts) and does whatever the
 * evidence bytes say, so a test controls each outcome the issuer must handle without a TPM or a
 * token. Evidence is JSON, built with `fakeEvidence(...)`:
 * - `{ "sel": ["type:value", ...], "platform"?: "type:value", "resident"?: "label" }` → attested
 *   with those selectors (and, with `resident`, the agent key proven resident, as a TPM's is);
 * - `{ "challenge": "text" }` → another round, with that payload;
 * - `{ "refuse": "why" }` → refused (ERR_EVIDENCE_INVALID), as a forged quote would be.
 * Every session records what the issuer gave it (nonce, agent key, time) and every evidence it
 * was shown, so tests can assert what the issuer bound the evidence to and that a dead
 * handshake never reaches the verifier again.
 */
import { createHash } from 'node:crypto';
import { AttestationError } from '../../src/errors.js';
import type { AttestationContext, AttestationResult, AttestationSession, EvidenceVerifier, VerifyStep } from '../../src/attestation/verifier.js';
import type { StoreTx } from '../../src/store/store.js';

export const FAKE_EVIDENCE_TYPE = 'fake';

export type FakeEvidence = { sel: readonly string[]; platform?: string; resident?: string } | { challenge: string } | { refuse: string };

export function fakeEvidence(e: FakeEvidence): Buffer {
  return Buffer.from(JSON.stringify(e));
}

export interface FakeSession {
  readonly ctx: AttestationContext;
  readonly evidence: Buffer[];
}

const selector = (s: string) => {
  const i = s.indexOf(':');
  return { type: s.slice(0, i), value: s.slice(i + 1) };
};

export class FakeEvidenceVerifier implements EvidenceVerifier {
  readonly type = FAKE_EVIDENCE_TYPE;
  readonly maxEvidenceBytes = 1024;
  readonly maxRounds = 3;
  readonly sessions: FakeSession[] = [];
  /** Runs inside the issuance transaction when set (what a join token's consumption does). */
  commit: ((tx: StoreTx, now: Date) => Promise<void>) | undefined;
  /** Runs after the evidence is accepted and before the issuer sees the result (a race's other side). */
  beforeResult: (() => Promise<void>) | undefined;

  async begin(ctx: AttestationContext): Promise<AttestationSession> {
    const session: FakeSession = { ctx, evidence: [] };
    this.sessions.push(session);
    return {
      challenge: Buffer.from('fake-challenge'),
      respond: async (evidence: Buffer): Promise<VerifyStep> => {
        session.evidence.push(evidence);
        const e = JSON.parse(evidence.toString('utf8')) as Partial<{ sel: string[]; platform: string; resident: string; challenge: string; refuse: string }>;
        if (e.refuse !== undefined) throw new AttestationError('ERR_EVIDENCE_INVALID', `evidence refused: ${e.refuse}`);
        if (e.challenge !== undefined) return { kind: 'challenge', payload: Buffer.from(e.challenge) };
        const result: AttestationResult = {
          selectors: (e.sel ?? []).map(selector),
          evidenceDigest: createHash('sha256').update(evidence).digest(),
          publicEvidence: evidence,
          ...(e.platform ? { platform: e.platform } : {}),
          ...(e.resident ? { keyResidency: e.resident } : {}),
          ...(this.commit ? { commit: this.commit } : {}),
        };
        await this.beforeResult?.();
        return { kind: 'attested', result };
      },
    };
  }
}
