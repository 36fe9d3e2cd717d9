/**
 * Where the sidecar's identity comes from: one attestation with fresh evidence from the
 * producer the options select (agent/builtins.ts), with the agent key the sidecar holds (a
 * PKCS#8 key in this process, or a key the evidence type holds, e.g. TPM-resident). Every
 * result is checked before it is served: the SVID chain verifies to the bundle the issuer
 * returned, its leaf names the SPIFFE ID and carries our key, and a writ is bound to our key.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { EvidenceProducer, ProducerSession } from '../attestation/plugin.js';
import type { OptionValues } from '../config/options.js';
import { decodePem } from '../der/pem.js';
import { SidecarError } from '../errors.js';
import { jwkThumbprint, keySigner, type JwsSigner } from '../jose/jws.js';
import { BundleSet, parseSpiffeBundle, parseX509BundlePem } from '../spiffe/bundle.js';
import { verifyX509Svid } from '../svid/x509-svid.js';
import { parseWrit } from '../writ/writ.js';
import { GrpcCallError, attest, bundleTrustDomain, type AttestOutcome } from '../agent/attest-client.js';
import { renewWithSvid } from '../agent/renew.js';
import type { SidecarIdentity, SidecarStatus, TrustBundle } from './state.js';

/** What one successful attestation (or renewal) yields. */
export interface Obtained {
  readonly identity: SidecarIdentity;
  readonly jwtSvids: ReadonlyArray<{ readonly audience: string; readonly token: string }>;
  /** Releases what the identity's signer needs (a TPM session); called once it is replaced. */
  readonly release?: () => Promise<void>;
  /** The identity signs through the current identity's key session (a renewal with the same key): keep that one open. */
  readonly sameKeySession?: boolean;
}

export interface ObtainRequest {
  /** JWT-SVIDs to mint in the same handshake, one audience each. */
  readonly jwtAudiences: readonly string[];
  /** The identity being renewed; absent on the first attestation. */
  readonly current?: SidecarIdentity;
}

export interface IdentitySource {
  obtain(req: ObtainRequest): Promise<Obtained>;
}

export interface ProducerSourceOptions {
  /** host:port of the issuer. */
  readonly server: string;
  /** The issuer's trust bundle, PEM, as configured (later handshakes use the last one served). */
  readonly bundlePem: string;
  readonly producer: EvidenceProducer;
  readonly values: OptionValues;
  /**
   * The agent key in this process (`--key`). Without it, a key the evidence type holds (a TPM)
   * is used, else a P-256 key made here once, kept in memory only and used for every renewal
   * (a grant is bound to its delegate's exact key).
   */
  readonly key?: KeyObject;
  readonly grants?: readonly string[];
  readonly writAudiences?: readonly string[];
  readonly timeoutMs?: number;
  /** Step-up grants to present with the chain on each attestation and renewal (sidecar/step-ups.ts). */
  readonly stepUps?: () => readonly string[];
}

/** The trust bundle of the issuer's answer, in the shapes the Workload API delivers. */
export function trustBundle(bundlePem: string, bundleJwks: string): TrustBundle {
  const trustDomain = bundleTrustDomain(bundlePem);
  const x509Authorities = decodePem(bundlePem)
    .filter((b) => b.label === 'CERTIFICATE')
    .map((b) => b.der);
  // Parsed for its checks (x5c keys match their certificates, kid on every JWT key).
  parseSpiffeBundle(trustDomain, bundleJwks);
  return { trustDomain, x509Authorities, jwks: bundleJwks, pem: bundlePem };
}

/**
 * Turns the issuer's answer into an identity, refusing anything this sidecar should not serve:
 * a chain that does not verify to the returned bundle now, a leaf for another SPIFFE ID or
 * another key, a writ bound to another key.
 */
export function identityFrom(outcome: AttestOutcome, signer: JwsSigner, privateKeyPkcs8: Buffer | undefined, now: number): SidecarIdentity {
  const bundle = trustBundle(outcome.bundlePem, outcome.bundleJwks);
  const bundles = new BundleSet([parseX509BundlePem(bundle.trustDomain, bundle.pem)]);
  const { id, chain } = verifyX509Svid(outcome.svidChain, bundles, new Date(now));
  if (id.uri !== outcome.spiffeId) throw new Error(`the issuer's SVID names ${id.uri}, its answer ${outcome.spiffeId}`);
  const ours = signer.publicKey.export({ type: 'spki', format: 'der' });
  if (!chain[0]!.spki.equals(ours)) throw new Error("the issuer's SVID carries another key than the agent key");
  let writFields: Pick<SidecarIdentity, 'writ' | 'writExpiresAt' | 'task'> = {};
  if (outcome.writ) {
    const claims = parseWrit(outcome.writ).claims;
    if (claims.cnf.jkt !== jwkThumbprint(signer.publicKey)) throw new Error('the issued writ is bound to another key');
    writFields = { writ: outcome.writ, writExpiresAt: claims.exp * 1000, task: claims.task.id };
  }
  return {
    spiffeId: id.uri,
    svidChain: outcome.svidChain.map((c) => Buffer.from(c)),
    signer,
    ...(privateKeyPkcs8 ? { privateKeyPkcs8 } : {}),
    bundle,
    notAfter: chain[0]!.notAfter.getTime(),
    ...writFields,
    ...(outcome.entryId ? { entryId: outcome.entryId } : {}),
    ...(outcome.selectors?.length ? { selectors: [...outcome.selectors] } : {}),
    obtainedAt: now,
  };
}

/**
 * An identity source that attests with fresh evidence every time. A one-time evidence type (a
 * join token) succeeds once; renewing it needs the SVID itself (`x509_svid` evidence).
 *
 * A key the evidence holds (a TPM-resident key) signs through the session that attested it,
 * kept open while an identity it made is held (until `release`). Attesting afresh meanwhile
 * reuses that session (`restart`, same key) instead of opening a second one: a TPM reached
 * over one connection (swtpm, /dev/tpm0) serves one client at a time, and a second session's
 * objects would not fit beside the first's.
 */
export function producerSource(o: ProducerSourceOptions, now: () => number): IdentitySource {
  let own: { signer: JwsSigner; pkcs8: Buffer } | undefined;
  const ownKey = (k: KeyObject) => ({ signer: keySigner(k), pkcs8: k.export({ type: 'pkcs8', format: 'der' }) as Buffer });
  if (o.key) own = ownKey(o.key);
  /** The open session whose key signs for the identity held now, when it can attest again. */
  let held:
    | { readonly session: ProducerSession; readonly signer: JwsSigner; readonly restart: () => Promise<void>; readonly close: () => Promise<void> }
    | undefined;
  const handshake = async (req: ObtainRequest, signer: JwsSigner, session: ProducerSession) => {
    const outcome = await attest({
      server: o.server,
      bundlePem: req.current?.bundle.pem ?? o.bundlePem,
      evidenceType: o.producer.type,
      key: signer,
      respond: (c) => session.respond(c),
      jwtAudiences: req.jwtAudiences,
      grants: o.grants ?? [],
      writAudiences: o.writAudiences ?? [],
      ...((o.grants ?? []).length > 0 && o.stepUps ? { stepUps: o.stepUps() } : {}),
      ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
    });
    if ((o.grants ?? []).length > 0 && !outcome.writ) throw new Error('the issuer returned no writ for the grant chain');
    return outcome;
  };
  return {
    async obtain(req) {
      if (held) {
        // Fresh evidence from the session that holds the key (a renewal with the same key): the
        // identity it replaces signs through this session too, so the session stays open.
        const h = held;
        try {
          await h.restart();
        } catch (e) {
          // The session cannot serve another handshake (its device is gone): closed, and the next
          // attestation opens a new one. A failed handshake leaves it as it was (the issuer's
          // refusals and outages); the session says at its next restart if it failed itself.
          if (held === h) held = undefined;
          await h.close();
          throw e;
        }
        const outcome = await handshake(req, h.signer, h.session);
        return { identity: identityFrom(outcome, h.signer, undefined, now()), jwtSvids: outcome.jwtSvids, sameKeySession: true };
      }
      const session: ProducerSession = await o.producer.open(o.values);
      let keep = false;
      try {
        if (session.key && o.key)
          throw new SidecarError('ERR_SIDECAR_REQUEST_INVALID', `sidecar: --key cannot be used with a key the ${o.producer.type} evidence holds`);
        if (!session.key && !own) own = ownKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
        const signer = session.key?.signer ?? own!.signer;
        const outcome = await handshake(req, signer, session);
        const identity = identityFrom(outcome, signer, session.key ? undefined : own!.pkcs8, now());
        // A key the evidence holds (a TPM) is used through its session: keep it open while this identity is served.
        keep = session.key !== undefined;
        if (!keep) return { identity, jwtSvids: outcome.jwtSvids };
        // Closed once, whoever closes it first: the daemon's release, or a failed restart above.
        let closing: Promise<void> | undefined;
        const close = () => (closing ??= session.close().catch(() => {}));
        const mine = session.restart ? { session, signer, restart: session.restart.bind(session), close } : undefined;
        if (mine) held = mine;
        const release = async () => {
          if (held === mine) held = undefined;
          await close();
        };
        return { identity, jwtSvids: outcome.jwtSvids, release };
      } finally {
        if (!keep) await session.close();
      }
    },
  };
}

/**
 * The issuer's trust bundle as the sidecar knows it now: the PEM the issuer served with the
 * latest identity (renewals follow its CA rotations), else the startup `--bundle`. `observe`
 * every status (a subscriber); an expired or revoked status keeps the last served PEM. The
 * revocation watch's connector reads `current()` on every reconnect.
 */
export class LatestBundle {
  private served: string | undefined;
  constructor(private readonly startup: string) {}
  observe(s: SidecarStatus): void {
    if (s.state === 'serving') this.served = s.identity.bundle.pem;
  }
  current(): string {
    return this.served ?? this.startup;
  }
}

/**
 * Why the issuer's refusal ends this sidecar for good, or undefined when it is worth retrying.
 * - ERR_REVOKED: the identity's lineage, task, key, SPIFFE ID, entry or platform is revoked, on
 *   any attestation or renewal: retrying cannot succeed, and serving the SVID until notAfter would
 *   outlive the revocation.
 * - ERR_NO_MATCHING_ENTRY, on a renewal only (`renewing`): the entry the served identity came from
 *   was deleted or no longer matches, so the workload is no longer entitled to it. On the first
 *   attestation it stays retryable: the sidecar may start before its entry is registered.
 */
export function terminalRefusal(e: unknown, renewing: boolean): string | undefined {
  if (!(e instanceof GrpcCallError) || !e.writCode) return undefined;
  if (e.writCode === 'ERR_REVOKED') return `the issuer refused the ${renewing ? 'renewal' : 'attestation'}: ERR_REVOKED: ${e.details}`;
  if (e.writCode === 'ERR_NO_MATCHING_ENTRY' && renewing)
    return `the issuer refused the renewal: ERR_NO_MATCHING_ENTRY (the entry was deleted or no longer matches): ${e.details}`;
  return undefined;
}

/** Issuer refusals of a renewal by SVID after which fresh evidence is the way back. */
const FRESH_EVIDENCE_CODES = new Set(['ERR_FRESH_EVIDENCE_REQUIRED', 'ERR_SVID_SUPERSEDED', 'ERR_SVID_RENEWAL_INVALID']);

/**
 * The sidecar's identity source: the first attestation with fresh evidence, each renewal by the
 * current X.509-SVID (`x509_svid`, agent/renew.ts; what a one-time join token needs), and fresh
 * evidence again when the issuer says so: the evidence type must re-attest
 * (ERR_FRESH_EVIDENCE_REQUIRED, remembered), the SVID was superseded or is no longer trusted.
 */
export function renewingSource(o: ProducerSourceOptions, now: () => number, log: (line: string) => void = () => {}): IdentitySource {
  const fresh = producerSource(o, now);
  let freshRequired = false;
  return {
    async obtain(req) {
      const cur = req.current;
      if (!cur || freshRequired) return fresh.obtain(req);
      try {
        const outcome = await renewWithSvid({
          server: o.server,
          bundlePem: cur.bundle.pem,
          current: { svidChain: cur.svidChain, signer: cur.signer },
          grants: o.grants ?? [],
          jwtAudiences: req.jwtAudiences,
          writAudiences: o.writAudiences ?? [],
          ...((o.grants ?? []).length > 0 && o.stepUps ? { stepUps: o.stepUps() } : {}),
          ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
        });
        if ((o.grants ?? []).length > 0 && !outcome.writ) throw new Error('the issuer returned no writ for the grant chain');
        // Same key, same key session: the identity being replaced keeps it open.
        return { identity: identityFrom(outcome, cur.signer, cur.privateKeyPkcs8, now()), jwtSvids: outcome.jwtSvids, sameKeySession: true };
      } catch (e) {
        if (!(e instanceof GrpcCallError) || !e.writCode || !FRESH_EVIDENCE_CODES.has(e.writCode)) throw e;
        if (e.writCode === 'ERR_FRESH_EVIDENCE_REQUIRED') freshRequired = true;
        else log(`sidecar: renewal by SVID refused (${e.writCode}: ${e.details}); attesting with fresh evidence`);
        return fresh.obtain(req);
      }
    },
  };
}
