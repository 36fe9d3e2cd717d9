/**
 * Targets: WebAuthn (src/webauthn/: strict CBOR, COSE keys, authenticator and client data,
 * assertion signatures) and step-up grants (src/delegation/step-up.ts), which embed them.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseStepUpGrant, verifyStepUpGrant } from '../../../src/delegation/step-up.js';
import { jwkThumbprint } from '../../../src/jose/jws.js';
import { parseAuthenticatorData, parseClientData, verifyAssertion } from '../../../src/webauthn/assertion.js';
import { parseCoseKey } from '../../../src/webauthn/cose.js';
import { SoftAuthenticator } from '../../helpers/soft-authenticator.js';
import { approvalRequest, rawStepUp } from '../../helpers/step-up.js';
import { FakeIssuer, hop } from '../../helpers/writ-fixture.js';
import type { FuzzTarget } from '../engine/contract.js';
import { embeddedBase64Mutator, jsonMutator, jwsMutator } from '../engine/mutators.js';
import { ROOT } from '../engine/paths.js';
import { AT, AT_S, ecKey, frame, stable } from '../fixtures.js';
import { HOLDER } from './writ.js';

const W3C = JSON.parse(readFileSync(join(ROOT, 'test/conformance/testdata/webauthn/w3c-l3-none-es256.json'), 'utf8'));
const hex = (s: string) => Buffer.from(s, 'hex');

/** Splits `u16 len ‖ bytes` fields (the framing of fixtures.frame); undefined when the input is not exactly that. */
function unframe(d: Buffer, n: number): Buffer[] | undefined {
  const out: Buffer[] = [];
  let p = 0;
  for (let i = 0; i < n; i++) {
    if (p + 2 > d.length) return undefined;
    const len = d.readUInt16BE(p);
    if (p + 2 + len > d.length) return undefined;
    out.push(d.subarray(p + 2, p + 2 + len));
    p += 2 + len;
  }
  return p === d.length ? out : undefined;
}

export const coseKeyTarget: FuzzTarget = {
  name: 'webauthn-cose',
  parsers: 'src/webauthn/cose.ts: parseCoseKey (with src/webauthn/cbor.ts decodeCbor)',
  contract: 'returns a public key whose alg, kty and crv agree, or throws a WritError (ERR_WEBAUTHN_INVALID)',
  maxLen: 4096,
  sources: ['src/webauthn/cose.ts', 'src/webauthn/cbor.ts'],
  setup: () => ({
    seeds: [hex(W3C.credentialPublicKeyCose), ...(['ES256', 'EdDSA', 'RS256'] as const).map((a) => new SoftAuthenticator(a).coseKey)],
    run(data) {
      parseCoseKey(data);
      return undefined;
    },
  }),
};

export const assertionTarget: FuzzTarget = {
  name: 'webauthn-assertion',
  signed: true,
  parsers:
    'src/webauthn/assertion.ts: parseAuthenticatorData, parseClientData, then verifyAssertion with the W3C vector key, challenge, origin and RP ID (input: u16-framed authenticatorData, clientDataJSON, signature)',
  contract: 'accepts only the W3C WebAuthn Level 3 §16.2 assertion, byte for byte; else throws a WritError (ERR_WEBAUTHN_INVALID)',
  maxLen: 8192,
  sources: ['src/webauthn/assertion.ts', 'src/webauthn/cbor.ts'],
  setup: () => {
    const a = W3C.assertion;
    const seed = frame([hex(a.authenticatorData), hex(a.clientDataJSON), hex(a.signature)]);
    const key = parseCoseKey(hex(W3C.credentialPublicKeyCose));
    return {
      seeds: [seed],
      mutators: [jsonMutator],
      isValid: (d) => d.equals(seed),
      run(data) {
        const parts = unframe(data, 3);
        if (!parts) return 'rejected';
        const [authenticatorData, clientDataJSON, signature] = parts as [Buffer, Buffer, Buffer];
        parseAuthenticatorData(authenticatorData);
        parseClientData(clientDataJSON);
        verifyAssertion({
          authenticatorData,
          clientDataJSON,
          signature,
          credentialPublicKey: key,
          expectedChallenge: hex(a.challenge),
          expectedOrigin: W3C.origin,
          expectedRpId: W3C.rpId,
          requireUserVerification: false,
        });
        return 'accepted';
      },
    };
  },
};

/** The fuzz issuer's key, as the writ targets have it (same label, same key). */
class FixedIssuer extends FakeIssuer {
  override readonly key = ecKey('writ issuer');
  override readonly kid = 'writ-fuzz';
}

export const stepUpTarget: FuzzTarget = {
  name: 'step-up',
  signed: true,
  parsers: 'src/delegation/step-up.ts: parseStepUpGrant, then verifyStepUpGrant (issuer key, assertion, fixed instant)',
  contract: 'accepts only the valid step-up grants, byte for byte; else throws a WritError (ERR_STEP_UP_INVALID, ERR_JWS_INVALID)',
  maxLen: 16 * 1024,
  sources: ['src/delegation/step-up.ts', 'src/webauthn/assertion.ts', 'src/webauthn/cose.ts'],
  setup: () => {
    const issuer = new FixedIssuer();
    const grants = stable('step-up: ES256 and EdDSA approvals for agent b, valid at AT', () => {
      const b = HOLDER();
      const key = ecKey('agent a');
      const a = { key, jkt: jwkThumbprint(createPublicKey(key)), spiffeId: 'spiffe://example.org/agent/a' };
      const root = issuer.rootGrant(a, { now: AT_S - 60, ttl: 3600 });
      const g1 = hop(root, a, b, AT_S - 30);
      return (['ES256', 'EdDSA'] as const).map((alg) =>
        rawStepUp(issuer, new SoftAuthenticator(alg, 'console.example.org'), approvalRequest(issuer, b, g1, { inherit: alg === 'EdDSA' }), { now: AT_S - 10 }),
      );
    });
    const valid = new Set(grants);
    const o = { issuer: issuer.issuer, writKeys: issuer.trust.writKeys, now: AT };
    return {
      seeds: grants.map((g) => Buffer.from(g, 'latin1')),
      mutators: [jwsMutator, jwsMutator, embeddedBase64Mutator],
      isValid: (d) => valid.has(d.toString('latin1')),
      run(data) {
        const s = data.toString('latin1');
        parseStepUpGrant(s);
        verifyStepUpGrant(s, o);
        return 'accepted';
      },
    };
  },
};
