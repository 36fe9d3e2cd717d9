/**
 * SEV-SNP verification against every real report in ../shared/vectors (enclave/INDEX.md and
 * ENCLAVE-INDEX.md), each at an instant inside its pinned window, with the verdict the index
 * gives; then mutated twins of the real vectors, all refused with typed errors.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseAmdCertificate, parseCertTable, hwIdExtension, encodeCertTable, type TableEntry } from '../../src/attestation/sev-snp/certs.js';
import {
  AMD_ARK_FINGERPRINTS,
  chainToPinnedArk,
  DEFAULT_SNP_POLICY,
  parseSnpEvidence,
  verifySnp,
  type SnpPolicy,
  type SnpTrust,
} from '../../src/attestation/sev-snp/verify.js';
import { parseSnpReport } from '../../src/attestation/sev-snp/report.js';
import { decodePem } from '../../src/der/pem.js';
import { AttestationError } from '../../src/errors.js';
import { HAVE_SHARED, vector } from '../helpers/shared.js';
import { makeAmdRoots, makeLeaf, makeReport, snpEvidence } from '../helpers/snp-fake.js';

const SNP = 'enclave/sev-snp/';
const certsOf = (rel: string): Buffer[] => {
  const b = vector(rel);
  return b[0] === 0x30 ? [b] : decodePem(b.toString('utf8')).map((p) => Buffer.from(p.der));
};
const roots = (name: string) => certsOf(`enclave/roots/${name}.pem`);
const PINS: SnpTrust['arkFingerprints'] = new Set(Object.values(AMD_ARK_FINGERPRINTS));
const trustOf = (chain: string): SnpTrust => ({ arkFingerprints: PINS, certificates: roots(chain) });
const LAX: SnpPolicy = { ...DEFAULT_SNP_POLICY, allowDebug: true, maxVmpl: 3 };

interface Vector {
  readonly name: string;
  readonly report: string;
  readonly leaf: string;
  readonly kind: 'vcek' | 'vlek';
  readonly chain: string;
  readonly at: string;
  /** Expected under the default policy: null = accepted, else the reason refused. */
  readonly byDefault: RegExp | null;
  /** Expected with debug and VMPL up to 3 allowed. */
  readonly lax: RegExp | null;
  readonly product: string;
}

const VECTORS: readonly Vector[] = [
  {
    name: 'go-sev-guest Milan report (debug policy)',
    report: `${SNP}gosev_attestation.bin`,
    leaf: `${SNP}gosev_vcek.testcer`,
    kind: 'vcek',
    chain: 'amd_milan_ask_ark',
    at: '2022-09-24T01:00:00Z',
    byDefault: /guest policy allows debugging \(DEBUG bit set\)/,
    lax: null,
    product: 'Milan',
  },
  {
    name: 'ENCLAVE-INDEX milan-report.bin (debug policy)',
    report: 'sev-snp/milan-report.bin',
    leaf: 'sev-snp/milan-vcek.der',
    kind: 'vcek',
    chain: 'amd_milan_ask_ark',
    at: '2022-09-24T01:00:00Z',
    byDefault: /DEBUG bit set/,
    lax: null,
    product: 'Milan',
  },
  {
    name: 'virtee Milan report',
    report: `${SNP}virtee_report_milan.derived.bin`,
    leaf: `${SNP}virtee_vcek_milan.der`,
    kind: 'vcek',
    chain: 'amd_milan_ask_ark',
    at: '2023-05-01T00:00:00Z',
    byDefault: null,
    lax: null,
    product: 'Milan',
  },
  {
    name: 'constellation Azure Milan report',
    report: `${SNP}constellation_attestation.first1184.derived.bin`,
    leaf: `${SNP}constellation_vcek.cert`,
    kind: 'vcek',
    chain: 'amd_milan_ask_ark',
    at: '2023-09-01T00:00:00Z',
    byDefault: null,
    lax: null,
    product: 'Milan',
  },
  {
    name: 'constellation AWS v3 VLEK report',
    report: `${SNP}constellation_aws_report.derived.bin`,
    leaf: `${SNP}constellation_aws_vlek.pem`,
    kind: 'vlek',
    chain: 'amd_milan_asvk_ark',
    at: '2025-06-01T00:00:00Z',
    byDefault: null,
    lax: null,
    product: 'Milan',
  },
  {
    name: 'constellation v2 VLEK report whose signature does not match its VLEK',
    report: `${SNP}constellation_vlek_report.derived.bin`,
    leaf: `${SNP}constellation_vlek.pem`,
    kind: 'vlek',
    chain: 'amd_milan_asvk_ark',
    at: '2024-01-01T00:00:00Z',
    byDefault: /report signature does not verify with the SEV-VLEK key/,
    lax: /report signature does not verify/,
    product: 'Milan',
  },
  {
    name: 'trustee Milan report',
    report: `${SNP}trustee_test-report.bin`,
    leaf: `${SNP}trustee_test-vcek.der`,
    kind: 'vcek',
    chain: 'amd_milan_ask_ark',
    at: '2024-01-01T00:00:00Z',
    byDefault: null,
    lax: null,
    product: 'Milan',
  },
  {
    name: 'trustee AWS v3 VLEK report at VMPL 1',
    report: `${SNP}trustee_test-vlek-report.bin`,
    leaf: `${SNP}trustee_test-vlek.der`,
    kind: 'vlek',
    chain: 'amd_milan_asvk_ark',
    at: '2025-06-01T00:00:00Z',
    byDefault: /requested at VMPL 1, above the maximum 0/,
    lax: null,
    product: 'Milan',
  },
  {
    name: 'trustee Azure Genoa v3 report',
    report: `${SNP}trustee_az_genoa_snp_report.derived.bin`,
    leaf: `${SNP}trustee_az_vcek-genoa.pem`,
    kind: 'vcek',
    chain: 'amd_genoa_ask_ark',
    at: '2025-06-01T00:00:00Z',
    byDefault: null,
    lax: null,
    product: 'Genoa',
  },
  {
    name: 'trustee e2e Genoa v3 report',
    report: `${SNP}trustee_e2e_genoa_snp_report.derived.bin`,
    leaf: `${SNP}trustee_e2e_genoa_vcek.derived.der`,
    kind: 'vcek',
    chain: 'amd_genoa_ask_ark',
    at: '2025-06-01T00:00:00Z',
    byDefault: null,
    lax: null,
    product: 'Genoa',
  },
];

function expectRefused(f: () => unknown, reason: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a refusal').toBeInstanceOf(AttestationError);
  expect((err as AttestationError).code).toBe('ERR_EVIDENCE_INVALID');
  expect((err as AttestationError).message).toMatch(reason);
}

const inputOf = (v: Vector, report = vector(v.report)) => ({ report, certificates: [{ kind: v.kind, der: certsOf(v.leaf)[0]! }] as TableEntry[] });
const run = (v: Vector, policy: SnpPolicy, report?: Buffer, at = v.at) => verifySnp(inputOf(v, report), trustOf(v.chain), policy, new Date(at));

describe.skipIf(!HAVE_SHARED)('SEV-SNP real vectors, classified as the index says', () => {
  it('pins the ARKs the index lists, by the SHA-256 of the files it names', () => {
    for (const [product, fp] of Object.entries(AMD_ARK_FINGERPRINTS)) {
      const ark = roots(`amd_${product.toLowerCase()}_ask_ark`)[1]!;
      expect(createHash('sha256').update(ark).digest('hex')).toBe(fp);
    }
  });

  it.each(VECTORS.map((v) => [v.name, v]))('%s: verdict under the default and the lax policy', (_n, v) => {
    for (const [policy, expected] of [
      [DEFAULT_SNP_POLICY, v.byDefault],
      [LAX, v.lax],
    ] as const) {
      if (expected === null) {
        const r = run(v, policy);
        expect(r.product).toBe(v.product);
        expect(r.signer).toBe(v.kind);
        expect(r.selectors.map((s) => s.value)).toContain(`product:${v.product}`);
      } else expectRefused(() => run(v, policy), expected);
    }
  });

  it('gives the selectors and TCB of the go-sev-guest report as the index describes it', () => {
    const r = run(VECTORS[0]!, LAX);
    const values = r.selectors.map((s) => s.value);
    expect(r.tcb).toEqual({ bootloader: 2, tee: 0, snp: 5, microcode: 68 });
    expect(values).toContain(`chip_id:${vector(`${SNP}gosev_attestation.bin`).subarray(0x1a0, 0x1e0).toString('hex')}`);
    expect(values.find((x) => x.startsWith('chip_id:'))).toMatch(/^chip_id:3ac3fe21.*8b006b5d$/);
    expect(values).toContain('policy:debug=1');
    expect(values).toContain('policy:smt=1');
    expect(values).toContain('signer:vcek');
    expect(r.platform).toMatch(/^sev_snp:chip_id:3ac3fe21/);
    // report_data = 01 02 03 04 05 then zeros.
    const rd = Buffer.alloc(64);
    rd.set([1, 2, 3, 4, 5]);
    expect(() => verifySnp(inputOf(VECTORS[0]!), trustOf('amd_milan_ask_ark'), LAX, new Date(VECTORS[0]!.at), rd)).not.toThrow();
    expectRefused(() => verifySnp(inputOf(VECTORS[0]!), trustOf('amd_milan_ask_ark'), LAX, new Date(VECTORS[0]!.at), Buffer.alloc(64)), /REPORT_DATA differs/);
  });

  it('a VLEK report names its cloud provider, not a chip', () => {
    const r = run(VECTORS[4]!, DEFAULT_SNP_POLICY);
    const values = r.selectors.map((s) => s.value);
    expect(values).toContain('signer:vlek');
    expect(values).toContain('csp_id:CN=cc-eu-west-1.amazonaws.com');
    expect(values.some((x) => x.startsWith('chip_id:'))).toBe(false);
    expect(r.platform).toBeUndefined();
    expectRefused(
      () => verifySnp(inputOf(VECTORS[4]!), trustOf('amd_milan_asvk_ark'), { ...DEFAULT_SNP_POLICY, allowVlek: false }, new Date(VECTORS[4]!.at)),
      /VLEK/,
    );
  });

  it('refuses each vector outside its certificates’ validity (expired, not yet valid)', () => {
    for (const v of VECTORS.filter((x) => x.lax === null)) {
      expectRefused(() => run(v, LAX, undefined, '2053-07-01T00:00:00Z'), /has expired/);
      expectRefused(() => run(v, LAX, undefined, '2021-01-01T00:00:00Z'), /not yet valid/);
    }
  });

  it('refuses the 1204-byte constellation attestation (a report plus 20 trailing bytes)', () => {
    expectRefused(() => run(VECTORS[3]!, LAX, vector(`${SNP}constellation_attestation.bin`)), /report: is 1204 bytes, not 1184/);
  });

  it('the Turin VCEK chains to the Turin ARK, and its 8-byte hwID is read', () => {
    const leaf = parseAmdCertificate(vector(`${SNP}virtee_vcek_turin.der`), 'VCEK');
    const pool = roots('amd_turin_ask_ark').map((d) => parseAmdCertificate(d, 'root'));
    expect(chainToPinnedArk(leaf, pool, { arkFingerprints: PINS, certificates: [] }).fp).toBe(AMD_ARK_FINGERPRINTS.Turin);
    expect(hwIdExtension(leaf, 'VCEK')).toHaveLength(8);
    // Against Milan's chain it has no issuer.
    expectRefused(
      () =>
        chainToPinnedArk(
          leaf,
          roots('amd_milan_ask_ark').map((d) => parseAmdCertificate(d, 'root')),
          { arkFingerprints: PINS, certificates: [] },
        ),
      /its issuer is CN=SEV-Turin/,
    );
  });

  it('reads both hwID encodings of the synthetic trustee VCEKs, and refuses their invalid signatures', () => {
    for (const f of ['trustee_test-vcek-invalid-legacy.der', 'trustee_test-vcek-invalid-new.der']) {
      const leaf = parseAmdCertificate(vector(`${SNP}${f}`), 'VCEK');
      expect(hwIdExtension(leaf, 'VCEK')).toEqual(Buffer.from([...Array(64).keys()]));
      const pool = roots('amd_milan_ask_ark').map((d) => parseAmdCertificate(d, 'root'));
      expectRefused(() => chainToPinnedArk(leaf, pool, { arkFingerprints: PINS, certificates: [] }), /no certificate given signed/);
    }
  });
});

describe.skipIf(!HAVE_SHARED)('SEV-SNP mutated twins of real vectors', () => {
  const accepted = VECTORS.filter((v) => v.lax === null);

  it('refuses every single-bit flip of every byte of the signed region (two vectors exhaustively: VCEK and VLEK)', () => {
    for (const v of [VECTORS[2]!, VECTORS[4]!]) {
      const good = vector(v.report);
      for (let i = 0; i < 0x2a0; i++) {
        const bad = Buffer.from(good);
        bad[i]! ^= 1 << (i % 8);
        expectRefused(() => run(v, LAX, bad), /attestation\(sev_snp\)/);
      }
    }
  });

  // One offset in every field of the signed region, and in the signature.
  const FIELDS: [string, number][] = [
    ['version', 0x00],
    ['guest_svn', 0x04],
    ['policy', 0x08],
    ['family_id', 0x10],
    ['image_id', 0x20],
    ['vmpl', 0x30],
    ['signature_algo', 0x34],
    ['current_tcb', 0x38],
    ['platform_info', 0x40],
    ['signer_info', 0x48],
    ['reserved 0x4c', 0x4c],
    ['report_data', 0x50],
    ['measurement', 0x90],
    ['host_data', 0xc0],
    ['id_key_digest', 0xe0],
    ['author_key_digest', 0x110],
    ['report_id', 0x140],
    ['report_id_ma', 0x160],
    ['reported_tcb', 0x180],
    ['cpuid / reserved', 0x188],
    ['reserved 0x18b', 0x18b],
    ['chip_id', 0x1a0],
    ['committed_tcb', 0x1e0],
    ['current version', 0x1e8],
    ['committed version', 0x1ec],
    ['launch_tcb', 0x1f0],
    ['reserved 0x1f8', 0x1f8],
    ['reserved 0x29f', 0x29f],
    ['signature r', 0x2a0],
    ['signature r high bytes', 0x2a0 + 50],
    ['signature s', 0x2e8],
    ['signature s high bytes', 0x2e8 + 60],
    ['signature reserved', 0x400],
  ];
  it.each(accepted.map((v) => [v.name, v]))('%s: one flip in every field, refused', (_n, v) => {
    const good = vector(v.report);
    for (const [, off] of FIELDS) {
      for (const mask of [0x01, 0x80]) {
        const bad = Buffer.from(good);
        bad[off]! ^= mask;
        expectRefused(() => run(v, LAX, bad), /attestation\(sev_snp\)/);
      }
    }
  });

  it('refuses truncation and trailing bytes, as a report and as evidence', () => {
    const v = VECTORS[2]!;
    const good = vector(v.report);
    expectRefused(() => run(v, LAX, good.subarray(0, 1183)), /is 1183 bytes/);
    expectRefused(() => run(v, LAX, Buffer.concat([good, Buffer.alloc(1)])), /is 1185 bytes/);
    const ev = snpEvidence(good, [{ kind: 'vcek', der: certsOf(v.leaf)[0]! }]);
    expect(parseSnpEvidence(ev).certificates).toHaveLength(1);
    expectRefused(() => parseSnpEvidence(Buffer.concat([ev, Buffer.alloc(1)])), /1 trailing bytes/);
    expectRefused(() => parseSnpEvidence(ev.subarray(0, ev.length - 1)), /outside the certificate data/);
    expectRefused(() => parseSnpEvidence(good), /a certificate table expected/);
    for (let cut = 1185; cut < 1184 + 48; cut += 7) expectRefused(() => parseSnpEvidence(ev.subarray(0, cut)), /certificate table/);
  });

  it('refuses a real VCEK of the same product that did not sign the report', () => {
    const v = VECTORS[6]!;
    const leaf = parseAmdCertificate(certsOf(v.leaf)[0]!, 'VCEK');
    expect(leaf.commonName).toBe('SEV-VCEK');
    // Another real VCEK for the same product: chain valid, key and TCB wrong.
    expectRefused(
      () =>
        verifySnp({ report: vector(v.report), certificates: [{ kind: 'vcek', der: certsOf(VECTORS[2]!.leaf)[0]! }] }, trustOf(v.chain), LAX, new Date(v.at)),
      /report signature does not verify/,
    );
  });

  it('refuses a chain with the intermediate of another product or key type', () => {
    const v = VECTORS[2]!;
    for (const chain of ['amd_genoa_ask_ark', 'amd_turin_ask_ark', 'amd_milan_asvk_ark'])
      expectRefused(() => verifySnp(inputOf(v), trustOf(chain), LAX, new Date(v.at)), /no certificate given signed the SEV-VCEK certificate/);
    // The VLEK report given the VCEK chain file (ASK, not ASVK).
    expectRefused(() => verifySnp(inputOf(VECTORS[4]!), trustOf('amd_milan_ask_ark'), LAX, new Date(VECTORS[4]!.at)), /no certificate given signed/);
    // Genoa's chain for a Milan VCEK, even with Milan's ARK also present: the ASK must be Milan's.
    expectRefused(
      () =>
        verifySnp(inputOf(v), { arkFingerprints: PINS, certificates: [...roots('amd_genoa_ask_ark'), roots('amd_milan_ask_ark')[1]!] }, LAX, new Date(v.at)),
      /no certificate given signed/,
    );
  });

  it('refuses a self-signed "ARK-Milan" that is not the pinned one, given as trusted or inside the evidence', () => {
    const fake = makeAmdRoots('Milan');
    const leaf = makeLeaf(fake);
    const report = makeReport(leaf.key);
    const input = {
      report,
      certificates: [
        { kind: 'vcek', der: leaf.der },
        { kind: 'ask', der: fake.ask },
        { kind: 'ark', der: fake.ark },
      ] as TableEntry[],
    };
    const at = new Date('2025-01-01T00:00:00Z');
    expectRefused(() => verifySnp(input, { arkFingerprints: PINS, certificates: [] }, LAX, at), /self-signed ARK .* whose fingerprint is not pinned/);
    expectRefused(() => verifySnp(input, { arkFingerprints: PINS, certificates: [fake.ask, fake.ark] }, LAX, at), /not pinned/);
    // The same evidence passes once its ARK is the one pinned: the pin is the only difference.
    expect(verifySnp(input, { arkFingerprints: new Set([fake.arkFingerprint]), certificates: [] }, LAX, at).product).toBe('Milan');
    // The real pinned ARK with the fake ASK: the ASK's signature fails.
    expectRefused(
      () => verifySnp({ ...input, certificates: [input.certificates[0]!, input.certificates[1]!] }, trustOf('amd_milan_ask_ark'), LAX, at),
      /no self-signed ARK given signed CN=SEV-Milan/,
    );
  });

  it('refuses a real VCEK beside the real ARK copied into the evidence when the pins exclude it', () => {
    const v = VECTORS[2]!;
    const [ask, ark] = roots('amd_milan_ask_ark');
    const input = {
      report: vector(v.report),
      certificates: [
        { kind: 'vcek', der: certsOf(v.leaf)[0]! },
        { kind: 'ask', der: ask! },
        { kind: 'ark', der: ark! },
      ] as TableEntry[],
    };
    // Pinned: the ARK inside the evidence is the pinned one byte for byte, so it may serve.
    expect(verifySnp(input, { arkFingerprints: PINS, certificates: [] }, LAX, new Date(v.at)).arkFingerprint).toBe(AMD_ARK_FINGERPRINTS.Milan);
    expectRefused(() => verifySnp(input, { arkFingerprints: new Set([AMD_ARK_FINGERPRINTS.Genoa]), certificates: [] }, LAX, new Date(v.at)), /not pinned/);
  });

  it('refuses corrupted certificates (the index: VCEK buf[40] ^= 0xff, [42] += 1) without crashing', () => {
    const v = VECTORS[2]!;
    const der = certsOf(v.leaf)[0]!;
    for (let i = 0; i < der.length; i += 3) {
      const bad = Buffer.from(der);
      bad[i]! ^= 0xff;
      expectRefused(
        () => verifySnp({ report: vector(v.report), certificates: [{ kind: 'vcek', der: bad }] }, trustOf(v.chain), LAX, new Date(v.at)),
        /attestation\(sev_snp\)/,
      );
    }
    const ask = roots('amd_milan_ask_ark')[0]!;
    for (let i = 0; i < ask.length; i += 17) {
      const bad = Buffer.from(ask);
      bad[i]! ^= 0x01;
      expectRefused(
        () => verifySnp(inputOf(v), { arkFingerprints: PINS, certificates: [bad, roots('amd_milan_ask_ark')[1]!] }, LAX, new Date(v.at)),
        /attestation\(sev_snp\)/,
      );
    }
  });

  it('refuses malformed certificate tables', () => {
    const der = certsOf(VECTORS[2]!.leaf)[0]!;
    const good = encodeCertTable([{ kind: 'vcek', der }]);
    const dup = encodeCertTable([
      { kind: 'vcek', der },
      { kind: 'vcek', der },
    ]);
    expectRefused(() => parseCertTable(dup, true), /appears twice/);
    const unknown = Buffer.from(good);
    unknown[0]! ^= 1;
    expectRefused(() => parseCertTable(unknown, true), /unknown GUID/);
    expect(parseCertTable(unknown, false)).toEqual([]);
    // A kernel auxblob may be zero padded, never padded with anything else.
    expect(parseCertTable(Buffer.concat([good, Buffer.alloc(4096 - good.length)]), false)).toHaveLength(1);
    expectRefused(() => parseCertTable(Buffer.concat([good, Buffer.from([0, 1])]), false), /non-zero bytes outside/);
    const overlap = Buffer.from(
      encodeCertTable([
        { kind: 'vcek', der },
        { kind: 'ask', der },
      ]),
    );
    overlap.writeUInt32LE(overlap.readUInt32LE(16), 24 + 16);
    expectRefused(() => parseCertTable(overlap, false), /overlap/);
    const before = Buffer.from(good);
    before.writeUInt32LE(8, 16);
    expectRefused(() => parseCertTable(before, false), /outside the certificate data/);
    expectRefused(() => parseCertTable(Buffer.alloc(23), false), /truncated header/);
  });

  it('parses every real report strictly, and reads version 3 CPUID fields', () => {
    for (const v of VECTORS) expect(() => parseSnpReport(vector(v.report))).not.toThrow();
    expect(parseSnpReport(vector(`${SNP}trustee_e2e_genoa_snp_report.derived.bin`)).cpuid).toEqual({ family: 0x19, model: 0xa0, stepping: 2 });
    expect(parseSnpReport(vector(`${SNP}gosev_attestation.bin`)).cpuid).toBeUndefined();
  });
});
