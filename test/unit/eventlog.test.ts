import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeEventLog, parseEventLog, EV_IPL } from '../../src/tpm/eventlog.js';
import { TPM_ALG } from '../../src/tpm/constants.js';
import { WritError } from '../../src/errors.js';

const algs = new Map([
  [TPM_ALG.SHA256, 32],
  [TPM_ALG.SHA1, 20],
]);
const log = encodeEventLog(algs, [
  {
    pcr: 4,
    type: EV_IPL,
    digests: new Map([
      [TPM_ALG.SHA256, Buffer.alloc(32, 1)],
      [TPM_ALG.SHA1, Buffer.alloc(20, 2)],
    ]),
    data: Buffer.from('a'),
  },
  {
    pcr: 7,
    type: EV_IPL,
    digests: new Map([
      [TPM_ALG.SHA256, Buffer.alloc(32, 3)],
      [TPM_ALG.SHA1, Buffer.alloc(20, 4)],
    ]),
    data: Buffer.from('bb'),
  },
]);

describe('TCG crypto-agile event log', () => {
  it('round-trips', () => {
    const p = parseEventLog(log);
    expect([...p.algorithms]).toEqual([...algs]);
    expect(p.events.map((e) => [e.pcr, e.data.toString()])).toEqual([
      [4, 'a'],
      [7, 'bb'],
    ]);
  });
  it('every truncation is refused, except a cut exactly between events (a shorter valid log)', () => {
    const boundaries = new Set<number>();
    for (let n = 1; n < log.length; n++) {
      try {
        const p = parseEventLog(log.subarray(0, n));
        expect(p.events.length).toBeLessThan(2);
        boundaries.add(n);
      } catch (e) {
        expect(e).toBeInstanceOf(WritError);
      }
    }
    // Exactly two boundaries: after the header, and after the first event.
    expect(boundaries.size).toBe(2);
  });
  it('rejects a digest of an undeclared algorithm and a wrong declared size', () => {
    const bad = encodeEventLog(new Map([[TPM_ALG.SHA256, 32]]), [
      { pcr: 1, type: EV_IPL, digests: new Map([[TPM_ALG.SHA384, Buffer.alloc(48)]]), data: Buffer.alloc(0) },
    ]);
    expect(() => parseEventLog(bad)).toThrow(/not declared/);
    expect(() => parseEventLog(encodeEventLog(new Map([[TPM_ALG.SHA256, 20]]), []))).toThrow(/digest size/);
  });
  it('random bytes and random mutations only ever raise typed errors', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
        try {
          parseEventLog(Buffer.from(b));
        } catch (e) {
          expect(e).toBeInstanceOf(WritError);
        }
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.nat(log.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const m = Buffer.from(log);
        m[i]! ^= x;
        try {
          parseEventLog(m);
        } catch (e) {
          expect(e).toBeInstanceOf(WritError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
