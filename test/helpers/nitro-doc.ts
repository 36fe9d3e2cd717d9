/**
 * Synthetic AWS Nitro attestation documents from a test PKI made at test time, byte for byte in
 * the genuine format (untagged COSE_Sign1 array of 4, protected header a1 01 38 22, empty
 * unprotected map, payload map of the nine fields in NSM order with absent fields as null,
 * 96-byte raw r‖s ES384 signature, cabundle root first), so tests exercise the verifier exactly
 * as real documents do. Options produce the variants genuine NSMs also emit (tag 18,
 * indefinite-length payload map, absent instead of null) and broken ones.
 */
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import * as t from '../../src/svid/template.js';
import { KEY_USAGE, OID } from '../../src/x509/oids.js';
import { cborHead, encodeArray, encodeBytes, encodeInt, encodeMap, encodeText, encodeUint } from '../../src/attestation/nitro/cbor.js';
import { sigStructure } from '../../src/attestation/nitro/document.js';

export interface NitroCert {
  readonly der: Buffer;
  readonly key: KeyObject;
  readonly subject: Buffer;
}

const p384 = (namedCurve = 'secp384r1') => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve });
  return { privateKey, spki: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }) };
};

/** The AWS root's subject: C=US, O=Amazon, OU=AWS, CN=aws.nitro-enclaves (same DER as the real one). */
export const AWS_ROOT_NAME = t.encodeName([
  { oid: OID.countryName, value: 'US' },
  { oid: OID.organizationName, value: 'Amazon' },
  { oid: OID.organizationalUnitName, value: 'AWS' },
  { oid: OID.commonName, value: 'aws.nitro-enclaves' },
]);

export function nitroCert(o: {
  subject: Buffer;
  issuer?: NitroCert;
  ca: boolean;
  pathLen?: number;
  notBefore: Date;
  notAfter: Date;
  curve?: string;
}): NitroCert {
  const key = p384(o.curve);
  const signer = o.issuer?.key ?? key.privateKey;
  const scheme = t.signatureSchemeFor(signer);
  const tbs = t.encodeTbs({
    serial: t.randomSerial(),
    algorithm: scheme.algorithm,
    issuer: o.issuer ? o.issuer.subject : o.subject,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    subject: o.subject,
    spki: key.spki,
    extensions: [
      t.basicConstraints(o.ca, o.pathLen),
      t.keyUsage(o.ca ? [KEY_USAGE.digitalSignature, KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign] : [KEY_USAGE.digitalSignature]),
      t.subjectKeyId(key.spki),
    ],
  });
  return { der: t.signCertificate(tbs, scheme.algorithm, scheme.hash, signer), key: key.privateKey, subject: o.subject };
}

const cn = (s: string) => t.encodeName([{ oid: OID.commonName, value: s }]);

export interface NitroPki {
  readonly root: NitroCert;
  /** regional, zonal, instance: as the chain runs from the root down. */
  readonly intermediates: readonly NitroCert[];
  readonly leaf: NitroCert;
}

/** root → regional → zonal → instance → leaf, as AWS issues them; the leaf valid 3 hours around `at`. */
export function nitroPki(at: Date, o: { rootName?: Buffer; root?: NitroCert; label?: string } = {}): NitroPki {
  const year = 365 * 86400_000;
  const label = o.label ?? 'test';
  const root =
    o.root ??
    nitroCert({
      subject: o.rootName ?? cn(`${label}.nitro-enclaves`),
      ca: true,
      notBefore: new Date(at.getTime() - year),
      notAfter: new Date(at.getTime() + 30 * year),
    });
  const regional = nitroCert({
    subject: cn(`${label}.us-east-1.aws.nitro-enclaves`),
    issuer: root,
    ca: true,
    pathLen: 2,
    notBefore: new Date(at.getTime() - 86400_000),
    notAfter: new Date(at.getTime() + 20 * 86400_000),
  });
  const zonal = nitroCert({
    subject: cn(`${label}.zonal.us-east-1.aws.nitro-enclaves`),
    issuer: regional,
    ca: true,
    pathLen: 1,
    notBefore: new Date(at.getTime() - 86400_000),
    notAfter: new Date(at.getTime() + 5 * 86400_000),
  });
  const instance = nitroCert({
    subject: cn(`${label}.i-0123.us-east-1.aws.nitro-enclaves`),
    issuer: zonal,
    ca: true,
    pathLen: 0,
    notBefore: new Date(at.getTime() - 3600_000),
    notAfter: new Date(at.getTime() + 86400_000),
  });
  const leaf = nitroCert({
    subject: cn('i-0123456789abcdef0-enc0123456789abcdef.us-east-1.aws'),
    issuer: instance,
    ca: false,
    notBefore: new Date(at.getTime() - 3600_000),
    notAfter: new Date(at.getTime() + 2 * 3600_000),
  });
  return { root, intermediates: [regional, zonal, instance], leaf };
}

export interface NitroDocOptions {
  readonly pki: NitroPki;
  readonly timestamp: number;
  readonly nonce?: Buffer;
  readonly userData?: Buffer;
  readonly publicKey?: Buffer;
  /** PCR index → value; default 16 PCRs, PCR0..2/8 non-zero (a production enclave). */
  readonly pcrs?: ReadonlyMap<number, Buffer>;
  readonly moduleId?: string;
  /** Wrap in tag 18. */
  readonly tagged?: boolean;
  /** Encode the payload as an indefinite-length map. */
  readonly indefinite?: boolean;
  /** Leave absent fields out instead of null. */
  readonly omitAbsent?: boolean;
  /** Replace the cabundle (root first). */
  readonly cabundle?: readonly Buffer[];
  /** Sign with this key instead of the leaf's. */
  readonly signer?: KeyObject;
  /** Extra payload entries (already encoded key, value). */
  readonly extra?: ReadonlyArray<readonly [Buffer, Buffer]>;
}

export function productionPcrs(seed = 1): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (let i = 0; i < 16; i++) m.set(i, [0, 1, 2, 3, 4, 8].includes(i) ? Buffer.alloc(48, seed * 16 + i) : Buffer.alloc(48));
  return m;
}

export function debugPcrs(): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (let i = 0; i < 16; i++) m.set(i, Buffer.alloc(48));
  return m;
}

/** The payload's encoded map entries, in NSM order. */
function payloadEntries(o: NitroDocOptions): Array<readonly [Buffer, Buffer]> {
  const pcrs = o.pcrs ?? productionPcrs();
  const cabundle = o.cabundle ?? [o.pki.root.der, ...o.pki.intermediates.map((c) => c.der)];
  const opt = (v: Buffer | undefined) => (v === undefined ? Buffer.from([0xf6]) : encodeBytes(v));
  const entries: Array<readonly [Buffer, Buffer]> = [
    [encodeText('module_id'), encodeText(o.moduleId ?? 'i-0123456789abcdef0-enc0123456789abcdef')],
    [encodeText('digest'), encodeText('SHA384')],
    [encodeText('timestamp'), encodeUint(o.timestamp)],
    [encodeText('pcrs'), encodeMap([...pcrs].map(([i, v]) => [encodeInt(i), encodeBytes(v)] as const))],
    [encodeText('certificate'), encodeBytes(o.pki.leaf.der)],
    [encodeText('cabundle'), encodeArray(cabundle.map((c) => encodeBytes(c)))],
  ];
  for (const [k, v] of [
    ['public_key', o.publicKey],
    ['user_data', o.userData],
    ['nonce', o.nonce],
  ] as const) {
    if (v === undefined && o.omitAbsent) continue;
    entries.push([encodeText(k), opt(v)]);
  }
  return [...entries, ...(o.extra ?? [])];
}

/** COSE_Sign1 over `payload` signed by `key` (ES384, raw r‖s). */
export function coseSign1(payload: Buffer, key: KeyObject, tagged = false): Buffer {
  const prot = Buffer.from([0xa1, 0x01, 0x38, 0x22]);
  const sig = sign('sha384', sigStructure(prot, payload), { key, dsaEncoding: 'ieee-p1363' });
  const body = encodeArray([encodeBytes(prot), Buffer.from([0xa0]), encodeBytes(payload), encodeBytes(sig)]);
  return tagged ? Buffer.concat([cborHead(6, 18), body]) : body;
}

export function nitroDocument(o: NitroDocOptions): Buffer {
  const entries = payloadEntries(o);
  const payload = o.indefinite ? Buffer.concat([Buffer.from([0xbf]), ...entries.flat(), Buffer.from([0xff])]) : encodeMap(entries);
  return coseSign1(payload, o.signer ?? o.pki.leaf.key, o.tagged);
}

/**
 * The configuration of the fake NSM command (test/fakes/nitro-nsm.mjs): the leaf key and the
 * payload entries before and after `timestamp` (the fake adds the time and the nonce).
 */
export function nsmConfig(o: { pki: NitroPki; pcrs?: ReadonlyMap<number, Buffer>; moduleId?: string }): { key: string; head: string; tail: string } {
  const entries = payloadEntries({ ...o, timestamp: 1, omitAbsent: false });
  const [moduleId, digest, , pcrs, certificate, cabundle, publicKey, userData] = entries;
  return {
    key: o.pki.leaf.key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    head: Buffer.concat([cborHead(5, 9), ...moduleId!, ...digest!]).toString('hex'),
    tail: Buffer.concat([...pcrs!, ...certificate!, ...cabundle!, ...publicKey!, ...userData!]).toString('hex'),
  };
}
