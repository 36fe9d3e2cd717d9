/** Evidence verifiers by type, with errors prefixed by plug-in (`attestation(tpm): ...`). */
import { AttestationError, WritError } from '../errors.js';
import type { AttestationContext, AttestationSession, EvidenceVerifier } from './verifier.js';

export class VerifierRegistry {
  private readonly byType = new Map<string, EvidenceVerifier>();

  constructor(verifiers: readonly EvidenceVerifier[]) {
    for (const v of verifiers) {
      if (this.byType.has(v.type)) throw new Error(`attestation: evidence type ${v.type} registered twice`);
      this.byType.set(v.type, v);
    }
  }

  types(): string[] {
    return [...this.byType.keys()].sort();
  }

  get(type: string): EvidenceVerifier {
    const v = this.byType.get(type);
    if (!v) {
      const shown = JSON.stringify(type.slice(0, 64));
      throw new AttestationError('ERR_EVIDENCE_TYPE_UNKNOWN', `attestation: unknown evidence type ${shown} (supported: ${this.types().join(', ')})`);
    }
    return wrap(v);
  }
}

function prefixed(type: string, e: unknown): unknown {
  if (e instanceof WritError && !e.message.startsWith('attestation(')) {
    e.message = `attestation(${type}): ${e.message}`;
    return e;
  }
  if (e instanceof WritError) return e;
  return new AttestationError('ERR_EVIDENCE_INVALID', `attestation(${type}): ${(e as Error)?.message ?? 'verification failed'}`, { cause: e });
}

function wrap(v: EvidenceVerifier): EvidenceVerifier {
  return {
    type: v.type,
    maxEvidenceBytes: v.maxEvidenceBytes,
    maxRounds: v.maxRounds,
    async begin(ctx: AttestationContext): Promise<AttestationSession> {
      let s: AttestationSession;
      try {
        s = await v.begin(ctx);
      } catch (e) {
        throw prefixed(v.type, e);
      }
      return {
        challenge: s.challenge,
        async respond(evidence) {
          try {
            const step = await s.respond(evidence);
            if (step.kind === 'challenge' || !step.result.commit) return step;
            const commit = step.result.commit;
            return {
              kind: 'attested',
              result: {
                ...step.result,
                commit: async (tx, now) => {
                  try {
                    await commit(tx, now);
                  } catch (e) {
                    throw prefixed(v.type, e);
                  }
                },
              },
            };
          } catch (e) {
            throw prefixed(v.type, e);
          }
        },
      };
    },
  };
}
