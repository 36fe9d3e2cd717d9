/**
 * Strict certificate parsing (src/x509/certificate.ts): the fields and extensions path
 * validation and the SVID profile rely on, each refused when malformed, with its message
 * (`make mutate`, docs/testing.md). Certificates are assembled from DER parts here so that each
 * can be broken alone; they are signed, though parsing never looks at the signature.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as der from '../../src/der/der.js';
import * as t from '../../src/svid/template.js';
import { parseCertificate, splitDerChain } from '../../src/x509/certificate.js';
import { KEY_USAGE, OID } from '../../src/x509/oids.js';

const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const spki = key.publicKey.export({ type: 'spki', format: 'der' });
const ALG = der.seq(der.oid(OID.ecdsaSha256));
const name = (cn: string) => t.encodeName([{ oid: OID.commonName, value: cn }]);
const validity = der.seq(der.time(new Date(Date.UTC(2030, 0, 1))), der.time(new Date(Date.UTC(2031, 0, 1))));

interface Parts {
  version?: Buffer | null;
  innerAlg?: Buffer;
  outerAlg?: Buffer;
  exts?: Buffer[] | null;
  extsWrap?: Buffer;
  signature?: Buffer;
}

/** A certificate from parts; `version: null` omits the version (v1), `exts: null` the extensions. */
function certDer(p: Parts = {}): Buffer {
  const version = p.version === undefined ? der.ctx(0, true, der.smallInt(2)) : p.version;
  const exts = p.exts === undefined ? [t.basicConstraints(false)] : p.exts;
  const tbs = der.seq(
    ...(version ? [version] : []),
    der.uint(Buffer.from([1])),
    p.innerAlg ?? ALG,
    name('issuer'),
    validity,
    name('subject'),
    spki,
    ...(p.extsWrap ? [p.extsWrap] : exts ? [der.ctx(3, true, der.seq(...exts))] : []),
  );
  return der.seq(tbs, p.outerAlg ?? ALG, p.signature ?? der.bitString(Buffer.alloc(64, 1)));
}

const ext = (id: string, value: Buffer, critical = false) => t.extension(id, critical, value);
const parseErr = (d: Buffer) => {
  try {
    parseCertificate(d);
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
};
const x509Err = (m: string) => ({ code: 'ERR_DER_MALFORMED', message: `x509: ${m}` });

describe('x509 parsing: the certificate', () => {
  it('parses the fields, keeping the exact signed bytes', () => {
    const d = certDer();
    const c = parseCertificate(d);
    expect(c.version).toBe(3);
    expect(c.der).toBe(d);
    expect(c.serial).toEqual(Buffer.from([1]));
    expect(c.signatureAlgorithm).toBe(OID.ecdsaSha256);
    expect(c.signatureAlgorithmDer).toEqual(ALG);
    expect(c.signature).toEqual(Buffer.alloc(64, 1));
    expect(c.issuer).toEqual(name('issuer'));
    expect(c.subject).toEqual(name('subject'));
    expect(c.spki).toEqual(spki);
    expect(c.notBefore.toISOString()).toBe('2030-01-01T00:00:00.000Z');
    expect(c.notAfter.toISOString()).toBe('2031-01-01T00:00:00.000Z');
    expect(der.seq(c.tbs, ALG, der.bitString(Buffer.alloc(64, 1)))).toEqual(d);
  });

  it('accepts v1 (no version) without extensions and v2, refuses other versions', () => {
    expect(parseCertificate(certDer({ version: null, exts: null })).version).toBe(1);
    expect(parseCertificate(certDer({ version: der.ctx(0, true, der.smallInt(1)), exts: null })).version).toBe(2);
    expect(parseErr(certDer({ version: der.ctx(0, true, der.smallInt(3)) }))).toMatchObject(x509Err('unsupported version 4'));
    expect(parseErr(certDer({ version: der.ctx(0, true, der.smallInt(0)) }))).toMatchObject(x509Err('unsupported version 1'));
    expect(parseErr(certDer({ version: der.ctx(0, true, der.smallInt(2), der.smallInt(2)) }))).toMatchObject(x509Err('bad version'));
  });

  it('refuses extensions on a v1 or v2 certificate', () => {
    expect(parseErr(certDer({ version: null }))).toMatchObject(x509Err('extensions require version 3'));
    expect(parseErr(certDer({ version: der.ctx(0, true, der.smallInt(1)) }))).toMatchObject(x509Err('extensions require version 3'));
  });

  it('refuses a signature algorithm inside the TBS that differs from the outer one', () => {
    const other = der.seq(der.oid(OID.ecdsaSha384));
    expect(parseErr(certDer({ innerAlg: other }))).toMatchObject(x509Err('tbsCertificate signature algorithm differs from the outer one'));
  });

  it('refuses a signature BIT STRING with unused bits', () => {
    expect(parseErr(certDer({ signature: der.tlv(der.TAG.BIT_STRING, Buffer.from([1]), Buffer.alloc(64, 2)) }))).toMatchObject(
      x509Err('signature has unused bits'),
    );
  });
});

describe('x509 parsing: the extensions', () => {
  it('refuses a malformed extensions wrapper, an empty list, more than 32 extensions; takes 32', () => {
    expect(parseErr(certDer({ extsWrap: der.ctx(3, true, der.seq(t.basicConstraints(false)), der.seq()) }))).toMatchObject(x509Err('bad extensions wrapper'));
    expect(parseErr(certDer({ exts: [] }))).toMatchObject(x509Err('empty extensions'));
    const many = (n: number) => Array.from({ length: n }, (_, i) => ext(`1.3.6.1.4.1.99999.${i}`, der.seq()));
    expect(parseCertificate(certDer({ exts: many(32) })).unknownCritical).toEqual([]);
    expect(parseErr(certDer({ exts: many(33) }))).toMatchObject(x509Err('more than 32 extensions'));
  });

  it('refuses an explicit critical=false (DER forbids encoding the default) and a duplicate extension', () => {
    const explicitFalse = der.seq(der.oid(OID.subjectKeyId), der.bool(false), der.octets(der.octets(Buffer.alloc(20))));
    expect(parseErr(certDer({ exts: [explicitFalse] }))).toMatchObject(x509Err('explicit default critical=false'));
    expect(parseErr(certDer({ exts: [t.basicConstraints(true), t.basicConstraints(false)] }))).toMatchObject(
      x509Err(`duplicate extension ${OID.basicConstraints}`),
    );
  });

  it('basicConstraints: CA flag, path length, criticality; refuses an explicit cA=false', () => {
    expect(parseCertificate(certDer({ exts: [t.basicConstraints(true, 2)] })).basicConstraints).toEqual({ ca: true, pathLen: 2, critical: true });
    expect(parseCertificate(certDer({ exts: [t.basicConstraints(true)] })).basicConstraints).toEqual({ ca: true, critical: true });
    expect(parseCertificate(certDer({ exts: [ext(OID.basicConstraints, der.seq())] })).basicConstraints).toEqual({ ca: false, critical: false });
    expect(parseErr(certDer({ exts: [ext(OID.basicConstraints, der.seq(der.bool(false)), true)] }))).toMatchObject(
      x509Err('basicConstraints: explicit default cA=false'),
    );
    expect(parseCertificate(certDer({ exts: null })).basicConstraints).toBeUndefined();
  });

  it('keyUsage: each named bit, up to decipherOnly', () => {
    const all = Object.values(KEY_USAGE);
    expect([...parseCertificate(certDer({ exts: [t.keyUsage(all)] })).keyUsage!].sort((a, b) => a - b)).toEqual(all);
    expect([...parseCertificate(certDer({ exts: [t.keyUsage([KEY_USAGE.keyCertSign])] })).keyUsage!]).toEqual([KEY_USAGE.keyCertSign]);
    // Bits past decipherOnly are not key usages; they are ignored.
    const wide = ext(OID.keyUsage, der.tlv(der.TAG.BIT_STRING, Buffer.from([0]), Buffer.from([0x80, 0x80, 0xff])), true);
    expect([...parseCertificate(certDer({ exts: [wide] })).keyUsage!].sort((a, b) => a - b)).toEqual([0, 8]);
    expect(parseCertificate(certDer({ exts: null })).keyUsage).toBeUndefined();
  });

  it('extKeyUsage: the purposes, and never an empty list', () => {
    expect(parseCertificate(certDer({ exts: [t.extKeyUsage([OID.clientAuth, OID.serverAuth])] })).extKeyUsage).toEqual([OID.clientAuth, OID.serverAuth]);
    expect(parseErr(certDer({ exts: [ext(OID.extKeyUsage, der.seq())] }))).toMatchObject(x509Err('empty extKeyUsage'));
  });

  it('subjectAltName: URIs and directory names, criticality; refuses an empty list, more than 64 names, non-IA5 URIs, a bad directoryName', () => {
    const san = (...names: Buffer[]) => ext(OID.subjectAltName, der.seq(...names), true);
    const uri = (s: string | Buffer) => der.tlv(0x86, Buffer.isBuffer(s) ? s : Buffer.from(s, 'latin1'));
    const dn = der.ctx(4, true, name('tpm'));
    const c = parseCertificate(certDer({ exts: [san(uri('spiffe://a/b'), der.tlv(0x82, Buffer.from('dns.example')), dn, uri(' ~'))] }));
    expect(c.uris).toEqual(['spiffe://a/b', ' ~']);
    expect(c.directoryNames).toEqual([name('tpm')]);
    expect(c.subjectAltNameCritical).toBe(true);
    expect(parseCertificate(certDer({ exts: [ext(OID.subjectAltName, der.seq(uri('x')))] })).subjectAltNameCritical).toBe(false);
    expect(parseErr(certDer({ exts: [san()] }))).toMatchObject(x509Err('empty subjectAltName'));
    expect(parseCertificate(certDer({ exts: [san(...Array.from({ length: 64 }, () => uri('u')))] })).uris).toHaveLength(64);
    expect(parseErr(certDer({ exts: [san(...Array.from({ length: 65 }, () => uri('u')))] }))).toMatchObject(x509Err('more than 64 subjectAltNames'));
    for (const b of [0x7f, 0x1f, 0x80, 0xc3]) {
      expect(parseErr(certDer({ exts: [san(uri(Buffer.from([0x61, b])))] })), b.toString(16)).toMatchObject(x509Err('non-IA5 URI in subjectAltName'));
    }
    expect(parseErr(certDer({ exts: [san(der.ctx(4, true, name('a'), name('b')))] }))).toMatchObject(x509Err('bad directoryName in subjectAltName'));
    expect(parseErr(certDer({ exts: [san(der.ctx(4, true, der.utf8('a')))] }))).toMatchObject(x509Err('bad directoryName in subjectAltName'));
  });

  it('subject and authority key identifiers', () => {
    const c = parseCertificate(certDer({ exts: [t.subjectKeyId(spki), t.authorityKeyId(spki)] }));
    expect(c.subjectKeyId).toEqual(t.keyIdentifier(spki));
    expect(c.authorityKeyId).toEqual(t.keyIdentifier(spki));
    expect(parseErr(certDer({ exts: [ext(OID.subjectKeyId, der.seq())] }))).toMatchObject(x509Err('bad subjectKeyIdentifier'));
    expect(parseCertificate(certDer({ exts: [ext(OID.authorityKeyId, der.seq())] })).authorityKeyId).toBeUndefined();
  });

  it("writ's key-residency extension: a UTF8String of at most 32 bytes", () => {
    expect(parseCertificate(certDer({ exts: [ext(OID.writKeyResidency, der.utf8('tpm'))] })).keyResidency).toBe('tpm');
    expect(parseCertificate(certDer({ exts: [ext(OID.writKeyResidency, der.utf8('t'.repeat(32)))] })).keyResidency).toHaveLength(32);
    expect(parseErr(certDer({ exts: [ext(OID.writKeyResidency, der.utf8('t'.repeat(33)))] }))).toMatchObject(x509Err('bad key residency extension'));
    expect(parseErr(certDer({ exts: [ext(OID.writKeyResidency, der.ia5('tpm'))] }))).toMatchObject(x509Err('bad key residency extension'));
  });

  it('records unknown critical extensions (for the caller to refuse) and ignores unknown non-critical ones', () => {
    const c = parseCertificate(
      certDer({ exts: [ext('1.3.6.1.4.1.99999.1', der.seq(), true), ext('1.3.6.1.4.1.99999.2', der.seq()), ext(OID.nameConstraints, der.seq(), true)] }),
    );
    expect(c.unknownCritical).toEqual(['1.3.6.1.4.1.99999.1', OID.nameConstraints]);
    expect(parseCertificate(certDer()).unknownCritical).toEqual([]);
  });
});

describe('x509: DER chains', () => {
  it('splits concatenated certificates, and an empty buffer into none', () => {
    const a = certDer();
    const b = certDer({ exts: [t.basicConstraints(true)] });
    expect(splitDerChain(Buffer.concat([a, b]))).toEqual([a, b]);
    expect(splitDerChain(Buffer.alloc(0))).toEqual([]);
  });
});
