/** Target: `x509_svid` renewal evidence (src/attestation/x509-svid/evidence.ts), then what the verifier does with it. */
import { createPublicKey } from 'node:crypto';
import { encodeRenewalEvidence, parseRenewalEvidence, renewalSignatureValid, signRenewalWith } from '../../../src/attestation/x509-svid/evidence.js';
import { BundleSet } from '../../../src/spiffe/bundle.js';
import { verifyX509Svid } from '../../../src/svid/x509-svid.js';
import type { FuzzTarget } from '../engine/contract.js';
import { embeddedBase64Mutator, jsonMutator } from '../engine/mutators.js';
import { AT, b64, chain, ecKey, spkiOf, stable, unb64 } from '../fixtures.js';

export const x509SvidRenewalTarget: FuzzTarget = {
  name: 'x509-svid-renewal',
  signed: true,
  parsers:
    'src/attestation/x509-svid/evidence.ts: parseRenewalEvidence, renewalSignatureValid; src/svid/x509-svid.ts: verifyX509Svid of its chain against a fixed bundle at a fixed instant',
  contract:
    'accepts only evidence whose chain and signature are, byte for byte, the valid ones (any strict JSON spelling); else throws a WritError (ERR_SVID_RENEWAL_INVALID, ERR_X509_SVID_INVALID, ERR_DER_MALFORMED) or rejects the signature',
  maxLen: 16 * 1024,
  sources: ['src/attestation/x509-svid/evidence.ts', 'src/jose/strict-json.ts', 'src/jose/claims.ts'],
  setup: () => {
    const leafKey = ecKey('renewal leaf');
    const nonce = Buffer.alloc(32, 0x5a);
    const newSpki = spkiOf(ecKey('renewal new key'));
    // Kept in stable.json: a signature from an earlier run by the same fixed key must count as the valid one.
    const [root, inter, leaf, signature, otherNonceSig] = stable(
      'x509-svid-renewal: root, intermediate, leaf of example.org with the renewal leaf key; its signature over the nonce, and over another nonce',
      () => {
        const c = chain('example.org', 'P-256', leafKey);
        return [
          c.root.der,
          c.intermediate.der,
          c.leaf.der,
          signRenewalWith(leafKey, nonce, newSpki),
          signRenewalWith(leafKey, Buffer.alloc(32, 1), newSpki),
        ].map(b64);
      },
    ).map(unb64) as [Buffer, Buffer, Buffer, Buffer, Buffer];
    const bundles = new BundleSet([{ trustDomain: 'example.org', x509Authorities: [root], jwtAuthorities: new Map() }]);
    const validCerts = new Set([root, inter, leaf].map((d) => d.toString('hex')));
    const seeds = [
      encodeRenewalEvidence({ chain: [leaf, inter], signature }),
      encodeRenewalEvidence({ chain: [leaf, inter, root], signature }),
      // A signature over another nonce: parses and verifies its chain, then is rejected.
      encodeRenewalEvidence({ chain: [leaf, inter], signature: otherNonceSig }),
    ];
    return {
      seeds,
      mutators: [jsonMutator, embeddedBase64Mutator, embeddedBase64Mutator],
      isValid(data) {
        try {
          const ev = parseRenewalEvidence(data);
          return ev.signature.equals(signature) && ev.chain.every((c) => validCerts.has(c.toString('hex')));
        } catch {
          return false;
        }
      },
      run(data) {
        const ev = parseRenewalEvidence(data);
        const { chain: verified } = verifyX509Svid(ev.chain, bundles, AT);
        const key = createPublicKey({ key: verified[0]!.spki, format: 'der', type: 'spki' });
        return renewalSignatureValid(key, nonce, newSpki, ev.signature) ? 'accepted' : 'rejected';
      },
    };
  },
};
