import { describe, expect, it } from 'vitest';
import { matchEntry, parseSelector, validateEntry, type Entry } from '../../src/registration/entry.js';
import { EntryError } from '../../src/errors.js';

const base = { spiffeId: 'spiffe://example.org/a', selectors: [{ type: 'join_token', value: 'x' }], x509SvidTtl: 0, jwtSvidTtl: 0, scopeCeiling: [], hint: '' };
const mk = (id: string, spiffeId: string, sels: string[], createdAt = 0): Entry => ({ ...base, id, spiffeId, selectors: sels.map(parseSelector), createdAt });

describe('registration entries', () => {
  it('accepts a valid entry', () => {
    expect(validateEntry(base, 'example.org').spiffeId).toBe(base.spiffeId);
  });
  it.each([
    [{ spiffeId: 'spiffe://other.org/a' }, 'outside the trust domain'],
    [{ spiffeId: 'spiffe://example.org' }, 'must have a path'],
    [{ spiffeId: 'spiffe://example.org/writ/server' }, 'reserved'],
    [{ spiffeId: 'http://example.org/a' }, 'scheme'],
    [{ selectors: [] }, 'at least one selector'],
    [{ selectors: [{ type: 'Bad Type', value: 'x' }] }, 'selector type'],
    [
      {
        selectors: [
          { type: 'a', value: 'x' },
          { type: 'a', value: 'x' },
        ],
      },
      'duplicate selectors',
    ],
    [{ x509SvidTtl: -1 }, 'x509 ttl'],
    [{ jwtSvidTtl: 10 ** 9 }, 'jwt ttl'],
    [{ hint: 'a\nb' }, 'hint'],
  ])('rejects %o (%s)', (patch, msg) => {
    expect(() => validateEntry({ ...base, ...patch }, 'example.org')).toThrow(EntryError);
    expect(() => validateEntry({ ...base, ...patch }, 'example.org')).toThrow(msg);
  });
  it('reports several problems in one error', () => {
    expect(() => validateEntry({ ...base, spiffeId: 'spiffe://other.org/a', selectors: [] }, 'example.org')).toThrow(/outside.*; at least one selector/);
  });
  it('parses selectors whose value contains colons', () => {
    expect(parseSelector('tpm:pcr:7:abc')).toEqual({ type: 'tpm', value: 'pcr:7:abc' });
    expect(() => parseSelector('novalue:')).toThrow(EntryError);
  });
  it("matches when all of an entry's selectors are attested, most specific first", () => {
    const entries = [mk('1', 'spiffe://example.org/a', ['t:1']), mk('2', 'spiffe://example.org/b', ['t:1', 'u:2'])];
    expect(matchEntry(entries, [parseSelector('t:1')])!).toMatchObject({ id: '1' });
    expect(matchEntry(entries, [parseSelector('t:1'), parseSelector('u:2')])!).toMatchObject({ id: '2' });
    expect(matchEntry(entries, [parseSelector('u:2')])).toBeUndefined();
  });
  it('refuses a tie between different SPIFFE IDs', () => {
    const entries = [mk('1', 'spiffe://example.org/a', ['t:1']), mk('2', 'spiffe://example.org/b', ['t:1'])];
    expect(matchEntry(entries, [parseSelector('t:1')])).toBe('ambiguous');
  });
});
