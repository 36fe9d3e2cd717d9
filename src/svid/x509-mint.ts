/**
 * X.509-SVID minting: template → sign → validate our own output → return (SPIRE
 * credtemplate + credvalidator). Profile per X509-SVID §4: one URI SAN, cA=false, keyUsage
 * critical digitalSignature only, EKU serverAuth+clientAuth, random serial.
 */
import type { JwsSigner } from '../jose/jws.js';
import { SvidError } from '../errors.js';
import type { SpiffeId } from '../spiffe/id.js';
import { parseCertificate, type ParsedCertificate } from '../x509/certificate.js';
import { checkLeafProfile } from './x509-svid.js';
import { KEY_USAGE, OID } from '../x509/oids.js';
import * as t from './template.js';
import { utf8 } from '../der/der.js';

/** The CA that signs SVIDs: its certificate, its signer and the chain to send after the leaf. */
export interface SigningAuthority {
  readonly certificate: ParsedCertificate;
  /** The signing CA's key, wherever it is held (ca/custody.ts). */
  readonly signer: JwsSigner;
  /** Certificates to append after the leaf (this CA and any intermediates above it, never the root). */
  readonly chain: readonly Buffer[];
}

export interface X509SvidRequest {
  readonly spiffeId: SpiffeId;
  /** DER SubjectPublicKeyInfo, already accepted by parsePublicKey. */
  readonly spki: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Extra SANs, used only for the issuer's own serving certificate. */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  /**
   * Where the private key lives when not in the agent's memory, a label the evidence plug-in
   * chose (`KEY_RESIDENCY`, e.g. "tpm"): writ's key-residency extension.
   */
  readonly keyResidency?: string;
}

/** What a key-residency label may be. */
export const KEY_RESIDENCY = /^[a-z0-9_-]{1,32}$/;

export interface MintedX509Svid {
  readonly spiffeId: SpiffeId;
  readonly serial: Buffer;
  readonly leaf: Buffer;
  /** Leaf first, then the CA chain. */
  readonly chain: readonly Buffer[];
  readonly notAfter: Date;
}

const SVID_SUBJECT = t.encodeName([
  { oid: OID.countryName, value: 'US' },
  { oid: OID.organizationName, value: 'writ' },
]);
const LEAF_CONSTRAINTS = t.basicConstraints(false);
const LEAF_KEY_USAGE = t.keyUsage([KEY_USAGE.digitalSignature]);
const LEAF_EKU = t.extKeyUsage([OID.serverAuth, OID.clientAuth]);

/** Mints X.509-SVIDs under one signing authority; constant DER is precomputed. */
export class X509SvidMinter {
  private readonly algorithm: Buffer;
  /** basicConstraints, keyUsage, extKeyUsage and authorityKeyIdentifier, encoded once. */
  private readonly constantExtensions: Buffer;
  private readonly template: t.LeafTemplate;

  constructor(private readonly ca: SigningAuthority) {
    const scheme = t.signatureSchemeForAlg(ca.signer.alg);
    this.algorithm = scheme.algorithm;
    this.constantExtensions = Buffer.concat([LEAF_CONSTRAINTS, LEAF_KEY_USAGE, LEAF_EKU, t.authorityKeyId(ca.certificate.spki)]);
    this.template = { algorithm: this.algorithm, issuer: ca.certificate.subject, subject: SVID_SUBJECT, constantExtensions: this.constantExtensions };
  }

  get notAfter(): Date {
    return this.ca.certificate.notAfter;
  }

  async mint(req: X509SvidRequest): Promise<MintedX509Svid> {
    if (req.keyResidency !== undefined && !KEY_RESIDENCY.test(req.keyResidency))
      throw new SvidError('ERR_X509_SVID_INVALID', 'x509svid: a key residency label is 1..32 of a-z, 0-9, _ and -');
    // SVIDs never outlive their signing CA.
    const notAfter = req.notAfter.getTime() > this.ca.certificate.notAfter.getTime() ? this.ca.certificate.notAfter : req.notAfter;
    const serial = t.randomSerial();
    const plain = !req.dnsNames?.length && !req.ipAddresses?.length && !req.keyResidency;
    const tbs =
      (plain && t.encodeLeafTbs(this.template, serial, req.notBefore, notAfter, req.spki, req.spiffeId.uri)) ||
      t.encodeTbs({
        serial,
        algorithm: this.algorithm,
        issuer: this.ca.certificate.subject,
        notBefore: req.notBefore,
        notAfter,
        subject: SVID_SUBJECT,
        spki: req.spki,
        extensions: [
          this.constantExtensions,
          t.subjectKeyId(req.spki),
          t.subjectAltName([req.spiffeId.uri], req.dnsNames, req.ipAddresses),
          ...(req.keyResidency ? [t.extension(OID.writKeyResidency, false, utf8(req.keyResidency))] : []),
        ],
      });
    const leaf = await t.signCertificateWith(tbs, this.algorithm, this.ca.signer);
    this.validate(leaf, req, notAfter);
    return { spiffeId: req.spiffeId, serial, leaf, chain: [leaf, ...this.ca.chain], notAfter };
  }

  /** Our own output must pass our own validator before it leaves (SPIRE credvalidator). */
  private validate(leafDer: Buffer, req: X509SvidRequest, notAfter: Date): void {
    const fail = (m: string): never => {
      throw new SvidError('ERR_X509_SVID_INVALID', `x509svid: minted certificate failed validation: ${m}`);
    };
    let leaf: ParsedCertificate;
    let id: SpiffeId;
    try {
      leaf = parseCertificate(leafDer);
      id = checkLeafProfile(leaf);
    } catch (e) {
      fail((e as Error).message);
      return;
    }
    if (id.uri !== req.spiffeId.uri) fail('SPIFFE ID differs from the request');
    if (!leaf.spki.equals(req.spki)) fail('public key differs from the request');
    if (!leaf.issuer.equals(this.ca.certificate.subject)) fail('issuer differs from the signing CA');
    if (leaf.notAfter.getTime() !== Math.floor(notAfter.getTime() / 1000) * 1000) fail('notAfter differs from the request');
    if (leaf.notAfter > this.ca.certificate.notAfter || leaf.notBefore >= leaf.notAfter) fail('validity outside the signing CA');
    const eku = leaf.extKeyUsage ?? [];
    if (!eku.includes(OID.serverAuth) || !eku.includes(OID.clientAuth)) fail('missing serverAuth/clientAuth');
    if (leaf.keyResidency !== req.keyResidency) fail('key residency differs from the request');
  }
}
