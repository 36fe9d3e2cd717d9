/**
 * The spawn handshake, independent of gRPC: hello → challenge → evidence (→ challenge …) →
 * SVIDs. Flat early-return checks; issuance commits in one transaction (evidence side
 * effects such as consuming a join token, and the issuance records) or not at all.
 */
import { createHash, randomBytes } from 'node:crypto';
import { AttestationError, EntryError, LimitError } from '../errors.js';
import type { Clock } from '../clock.js';
import { parseSpiffeId } from '../spiffe/id.js';
import type { Bundle } from '../spiffe/bundle.js';
import { parseCsr, parsePublicKey, type AgentPublicKey } from '../svid/public-key.js';
import { mintJwtSvid } from '../svid/jwt-svid.js';
import type { CaManager } from '../ca/manager.js';
import type { VerifierRegistry } from '../attestation/registry.js';
import type { AttestationSession, EvidenceVerifier } from '../attestation/verifier.js';
import { formatSelector, matchEntry } from '../registration/entry.js';
import type { Store } from '../store/store.js';

/** Most JWT-SVIDs one handshake may ask for. */
export const MAX_JWT_AUDIENCES = 8;
/** Longest audience string. */
export const MAX_AUDIENCE_BYTES = 256;
/** X.509-SVIDs are backdated this much for clock skew. */
export const SVID_BACKDATE_MS = 10_000;
/** Nonce length, bytes. */
export const NONCE_BYTES = 32;

export interface IssuerSettings {
  readonly x509SvidTtlMs: number;
  readonly jwtSvidTtlMs: number;
}

export interface HelloInput {
  readonly evidenceType: string;
  readonly publicKey: Uint8Array;
  readonly csr: Uint8Array;
  readonly grants: readonly string[];
  readonly jwtAudiences: readonly string[];
}

export interface IssuedResult {
  readonly spiffeId: string;
  readonly entryId: string;
  readonly svidChain: readonly Buffer[];
  readonly bundle: Bundle;
  readonly jwtSvids: ReadonlyArray<{ audience: string; token: string }>;
  readonly selectors: ReadonlyArray<{ type: string; value: string }>;
}

export type HandshakeStep = { kind: 'challenge'; nonce: Buffer; payload: Buffer } | { kind: 'result'; result: IssuedResult };

export interface IssuanceObserver {
  issued(kind: 'x509' | 'jwt', evidenceType: string): void;
}

export interface IssuerDeps {
  readonly ca: CaManager;
  readonly store: Store;
  readonly verifiers: VerifierRegistry;
  readonly clock: Clock;
  readonly settings: IssuerSettings;
  readonly observer?: IssuanceObserver;
}

export class Issuer {
  constructor(private readonly deps: IssuerDeps) {}

  /** Validates a hello and opens a handshake; returns it with its first challenge. */
  async begin(hello: HelloInput): Promise<{ handshake: Handshake; challenge: HandshakeStep }> {
    const verifier = this.deps.verifiers.get(hello.evidenceType);
    const agentKey = agentKeyOf(hello);
    if (hello.grants.length > 0) {
      throw new AttestationError('ERR_PROTOCOL', 'attestation: grant chains are not accepted by this issuer version; send none');
    }
    const audiences = checkAudiences(hello.jwtAudiences);
    const nonce = randomBytes(NONCE_BYTES);
    const session = await verifier.begin({ nonce, agentKey, now: this.deps.clock.now() });
    const handshake = new Handshake(this.deps, verifier, session, agentKey, audiences, nonce);
    return { handshake, challenge: { kind: 'challenge', nonce, payload: session.challenge } };
  }
}

function agentKeyOf(hello: HelloInput): AgentPublicKey {
  const hasKey = hello.publicKey.length > 0;
  const hasCsr = hello.csr.length > 0;
  if (hasKey === hasCsr) throw new AttestationError('ERR_PROTOCOL', 'attestation: hello must carry exactly one of public_key and csr');
  return hasCsr ? parseCsr(hello.csr) : parsePublicKey(hello.publicKey);
}

function checkAudiences(auds: readonly string[]): string[] {
  if (auds.length > MAX_JWT_AUDIENCES) throw new LimitError(`attestation: at most ${MAX_JWT_AUDIENCES} JWT-SVID audiences per handshake`);
  for (const a of auds) {
    if (a === '' || Buffer.byteLength(a) > MAX_AUDIENCE_BYTES || /[\x00-\x20\x7f]/.test(a)) {
      throw new AttestationError('ERR_PROTOCOL', `attestation: JWT-SVID audience must be 1..${MAX_AUDIENCE_BYTES} bytes without spaces or control characters`);
    }
  }
  return [...new Set(auds)];
}

export class Handshake {
  private rounds = 0;
  private done = false;

  constructor(
    private readonly deps: IssuerDeps,
    private readonly verifier: EvidenceVerifier,
    private readonly session: AttestationSession,
    private readonly agentKey: AgentPublicKey,
    private readonly audiences: readonly string[],
    private readonly nonce: Buffer,
  ) {}

  get evidenceType(): string {
    return this.verifier.type;
  }

  /** Feeds one evidence message; returns another challenge or the issued result. */
  async respond(evidence: Uint8Array): Promise<HandshakeStep> {
    if (this.done) throw new AttestationError('ERR_PROTOCOL', 'attestation: handshake already finished');
    if (++this.rounds > this.verifier.maxRounds) throw new AttestationError('ERR_PROTOCOL', `attestation: more than ${this.verifier.maxRounds} evidence rounds`);
    if (evidence.length > this.verifier.maxEvidenceBytes) {
      throw new LimitError(`attestation(${this.verifier.type}): evidence of ${evidence.length} bytes exceeds ${this.verifier.maxEvidenceBytes}`);
    }
    const step = await this.session.respond(Buffer.from(evidence));
    if (step.kind === 'challenge') return { kind: 'challenge', nonce: this.nonce, payload: step.payload };
    this.done = true;
    const { ca, store, clock, settings, observer } = this.deps;
    const result = step.result;

    const candidates = await store.listEntriesBySelectors(result.selectors.map(formatSelector));
    const entry = matchEntry(candidates, result.selectors);
    if (entry === undefined) throw new AttestationError('ERR_NO_MATCHING_ENTRY', 'attestation: no registration entry matches the attested selectors');
    if (entry === 'ambiguous') throw new AttestationError('ERR_NO_MATCHING_ENTRY', 'attestation: the attested selectors match entries for different SPIFFE IDs equally');
    const spiffeId = parseSpiffeId(entry.spiffeId);
    if (spiffeId.trustDomain !== ca.trustDomain) throw new EntryError('ERR_ENTRY_INVALID', 'entry: SPIFFE ID outside the trust domain');

    const now = clock.now();
    const x509Ttl = entry.x509SvidTtl ? entry.x509SvidTtl * 1000 : settings.x509SvidTtlMs;
    const svid = ca.x509Minter().mint({
      spiffeId,
      spki: this.agentKey.spki,
      notBefore: new Date(now.getTime() - SVID_BACKDATE_MS),
      notAfter: new Date(now.getTime() + x509Ttl),
      ...(result.keyResidency ? { keyResidency: result.keyResidency } : {}),
    });
    const jwtTtl = entry.jwtSvidTtl ? entry.jwtSvidTtl * 1000 : settings.jwtSvidTtlMs;
    const signer = ca.jwtSigner();
    const jwtExp = new Date(Math.min(now.getTime() + jwtTtl, signer.notAfter.getTime()));
    const jwts = this.audiences.map((audience) => ({
      audience,
      svid: mintJwtSvid(signer, { spiffeId, audience: [audience], issuedAt: now, expiresAt: jwtExp }),
    }));

    await store.transaction(async (tx) => {
      await result.commit?.(tx, now);
      const base = { spiffeId: spiffeId.uri, entryId: entry.id, evidenceType: this.verifier.type, issuedAt: now.getTime() };
      await tx.recordIssued({ ...base, id: svid.serial.toString('hex'), kind: 'x509', expiresAt: svid.notAfter.getTime() });
      for (const j of jwts) {
        const id = createHash('sha256').update(j.svid.token).digest('hex');
        await tx.recordIssued({ ...base, id, kind: 'jwt', expiresAt: j.svid.expiresAt.getTime() });
      }
    });
    observer?.issued('x509', this.verifier.type);
    for (let i = 0; i < jwts.length; i++) observer?.issued('jwt', this.verifier.type);
    return {
      kind: 'result',
      result: {
        spiffeId: spiffeId.uri,
        entryId: entry.id,
        svidChain: svid.chain,
        bundle: ca.bundle(),
        jwtSvids: jwts.map((j) => ({ audience: j.audience, token: j.svid.token })),
        selectors: result.selectors,
      },
    };
  }
}
