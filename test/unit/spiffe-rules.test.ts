/**
 * SPIFFE IDs and trust bundles (src/spiffe): the rules the go-spiffe vectors in
 * test/conformance leave unpinned — limits at their boundary, every refusal message of bundle
 * parsing, the writ key use, serialisation (`make mutate`, docs/testing.md).
 */
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  BundleSet,
  MAX_BUNDLE_BYTES,
  MAX_BUNDLE_KEYS,
  marshalSpiffeBundle,
  marshalX509Pem,
  parseJwtBundle,
  parseKeyedJwks,
  parseSpiffeBundle,
  parseX509BundlePem,
} from '../../src/spiffe/bundle.js';
import {
  MAX_SPIFFE_ID_BYTES,
  MAX_TRUST_DOMAIN_BYTES,
  parseSpiffeId,
  parseTrustDomain,
  spiffeIdFromParts,
  trustDomainId,
  validatePath,
} from '../../src/spiffe/id.js';
import { encodePem } from '../../src/der/pem.js';
import { makeCert } from '../helpers/testca.js';

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}
const idErr = (message: string) => ({ code: 'ERR_SPIFFE_ID_INVALID', message });
const bErr = (message: string) => ({ code: 'ERR_BUNDLE_INVALID', message });

describe('SPIFFE IDs', () => {
  it('validatePath: empty, or segments of letters, digits, dot, dash, underscore', () => {
    for (const ok of ['', '/a', '/z', '/A-Z_0.9', '/a/b/c', '/...', '/.a', '/a..']) expect(() => validatePath(ok), ok).not.toThrow();
    expect(refusal(() => validatePath('a'))).toMatchObject(idErr('path must have a leading slash'));
    expect(refusal(() => validatePath('/a/'))).toMatchObject(idErr('path cannot have a trailing slash'));
    expect(refusal(() => validatePath('/'))).toMatchObject(idErr('path cannot have a trailing slash'));
    expect(refusal(() => validatePath('//a'))).toMatchObject(idErr('path cannot contain empty segments'));
    for (const dot of ['/.', '/..', '/a/./b', '/a/../b'])
      expect(
        refusal(() => validatePath(dot)),
        dot,
      ).toMatchObject(idErr('path cannot contain dot segments'));
    for (const c of ['@', '[', '`', '{', ' ', '%', '~', 'é', ':', '/']) {
      if (c === '/') continue;
      expect(
        refusal(() => validatePath(`/a${c}b`)),
        c,
      ).toMatchObject(idErr('path segment characters are limited to letters, numbers, dots, dashes, and underscores'));
    }
  });

  it(`parseTrustDomain: 1..${MAX_TRUST_DOMAIN_BYTES} bytes of lower-case letters, digits, dot, dash, underscore`, () => {
    expect(parseTrustDomain('a-b_c.0-9z')).toEqual({ name: 'a-b_c.0-9z' });
    expect(parseTrustDomain('a'.repeat(MAX_TRUST_DOMAIN_BYTES)).name).toHaveLength(MAX_TRUST_DOMAIN_BYTES);
    expect(refusal(() => parseTrustDomain('a'.repeat(MAX_TRUST_DOMAIN_BYTES + 1)))).toMatchObject(idErr('trust domain is longer than 255 bytes'));
    expect(refusal(() => parseTrustDomain(''))).toMatchObject(idErr('trust domain is missing'));
    for (const c of ['A', 'Z', '`', '{', '/', ':', '@', '/', ' ']) {
      expect(
        refusal(() => parseTrustDomain(`a${c}b`)),
        c,
      ).toMatchObject(idErr('trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores'));
    }
  });

  it(`parseSpiffeId: at most MAX_SPIFFE_ID_BYTES (${MAX_SPIFFE_ID_BYTES}) bytes in all`, () => {
    const at = `spiffe://td/${'a'.repeat(MAX_SPIFFE_ID_BYTES - 'spiffe://td/'.length)}`;
    expect(Buffer.byteLength(at)).toBe(MAX_SPIFFE_ID_BYTES);
    expect(parseSpiffeId(at).uri).toBe(at);
    expect(refusal(() => parseSpiffeId(`${at}b`))).toMatchObject(idErr('spiffe id is longer than 2048 bytes'));
    expect(MAX_SPIFFE_ID_BYTES).toBe(2048);
  });

  it('parseSpiffeId: the trust domain limit counts the trust domain only; the scheme is exact', () => {
    expect(parseSpiffeId(`spiffe://${'a'.repeat(255)}/x`).trustDomain).toHaveLength(255);
    expect(refusal(() => parseSpiffeId(`spiffe://${'a'.repeat(256)}`))).toMatchObject(idErr('trust domain is longer than 255 bytes'));
    expect(refusal(() => parseSpiffeId(''))).toMatchObject(idErr('cannot be empty'));
    expect(refusal(() => parseSpiffeId('spiffe:/a'))).toMatchObject(idErr('scheme is missing or invalid'));
    expect(refusal(() => parseSpiffeId('spiffe:///a'))).toMatchObject(idErr('trust domain is missing'));
    expect(parseSpiffeId('spiffe://td')).toEqual({ trustDomain: 'td', path: '', uri: 'spiffe://td' });
  });

  it('spiffeIdFromParts and trustDomainId validate both halves', () => {
    expect(spiffeIdFromParts('example.org', '/a/b')).toEqual({ trustDomain: 'example.org', path: '/a/b', uri: 'spiffe://example.org/a/b' });
    expect(refusal(() => spiffeIdFromParts('Example.org', '/a')).code).toBe('ERR_SPIFFE_ID_INVALID');
    expect(refusal(() => spiffeIdFromParts('example.org', 'a')).message).toBe('path must have a leading slash');
    expect(refusal(() => spiffeIdFromParts('example.org/x', '')).code).toBe('ERR_SPIFFE_ID_INVALID');
    expect(trustDomainId('example.org')).toBe('spiffe://example.org');
    expect(refusal(() => trustDomainId('')).message).toBe('trust domain is missing');
  });
});

const ec = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ format: 'jwk' });
const doc = (keys: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ keys, ...extra });
const x509Entry = (der: Buffer, over: Record<string, unknown> = {}) => ({
  use: 'x509-svid',
  ...new X509Certificate(der).publicKey.export({ format: 'jwk' }),
  x5c: [der.toString('base64')],
  ...over,
});

describe('SPIFFE bundles: documents', () => {
  it(`refuses a document over MAX_BUNDLE_BYTES (${MAX_BUNDLE_BYTES}), as text or bytes`, () => {
    const big = doc([], { pad: 'x'.repeat(MAX_BUNDLE_BYTES) });
    expect(refusal(() => parseSpiffeBundle('td', big))).toMatchObject(bErr(`spiffebundle: document larger than ${MAX_BUNDLE_BYTES} bytes`));
    expect(refusal(() => parseSpiffeBundle('td', Buffer.from(big)))).toMatchObject(bErr(`spiffebundle: document larger than ${MAX_BUNDLE_BYTES} bytes`));
    const atLimit = `{"keys":[],"p":"${'x'.repeat(MAX_BUNDLE_BYTES - 18)}"}`;
    expect(Buffer.byteLength(atLimit)).toBe(MAX_BUNDLE_BYTES);
    expect(parseSpiffeBundle('td', atLimit).x509Authorities).toEqual([]);
  });

  it('reads a document given as text, as a Buffer, or as any Uint8Array (UTF-8)', () => {
    const text = doc([{ use: 'jwt-svid', kid: 'é', ...ec() }], { spiffe_sequence: 9 });
    for (const input of [text, Buffer.from(text), new Uint8Array(Buffer.from(text))]) {
      const b = parseSpiffeBundle('td', input);
      expect([...b.jwtAuthorities.keys()]).toEqual(['é']);
      expect(b.sequence).toBe(9);
    }
    const pem = encodePem('CERTIFICATE', makeCert({ subjectCn: 'r', ca: true }).der);
    expect(parseX509BundlePem('td', new Uint8Array(Buffer.from(pem))).x509Authorities).toHaveLength(1);
    expect([...parseKeyedJwks('witbundle', new Uint8Array(Buffer.from(text))).keys()]).toEqual(['é']);
  });

  it('refuses what is not a JSON object with keys', () => {
    expect(refusal(() => parseSpiffeBundle('td', '  '))).toMatchObject(bErr('spiffebundle: unable to parse JWKS: unexpected end of JSON input'));
    const jsonReason = (() => {
      try {
        JSON.parse('{');
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    const broken = refusal(() => parseSpiffeBundle('td', '{')) as { message: string; cause?: unknown };
    expect(broken).toMatchObject(bErr(`spiffebundle: unable to parse JWKS: ${jsonReason}`));
    expect(broken.cause).toBeInstanceOf(SyntaxError);
    for (const d of ['[]', 'null', '3'])
      expect(refusal(() => parseSpiffeBundle('td', d))).toMatchObject(bErr('spiffebundle: unable to parse JWKS: not a JSON object'));
    expect(refusal(() => parseSpiffeBundle('td', '{}'))).toMatchObject(bErr('spiffebundle: no authorities found'));
    expect(refusal(() => parseSpiffeBundle('td', '{"keys":{}}'))).toMatchObject(bErr('spiffebundle: unable to parse JWKS: keys is not an array'));
    for (const k of ['null', '[]', '"k"'])
      expect(refusal(() => parseSpiffeBundle('td', `{"keys":[${k}]}`))).toMatchObject(bErr('spiffebundle: unable to parse JWKS: key is not an object'));
  });

  it(`takes MAX_BUNDLE_KEYS (${MAX_BUNDLE_KEYS}) keys, refuses one more`, () => {
    expect(parseSpiffeBundle('td', doc(Array(MAX_BUNDLE_KEYS).fill({}))).jwtAuthorities.size).toBe(0);
    expect(refusal(() => parseSpiffeBundle('td', doc(Array(MAX_BUNDLE_KEYS + 1).fill({}))))).toMatchObject(
      bErr(`spiffebundle: more than ${MAX_BUNDLE_KEYS} keys`),
    );
  });

  it('spiffe_sequence and spiffe_refresh_hint: absent, or non-negative integers', () => {
    const b = parseSpiffeBundle('td', doc([], { spiffe_sequence: 0, spiffe_refresh_hint: 0 }));
    expect(b).toMatchObject({ sequence: 0, refreshHint: 0 });
    const none = parseSpiffeBundle('td', doc([]));
    expect('sequence' in none || 'refreshHint' in none || 'writAuthorities' in none).toBe(false);
    for (const v of [-1, 1.5, '1']) {
      expect(refusal(() => parseSpiffeBundle('td', doc([], { spiffe_sequence: v })))).toMatchObject(
        bErr('spiffebundle: spiffe_sequence must be a non-negative integer'),
      );
      expect(refusal(() => parseSpiffeBundle('td', doc([], { spiffe_refresh_hint: v })))).toMatchObject(
        bErr('spiffebundle: spiffe_refresh_hint must be a non-negative integer'),
      );
    }
  });
});

describe('SPIFFE bundles: keys', () => {
  it('jwt-svid and writ keys need a unique, non-empty kid; writ keys never become JWT-SVID keys', () => {
    const b = parseSpiffeBundle(
      'td',
      doc([
        { use: 'jwt-svid', kid: 'j', ...ec() },
        { use: 'writ', kid: 'w', ...ec() },
        { use: 'other', ...ec() },
      ]),
    );
    expect([...b.jwtAuthorities.keys()]).toEqual(['j']);
    expect([...b.writAuthorities!.keys()]).toEqual(['w']);
    for (const kid of [undefined, '', 7]) {
      expect(refusal(() => parseSpiffeBundle('td', doc([{ use: 'writ', kid, ...ec() }])))).toMatchObject(
        bErr('spiffebundle: error adding authority 0 of JWKS: keyID cannot be empty'),
      );
    }
    expect(
      refusal(() =>
        parseSpiffeBundle(
          'td',
          doc([
            { use: 'writ', kid: 'w', ...ec() },
            { use: 'writ', kid: 'w', ...ec() },
          ]),
        ),
      ),
    ).toMatchObject(bErr('spiffebundle: error adding authority 1 of JWKS: duplicate keyID "w"'));
  });

  it('refuses private or symmetric key material, and keys that are not usable', () => {
    for (const m of ['d', 'p', 'k']) {
      expect(refusal(() => parseSpiffeBundle('td', doc([{ use: 'jwt-svid', kid: 'j', ...ec(), [m]: 'AAAA' }])))).toMatchObject(
        bErr('spiffebundle: key 0 carries private or symmetric key material'),
      );
    }
    expect(refusal(() => parseSpiffeBundle('td', doc([{ use: 'jwt-svid', kid: 'j', kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }])))).toMatchObject(
      bErr('spiffebundle: key 0 is not a usable public key'),
    );
  });

  it('x509-svid: one standard-base64 certificate whose key is the JWK’s, no duplicates', () => {
    const c = makeCert({ subjectCn: 'root', ca: true });
    const b = parseSpiffeBundle('td', doc([x509Entry(c.der)]));
    expect(b.x509Authorities).toEqual([c.der]);
    for (const x5c of [undefined, [], [c.der.toString('base64'), c.der.toString('base64')], [5]]) {
      const n = Array.isArray(x5c) ? x5c.length : 0;
      expect(refusal(() => parseSpiffeBundle('td', doc([x509Entry(c.der, { x5c })])))).toMatchObject(
        bErr(`spiffebundle: expected a single certificate in x509-svid entry 0; got ${n}`),
      );
    }
    const b64url = c.der.toString('base64url');
    expect(refusal(() => parseSpiffeBundle('td', doc([x509Entry(c.der, { x5c: [b64url] })])))).toMatchObject(
      bErr('spiffebundle: x509-svid entry 0: x5c is not standard base64'),
    );
    expect(refusal(() => parseSpiffeBundle('td', doc([x509Entry(c.der, { x5c: [Buffer.from('junk').toString('base64')] })])))).toMatchObject(
      bErr('spiffebundle: x509-svid entry 0: cannot parse certificate'),
    );
    expect(refusal(() => parseSpiffeBundle('td', doc([x509Entry(c.der, { ...ec(), x5c: [c.der.toString('base64')] })])))).toMatchObject(
      bErr('spiffebundle: x509-svid entry 0: key parameters do not match the certificate'),
    );
    // OpenSSL reads the certificate and ignores what follows it; the strict DER parser does not.
    const trailing = Buffer.concat([c.der, Buffer.from([0])]);
    expect(new X509Certificate(trailing).raw).toEqual(c.der);
    expect(refusal(() => parseSpiffeBundle('td', doc([x509Entry(c.der, { x5c: [trailing.toString('base64')] })])))).toMatchObject(
      bErr('spiffebundle: x509-svid entry 0: cannot parse certificate'),
    );
    expect(refusal(() => parseSpiffeBundle('td', doc([x509Entry(c.der), x509Entry(c.der)])))).toMatchObject(
      bErr('spiffebundle: x509-svid entry 1: duplicate certificate'),
    );
  });

  it('plain JWKS: every key an authority by kid, errors under the given prefix', () => {
    const m = parseKeyedJwks(
      'witbundle',
      doc([
        { kid: 'a', ...ec() },
        { kid: 'b', ...ec() },
      ]),
    );
    expect([...m.keys()]).toEqual(['a', 'b']);
    expect(refusal(() => parseKeyedJwks('witbundle', doc([{ ...ec() }])))).toMatchObject(
      bErr('witbundle: error adding authority 0 of JWKS: keyID cannot be empty'),
    );
    const j = parseJwtBundle('example.org', doc([{ kid: 'a', ...ec() }]));
    expect(j.trustDomain).toBe('example.org');
    expect(j.x509Authorities).toEqual([]);
    expect([...j.jwtAuthorities.keys()]).toEqual(['a']);
    expect(refusal(() => parseJwtBundle('td', '{}'))).toMatchObject(bErr('jwtbundle: no authorities found'));
  });
});

describe('SPIFFE bundles: PEM and serialisation', () => {
  it('PEM: certificates only, deduplicated; empty is empty; bounded', () => {
    const a = makeCert({ subjectCn: 'a', ca: true });
    const b = makeCert({ subjectCn: 'b', ca: true });
    const pem = encodePem('CERTIFICATE', a.der) + encodePem('CERTIFICATE', b.der) + encodePem('CERTIFICATE', a.der);
    expect(parseX509BundlePem('td', pem).x509Authorities).toEqual([a.der, b.der]);
    expect(parseX509BundlePem('td', Buffer.from(pem)).x509Authorities).toHaveLength(2);
    expect(parseX509BundlePem('td', ' \n').x509Authorities).toEqual([]);
    expect(refusal(() => parseX509BundlePem('td', 'not pem at all'))).toMatchObject(bErr('x509bundle: cannot parse certificate: no PEM blocks found'));
    expect(refusal(() => parseX509BundlePem('td', encodePem('PRIVATE KEY', a.der)))).toMatchObject(
      bErr('x509bundle: cannot parse certificate: unexpected PEM block PRIVATE KEY'),
    );
    expect(refusal(() => parseX509BundlePem('td', encodePem('CERTIFICATE', Buffer.from('junk'))))).toMatchObject(bErr('x509bundle: cannot parse certificate'));
    expect(parseX509BundlePem('td', ' '.repeat(MAX_BUNDLE_BYTES)).x509Authorities).toEqual([]);
    expect(refusal(() => parseX509BundlePem('td', ' '.repeat(MAX_BUNDLE_BYTES + 1))).message).toBe(
      `x509bundle: document larger than ${MAX_BUNDLE_BYTES} bytes`,
    );
    expect(refusal(() => parseX509BundlePem('td', 'x'.repeat(MAX_BUNDLE_BYTES + 1)))).toMatchObject(
      bErr(`x509bundle: document larger than ${MAX_BUNDLE_BYTES} bytes`),
    );
    expect(refusal(() => parseX509BundlePem('td', '-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n')).message).toMatch(
      /^x509bundle: cannot parse certificate: /,
    );
  });

  it('marshals X.509, JWT and writ authorities with the sequence and hint, and parses back to the same bundle', () => {
    const root = makeCert({ subjectCn: 'root', ca: true });
    const jwt = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
    const writ = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
    const text = marshalSpiffeBundle({
      trustDomain: 'td',
      x509Authorities: [root.der],
      jwtAuthorities: new Map([['j1', jwt]]),
      writAuthorities: new Map([['w1', writ]]),
      sequence: 3,
      refreshHint: 60,
    });
    const j = JSON.parse(text);
    expect(j.keys.map((k: { use: string }) => k.use)).toEqual(['x509-svid', 'jwt-svid', 'writ']);
    expect(j.keys[2]).toMatchObject({ use: 'writ', kid: 'w1', alg: 'ES256' });
    expect(j).toMatchObject({ spiffe_sequence: 3, spiffe_refresh_hint: 60 });
    expect(text.endsWith('}\n')).toBe(true);
    const back = parseSpiffeBundle('td', text);
    expect(back.x509Authorities).toEqual([root.der]);
    expect(back.jwtAuthorities.get('j1')!.export({ format: 'jwk' })).toEqual(jwt.export({ format: 'jwk' }));
    expect(back.writAuthorities!.get('w1')!.export({ format: 'jwk' })).toEqual(writ.export({ format: 'jwk' }));
    expect(back).toMatchObject({ sequence: 3, refreshHint: 60 });
    const bare = JSON.parse(marshalSpiffeBundle({ trustDomain: 'td', x509Authorities: [], jwtAuthorities: new Map() }));
    expect(bare).toEqual({ keys: [] });
    expect(marshalX509Pem({ trustDomain: 'td', x509Authorities: [root.der], jwtAuthorities: new Map() })).toBe(encodePem('CERTIFICATE', root.der));
  });

  it('BundleSet finds a bundle by trust domain', () => {
    const a = { trustDomain: 'a', x509Authorities: [], jwtAuthorities: new Map() };
    const s = new BundleSet([a]);
    expect(s.get('a')).toBe(a);
    expect(s.get('b')).toBeUndefined();
    expect(new BundleSet().get('a')).toBeUndefined();
  });
});
