/**
 * TPM evidence checks that need no TPM (src/attestation/tpm/quote.ts, credential.ts), on
 * structures made in software exactly as a TPM makes them (as test/bench/run.ts does): AK
 * attributes and schemes, quote signatures, nonce, PCR selection and digest, clock safety,
 * counters, TPM2_Certify of a resident key, and MakeCredential checked by doing the TPM's
 * ActivateCredential side here, independently (TPM 2.0 Part 1 §24) (`make mutate`, docs/testing.md).
 */
import { createHash, randomBytes, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { kdfa, kdfe, makeCredential } from '../../src/attestation/tpm/credential.js';
import { checkAk, checkCounters, pcrDigest, verifyCertify, verifyQuote, verifyTpmSignature } from '../../src/attestation/tpm/quote.js';
import { TPMA_OBJECT, TPM_ALG, TPM_ECC, TPM_ST } from '../../src/tpm/constants.js';
import { EK_TEMPLATES } from '../../src/tpm/ek-templates.js';
import { akTemplate, marshalSignature, objectName, publicKeyOf, residentKeyTemplate, type PcrSelection, type TpmPublic } from '../../src/tpm/structures.js';
import { NONCE, SEL, activate, ak, attest, refKdfa, refKdfe, softKey, tpmSign, values, type QuoteOpts, type SoftKey } from '../helpers/soft-tpm.js';

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}
const tpmErr = (m: string) => ({ code: 'ERR_EVIDENCE_INVALID', message: `attestation(tpm): ${m}` });

describe('TPM AK profile', () => {
  it('accepts the ECC and RSA AK templates, RSASSA and RSAPSS, P-256 and P-384', () => {
    expect(() => checkAk(ak('ecc').pub)).not.toThrow();
    expect(() => checkAk(ak('rsa').pub)).not.toThrow();
    expect(() => checkAk(ak('rsa', { scheme: { scheme: TPM_ALG.RSAPSS, hashAlg: TPM_ALG.SHA256 } }).pub)).not.toThrow();
    expect(() =>
      checkAk(softKey(akTemplate('ecc'), { curve: TPM_ECC.NIST_P384, scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA384 } }, 'secp384r1').pub),
    ).not.toThrow();
    expect(() => checkAk(ak('ecc', { nameAlg: TPM_ALG.SHA512, scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA512 } }).pub)).not.toThrow();
  });

  it.each([
    ['fixedTPM', TPMA_OBJECT.fixedTPM],
    ['fixedParent', TPMA_OBJECT.fixedParent],
    ['sensitiveDataOrigin', TPMA_OBJECT.sensitiveDataOrigin],
    ['restricted', TPMA_OBJECT.restricted],
    ['sign', TPMA_OBJECT.sign],
  ])('refuses an AK without %s (a key that could have signed a forged TPMS_ATTEST, or left the TPM)', (name, bit) => {
    const k = ak('ecc', { attributes: akTemplate('ecc').attributes & ~bit });
    expect(refusal(() => checkAk(k.pub))).toMatchObject(tpmErr(`AK lacks required attributes: ${name}`));
  });

  it('names every missing attribute', () => {
    const k = ak('ecc', { attributes: TPMA_OBJECT.sign | TPMA_OBJECT.userWithAuth });
    expect(refusal(() => checkAk(k.pub))).toMatchObject(tpmErr('AK lacks required attributes: fixedTPM, fixedParent, sensitiveDataOrigin, restricted'));
  });

  it('refuses an AK that can also decrypt', () => {
    expect(refusal(() => checkAk(ak('ecc', { attributes: akTemplate('ecc').attributes | TPMA_OBJECT.decrypt }).pub))).toMatchObject(
      tpmErr('AK must not be a decryption key'),
    );
  });

  it('refuses SHA-1 anywhere: name algorithm or signing scheme, and a scheme left to the caller', () => {
    expect(refusal(() => checkAk(ak('ecc', { nameAlg: TPM_ALG.SHA1 }).pub))).toMatchObject(tpmErr('AK nameAlg must be SHA-256 or stronger'));
    expect(refusal(() => checkAk(ak('ecc', { scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA1 } }).pub))).toMatchObject(
      tpmErr('AK signing scheme must use SHA-256 or stronger'),
    );
    expect(refusal(() => checkAk(ak('ecc', { scheme: { scheme: TPM_ALG.NULL } }).pub))).toMatchObject(tpmErr('AK signing scheme must use SHA-256 or stronger'));
  });

  it('refuses RSA AKs with another scheme or under 2048 bits, ECC AKs with another scheme or curve', () => {
    expect(refusal(() => checkAk(ak('rsa', { scheme: { scheme: TPM_ALG.OAEP, hashAlg: TPM_ALG.SHA256 } }).pub))).toMatchObject(
      tpmErr('RSA AK scheme must be RSASSA or RSAPSS'),
    );
    expect(refusal(() => checkAk(softKey(akTemplate('rsa'), {}, '', 1024).pub))).toMatchObject(tpmErr('RSA AK must be at least 2048 bits'));
    expect(refusal(() => checkAk(ak('ecc', { scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 } }).pub))).toMatchObject(
      tpmErr('ECC AK scheme must be ECDSA'),
    );
    expect(refusal(() => checkAk(ak('ecc', { curve: 0x0005 }).pub))).toMatchObject(tpmErr('ECC AK curve must be P-256 or P-384'));
  });
});

describe('TPM signatures', () => {
  const msg = Buffer.from('TPMS_ATTEST bytes');

  it('verifies ECDSA, RSASSA and RSAPSS signatures with the AK’s own scheme', () => {
    for (const k of [ak('ecc'), ak('rsa'), ak('rsa', { scheme: { scheme: TPM_ALG.RSAPSS, hashAlg: TPM_ALG.SHA256 } })]) {
      expect(() => verifyTpmSignature(k.pub, publicKeyOf(k.pub), msg, tpmSign(k, msg))).not.toThrow();
      expect(refusal(() => verifyTpmSignature(k.pub, publicKeyOf(k.pub), Buffer.from('other'), tpmSign(k, msg)))).toMatchObject(
        tpmErr('signature does not verify with the AK'),
      );
    }
  });

  it('verifies a P-384 ECDSA signature (48-byte components)', () => {
    const k = softKey(akTemplate('ecc'), { curve: TPM_ECC.NIST_P384, scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA384 } }, 'secp384r1');
    expect(() => verifyTpmSignature(k.pub, publicKeyOf(k.pub), msg, tpmSign(k, msg))).not.toThrow();
  });

  it('refuses a signature under another scheme or hash than the AK’s, even one that verifies', () => {
    const k = ak('rsa');
    const pss = tpmSign(k, msg, { sigAlg: TPM_ALG.RSAPSS });
    expect(refusal(() => verifyTpmSignature(k.pub, publicKeyOf(k.pub), msg, pss))).toMatchObject(tpmErr("signature scheme or hash differs from the AK's"));
    const e = ak('ecc');
    const h384 = tpmSign(e, msg, { hash: TPM_ALG.SHA384 });
    expect(refusal(() => verifyTpmSignature(e.pub, publicKeyOf(e.pub), msg, h384))).toMatchObject(tpmErr("signature scheme or hash differs from the AK's"));
  });

  it('accepts ECDSA components a TPM sent without leading zeros, refuses components longer than the curve', () => {
    const k = ak('ecc');
    let rs: Buffer;
    do rs = sign('sha256', msg, { key: k.key, dsaEncoding: 'ieee-p1363' });
    while (rs[0] !== 0);
    const short = marshalSignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: rs.subarray(1, 32), s: rs.subarray(32) });
    expect(() => verifyTpmSignature(k.pub, publicKeyOf(k.pub), msg, short)).not.toThrow();
    const long = marshalSignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: Buffer.concat([Buffer.alloc(1), rs.subarray(0, 32)]), s: rs.subarray(32) });
    expect(refusal(() => verifyTpmSignature(k.pub, publicKeyOf(k.pub), msg, long))).toMatchObject(tpmErr('ECDSA signature component too long'));
    const longS = marshalSignature({
      sigAlg: TPM_ALG.ECDSA,
      hash: TPM_ALG.SHA256,
      r: rs.subarray(0, 32),
      s: Buffer.concat([Buffer.alloc(1), rs.subarray(32)]),
    });
    expect(refusal(() => verifyTpmSignature(k.pub, publicKeyOf(k.pub), msg, longS))).toMatchObject(tpmErr('ECDSA signature component too long'));
  });

  it('a malformed RSA signature is a failed verification, not a crash', () => {
    const k = ak('rsa');
    const junk = marshalSignature({ sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256, sig: Buffer.alloc(3, 1) });
    expect(refusal(() => verifyTpmSignature(k.pub, publicKeyOf(k.pub), msg, junk))).toMatchObject(tpmErr('signature does not verify with the AK'));
  });
});

describe('TPM quotes', () => {
  const quoted = (k: SoftKey, o: QuoteOpts = {}) => {
    const a = attest(k, o);
    return { a, s: tpmSign(k, a) };
  };

  it('accepts a quote over the nonce and the requested PCRs, and returns its counters', () => {
    const k = ak();
    const { a, s } = quoted(k, { resetCount: 7, restartCount: 2, clock: 99n });
    const { attest: at } = verifyQuote(k.pub, a, s, NONCE, SEL, values());
    expect(at.clockInfo).toEqual({ clock: 99n, resetCount: 7, restartCount: 2, safe: true });
  });

  it('refuses a certify structure presented as a quote', () => {
    const k = ak();
    const { a, s } = quoted(k, { type: TPM_ST.ATTEST_CERTIFY });
    expect(refusal(() => verifyQuote(k.pub, a, s, NONCE, SEL, values()))).toMatchObject(tpmErr('attest is not a quote'));
  });

  it('refuses a quote signed by another key, or whose AK fails the profile', () => {
    const k = ak();
    const { a } = quoted(k);
    expect(refusal(() => verifyQuote(k.pub, a, tpmSign(ak(), a), NONCE, SEL, values()))).toMatchObject(tpmErr('signature does not verify with the AK'));
    const weak = ak('ecc', { attributes: akTemplate('ecc').attributes & ~TPMA_OBJECT.restricted });
    const q = quoted(weak);
    expect(refusal(() => verifyQuote(weak.pub, q.a, q.s, NONCE, SEL, values())).message).toMatch(/AK lacks required attributes: restricted/);
  });

  it('refuses a quote over another nonce (a replayed quote), of any length', () => {
    const k = ak();
    for (const nonce of [randomBytes(32), NONCE.subarray(0, 31), Buffer.concat([NONCE, Buffer.alloc(1)])]) {
      const { a, s } = quoted(k, { nonce });
      expect(refusal(() => verifyQuote(k.pub, a, s, NONCE, SEL, values()))).toMatchObject(tpmErr('quote nonce mismatch'));
    }
  });

  it('refuses a quote over other PCRs than requested, naming both', () => {
    const k = ak();
    const fewer: PcrSelection[] = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1] }];
    const { a, s } = quoted(k, { sel: fewer });
    expect(refusal(() => verifyQuote(k.pub, a, s, NONCE, SEL, values()))).toMatchObject(tpmErr('quote covers sha256:0,1, not the requested sha256:0,1,7'));
  });

  it('refuses PCR values that do not hash to the quoted digest (any digest length)', () => {
    const k = ak();
    const { a, s } = quoted(k);
    const lying = values();
    lying.get(TPM_ALG.SHA256)!.set(7, Buffer.alloc(32, 9));
    expect(refusal(() => verifyQuote(k.pub, a, s, NONCE, SEL, lying))).toMatchObject(tpmErr('PCR values do not match the quoted digest'));
    const shortDigest = quoted(k, { digest: Buffer.alloc(20) });
    expect(refusal(() => verifyQuote(k.pub, shortDigest.a, shortDigest.s, NONCE, SEL, values()))).toMatchObject(
      tpmErr('PCR values do not match the quoted digest'),
    );
  });

  it('refuses a quote whose clock is not safe', () => {
    const k = ak();
    const { a, s } = quoted(k, { safe: 0 });
    expect(refusal(() => verifyQuote(k.pub, a, s, NONCE, SEL, values()))).toMatchObject(tpmErr('TPM clock is not safe (it may have been rolled back)'));
  });

  it('pcrDigest hashes the values bank by bank, PCRs in order, and needs every one at its size', () => {
    const sel: PcrSelection[] = [
      { hash: TPM_ALG.SHA256, pcrs: [0, 2] },
      { hash: TPM_ALG.SHA384, pcrs: [1] },
    ];
    const v = new Map([
      [
        TPM_ALG.SHA256,
        new Map([
          [0, Buffer.alloc(32, 1)],
          [2, Buffer.alloc(32, 2)],
        ]),
      ],
      [TPM_ALG.SHA384, new Map([[1, Buffer.alloc(48, 3)]])],
    ]);
    const expected = createHash('sha256')
      .update(Buffer.concat([Buffer.alloc(32, 1), Buffer.alloc(32, 2), Buffer.alloc(48, 3)]))
      .digest();
    expect(pcrDigest(TPM_ALG.SHA256, sel, v)).toEqual(expected);
    expect(pcrDigest(TPM_ALG.SHA384, sel, v)).toEqual(
      createHash('sha384')
        .update(Buffer.concat([Buffer.alloc(32, 1), Buffer.alloc(32, 2), Buffer.alloc(48, 3)]))
        .digest(),
    );
    v.get(TPM_ALG.SHA256)!.delete(2);
    expect(refusal(() => pcrDigest(TPM_ALG.SHA256, sel, v))).toMatchObject(tpmErr('missing PCR value sha256:2'));
    expect(refusal(() => pcrDigest(TPM_ALG.SHA256, [{ hash: TPM_ALG.SHA512, pcrs: [0] }], v))).toMatchObject(tpmErr('missing PCR value sha512:0'));
    v.get(TPM_ALG.SHA256)!.set(2, Buffer.alloc(31));
    expect(refusal(() => pcrDigest(TPM_ALG.SHA256, sel, v))).toMatchObject(tpmErr('PCR 2 value has the wrong size'));
  });
});

describe('TPM counters', () => {
  const c = (resetCount: number, restartCount: number, clock: bigint) => ({ resetCount, restartCount, clock });
  it('accept the first quote, equal counters, and any forward move', () => {
    expect(() => checkCounters(undefined, c(0, 0, 0n))).not.toThrow();
    expect(() => checkCounters(c(3, 2, 100n), c(3, 2, 100n))).not.toThrow();
    expect(() => checkCounters(c(3, 2, 100n), c(3, 2, 101n))).not.toThrow();
    // A reboot resets restartCount and the clock: a larger resetCount wins over both.
    expect(() => checkCounters(c(3, 2, 100n), c(4, 0, 0n))).not.toThrow();
    expect(() => checkCounters(c(3, 2, 100n), c(3, 3, 0n))).not.toThrow();
  });
  it('refuse a quote from before the last accepted one (a replayed quote)', () => {
    expect(refusal(() => checkCounters(c(3, 2, 100n), c(2, 9, 999n)))).toMatchObject(tpmErr('TPM resetCount went backwards (replayed quote)'));
    expect(refusal(() => checkCounters(c(3, 2, 100n), c(3, 1, 999n)))).toMatchObject(tpmErr('TPM restartCount went backwards (replayed quote)'));
    expect(refusal(() => checkCounters(c(3, 2, 100n), c(3, 2, 99n)))).toMatchObject(tpmErr('TPM clock went backwards (replayed quote)'));
  });
});

describe('TPM2_Certify of a TPM-resident agent key', () => {
  const certify = (signer: SoftKey, key: SoftKey, o: QuoteOpts = {}) => {
    const a = attest(signer, { type: TPM_ST.ATTEST_CERTIFY, name: objectName(key.pub), ...o });
    return { a, s: tpmSign(signer, a) };
  };

  it('accepts a certification by the AK of exactly this key, over the nonce', () => {
    const k = ak();
    const resident = softKey(residentKeyTemplate());
    const { a, s } = certify(k, resident);
    expect(() => verifyCertify(k.pub, resident.pub, a, s, NONCE)).not.toThrow();
  });

  it.each([
    ['fixedTPM', TPMA_OBJECT.fixedTPM],
    ['fixedParent', TPMA_OBJECT.fixedParent],
    ['sensitiveDataOrigin', TPMA_OBJECT.sensitiveDataOrigin],
    ['sign', TPMA_OBJECT.sign],
  ])('refuses a resident key without %s (it could have been imported or exported)', (_n, bit) => {
    const k = ak();
    const resident = softKey(residentKeyTemplate(), { attributes: residentKeyTemplate().attributes & ~bit });
    const { a, s } = certify(k, resident);
    expect(refusal(() => verifyCertify(k.pub, resident.pub, a, s, NONCE))).toMatchObject(
      tpmErr('TPM-resident key must be fixedTPM, fixedParent, sensitiveDataOrigin and sign'),
    );
  });

  it('refuses a restricted or decrypting resident key (it could sign TPM structures or unwrap secrets)', () => {
    const k = ak();
    for (const bit of [TPMA_OBJECT.restricted, TPMA_OBJECT.decrypt]) {
      const resident = softKey(residentKeyTemplate(), { attributes: residentKeyTemplate().attributes | bit });
      const { a, s } = certify(k, resident);
      expect(refusal(() => verifyCertify(k.pub, resident.pub, a, s, NONCE))).toMatchObject(
        tpmErr('TPM-resident agent key must be neither restricted nor decrypt'),
      );
    }
  });

  it('refuses a quote presented as a certification, another signer, another nonce, another key’s Name', () => {
    const k = ak();
    const resident = softKey(residentKeyTemplate());
    const q = attest(k);
    expect(refusal(() => verifyCertify(k.pub, resident.pub, q, tpmSign(k, q), NONCE))).toMatchObject(tpmErr('certify evidence is not a TPMS_CERTIFY_INFO'));
    const { a } = certify(k, resident);
    expect(refusal(() => verifyCertify(k.pub, resident.pub, a, tpmSign(ak(), a), NONCE))).toMatchObject(tpmErr('signature does not verify with the AK'));
    for (const nonce of [randomBytes(32), NONCE.subarray(1)]) {
      const c = certify(k, resident, { nonce });
      expect(refusal(() => verifyCertify(k.pub, resident.pub, c.a, c.s, NONCE))).toMatchObject(tpmErr('certify nonce mismatch'));
    }
    const other = softKey(residentKeyTemplate());
    const c = certify(k, other);
    expect(refusal(() => verifyCertify(k.pub, resident.pub, c.a, c.s, NONCE))).toMatchObject(tpmErr('certified Name is not the Name of the presented key'));
  });
});

describe('MakeCredential', () => {
  it('KDFa and KDFe agree with the specification written out independently, at lengths that are not a whole block', () => {
    const key = randomBytes(32);
    const u = randomBytes(34);
    const v = randomBytes(7);
    for (const bits of [128, 256, 264, 512, 1024]) {
      expect(kdfa('sha256', key, 'STORAGE', u, v, bits)).toEqual(refKdfa('sha256', key, 'STORAGE', u, v, bits));
      expect(kdfe('sha384', key, 'IDENTITY', u, v, bits)).toEqual(refKdfe('sha384', key, 'IDENTITY', u, v, bits));
    }
  });

  const rsaEk = () => softKey(EK_TEMPLATES[0]!.template);
  const eccEk = () => softKey(EK_TEMPLATES[1]!.template, {}, 'secp384r1');

  it('an RSA EK (template L-1) recovers the credential only with the AK Name it was made for', () => {
    const ek = rsaEk();
    const akName = objectName(ak().pub);
    const secret = randomBytes(32);
    const cred = makeCredential(ek.pub, akName, secret);
    expect(activate(ek.pub, ek.key, akName, cred.credentialBlob, cred.secret)).toEqual(secret);
    expect(() => activate(ek.pub, ek.key, objectName(ak().pub), cred.credentialBlob, cred.secret)).toThrow('integrity check failed');
    // Another EK cannot even decrypt the seed.
    expect(() => activate(ek.pub, rsaEk().key, akName, cred.credentialBlob, cred.secret)).toThrow();
  });

  it('an ECC EK (template H-3, P-384) recovers the credential by ECDH with the ephemeral key', () => {
    const ek = eccEk();
    const akName = objectName(ak().pub);
    const secret = randomBytes(32);
    const cred = makeCredential(ek.pub, akName, secret);
    expect(activate(ek.pub, ek.key, akName, cred.credentialBlob, cred.secret, { curve: 'secp384r1', size: 48 })).toEqual(secret);
    expect(() => activate(ek.pub, ek.key, objectName(ak().pub), cred.credentialBlob, cred.secret, { curve: 'secp384r1', size: 48 })).toThrow(
      'integrity check failed',
    );
  });

  it('makes a fresh seed every time', () => {
    const ek = rsaEk();
    const akName = objectName(ak().pub);
    const a = makeCredential(ek.pub, akName, Buffer.alloc(32, 1));
    const b = makeCredential(ek.pub, akName, Buffer.alloc(32, 1));
    expect(a.secret.equals(b.secret)).toBe(false);
    expect(a.credentialBlob.equals(b.credentialBlob)).toBe(false);
  });

  it('refuses EKs that are not AES-CFB storage keys, unsupported name algorithms or curves, and credentials longer than the digest', () => {
    const ek = rsaEk();
    const akName = objectName(ak().pub);
    const noAes = { ...ek.pub, symmetric: { algorithm: TPM_ALG.NULL } } as TpmPublic;
    expect(refusal(() => makeCredential(noAes, akName, randomBytes(32)))).toMatchObject(tpmErr('EK is not an AES-CFB storage key'));
    // CFB mode but another cipher (TPM_ALG_CAMELLIA 0x0026): the algorithm alone must refuse it.
    const camellia = { ...ek.pub, symmetric: { algorithm: 0x0026, keyBits: 128, mode: TPM_ALG.CFB } } as TpmPublic;
    expect(refusal(() => makeCredential(camellia, akName, randomBytes(32)))).toMatchObject(tpmErr('EK is not an AES-CFB storage key'));
    const notCfb = { ...ek.pub, symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: 0x0044 } } as TpmPublic;
    expect(refusal(() => makeCredential(notCfb, akName, randomBytes(32)))).toMatchObject(tpmErr('EK is not an AES-CFB storage key'));
    expect(refusal(() => makeCredential({ ...ek.pub, nameAlg: 0x0099 } as TpmPublic, akName, randomBytes(32)))).toMatchObject(tpmErr('EK nameAlg unsupported'));
    const ecc = eccEk();
    expect(refusal(() => makeCredential({ ...ecc.pub, curve: 0x0005 } as TpmPublic, akName, randomBytes(32)))).toMatchObject(tpmErr('EK curve unsupported'));
    expect(() => makeCredential(ek.pub, akName, randomBytes(33))).toThrow('credential longer than the EK name digest');
    expect(() => makeCredential(ek.pub, akName, randomBytes(32))).not.toThrow();
  });
});
