import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as der from '../../src/der/der.js';
import { parseCertificate } from '../../src/x509/certificate.js';
import { parseCsr, parsePublicKey } from '../../src/svid/public-key.js';
import { WritError, FormatError } from '../../src/errors.js';
import { makeCert } from '../helpers/testca.js';

const cert = makeCert({ subjectCn: 'x', uris: ['spiffe://example.org/a'] });

function rejectsCleanly(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WritError);
  }
}

describe('strict DER', () => {
  it.each([
    ['indefinite length', '3080'],
    ['non-minimal long length', '30810100'],
    ['length with leading zero', '3082000100'],
    ['truncated value', '300500'],
    ['multi-byte tag', '1f0100'],
    ['trailing bytes', '300000'],
  ])('rejects %s', (_n, hex) => {
    expect(() => der.parseOne(Buffer.from(hex, 'hex'))).toThrow(FormatError);
  });
  it('rejects non-minimal INTEGERs and non-DER BOOLEANs', () => {
    expect(() => der.integerBytes(der.parseOne(Buffer.from('02020001', 'hex')))).toThrow(/non-minimal/);
    expect(() => der.decodeBoolean(der.parseOne(Buffer.from('010101', 'hex')))).toThrow(/non-DER/);
  });
  it('rejects nesting deeper than the limit', () => {
    let b: Buffer = Buffer.from('3000', 'hex');
    for (let i = 0; i < der.MAX_DER_DEPTH + 5; i++) b = der.seq(b);
    let t = der.parseOne(b);
    expect(() => {
      for (let d = 0; ; d++) t = der.children(t, d)[0]!;
    }).toThrow(/too deep|constructed/);
  });
  it('round-trips OIDs, including large arcs', () => {
    for (const o of ['1.2.840.10045.4.3.2', '2.5.29.17', '1.3.6.1.4.1.311.21.20', '2.999.1234567', '2.25.319231028764455267678575191352458191242']) {
      expect(der.decodeOid(der.parseOne(der.oid(o)))).toBe(o);
    }
  });
  it('encodes OIDs as OpenSSL does', () => {
    expect(der.oid('2.999.3').toString('hex')).toBe('0603883703');
    expect(der.oid('1.2.840.113549.1.1.11').toString('hex')).toBe('06092a864886f70d01010b');
  });
  it('rejects an OID arc longer than 20 bytes', () => {
    const arc = Buffer.concat([Buffer.alloc(21, 0x81), Buffer.from([0x01])]);
    expect(() => der.decodeOid(der.parseOne(der.tlv(der.TAG.OID, Buffer.concat([Buffer.from([0x2a]), arc]))))).toThrow(/arc too large/);
  });
  it('round-trips times across the UTCTime/GeneralizedTime boundary', () => {
    for (const d of [new Date('2049-12-31T23:59:59Z'), new Date('2050-01-01T00:00:00Z'), new Date('1999-06-01T12:00:00Z')]) {
      expect(der.decodeTime(der.parseOne(der.time(d))).getTime()).toBe(d.getTime());
    }
  });
});

describe('property: parsers of untrusted bytes never crash', () => {
  it('parseCertificate on random mutations of a real certificate throws only typed errors', () => {
    fc.assert(
      fc.property(fc.nat(cert.der.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const m = Buffer.from(cert.der);
        m[i]! ^= x;
        rejectsCleanly(() => parseCertificate(m));
      }),
      { numRuns: 2000 },
    );
  });
  it('parseCertificate on truncations and random bytes throws only typed errors', () => {
    for (let n = 0; n < cert.der.length; n++) rejectsCleanly(() => parseCertificate(cert.der.subarray(0, n)));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => rejectsCleanly(() => parseCertificate(Buffer.from(bytes)))),
      { numRuns: 1000 },
    );
  });
  it('parseCsr and parsePublicKey on random bytes throw only typed errors', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        rejectsCleanly(() => parseCsr(bytes));
        rejectsCleanly(() => parsePublicKey(bytes));
      }),
      { numRuns: 1000 },
    );
  });
});
