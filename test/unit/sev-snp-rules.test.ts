/**
 * SEV-SNP rules the real vectors cannot reach, with synthetic evidence in the real formats made
 * at test time (test/helpers/snp-fake.ts): TCB and CHIP_ID consistency, product naming, the
 * platform policy, report layout versions, and the settings syntax.
 */
import { describe, expect, it } from 'vitest';
import { AMD_OID, type TableEntry } from '../../src/attestation/sev-snp/certs.js';
import { parseSnpReport } from '../../src/attestation/sev-snp/report.js';
import { DEFAULT_SNP_POLICY, parseTcbSpec, verifySnp, type Product, type SnpPolicy, type SnpTrust } from '../../src/attestation/sev-snp/verify.js';
import { AttestationError } from '../../src/errors.js';
import { DEFAULT_TCB, makeAmdRoots, makeLeaf, makeReport, resign, TEST_CHIP_ID, type FakeAmd, type LeafSpec, type ReportSpec } from '../helpers/snp-fake.js';

const AT = new Date('2025-01-01T00:00:00Z');
const rootsBy = new Map<string, FakeAmd>();
const rootsFor = (p: Product, kind: 'vcek' | 'vlek' = 'vcek') => {
  const k = `${p}/${kind}`;
  if (!rootsBy.has(k)) rootsBy.set(k, makeAmdRoots(p, kind));
  return rootsBy.get(k)!;
};
const trust = (r: FakeAmd): SnpTrust => ({ arkFingerprints: new Set([r.arkFingerprint]), certificates: [r.ask, r.ark] });

function evidence(leafSpec: LeafSpec = {}, reportSpec: ReportSpec = {}, product: Product = 'Milan') {
  const kind = leafSpec.kind ?? 'vcek';
  const roots = rootsFor(product, kind);
  const leaf = makeLeaf(roots, leafSpec);
  const report = makeReport(leaf.key, { product, ...(kind === 'vlek' ? { signingKey: 1 } : {}), ...reportSpec });
  return { roots, leaf, report, input: { report, certificates: [{ kind, der: leaf.der }] as TableEntry[] } };
}

function refused(f: () => unknown, reason: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a refusal').toBeInstanceOf(AttestationError);
  expect((err as AttestationError).message).toMatch(reason);
}

const check = (e: ReturnType<typeof evidence>, policy: SnpPolicy = DEFAULT_SNP_POLICY, rd?: Buffer) => verifySnp(e.input, trust(e.roots), policy, AT, rd);

describe('SEV-SNP verification rules (synthetic evidence)', () => {
  it('accepts synthetic evidence of each product, with selectors from the report', () => {
    for (const p of ['Milan', 'Genoa', 'Turin'] as const) {
      const e = evidence({}, {}, p);
      const r = check(e);
      expect(r.product).toBe(p);
      const values = r.selectors.map((s) => s.value);
      expect(values).toContain(`product:${p}`);
      expect(values).toContain(`chip_id:${e.report.subarray(0x1a0, 0x1e0).toString('hex')}`);
      expect(values).toContain(`measurement:${e.report.subarray(0x90, 0xc0).toString('hex')}`);
      expect(values).toContain('policy:debug=0');
      expect(r.tcb).toEqual(p === 'Turin' ? { ...DEFAULT_TCB, fmc: 1 } : DEFAULT_TCB);
    }
  });

  it('accepts report versions 2 to 5, and refuses 1 and 6', () => {
    for (const version of [2, 3, 4, 5]) expect(check(evidence({}, { version })).report.version).toBe(version);
    for (const version of [1, 6]) refused(() => check(evidence({}, { version })), new RegExp(`version ${version} is not supported`));
    // Version 5's mitigation vectors are fields; in version 4 the same bytes are reserved.
    const e5 = evidence({}, { version: 5 });
    const withMit = Buffer.from(e5.report);
    withMit[0x1f8] = 1;
    withMit[0x200] = 1;
    expect(check({ ...e5, input: { ...e5.input, report: resign(withMit, e5.leaf.key) } }).report.version).toBe(5);
    const e4 = evidence({}, { version: 4 });
    const bad = Buffer.from(e4.report);
    bad[0x1f8] = 1;
    refused(() => check({ ...e4, input: { ...e4.input, report: resign(bad, e4.leaf.key) } }), /reserved bytes 0x1f8/);
  });

  it('refuses a reported TCB other than the one the VCEK was issued for, or below the minimum', () => {
    const e = evidence({ tcb: { ...DEFAULT_TCB, microcode: 116 } });
    refused(() => check(e), /reported TCB microcode 115 differs from the SEV-VCEK's 116/);
    const ok = evidence();
    expect(() => check(ok, { ...DEFAULT_SNP_POLICY, minimumTcb: parseTcbSpec('bootloader=3,snp=8,microcode=115') })).not.toThrow();
    refused(() => check(ok, { ...DEFAULT_SNP_POLICY, minimumTcb: parseTcbSpec('snp=9') }), /reported TCB snp 8 is below the minimum 9/);
    refused(() => check(evidence({ omit: [AMD_OID.snpSpl] })), /has no snp SPL extension/);
    // Turin's layout puts FMC first; its certificate must carry it.
    refused(() => check(evidence({ tcb: { ...DEFAULT_TCB, fmc: 2 } }, {}, 'Turin')), /reported TCB fmc 1 differs/);
  });

  it('refuses CHIP_ID other than the hwID, masked, or a VCEK without a hwID', () => {
    const other = Buffer.from(TEST_CHIP_ID);
    other[63]! ^= 1;
    refused(() => check(evidence({ chipId: other })), /CHIP_ID differs from the VCEK's hwID/);
    refused(() => check(evidence({}, { chipId: Buffer.alloc(64) })), /CHIP_ID is masked/);
    refused(() => check(evidence({ omit: [AMD_OID.hwId] })), /no hwID extension/);
    // Turin: 8-byte hwID, the rest of CHIP_ID zero.
    const chip8 = Buffer.concat([TEST_CHIP_ID.subarray(0, 8), Buffer.alloc(56)]);
    expect(check(evidence({ chipId: TEST_CHIP_ID.subarray(0, 8) }, { chipId: chip8 }, 'Turin')).product).toBe('Turin');
    refused(() => check(evidence({ chipId: TEST_CHIP_ID.subarray(0, 8) }, { chipId: TEST_CHIP_ID }, 'Turin')), /CHIP_ID differs/);
    // An 8-byte hwID is Turin's only.
    refused(() => check(evidence({ chipId: TEST_CHIP_ID.subarray(0, 8) }, { chipId: chip8 })), /hwID is 8 bytes, not 64 as on Milan/);
  });

  it('refuses a product named inconsistently: VCEK productName, report CPUID', () => {
    refused(() => check(evidence({ productName: 'Genoa-B1' })), /is for product Genoa-B1, but the chain is Milan's/);
    refused(() => check(evidence({}, { cpuid: [0x19, 0x11, 0x01] })), /CPUID \(family 0x19 model 0x11\) names Genoa, but the chain is Milan's/);
    refused(() => check(evidence({}, { cpuid: [0x17, 0x31, 0x00] })), /names no known SEV-SNP product/);
    refused(() => check(evidence(), { ...DEFAULT_SNP_POLICY, products: ['Genoa'] }), /product Milan is not accepted/);
    const odd = makeAmdRoots('Milan', 'vcek', { arkName: 'ARK-Naples' });
    const leaf = makeLeaf({ ...odd, product: 'Milan' });
    refused(
      () => verifySnp({ report: makeReport(leaf.key), certificates: [{ kind: 'vcek', der: leaf.der }] }, trust(odd), DEFAULT_SNP_POLICY, AT),
      /CN=ARK-Naples is not ARK-Milan/,
    );
  });

  it('applies the guest policy: debug, SMT, migration agent, VMPL', () => {
    refused(() => check(evidence({}, { policy: 0x30000n | (1n << 19n) })), /allows debugging/);
    expect(() => check(evidence({}, { policy: 0x30000n | (1n << 19n) }), { ...DEFAULT_SNP_POLICY, allowDebug: true })).not.toThrow();
    refused(() => check(evidence(), { ...DEFAULT_SNP_POLICY, allowSmt: false }), /allows SMT/);
    expect(check(evidence({}, { policy: 0x20000n }), { ...DEFAULT_SNP_POLICY, allowSmt: false }).selectors.map((s) => s.value)).toContain('policy:smt=0');
    refused(() => check(evidence({}, { policy: 0x30000n | (1n << 18n) })), /migration agent/);
    refused(() => check(evidence({}, { vmpl: 2 }), { ...DEFAULT_SNP_POLICY, maxVmpl: 1 }), /VMPL 2, above the maximum 1/);
    refused(() => check(evidence({}, { vmpl: 4 })), /VMPL 4 is not 0..3/);
    refused(() => check(evidence({}, { policy: 0x10000n })), /policy bit 17 is reserved and must be 1/);
    refused(() => check(evidence({}, { policy: 0x30000n | (1n << 40n) })), /reserved bits 26..63/);
  });

  it('checks the report data exactly', () => {
    const rd = Buffer.alloc(64, 7);
    const e = evidence({}, { reportData: rd });
    expect(() => check(e, DEFAULT_SNP_POLICY, rd)).not.toThrow();
    refused(() => check(e, DEFAULT_SNP_POLICY, Buffer.alloc(64, 8)), /REPORT_DATA differs/);
  });

  it('refuses a signing key field other than VCEK/VLEK, or one that does not match the certificate', () => {
    refused(() => check(evidence({}, { signingKey: 7 })), /not signed \(SIGNING_KEY is NONE\)/);
    refused(() => check(evidence({}, { signingKey: 3 })), /SIGNING_KEY 3 is reserved/);
    // The report claims the VLEK while only a VCEK came with it.
    refused(() => check(evidence({}, { signingKey: 1, chipId: TEST_CHIP_ID })), /no SEV-VLEK certificate came with the report/);
    const vlek = evidence({ kind: 'vlek', cspId: 'CN=writ-test-cloud' });
    expect(check(vlek).selectors.map((s) => s.value)).toContain('csp_id:CN=writ-test-cloud');
    expect(check(evidence({ kind: 'vlek', cspId: 'CN=a cloud 100%' })).selectors.map((s) => s.value)).toContain('csp_id:CN=a%20cloud%20100%25');
  });

  it('takes loose certificates (a --certs file) as leaf or intermediate candidates, and refuses two different leaves', () => {
    const e = evidence();
    const r = verifySnp(
      { report: e.report, certificates: [], looseCertificates: [e.leaf.der, e.roots.ask] },
      { arkFingerprints: new Set([e.roots.arkFingerprint]), certificates: [e.roots.ark] },
      DEFAULT_SNP_POLICY,
      AT,
    );
    expect(r.product).toBe('Milan');
    const other = makeLeaf(e.roots);
    refused(
      () =>
        verifySnp(
          { report: e.report, certificates: [{ kind: 'vcek', der: e.leaf.der }], looseCertificates: [other.der] },
          trust(e.roots),
          DEFAULT_SNP_POLICY,
          AT,
        ),
      /more than one SEV-VCEK/,
    );
  });

  it('checks each certificate validity at the instant', () => {
    const e = evidence({ notBefore: new Date('2025-06-01T00:00:00Z') });
    refused(() => check(e), /SEV-VCEK is not yet valid at 2025-01-01/);
    const x = evidence({ notAfter: new Date('2024-06-01T00:00:00Z') });
    refused(() => check(x), /SEV-VCEK has expired/);
  });

  it('reuses a resolved chain but checks validity and the report on every use', () => {
    const e = evidence();
    const t = trust(e.roots);
    expect(verifySnp(e.input, t, DEFAULT_SNP_POLICY, AT).product).toBe('Milan');
    refused(() => verifySnp(e.input, t, DEFAULT_SNP_POLICY, new Date('2050-01-01T00:00:00Z')), /has expired/);
    const bad = Buffer.from(e.report);
    bad[0x90]! ^= 1;
    refused(() => verifySnp({ ...e.input, report: bad }, t, DEFAULT_SNP_POLICY, AT), /report signature does not verify/);
    expect(verifySnp(e.input, t, DEFAULT_SNP_POLICY, AT).product).toBe('Milan');
  });

  it('parses minimum TCB specs strictly', () => {
    expect(parseTcbSpec('')).toEqual({ bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: 0 });
    expect(parseTcbSpec('bootloader=2, snp=5,microcode=68')).toEqual({ bootloader: 2, tee: 0, snp: 5, microcode: 68, fmc: 0 });
    for (const bad of ['snp=256', 'snp=1,snp=2', 'ucode=1', 'snp', 'snp=-1']) expect(() => parseTcbSpec(bad), bad).toThrow();
  });

  it('parses the report fields at the ABI offsets', () => {
    const e = evidence({}, { vmpl: 0, hostData: Buffer.alloc(32, 0xab) });
    const r = parseSnpReport(e.report);
    expect(r.hostData).toEqual(Buffer.alloc(32, 0xab));
    expect(r.cpuid).toEqual({ family: 0x19, model: 0x01, stepping: 0x01 });
    expect(r.signingKey).toBe('vcek');
    expect(r.policy).toBe(0x30000n);
  });
});
