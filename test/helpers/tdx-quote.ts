/**
 * Synthetic Intel TDX quotes made at test time, byte for byte in the real v4/v5 layout: a test
 * "Intel SGX Root CA" (P-256, Intel's subject name), a PCK Platform CA, a PCK certificate with
 * the SGX extensions (PPID, TCB, PCE-ID, FMSPC), a QE report signed by the PCK key whose report
 * data binds the attestation key, and a quote signed by that attestation key.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { bitString, octets, oid, seq, smallInt, TAG, time, tlv } from '../../src/der/der.js';
import { encodePem } from '../../src/der/pem.js';
import * as t from '../../src/svid/template.js';
import { parseCertificate } from '../../src/x509/certificate.js';
import { KEY_USAGE, OID } from '../../src/x509/oids.js';

export interface TestKey {
  readonly privateKey: KeyObject;
  readonly spki: Buffer;
}

export const p256 = (): TestKey => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, spki: publicKey.export({ type: 'spki', format: 'der' }) };
};

export const intelName = (cn: string): Buffer =>
  t.encodeName([
    { oid: OID.commonName, value: cn },
    { oid: OID.organizationName, value: 'Intel Corporation' },
    { oid: '2.5.4.7', value: 'Santa Clara' },
    { oid: '2.5.4.8', value: 'CA' },
    { oid: OID.countryName, value: 'US' },
  ]);

export interface TestCertOpts {
  readonly subject: Buffer;
  readonly issuer?: { readonly subject: Buffer; readonly key: KeyObject };
  readonly key: TestKey;
  readonly ca?: boolean;
  readonly pathLen?: number;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extra?: readonly Buffer[];
}

export function testCert(o: TestCertOpts): Buffer {
  const signer = o.issuer?.key ?? o.key.privateKey;
  const scheme = t.signatureSchemeFor(signer);
  const exts = [
    t.basicConstraints(!!o.ca, o.pathLen),
    t.keyUsage(o.ca ? [KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign] : [KEY_USAGE.digitalSignature, KEY_USAGE.nonRepudiation]),
    t.subjectKeyId(o.key.spki),
    ...(o.extra ?? []),
  ];
  const tbs = t.encodeTbs({
    serial: t.randomSerial(),
    algorithm: scheme.algorithm,
    issuer: o.issuer?.subject ?? o.subject,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    subject: o.subject,
    spki: o.key.spki,
    extensions: exts,
  });
  return t.signCertificate(tbs, scheme.algorithm, scheme.hash, signer);
}

const SGX = '1.2.840.113741.1.13.1';

/** The SGX extensions of a PCK certificate (Intel SGX PCK Certificate and CRL Profile). */
export function sgxExtension(p: { ppid: Buffer; fmspc: Buffer; pceId: Buffer; components: readonly number[]; pceSvn: number; cpuSvn: Buffer }): Buffer {
  const e = (sub: string, value: Buffer) => seq(oid(`${SGX}.${sub}`), value);
  const tcb = seq(...p.components.map((c, i) => e(`2.${i + 1}`, smallInt(c))), e('2.17', smallInt(p.pceSvn)), e('2.18', octets(p.cpuSvn)));
  const value = seq(e('1', octets(p.ppid)), e('2', tcb), e('3', octets(p.pceId)), e('4', octets(p.fmspc)), e('5', Buffer.from([0x0a, 0x01, 0x00])));
  return t.extension(SGX, false, value);
}

export interface TestPki {
  readonly root: Buffer;
  readonly rootKey: TestKey;
  readonly ca: Buffer;
  readonly caKey: TestKey;
  readonly pck: Buffer;
  readonly pckKey: TestKey;
  readonly ppid: Buffer;
  readonly fmspc: Buffer;
}

export const TEST_FMSPC = Buffer.from('00906ed50000', 'hex');

/** A test Intel PKI valid from `from` to `until`. */
export function makeTestPki(from = new Date('2020-01-01T00:00:00Z'), until = new Date('2040-01-01T00:00:00Z')): TestPki {
  const rootKey = p256();
  const caKey = p256();
  const pckKey = p256();
  const rootName = intelName('Intel SGX Root CA');
  const caName = intelName('Intel SGX PCK Platform CA');
  const root = testCert({ subject: rootName, key: rootKey, ca: true, pathLen: 1, notBefore: from, notAfter: until });
  const ca = testCert({
    subject: caName,
    issuer: { subject: rootName, key: rootKey.privateKey },
    key: caKey,
    ca: true,
    pathLen: 0,
    notBefore: from,
    notAfter: until,
  });
  const ppid = createHash('sha256').update(pckKey.spki).digest().subarray(0, 16);
  const pck = testCert({
    subject: intelName('Intel SGX PCK Certificate'),
    issuer: { subject: caName, key: caKey.privateKey },
    key: pckKey,
    notBefore: from,
    notAfter: until,
    extra: [
      sgxExtension({
        ppid,
        fmspc: TEST_FMSPC,
        pceId: Buffer.from([0, 0]),
        components: Array.from({ length: 16 }, (_, i) => (i < 2 ? 3 : 0)),
        pceSvn: 11,
        cpuSvn: Buffer.alloc(16, 3),
      }),
    ],
  });
  return { root, rootKey, ca, caKey, pck, pckKey, ppid, fmspc: TEST_FMSPC };
}

export interface QuoteOpts {
  readonly version?: 4 | 5;
  readonly bodyType?: 2 | 3;
  readonly reportData: Buffer;
  /** TD attributes, little-endian u64 (default 0x10000000: SEPT_VE_DISABLE). */
  readonly tdAttributes?: bigint;
  readonly mrTd?: Buffer;
  /** Certificates to embed (default: PCK, CA, root). */
  readonly chain?: readonly Buffer[];
  /** Zero bytes appended after the quote. */
  readonly padding?: number;
  readonly attestationKey?: TestKey;
  readonly qeAuthData?: Buffer;
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

/** Raw x‖y of a P-256 SPKI. */
const rawXy = (spki: Buffer) => spki.subarray(spki.length - 64);

/** A quote signed by a fresh attestation key whose QE report is signed by `pki`'s PCK key. */
export function makeTestQuote(pki: TestPki, o: QuoteOpts): Buffer {
  const version = o.version ?? 4;
  const bodyType = o.bodyType ?? (version === 5 ? 3 : 2);
  if (o.reportData.length !== 64) throw new Error('report data must be 64 bytes');
  const header = Buffer.concat([u16(version), u16(2), u32(0x81), u16(0), u16(0), Buffer.from('939a7233f79c4ca9940a0db3957f0607', 'hex'), Buffer.alloc(20)]);
  const body = Buffer.alloc(bodyType === 3 ? 648 : 584);
  body.fill(0x11, 16, 64); // mrseam
  body.fill(0x22, 64, 112); // mrsignerseam
  body.writeBigUInt64LE(o.tdAttributes ?? 0x10000000n, 120);
  body.writeBigUInt64LE(0xe7n, 128); // xfam
  (o.mrTd ?? Buffer.alloc(48, 0x33)).copy(body, 136);
  for (let i = 0; i < 4; i++) body.fill(0x40 + i, 328 + i * 48, 376 + i * 48);
  o.reportData.copy(body, 520);
  const signed = Buffer.concat([header, ...(version === 5 ? [u16(bodyType), u32(body.length)] : []), body]);
  const ak = o.attestationKey ?? p256();
  const sig = sign('sha256', signed, { key: ak.privateKey, dsaEncoding: 'ieee-p1363' });
  const akRaw = rawXy(ak.spki);
  const auth = o.qeAuthData ?? Buffer.alloc(32, 0x5a);
  const qe = Buffer.alloc(384);
  qe.writeUInt16LE(1, 256); // isvprodid
  qe.writeUInt16LE(8, 258); // isvsvn
  createHash('sha256').update(akRaw).update(auth).digest().copy(qe, 320);
  const qeSig = sign('sha256', qe, { key: pki.pckKey.privateKey, dsaEncoding: 'ieee-p1363' });
  const pem = Buffer.concat([
    Buffer.from((o.chain ?? [pki.pck, pki.ca, pki.root]).map((d) => encodePem('CERTIFICATE', d)).join(''), 'latin1'),
    Buffer.from([0]),
  ]);
  const inner = Buffer.concat([u16(5), u32(pem.length), pem]);
  const qeCert = Buffer.concat([qe, qeSig, u16(auth.length), auth, inner]);
  const certData = Buffer.concat([u16(6), u32(qeCert.length), qeCert]);
  const sigData = Buffer.concat([sig, akRaw, certData]);
  return Buffer.concat([signed, u32(sigData.length), sigData, Buffer.alloc(o.padding ?? 0)]);
}

/** The same quote with another embedded PCK chain (the chain is outside the signed region; sizes are recomputed). */
export function withChain(quote: Buffer, chain: readonly Buffer[]): Buffer {
  const version = quote.readUInt16LE(0);
  const signedLen = version === 5 ? 48 + 6 + quote.readUInt32LE(50) : 48 + 584;
  const sigData = quote.subarray(signedLen + 4);
  const certSize = sigData.readUInt32LE(130);
  const qe = sigData.subarray(134, 134 + 448);
  const authLen = sigData.readUInt16LE(134 + 448);
  const auth = sigData.subarray(134 + 450, 134 + 450 + authLen);
  if (certSize < 450 + authLen) throw new Error('not a type 6 quote');
  const pem = Buffer.concat([Buffer.from(chain.map((d) => encodePem('CERTIFICATE', d)).join(''), 'latin1'), Buffer.from([0])]);
  const qeCert = Buffer.concat([qe, u16(auth.length), auth, u16(5), u32(pem.length), pem]);
  const newSig = Buffer.concat([sigData.subarray(0, 128), u16(6), u32(qeCert.length), qeCert]);
  return Buffer.concat([quote.subarray(0, signedLen), u32(newSig.length), newSig]);
}

export interface TestCollateralOpts {
  /** The platform TCB level's status (default UpToDate). */
  readonly status?: string;
  /** Put the PCK certificate on the PCK CRL. */
  readonly revokePck?: boolean;
  /** Put the PCK CA on the root CRL. */
  readonly revokeCa?: boolean;
  /** The QE identity's MRSIGNER (default: the one makeTestQuote's QE reports, zeros). */
  readonly qeMrSigner?: Buffer;
  /** The TDX module signer the TCB info names (default: makeTestQuote's MRSIGNERSEAM, 0x22…). */
  readonly moduleSigner?: Buffer;
  readonly from?: Date;
  readonly until?: Date;
}

const ECDSA_SHA256 = seq(oid(OID.ecdsaSha256));

function testCrl(issuer: Buffer, key: KeyObject, revoked: readonly Buffer[], from: Date, until: Date): Buffer {
  const entries = revoked.map((serial) => seq(tlv(TAG.INTEGER, serial), time(from)));
  const tbs = seq(smallInt(1), ECDSA_SHA256, issuer, time(from), time(until), ...(entries.length ? [seq(...entries)] : []));
  return seq(tbs, ECDSA_SHA256, bitString(sign('sha256', tbs, key)));
}

/** Collateral for `pki` in dcap-qvl's JSON shape: a TCB Signing certificate under the test root signs the TCB info and QE identity. */
export function makeTestCollateral(pki: TestPki, o: TestCollateralOpts = {}): string {
  const from = o.from ?? new Date('2029-12-01T00:00:00Z');
  const until = o.until ?? new Date('2030-02-01T00:00:00Z');
  const rootName = intelName('Intel SGX Root CA');
  const signerKey = p256();
  const signer = testCert({
    subject: intelName('Intel SGX TCB Signing'),
    issuer: { subject: rootName, key: pki.rootKey.privateKey },
    key: signerKey,
    notBefore: new Date('2020-01-01T00:00:00Z'),
    notAfter: new Date('2040-01-01T00:00:00Z'),
  });
  const chainPem = encodePem('CERTIFICATE', signer) + encodePem('CERTIFICATE', pki.root);
  const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const zeros16 = Array.from({ length: 16 }, () => ({ svn: 0 }));
  const tcbInfo = JSON.stringify({
    id: 'TDX',
    version: 3,
    issueDate: iso(from),
    nextUpdate: iso(until),
    fmspc: pki.fmspc.toString('hex').toUpperCase(),
    pceId: '0000',
    tcbType: 0,
    tcbEvaluationDataNumber: 17,
    tdxModule: {
      mrsigner: (o.moduleSigner ?? Buffer.alloc(48, 0x22)).toString('hex').toUpperCase(),
      attributes: '0000000000000000',
      attributesMask: 'FFFFFFFFFFFFFFFF',
    },
    tdxModuleIdentities: [],
    tcbLevels: [
      {
        tcb: { sgxtcbcomponents: Array.from({ length: 16 }, (_, i) => ({ svn: i < 2 ? 3 : 0 })), pcesvn: 11, tdxtcbcomponents: zeros16 },
        tcbDate: '2029-01-01T00:00:00Z',
        tcbStatus: o.status ?? 'UpToDate',
        ...(o.status && o.status !== 'UpToDate' ? { advisoryIDs: ['INTEL-SA-00001'] } : {}),
      },
    ],
  });
  const qeIdentity = JSON.stringify({
    id: 'TD_QE',
    version: 2,
    issueDate: iso(from),
    nextUpdate: iso(until),
    tcbEvaluationDataNumber: 17,
    miscselect: '00000000',
    miscselectMask: 'FFFFFFFF',
    attributes: '00000000000000000000000000000000',
    attributesMask: 'FBFFFFFFFFFFFFFF0000000000000000',
    mrsigner: (o.qeMrSigner ?? Buffer.alloc(32)).toString('hex').toUpperCase(),
    isvprodid: 1,
    tcbLevels: [{ tcb: { isvsvn: 8 }, tcbDate: '2029-01-01T00:00:00Z', tcbStatus: 'UpToDate' }],
  });
  const sig = (text: string) => sign('sha256', Buffer.from(text), { key: signerKey.privateKey, dsaEncoding: 'ieee-p1363' }).toString('hex');
  const serialOf = (der: Buffer) => parseCertificate(der).serial;
  return JSON.stringify({
    tcb_info: tcbInfo,
    tcb_info_signature: sig(tcbInfo),
    tcb_info_issuer_chain: chainPem,
    qe_identity: qeIdentity,
    qe_identity_signature: sig(qeIdentity),
    qe_identity_issuer_chain: chainPem,
    pck_crl: testCrl(intelName('Intel SGX PCK Platform CA'), pki.caKey.privateKey, o.revokePck ? [serialOf(pki.pck)] : [], from, until).toString('hex'),
    pck_crl_issuer_chain: encodePem('CERTIFICATE', pki.ca) + encodePem('CERTIFICATE', pki.root),
    root_ca_crl: testCrl(rootName, pki.rootKey.privateKey, o.revokeCa ? [serialOf(pki.ca)] : [], from, until).toString('hex'),
  });
}
