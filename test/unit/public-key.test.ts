import fc from 'fast-check';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { parsePublicKey } from '../../src/svid/public-key.js';

const spkiOf = (curve: string) => createPublicKey(generateKeyPairSync('ec', { namedCurve: curve }).privateKey).export({ type: 'spki', format: 'der' });

/** What OpenSSL's own DER decoder makes of the bytes (the general route), or undefined if it refuses them. */
function reference(der: Buffer): Buffer | undefined {
  try {
    return createPublicKey({ key: der, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' });
  } catch {
    return undefined;
  }
}

describe('parsePublicKey', () => {
  it.each([
    ['prime256v1', 'ec-p256'],
    ['secp384r1', 'ec-p384'],
  ])('accepts %s keys as OpenSSL encodes them, unchanged', (curve, kind) => {
    for (let i = 0; i < 20; i++) {
      const der = spkiOf(curve);
      const k = parsePublicKey(der);
      expect(k.kind).toBe(kind);
      expect(k.spki.equals(der)).toBe(true);
      expect(k.key.export({ type: 'spki', format: 'der' }).equals(der)).toBe(true);
    }
  });

  it('refuses a point that is not on the curve', () => {
    for (const curve of ['prime256v1', 'secp384r1']) {
      const der = spkiOf(curve);
      der[der.length - 1]! ^= 0x01;
      expect(() => parsePublicKey(der)).toThrow(FormatError);
      expect(reference(der)).toBeUndefined();
    }
  });

  it('accepts a compressed point as before (the general route)', () => {
    const k = createPublicKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
    const jwk = k.export({ format: 'jwk' });
    const x = Buffer.from(jwk.x!, 'base64url');
    const y = Buffer.from(jwk.y!, 'base64url');
    const compressed = Buffer.concat([Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'), Buffer.from([2 + (y[31]! & 1)]), x]);
    expect(parsePublicKey(compressed).spki.equals(reference(compressed)!)).toBe(true);
  });

  it('decides every one-byte mutation of a real key exactly as OpenSSL decoding does', () => {
    const der = spkiOf('prime256v1');
    fc.assert(
      fc.property(fc.nat(der.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const m = Buffer.from(der);
        m[i]! ^= x;
        const want = reference(m);
        let got: Buffer | undefined;
        try {
          got = parsePublicKey(m).spki;
        } catch (e) {
          expect(e).toBeInstanceOf(FormatError);
        }
        // A key OpenSSL decodes may still be refused (curve or size policy), never accepted differently.
        if (got) expect(want && got.equals(want)).toBe(true);
        else if (want) expect(() => parsePublicKey(m)).toThrow(/unsupported|RSA/);
      }),
      { numRuns: 3000 },
    );
  });
});
