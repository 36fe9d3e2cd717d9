/**
 * `writ enclave check --type sev-snp` over real vectors (files as the upstream suites ship
 * them) and over synthetic evidence in writ's own format: every check printed, exit 0 only when
 * every check it can make passes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { HAVE_SHARED, SHARED } from '../helpers/shared.js';
import { makeAmdRoots, makeLeaf, makeReport, snpEvidence } from '../helpers/snp-fake.js';

const V = join(SHARED, 'vectors', 'enclave');
const writ = (...argv: string[]) => runCli(argv);
const dir = mkdtempSync(join(tmpdir(), 'writ-snp-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const gosev = [
  '--evidence',
  join(V, 'sev-snp/gosev_attestation.bin'),
  '--certs',
  join(V, 'sev-snp/gosev_vcek.testcer'),
  '--roots',
  join(V, 'roots/amd_milan_ask_ark.pem'),
  '--at',
  '2022-09-24T01:00:00Z',
];

describe.skipIf(!HAVE_SHARED)('writ enclave check --type sev-snp (real vectors)', () => {
  it('refuses the debug guest by default, for that reason, and accepts it with --allow-debug', async () => {
    const r = await writ('enclave', 'check', '--type', 'sev-snp', ...gosev, '--report-data', '0102030405');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^ok {8}report signature \(ECDSA P-384 SHA-384/m);
    expect(r.out).toMatch(/^FAILED {4}SEV-SNP evidence: the guest policy allows debugging \(DEBUG bit set\)/m);
    const ok = await writ('enclave', 'check', '--type', 'sev-snp', ...gosev, '--report-data', '0102030405', '--allow-debug');
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('ok        REPORT_DATA equals the expected value');
    expect(ok.out).toContain('unchecked certificate revocation');
    expect(ok.out).toMatch(/^selector {2}sev_snp:chip_id:3ac3fe21/m);
  });

  it('fails on the wrong report data, at an instant after expiry, and with another product’s chain', async () => {
    expect((await writ('enclave', 'check', '--type', 'sev-snp', ...gosev, '--allow-debug', '--report-data', '0102030406')).out).toMatch(
      /FAILED .*REPORT_DATA differs/,
    );
    const late = await writ('enclave', 'check', '--type', 'sev-snp', ...gosev.slice(0, -1), '2030-01-01T00:00:00Z', '--allow-debug');
    expect(late.code).toBe(1);
    expect(late.out).toMatch(/FAILED .*SEV-VCEK has expired/);
    const genoa = gosev.map((a) => (a.endsWith('amd_milan_ask_ark.pem') ? join(V, 'roots/amd_genoa_ask_ark.pem') : a));
    expect((await writ('enclave', 'check', '--type', 'sev-snp', ...genoa, '--allow-debug')).out).toMatch(/FAILED .*no certificate given signed the SEV-VCEK/);
    // Without --roots the shipped pins apply, and the ASK must come with the evidence.
    const noRoots = await writ('enclave', 'check', '--type', 'sev-snp', ...gosev.slice(0, 4), '--at', '2022-09-24T01:00:00Z', '--allow-debug');
    expect(noRoots.code).toBe(1);
    expect(noRoots.out).toMatch(/its issuer is CN=SEV-Milan/);
  });

  it('checks a VLEK report at VMPL 1 only with --sev-snp-max-vmpl 1, as JSON', async () => {
    const args = [
      'enclave',
      'check',
      '--type',
      'sev-snp',
      '--evidence',
      join(V, 'sev-snp/trustee_test-vlek-report.bin'),
      '--certs',
      join(V, 'sev-snp/trustee_test-vlek.der'),
      '--roots',
      join(V, 'roots/amd_milan_asvk_ark.pem'),
      '--at',
      '2025-06-01T00:00:00Z',
      '--json',
    ];
    const no = JSON.parse((await writ(...args)).out) as { valid: boolean; checks: { status: string; detail?: string }[] };
    expect(no.valid).toBe(false);
    expect(no.checks.find((c) => c.status === 'failed')?.detail).toMatch(/VMPL 1, above the maximum 0/);
    const r = await writ(...args, '--sev-snp-max-vmpl', '1');
    expect(r.code).toBe(0);
    const yes = JSON.parse(r.out) as { valid: boolean; signer: string; selectors: string[] };
    expect(yes).toMatchObject({ valid: true, signer: 'vlek' });
    expect(yes.selectors).toContain('sev_snp:csp_id:CN=cc-us-east-2.amazonaws.com');
  });

  it('refuses what it cannot use, as usage errors', async () => {
    expect((await writ('enclave', 'check', '--type', 'sev-snp', ...gosev, '--collateral', dir)).code).toBe(2);
    expect((await writ('enclave', 'check', '--type', 'sev-snp', ...gosev, '--report-data', 'xyz')).code).toBe(2);
    expect((await writ('enclave', 'check', '--type', 'sev-snp', ...gosev, '--sev-snp-max-vmpl', '4')).code).toBe(2);
  });
});

describe('writ enclave check --type sev-snp (writ evidence with its certificate table)', () => {
  it('checks synthetic evidence against its own test ARK given as --roots, and refuses it under the shipped pins', async () => {
    const roots = makeAmdRoots('Genoa');
    const leaf = makeLeaf(roots);
    const rd = Buffer.alloc(64, 0x5a);
    const ev = snpEvidence(makeReport(leaf.key, { product: 'Genoa', reportData: rd }), [
      { kind: 'vcek', der: leaf.der },
      { kind: 'ask', der: roots.ask },
      { kind: 'ark', der: roots.ark },
    ]);
    writeFileSync(join(dir, 'ev.bin'), ev);
    writeFileSync(join(dir, 'chain.pem'), roots.chainPem);
    const args = [
      'enclave',
      'check',
      '--type',
      'sev-snp',
      '--evidence',
      join(dir, 'ev.bin'),
      '--at',
      '2025-01-01T00:00:00Z',
      '--report-data',
      rd.toString('hex'),
    ];
    const ok = await writ(...args, '--roots', join(dir, 'chain.pem'));
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('product Genoa (Genoa-B1)');
    const pinned = await writ(...args);
    expect(pinned.code).toBe(1);
    expect(pinned.out).toMatch(/FAILED .*whose fingerprint is not pinned/);
  });
});
