/**
 * The issuer's CA: a root and an intermediate signing CA (or an upstream CA loaded from
 * files), and JWT signing keys, each rotating SPIRE-style: a next key is prepared at half
 * of the active key's lifetime (and published in the bundle), activated at five sixths,
 * and the old one stays in the bundle as retired until everything it signed has expired.
 */
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { CaError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { Bundle } from '../spiffe/bundle.js';
import { trustDomainId } from '../spiffe/id.js';
import { parseCertificate, type ParsedCertificate } from '../x509/certificate.js';
import { KEY_USAGE, OID } from '../x509/oids.js';
import * as t from '../svid/template.js';
import { X509SvidMinter } from '../svid/x509-mint.js';
import type { JwtAlg, JwtSvidSigner } from '../svid/jwt-svid.js';
import type { CaKeyKind, CaKeyRecord, Store, StoreTx } from '../store/store.js';
import type { KeyEncryptor } from './key-encryptor.js';

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

/** Backdating of CA notBefore, for clock skew between issuer and relying parties. */
export const CA_BACKDATE_MS = 60_000;

interface LoadedKey {
  readonly record: CaKeyRecord;
  readonly privateKey: KeyObject;
  readonly cert?: ParsedCertificate;
}

function generateKey(type: CaKeyType | 'jwt', jwtAlg: JwtAlg): KeyObject {
  if (type === 'jwt') {
    if (jwtAlg.startsWith('ES')) {
      const curve = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' }[jwtAlg as 'ES256'];
      return generateKeyPairSync('ec', { namedCurve: curve }).privateKey;
    }
    return generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey;
  }
  return generateKeyPairSync('ec', { namedCurve: type === 'ec-p256' ? 'prime256v1' : 'secp384r1' }).privateKey;
}

/** The portion of a lifetime after which a key is prepared / activated. */
const PREPARE_AT = 1 / 2;
const ACTIVATE_AT = 5 / 6;

export class CaManager {
  private keys: LoadedKey[] = [];
  private minter?: X509SvidMinter;
  private minterFor?: string;
  private bundleCache?: Bundle;
  private sequence = 0;

  constructor(private readonly deps: { store: Store; clock: Clock; encryptor: KeyEncryptor; settings: CaSettings }) {}

  get trustDomain(): string {
    return this.deps.settings.trustDomain;
  }

  /**
   * Loads keys, creates what is missing, and applies any rotation that is due. Every stored key
   * is unsealed first, so a wrong key-encryption key fails before anything is written.
   */
  async init(): Promise<void> {
    await this.load();
    await this.rotate();
  }

  /** Applies every due state change in one transaction; returns true if the bundle changed. */
  async rotate(): Promise<boolean> {
    const now = this.deps.clock.now().getTime();
    const changed = await this.deps.store.transaction(async (tx) => {
      let changed = false;
      const kinds: CaKeyKind[] = this.deps.settings.upstream ? ['x509-intermediate', 'jwt', 'writ'] : ['x509-root', 'x509-intermediate', 'jwt', 'writ'];
      for (const kind of kinds) changed = (await this.rotateKind(tx, kind, now)) || changed;
      if (changed) await tx.bumpBundleSequence();
      return changed;
    });
    if (changed || this.keys.length === 0) await this.load();
    return changed;
  }

  private async rotateKind(tx: StoreTx, kind: CaKeyKind, now: number): Promise<boolean> {
    let changed = false;
    const all = (await tx.listCaKeys()).filter((k) => k.kind === kind);
    // Retired keys leave once nothing they signed can still be valid (SVIDs never outlive them).
    for (const k of all.filter((k) => k.state === 'retired' && k.notAfter <= now)) {
      await tx.deleteCaKey(k.id);
      changed = true;
    }
    let active = all.find((k) => k.state === 'active' && k.notAfter > now);
    const expiredActive = all.find((k) => k.state === 'active' && k.notAfter <= now);
    if (expiredActive) {
      await tx.deleteCaKey(expiredActive.id);
      changed = true;
    }
    let prepared = all.find((k) => k.state === 'prepared' && k.notAfter > now);
    if (!active) {
      // First start, or the issuer was down past the active key's life.
      if (prepared) {
        await tx.setCaKeyState(prepared.id, 'active');
        active = { ...prepared, state: 'active' };
        prepared = undefined;
      } else {
        active = await this.createKey(tx, kind, 'active', now);
      }
      return true;
    }
    const life = active.notAfter - active.notBefore;
    if (!prepared && now >= active.notBefore + life * PREPARE_AT) {
      prepared = await this.createKey(tx, kind, 'prepared', now);
      changed = true;
    }
    if (prepared && now >= active.notBefore + life * ACTIVATE_AT) {
      await tx.setCaKeyState(active.id, 'retired');
      await tx.setCaKeyState(prepared.id, 'active');
      changed = true;
    }
    return changed;
  }

  private async createKey(tx: StoreTx, kind: CaKeyKind, state: 'active' | 'prepared', now: number): Promise<CaKeyRecord> {
    const s = this.deps.settings;
    const id = `${kind}-${randomBytes(8).toString('hex')}`;
    // Writ keys sign grants and writs: always ES256, the algorithm every JOSE library verifies.
    const privateKey = kind === 'writ' ? generateKey('ec-p256', s.jwtAlg) : generateKey(kind === 'jwt' ? 'jwt' : s.keyType, s.jwtAlg);
    const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
    const notBefore = now - CA_BACKDATE_MS;
    let notAfter = now + (kind === 'x509-root' ? s.rootTtlMs : s.caTtlMs);
    let certDer: Buffer = Buffer.alloc(0);
    if (kind === 'x509-root') {
      certDer = this.buildCaCert({ id, spki, notBefore, notAfter, issuer: undefined, signer: privateKey });
    } else if (kind === 'x509-intermediate') {
      const parent = await this.signingParent(tx, now);
      // A CA never outlives the CA above it.
      notAfter = Math.min(notAfter, parent.cert.notAfter.getTime());
      certDer = this.buildCaCert({ id, spki, notBefore, notAfter, issuer: parent.cert, signer: parent.key });
    }
    const record: CaKeyRecord = {
      id,
      kind,
      state,
      certDer,
      publicKeyDer: spki,
      sealedKey: this.deps.encryptor.seal(privateKey.export({ type: 'pkcs8', format: 'der' }), id),
      notBefore,
      notAfter,
    };
    await tx.putCaKey(record);
    return record;
  }

  /** The CA that signs a new intermediate: the upstream CA, or our active root. */
  private async signingParent(tx: StoreTx, now: number): Promise<{ cert: ParsedCertificate; key: KeyObject }> {
    const up = this.deps.settings.upstream;
    if (up) return { cert: parseCertificate(up.chain[0]!), key: up.privateKey };
    const root = (await tx.listCaKeys()).find((k) => k.kind === 'x509-root' && k.state === 'active' && k.notAfter > now);
    if (!root) throw new CaError('ERR_CA_UNAVAILABLE', 'ca: no active root to sign the intermediate');
    return { cert: parseCertificate(root.certDer), key: this.unseal(root) };
  }

  private buildCaCert(p: { id: string; spki: Buffer; notBefore: number; notAfter: number; issuer?: ParsedCertificate; signer: KeyObject }): Buffer {
    const td = this.deps.settings.trustDomain;
    const role = p.issuer ? 'signing' : 'root';
    const subject = t.encodeName([
      { oid: OID.organizationName, value: 'writ' },
      { oid: OID.organizationalUnitName, value: td.slice(0, 64) },
      { oid: OID.commonName, value: `writ ${role} CA ${p.id.slice(-16)}` },
    ]);
    const scheme = t.signatureSchemeFor(p.signer);
    const issuerSpki = p.issuer ? p.issuer.spki : p.spki;
    const tbs = t.encodeTbs({
      serial: t.randomSerial(),
      algorithm: scheme.algorithm,
      issuer: p.issuer ? p.issuer.subject : subject,
      notBefore: new Date(p.notBefore),
      notAfter: new Date(p.notAfter),
      subject,
      spki: p.spki,
      extensions: [
        p.issuer ? t.basicConstraints(true, 0) : t.basicConstraints(true),
        t.keyUsage([KEY_USAGE.digitalSignature, KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign]),
        t.subjectKeyId(p.spki),
        t.authorityKeyId(issuerSpki),
        t.subjectAltName([trustDomainId(td)]),
      ],
    });
    return t.signCertificate(tbs, scheme.algorithm, scheme.hash, p.signer);
  }

  private unseal(r: CaKeyRecord): KeyObject {
    const pkcs8 = this.deps.encryptor.open(r.sealedKey, r.id);
    return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  }

  private async load(): Promise<void> {
    const records = await this.deps.store.listCaKeys();
    const previous = new Map(this.keys.map((k) => [k.record.id, k]));
    this.keys = records.map((r) => {
      const had = previous.get(r.id);
      if (had && had.record.state === r.state) return had;
      return { record: r, privateKey: had?.privateKey ?? this.unseal(r), ...(r.certDer.length ? { cert: parseCertificate(r.certDer) } : {}) };
    });
    this.sequence = await this.deps.store.getBundleSequence();
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
    this.minter = new X509SvidMinter({ certificate: active.cert!, privateKey: active.privateKey, chain });
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
    return { kid: k.record.id, alg: this.deps.settings.jwtAlg, privateKey: k.privateKey, notAfter: new Date(k.record.notAfter) };
  }

  /** The active writ key: signs root grants and writs (never JWT-SVIDs; its bundle `use` is "writ"). */
  writSigner(): { kid: string; privateKey: KeyObject; notAfter: Date } {
    const k = this.activeOf('writ');
    return { kid: k.record.id, privateKey: k.privateKey, notAfter: new Date(k.record.notAfter) };
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
