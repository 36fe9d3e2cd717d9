/** The TPM evidence wire format (src/tpm/evidence.ts): strict JSON and canonical base64, so every reader sees the same bytes. */
import { describe, expect, it } from 'vitest';
import { TPM_ALG } from '../../src/tpm/constants.js';
import { encodeEvidence1, parseEvidence1, type TpmEvidence } from '../../src/tpm/evidence.js';

const ev: TpmEvidence = {
  ekPublic: Buffer.from([1, 2, 3]),
  ekCertificate: Buffer.from([4, 5]),
  ekIntermediates: [],
  akPublic: Buffer.from([6]),
  attest: Buffer.from([7, 8, 9]),
  signature: Buffer.from([10]),
  pcrs: new Map([[TPM_ALG.SHA256, new Map([[0, Buffer.alloc(32, 0xab)]])]]),
};

describe('TPM evidence wire format', () => {
  it('round-trips', () => {
    expect(parseEvidence1(encodeEvidence1(ev))).toEqual(ev);
  });
  it('refuses a duplicate member (which JSON.parse would read as the last)', () => {
    const text = encodeEvidence1(ev)
      .toString()
      .replace(/^\{/, `{"attest":"${Buffer.from([0xff]).toString('base64')}",`);
    expect(JSON.parse(text).attest).toBe(Buffer.from([7, 8, 9]).toString('base64'));
    expect(() => parseEvidence1(Buffer.from(text))).toThrow(/not strict JSON: duplicate member name "attest"/);
  });
  it('refuses non-canonical base64 (other text, same bytes)', () => {
    // "Bg==" is [6]; "Bh==" sets bits base64 decoding drops, so it decodes to the same byte.
    const text = encodeEvidence1(ev)
      .toString()
      .replace(`"ak_public":"${Buffer.from([6]).toString('base64')}"`, '"ak_public":"Bh=="');
    expect(Buffer.from('Bh==', 'base64')).toEqual(Buffer.from([6]));
    expect(() => parseEvidence1(Buffer.from(text))).toThrow(/ak_public must be canonical base64/);
  });
});
