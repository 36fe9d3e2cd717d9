import { describe, expect, it } from 'vitest';
import { HAVE_SHARED, vector } from '../helpers/shared.js';
import { parseSpiffeId, MAX_SPIFFE_ID_BYTES } from '../../src/spiffe/id.js';
import { SpiffeIdError } from '../../src/errors.js';

interface Vec {
  input: string;
  valid: boolean;
  trust_domain?: string;
  path?: string;
  error_contains?: string;
}

describe.skipIf(!HAVE_SHARED)('SPIFFE ID vectors (go-spiffe spiffeid/id_test.go)', () => {
  const vectors: Vec[] = HAVE_SHARED ? JSON.parse(vector('spiffe/spiffeid/spiffeid_vectors.json').toString()).vectors : [];

  it('has all 540 vectors', () => {
    expect(vectors.length).toBe(540);
    expect(vectors.filter((v) => v.valid).length).toBe(109);
  });

  it.each(vectors.map((v, i) => [i, JSON.stringify(v.input), v] as const))('vector %i %s', (_i, _s, v) => {
    if (v.valid) {
      const id = parseSpiffeId(v.input);
      expect(id.trustDomain).toBe(v.trust_domain);
      expect(id.path).toBe(v.path);
      expect(id.uri).toBe(v.input);
    } else {
      let err: unknown;
      try {
        parseSpiffeId(v.input);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SpiffeIdError);
      expect((err as SpiffeIdError).code).toBe('ERR_SPIFFE_ID_INVALID');
      expect((err as Error).message).toContain(v.error_contains);
    }
  });
});

describe('SPIFFE ID rules the vectors do not cover', () => {
  it.each([
    ['spiffe://example.org:8080/a', 'port'],
    ['spiffe://user@example.org/a', 'userinfo'],
    ['spiffe://example.org/a?q=1', 'query'],
    ['spiffe://example.org/a#frag', 'fragment'],
    ['spiffe://example.org/a%20b', 'percent-encoding'],
    ['SPIFFE://example.org/a', 'upper-case scheme'],
    ['spiffe://Example.org/a', 'upper-case trust domain'],
  ])('rejects %s (%s)', (input) => {
    expect(() => parseSpiffeId(input)).toThrow(SpiffeIdError);
  });

  it('rejects IDs longer than 2048 bytes and accepts one at the limit', () => {
    const prefix = 'spiffe://example.org/';
    const ok = prefix + 'a'.repeat(MAX_SPIFFE_ID_BYTES - prefix.length);
    expect(parseSpiffeId(ok).uri.length).toBe(MAX_SPIFFE_ID_BYTES);
    expect(() => parseSpiffeId(`${ok}a`)).toThrow(/longer than 2048/);
  });

  it('rejects a trust domain longer than 255 bytes', () => {
    expect(() => parseSpiffeId(`spiffe://${'a'.repeat(256)}/x`)).toThrow(/trust domain is longer/);
  });
});
