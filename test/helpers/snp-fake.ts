/**
 * Synthetic AMD SEV-SNP evidence made at test time in the real formats: an ARK (self-signed)
 * and an ASK or ASVK, RSASSA-PSS SHA-384 certificates with AMD's names, extensions and PSS
 * parameter encoding; a P-384 VCEK or VLEK with AMD's TCB, productName and hwID/cspId
 * extensions; attestation reports laid out as the ABI defines them and signed by that key
 * (r and s as 72-byte little-endian fields). RSA keys are 2048-bit to keep tests quick (AMD's
 * are 4096-bit; nothing in the format depends on it).
 */
import { constants, createHash, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { bitString, bool, ctx, oid, octets, printable, seq, set, smallInt, tlv, TAG, time, utf8 } from '../../src/der/der.js';
import { encodePem } from '../../src/der/pem.js';
import { AMD_OID, encodeCertTable, type TableEntry } from '../../src/attestation/sev-snp/certs.js';
import type { Product, Tcb } from '../../src/attestation/sev-snp/verify.js';

const PSS_ALG = seq(
  oid('1.2.840.113549.1.1.10'),
  seq(
    ctx(0, true, seq(oid('2.16.840.1.101.3.4.2.2'), tlv(TAG.NULL))),
    ctx(1, true, seq(oid('1.2.840.113549.1.1.8'), seq(oid('2.16.840.1.101.3.4.2.2'), tlv(TAG.NULL)))),
    ctx(2, true, smallInt(48)),
    ctx(3, true, smallInt(1)),
  ),
);

export function amdName(cn: string): Buffer {
  const atv = (o: string, v: Buffer) => set(seq(oid(o), v));
  return seq(
    atv('2.5.4.11', utf8('Engineering')),
    atv('2.5.4.6', printable('US')),
    atv('2.5.4.7', utf8('Santa Clara')),
    atv('2.5.4.8', utf8('CA')),
    atv('2.5.4.10', utf8('Advanced Micro Devices')),
    atv('2.5.4.3', utf8(cn)),
  );
}

const ext = (id: string, value: Buffer, critical = false) => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

export interface CertSpec {
  readonly subject: string;
  readonly issuer: string;
  readonly key: KeyObject;
  readonly signer: KeyObject;
  readonly extensions: readonly Buffer[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly serial?: number;
}

/** An X.509 v3 certificate signed with RSASSA-PSS SHA-384, salt 48, as AMD KDS issues them. */
export function pssCertificate(c: CertSpec): Buffer {
  const tbs = seq(
    ctx(0, true, smallInt(2)),
    smallInt(c.serial ?? 0),
    PSS_ALG,
    amdName(c.issuer),
    seq(time(c.notBefore ?? new Date('2024-01-01T00:00:00Z')), time(c.notAfter ?? new Date('2049-01-01T00:00:00Z'))),
    amdName(c.subject),
    c.key.export({ type: 'spki', format: 'der' }),
    ctx(3, true, seq(...c.extensions)),
  );
  const sig = sign('sha384', tbs, { key: c.signer, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 });
  return seq(tbs, PSS_ALG, bitString(sig));
}

const CA_EXTENSIONS = [ext('2.5.29.19', seq(bool(true), smallInt(0)), true), ext('2.5.29.15', tlv(TAG.BIT_STRING, Buffer.from([0x02, 0x04])), true)];
const ARK_EXTENSIONS = [ext('2.5.29.19', seq(bool(true), smallInt(1)), true), ext('2.5.29.15', tlv(TAG.BIT_STRING, Buffer.from([0x01, 0x06])), true)];

export interface FakeAmd {
  readonly product: Product;
  readonly arkKey: KeyObject;
  readonly ark: Buffer;
  readonly askKey: KeyObject;
  /** ASK (VCEK chains) or ASVK (VLEK chains). */
  readonly ask: Buffer;
  /** ASK then ARK, PEM: a KDS cert_chain. */
  readonly chainPem: string;
  readonly arkFingerprint: string;
}

const rsa = (bits: number) => generateKeyPairSync('rsa', { modulusLength: bits });

/** A test ARK and ASK (or ASVK) for `product`. */
export function makeAmdRoots(
  product: Product = 'Milan',
  kind: 'vcek' | 'vlek' = 'vcek',
  opts: { arkName?: string; rsaBits?: number; arkKey?: KeyObject; askKey?: KeyObject } = {},
): FakeAmd {
  const given = (k: KeyObject) => ({ privateKey: k, publicKey: createPublicKey(k) });
  const arkKp = opts.arkKey ? given(opts.arkKey) : rsa(opts.rsaBits ?? 2048);
  const askKp = opts.askKey ? given(opts.askKey) : rsa(opts.rsaBits ?? 2048);
  const arkName = opts.arkName ?? `ARK-${product}`;
  const ark = pssCertificate({ subject: arkName, issuer: arkName, key: arkKp.publicKey, signer: arkKp.privateKey, extensions: ARK_EXTENSIONS, serial: 65537 });
  const askName = kind === 'vcek' ? `SEV-${product}` : `SEV-VLEK-${product}`;
  const ask = pssCertificate({ subject: askName, issuer: arkName, key: askKp.publicKey, signer: arkKp.privateKey, extensions: CA_EXTENSIONS, serial: 65537 });
  return {
    product,
    arkKey: arkKp.privateKey,
    ark,
    askKey: askKp.privateKey,
    ask,
    chainPem: encodePem('CERTIFICATE', ask) + encodePem('CERTIFICATE', ark),
    arkFingerprint: createHash('sha256').update(ark).digest('hex'),
  };
}

export interface LeafSpec {
  readonly kind?: 'vcek' | 'vlek';
  readonly tcb?: Tcb;
  readonly chipId?: Buffer;
  readonly productName?: string;
  readonly cspId?: string;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Omit these AMD extensions (by OID). */
  readonly omit?: readonly string[];
  /** The P-384 key (default: a fresh one). */
  readonly key?: KeyObject;
}

export const DEFAULT_TCB: Tcb = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };

/** A P-384 VCEK or VLEK signed by `roots.ask`, with its private key. */
export function makeLeaf(roots: FakeAmd, spec: LeafSpec = {}): { der: Buffer; key: KeyObject } {
  const kind = spec.kind ?? 'vcek';
  const kp = spec.key ? { privateKey: spec.key, publicKey: createPublicKey(spec.key) } : generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const tcb = spec.tcb ?? (roots.product === 'Turin' ? { ...DEFAULT_TCB, fmc: 1 } : DEFAULT_TCB);
  const int = (n: number) => smallInt(n);
  const ia5 = (s: string) => tlv(TAG.IA5_STRING, Buffer.from(s, 'latin1'));
  const exts: [string, Buffer][] = [
    [AMD_OID.structVersion, int(0)],
    [AMD_OID.productName, ia5(spec.productName ?? (roots.product === 'Milan' ? 'Milan-B0' : roots.product === 'Genoa' ? 'Genoa-B1' : 'Turin'))],
    ...(tcb.fmc !== undefined ? [[AMD_OID.fmcSpl, int(tcb.fmc)] as [string, Buffer]] : []),
    [AMD_OID.blSpl, int(tcb.bootloader)],
    [AMD_OID.teeSpl, int(tcb.tee)],
    ['1.3.6.1.4.1.3704.1.3.4', int(0)],
    ['1.3.6.1.4.1.3704.1.3.5', int(0)],
    ['1.3.6.1.4.1.3704.1.3.6', int(0)],
    ['1.3.6.1.4.1.3704.1.3.7', int(0)],
    [AMD_OID.snpSpl, int(tcb.snp)],
    [AMD_OID.ucodeSpl, int(tcb.microcode)],
    ...(kind === 'vcek'
      ? [[AMD_OID.hwId, spec.chipId ?? (roots.product === 'Turin' ? TEST_CHIP_ID.subarray(0, 8) : TEST_CHIP_ID)] as [string, Buffer]]
      : [[AMD_OID.cspId, tlv(TAG.IA5_STRING, Buffer.from(spec.cspId ?? 'CN=test-csp', 'latin1'))] as [string, Buffer]]),
  ];
  const der = pssCertificate({
    subject: kind === 'vcek' ? 'SEV-VCEK' : 'SEV-VLEK',
    issuer: kind === 'vcek' ? `SEV-${roots.product}` : `SEV-VLEK-${roots.product}`,
    key: kp.publicKey,
    signer: roots.askKey,
    extensions: exts.filter(([id]) => !spec.omit?.includes(id)).map(([id, v]) => ext(id, v)),
    ...(spec.notBefore ? { notBefore: spec.notBefore } : {}),
    ...(spec.notAfter ? { notAfter: spec.notAfter } : {}),
  });
  return { der, key: kp.privateKey };
}

export const TEST_CHIP_ID = createHash('sha512').update('writ test chip').digest();

export interface ReportSpec {
  readonly version?: number;
  readonly policy?: bigint;
  readonly vmpl?: number;
  readonly reportData?: Buffer;
  readonly measurement?: Buffer;
  readonly hostData?: Buffer;
  readonly tcb?: Tcb;
  readonly product?: Product;
  readonly chipId?: Buffer;
  /** SIGNING_KEY: 0 VCEK, 1 VLEK. */
  readonly signingKey?: number;
  readonly cpuid?: readonly [number, number, number];
}

function tcbBytes(t: Tcb, product: Product): Buffer {
  const b = Buffer.alloc(8);
  if (product === 'Turin') {
    b[0] = t.fmc ?? 0;
    b[1] = t.bootloader;
    b[2] = t.tee;
    b[3] = t.snp;
  } else {
    b[0] = t.bootloader;
    b[1] = t.tee;
    b[6] = t.snp;
  }
  b[7] = t.microcode;
  return b;
}

/** An ATTESTATION_REPORT laid out as the ABI defines it, signed by `key` (P-384). */
export function makeReport(key: KeyObject, r: ReportSpec = {}): Buffer {
  const product = r.product ?? 'Milan';
  const version = r.version ?? 3;
  const b = Buffer.alloc(0x4a0);
  b.writeUInt32LE(version, 0);
  b.writeUInt32LE(1, 4);
  b.writeBigUInt64LE(r.policy ?? 0x30000n, 0x08);
  b.writeUInt32LE(r.vmpl ?? 0, 0x30);
  b.writeUInt32LE(1, 0x34);
  const tcb = tcbBytes(r.tcb ?? (product === 'Turin' ? { ...DEFAULT_TCB, fmc: 1 } : DEFAULT_TCB), product);
  tcb.copy(b, 0x38);
  b.writeBigUInt64LE(1n, 0x40);
  b.writeUInt32LE((r.signingKey ?? 0) << 2, 0x48);
  (r.reportData ?? Buffer.alloc(64)).copy(b, 0x50);
  (r.measurement ?? createHash('sha384').update('writ test measurement').digest()).copy(b, 0x90);
  (r.hostData ?? Buffer.alloc(32)).copy(b, 0xc0);
  createHash('sha256').update('report id').digest().copy(b, 0x140);
  tcb.copy(b, 0x180);
  if (version >= 3) {
    const [f, m, s] = r.cpuid ?? (product === 'Milan' ? [0x19, 0x01, 0x01] : product === 'Genoa' ? [0x19, 0x11, 0x01] : [0x1a, 0x02, 0x01]);
    b[0x188] = f;
    b[0x189] = m;
    b[0x18a] = s;
  }
  (
    r.chipId ??
    ((r.signingKey ?? 0) !== 0 ? Buffer.alloc(64) : product === 'Turin' ? Buffer.concat([TEST_CHIP_ID.subarray(0, 8), Buffer.alloc(56)]) : TEST_CHIP_ID)
  ).copy(b, 0x1a0);
  tcb.copy(b, 0x1e0);
  tcb.copy(b, 0x1f0);
  return resign(b, key);
}

/** Signs (again) the first 0x2A0 bytes of `report` with `key`, writing r and s little-endian. */
export function resign(report: Buffer, key: KeyObject): Buffer {
  const out = Buffer.from(report);
  const sig = sign('sha384', out.subarray(0, 0x2a0), { key, dsaEncoding: 'ieee-p1363' });
  out.fill(0, 0x2a0);
  Buffer.from(sig.subarray(0, 48)).reverse().copy(out, 0x2a0);
  Buffer.from(sig.subarray(48))
    .reverse()
    .copy(out, 0x2a0 + 72);
  return out;
}

/** writ's evidence: report ‖ canonical certificate table. */
export function snpEvidence(report: Buffer, entries: readonly TableEntry[]): Buffer {
  return Buffer.concat([report, encodeCertTable(entries)]);
}
