/**
 * Certification path validation (src/x509/path.ts) rule by rule, on chains the test CA builds
 * and signs for real: validity at the instant (both ends, every certificate, the anchor too),
 * the issuer profile (CA flag, keyCertSign, unknown critical extensions), path length on
 * intermediates and anchors, name chaining, exact signature AlgorithmIdentifiers, anchors
 * recognised by key, and path building over an untrusted pool (`make mutate`, docs/testing.md).
 */
import { describe, expect, it } from 'vitest';
import * as der from '../../src/der/der.js';
import * as t from '../../src/svid/template.js';
import { parseCertificate } from '../../src/x509/certificate.js';
import { KEY_USAGE, OID } from '../../src/x509/oids.js';
import { MAX_CHAIN_LENGTH, buildPathProblem, pathProblem, signedBy, signingProblem } from '../../src/x509/path.js';
import { ecKey, makeCert, type CertOpts, type TestCert } from '../helpers/testca.js';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';

const T0 = Date.UTC(2030, 0, 1);
const HOUR = 3600_000;
const win = { notBefore: new Date(T0 - HOUR), notAfter: new Date(T0 + HOUR) };
const cert = (o: CertOpts) => makeCert({ ...win, ...o });
const ca = (name: string, issuer?: TestCert, o: Partial<CertOpts> = {}) => cert({ subjectCn: name, ca: true, ...(issuer ? { issuer } : {}), ...o });

const UNKNOWN = 'certificate signed by unknown authority';
const AFTER = 'certificate has expired or is not yet valid: current time is after notAfter';
const BEFORE = 'certificate has expired or is not yet valid: current time is before notBefore';

function pki() {
  const root = ca('root');
  const mid = ca('mid', root);
  const leaf = cert({ subjectCn: 'leaf', issuer: mid });
  return { root, mid, leaf };
}

describe('x509 path: validity at the instant', () => {
  it('accepts the chain from notBefore to notAfter inclusive, refuses a millisecond outside, for the leaf', () => {
    const { root, mid } = pki();
    const leaf = cert({ subjectCn: 'leaf', issuer: mid, notBefore: new Date(T0 - 1000), notAfter: new Date(T0 + 1000) });
    const chain = [leaf.parsed, mid.parsed];
    expect(pathProblem(chain, [root.der], T0 - 1000)).toBeUndefined();
    expect(pathProblem(chain, [root.der], T0 + 1000)).toBeUndefined();
    expect(pathProblem(chain, [root.der], T0 + 1001)).toBe(AFTER);
    expect(pathProblem(chain, [root.der], T0 - 1001)).toBe(BEFORE);
  });

  it('refuses an expired or not-yet-valid intermediate', () => {
    const root = ca('root');
    for (const [w, msg] of [
      [{ notBefore: new Date(T0 - 2 * HOUR), notAfter: new Date(T0 - 1000) }, AFTER],
      [{ notBefore: new Date(T0 + 1000), notAfter: new Date(T0 + HOUR) }, BEFORE],
    ] as const) {
      const mid = ca('mid', root, w);
      const leaf = cert({ subjectCn: 'leaf', issuer: mid });
      expect(pathProblem([leaf.parsed, mid.parsed], [root.der], T0)).toBe(msg);
    }
  });

  it("refuses a path to an anchor outside its own validity window (the anchor's notBefore and notAfter count)", () => {
    for (const w of [
      { notBefore: new Date(T0 - 2 * HOUR), notAfter: new Date(T0 - 1000) },
      { notBefore: new Date(T0 + 1000), notAfter: new Date(T0 + HOUR) },
    ]) {
      const root = ca('root', undefined, w);
      const mid = ca('mid', root);
      const leaf = cert({ subjectCn: 'leaf', issuer: mid });
      expect(pathProblem([leaf.parsed, mid.parsed], [root.der], T0)).toBe(UNKNOWN);
    }
    const edge = ca('root', undefined, { notBefore: new Date(T0), notAfter: new Date(T0) });
    const mid = ca('mid', edge);
    expect(pathProblem([cert({ subjectCn: 'leaf', issuer: mid }).parsed, mid.parsed], [edge.der], T0)).toBeUndefined();
  });
});

describe('x509 path: the issuer profile', () => {
  it('accepts a CA with keyCertSign', () => {
    expect(signingProblem(ca('root').parsed)).toBeUndefined();
  });

  it('refuses an intermediate without the CA flag', () => {
    const root = ca('root');
    const notCa = cert({ subjectCn: 'mid', issuer: root, keyUsage: [KEY_USAGE.digitalSignature, KEY_USAGE.keyCertSign] });
    expect(signingProblem(notCa.parsed)).toBe('signing certificate must have CA flag set to true');
    const noBc = cert({ subjectCn: 'mid', issuer: root, omitBasicConstraints: true, keyUsage: [KEY_USAGE.keyCertSign] });
    expect(signingProblem(noBc.parsed)).toBe('signing certificate must have CA flag set to true');
    const leaf = cert({ subjectCn: 'leaf', issuer: notCa });
    expect(pathProblem([leaf.parsed, notCa.parsed], [root.der], T0)).toBe('signing certificate must have CA flag set to true');
  });

  it('refuses an intermediate CA without keyCertSign, even with every other usage', () => {
    const root = ca('root');
    const usages = Object.values(KEY_USAGE).filter((b) => b !== KEY_USAGE.keyCertSign && b <= KEY_USAGE.cRLSign);
    const mid = ca('mid', root, { keyUsage: usages });
    const leaf = cert({ subjectCn: 'leaf', issuer: mid });
    expect(pathProblem([leaf.parsed, mid.parsed], [root.der], T0)).toBe("signing certificate must have 'keyCertSign' set as key usage");
    const noKu = parseCertificate(mid.der);
    expect(signingProblem({ ...noKu, keyUsage: undefined })).toBe("signing certificate must have 'keyCertSign' set as key usage");
  });

  it('refuses an intermediate with an unknown critical extension, naming it; a non-critical one is fine', () => {
    const root = ca('root');
    const odd = '1.3.6.1.4.1.99999.1';
    const mid = ca('mid', root, { extraExtensions: [t.extension(odd, true, der.seq())] });
    const leaf = cert({ subjectCn: 'leaf', issuer: mid });
    expect(pathProblem([leaf.parsed, mid.parsed], [root.der], T0)).toBe(`signing certificate has unknown critical extension ${odd}`);
    const mild = ca('mid', root, { extraExtensions: [t.extension(odd, false, der.seq())] });
    expect(pathProblem([cert({ subjectCn: 'leaf', issuer: mild }).parsed, mild.parsed], [root.der], T0)).toBeUndefined();
  });

  it('does not apply the issuer profile to the leaf', () => {
    const root = ca('root');
    const leaf = cert({ subjectCn: 'leaf', issuer: root, keyUsage: [KEY_USAGE.digitalSignature] });
    expect(pathProblem([leaf.parsed], [root.der], T0)).toBeUndefined();
  });
});

describe('x509 path: path length', () => {
  it('counts the intermediates below each one against its pathLenConstraint', () => {
    const root = ca('root');
    const top0 = ca('top', root, { pathLen: 0 });
    const below = ca('below', top0);
    const leaf = cert({ subjectCn: 'leaf', issuer: below });
    expect(pathProblem([leaf.parsed, below.parsed, top0.parsed], [root.der], T0)).toBe('too many intermediates for path length constraint');
    const top1 = ca('top', root, { pathLen: 1 });
    const below1 = ca('below', top1);
    expect(pathProblem([cert({ subjectCn: 'leaf', issuer: below1 }).parsed, below1.parsed, top1.parsed], [root.der], T0)).toBeUndefined();
    // pathLen 0 on the last intermediate before the leaf is allowed.
    const only = ca('only', root, { pathLen: 0 });
    expect(pathProblem([cert({ subjectCn: 'leaf', issuer: only }).parsed, only.parsed], [root.der], T0)).toBeUndefined();
  });

  it("applies the anchor's pathLenConstraint and CA flag to the whole chain", () => {
    const root0 = ca('root', undefined, { pathLen: 0 });
    const mid = ca('mid', root0);
    const leaf = cert({ subjectCn: 'leaf', issuer: mid });
    expect(pathProblem([leaf.parsed, mid.parsed], [root0.der], T0)).toBe(UNKNOWN);
    expect(pathProblem([cert({ subjectCn: 'leaf', issuer: root0 }).parsed], [root0.der], T0)).toBeUndefined();
    const root1 = ca('root', undefined, { pathLen: 1 });
    const mid1 = ca('mid', root1);
    expect(pathProblem([cert({ subjectCn: 'leaf', issuer: mid1 }).parsed, mid1.parsed], [root1.der], T0)).toBeUndefined();
    // An anchor stating basicConstraints without the CA flag anchors nothing; one without basicConstraints does.
    const key = ecKey();
    const notCa = cert({ subjectCn: 'root', key, keyUsage: [KEY_USAGE.keyCertSign] });
    expect(pathProblem([cert({ subjectCn: 'leaf', issuer: notCa }).parsed], [notCa.der], T0)).toBe(UNKNOWN);
    const bare = cert({ subjectCn: 'root', key, omitBasicConstraints: true, keyUsage: [KEY_USAGE.keyCertSign] });
    expect(pathProblem([cert({ subjectCn: 'leaf', issuer: bare }).parsed], [bare.der], T0)).toBeUndefined();
  });

  it(`refuses an empty chain and one longer than MAX_CHAIN_LENGTH (${MAX_CHAIN_LENGTH})`, () => {
    const { root } = pki();
    expect(pathProblem([], [root.der], T0)).toBe('empty chain');
    const chain = [root];
    for (let i = 0; i < MAX_CHAIN_LENGTH; i++) chain.push(ca(`c${i}`, chain.at(-1)));
    const certs = chain
      .slice(1)
      .reverse()
      .map((c) => c.parsed);
    expect(certs).toHaveLength(MAX_CHAIN_LENGTH);
    expect(pathProblem(certs, [root.der], T0)).toBeUndefined();
    const more = ca('more', chain.at(-1));
    expect(pathProblem([more.parsed, ...certs], [root.der], T0)).toBe(`chain longer than ${MAX_CHAIN_LENGTH} certificates`);
  });
});

describe('x509 path: names, signatures and anchors', () => {
  it('refuses a certificate whose issuer name is not the next certificate’s subject', () => {
    const { root, mid } = pki();
    const other = ca('other', root);
    const leaf = cert({ subjectCn: 'leaf', issuer: other });
    expect(pathProblem([leaf.parsed, mid.parsed], [root.der], T0)).toBe(UNKNOWN);
  });

  it('refuses a same-named issuer whose key did not sign (an impostor intermediate or anchor)', () => {
    const { root, mid, leaf } = pki();
    const fakeMid = ca('mid', root);
    expect(pathProblem([leaf.parsed, fakeMid.parsed], [root.der], T0)).toBe(UNKNOWN);
    const fakeRoot = ca('root');
    expect(pathProblem([leaf.parsed, mid.parsed], [fakeRoot.der], T0)).toBe(UNKNOWN);
    expect(pathProblem([leaf.parsed, mid.parsed], [fakeRoot.der, root.der], T0)).toBeUndefined();
  });

  it('accepts a chain that ends in the anchor itself, and skips anchors that do not parse', () => {
    const { root, mid, leaf } = pki();
    // An intermediate configured as the anchor (not self-signed) is recognised as itself.
    expect(pathProblem([leaf.parsed, mid.parsed], [mid.der], T0)).toBeUndefined();
    expect(pathProblem([leaf.parsed, mid.parsed, root.parsed], [root.der], T0)).toBeUndefined();
    expect(pathProblem([leaf.parsed, mid.parsed], [Buffer.from('not a certificate'), root.der], T0)).toBeUndefined();
    expect(pathProblem([leaf.parsed, mid.parsed], [Buffer.from('not a certificate')], T0)).toBe(UNKNOWN);
    expect(pathProblem([leaf.parsed, mid.parsed], [], T0)).toBe(UNKNOWN);
  });

  it('signedBy: only the exact AlgorithmIdentifier encodings, and only for the key type they name', () => {
    const { root, mid } = pki();
    const rootKey = createPublicKey(root.key);
    expect(signedBy(mid.parsed, rootKey)).toBe(true);
    expect(signedBy(mid.parsed, createPublicKey(mid.key))).toBe(false);
    expect(signedBy(mid.parsed, generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey)).toBe(false);
    // ECDSA with SHA-256 but an explicit NULL parameter (RFC 5758 says absent): same signature math, refused.
    const alg = der.seq(der.oid(OID.ecdsaSha256), der.tlv(der.TAG.NULL));
    const key = ecKey();
    const tbs = t.encodeTbs({
      serial: t.randomSerial(),
      algorithm: alg,
      issuer: root.parsed.subject,
      ...win,
      subject: t.encodeName([{ oid: OID.commonName, value: 'odd' }]),
      spki: key.spki,
      extensions: [t.basicConstraints(false)],
    });
    const odd = parseCertificate(t.signCertificate(tbs, alg, 'sha256', root.key));
    expect(signedBy(odd, rootKey)).toBe(false);
    expect(pathProblem([odd], [root.der], T0)).toBe(UNKNOWN);
    // A signature that is not even DER makes verify throw: still just false.
    expect(signedBy({ ...mid.parsed, signature: Buffer.from([1, 2, 3]) }, rootKey)).toBe(false);
  });

  it('signedBy accepts RSA PKCS#1 v1.5 with NULL or absent parameters, under an RSA key only', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const key = ecKey();
    const issuer = t.encodeName([{ oid: OID.commonName, value: 'rsa root' }]);
    for (const alg of [der.seq(der.oid(OID.sha256WithRsa), der.tlv(der.TAG.NULL)), der.seq(der.oid(OID.sha256WithRsa))]) {
      const tbs = t.encodeTbs({
        serial: t.randomSerial(),
        algorithm: alg,
        issuer,
        ...win,
        subject: t.encodeName([{ oid: OID.commonName, value: 'x' }]),
        spki: key.spki,
        extensions: [t.basicConstraints(false)],
      });
      const c = parseCertificate(t.signCertificate(tbs, alg, 'sha256', rsa.privateKey));
      expect(signedBy(c, rsa.publicKey)).toBe(true);
      expect(signedBy(c, createPublicKey(key.privateKey))).toBe(false);
    }
  });
});

describe('x509 path building over an untrusted pool', () => {
  it('finds the path through any order of candidates, with duplicates and decoys', () => {
    const { root, mid, leaf } = pki();
    const decoy = ca('mid', root); // same name as mid, another key: did not sign the leaf
    const expired = ca('mid', root, { notBefore: new Date(T0 - 2 * HOUR), notAfter: new Date(T0 - 1000) });
    const pool = [decoy.parsed, expired.parsed, mid.parsed, mid.parsed, root.parsed];
    expect(buildPathProblem(leaf.parsed, pool, [root.der], T0)).toBeUndefined();
    expect(buildPathProblem(leaf.parsed, [...pool].reverse(), [root.der], T0)).toBeUndefined();
  });

  it('reports why the last attempt failed, or that no issuer is known', () => {
    const { root, leaf } = pki();
    expect(buildPathProblem(leaf.parsed, [], [root.der], T0)).toBe(UNKNOWN);
    const expired = ca('mid', root, { notBefore: new Date(T0 - 2 * HOUR), notAfter: new Date(T0 - 1000) });
    const leaf2 = cert({ subjectCn: 'leaf', issuer: expired });
    expect(buildPathProblem(leaf2.parsed, [expired.parsed], [root.der], T0)).toBe(AFTER);
    expect(buildPathProblem(leaf.parsed, [], [], T0)).toBe(UNKNOWN);
  });

  it('needs no pool when the leaf’s issuer is an anchor', () => {
    const root = ca('root');
    const leaf = cert({ subjectCn: 'leaf', issuer: root });
    expect(buildPathProblem(leaf.parsed, [], [root.der], T0)).toBeUndefined();
  });

  it(`stops at MAX_CHAIN_LENGTH (${MAX_CHAIN_LENGTH}) certificates and terminates on issuer cycles`, () => {
    const root = ca('root');
    const chain = [root];
    for (let i = 0; i < MAX_CHAIN_LENGTH; i++) chain.push(ca(`c${i}`, chain.at(-1)));
    const leaf = cert({ subjectCn: 'leaf', issuer: chain.at(-1) });
    const pool = chain.slice(1).map((c) => c.parsed);
    // leaf + 8 intermediates is one certificate too many: the walk never tries it.
    expect(buildPathProblem(leaf.parsed, pool, [root.der], T0)).toBe(UNKNOWN);
    expect(buildPathProblem(leaf.parsed, pool.slice(1), [chain[1]!.der], T0)).toBeUndefined();
    // Two CAs that name each other as issuer: the walk ends.
    const a = ca('loop-a', undefined, {});
    const b = ca('loop-b', a);
    const a2 = ca('loop-a', b);
    const l = cert({ subjectCn: 'leaf', issuer: a2 });
    expect(buildPathProblem(l.parsed, [a2.parsed, b.parsed, a.parsed], [root.der], T0)).toBe(UNKNOWN);
  });
});
