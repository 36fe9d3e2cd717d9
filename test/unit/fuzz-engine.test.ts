/** The fuzzing engine's own parts (test/fuzz/engine): coverage feedback, the contract, mutators. */
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { checkContract, OracleError, type TargetInstance } from '../fuzz/engine/contract.js';
import { Coverage } from '../fuzz/engine/coverage.js';
import { BASE_DICTIONARY, derMutator, jsonMutator, jwsMutator, type MutationContext } from '../fuzz/engine/mutators.js';
import { Rng } from '../fuzz/engine/rng.js';
import { parseStrictJson } from '../../src/jose/strict-json.js';
import { decodeJws, signJws } from '../../src/jose/jws.js';
import { parseOne } from '../../src/der/der.js';
import { chain, ecKey } from '../fuzz/fixtures.js';

describe('coverage feedback', () => {
  it('reports a new block, then nothing for the same path, then a new hit-count bucket', async () => {
    const cov = new Coverage((url) => url.includes('fuzz/engine/probe'));
    cov.start();
    try {
      // Imported after start: block coverage instruments only functions compiled after it.
      const { probe } = await import('../fuzz/engine/probe.js');
      cov.reset();
      probe(1);
      expect(cov.take(true)).toBeGreaterThan(0);
      probe(1);
      expect(cov.take(true)).toBe(0);
      probe(11); // the `n > 10` block, never reached before
      expect(cov.take(false, true)).toBeGreaterThan(0);
      probe(11);
      expect(cov.take(true)).toBeGreaterThan(0);
      probe(11);
      expect(cov.take(true)).toBe(0);
      probe(200); // the loop body in the 128+ bucket
      expect(cov.take(true)).toBeGreaterThan(0);
      expect(cov.stats.reached).toBe(cov.stats.blocks);
    } finally {
      cov.stop();
    }
  });
});

describe('contract', () => {
  const inst = (run: TargetInstance['run'], valid = false): TargetInstance => ({ seeds: [], run, isValid: () => valid });
  it('a WritError keeps the contract; a TypeError, a raw error and a wrapped programming error break it', () => {
    expect(
      checkContract(
        false,
        inst(() => {
          throw new FormatError('ERR_DER_MALFORMED', 'der: x');
        }),
        Buffer.alloc(0),
      ),
    ).toBeUndefined();
    expect(
      checkContract(
        false,
        inst(() => {
          throw new TypeError('Cannot read properties of undefined');
        }),
        Buffer.alloc(0),
      )?.kind,
    ).toBe('crash');
    expect(
      checkContract(
        false,
        inst(() => {
          throw new Error('error:03000072:digital envelope routines::decode error');
        }),
        Buffer.alloc(0),
      )?.kind,
    ).toBe('crash');
    const wrapped = new FormatError('ERR_CSR_INVALID', 'csr: x', { cause: new TypeError('x is undefined') });
    expect(
      checkContract(
        false,
        inst(() => {
          throw wrapped;
        }),
        Buffer.alloc(0),
      )?.kind,
    ).toBe('crash');
    const nodeArg = Object.assign(new TypeError('The "key" argument is invalid'), { code: 'ERR_INVALID_ARG_VALUE' });
    expect(
      checkContract(
        false,
        inst(() => {
          throw new FormatError('ERR_BUNDLE_INVALID', 'b', { cause: nodeArg });
        }),
        Buffer.alloc(0),
      ),
    ).toBeUndefined();
    expect(
      checkContract(
        false,
        inst(() => {
          throw new OracleError('disagree');
        }),
        Buffer.alloc(0),
      )?.kind,
    ).toBe('differential');
  });
  it('a signed target that accepts an input it does not call valid has accepted a mutant', () => {
    expect(
      checkContract(
        true,
        inst(() => 'accepted', false),
        Buffer.from('x'),
      )?.kind,
    ).toBe('accepted-mutant');
    expect(
      checkContract(
        true,
        inst(() => 'accepted', true),
        Buffer.from('x'),
      ),
    ).toBeUndefined();
    expect(
      checkContract(
        false,
        inst(() => 'accepted', false),
        Buffer.from('x'),
      ),
    ).toBeUndefined();
  });
});

describe('structure-aware mutators', () => {
  const ctx = (other: Buffer): MutationContext => ({ rng: new Rng(7), other: () => other, dictionary: BASE_DICTIONARY, maxLen: 1 << 16 });
  it('DER: most mutants of a certificate still parse as one strict TLV (lengths recomputed), and they differ', () => {
    const cert = chain('example.org').leaf.der;
    const c = ctx(cert);
    let parsed = 0;
    let changed = 0;
    for (let i = 0; i < 200; i++) {
      const m = derMutator(cert, c)!;
      if (!m.equals(cert)) changed++;
      try {
        parseOne(m);
        parsed++;
      } catch {
        // a deliberately broken length, tag or value
      }
    }
    expect(changed).toBeGreaterThan(150);
    expect(parsed).toBeGreaterThan(100);
  });
  it('JSON: makes duplicate member names, which the strict parser refuses', () => {
    const doc = Buffer.from('{"a":1,"b":{"c":"d"},"e":[1,2]}');
    const c = ctx(doc);
    let dup = 0;
    for (let i = 0; i < 300; i++) {
      try {
        parseStrictJson(jsonMutator(doc, c)!.toString());
      } catch (e) {
        if (/duplicate member/.test((e as Error).message)) dup++;
      }
    }
    expect(dup).toBeGreaterThan(0);
  });
  it('JWS: most mutants still decode (header and payload re-encoded as strict base64url JSON)', () => {
    const jws = Buffer.from(signJws({ typ: 'writ+jwt', kid: 'k' }, { a: 1, b: 'two' }, ecKey('mutator test')));
    const c = ctx(jws);
    let decoded = 0;
    for (let i = 0; i < 200; i++) {
      try {
        decodeJws(jwsMutator(jws, c)!.toString('latin1'), null);
        decoded++;
      } catch {
        // refused
      }
    }
    expect(decoded).toBeGreaterThan(40);
  });
});
