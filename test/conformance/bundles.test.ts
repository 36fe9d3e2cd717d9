import { describe, expect, it } from 'vitest';
import { HAVE_SHARED, vector } from '../helpers/shared.js';
import { marshalX509Pem, parseJwtBundle, parseKeyedJwks, parseSpiffeBundle, parseX509BundlePem } from '../../src/spiffe/bundle.js';
import { FormatError } from '../../src/errors.js';

const V = (p: string) => (HAVE_SHARED ? vector(`spiffe/bundle/${p}`) : Buffer.alloc(0));

function errOf(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).code).toBe('ERR_BUNDLE_INVALID');
    return e as Error;
  }
  throw new Error('expected an error');
}

describe.skipIf(!HAVE_SHARED)('bundle vectors (go-spiffe bundle/*)', () => {
  describe('x509bundle (trust domain domain1.test)', () => {
    it('parses a single certificate (no CA checks in bundle parsing)', () => {
      expect(parseX509BundlePem('domain1.test', V('x509bundle/cert.pem')).x509Authorities.length).toBe(1);
    });
    it('parses multiple certificates and marshals them back byte for byte', () => {
      const b = parseX509BundlePem('domain1.test', V('x509bundle/certs.pem'));
      expect(b.x509Authorities.length).toBe(2);
      expect(marshalX509Pem(b)).toBe(V('x509bundle/certs.pem').toString());
    });
    it('parses empty bytes as an empty bundle', () => {
      expect(parseX509BundlePem('domain1.test', V('x509bundle/empty.pem')).x509Authorities.length).toBe(0);
    });
    it('rejects non-PEM bytes', () => {
      expect(errOf(() => parseX509BundlePem('domain1.test', V('x509bundle/not-pem.pem'))).message).toContain(
        'x509bundle: cannot parse certificate: no PEM blocks found',
      );
    });
    it('rejects a corrupted certificate', () => {
      expect(errOf(() => parseX509BundlePem('domain1.test', V('x509bundle/corrupted.pem'))).message).toContain('x509bundle: cannot parse certificate');
    });
  });

  describe('jwtbundle (trust domain example.org)', () => {
    it('parses one authority', () => {
      const b = parseJwtBundle('example.org', V('jwtbundle/jwks_valid_1.json'));
      expect([...b.jwtAuthorities.keys()]).toEqual(['C6vs25welZOx6WksNYfbMfiw9l96pMnD']);
    });
    it('parses two authorities', () => {
      expect(parseJwtBundle('example.org', V('jwtbundle/jwks_valid_2.json')).jwtAuthorities.size).toBe(2);
    });
    it('rejects a key without kid', () => {
      expect(errOf(() => parseJwtBundle('example.org', V('jwtbundle/jwks_missing_kid.json'))).message).toContain(
        'jwtbundle: error adding authority 1 of JWKS: keyID cannot be empty',
      );
    });
    it('rejects empty input', () => {
      expect(errOf(() => parseJwtBundle('example.org', '')).message).toContain('jwtbundle: unable to parse JWKS: unexpected end of JSON input');
    });
  });

  describe('exp/witbundle (experimental WIT-SVID keys: a keyed JWKS)', () => {
    const W = (p: string) => (HAVE_SHARED ? vector(`spiffe/exp/bundle/witbundle/${p}`) : Buffer.alloc(0));
    it('parses one and two authorities', () => {
      expect(parseKeyedJwks('witbundle', W('jwks_valid_1.json')).size).toBe(1);
      expect(parseKeyedJwks('witbundle', W('jwks_valid_2.json')).size).toBe(2);
    });
    it('rejects a key without kid', () => {
      expect(errOf(() => parseKeyedJwks('witbundle', W('jwks_missing_kid.json'))).message).toContain(
        'witbundle: error adding authority 1 of JWKS: keyID cannot be empty',
      );
    });
  });

  describe('spiffebundle (trust domain domain.test)', () => {
    it('valid_1: 1 x509 + 1 jwt, no hint, no sequence', () => {
      const b = parseSpiffeBundle('domain.test', V('spiffebundle/spiffebundle_valid_1.json'));
      expect(b.x509Authorities.length).toBe(1);
      expect(b.jwtAuthorities.size).toBe(1);
      expect(b.refreshHint).toBeUndefined();
      expect(b.sequence).toBeUndefined();
    });
    it('valid_2: 1 x509 + 6 jwt, hint 60, sequence 1', () => {
      const b = parseSpiffeBundle('domain.test', V('spiffebundle/spiffebundle_valid_2.json'));
      expect(b.x509Authorities.length).toBe(1);
      expect(b.jwtAuthorities.size).toBe(6);
      expect(b.refreshHint).toBe(60);
      expect(b.sequence).toBe(1);
    });
    it('valid_with_wit: unknown use wit-svid is ignored', () => {
      const b = parseSpiffeBundle('domain.test', V('spiffebundle/spiffebundle_valid_with_wit.json'));
      expect(b.x509Authorities.length).toBe(1);
      expect(b.jwtAuthorities.size).toBe(2);
      expect(b.refreshHint).toBe(60);
      expect(b.sequence).toBe(1);
    });
    it('rejects a jwt-svid key without kid', () => {
      expect(errOf(() => parseSpiffeBundle('domain.test', V('spiffebundle/spiffebundle_missing_kid.json'))).message).toContain(
        'spiffebundle: error adding authority 1 of JWKS: keyID cannot be empty',
      );
    });
    it('rejects a document without keys', () => {
      expect(errOf(() => parseSpiffeBundle('domain.test', V('spiffebundle/spiffebundle_no_keys.json'))).message).toContain(
        'spiffebundle: no authorities found',
      );
    });
    it('rejects an x509-svid entry with two certificates', () => {
      expect(errOf(() => parseSpiffeBundle('domain.test', V('spiffebundle/spiffebundle_multiple_x509.json'))).message).toContain(
        'spiffebundle: expected a single certificate in x509-svid entry 0; got 2',
      );
    });
    it('rejects empty input', () => {
      expect(errOf(() => parseSpiffeBundle('domain.test', '')).message).toContain('spiffebundle: unable to parse JWKS: unexpected end of JSON input');
    });
  });
});

describe('bundle rules beyond the vectors', () => {
  it('an empty keys array is a valid bundle that trusts nothing', () => {
    const b = parseSpiffeBundle('example.org', '{"keys":[]}');
    expect(b.x509Authorities.length).toBe(0);
    expect(b.jwtAuthorities.size).toBe(0);
  });
  it.skipIf(!HAVE_SHARED)('rejects duplicate jwt-svid key ids', () => {
    const doc = JSON.parse(V('spiffebundle/spiffebundle_valid_1.json').toString());
    const jwt = doc.keys.find((k: { use: string }) => k.use === 'jwt-svid');
    doc.keys.push({ ...jwt });
    expect(errOf(() => parseSpiffeBundle('domain.test', JSON.stringify(doc))).message).toContain('duplicate keyID');
  });
  it.skipIf(!HAVE_SHARED)('rejects a duplicate x509-svid authority', () => {
    const doc = JSON.parse(V('spiffebundle/spiffebundle_valid_1.json').toString());
    const x = doc.keys.find((k: { use: string }) => k.use === 'x509-svid');
    doc.keys.push({ ...x });
    expect(errOf(() => parseSpiffeBundle('domain.test', JSON.stringify(doc))).message).toContain('duplicate certificate');
  });
  it.skipIf(!HAVE_SHARED)('rejects a JWK carrying private key material', () => {
    const doc = JSON.parse(V('spiffebundle/spiffebundle_valid_1.json').toString());
    const jwt = doc.keys.find((k: { use: string }) => k.use === 'jwt-svid');
    jwt.d = 'AAAA';
    expect(errOf(() => parseSpiffeBundle('domain.test', JSON.stringify(doc))).message).toContain('private or symmetric');
  });
  it.skipIf(!HAVE_SHARED)('rejects an x509-svid entry whose JWK parameters differ from its certificate', () => {
    const doc = JSON.parse(V('spiffebundle/spiffebundle_valid_2.json').toString());
    const x = doc.keys.find((k: { use: string }) => k.use === 'x509-svid');
    x.x = x.y;
    expect(() => parseSpiffeBundle('domain.test', JSON.stringify(doc))).toThrow(FormatError);
  });
});
