import { describe, expect, it } from 'vitest';
import { verifyX509Svid } from '../../src/svid/x509-svid.js';
import { BundleSet, type Bundle } from '../../src/spiffe/bundle.js';
import { SvidError } from '../../src/errors.js';
import { KEY_USAGE } from '../../src/x509/oids.js';
import { ecKey, makeCert, rootAndLeaf } from '../helpers/testca.js';
import * as t from '../../src/svid/template.js';
import * as der from '../../src/der/der.js';

const TD = 'domain1.test';
const ID = 'spiffe://domain1.test/workload';

function bundleOf(td: string, roots: Buffer[]): BundleSet {
  const b: Bundle = { trustDomain: td, x509Authorities: roots, jwtAuthorities: new Map() };
  return new BundleSet([b]);
}

function errOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SvidError);
    return (e as Error).message;
  }
  throw new Error('expected verification to fail');
}

// The go-spiffe `x509svid.Verify` table (vectors/spiffe/INDEX.md, "Generated-case tables").
describe('verifyX509Svid (go-spiffe verify_test.go cases)', () => {
  const { root, leaf } = rootAndLeaf(TD, ID);
  const now = new Date();

  it('accepts a good leaf under the bundle root', () => {
    expect(verifyX509Svid([leaf.der], bundleOf(TD, [root.der]), now).id.uri).toBe(ID);
  });
  it('accepts a leaf, an intermediate and the root', () => {
    const mid = makeCert({ subjectCn: 'mid', ca: true, pathLen: 0, issuer: root, uris: [`spiffe://${TD}`] });
    const l2 = makeCert({ subjectCn: 'leaf2', issuer: mid, uris: [ID] });
    expect(verifyX509Svid([l2.der, mid.der], bundleOf(TD, [root.der]), now).chain.length).toBe(2);
  });
  it('empty chain', () => {
    expect(errOf(() => verifyX509Svid([], bundleOf(TD, [root.der]), now))).toContain('x509svid: empty certificates chain');
  });
  it('no bundle for the trust domain', () => {
    expect(errOf(() => verifyX509Svid([leaf.der], bundleOf('other.test', [root.der]), now))).toContain(
      'x509svid: could not get X509 bundle: x509bundle: no X.509 bundle found for trust domain: "domain1.test"',
    );
  });
  it('bundle with no roots', () => {
    expect(errOf(() => verifyX509Svid([leaf.der], bundleOf(TD, []), now))).toContain(
      'x509svid: could not verify leaf certificate: x509: certificate signed by unknown authority',
    );
  });
  it('leaf URI scheme sparfe://', () => {
    const bad = makeCert({ subjectCn: 'l', issuer: root, uris: ['sparfe://domain1.test/workload'] });
    expect(errOf(() => verifyX509Svid([bad.der], bundleOf(TD, [root.der]), now))).toContain(
      'x509svid: could not get leaf SPIFFE ID: scheme is missing or invalid',
    );
  });
  it('signed by a different CA', () => {
    const other = rootAndLeaf(TD, ID);
    expect(errOf(() => verifyX509Svid([other.leaf.der], bundleOf(TD, [root.der]), now))).toContain('certificate signed by unknown authority');
  });
  it('another CA with the same subject name is not the issuer', () => {
    const impostor = makeCert({ subjectCn: `root ${TD}`, ca: true, uris: [`spiffe://${TD}`] });
    const forged = makeCert({ subjectCn: 'leaf', issuer: impostor, uris: [ID] });
    expect(errOf(() => verifyX509Svid([forged.der], bundleOf(TD, [root.der]), now))).toContain('certificate signed by unknown authority');
  });
  it('no URI SAN', () => {
    const bad = makeCert({ subjectCn: 'l', issuer: root });
    expect(errOf(() => verifyX509Svid([bad.der], bundleOf(TD, [root.der]), now))).toContain(
      'x509svid: could not get leaf SPIFFE ID: certificate contains no URI SAN',
    );
  });
  it('two URI SANs', () => {
    const bad = makeCert({ subjectCn: 'l', issuer: root, uris: [ID, 'spiffe://domain1.test/other'] });
    expect(errOf(() => verifyX509Svid([bad.der], bundleOf(TD, [root.der]), now))).toContain(
      'x509svid: could not get leaf SPIFFE ID: certificate contains more than one URI SAN',
    );
  });
  it('leaf with CA flag', () => {
    const bad = makeCert({ subjectCn: 'l', issuer: root, uris: [ID], ca: true, keyUsage: [KEY_USAGE.digitalSignature] });
    expect(errOf(() => verifyX509Svid([bad.der], bundleOf(TD, [root.der]), now))).toContain('x509svid: leaf certificate with CA flag set to true');
  });
  it('leaf with keyCertSign', () => {
    const bad = makeCert({ subjectCn: 'l', issuer: root, uris: [ID], keyUsage: [KEY_USAGE.digitalSignature, KEY_USAGE.keyCertSign] });
    expect(errOf(() => verifyX509Svid([bad.der], bundleOf(TD, [root.der]), now))).toContain('x509svid: leaf certificate with KeyCertSign key usage');
  });
  it('leaf with cRLSign', () => {
    const bad = makeCert({ subjectCn: 'l', issuer: root, uris: [ID], keyUsage: [KEY_USAGE.digitalSignature, KEY_USAGE.cRLSign] });
    expect(errOf(() => verifyX509Svid([bad.der], bundleOf(TD, [root.der]), now))).toContain('x509svid: leaf certificate with KeyCrlSign key usage');
  });
  it('verified after notAfter', () => {
    expect(errOf(() => verifyX509Svid([leaf.der], bundleOf(TD, [root.der]), new Date(now.getTime() + 2 * 3600_000)))).toContain(
      'x509svid: could not verify leaf certificate: x509: certificate has expired',
    );
  });
  it('verified before notBefore', () => {
    expect(errOf(() => verifyX509Svid([leaf.der], bundleOf(TD, [root.der]), new Date(now.getTime() - 2 * 3600_000)))).toContain('not yet valid');
  });
  it('an intermediate without the CA flag cannot sign', () => {
    const mid = makeCert({ subjectCn: 'mid', issuer: root, keyUsage: [KEY_USAGE.keyCertSign] });
    const l2 = makeCert({ subjectCn: 'leaf2', issuer: mid, uris: [ID] });
    expect(errOf(() => verifyX509Svid([l2.der, mid.der], bundleOf(TD, [root.der]), now))).toContain('signing certificate must have CA flag set to true');
  });
  it('path length constraints are enforced', () => {
    const mid1 = makeCert({ subjectCn: 'mid1', ca: true, pathLen: 0, issuer: root });
    const mid2 = makeCert({ subjectCn: 'mid2', ca: true, issuer: mid1 });
    const l2 = makeCert({ subjectCn: 'leaf2', issuer: mid2, uris: [ID] });
    expect(errOf(() => verifyX509Svid([l2.der, mid2.der, mid1.der], bundleOf(TD, [root.der]), now))).toContain('path length');
  });
  it('a leaf with an unknown critical extension is refused', () => {
    // A critical extension writ does not understand (smimeCapabilities, NULL value).
    const fixed = t.extension('1.2.840.113549.1.9.15', true, der.tlv(der.TAG.NULL, Buffer.alloc(0)));
    const bad = makeCert({ subjectCn: 'l', issuer: root, uris: [ID], extraExtensions: [fixed] });
    expect(errOf(() => verifyX509Svid([bad.der], bundleOf(TD, [root.der]), now))).toContain('unknown critical extension');
  });
  it('an ECDSA signature algorithm with explicit NULL parameters is refused even when the signature is good', () => {
    const alg = der.seq(der.oid('1.2.840.10045.4.3.2'), der.tlv(der.TAG.NULL));
    const key = ecKey();
    const tbs = t.encodeTbs({
      serial: t.randomSerial(),
      algorithm: alg,
      issuer: root.parsed.subject,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + 60_000),
      subject: t.encodeName([{ oid: '2.5.4.3', value: 'odd' }]),
      spki: key.spki,
      extensions: [t.basicConstraints(false), t.keyUsage([0]), t.subjectAltName([ID])],
    });
    const odd = t.signCertificate(tbs, alg, 'sha256', root.key);
    expect(errOf(() => verifyX509Svid([odd], bundleOf(TD, [root.der]), now))).toContain('certificate signed by unknown authority');
  });

  it('every single-bit flip anywhere in a valid leaf is rejected, never a crash', () => {
    const bundles = bundleOf(TD, [root.der]);
    let rejected = 0;
    for (let i = 0; i < leaf.der.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const m = Buffer.from(leaf.der);
        m[i]! ^= bit;
        try {
          verifyX509Svid([m], bundles, now);
        } catch (e) {
          expect(e).toBeInstanceOf(SvidError);
          rejected++;
          continue;
        }
        throw new Error(`flip of bit ${bit} at byte ${i} was accepted`);
      }
    }
    expect(rejected).toBe(leaf.der.length * 2);
  });
});
