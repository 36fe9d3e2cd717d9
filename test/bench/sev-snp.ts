/**
 * `make bench`, SEV-SNP: the relying party's (and the issuer's) verification of one report with
 * its certificate table, warm, against the raw signature floor measured in the same run (one
 * ECDSA P-384 SHA-384 verification of the 672 signed bytes, IEEE P1363). The evidence is
 * synthetic in the real format with AMD's key sizes (RSA-4096 ARK and ASK, P-384 VCEK).
 */
import { verify } from 'node:crypto';
import { snpPlugin, trustFromChain } from '../../src/attestation/sev-snp/plugin.js';
import { DEFAULT_SNP_POLICY } from '../../src/attestation/sev-snp/verify.js';
import { makeAmdRoots, makeLeaf, makeReport, snpEvidence } from '../helpers/snp-fake.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;

export async function snpBench(record: Record, rate: (fn: () => unknown) => number): Promise<void> {
  const roots = makeAmdRoots('Milan', 'vcek', { rsaBits: 4096 });
  const leaf = makeLeaf(roots);
  const binding = Buffer.alloc(32, 0x42);
  const report = makeReport(leaf.key, { reportData: Buffer.concat([binding, Buffer.alloc(32)]) });
  const ev = snpEvidence(report, [
    { kind: 'vcek', der: leaf.der },
    { kind: 'ask', der: roots.ask },
    { kind: 'ark', der: roots.ark },
  ]);
  const rv = snpPlugin.relyingParty!.reverifier({ trust: trustFromChain([roots.ask, roots.ark]), policy: DEFAULT_SNP_POLICY });
  const ctx = { binding, agentJkt: '', at: new Date() };
  rv.reverify(ev, ctx);
  const signed = report.subarray(0, 0x2a0);
  const r = Buffer.from(report.subarray(0x2a0, 0x2a0 + 48)).reverse();
  const s = Buffer.from(report.subarray(0x2e8, 0x2e8 + 48)).reverse();
  const sig = Buffer.concat([r, s]);
  const key = leaf.key;
  const pub = (await import('node:crypto')).createPublicKey(key);
  if (!verify('sha384', signed, { key: pub, dsaEncoding: 'ieee-p1363' }, sig)) throw new Error('bench: floor signature does not verify');
  const floor = rate(() => verify('sha384', signed, { key: pub, dsaEncoding: 'ieee-p1363' }, sig));
  const value = rate(() => rv.reverify(ev, ctx));
  record('sev-snp verify (report + VCEK/ASK/ARK, warm)', value, 'ops/s', floor);
}
