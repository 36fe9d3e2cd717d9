/**
 * The sev_snp plug-in's settings (`attestation.sev_snp`) and its agent side: evidence from a
 * fake configfs-tsm kernel's outblob and auxblob, or from a KDS certificate file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeCertTable, parseCertTable } from '../../src/attestation/sev-snp/certs.js';
import { parseSnpSettings, snpPlugin } from '../../src/attestation/sev-snp/plugin.js';
import { classifyCertificates, snpEvidenceFrom, snpProducer } from '../../src/attestation/sev-snp/producer.js';
import { AMD_ARK_FINGERPRINTS, parseSnpEvidence } from '../../src/attestation/sev-snp/verify.js';
import { Section } from '../../src/config/section.js';
import { encodePem } from '../../src/der/pem.js';
import { AttestationError } from '../../src/errors.js';
import { startFakeTsm } from '../helpers/fake-tsm.js';
import { makeAmdRoots, makeLeaf, makeReport } from '../helpers/snp-fake.js';

const dir = mkdtempSync(join(tmpdir(), 'writ-snp-plugin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const roots = makeAmdRoots('Milan');
const leaf = makeLeaf(roots);

function settings(raw: Record<string, unknown>) {
  const problems: string[] = [];
  const s = parseSnpSettings(Section.of('attestation.sev_snp', raw, problems));
  return { s, problems };
}

describe('attestation.sev_snp settings', () => {
  it('defaults to the shipped ARK pins and a policy that refuses debug guests', () => {
    const { s, problems } = settings({});
    expect(problems).toEqual([]);
    expect([...s.trust.arkFingerprints].sort()).toEqual(Object.values(AMD_ARK_FINGERPRINTS).sort());
    expect(s.policy).toMatchObject({ allowDebug: false, allowSmt: true, allowMigrationAgent: false, maxVmpl: 0, allowVlek: true });
    // No TCB floor by default: the startup line says so, and how to set one.
    expect(snpPlugin.describe!(s)).toMatch(/minimum TCB .* \(none: any firmware AMD signed for this chip is accepted; set minimum_tcb\)$/);
    expect(snpPlugin.describe!(settings({ minimum_tcb: 'snp=8' }).s)).not.toMatch(/none/);
  });

  it('pins the self-signed certificates of a KDS chain file', () => {
    writeFileSync(join(dir, 'chain.pem'), roots.chainPem);
    const { s, problems } = settings({ roots: [join(dir, 'chain.pem')], max_vmpl: 1, minimum_tcb: 'snp=8', products: ['Milan'] });
    expect(problems).toEqual([]);
    expect([...s.trust.arkFingerprints]).toEqual([roots.arkFingerprint]);
    expect(s.trust.certificates).toHaveLength(2);
    expect(s.policy.minimumTcb.snp).toBe(8);
    expect(s.policy.products).toEqual(['Milan']);
  });

  it('reports every problem at once', () => {
    writeFileSync(join(dir, 'ask-only.pem'), encodePem('CERTIFICATE', roots.ask));
    const { problems } = settings({
      colour: 'red',
      roots: [join(dir, 'ask-only.pem')],
      ark_fingerprints: ['zz'],
      minimum_tcb: 'snp=300',
      products: ['Naples'],
      max_vmpl: 4,
      allow_debug: 'yes',
    });
    const text = problems.join('\n');
    expect(text).toContain('unknown key attestation.sev_snp.colour');
    expect(text).toContain('attestation.sev_snp.roots and attestation.sev_snp.ark_fingerprints: give one of them');
    expect(text).toMatch(/attestation\.sev_snp\.roots: .*holds no self-signed ARK/);
    expect(text).toMatch(/attestation\.sev_snp\.minimum_tcb: "snp=300" is not NAME=0\.\.255/);
    expect(text).toContain('attestation.sev_snp.products: "Naples" is not one of Milan, Genoa, Turin');
    expect(text).toContain('attestation.sev_snp.max_vmpl must be an integer 0..3');
    expect(text).toContain('attestation.sev_snp.allow_debug must be true or false');
    expect(settings({ ark_fingerprints: [`${'AB:'.repeat(31)}AB`] }).problems).toEqual([]);
    expect(settings({ ark_fingerprints: [] }).problems.join()).toMatch(/is empty: nothing would be trusted/);
  });
});

describe('sev_snp agent side', () => {
  const rd = Buffer.concat([Buffer.alloc(32, 3), Buffer.alloc(32)]);
  const report = makeReport(leaf.key, { reportData: rd });
  const table = encodeCertTable([
    { kind: 'vcek', der: leaf.der },
    { kind: 'ask', der: roots.ask },
  ]);

  it('keeps the known entries of a padded auxblob, canonically', () => {
    const withUnknown = Buffer.from(
      encodeCertTable([
        { kind: 'vcek', der: leaf.der },
        { kind: 'ark', der: roots.ark },
      ]),
    );
    withUnknown[24]! ^= 0xff; // the ARK entry's GUID: now unknown to writ, dropped
    const ev = snpEvidenceFrom(report, Buffer.concat([withUnknown, Buffer.alloc(1000)]), [], rd);
    expect(parseSnpEvidence(ev).certificates.map((e) => e.kind)).toEqual(['vcek']);
    expect(parseCertTable(snpEvidenceFrom(report, table, [], rd).subarray(1184), true).map((e) => e.kind)).toEqual(['vcek', 'ask']);
  });

  it('uses a KDS file when the host gives no certificates, and says what is missing otherwise', () => {
    expect(classifyCertificates([leaf.der, roots.ask, roots.ark]).map((e) => e.kind)).toEqual(['vcek', 'ask', 'ark']);
    const ev = snpEvidenceFrom(report, undefined, classifyCertificates([leaf.der, roots.ask, roots.ark]), rd);
    expect(parseSnpEvidence(ev).certificates.map((e) => e.kind)).toEqual(['vcek', 'ask', 'ark']);
    expect(() => snpEvidenceFrom(report, undefined, [], rd)).toThrow(/no VCEK certificate: .*--sev-snp-certs/);
    expect(() => snpEvidenceFrom(report.subarray(0, 1000), table, [], rd)).toThrow(/1000-byte report, not 1184/);
    expect(() => snpEvidenceFrom(report, table, [], Buffer.alloc(64))).toThrow(AttestationError);
  });

  it('asks configfs-tsm (provider sev_guest) for a report over nonce ‖ zeros, at the VMPL given', async () => {
    const tsm = startFakeTsm('sev_guest', (inblob) => ({ outblob: makeReport(leaf.key, { reportData: inblob }), auxblob: table }));
    try {
      const session = await snpProducer.open({ 'sev-snp-tsm-dir': tsm.dir, 'sev-snp-vmpl': '0' });
      const nonce = Buffer.alloc(32, 9);
      const ev = await session.respond({ nonce, payload: Buffer.alloc(0) });
      expect(tsm.inblobs[0]).toEqual(Buffer.concat([nonce, Buffer.alloc(32)]));
      expect(ev.subarray(0x50, 0x90)).toEqual(tsm.inblobs[0]);
      await session.close();
      await expect(snpProducer.open({ 'sev-snp-vmpl': '7' })).rejects.toThrow(/--sev-snp-vmpl must be 0..3/);
    } finally {
      tsm.stop();
    }
    const tdx = startFakeTsm('tdx_guest', () => ({ outblob: Buffer.alloc(1184) }));
    try {
      const session = await snpProducer.open({ 'sev-snp-tsm-dir': tdx.dir });
      await expect(session.respond({ nonce: Buffer.alloc(32), payload: Buffer.alloc(0) })).rejects.toThrow(/provider is "tdx_guest", not sev_guest/);
    } finally {
      tdx.stop();
    }
  });
});
