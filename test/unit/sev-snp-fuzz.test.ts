/**
 * Property tests of the SEV-SNP parsers of untrusted bytes: arbitrary input and single-byte
 * mutations anywhere in writ's evidence (report, certificate table, each certificate) are
 * refused with a typed error, never a crash and never accepted.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAmdCertificate, parseCertTable } from '../../src/attestation/sev-snp/certs.js';
import { parseSnpReport, REPORT_SIZE } from '../../src/attestation/sev-snp/report.js';
import { DEFAULT_SNP_POLICY, parseSnpEvidence, verifySnp } from '../../src/attestation/sev-snp/verify.js';
import { AttestationError } from '../../src/errors.js';
import { makeAmdRoots, makeLeaf, makeReport, snpEvidence } from '../helpers/snp-fake.js';

const AT = new Date('2025-01-01T00:00:00Z');
const roots = makeAmdRoots('Milan');
const leaf = makeLeaf(roots);
const rd = Buffer.alloc(64, 0x11);
const evidence = snpEvidence(makeReport(leaf.key, { reportData: rd }), [
  { kind: 'vcek', der: leaf.der },
  { kind: 'ask', der: roots.ask },
  { kind: 'ark', der: roots.ark },
]);
const trust = { arkFingerprints: new Set([roots.arkFingerprint]), certificates: [] };
const check = (ev: Buffer) => verifySnp(parseSnpEvidence(ev), trust, DEFAULT_SNP_POLICY, AT, rd);

/** Runs f; true when it threw an AttestationError, false when it returned; rethrows anything else. */
function refusedTyped(f: () => unknown): boolean {
  try {
    f();
    return false;
  } catch (e) {
    if (e instanceof AttestationError) return true;
    throw e;
  }
}

describe('SEV-SNP parsers under arbitrary and mutated input', () => {
  it('the unmutated evidence is accepted (the properties below are not vacuous)', () => {
    expect(check(evidence).product).toBe('Milan');
  });

  it('refuses arbitrary bytes as a report, a certificate table, a certificate or evidence, with typed errors', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (a) => {
        const b = Buffer.from(a);
        expect(refusedTyped(() => parseSnpReport(b))).toBe(true);
        refusedTyped(() => parseCertTable(b, false));
        refusedTyped(() => parseCertTable(b, true));
        expect(refusedTyped(() => parseAmdCertificate(b, 'fuzz'))).toBe(true);
        expect(refusedTyped(() => check(b))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses arbitrary bytes after a valid report (as a certificate table)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 2000 }), (a) => {
        expect(refusedTyped(() => check(Buffer.concat([evidence.subarray(0, REPORT_SIZE), Buffer.from(a)])))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses every single-byte mutation anywhere in the evidence (sampled)', () => {
    fc.assert(
      fc.property(fc.nat({ max: evidence.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const bad = Buffer.from(evidence);
        bad[i]! ^= x;
        expect(refusedTyped(() => check(bad))).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('refuses every truncation and every extension of the evidence', () => {
    for (let n = 0; n < evidence.length; n += 97) expect(refusedTyped(() => check(evidence.subarray(0, n)))).toBe(true);
    for (const tail of [Buffer.alloc(1), Buffer.alloc(24), Buffer.from([0xff])]) expect(refusedTyped(() => check(Buffer.concat([evidence, tail])))).toBe(true);
  });
});
