/** Targets: X.509 certificates (src/x509/certificate.ts), SubjectPublicKeyInfo and CSRs (src/svid/public-key.ts). */
import { generateKeyPairSync } from 'node:crypto';
import { parseCertificate, splitDerChain } from '../../../src/x509/certificate.js';
import { parseCsr, parsePublicKey } from '../../../src/svid/public-key.js';
import * as t from '../../../src/svid/template.js';
import { OID } from '../../../src/x509/oids.js';
import * as der from '../../../src/der/der.js';
import { makeCert } from '../../helpers/testca.js';
import type { FuzzTarget } from '../engine/contract.js';
import { derMutator } from '../engine/mutators.js';
import { chain, csr, ecKey, NOT_AFTER, NOT_BEFORE, rsaKey, spkiOf } from '../fixtures.js';
import { soft, vectorCertificates } from './common.js';

/** Certificates with every extension parseCertificate reads: SAN URIs and a directoryName, AKI, EKU, key residency, an unknown critical one. */
function richCertificates(): Buffer[] {
  const c = chain('example.org');
  const dirName = der.ctx(4, true, t.encodeName([{ oid: OID.organizationName, value: 'TPM maker' }]));
  const san = t.extension(OID.subjectAltName, false, der.seq(der.tlv(0x86, Buffer.from('spiffe://example.org/a')), dirName));
  const rich = makeCert({
    subjectCn: 'rich',
    issuer: c.intermediate,
    uris: [],
    key: { privateKey: ecKey('rich'), spki: spkiOf(ecKey('rich')) },
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    extraExtensions: [
      san,
      t.authorityKeyId(c.intermediate.spki),
      t.extKeyUsage([OID.serverAuth, OID.clientAuth]),
      t.extension(OID.writKeyResidency, false, der.utf8('tpm')),
      t.extension('1.2.3.4.5', true, der.octets(Buffer.from('x'))),
    ],
  });
  return [c.root.der, c.intermediate.der, c.leaf.der, rich.der, chain('example.org', 'P-384').leaf.der];
}

export const x509Target: FuzzTarget = {
  name: 'x509',
  parsers: 'src/x509/certificate.ts: parseCertificate, splitDerChain',
  contract: 'returns the parsed certificate or throws a WritError (ERR_DER_MALFORMED)',
  maxLen: 16 * 1024,
  sources: ['src/x509/certificate.ts', 'src/x509/oids.ts'],
  setup: () => ({
    seeds: [...vectorCertificates(), ...richCertificates()],
    mutators: [derMutator, derMutator, derMutator],
    run(data) {
      soft(() => splitDerChain(data));
      parseCertificate(data);
      return undefined;
    },
  }),
};

export const publicKeyTarget: FuzzTarget = {
  name: 'public-key',
  parsers: 'src/svid/public-key.ts: parsePublicKey',
  contract: 'returns an accepted key (EC P-256/P-384, RSA 2048..8192) or throws a WritError (ERR_KEY_UNSUPPORTED)',
  maxLen: 4096,
  sources: ['src/svid/public-key.ts'],
  setup: () => ({
    seeds: [
      spkiOf(ecKey('spki 256')),
      spkiOf(ecKey('spki 384', 'P-384')),
      spkiOf(rsaKey()),
      spkiOf(generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).privateKey),
      spkiOf(generateKeyPairSync('ed25519').privateKey),
      spkiOf(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey),
    ],
    mutators: [derMutator, derMutator],
    run(data) {
      parsePublicKey(data);
      return undefined;
    },
  }),
};

export const csrTarget: FuzzTarget = {
  name: 'csr',
  parsers: 'src/svid/public-key.ts: parseCsr',
  contract: 'returns the key of a self-signed PKCS#10 request or throws a WritError (ERR_CSR_INVALID, ERR_KEY_UNSUPPORTED)',
  maxLen: 8192,
  sources: ['src/svid/public-key.ts', 'src/x509/oids.ts'],
  setup: () => ({
    seeds: [csr(ecKey('csr 256')), csr(ecKey('csr 384', 'P-384')), csr(rsaKey()), csr(generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).privateKey)],
    mutators: [derMutator, derMutator],
    run(data) {
      parseCsr(data);
      return undefined;
    },
  }),
};
