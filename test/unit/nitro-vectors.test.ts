/**
 * Every genuine AWS Nitro attestation document in ../shared/vectors (nitro/ and enclave/nitro/,
 * their INDEX files give the verdicts and instants), classified exactly as the index says, and
 * their mutated twins: every field of the signed region flipped, truncation, trailing bytes, an
 * intermediate of another chain, a self-signed root with AWS's name, the document's own root as
 * anchor. All refused with a typed reason, never a crash.
 */
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeText } from '../../src/attestation/nitro/cbor.js';
import { parseNitroDocument, type NitroDocument } from '../../src/attestation/nitro/document.js';
import { NitroEvidenceError, type NitroFailure } from '../../src/attestation/nitro/errors.js';
import { AWS_NITRO_ROOT_G1_SHA256, DEFAULT_NITRO_ANCHORS, anchorsIn, sha256Hex } from '../../src/attestation/nitro/roots.js';
import { verifyNitroChain, verifyNitroDocument, type NitroVerifyOptions } from '../../src/attestation/nitro/verify.js';
import { AWS_ROOT_NAME, nitroCert, nitroDocument, nitroPki } from '../helpers/nitro-doc.js';
import { HAVE_SHARED, vector } from '../helpers/shared.js';

const HOUR = 3600_000;

interface Vec {
  readonly file: string;
  /** The instant the index pins (inside the leaf's validity). */
  readonly at: number;
  readonly debug: boolean;
  readonly moduleId: string;
}

const VECTORS: readonly Vec[] = [
  { file: 'nitro/sample-attestation-doc.cbor', at: 1731627987382, debug: true, moduleId: 'i-0f73a4b4cb74cc9f2-enc0192e4188fef781d' },
  {
    file: 'enclave/nitro/evervault_beta_non-debug-cert-containing-attestation-document-18-1-23.extracted-cose.bin',
    at: Date.parse('2023-01-18T13:07:19.280Z'),
    debug: false,
    moduleId: 'i-0ec0e572c8263d8ff-enc0185c4fd382eeb25',
  },
  {
    file: 'enclave/nitro/evervault_beta_non-debug-cert-containing-attestation-document-18-1-23-der.extracted-cose.bin',
    at: Date.parse('2023-01-18T13:07:19.280Z'),
    debug: false,
    moduleId: 'i-0ec0e572c8263d8ff-enc0185c4fd382eeb25',
  },
  {
    file: 'enclave/nitro/evervault_beta_debug-mode-cert-containing-attestation-doc-18-1-23.extracted-cose.bin',
    at: Date.parse('2023-01-18T15:10:32.312Z'),
    debug: true,
    moduleId: 'i-06e1ffc9a8410edb1-enc0185c56e099c2d54',
  },
  {
    file: 'enclave/nitro/evervault_beta_valid-attestation-doc-bytes',
    at: Date.parse('2022-10-13T08:58:02.136Z'),
    debug: false,
    moduleId: 'i-020b6af9246d90e92-enc0183d09086c24190',
  },
  {
    file: 'enclave/nitro/evervault_beta_debug-mode-attestation-doc-bytes',
    at: Date.parse('2022-10-12T13:50:06.081Z'),
    debug: true,
    moduleId: 'i-03ad7cdb817437eeb-enc0183cc7569b3f6e1',
  },
  {
    file: 'enclave/nitro/evervault_valid-attestation-doc.decoded-cose.bin',
    at: Date.parse('2023-09-18T15:03:30.860Z'),
    debug: true,
    moduleId: 'i-0918f6c55e3b61d89-enc018aa8b8e2285d13',
  },
];

const opts = (at: number, extra: Partial<NitroVerifyOptions> = {}): NitroVerifyOptions => ({
  anchors: DEFAULT_NITRO_ANCHORS,
  at: new Date(at),
  allowDebug: true,
  ...extra,
});

/** The reason `f` is refused with; fails the test on success or on an untyped error (a crash). */
function reasonOf(f: () => unknown): NitroFailure {
  try {
    f();
  } catch (e) {
    if (e instanceof NitroEvidenceError) return e.reason;
    throw new Error(`untyped error: ${(e as Error)?.stack ?? String(e)}`);
  }
  throw new Error('accepted');
}

const withBundle = (d: NitroDocument, cabundle: readonly Buffer[]): NitroDocument => ({ ...d, cabundle });

describe.skipIf(!HAVE_SHARED)('genuine Nitro attestation documents', () => {
  it('the shipped root is the AWS Nitro root G1 of the vectors, by its published fingerprint', () => {
    expect(sha256Hex(DEFAULT_NITRO_ANCHORS[0]!)).toBe(AWS_NITRO_ROOT_G1_SHA256);
    expect(anchorsIn(vector('nitro/aws-nitro-root-g1.pem'), 'root')).toEqual(DEFAULT_NITRO_ANCHORS);
    expect(anchorsIn(vector('enclave/roots/aws_nitro_root_g1.pem'), 'root')).toEqual(DEFAULT_NITRO_ANCHORS);
  });

  it.each(VECTORS.map((v) => [v.file.split('/').pop()!, v] as const))('%s: valid at its instant, with its debug verdict', (_n, v) => {
    const bytes = vector(v.file);
    const ok = verifyNitroDocument(bytes, opts(v.at));
    expect(ok.debug).toBe(v.debug);
    expect(ok.rootSha256).toBe(AWS_NITRO_ROOT_G1_SHA256);
    expect(ok.document.moduleId).toBe(v.moduleId);
    expect(ok.document.cabundle).toHaveLength(4);
    expect(ok.selectors.map((s) => `${s.type}:${s.value}`)).toEqual([
      ...[0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => `nitro:pcr:${i}:${ok.document.pcrs.get(i)!.toString('hex')}`),
      `nitro:module_id:${v.moduleId}`,
    ]);
    // Debug enclaves are refused by default, for that reason; production ones are not.
    if (v.debug) expect(reasonOf(() => verifyNitroDocument(bytes, opts(v.at, { allowDebug: false })))).toBe('debug');
    else expect(verifyNitroDocument(bytes, opts(v.at, { allowDebug: false })).debug).toBe(false);
    // The leaf lives about three hours: three hours before or after, the chain fails.
    expect(reasonOf(() => verifyNitroDocument(bytes, opts(v.at - 3 * HOUR)))).toBe('chain');
    expect(reasonOf(() => verifyNitroDocument(bytes, opts(v.at + 3 * HOUR)))).toBe('chain');
    // Today the leaf has long expired.
    expect(reasonOf(() => verifyNitroDocument(bytes, opts(Date.parse('2026-11-01T00:00:00Z'))))).toBe('chain');
    // The same document as COSE tag 18 has the same verdict; another tag is refused.
    expect(verifyNitroDocument(Buffer.concat([Buffer.from([0xd2]), bytes]), opts(v.at)).debug).toBe(v.debug);
    expect(reasonOf(() => verifyNitroDocument(Buffer.concat([Buffer.from([0xd1]), bytes]), opts(v.at)))).toBe('malformed');
    // A nonce is checked when one is required.
    expect(reasonOf(() => verifyNitroDocument(bytes, opts(v.at, { nonce: Buffer.alloc(32) })))).toBe('nonce');
    // A window around now that excludes the document's timestamp.
    const ts = ok.document.timestamp;
    expect(reasonOf(() => verifyNitroDocument(bytes, opts(v.at, { timestampWindow: { notBefore: ts + 1, notAfter: ts + 1000 } })))).toBe('timestamp');
    expect(verifyNitroDocument(bytes, opts(v.at, { timestampWindow: { notBefore: ts, notAfter: ts } })).document.timestamp).toBe(ts);
  });

  it('sample-attestation-doc: valid at 1731627987382 ms and ±10 minutes; user_data as indexed; public_key and nonce absent', () => {
    const bytes = vector('nitro/sample-attestation-doc.cbor');
    for (const d of [-10 * 60_000, 0, 10 * 60_000]) expect(verifyNitroDocument(bytes, opts(1731627987382 + d)).debug).toBe(true);
    const doc = parseNitroDocument(bytes).document;
    expect(doc.userData?.toString('hex')).toMatch(/^5a2647.*84f2$/);
    expect(doc.userData).toHaveLength(32);
    expect(doc.publicKey).toBeUndefined();
    expect(doc.nonce).toBeUndefined();
    expect(doc.pcrs.size).toBe(16);
    for (const i of [0, 1, 2]) expect(doc.pcrs.get(i)!.every((b) => b === 0)).toBe(true);
    for (const i of [3, 4]) expect(doc.pcrs.get(i)!.some((b) => b !== 0)).toBe(true);
  });

  it('evervault beta non-debug: the PCRs the upstream spec expects, user_data is the TLS certificate key, nonce of 256 bytes', () => {
    const raw = vector('enclave/nitro/evervault_beta_non-debug-cert-containing-attestation-document-18-1-23.extracted-cose.bin');
    expect(vector('enclave/nitro/evervault_beta_non-debug-cert-containing-attestation-document-18-1-23-der.extracted-cose.bin')).toEqual(raw);
    const doc = parseNitroDocument(raw).document;
    const hexOf = (i: number) => doc.pcrs.get(i)!.toString('hex');
    expect(hexOf(0)).toMatch(/^d265a83f.*19af$/);
    expect(hexOf(1)).toMatch(/^bcdf05fe.*e63f$/);
    expect(hexOf(2)).toMatch(/^e4f634d2.*7f24$/);
    expect(hexOf(8)).toMatch(/^97c5395a.*43ca$/);
    const tls = new X509Certificate(vector('enclave/nitro/evervault_beta_non-debug-cert-containing-attestation-document-18-1-23-der.crt'));
    expect(doc.userData).toEqual(tls.publicKey.export({ type: 'spki', format: 'der' }));
    expect(doc.nonce).toHaveLength(256);
  });

  it.each([
    [
      'evervault_beta_non-debug-cert-containing-attestation-document-18-1-23.pem',
      'evervault_beta_non-debug-cert-containing-attestation-document-18-1-23.extracted-cose.bin',
    ],
    [
      'evervault_beta_non-debug-cert-containing-attestation-document-18-1-23-der.crt',
      'evervault_beta_non-debug-cert-containing-attestation-document-18-1-23-der.extracted-cose.bin',
    ],
    [
      'evervault_beta_debug-mode-cert-containing-attestation-doc-18-1-23.pem',
      'evervault_beta_debug-mode-cert-containing-attestation-doc-18-1-23.extracted-cose.bin',
    ],
  ])('%s: the document in its TLS certificate (hex in the longest SAN name) is the one verified above', (cert, cose) => {
    const names = new X509Certificate(vector(`enclave/nitro/${cert}`)).subjectAltName!.split(', ').map((n) => n.replace(/^DNS:/, ''));
    const longest = names.sort((a, b) => b.length - a.length)[0]!;
    expect(Buffer.from(longest.split('.')[0]!, 'hex')).toEqual(vector(`enclave/nitro/${cose}`));
  });

  it('evervault GA: base64 file decodes to the raw document; user_data is the SPKI of valid-certificate.der', () => {
    const raw = vector('enclave/nitro/evervault_valid-attestation-doc.decoded-cose.bin');
    expect(Buffer.from(vector('enclave/nitro/evervault_valid-attestation-doc-base64').toString('latin1').trim(), 'base64')).toEqual(raw);
    const tls = new X509Certificate(vector('enclave/nitro/evervault_valid-certificate.der'));
    expect(parseNitroDocument(raw).document.userData).toEqual(tls.publicKey.export({ type: 'spki', format: 'der' }));
  });

  it('evervault beta debug-mode bytes: user_data "hello, world!" and public_key "my super secret key" as opaque bytes', () => {
    const doc = parseNitroDocument(vector('enclave/nitro/evervault_beta_debug-mode-attestation-doc-bytes')).document;
    expect(doc.userData?.toString()).toBe('hello, world!');
    expect(doc.publicKey?.toString()).toBe('my super secret key');
  });

  describe('mutated twins', () => {
    /** Offsets of each payload field's key and value in the document bytes. */
    function fieldOffsets(bytes: Buffer): number[] {
      const out: number[] = [];
      for (const k of ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce']) {
        const at = bytes.indexOf(encodeText(k));
        expect(at, k).toBeGreaterThan(0);
        const valueAt = at + encodeText(k).length;
        out.push(at, at + 1, valueAt, valueAt + 1, valueAt + 2, valueAt + 5, valueAt + 40);
      }
      return out;
    }

    it.each(VECTORS.map((v, i) => [v.file.split('/').pop()!, v, i] as const))(
      '%s: every field of the signed region and the signature flipped is refused',
      (_n, v, i) => {
        const bytes = vector(v.file);
        const { payload, signature } = parseNitroDocument(bytes);
        const payloadAt = bytes.indexOf(payload);
        const sigAt = bytes.length - signature.length;
        // The envelope and protected header, each field's key and value, the last payload byte,
        // a stride over the whole document (every 7th byte of the first one), every signature byte.
        const offsets = new Set<number>([0, 1, 2, 3, 4, 5, 6, 7, 8, payloadAt - 1, payloadAt + payload.length - 1, ...fieldOffsets(bytes)]);
        const stride = i === 0 ? 7 : 37;
        for (let o = 0; o < bytes.length; o += stride) offsets.add(o);
        for (let o = sigAt; o < bytes.length; o++) offsets.add(o);
        const seen = new Set<NitroFailure>();
        for (const o of offsets) {
          const m = Buffer.from(bytes);
          m[o] = m[o]! ^ (o % 2 ? 0x01 : 0xff);
          seen.add(reasonOf(() => verifyNitroDocument(m, opts(v.at))));
        }
        expect(seen.has('malformed') && seen.has('signature')).toBe(true);
        expect([...seen].every((r) => r === 'malformed' || r === 'signature')).toBe(true);
      },
    );

    it.each(VECTORS.map((v, i) => [v.file.split('/').pop()!, v, i] as const))('%s: truncated and padded copies are refused as malformed', (_n, v, i) => {
      const bytes = vector(v.file);
      const step = i === 0 ? 1 : 29;
      for (let n = 0; n < bytes.length; n += step) expect(reasonOf(() => verifyNitroDocument(bytes.subarray(0, n), opts(v.at)))).toBe('malformed');
      for (const tail of [[0x00], [0xf6], [0xff], [...bytes.subarray(0, 8)]])
        expect(reasonOf(() => verifyNitroDocument(Buffer.concat([bytes, Buffer.from(tail)]), opts(v.at)))).toBe('malformed');
    });

    it('the chain of a parsed genuine document: a dropped or corrupted cabundle certificate, an intermediate of another chain', () => {
      const v = VECTORS[0]!;
      const d = parseNitroDocument(vector(v.file)).document;
      const at = new Date(v.at);
      expect(verifyNitroChain(d, DEFAULT_NITRO_ANCHORS, at)).toBe(AWS_NITRO_ROOT_G1_SHA256);
      // The last cabundle certificate dropped: the leaf's issuer is missing.
      expect(reasonOf(() => verifyNitroChain(withBundle(d, d.cabundle.slice(0, -1)), DEFAULT_NITRO_ANCHORS, at))).toBe('chain');
      // The root dropped: cabundle[0] is then not a pinned root.
      expect(reasonOf(() => verifyNitroChain(withBundle(d, d.cabundle.slice(1)), DEFAULT_NITRO_ANCHORS, at))).toBe('chain');
      // Order reversed (leaf's issuer first): refused.
      expect(reasonOf(() => verifyNitroChain(withBundle(d, [d.cabundle[0]!, ...d.cabundle.slice(1).reverse()]), DEFAULT_NITRO_ANCHORS, at))).toBe('chain');
      // Any cabundle certificate corrupted (one byte of its signature, or of its body).
      for (let i = 0; i < d.cabundle.length; i++) {
        for (const pos of [d.cabundle[i]!.length - 3, 200]) {
          const c = Buffer.from(d.cabundle[i]!);
          c[pos] = c[pos]! ^ 0x01;
          const bundle = d.cabundle.map((x, j) => (j === i ? c : x));
          const r = reasonOf(() => verifyNitroChain(withBundle(d, bundle), DEFAULT_NITRO_ANCHORS, at));
          expect(['chain', 'malformed']).toContain(r);
        }
      }
      // The zonal and instance intermediates of another genuine document (another enclave's chain).
      const other = parseNitroDocument(vector(VECTORS[1]!.file)).document;
      for (const i of [1, 2, 3]) {
        const bundle = d.cabundle.map((x, j) => (j === i ? other.cabundle[i]! : x));
        expect(reasonOf(() => verifyNitroChain(withBundle(d, bundle), DEFAULT_NITRO_ANCHORS, at))).toBe('chain');
      }
    });

    it('a forged document under a self-signed root with AWS’s name: refused with the pinned root, and the root inside it is never an anchor', () => {
      const at = new Date(VECTORS[0]!.at);
      const fake = nitroPki(at, { rootName: AWS_ROOT_NAME, label: 'forged' });
      const forged = nitroDocument({ pki: fake, timestamp: at.getTime(), nonce: Buffer.alloc(32, 7) });
      // The forgery is well-formed: a verifier that pinned its root would accept it.
      expect(verifyNitroDocument(forged, { anchors: [fake.root.der], at, allowDebug: false }).document.nonce).toEqual(Buffer.alloc(32, 7));
      expect(reasonOf(() => verifyNitroDocument(forged, opts(at.getTime())))).toBe('chain');
      // The genuine root in cabundle[0] with the forged chain below it: the signatures do not link.
      const spliced = nitroDocument({ pki: fake, timestamp: at.getTime(), cabundle: [DEFAULT_NITRO_ANCHORS[0]!, ...fake.intermediates.map((c) => c.der)] });
      expect(reasonOf(() => verifyNitroDocument(spliced, opts(at.getTime())))).toBe('chain');
      // A genuine document verified against the same-named impostor root is refused too.
      expect(reasonOf(() => verifyNitroDocument(vector(VECTORS[0]!.file), opts(at.getTime(), { anchors: [fake.root.der] })))).toBe('chain');
      // A root file holding an intermediate (not self-signed) is refused when loading trust.
      expect(() => anchorsIn(fake.intermediates[0]!.der, 'roots')).toThrow(/not self-signed/);
      const nonCa = nitroCert({ subject: AWS_ROOT_NAME, ca: false, notBefore: at, notAfter: at });
      expect(() => anchorsIn(nonCa.der, 'roots')).toThrow(/not a CA/);
    });
  });
});
