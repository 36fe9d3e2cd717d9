/**
 * Deep verification of writs that embed SEV-SNP evidence (src/writ/verify.ts with the sev_snp
 * re-verifier), writs signed by the test issuer: genuine evidence over the writ's B is accepted
 * with every evidence check the relying party's own; evidence from another handshake, a real
 * vector put in its place, and selectors the evidence does not prove are refused.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { TableEntry } from '../../src/attestation/sev-snp/certs.js';
import { snpPlugin, trustFromChain } from '../../src/attestation/sev-snp/plugin.js';
import { DEFAULT_SNP_POLICY } from '../../src/attestation/sev-snp/verify.js';
import { decodePem } from '../../src/der/pem.js';
import { ProofReplayCache, createProof } from '../../src/writ/proof.js';
import { verifyWrit } from '../../src/writ/verify.js';
import { HAVE_SHARED, vector } from '../helpers/shared.js';
import { makeAmdRoots, makeLeaf, makeReport, snpEvidence } from '../helpers/snp-fake.js';
import { FakeIssuer, agent } from '../helpers/writ-fixture.js';

const NOW = 1_790_000_000;
const now = new Date(NOW * 1000);
const AUD = 'spiffe://example.org/tool/github';
const METHOD = 'GET /repos';

const iss = new FakeIssuer();
const B = agent('b');
const root = iss.rootGrant(B, { now: NOW - 100 });
const roots = makeAmdRoots('Genoa');
const leaf = makeLeaf(roots);
const rv = snpPlugin.relyingParty!.reverifier({ trust: trustFromChain([roots.ask, roots.ark]), policy: DEFAULT_SNP_POLICY });

/** Evidence over `binding`, as the issuer embeds it. */
const evidenceFor = (binding: Buffer) =>
  snpEvidence(makeReport(leaf.key, { product: 'Genoa', reportData: Buffer.concat([binding, Buffer.alloc(32)]) }), [
    { kind: 'vcek', der: leaf.der },
    { kind: 'ask', der: roots.ask },
    { kind: 'ark', der: roots.ark },
  ]);

/** A writ embedding `ev` (default: genuine evidence over its own B) with the selectors it proves. */
function snpWrit(o: { ev?: (binding: Buffer) => Buffer; sel?: string[] } = {}) {
  const nonce = randomBytes(32);
  const { binding } = iss.writ(B, [root], { now: NOW - 10, nonce });
  const ev = (o.ev ?? evidenceFor)(binding);
  const sel = o.sel ?? rv.reverify(evidenceFor(binding), { binding, agentJkt: B.jkt, at: now }).selectors.map((s) => `${s.type}:${s.value}`);
  return iss.writ(B, [root], { now: NOW - 10, nonce, type: 'sev_snp', ev, sel });
}

const deep = (writ: string, reverifier = rv) =>
  verifyWrit({
    writ,
    proof: createProof(writ, B.key, { audience: AUD, method: METHOD, now }),
    trust: iss.trust,
    audience: AUD,
    method: METHOD,
    now,
    replayCache: new ProofReplayCache(),
    level: 'deep',
    reverifiers: new Map([['sev_snp', reverifier]]),
  });

describe('deep verification of writs with SEV-SNP evidence', () => {
  it('accepts genuine evidence over the writ’s B; the evidence checks are all the verifier’s', () => {
    const { writ, claims } = snpWrit();
    const v = deep(writ);
    expect(v.selectors).toEqual(claims.att.sel);
    expect(v.checks).toContainEqual({ by: 'verifier', check: 'sev_snp: REPORT_DATA is the binding digest recomputed from the writ, then zero bytes' });
    expect(v.checks).toContainEqual({ by: 'verifier', check: 'selectors recomputed from the evidence equal the writ' });
    expect(v.checks.filter((c) => c.by === 'issuer' && /evidence|sev_snp/.test(c.check))).toEqual([]);
  });

  it('refuses evidence from another handshake (another B)', () => {
    const { writ } = snpWrit({ ev: () => evidenceFor(randomBytes(32)) });
    expect(() => deep(writ)).toThrow(/embedded evidence fails re-verification: attestation\(sev_snp\): REPORT_DATA differs/);
  });

  it('refuses selectors the evidence does not prove', () => {
    const { claims } = snpWrit();
    const sel = claims.att.sel.map((s) => (s.startsWith('sev_snp:measurement:') ? `sev_snp:measurement:${'00'.repeat(48)}` : s));
    expect(() => deep(snpWrit({ sel }).writ)).toThrow(/selectors differ from those the evidence proves/);
  });

  it.skipIf(!HAVE_SHARED)('refuses a real AMD-signed report put in the writ’s place, under the shipped pins', () => {
    const [ask, ark] = decodePem(vector('enclave/roots/amd_milan_ask_ark.pem').toString()).map((p) => Buffer.from(p.der));
    const real = snpEvidence(vector('enclave/sev-snp/virtee_report_milan.derived.bin'), [
      { kind: 'vcek', der: vector('enclave/sev-snp/virtee_vcek_milan.der') },
      { kind: 'ask', der: ask! },
      { kind: 'ark', der: ark! },
    ] satisfies TableEntry[]);
    const amd = snpPlugin.relyingParty!.reverifier(snpPlugin.relyingParty!.fromOptions({}));
    const { writ } = snpWrit({ ev: () => real, sel: ['sev_snp:product:Milan'] });
    expect(() => deep(writ, amd)).toThrow(/embedded evidence fails re-verification: attestation\(sev_snp\): REPORT_DATA differs/);
  });
});
