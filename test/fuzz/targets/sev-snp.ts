/** Target: SEV-SNP evidence (src/attestation/sev-snp/): the report, the certificate table, AMD certificates, the chain and the report signature. */
import { parseCertTable } from '../../../src/attestation/sev-snp/certs.js';
import { DEFAULT_SNP_POLICY, parseSnpEvidence, verifySnp } from '../../../src/attestation/sev-snp/verify.js';
import { REPORT_SIZE } from '../../../src/attestation/sev-snp/report.js';
import { createHash } from 'node:crypto';
import type { FuzzTarget } from '../engine/contract.js';
import { AT, b64, ecKey, rsaKey, stable, unb64 } from '../fixtures.js';
import { makeAmdRoots, makeLeaf, makeReport, snpEvidence } from '../../helpers/snp-fake.js';

/** REPORT_DATA the valid evidence carries (as B ‖ 0^32). */
const REPORT_DATA = Buffer.concat([createHash('sha256').update('writ-fuzz-snp-binding').digest(), Buffer.alloc(32)]);

export const snpEvidenceTarget: FuzzTarget = {
  name: 'sev-snp',
  signed: true,
  parsers:
    'src/attestation/sev-snp/verify.ts: parseSnpEvidence, verifySnp (report.ts parseSnpReport, certs.ts parseCertTable, parseAmdCertificate, RSASSA-PSS chain) with the ARK of the seed pinned',
  contract: 'accepts only the valid evidence, byte for byte; else throws a WritError (ERR_EVIDENCE_INVALID)',
  maxLen: 8192,
  sources: ['src/attestation/sev-snp/report.ts', 'src/attestation/sev-snp/certs.ts', 'src/attestation/sev-snp/verify.ts'],
  setup: () => {
    // One RSA key serves as ARK and ASK (RSA keys cannot be derived from a label); the names and signatures are still a three-link chain.
    const signed = stable('sev-snp: a report over REPORT_DATA with VCEK, ASK and ARK', () => {
      const roots = makeAmdRoots('Milan', 'vcek', { arkKey: rsaKey(), askKey: rsaKey() });
      const leaf = makeLeaf(roots, { key: ecKey('sev-snp vcek', 'P-384') });
      const report = makeReport(leaf.key, { reportData: REPORT_DATA });
      return [
        b64(
          snpEvidence(report, [
            { kind: 'vcek', der: leaf.der },
            { kind: 'ask', der: roots.ask },
            { kind: 'ark', der: roots.ark },
          ]),
        ),
      ];
    }).map(unb64);
    const ark = parseCertTable(signed[0]!.subarray(REPORT_SIZE), true).find((e) => e.kind === 'ark')!.der;
    const trust = { arkFingerprints: new Set([createHash('sha256').update(ark).digest('hex')]), certificates: [] };
    const valid = new Set(signed.map((b) => b.toString('hex')));
    return {
      seeds: signed,
      isValid: (data) => valid.has(data.toString('hex')),
      run(data) {
        verifySnp(parseSnpEvidence(data), trust, DEFAULT_SNP_POLICY, AT, REPORT_DATA);
        return 'accepted';
      },
    };
  },
};
