/**
 * The Nitro document format rules on synthetic documents from a test PKI made here (the
 * genuine vectors are in nitro-vectors.test.ts): the variants genuine NSMs emit are accepted,
 * every departure from the format is refused with a typed reason.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cborHead, encodeArray, encodeBytes, encodeInt, encodeMap, encodeText } from '../../src/attestation/nitro/cbor.js';
import { MAX_CABUNDLE, MAX_NITRO_DOCUMENT_BYTES, parseNitroDocument, sigStructure } from '../../src/attestation/nitro/document.js';
import { NitroEvidenceError, type NitroFailure } from '../../src/attestation/nitro/errors.js';
import { verifyNitroDocument, type NitroVerifyOptions } from '../../src/attestation/nitro/verify.js';
import { coseSign1, debugPcrs, nitroCert, nitroDocument, nitroPki, productionPcrs, type NitroDocOptions } from '../helpers/nitro-doc.js';

const at = new Date('2026-06-01T12:00:00Z');
const pki = nitroPki(at);
const B = Buffer.alloc(32, 0xb0);
const base: NitroDocOptions = { pki, timestamp: at.getTime(), nonce: B };
const trust = (extra: Partial<NitroVerifyOptions> = {}): NitroVerifyOptions => ({ anchors: [pki.root.der], at, allowDebug: false, nonce: B, ...extra });

function reasonOf(f: () => unknown): { reason: NitroFailure; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof NitroEvidenceError) return { reason: e.reason, message: e.message };
    throw new Error(`untyped error: ${(e as Error)?.stack ?? String(e)}`);
  }
  throw new Error('accepted');
}
const refused = (doc: Buffer, o: Partial<NitroVerifyOptions> = {}) => reasonOf(() => verifyNitroDocument(doc, trust(o)));

describe('synthetic Nitro documents in the genuine format', () => {
  it('accepts the variants genuine NSMs emit: untagged, tag 18, an indefinite-length payload map, absent fields left out or null', () => {
    for (const v of [{}, { tagged: true }, { indefinite: true }, { omitAbsent: true }, { indefinite: true, omitAbsent: true, tagged: true }]) {
      const ok = verifyNitroDocument(nitroDocument({ ...base, ...v }), trust());
      expect(ok.document.nonce).toEqual(B);
      expect(ok.document.userData).toBeUndefined();
      expect(ok.document.publicKey).toBeUndefined();
      expect(ok.debug).toBe(false);
    }
  });

  it('carries public_key and user_data as opaque bytes, and an empty user_data', () => {
    const spki = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
    const ok = verifyNitroDocument(nitroDocument({ ...base, publicKey: spki, userData: Buffer.alloc(0) }), trust());
    expect(ok.document.publicKey).toEqual(spki);
    expect(ok.document.userData).toEqual(Buffer.alloc(0));
  });

  it('derives selectors from PCRs 0..8 and the module id', () => {
    const ok = verifyNitroDocument(nitroDocument({ ...base, moduleId: 'i-abc-enc1' }), trust());
    expect(ok.selectors).toHaveLength(10);
    expect(ok.selectors[0]).toEqual({ type: 'nitro', value: `pcr:0:${Buffer.alloc(48, 16).toString('hex')}` });
    expect(ok.selectors[8]).toEqual({ type: 'nitro', value: `pcr:8:${Buffer.alloc(48, 24).toString('hex')}` });
    expect(ok.selectors[9]).toEqual({ type: 'nitro', value: 'module_id:i-abc-enc1' });
    // A PCR the document does not have yields no selector.
    const few = new Map([...productionPcrs()].filter(([i]) => i !== 5));
    expect(verifyNitroDocument(nitroDocument({ ...base, pcrs: few }), trust()).selectors.some((s) => s.value.startsWith('pcr:5:'))).toBe(false);
  });

  it('refuses a debug enclave unless allowed, a missing or different nonce, a timestamp outside the window', () => {
    const dbg = nitroDocument({ ...base, pcrs: debugPcrs() });
    expect(refused(dbg)).toMatchObject({ reason: 'debug', message: expect.stringMatching(/^attestation\(nitro\): .*debug mode/) });
    expect(verifyNitroDocument(dbg, trust({ allowDebug: true })).debug).toBe(true);
    expect(refused(nitroDocument({ ...base, nonce: undefined })).reason).toBe('nonce');
    expect(refused(nitroDocument({ ...base, nonce: Buffer.alloc(32, 0xb1) })).reason).toBe('nonce');
    expect(refused(nitroDocument({ ...base, nonce: Buffer.concat([B, Buffer.alloc(1)]) })).reason).toBe('nonce');
    const window = { notBefore: at.getTime() - 1000, notAfter: at.getTime() + 1000 };
    expect(verifyNitroDocument(nitroDocument({ ...base, timestamp: at.getTime() + 1000 }), trust({ timestampWindow: window })).document.timestamp).toBe(
      at.getTime() + 1000,
    );
    expect(refused(nitroDocument({ ...base, timestamp: at.getTime() + 1001 }), { timestampWindow: window }).reason).toBe('timestamp');
    expect(refused(nitroDocument({ ...base, timestamp: at.getTime() - 1001 }), { timestampWindow: window }).reason).toBe('timestamp');
  });

  it('refuses a signature by another key, a signature over other bytes, and a leaf that is not P-384', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    expect(refused(nitroDocument({ ...base, signer: other })).reason).toBe('signature');
    const p256 = nitroCert({ subject: pki.leaf.subject, issuer: pki.intermediates[2], ca: false, notBefore: at, notAfter: at, curve: 'prime256v1' });
    expect(refused(nitroDocument({ ...base, pki: { ...pki, leaf: p256 }, signer: pki.leaf.key }))).toMatchObject({
      reason: 'malformed',
      message: expect.stringMatching(/not ECDSA P-384/),
    });
    const good = parseNitroDocument(nitroDocument(base));
    // A DER-encoded signature instead of raw r‖s is refused by length.
    const der = sign('sha384', good.toBeSigned, pki.leaf.key);
    const withDer = encodeArray([encodeBytes(good.protected), Buffer.from([0xa0]), encodeBytes(good.payload), encodeBytes(der)]);
    expect(refused(withDer)).toMatchObject({ reason: 'malformed', message: expect.stringMatching(/96 bytes/) });
    // Signed over a Sig_structure with external_aad, or with "Signature" (COSE_Sign): refused.
    const aad = encodeArray([encodeText('Signature1'), encodeBytes(good.protected), encodeBytes(Buffer.from('x')), encodeBytes(good.payload)]);
    const wrongContext = encodeArray([encodeText('Signature'), encodeBytes(good.protected), encodeBytes(Buffer.alloc(0)), encodeBytes(good.payload)]);
    for (const tbs of [aad, wrongContext, good.payload]) {
      const sig = sign('sha384', tbs, { key: pki.leaf.key, dsaEncoding: 'ieee-p1363' });
      expect(refused(encodeArray([encodeBytes(good.protected), Buffer.from([0xa0]), encodeBytes(good.payload), encodeBytes(sig)])).reason).toBe('signature');
    }
    expect(sigStructure(good.protected, good.payload)).toEqual(good.toBeSigned);
  });

  it('refuses COSE envelopes that are not exactly the Nitro profile', () => {
    const { payload } = parseNitroDocument(nitroDocument(base));
    const signed = (prot: Buffer, unprot: Buffer = Buffer.from([0xa0])) => {
      const sig = sign('sha384', sigStructure(prot, payload), { key: pki.leaf.key, dsaEncoding: 'ieee-p1363' });
      return encodeArray([encodeBytes(prot), unprot, encodeBytes(payload), encodeBytes(sig)]);
    };
    const cases: Array<[string, Buffer, RegExp]> = [
      ['alg ES256', signed(encodeMap([[encodeInt(1), encodeInt(-7)]])), /protected header/],
      [
        'an extra protected header',
        signed(
          encodeMap([
            [encodeInt(1), encodeInt(-35)],
            [encodeInt(4), encodeBytes(Buffer.from('kid'))],
          ]),
        ),
        /protected header/,
      ],
      ['an empty protected header', signed(Buffer.alloc(0)), /truncated|protected header/],
      [
        'a non-empty unprotected header',
        signed(Buffer.from([0xa1, 0x01, 0x38, 0x22]), encodeMap([[encodeInt(4), encodeBytes(Buffer.from('kid'))]])),
        /unprotected/,
      ],
      ['an array of 3', encodeArray([encodeBytes(Buffer.from([0xa1, 0x01, 0x38, 0x22])), Buffer.from([0xa0]), encodeBytes(payload)]), /array of 4/],
      [
        'a detached payload',
        encodeArray([encodeBytes(Buffer.from([0xa1, 0x01, 0x38, 0x22])), Buffer.from([0xa0]), Buffer.from([0xf6]), encodeBytes(Buffer.alloc(96))]),
        /detached/,
      ],
      ['a map instead of the array', encodeMap([]), /array of 4/],
      ['tag 98 (COSE_Sign)', Buffer.concat([cborHead(6, 98), nitroDocument(base)]), /tagged 98/],
      ['tag 18 twice', Buffer.concat([cborHead(6, 18), cborHead(6, 18), nitroDocument(base)]), /array of 4/],
    ];
    for (const [name, doc, m] of cases) expect(refused(doc), name).toMatchObject({ reason: 'malformed', message: expect.stringMatching(m) });
  });

  it('refuses payloads that depart from the document fields', () => {
    const key = (k: string) => encodeText(k);
    const cases: Array<[string, NitroDocOptions, RegExp]> = [
      ['an unknown field', { ...base, extra: [[key('colour'), encodeText('red')]] }, /unknown document field "colour"/],
      ['a duplicate field', { ...base, extra: [[key('nonce'), encodeBytes(Buffer.alloc(32))]] }, /duplicate map key/],
      ['an integer key', { ...base, extra: [[encodeInt(1), encodeInt(1)]] }, /unknown document field/],
      ['an empty module_id', { ...base, moduleId: '' }, /module_id/],
      ['a module_id with a newline', { ...base, moduleId: 'i-1\nx' }, /module_id/],
      ['PCRs of 32 bytes', { ...base, pcrs: new Map([[0, Buffer.alloc(32, 1)]]) }, /PCR0 is 32 bytes/],
      ['a PCR index 32', { ...base, pcrs: new Map([...productionPcrs(), [32, Buffer.alloc(48)]]) }, /PCR index/],
      ['no PCRs', { ...base, pcrs: new Map() }, /pcrs has 0 entries/],
      ['no PCR0', { ...base, pcrs: new Map([[1, Buffer.alloc(48, 1)]]) }, /no PCR0/],
      ['an empty cabundle', { ...base, cabundle: [] }, /cabundle has 0/],
      ['too long a cabundle', { ...base, cabundle: Array.from({ length: MAX_CABUNDLE + 1 }, () => pki.root.der) }, /cabundle has 8/],
      ['a nonce of 513 bytes', { ...base, nonce: Buffer.alloc(513) }, /nonce is 513 bytes/],
      ['a user_data of 513 bytes', { ...base, userData: Buffer.alloc(513) }, /user_data is 513 bytes/],
      ['an empty public_key', { ...base, publicKey: Buffer.alloc(0) }, /public_key is 0 bytes/],
      ['a timestamp of 0', { ...base, timestamp: 0 }, /timestamp/],
    ];
    for (const [name, o, m] of cases) expect(refused(nitroDocument(o)), name).toMatchObject({ reason: 'malformed', message: expect.stringMatching(m) });
  });

  it('refuses field values of the wrong CBOR type', () => {
    const entries = (over: Record<string, Buffer>) => {
      const fields: Array<[string, Buffer]> = [
        ['module_id', encodeText('i-1')],
        ['digest', encodeText('SHA384')],
        ['timestamp', encodeInt(at.getTime())],
        ['pcrs', encodeMap([[encodeInt(0), encodeBytes(Buffer.alloc(48, 1))]])],
        ['certificate', encodeBytes(pki.leaf.der)],
        ['cabundle', encodeArray([pki.root.der, ...pki.intermediates.map((c) => c.der)].map(encodeBytes))],
        ['public_key', Buffer.from([0xf6])],
        ['user_data', Buffer.from([0xf6])],
        ['nonce', encodeBytes(B)],
      ];
      return encodeMap(fields.map(([k, v]) => [encodeText(k), over[k] ?? v] as const));
    };
    expect(verifyNitroDocument(coseSign1(entries({}), pki.leaf.key), trust()).document.moduleId).toBe('i-1');
    const cases: Array<[string, Record<string, Buffer>, RegExp]> = [
      ['digest SHA256', { digest: encodeText('SHA256') }, /digest/],
      ['a text timestamp', { timestamp: encodeText('1') }, /timestamp/],
      ['a negative timestamp', { timestamp: encodeInt(-5) }, /timestamp/],
      ['a null certificate', { certificate: Buffer.from([0xf6]) }, /no certificate/],
      ['a text certificate', { certificate: encodeText('x') }, /certificate is not a byte string/],
      ['pcrs as an array', { pcrs: encodeArray([]) }, /pcrs is not a map/],
      ['a text PCR', { pcrs: encodeMap([[encodeInt(0), encodeText('x')]]) }, /PCR0 is not a byte string/],
      ['a text PCR index', { pcrs: encodeMap([[encodeText('0'), encodeBytes(Buffer.alloc(48))]]) }, /PCR index/],
      ['a negative PCR index', { pcrs: encodeMap([[encodeInt(-1), encodeBytes(Buffer.alloc(48))]]) }, /PCR index/],
      ['cabundle as a byte string', { cabundle: encodeBytes(pki.root.der) }, /cabundle is not an array/],
      ['a text in cabundle', { cabundle: encodeArray([encodeText('x')]) }, /cabundle\[0\]/],
      ['a boolean nonce', { nonce: Buffer.from([0xf5]) }, /nonce is not a byte string/],
      ['a tagged nonce', { nonce: Buffer.concat([cborHead(6, 24), encodeBytes(B)]) }, /nonce is not a byte string/],
      ['a certificate that is not DER', { certificate: encodeBytes(Buffer.from('not a certificate')) }, /leaf certificate is not a well-formed/],
    ];
    for (const [name, over, m] of cases)
      expect(refused(coseSign1(entries(over), pki.leaf.key)), name).toMatchObject({ reason: 'malformed', message: expect.stringMatching(m) });
    // A payload that is not a map at all.
    expect(refused(coseSign1(encodeArray([]), pki.leaf.key)).message).toMatch(/payload is not a CBOR map/);
  });

  it(`refuses documents larger than ${MAX_NITRO_DOCUMENT_BYTES} bytes before decoding them`, () => {
    expect(refused(Buffer.alloc(MAX_NITRO_DOCUMENT_BYTES + 1, 0x84)).message).toMatch(/larger than 16384 bytes/);
  });

  it('refuses chains that do not fit: a CA leaf, a missing intermediate, an intermediate of another chain, expiry of any certificate', () => {
    const ca = nitroCert({
      subject: pki.leaf.subject,
      issuer: pki.intermediates[2],
      ca: true,
      notBefore: new Date(at.getTime() - 1000),
      notAfter: new Date(at.getTime() + 1000),
    });
    const caLeaf = { ...pki, leaf: ca };
    expect(refused(nitroDocument({ ...base, pki: caLeaf }))).toMatchObject({ reason: 'chain', message: expect.stringMatching(/leaf certificate is a CA/) });
    const bundle = [pki.root.der, ...pki.intermediates.map((c) => c.der)];
    expect(refused(nitroDocument({ ...base, cabundle: bundle.slice(0, 3) })).reason).toBe('chain');
    const other = nitroPki(at, { root: pki.root, label: 'test' });
    expect(refused(nitroDocument({ ...base, cabundle: [bundle[0]!, bundle[1]!, other.intermediates[1]!.der, bundle[3]!] })).reason).toBe('chain');
    // The leaf is valid from at-1h to at+2h; the instance from at-1h to at+1d.
    expect(refused(nitroDocument(base), { at: new Date(at.getTime() + 2 * 3600_000 + 1000) }).message).toMatch(/after notAfter/);
    expect(refused(nitroDocument(base), { at: new Date(at.getTime() - 3600_000 - 1000) }).message).toMatch(/before notBefore/);
    expect(refused(nitroDocument(base), { anchors: [] }).message).toMatch(/no Nitro root/);
  });
});
