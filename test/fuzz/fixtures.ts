/**
 * Deterministic fixtures for the fuzz targets. Every key is derived from a label (EC) or read
 * from the committed test key (RSA), and every instant is fixed, so an input saved by one run
 * (a finding, a regression file, a corpus entry) means the same thing to the next. Certificates,
 * tokens and TPM structures are built with the project's own builders and the test CA
 * (test/helpers/testca.ts); the valid signed inputs among them are kept in stable.json (see
 * `stable`), since ECDSA signatures and serial numbers differ on every build.
 */
import { createECDH, createHash, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as der from '../../src/der/der.js';
import { OID } from '../../src/x509/oids.js';
import { makeCert, type TestCert } from '../helpers/testca.js';
import { ROOT } from './engine/paths.js';

/** The instant every verifier in the fuzz targets checks at. */
export const AT = new Date('2026-01-01T00:00:00Z');
export const AT_S = Math.floor(AT.getTime() / 1000);
/** Validity of every generated certificate: around AT. */
export const NOT_BEFORE = new Date('2025-01-01T00:00:00Z');
export const NOT_AFTER = new Date('2030-01-01T00:00:00Z');

const CURVES = { 'P-256': { node: 'prime256v1', size: 32, hash: 'sha256' }, 'P-384': { node: 'secp384r1', size: 48, hash: 'sha384' } } as const;

/** An EC private key whose scalar is a hash of `label`: the same key in every run. */
export function ecKey(label: string, crv: keyof typeof CURVES = 'P-256'): KeyObject {
  const c = CURVES[crv];
  const d = createHash(c.hash).update(`writ-fuzz-fixture:${label}`).digest();
  const ecdh = createECDH(c.node);
  ecdh.setPrivateKey(d);
  const pub = ecdh.getPublicKey();
  return createPrivateKey({
    key: {
      kty: 'EC',
      crv,
      d: d.toString('base64url'),
      x: pub.subarray(1, 1 + c.size).toString('base64url'),
      y: pub.subarray(1 + c.size).toString('base64url'),
    },
    format: 'jwk',
  });
}

let rsa: KeyObject | undefined;
/** The committed RSA-2048 test key (test/fuzz/fixtures/rsa-2048.pem); RSA keys cannot be derived from a label. */
export function rsaKey(): KeyObject {
  rsa ??= createPrivateKey(readFileSync(join(ROOT, 'test', 'fuzz', 'fixtures', 'rsa-2048.pem')));
  return rsa;
}

export const spkiOf = (k: KeyObject): Buffer => createPublicKey(k).export({ type: 'spki', format: 'der' });
const pair = (k: KeyObject) => ({ privateKey: k, spki: spkiOf(k) });

export interface Chain {
  readonly root: TestCert;
  readonly intermediate: TestCert;
  readonly leaf: TestCert;
}

/** Root → intermediate → leaf for `td`, with fixed keys and validity (serial numbers vary; anchors match by name and key). */
export function chain(td: string, crv: keyof typeof CURVES = 'P-256', leafKey?: KeyObject): Chain {
  const root = makeCert({
    subjectCn: `fuzz root ${td}`,
    ca: true,
    uris: [`spiffe://${td}`],
    key: pair(ecKey(`root ${td} ${crv}`, crv)),
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
  });
  const intermediate = makeCert({
    subjectCn: `fuzz intermediate ${td}`,
    issuer: root,
    ca: true,
    pathLen: 0,
    uris: [`spiffe://${td}`],
    key: pair(ecKey(`intermediate ${td} ${crv}`, crv)),
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
  });
  const leaf = makeCert({
    subjectCn: 'fuzz leaf',
    issuer: intermediate,
    uris: [`spiffe://${td}/workload/fuzz`],
    key: pair(leafKey ?? ecKey(`leaf ${td} ${crv}`, crv)),
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
  });
  return { root, intermediate, leaf };
}

/** A PKCS#10 CSR (RFC 2986) signed by `key`, ECDSA or RSA PKCS#1 v1.5 with SHA-256. */
export function csr(key: KeyObject, cn = 'fuzz'): Buffer {
  const info = der.seq(der.smallInt(0), der.seq(der.set(der.seq(der.oid(OID.commonName), der.utf8(cn)))), spkiOf(key), der.ctx(0, true));
  const rsaKey = key.asymmetricKeyType === 'rsa';
  const alg = rsaKey ? der.seq(der.oid(OID.sha256WithRsa), der.tlv(der.TAG.NULL)) : der.seq(der.oid(OID.ecdsaSha256));
  return der.seq(info, alg, der.bitString(sign('sha256', info, key)));
}

/** `u16 length ‖ bytes` fields, the framing of multi-part inputs (e.g. a quote with its signature). */
export function frame(parts: readonly Buffer[]): Buffer {
  return Buffer.concat(
    parts.flatMap((p) => {
      const n = Buffer.alloc(2);
      n.writeUInt16BE(p.length);
      return [n, p];
    }),
  );
}

/** The inverse of `frame`, exactly: `count` fields and no byte left over, else undefined. */
export function unframe(b: Buffer, count: number): Buffer[] | undefined {
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + 2 > b.length) return undefined;
    const n = b.readUInt16BE(off);
    if (off + 2 + n > b.length) return undefined;
    out.push(b.subarray(off + 2, off + 2 + n));
    off += 2 + n;
  }
  return off === b.length ? out : undefined;
}

/** The PEM-decoded DER of every CERTIFICATE block in a vector file. */
export function certsOfPem(text: string): Buffer[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

const STABLE = join(ROOT, 'test', 'fuzz', 'fixtures', 'stable.json');
let stableDoc: Record<string, string[]> | undefined;

/**
 * The valid signed inputs of a target, made once and committed (test/fuzz/fixtures/stable.json).
 * A signed target may accept exactly these bytes; were they made afresh each run, a valid input
 * made by an earlier run (its corpus, a regression file) would be signed by the same fixed keys
 * yet not be among them, and would be reported as an accepted mutant. Missing entries are made
 * and written (commit the file); delete an entry to make it again.
 */
export function stable(key: string, make: () => readonly string[]): string[] {
  stableDoc ??= existsSync(STABLE) ? (JSON.parse(readFileSync(STABLE, 'utf8')) as Record<string, string[]>) : {};
  const hit = stableDoc[key];
  if (hit) return hit;
  const made = [...make()];
  stableDoc[key] = made;
  writeFileSync(STABLE, `${JSON.stringify(stableDoc, null, 1)}\n`);
  process.stderr.write(`fuzz: wrote fixture ${key} to ${STABLE} (commit it)\n`);
  return made;
}

export const b64 = (b: Buffer): string => b.toString('base64');
export const unb64 = (s: string): Buffer => Buffer.from(s, 'base64');
