import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CborMap,
  CborTag,
  MAX_CBOR_DEPTH,
  MAX_CBOR_ITEMS,
  decodeCbor,
  encodeBytes,
  encodeInt,
  encodeText,
  cborHead,
} from '../../src/attestation/nitro/cbor.js';
import { NitroEvidenceError } from '../../src/attestation/nitro/errors.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function refused(bytes: Buffer, message: RegExp): void {
  let err: unknown;
  try {
    decodeCbor(bytes);
  } catch (e) {
    err = e;
  }
  expect(err, bytes.toString('hex')).toBeInstanceOf(NitroEvidenceError);
  expect((err as NitroEvidenceError).reason).toBe('malformed');
  expect((err as Error).message).toMatch(message);
}

describe('the strict CBOR decoder', () => {
  it('decodes the items attestation documents are made of (RFC 8949 appendix A values)', () => {
    expect(decodeCbor(hex('00'))).toBe(0);
    expect(decodeCbor(hex('17'))).toBe(23);
    expect(decodeCbor(hex('1818'))).toBe(24);
    expect(decodeCbor(hex('1903e8'))).toBe(1000);
    expect(decodeCbor(hex('1a000f4240'))).toBe(1000000);
    expect(decodeCbor(hex('1b000000e8d4a51000'))).toBe(1000000000000);
    expect(decodeCbor(hex('20'))).toBe(-1);
    expect(decodeCbor(hex('3822'))).toBe(-35);
    expect(decodeCbor(hex('4401020304'))).toEqual(hex('01020304'));
    expect(decodeCbor(hex('6449455446'))).toBe('IETF');
    expect(decodeCbor(hex('62c3bc'))).toBe('ü');
    expect(decodeCbor(hex('f4'))).toBe(false);
    expect(decodeCbor(hex('f5'))).toBe(true);
    expect(decodeCbor(hex('f6'))).toBe(null);
    expect(decodeCbor(hex('83010203'))).toEqual([1, 2, 3]);
    expect(decodeCbor(hex('9f0102ff'))).toEqual([1, 2]);
    const m = decodeCbor(hex('a201020304')) as CborMap;
    expect(m).toBeInstanceOf(CborMap);
    expect(m.get(1)).toBe(2);
    expect(m.get(3)).toBe(4);
    expect(m.get(5)).toBeUndefined();
    const indef = decodeCbor(hex('bf616101616202ff')) as CborMap;
    expect(indef.entries).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
    const tagged = decodeCbor(hex('d28440a040f6')) as CborTag;
    expect(tagged).toBeInstanceOf(CborTag);
    expect(tagged.tag).toBe(18);
    expect(tagged.value).toEqual([Buffer.alloc(0), new CborMap([]), Buffer.alloc(0), null]);
  });

  it.each([
    ['a non-shortest 1-byte argument', '1817', /non-shortest/],
    ['a non-shortest 2-byte argument', '190017', /non-shortest/],
    ['a non-shortest 4-byte argument', '1a0000ffff', /non-shortest/],
    ['a non-shortest 8-byte argument', '1b00000000ffffffff', /non-shortest/],
    ['a non-shortest length', '5801ff', /non-shortest/],
    ['an integer beyond 2^53 - 1', '1b0020000000000000', /beyond 2\^53/],
    ['a negative integer beyond -(2^53)', '3b0020000000000000', /beyond 2\^53/],
    ['reserved additional information', '1c', /reserved/],
    ['trailing bytes', '0000', /1 trailing byte/],
    ['a truncated argument', '19ff', /past the end|truncated/],
    ['a byte string longer than the input, before allocating it', '5affffffff00', /past the end/],
    ['an empty input', '', /truncated/],
    ['a truncated array', '830102', /truncated/],
    ['a truncated indefinite map', 'bf6161', /truncated/],
    ['duplicate map keys', 'a201010102', /duplicate map key/],
    ['duplicate keys in an indefinite map', 'bf616101616102ff', /duplicate map key/],
    ['an indefinite-length byte string', '5f4101ff', /indefinite length/],
    ['an indefinite-length text string', '7f6161ff', /indefinite length/],
    ['a half float', 'f93c00', /float/],
    ['a single float', 'fa47c35000', /float/],
    ['a double float', 'fb3ff199999999999a', /float/],
    ['undefined', 'f7', /simple value/],
    ['a simple value', 'f820', /simple value/],
    ['a break at the top level', 'ff', /break/],
    ['a break inside a definite array', '81ff', /break/],
    ['a break as a map value', 'bf01ffff', /break/],
    ['a break after a tag', 'd2ff', /break/],
    ['invalid UTF-8 text', '62c328', /UTF-8/],
    ['an overlong UTF-8 encoding', '62c0af', /UTF-8/],
  ])('refuses %s', (_name, h, message) => refused(hex(h), message));

  it(`refuses nesting deeper than ${MAX_CBOR_DEPTH} and containers of more than ${MAX_CBOR_ITEMS} items`, () => {
    expect(() => decodeCbor(Buffer.concat([Buffer.alloc(MAX_CBOR_DEPTH, 0x81), hex('00')]))).not.toThrow();
    refused(Buffer.concat([Buffer.alloc(MAX_CBOR_DEPTH + 1, 0x81), hex('00')]), /deeper than/);
    refused(Buffer.concat([Buffer.alloc(MAX_CBOR_DEPTH + 1, 0x9f), hex('00')]), /deeper than/);
    refused(Buffer.concat([Buffer.alloc(MAX_CBOR_DEPTH + 1, 0xd2), hex('00')]), /deeper than/);
    const items = (n: number) => Buffer.alloc(n, 0x00);
    expect(() => decodeCbor(Buffer.concat([cborHead(4, MAX_CBOR_ITEMS), items(MAX_CBOR_ITEMS)]))).not.toThrow();
    refused(Buffer.concat([cborHead(4, MAX_CBOR_ITEMS + 1), items(MAX_CBOR_ITEMS + 1)]), /more than 64 items/);
    refused(Buffer.concat([hex('9f'), items(MAX_CBOR_ITEMS + 1), hex('ff')]), /more than 64 items/);
    // A huge declared count is refused before anything is read.
    refused(hex('9b0000000100000000'), /more than 64 items/);
    const pairs = (n: number) => Buffer.concat(Array.from({ length: n }, (_, i) => Buffer.concat([encodeInt(i), hex('00')])));
    refused(Buffer.concat([cborHead(5, MAX_CBOR_ITEMS + 1), pairs(MAX_CBOR_ITEMS + 1)]), /more than 64 entries/);
    refused(Buffer.concat([hex('bf'), pairs(MAX_CBOR_ITEMS + 1), hex('ff')]), /more than 64 entries/);
  });

  it('encodes heads, byte and text strings in the shortest form its decoder requires', () => {
    for (const n of [0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32]) expect(decodeCbor(encodeInt(n))).toBe(n);
    for (const n of [-1, -24, -25, -256, -257]) expect(decodeCbor(encodeInt(n))).toBe(n);
    expect(encodeBytes(Buffer.alloc(300)).subarray(0, 3)).toEqual(hex('59012c'));
    expect(decodeCbor(encodeText('Signature1'))).toBe('Signature1');
  });

  it('never throws anything but a typed refusal on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (a) => {
        try {
          decodeCbor(Buffer.from(a));
        } catch (e) {
          if (!(e instanceof NitroEvidenceError)) throw e;
        }
      }),
      { numRuns: 3000 },
    );
  });
});
