import 'reflect-metadata';
import { X509Certificate, createPublicKey, generateKeyPairSync } from 'node:crypto';
import * as px509 from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { X509SvidMinter } from '../../src/svid/x509-mint.js';
import { keySigner } from '../../src/jose/jws.js';
import { parseSpiffeId } from '../../src/spiffe/id.js';
import { makeCert } from '../helpers/testca.js';
import * as t from '../../src/svid/template.js';

const ca = makeCert({ subjectCn: 'signing', ca: true, pathLen: 0, uris: ['spiffe://example.org'] });
const minter = new X509SvidMinter({ certificate: ca.parsed, signer: keySigner(ca.key), chain: [ca.der] });
const spki = createPublicKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey).export({ type: 'spki', format: 'der' });
const id = parseSpiffeId('spiffe://example.org/agent/one');
const now = Date.now();

const svid = await minter.mint({ spiffeId: id, spki, notBefore: new Date(now - 10_000), notAfter: new Date(now + 3600_000) });
const cert = new X509Certificate(svid.leaf);

describe('X.509-SVID minting (X509-SVID §4 profile)', () => {
  it('is signed by the CA (checked by OpenSSL through Node)', () => {
    expect(cert.verify(new X509Certificate(ca.der).publicKey)).toBe(true);
    expect(cert.checkIssued(new X509Certificate(ca.der))).toBe(true);
  });
  it('has exactly one URI SAN with the SPIFFE ID', () => {
    expect(cert.subjectAltName).toBe(`URI:${id.uri}`);
  });
  it('has the leaf profile as seen by an independent parser (@peculiar/x509)', () => {
    const p = new px509.X509Certificate(svid.leaf);
    const bc = p.getExtension(px509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(false);
    expect(bc.critical).toBe(true);
    const ku = p.getExtension(px509.KeyUsagesExtension)!;
    expect(ku.critical).toBe(true);
    expect(ku.usages).toBe(px509.KeyUsageFlags.digitalSignature);
    const eku = p.getExtension(px509.ExtendedKeyUsageExtension)!;
    expect(eku.usages.map(String).sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(p.getExtension(px509.SubjectKeyIdentifierExtension)).toBeTruthy();
    expect(p.getExtension(px509.AuthorityKeyIdentifierExtension)).toBeTruthy();
  });
  it('is backdated for clock skew and carries the requested public key', () => {
    expect(Date.parse(cert.validFrom)).toBeLessThan(now);
    expect(cert.publicKey.export({ type: 'spki', format: 'der' }).equals(spki)).toBe(true);
  });
  it('uses a fresh random positive serial each time', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const s = (await minter.mint({ spiffeId: id, spki, notBefore: new Date(now), notAfter: new Date(now + 60_000) })).serial;
      expect(s.length).toBe(16);
      expect(s[0]! & 0x80).toBe(0);
      serials.add(s.toString('hex'));
    }
    expect(serials.size).toBe(200);
  });
  it('caps notAfter at the signing CA notAfter', async () => {
    const s = await minter.mint({ spiffeId: id, spki, notBefore: new Date(now), notAfter: new Date(now + 100 * 3600_000) });
    expect(s.notAfter.getTime()).toBe(ca.parsed.notAfter.getTime());
    expect(Date.parse(new X509Certificate(s.leaf).validTo)).toBe(ca.parsed.notAfter.getTime());
  });
  it('returns the chain leaf first, then the signing CA', () => {
    expect(svid.chain.length).toBe(2);
    expect(svid.chain[1]!.equals(ca.der)).toBe(true);
  });
  it('refuses to return an SVID whose ID has no path (validator runs on our own output)', async () => {
    await expect(
      minter.mint({ spiffeId: parseSpiffeId('spiffe://example.org'), spki, notBefore: new Date(now), notAfter: new Date(now + 60_000) }),
    ).rejects.toThrow(/non-root path/);
  });
});

describe('single-pass leaf template', () => {
  const t0 = new Date(Date.UTC(2031, 4, 6, 7, 8, 9));
  const t1 = new Date(Date.UTC(2031, 4, 6, 8, 8, 9));
  const keys = [
    createPublicKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey),
    createPublicKey(generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey),
    createPublicKey(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey),
  ].map((k) => k.export({ type: 'spki', format: 'der' }));
  const consts = Buffer.concat([t.basicConstraints(false), t.keyUsage([0]), t.extKeyUsage(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'])]);
  const tpl = { algorithm: t.signatureSchemeFor(ca.key).algorithm, issuer: ca.parsed.subject, subject: ca.parsed.subject, constantExtensions: consts };

  it('is byte-identical to the generic encoder across length boundaries and key types', () => {
    for (const spk of keys) {
      for (const pathLen of [1, 60, 90, 100, 110, 200, 230, 240, 300, 1000, 2020]) {
        const uri = `spiffe://example.org/${'a'.repeat(pathLen)}`;
        const serial = t.randomSerial();
        const fast = t.encodeLeafTbs(tpl, serial, t0, t1, spk, uri)!;
        const generic = t.encodeTbs({
          serial,
          algorithm: tpl.algorithm,
          issuer: tpl.issuer,
          notBefore: t0,
          notAfter: t1,
          subject: tpl.subject,
          spki: spk,
          extensions: [consts, t.subjectKeyId(spk), t.subjectAltName([uri])],
        });
        expect(fast.toString('hex'), `path ${pathLen}`).toBe(generic.toString('hex'));
      }
    }
  });
  it('declines what it does not cover (GeneralizedTime, odd serials) so the generic path is used', () => {
    expect(t.encodeLeafTbs(tpl, t.randomSerial(), t0, new Date(Date.UTC(2050, 0, 1)), keys[0]!, 'spiffe://example.org/a')).toBeUndefined();
    expect(t.encodeLeafTbs(tpl, Buffer.alloc(16, 0x80), t0, t1, keys[0]!, 'spiffe://example.org/a')).toBeUndefined();
    expect(t.encodeLeafTbs(tpl, Buffer.alloc(8, 1), t0, t1, keys[0]!, 'spiffe://example.org/a')).toBeUndefined();
  });
});
