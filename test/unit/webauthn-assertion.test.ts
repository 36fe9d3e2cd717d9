/**
 * WebAuthn assertion verification (src/webauthn/): the W3C Level 3 test vector, a cross-check
 * against @simplewebauthn/server on the same inputs, and for every accepted input the mutated
 * twins that must be refused.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { verifyAuthenticationResponse, verifyRegistrationResponse } from '@simplewebauthn/server';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WebAuthnError } from '../../src/errors.js';
import { verifyAssertion, parseAuthenticatorData, parseClientData, type VerifyAssertionOptions } from '../../src/webauthn/assertion.js';
import { coseToSpki, parseCoseKey } from '../../src/webauthn/cose.js';
import { decodeCbor } from '../../src/webauthn/cbor.js';
import { cborEncode, clientDataJson, coseKeyOf, SoftAuthenticator, type CborIn, type SoftAlg } from '../helpers/soft-authenticator.js';
import { REPO_ROOT } from '../helpers/shared.js';

const W3C = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/testdata/webauthn/w3c-l3-none-es256.json'), 'utf8'));
const hex = (s: string) => Buffer.from(s, 'hex');

const ORIGIN = 'https://issuer.example:8444';
const RP = 'issuer.example';
const CHALLENGE = createHash('sha256').update('an approval request').digest();

function refused(f: () => unknown, msg: RegExp) {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected a refusal matching ${msg}`).toBeInstanceOf(WebAuthnError);
  expect((err as WebAuthnError).code).toBe('ERR_WEBAUTHN_INVALID');
  expect((err as Error).message).toMatch(msg);
}

function opts(a: SoftAuthenticator, over: Partial<Parameters<SoftAuthenticator['getAssertion']>[0]> = {}): VerifyAssertionOptions {
  const r = a.getAssertion({ challenge: CHALLENGE, origin: ORIGIN, ...over });
  return {
    authenticatorData: r.authenticatorData,
    clientDataJSON: r.clientDataJSON,
    signature: r.signature,
    credentialPublicKey: a.coseKey,
    expectedChallenge: CHALLENGE,
    expectedOrigin: ORIGIN,
    expectedRpId: RP,
  };
}

describe('the W3C WebAuthn Level 3 test vector (§16.2, none / ES256)', () => {
  const a = W3C.assertion;
  const base: VerifyAssertionOptions = {
    authenticatorData: hex(a.authenticatorData),
    clientDataJSON: hex(a.clientDataJSON),
    signature: hex(a.signature),
    credentialPublicKey: hex(W3C.credentialPublicKeyCose),
    expectedChallenge: hex(a.challenge),
    expectedOrigin: W3C.origin,
    expectedRpId: W3C.rpId,
    requireUserVerification: false,
  };

  it('verifies, with the flags and counter the vector states', () => {
    const v = verifyAssertion(base);
    expect(v.flags).toEqual(a.flags);
    expect(v.signCount).toBe(a.signCount);
    expect(v.algorithm).toBe('ES256');
  });

  it('converts its COSE key to the SPKI the vector states', () => {
    expect(coseToSpki(hex(W3C.credentialPublicKeyCose)).toString('hex')).toBe(W3C.credentialPublicKeySpki);
  });

  it('is refused when user verification is required: the vector has UV clear', () => {
    refused(() => verifyAssertion({ ...base, requireUserVerification: true }), /UV flag clear/);
  });

  it.each([
    ['another challenge', { expectedChallenge: createHash('sha256').update('x').digest() }, /challenge is not the expected/],
    ['another origin', { expectedOrigin: 'https://example.com' }, /not an expected origin/],
    ['another RP ID', { expectedRpId: 'example.com' }, /rpIdHash/],
  ] as const)('is refused for %s', (_n, over, msg) => {
    refused(() => verifyAssertion({ ...base, ...over }), msg);
  });

  it('is refused when any byte of authenticator data, client data or signature is flipped', () => {
    for (const field of ['authenticatorData', 'clientDataJSON', 'signature'] as const) {
      const orig = base[field] as Buffer;
      for (let i = 0; i < orig.length; i++) {
        const m = Buffer.from(orig);
        m[i] ^= 0x01;
        expect(() => verifyAssertion({ ...base, [field]: m }), `${field}[${i}]`).toThrow(WebAuthnError);
      }
    }
  });
});

describe('verifyAssertion: the software authenticator, cross-checked with @simplewebauthn/server', () => {
  it.each(['ES256', 'EdDSA', 'RS256'] as SoftAlg[])('%s: both accept the same assertion', async (alg) => {
    const a = new SoftAuthenticator(alg, RP);
    const o = opts(a);
    const v = verifyAssertion(o);
    expect(v.flags).toEqual({ up: true, uv: true, be: false, bs: false });
    expect(v.algorithm).toBe(alg);
    const theirs = await verifyAuthenticationResponse({
      response: {
        id: a.credentialId.toString('base64url'),
        rawId: a.credentialId.toString('base64url'),
        type: 'public-key',
        clientExtensionResults: {},
        response: {
          authenticatorData: Buffer.from(o.authenticatorData).toString('base64url'),
          clientDataJSON: Buffer.from(o.clientDataJSON).toString('base64url'),
          signature: Buffer.from(o.signature).toString('base64url'),
        },
      },
      expectedChallenge: CHALLENGE.toString('base64url'),
      expectedOrigin: ORIGIN,
      expectedRPID: RP,
      credential: { id: a.credentialId.toString('base64url'), publicKey: new Uint8Array(a.coseKey), counter: 0 },
      requireUserVerification: true,
    });
    expect(theirs.verified).toBe(true);
    expect(theirs.authenticationInfo.newCounter).toBe(v.signCount);
  });

  it('both refuse a tampered signature, another challenge and another origin', async () => {
    const a = new SoftAuthenticator('ES256', RP);
    const o = opts(a);
    const sig = Buffer.from(o.signature);
    sig[sig.length - 3] ^= 0x40;
    const cases: Array<[Partial<VerifyAssertionOptions>, { challenge?: string; origin?: string; signature?: Buffer }]> = [
      [{ signature: sig }, { signature: sig }],
      [{ expectedChallenge: Buffer.alloc(32, 7) }, { challenge: Buffer.alloc(32, 7).toString('base64url') }],
      [{ expectedOrigin: 'https://evil.example' }, { origin: 'https://evil.example' }],
    ];
    for (const [mine, theirs] of cases) {
      expect(() => verifyAssertion({ ...o, ...mine })).toThrow(WebAuthnError);
      const r = await verifyAuthenticationResponse({
        response: {
          id: a.credentialId.toString('base64url'),
          rawId: a.credentialId.toString('base64url'),
          type: 'public-key',
          clientExtensionResults: {},
          response: {
            authenticatorData: Buffer.from(o.authenticatorData).toString('base64url'),
            clientDataJSON: Buffer.from(o.clientDataJSON).toString('base64url'),
            signature: (theirs.signature ?? Buffer.from(o.signature)).toString('base64url'),
          },
        },
        expectedChallenge: theirs.challenge ?? CHALLENGE.toString('base64url'),
        expectedOrigin: theirs.origin ?? ORIGIN,
        expectedRPID: RP,
        credential: { id: a.credentialId.toString('base64url'), publicKey: new Uint8Array(a.coseKey), counter: 0 },
      }).catch(() => ({ verified: false }));
      expect(r.verified).toBe(false);
    }
  });
});

describe('verifyAssertion refuses', () => {
  const a = new SoftAuthenticator('ES256', RP);

  it.each([
    ['another challenge', () => ({ ...opts(a), expectedChallenge: Buffer.alloc(32, 1) }), /challenge is not the expected/],
    ['a challenge of another length', () => ({ ...opts(a), expectedChallenge: Buffer.alloc(48, 1) }), /challenge is not the expected/],
    ['a wrong origin', () => ({ ...opts(a), expectedOrigin: ['https://issuer.example', 'https://issuer.example:8443'] }), /not an expected origin/],
    ['an origin that differs only in case', () => opts(a, { origin: 'https://Issuer.example:8444' }), /not an expected origin/],
    ['a wrong RP ID hash', () => opts(a, { rpId: 'evil.example' }), /rpIdHash/],
    ['an expected challenge shorter than 16 bytes', () => ({ ...opts(a), expectedChallenge: Buffer.alloc(8) }), /at least 16 bytes/],
    ['no expected origin at all', () => ({ ...opts(a), expectedOrigin: [] }), /no expected origin/],
    ['UP cleared', () => opts(a, { flags: 0x04 }), /not present/],
    ['UV cleared', () => opts(a, { flags: 0x01 }), /not verified/],
    ['crossOrigin true', () => opts(a, { crossOrigin: true }), /cross-origin/],
    ['a topOrigin', () => opts(a, { extraClientData: { topOrigin: 'https://evil.example' } }), /topOrigin/],
    ['type webauthn.create', () => opts(a, { type: 'webauthn.create' }), /not "webauthn.get"/],
    ['a raw r‖s ES256 signature', () => opts(a, { rawSignature: true }), /raw r‖s/],
    ['attested credential data in an assertion', () => opts(a, { flags: 0x45 }), /attested credential data/],
    ['BS without BE', () => opts(a, { flags: 0x15 }), /backup eligible/],
  ] as const)('%s', (_n, make, msg) => {
    refused(() => verifyAssertion(make()), msg);
  });

  it('a raw r‖s ES256 signature that happens to start with 0x30 (one in 256) is still named raw', () => {
    const o = opts(a, { rawSignature: true });
    const sig = Buffer.from(o.signature);
    sig[0] = 0x30;
    refused(() => verifyAssertion({ ...o, signature: sig }), /raw r‖s/);
  });

  it('accepts BE and BS together, extension outputs, and client data members it does not know', () => {
    const v = verifyAssertion(
      opts(a, {
        flags: 0x1d,
        extensions: new Map<string, CborIn>([['credProtect', 2]]),
        extraClientData: { other_keys_can_be_added_here: 'do not compare clientDataJSON against a template' },
      }),
    );
    expect(v.flags).toEqual({ up: true, uv: true, be: true, bs: true });
    expect(v.extensions?.get('credProtect')).toBe(2);
  });

  it('a signature by another credential, and one over other client data', () => {
    const o = opts(a);
    refused(() => verifyAssertion({ ...o, credentialPublicKey: new SoftAuthenticator('ES256', RP).coseKey }), /does not verify/);
    const other = clientDataJson({ type: 'webauthn.get', challenge: CHALLENGE, origin: ORIGIN, extra: { x: 1 } });
    refused(() => verifyAssertion({ ...o, clientDataJSON: other }), /does not verify/);
  });

  it('an Ed25519 signature checked as ES256 (the COSE alg fixes the algorithm)', () => {
    const ed = new SoftAuthenticator('EdDSA', RP);
    const o = opts(ed);
    refused(() => verifyAssertion({ ...o, credentialPublicKey: a.coseKey }), /ES256 signature is (raw|not strict DER)/);
  });

  it.each([
    ['a duplicate member', '{"type":"webauthn.get","type":"webauthn.get","challenge":"x","origin":"https://a"}', /duplicate/],
    ['a byte order mark', '\ufeff{"type":"webauthn.get","challenge":"x","origin":"https://a"}', /byte order mark/],
    ['an array', '[1]', /not a JSON object/],
    ['crossOrigin as a string', '{"type":"webauthn.get","challenge":"x","origin":"https://a","crossOrigin":"false"}', /crossOrigin/],
    ['a non-canonical challenge', null, /canonical base64url/],
  ] as const)('client data with %s', (_n, text, msg) => {
    const json =
      text === null
        ? Buffer.from(`{"type":"webauthn.get","challenge":"${CHALLENGE.toString('base64url').slice(0, -1)}h","origin":"${ORIGIN}"}`)
        : Buffer.from(text, 'utf8');
    const r = a.getAssertion({ challenge: CHALLENGE, origin: ORIGIN, clientDataJSON: json });
    refused(
      () =>
        verifyAssertion({
          ...opts(a),
          clientDataJSON: r.clientDataJSON,
          authenticatorData: r.authenticatorData,
          signature: r.signature,
        }),
      msg,
    );
  });

  it('client data that is not UTF-8', () => {
    refused(() => parseClientData(Buffer.from([0x7b, 0xff, 0x7d])), /UTF-8/);
  });

  it('authenticator data that is short, long or has trailing bytes', () => {
    const ad = a.authData(RP, 0x05, 1);
    refused(() => parseAuthenticatorData(ad.subarray(0, 36)), /at least 37/);
    refused(() => parseAuthenticatorData(Buffer.concat([ad, Buffer.from([0])])), /trailing bytes/);
    refused(() => parseAuthenticatorData(Buffer.alloc(2000)), /longer than/);
    const ed = a.authData(RP, 0x05, 1, undefined, new Map([['x', 1]]));
    refused(() => parseAuthenticatorData(Buffer.concat([ed, Buffer.from([0])])), /trailing bytes after/);
  });
});

describe('COSE keys (strict)', () => {
  const ec = coseKeyOf(createPublicKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey), 'ES256');
  const enc = (m: Map<number, CborIn>) => cborEncode(m);
  const edit = (f: (m: Map<number, CborIn>) => void) => {
    const m = new Map(ec);
    f(m);
    return enc(m);
  };

  it('accepts an ES256, Ed25519 and RS256 key and gives their SPKI', () => {
    for (const alg of ['ES256', 'EdDSA', 'RS256'] as SoftAlg[]) {
      const a = new SoftAuthenticator(alg, RP);
      expect(coseToSpki(a.coseKey).equals(a.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
    }
  });

  it.each([
    ['an extra member (kid)', () => edit((m) => m.set(2, Buffer.from('kid'))), /label 2/],
    ['a private member (d)', () => edit((m) => m.set(-4, Buffer.alloc(32, 1))), /label -4/],
    ['key_ops', () => edit((m) => m.set(4, [1])), /label 4/],
    ['an unknown critical-looking label', () => edit((m) => m.set(-70000, 1)), /label -70000/],
    ['alg EdDSA on an EC2 key', () => edit((m) => m.set(3, -8)), /kty 2 does not fit alg EdDSA/],
    ['alg ES384 on a P-256 key', () => edit((m) => m.set(3, -35)), /crv 1 does not fit alg ES384/],
    ['crv P-384 with ES256', () => edit((m) => m.set(-1, 2)), /crv 2 does not fit alg ES256/],
    ['an unknown alg', () => edit((m) => m.set(3, -999)), /alg -999/],
    ['alg missing', () => edit((m) => m.delete(3)), /alg \(3\)/],
    ['a compressed point', () => edit((m) => m.set(-3, true)), /compressed/],
    ['a short coordinate', () => edit((m) => m.set(-2, (m.get(-2) as Buffer).subarray(1))), /x must be 32 bytes/],
    ['a point off the curve', () => edit((m) => m.set(-3, Buffer.alloc(32, 1))), /not a valid ES256 public key/],
    ['a text kty', () => edit((m) => m.set(1, 'EC2')), /kty/],
  ] as const)('refuses %s', (_n, make, msg) => {
    refused(() => parseCoseKey(make()), msg);
  });

  it('refuses a duplicate label (written by hand: a Map cannot hold one)', () => {
    const good = enc(ec);
    // a5 → a6, then one more "01 02" (kty again).
    const dup = Buffer.concat([Buffer.from([0xa6]), good.subarray(1), Buffer.from([0x01, 0x02])]);
    refused(() => parseCoseKey(dup), /duplicate map key/);
  });

  it('refuses non-minimal CBOR, indefinite lengths, tags, floats and trailing bytes', () => {
    refused(() => decodeCbor(Buffer.from([0x18, 0x05])), /non-minimal/);
    refused(() => decodeCbor(Buffer.from([0xbf, 0xff])), /indefinite/);
    refused(() => decodeCbor(Buffer.from([0xc0, 0x00])), /tags/);
    refused(() => decodeCbor(Buffer.from([0xf9, 0x00, 0x00])), /floats/);
    refused(() => decodeCbor(Buffer.from([0x00, 0x00])), /trailing/);
    refused(() => decodeCbor(Buffer.from([0x9a, 0xff, 0xff, 0xff, 0xff])), /more items than bytes/);
    refused(() => decodeCbor(Buffer.from([0x1b, 0x00, 0x20, 0, 0, 0, 0, 0, 0])), /beyond 2\^53/);
    refused(() => decodeCbor(Buffer.from([0x62, 0xc3, 0x28])), /UTF-8/);
    refused(() => decodeCbor(Buffer.alloc(10, 0x81)), /nesting deeper/);
  });

  it('refuses an RSA key below 2048 bits and an even exponent', () => {
    const small = coseKeyOf(createPublicKey(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey), 'RS256');
    refused(() => parseCoseKey(cborEncode(small)), /2048\.\.8192/);
    const rsa = coseKeyOf(createPublicKey(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey), 'RS256');
    rsa.set(-2, Buffer.from([0x01, 0x00, 0x00]));
    refused(() => parseCoseKey(cborEncode(rsa)), /exponent/);
  });
});

describe('real authenticators’ assertions from duo-labs/py_webauthn’s tests', () => {
  const V = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/testdata/webauthn/py_webauthn-assertions.json'), 'utf8'));
  const b = (s: string) => Buffer.from(s, 'base64url');
  type Vec = Record<string, string | boolean | number>;
  const opts = (v: Vec): VerifyAssertionOptions => ({
    authenticatorData: b(v.authenticatorData as string),
    clientDataJSON: b(v.clientDataJSON as string),
    signature: b(v.signature as string),
    credentialPublicKey: b(v.credentialPublicKey as string),
    expectedChallenge: b(v.challenge as string),
    expectedOrigin: V.origin,
    expectedRpId: V.rpId,
    requireUserVerification: (v.requireUserVerification as boolean | undefined) ?? (v.uv as boolean),
  });

  it.each((V.valid as Vec[]).map((v) => [v.name as string, v] as const))('accepts %s', (_n, v) => {
    const r = verifyAssertion(opts(v));
    expect(r.algorithm).toBe(v.algorithm);
    expect(r.signCount).toBe(v.signCount);
    expect(r.flags.uv).toBe(v.uv);
  });

  it.each((V.valid as Vec[]).map((v) => [v.name as string, v] as const))(
    'refuses %s with one bit of its signature, authenticator data or client data flipped',
    (_n, v) => {
      const o = opts(v);
      for (const f of ['signature', 'authenticatorData', 'clientDataJSON'] as const) {
        const m = Buffer.from(o[f] as Buffer);
        m[m.length >> 1] ^= 0x10;
        expect(() => verifyAssertion({ ...o, [f]: m }), f).toThrow(WebAuthnError);
      }
      expect(() => verifyAssertion({ ...o, expectedOrigin: 'http://localhost:5001' })).toThrow(WebAuthnError);
    },
  );

  it.each((V.invalid as Vec[]).map((v) => [v.name as string, v] as const))('refuses %s', (_n, v) => {
    refused(() => verifyAssertion(opts(v)), new RegExp(v.refusal as string));
  });
});

describe('the software authenticator registers as a browser would (for the issuer side and its tests)', () => {
  it.each(['ES256', 'EdDSA', 'RS256'] as SoftAlg[])(
    '%s: @simplewebauthn/server accepts its none attestation, and the registered key is the one our verifier uses',
    async (alg) => {
      const a = new SoftAuthenticator(alg, RP);
      const challenge = createHash('sha256').update('registration').digest();
      const reg = a.makeCredential({ challenge, origin: ORIGIN });
      const r = await verifyRegistrationResponse({
        response: {
          id: reg.credentialId.toString('base64url'),
          rawId: reg.credentialId.toString('base64url'),
          type: 'public-key',
          clientExtensionResults: {},
          response: { attestationObject: reg.attestationObject.toString('base64url'), clientDataJSON: reg.clientDataJSON.toString('base64url') },
        },
        expectedChallenge: challenge.toString('base64url'),
        expectedOrigin: ORIGIN,
        expectedRPID: RP,
        requireUserVerification: true,
      });
      expect(r.verified).toBe(true);
      const registered = Buffer.from(r.registrationInfo!.credential.publicKey);
      expect(registered.equals(a.coseKey)).toBe(true);
      expect(verifyAssertion({ ...opts(a), credentialPublicKey: registered }).algorithm).toBe(alg);
    },
  );
});

describe('the parsers of untrusted bytes never throw anything but a WebAuthnError', () => {
  const parsers = (b: Buffer) => [() => decodeCbor(b), () => parseCoseKey(b), () => parseAuthenticatorData(b), () => parseClientData(b)];
  const safely = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      if (!(e instanceof WebAuthnError)) throw e;
    }
  };

  it('on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (u) => {
        for (const f of parsers(Buffer.from(u))) safely(f);
      }),
      { numRuns: 3000 },
    );
  });

  it('on every one-byte mutation of real COSE keys and authenticator data', () => {
    const seeds = [
      hex(W3C.credentialPublicKeyCose),
      new SoftAuthenticator('EdDSA').coseKey,
      new SoftAuthenticator('ES256').authData(RP, 0x85, 9, undefined, new Map([['credProtect', 2]])),
    ];
    for (const seed of seeds) {
      for (let i = 0; i < seed.length; i++) {
        for (const x of [0x01, 0x80, 0xff]) {
          const m = Buffer.from(seed);
          m[i] ^= x;
          for (const f of parsers(m)) safely(f);
        }
      }
    }
  });
});
