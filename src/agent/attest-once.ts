/**
 * One attestation as the agent side performs it (`writ agent attest`; the sidecar repeats it):
 * open the evidence producer, pick the agent key (held by the evidence type, a file, or a new
 * P-256 key), run the handshake, and check that a writ, when asked for, is bound to that key.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { EvidenceProducer } from '../attestation/plugin.js';
import { UsageError, type OptionValues } from '../config/options.js';
import { jwkThumbprint, keySigner, type JwsSigner } from '../jose/jws.js';
import { parseWrit } from '../writ/writ.js';
import { attest, type AttestOutcome } from './attest-client.js';
import { withFailover } from './failover.js';
import { readPrivateKey } from './keys.js';

export interface AttestAgentRequest {
  /** host:port of the issuer, or of its replicas in the order to try them (agent/failover.ts). */
  readonly server: string | readonly string[];
  /** Told when a replica could not serve the handshake and the next one is tried. */
  readonly onFailover?: (server: string, e: unknown) => void;
  readonly bundlePem: string;
  readonly producer: EvidenceProducer;
  /** The parsed command-line options (the producer reads its own). */
  readonly values: OptionValues;
  /** A PKCS#8 key file to use instead of a new key. */
  readonly keyFile?: string;
  readonly grants?: readonly string[];
  /** Step-up grants (approvals) the writ is to carry, with `grants`. */
  readonly stepUps?: readonly string[];
  readonly jwtAudiences?: readonly string[];
  readonly writAudiences?: readonly string[];
}

export interface AttestedAgent {
  readonly outcome: AttestOutcome;
  /** PKCS#8 PEM of a key made for this handshake (to be written 0600); absent when the key came from elsewhere. */
  readonly newKeyPem?: string;
  /** Files the evidence type asks to keep beside the credentials (never a private key). */
  readonly keyFiles: ReadonlyArray<{ readonly name: string; readonly text: string }>;
}

export async function attestAgent(r: AttestAgentRequest): Promise<AttestedAgent> {
  const session = await r.producer.open(r.values);
  try {
    if (session.key && r.keyFile) throw new UsageError(`--key cannot be used with a key the ${r.producer.type} evidence holds`);
    let signer: JwsSigner;
    let newKeyPem: string | undefined;
    if (session.key) signer = session.key.signer;
    else if (r.keyFile) signer = keySigner(readPrivateKey(r.keyFile));
    else {
      const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
      signer = keySigner(k);
      newKeyPem = k.export({ type: 'pkcs8', format: 'pem' }) as string;
    }
    const servers = typeof r.server === 'string' ? [r.server] : r.server;
    const outcome = await withFailover(
      servers,
      (server) =>
        attest({
          server,
          bundlePem: r.bundlePem,
          evidenceType: r.producer.type,
          key: signer,
          respond: (c) => session.respond(c),
          jwtAudiences: r.jwtAudiences ?? [],
          grants: r.grants ?? [],
          writAudiences: r.writAudiences ?? [],
          ...((r.stepUps ?? []).length > 0 ? { stepUps: r.stepUps } : {}),
        }),
      r.onFailover,
    );
    if ((r.grants ?? []).length > 0) {
      if (!outcome.writ) throw new Error('the issuer returned no writ for the grant chain');
      // The writ must be bound to the key we hold; refuse to keep one that is not.
      const claims = parseWrit(outcome.writ).claims;
      if (claims.cnf.jkt !== jwkThumbprint(signer.publicKey)) throw new Error('the issued writ is bound to another key');
      // Every approval presented must be carried: a writ without one is not what was asked for.
      const carried = claims.stepup ?? [];
      if ((r.stepUps ?? []).some((g) => !carried.includes(g))) throw new Error('the issued writ does not carry every step-up grant presented');
    }
    return { outcome, ...(newKeyPem ? { newKeyPem } : {}), keyFiles: session.key?.files ?? [] };
  } finally {
    await session.close();
  }
}
