import { describe, expect, it } from 'vitest';
import { HAVE_SHARED, vector } from '../helpers/shared.js';
import { parseX509Svid } from '../../src/svid/x509-svid.js';
import { SvidError } from '../../src/errors.js';

const F = (n: string) => (HAVE_SHARED ? vector(`spiffe/svid/x509svid/${n}`) : Buffer.alloc(0));
const RSA = 'key-pkcs8-rsa.pem';
const EC = 'key-pkcs8-ecdsa.pem';

// Expected classification from vectors/spiffe/INDEX.md (go-spiffe svid/x509svid/svid_test.go TestParse).
const cases: Array<{ name: string; cert: string; key: string; ok?: { id: string; n: number }; err?: string }> = [
  { name: 'single certificate and key', cert: 'good-leaf-only.pem', key: RSA, ok: { id: 'spiffe://example.org/workload-1', n: 1 } },
  { name: 'certificate with intermediate and key', cert: 'good-leaf-and-intermediate.pem', key: EC, ok: { id: 'spiffe://example.org/workload-1', n: 2 } },
  {
    name: 'certificate and key in the same bytes',
    cert: 'good-cert-and-key.pem',
    key: 'good-cert-and-key.pem',
    ok: { id: 'spiffe://example.org/workload-1', n: 1 },
  },
  {
    name: 'key and certificate in the same bytes',
    cert: 'good-key-and-cert.pem',
    key: 'good-key-and-cert.pem',
    ok: { id: 'spiffe://example.org/workload-1', n: 1 },
  },
  {
    name: 'key does not match the leaf',
    cert: 'good-leaf-and-intermediate.pem',
    key: RSA,
    err: 'x509svid: private key validation failed: leaf certificate does not match private key',
  },
  { name: 'missing certificate', cert: RSA, key: RSA, err: 'x509svid: certificate validation failed: no certificates found' },
  { name: 'missing private key', cert: 'good-leaf-only.pem', key: 'good-leaf-only.pem', err: 'x509svid: private key validation failed: no private key found' },
  { name: 'key not PEM', cert: 'good-leaf-only.pem', key: 'not-pem', err: 'x509svid: cannot parse PEM encoded private key: no PEM blocks found' },
  { name: 'certificate not PEM', cert: 'not-pem', key: RSA, err: 'x509svid: cannot parse PEM encoded certificate: no PEM blocks found' },
  { name: 'corrupt certificate', cert: 'corrupt-cert.pem', key: RSA, err: 'x509svid: cannot parse PEM encoded certificate: x509: malformed certificate' },
  {
    name: 'corrupt private key',
    cert: 'good-leaf-only.pem',
    key: 'corrupt-key.pem',
    err: 'x509svid: cannot parse PEM encoded private key: asn1: structure error:',
  },
  {
    name: 'leaf without URI SAN',
    cert: 'wrong-leaf-empty-id.pem',
    key: RSA,
    err: 'x509svid: certificate validation failed: cannot get leaf certificate SPIFFE ID: certificate contains no URI SAN',
  },
  {
    name: 'leaf with CA flag',
    cert: 'wrong-leaf-ca-true.pem',
    key: RSA,
    err: 'x509svid: certificate validation failed: leaf certificate must not have CA flag set to true',
  },
  {
    name: 'leaf without digitalSignature',
    cert: 'wrong-leaf-no-digital-signature.pem',
    key: RSA,
    err: "x509svid: certificate validation failed: leaf certificate must have 'digitalSignature' set as key usage",
  },
  {
    name: 'leaf with keyCertSign',
    cert: 'wrong-leaf-cert-sign.pem',
    key: RSA,
    err: "x509svid: certificate validation failed: leaf certificate must not have 'keyCertSign' set as key usage",
  },
  {
    name: 'leaf with cRLSign',
    cert: 'wrong-leaf-crl-sign.pem',
    key: RSA,
    err: "x509svid: certificate validation failed: leaf certificate must not have 'cRLSign' set as key usage",
  },
  {
    name: 'signing cert without CA flag',
    cert: 'wrong-intermediate-no-ca.pem',
    key: RSA,
    err: 'x509svid: certificate validation failed: signing certificate must have CA flag set to true',
  },
  {
    name: 'signing cert without keyCertSign',
    cert: 'wrong-intermediate-no-key-cert-sign.pem',
    key: RSA,
    err: "x509svid: certificate validation failed: signing certificate must have 'keyCertSign' set as key usage",
  },
];

describe.skipIf(!HAVE_SHARED)('X.509-SVID fixtures (go-spiffe svid/x509svid testdata)', () => {
  it.each(cases)('$name', (c) => {
    if (c.ok) {
      const svid = parseX509Svid(F(c.cert), F(c.key));
      expect(svid.id.uri).toBe(c.ok.id);
      expect(svid.certificates.length).toBe(c.ok.n);
      return;
    }
    let err: unknown;
    try {
      parseX509Svid(F(c.cert), F(c.key));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SvidError);
    expect((err as Error).message).toContain(c.err);
  });
});
