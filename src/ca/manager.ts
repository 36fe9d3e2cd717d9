/**
 * The issuer's CA: a root and an intermediate signing CA (or an upstream CA loaded from
 * files), JWT signing keys and writ keys, each rotating SPIRE-style (rotation.ts). Keys are
 * held by a `KeyCustody` (custody.ts) and used only through signers; CA certificates are built
 * in certificates.ts. Keys and the bundle are reloaded whenever the store's bundle sequence
 * differs from the one loaded (another replica rotated).
 */
import { X509Certificate, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { CaError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { Bundle } from '../spiffe/bundle.js';
import { algForKey, keyFits, JWS_ALGORITHMS, type JwsAlg, type JwsSigner } from '../jose/jws.js';
import { parseCertificate, type ParsedCertificate } from '../x509/certificate.js';
import { X509SvidMinter } from '../svid/x509-mint.js';
import type { JwtAlg, JwtSvidSigner } from '../svid/jwt-svid.js';
import type { CaKeyKind, CaKeyRecord, Store, StoreTx } from '../store/store.js';
import { buildCaCertificate } from './certificates.js';
import { fileKeySigner, type KeyCustody, type KeySpec } from './custody.js';
import { planRotation } from './rotation.js';

export type CaKeyType = 'ec-p256' | 'ec-p384';

export interface UpstreamCa {
  /** The upstream signing certificate first, then any intermediates above it (DER). */
  readonly chain: readonly Buffer[];
  readonly privateKey: KeyObject;
  /** Trust anchors of the upstream PKI (DER); published as the bundle's X.509 authorities. */
  readonly roots: readonly Buffer[];
}

export interface CaSettings {
  readonly trustDomain: string;
  /** Lifetime of the signing (intermediate) CA and of JWT keys, ms. */
  readonly caTtlMs: number;
  /** Lifetime of the self-made root, ms. */
  readonly rootTtlMs: number;
  readonly keyType: CaKeyType;
  readonly jwtAlg: JwtAlg;
  /** Bundle refresh hint, seconds. */
  readonly refreshHintSeconds: number;
  readonly upstream?: UpstreamCa;
}

/** One key state change of a rotation: a key made (prepared or active at once), activated, retired or deleted. */
export interface KeyChange {
  readonly kind: CaKeyKind;
  readonly op: 'create prepared' | 'create active' | 'activate' | 'retire' | 'delete';
  readonly id: string;
  /** Unix ms. */
  readonly at: number;
}

/** Runs inside the transaction that makes the change: if it throws, the change is not made. */
export type KeyChangeListener = (tx: StoreTx, change: KeyChange) => Promise<void>;

/** Backdating of CA notBefore, for clock skew between issuer and relying parties. */
export const CA_BACKDATE_MS = 60_000;

interface LoadedKey {
  readonly record: CaKeyRecord;
  readonly signer: JwsSigner;
  readonly cert?: ParsedCertificate;
}

/** The key a kind needs, by configuration. Writ keys are always ES256, the algorithm every JOSE library verifies. */
function specFor(kind: CaKeyKind, s: CaSettings): KeySpec {
  if (kind === 'writ') return { kty: 'ec', curve: 'P-256' };
  if (kind === 'jwt') {
    if (s.jwtAlg.startsWith('ES')) return { kty: 'ec', curve: ({ ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' } as const)[s.jwtAlg as 'ES256'] };
    return { kty: 'rsa', bits: 3072 };
  }
  return { kty: 'ec', curve: s.keyType === 'ec-p256' ? 'P-256' : 'P-384' };
}

export class CaManager {
  private keys: LoadedKey[] = [];
  private minter?: X509SvidMinter;
  private minterFor?: string;
  private bundleCache?: Bundle;
  private sequence = -1;
  private upstreamSigner?: JwsSigner;

  constructor(
    private readonly deps: {
      store: Store;
      clock: Clock;
      custody: KeyCustody;
      settings: CaSettings;
      /** Called for each key state change inside the rotation's transaction (the audit log's `key.rotated`). */
      onKeyChange?: KeyChangeListener;
    },
  ) {
    if (deps.settings.upstream) this.upstreamSigner = fileKeySigner(deps.settings.upstream.privateKey);
  }

  get trustDomain(): string {
    return this.deps.settings.trustDomain;
  }

  /** The bundle sequence of the keys loaded now. */
  get loadedSequence(): number {
    return this.sequence;
  }

  /**
   * Loads keys, creates what is missing, and applies any rotation that is due. Every stored key
   * is opened first, so a wrong key-encryption key fails before anything is written.
   */
  async init(): Promise<void> {
    await this.load();
    await this.rotate();
  }

  /** Reloads keys and bundle when the store's bundle sequence moved (another replica rotated); true if it did. */
  async refresh(): Promise<boolean> {
    if ((await this.deps.store.getBundleSequence()) === this.sequence) return false;
    await this.load();
    return true;
  }

  /**
   * Applies every due state change in one transaction, then reloads if the bundle sequence the
   * transaction saw (or made) is not the one loaded: another replica may have committed since the
   * last load, e.g. the first CA while this one was starting. True if the loaded bundle changed.
   */
  async rotate(): Promise<boolean> {
    const now = this.deps.clock.now().getTime();
    const { changed, sequence } = await this.deps.store.transaction(async (tx) => {
      let changed = false;
      const kinds: CaKeyKind[] = this.deps.settings.upstream ? ['x509-intermediate', 'jwt', 'writ'] : ['x509-root', 'x509-intermediate', 'jwt', 'writ'];
      for (const kind of kinds) changed = (await this.rotateKind(tx, kind, now)) || changed;
      return { changed, sequence: changed ? await tx.bumpBundleSequence() : await tx.getBundleSequence() };
    });
    if (!changed && sequence === this.sequence && this.keys.length > 0) return false;
    await this.load();
    return true;
  }

  private async rotateKind(tx: StoreTx, kind: CaKeyKind, now: number): Promise<boolean> {
    const steps = planRotation(
      (await tx.listCaKeys()).filter((k) => k.kind === kind),
      now,
    );
    for (const step of steps) {
      let id: string;
      if (step.op === 'create') id = (await this.createKey(tx, kind, step.state, now)).id;
      else {
        id = step.id;
        if (step.op === 'delete') await tx.deleteCaKey(step.id);
        else if (step.op === 'retire') await tx.setCaKeyState(step.id, 'retired');
        else await tx.setCaKeyState(step.id, 'active');
      }
      await this.deps.onKeyChange?.(tx, { kind, op: step.op === 'create' ? `create ${step.state}` : step.op, id, at: now });
    }
    return steps.length > 0;
  }

  private async createKey(tx: StoreTx, kind: CaKeyKind, state: 'active' | 'prepared', now: number): Promise<CaKeyRecord> {
    const s = this.deps.settings;
    const id = `${kind}-${randomBytes(8).toString('hex')}`;
    const made = await this.deps.custody.create(id, specFor(kind, s));
    const notBefore = now - CA_BACKDATE_MS;
    let notAfter = now + (kind === 'x509-root' ? s.rootTtlMs : s.caTtlMs);
    let certDer: Buffer = Buffer.alloc(0);
    if (kind === 'x509-root' || kind === 'x509-intermediate') {
      const own = await this.deps.custody.signer({ id, sealedKey: made.sealedKey }, this.algFor(kind, made.publicKeyDer));
      const parent = kind === 'x509-root' ? undefined : await this.signingParent(tx, now);
      // A CA never outlives the CA above it.
      if (parent) notAfter = Math.min(notAfter, parent.cert.notAfter.getTime());
      certDer = await buildCaCertificate({
        id,
        trustDomain: s.trustDomain,
        spki: made.publicKeyDer,
        notBefore,
        notAfter,
        ...(parent ? { issuer: parent.cert } : {}),
        signer: parent ? parent.signer : own,
      });
    }
    const record: CaKeyRecord = { id, kind, state, certDer, publicKeyDer: made.publicKeyDer, sealedKey: made.sealedKey, notBefore, notAfter };
    await tx.putCaKey(record);
    return record;
  }

  /** The algorithm a stored key signs with: by key type; for JWT keys the configured one when it fits the key. */
  private algFor(kind: CaKeyKind, publicKeyDer: Buffer): JwsAlg {
    const pub = createPublicKey({ key: publicKeyDer, format: 'der', type: 'spki' });
    if (kind === 'jwt') {
      const configured = JWS_ALGORITHMS.get(this.deps.settings.jwtAlg);
      // A key made for another svid.jwt_alg keeps its own algorithm until it rotates out.
      if (configured && keyFits(configured, pub)) return this.deps.settings.jwtAlg;
    }
    return algForKey(pub);
  }

  /** The CA that signs a new intermediate: the upstream CA, or our active root. */
  private async signingParent(tx: StoreTx, now: number): Promise<{ cert: ParsedCertificate; signer: JwsSigner }> {
    const up = this.deps.settings.upstream;
    if (up) return { cert: parseCertificate(up.chain[0]!), signer: this.upstreamSigner! };
    const root = (await tx.listCaKeys()).find((k) => k.kind === 'x509-root' && k.state === 'active' && k.notAfter > now);
    if (!root) throw new CaError('ERR_CA_UNAVAILABLE', 'ca: no active root to sign the intermediate');
    return { cert: parseCertificate(root.certDer), signer: await this.deps.custody.signer(root, this.algFor(root.kind, root.publicKeyDer)) };
  }

  private async load(): Promise<void> {
    // The sequence and the keys it numbers, from one snapshot. Read apart, a replica committing
    // between the two reads left keys newer than the sequence loaded: published under the old
    // sequence (bundle.jwks, GetBundle) until a later wake-up reloaded them.
    const { sequence, records } = await this.deps.store.transaction(async (tx) => ({ sequence: await tx.getBundleSequence(), records: await tx.listCaKeys() }));
    const previous = new Map(this.keys.map((k) => [k.record.id, k]));
    const keys: LoadedKey[] = [];
    for (const r of records) {
      const had = previous.get(r.id);
      const signer = had?.signer ?? (await this.deps.custody.signer(r, this.algFor(r.kind, r.publicKeyDer)));
      keys.push({ record: r, signer, ...(r.certDer.length ? { cert: had?.cert ?? parseCertificate(r.certDer) } : {}) });
    }
    this.keys = keys;
    this.sequence = sequence;
    this.bundleCache = undefined;
  }

  private activeOf(kind: CaKeyKind): LoadedKey {
    const k = this.keys.find((k) => k.record.kind === kind && k.record.state === 'active');
    if (!k) throw new CaError('ERR_CA_UNAVAILABLE', `ca: no active ${kind} key`);
    return k;
  }

  /** The SVID minter bound to the active signing CA. */
  x509Minter(): X509SvidMinter {
    const active = this.activeOf('x509-intermediate');
    if (this.minter && this.minterFor === active.record.id) return this.minter;
    const chain = [active.record.certDer, ...(this.deps.settings.upstream ? this.upstreamIntermediates() : [])];
    this.minter = new X509SvidMinter({ certificate: active.cert!, signer: active.signer, chain });
    this.minterFor = active.record.id;
    return this.minter;
  }

  /** Upstream chain certificates that are not themselves trust anchors. */
  private upstreamIntermediates(): Buffer[] {
    const up = this.deps.settings.upstream!;
    return up.chain.filter((c) => !up.roots.some((r) => r.equals(c)));
  }

  jwtSigner(): JwtSvidSigner & { notAfter: Date } {
    const k = this.activeOf('jwt');
    return { kid: k.record.id, signer: k.signer, notAfter: new Date(k.record.notAfter) };
  }

  /** The active writ key: signs root grants and writs (never JWT-SVIDs; its bundle `use` is "writ"). */
  writSigner(): { kid: string; signer: JwsSigner; notAfter: Date } {
    const k = this.activeOf('writ');
    return { kid: k.record.id, signer: k.signer, notAfter: new Date(k.record.notAfter) };
  }

  /** The trust bundle: roots and JWT keys that are prepared, active, or retired but unexpired. */
  bundle(): Bundle {
    if (this.bundleCache) return this.bundleCache;
    const up = this.deps.settings.upstream;
    const x509 = up ? [...up.roots] : this.keys.filter((k) => k.record.kind === 'x509-root').map((k) => k.record.certDer);
    const jwt = new Map<string, KeyObject>();
    for (const k of this.keys.filter((k) => k.record.kind === 'jwt')) {
      jwt.set(k.record.id, createPublicKey({ key: k.record.publicKeyDer, format: 'der', type: 'spki' }));
    }
    const writ = new Map<string, KeyObject>();
    for (const k of this.keys.filter((k) => k.record.kind === 'writ')) {
      writ.set(k.record.id, createPublicKey({ key: k.record.publicKeyDer, format: 'der', type: 'spki' }));
    }
    this.bundleCache = {
      trustDomain: this.deps.settings.trustDomain,
      x509Authorities: x509,
      jwtAuthorities: jwt,
      writAuthorities: writ,
      sequence: this.sequence,
      refreshHint: this.deps.settings.refreshHintSeconds,
    };
    return this.bundleCache;
  }

  /** Key records with their states, for operators and tests. */
  describe(): Array<{ id: string; kind: CaKeyKind; state: string; notBefore: Date; notAfter: Date }> {
    return this.keys.map((k) => ({
      id: k.record.id,
      kind: k.record.kind,
      state: k.record.state,
      notBefore: new Date(k.record.notBefore),
      notAfter: new Date(k.record.notAfter),
    }));
  }
}

/** Loads an upstream CA from PEM text: certificate chain, PKCS#8 key, and roots. */
export function loadUpstreamCa(chainPem: Buffer[], keyPkcs8: KeyObject, roots: Buffer[]): UpstreamCa {
  if (chainPem.length === 0) throw new CaError('ERR_CA_UNAVAILABLE', 'ca: upstream certificate file holds no certificate');
  const leaf = new X509Certificate(chainPem[0]!);
  if (!leaf.ca) throw new CaError('ERR_CA_UNAVAILABLE', 'ca: upstream certificate is not a CA');
  if (!leaf.checkPrivateKey(keyPkcs8)) throw new CaError('ERR_CA_UNAVAILABLE', 'ca: upstream key does not match the upstream certificate');
  if (roots.length === 0) throw new CaError('ERR_CA_UNAVAILABLE', 'ca: upstream bundle holds no root');
  return { chain: chainPem, privateKey: keyPkcs8, roots };
}
