/**
 * Deep verification recomputes every selector from the embedded evidence, except the types the
 * re-verifier declares it could not recompute here (a TDX relying party without Intel collateral
 * cannot recompute `tdx:tcb_status`): those are taken on the issuer's word and reported so, and
 * nothing else may ride along with them.
 */
import { describe, expect, it } from 'vitest';
import type { EvidenceReverifier } from '../../src/attestation/verifier.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { verifyWrit } from '../../src/writ/verify.js';
import { FakeIssuer, agent } from '../helpers/writ-fixture.js';

const NOW = 1_790_000_000;
const at = new Date(NOW * 1000);
const iss = new FakeIssuer();
const A = agent('a');

function deep(sel: string[], out: { selectors: string[]; issuerSelectorTypes?: string[] }) {
  const { writ } = iss.writ(A, [iss.rootGrant(A, { now: NOW - 5 })], { now: NOW, type: 'tdx', sel, ev: Buffer.from('quote') });
  const rv: EvidenceReverifier = {
    type: 'tdx',
    reverify: () => ({
      selectors: out.selectors.map((s) => ({ type: s.split(':')[0]!, value: s.slice(s.indexOf(':') + 1) })),
      checked: ['tdx: quote checked'],
      takenFromIssuer: [],
      ...(out.issuerSelectorTypes ? { issuerSelectorTypes: out.issuerSelectorTypes } : {}),
    }),
  };
  return verifyWrit({
    writ,
    proof: createProof(writ, A.key, { audience: 'rp', method: 'GET /x', now: at }),
    trust: iss.trust,
    audience: 'rp',
    now: at,
    level: 'deep',
    replayCache: new ProofReplayCache(),
    reverifiers: new Map([['tdx', rv]]),
  });
}

describe('deep verification: selectors only the issuer could evaluate', () => {
  it("accepts the writ's tdx:tcb_status as the issuer's when the relying party cannot recompute it, and says so", () => {
    const v = deep(['tdx:mrtd:aa', 'tdx:tcb_status:UpToDate'], { selectors: ['tdx:mrtd:aa'], issuerSelectorTypes: ['tdx:tcb_status'] });
    expect([...v.selectors].sort()).toEqual(['tdx:mrtd:aa', 'tdx:tcb_status:UpToDate']);
    expect(v.checks).toContainEqual({ check: 'selector tdx:tcb_status:UpToDate (not recomputable here)', by: 'issuer' });
  });

  it('without the declaration the same writ is refused (every selector must be recomputed)', () => {
    expect(() => deep(['tdx:mrtd:aa', 'tdx:tcb_status:UpToDate'], { selectors: ['tdx:mrtd:aa'] })).toThrow(/selectors differ/);
  });

  it('the declaration covers only its own type: any other selector must still be recomputed', () => {
    expect(() => deep(['tdx:mrtd:bb', 'tdx:tcb_status:UpToDate'], { selectors: ['tdx:mrtd:aa'], issuerSelectorTypes: ['tdx:tcb_status'] })).toThrow(
      /selectors differ/,
    );
    // A prefix of a type name is not the type.
    expect(() => deep(['tdx:mrtd:aa', 'tdx:tcb_status_x:1'], { selectors: ['tdx:mrtd:aa'], issuerSelectorTypes: ['tdx:tcb_status'] })).toThrow(
      /selectors differ/,
    );
  });

  it('a re-verifier that declares a type it also recomputed is refused (it cannot be both)', () => {
    expect(() =>
      deep(['tdx:mrtd:aa', 'tdx:tcb_status:UpToDate'], { selectors: ['tdx:mrtd:aa', 'tdx:tcb_status:UpToDate'], issuerSelectorTypes: ['tdx:tcb_status'] }),
    ).toThrow(/selectors differ/);
  });
});
