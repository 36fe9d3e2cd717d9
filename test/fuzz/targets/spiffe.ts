/** Targets: SPIFFE IDs (src/spiffe/id.ts) and trust bundles (src/spiffe/bundle.ts), X.509-SVIDs and JWT-SVIDs (src/svid/). */
import { createPublicKey } from 'node:crypto';
import {
  BundleSet,
  marshalSpiffeBundle,
  parseJwtBundle,
  parseKeyedJwks,
  parseSpiffeBundle,
  parseX509BundlePem,
  type Bundle,
} from '../../../src/spiffe/bundle.js';
import { parseSpiffeId, parseTrustDomain, validatePath } from '../../../src/spiffe/id.js';
import { encodePem } from '../../../src/der/pem.js';
import { splitDerChain } from '../../../src/x509/certificate.js';
import { parseX509Svid, verifyX509Svid } from '../../../src/svid/x509-svid.js';
import { keySigner } from '../../../src/jose/jws.js';
import { mintJwtSvid, validateJwtSvid, type JwtAlg } from '../../../src/svid/jwt-svid.js';
import { OracleError, type FuzzTarget } from '../engine/contract.js';
import { derMutator, embeddedBase64Mutator, jsonMutator, jwsMutator, pemMutator } from '../engine/mutators.js';
import { HAVE_VECTORS, vectorPath } from '../engine/paths.js';
import { AT, b64, chain, ecKey, rsaKey, stable, unb64 } from '../fixtures.js';
import { soft, vectorFiles } from './common.js';
import { readFileSync } from 'node:fs';

function spiffeIdVectors(): Buffer[] {
  if (!HAVE_VECTORS) return [];
  const doc = JSON.parse(readFileSync(vectorPath('spiffe/spiffeid/spiffeid_vectors.json'), 'utf8')) as { vectors: Array<{ input: string }> };
  return doc.vectors.map((v) => Buffer.from(v.input, 'utf8'));
}

export const spiffeIdTarget: FuzzTarget = {
  name: 'spiffe-id',
  parsers: 'src/spiffe/id.ts: parseSpiffeId, parseTrustDomain, validatePath',
  contract: 'returns the ID or throws a WritError (ERR_SPIFFE_ID_INVALID); an accepted ID is its own canonical form (uri = input = spiffe://td + path)',
  maxLen: 4096,
  sources: ['src/spiffe/id.ts'],
  setup: () => ({
    seeds: [...spiffeIdVectors(), Buffer.from('spiffe://example.org/workload/a-b_c.d'), Buffer.from('spiffe://td')],
    dictionary: ['spiffe://', '/', '.', '..', '%', '@', ':', '?', '#', 'A'].map((s) => Buffer.from(s)),
    run(data) {
      const s = data.toString('utf8');
      soft(() => parseTrustDomain(s));
      soft(() => validatePath(s));
      const id = parseSpiffeId(s);
      if (id.uri !== s || `spiffe://${id.trustDomain}${id.path}` !== s) throw new OracleError('spiffeid: accepted ID is not its canonical form');
      return undefined;
    },
  }),
};

export const bundleJwksTarget: FuzzTarget = {
  name: 'bundle-jwks',
  parsers: 'src/spiffe/bundle.ts: parseSpiffeBundle, parseJwtBundle, parseKeyedJwks',
  contract: 'returns the bundle or throws a WritError (ERR_BUNDLE_INVALID)',
  maxLen: 64 * 1024,
  sources: ['src/spiffe/bundle.ts'],
  setup: () => {
    const c = chain('example.org');
    const ours: Bundle = {
      trustDomain: 'example.org',
      x509Authorities: [c.root.der],
      jwtAuthorities: new Map([
        ['jwt-1', createPublicKey(ecKey('bundle jwt'))],
        ['jwt-rsa', createPublicKey(rsaKey())],
      ]),
      writAuthorities: new Map([['writ-1', createPublicKey(ecKey('bundle writ'))]]),
      sequence: 7,
      refreshHint: 300,
    };
    return {
      seeds: [
        ...vectorFiles('spiffe/bundle', (n) => n.endsWith('.json')),
        ...vectorFiles('spiffe/exp', (n) => n.endsWith('.json')),
        Buffer.from(marshalSpiffeBundle(ours)),
      ],
      mutators: [jsonMutator, jsonMutator, embeddedBase64Mutator],
      run(data) {
        soft(() => parseJwtBundle('example.org', data));
        soft(() => parseKeyedJwks('witbundle', data));
        parseSpiffeBundle('example.org', data);
        return undefined;
      },
    };
  },
};

export const bundlePemTarget: FuzzTarget = {
  name: 'bundle-pem',
  parsers: 'src/spiffe/bundle.ts: parseX509BundlePem',
  contract: 'returns the X.509 authorities or throws a WritError (ERR_BUNDLE_INVALID)',
  maxLen: 32 * 1024,
  sources: ['src/spiffe/bundle.ts', 'src/der/pem.ts'],
  setup: () => {
    const c = chain('example.org');
    return {
      seeds: [...vectorFiles('spiffe/bundle/x509bundle'), Buffer.from(encodePem('CERTIFICATE', c.root.der) + encodePem('CERTIFICATE', c.intermediate.der))],
      mutators: [pemMutator, pemMutator],
      run(data) {
        parseX509BundlePem('example.org', data);
        return undefined;
      },
    };
  },
};

export const x509SvidParseTarget: FuzzTarget = {
  name: 'x509-svid-parse',
  parsers: 'src/svid/x509-svid.ts: parseX509Svid (certificates PEM, then a NUL byte, then the key PEM; without a NUL the same text is both)',
  contract: 'returns the SVID or throws a WritError (ERR_X509_SVID_INVALID)',
  maxLen: 32 * 1024,
  sources: ['src/svid/x509-svid.ts', 'src/x509/path.ts'],
  setup: () => {
    const leafKey = ecKey('svid parse leaf');
    const c = chain('example.org', 'P-256', leafKey);
    const ours = Buffer.from(
      `${encodePem('CERTIFICATE', c.leaf.der)}${encodePem('CERTIFICATE', c.intermediate.der)}\0${encodePem('PRIVATE KEY', leafKey.export({ type: 'pkcs8', format: 'der' }))}`,
    );
    const v = (n: string) => vectorFiles('spiffe/svid/x509svid', (f) => f === n)[0];
    const rsaKeyPem = v('key-pkcs8-rsa.pem');
    const ecKeyPem = v('key-pkcs8-ecdsa.pem');
    const vectorPairs: Buffer[] = [];
    for (const certs of vectorFiles('spiffe/svid/x509svid', (n) => n.endsWith('.pem') && !n.startsWith('key-'))) {
      if (rsaKeyPem) vectorPairs.push(Buffer.concat([certs, Buffer.from([0]), rsaKeyPem]));
      if (ecKeyPem) vectorPairs.push(Buffer.concat([certs, Buffer.from([0]), ecKeyPem]));
      vectorPairs.push(certs);
    }
    return {
      seeds: [ours, ...vectorPairs],
      mutators: [pemMutator, pemMutator],
      run(data) {
        const nul = data.indexOf(0);
        const certs = nul < 0 ? data : data.subarray(0, nul);
        const key = nul < 0 ? data : data.subarray(nul + 1);
        parseX509Svid(certs, key);
        return undefined;
      },
    };
  },
};

export const x509SvidVerifyTarget: FuzzTarget = {
  name: 'x509-svid-verify',
  signed: true,
  parsers: 'src/svid/x509-svid.ts: verifyX509Svid (a chain of concatenated DER certificates, leaf first) against fixed bundles at a fixed instant',
  contract: 'accepts only chains made of the valid certificates, byte for byte; else throws a WritError (ERR_X509_SVID_INVALID, ERR_DER_MALFORMED)',
  maxLen: 16 * 1024,
  sources: ['src/svid/x509-svid.ts', 'src/x509/path.ts', 'src/x509/certificate.ts'],
  setup: () => {
    const [aRoot, aInter, aLeaf, bRoot, bInter, bLeaf] = stable(
      'x509-svid-verify: root, intermediate, leaf of example.org (P-256) and other.test (P-384)',
      () => [chain('example.org'), chain('other.test', 'P-384')].flatMap((c) => [c.root.der, c.intermediate.der, c.leaf.der].map(b64)),
    ).map(unb64) as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
    const bundles = new BundleSet([
      { trustDomain: 'example.org', x509Authorities: [aRoot], jwtAuthorities: new Map() },
      { trustDomain: 'other.test', x509Authorities: [bRoot], jwtAuthorities: new Map() },
    ]);
    const validCerts = new Set([aRoot, aInter, aLeaf, bRoot, bInter, bLeaf].map((d) => d.toString('hex')));
    const valid = [Buffer.concat([aLeaf, aInter]), Buffer.concat([aLeaf, aInter, aRoot]), Buffer.concat([bLeaf, bInter])];
    const vectorChains = vectorFiles('spiffe/svid/x509svid', (n) => n.startsWith('good-') || n.startsWith('wrong-')).map((p) =>
      Buffer.concat(
        [...p.toString('latin1').matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END/g)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')),
      ),
    );
    return {
      seeds: [...valid, ...vectorChains.filter((c) => c.length > 0)],
      mutators: [derMutator, derMutator, derMutator],
      isValid: (data) => {
        try {
          return splitDerChain(data).every((d) => validCerts.has(d.toString('hex')));
        } catch {
          return false;
        }
      },
      run(data) {
        verifyX509Svid(splitDerChain(data), bundles, AT);
        return 'accepted';
      },
    };
  },
};

export const jwtSvidTarget: FuzzTarget = {
  name: 'jwt-svid',
  signed: true,
  parsers: 'src/svid/jwt-svid.ts: validateJwtSvid (via decodeJws) against fixed bundles, audience and instant',
  contract: 'accepts only the valid tokens, byte for byte; else throws a WritError (ERR_JWT_SVID_INVALID)',
  maxLen: 16 * 1024,
  sources: ['src/svid/jwt-svid.ts', 'src/jose/jws.ts', 'src/spiffe/id.ts'],
  setup: async () => {
    const keys: Array<{ kid: string; alg: JwtAlg; key: ReturnType<typeof ecKey> }> = [
      { kid: 'es256', alg: 'ES256', key: ecKey('jwt es256') },
      { kid: 'es384', alg: 'ES384', key: ecKey('jwt es384', 'P-384') },
      { kid: 'rs256', alg: 'RS256', key: rsaKey() },
      { kid: 'ps384', alg: 'PS384', key: rsaKey() },
    ];
    const bundles = new BundleSet([
      { trustDomain: 'example.org', x509Authorities: [], jwtAuthorities: new Map(keys.map((k) => [k.kid, createPublicKey(k.key)])) },
    ]);
    const id = parseSpiffeId('spiffe://example.org/workload/fuzz');
    const minted = await Promise.all(
      keys.map((k) =>
        mintJwtSvid(
          { kid: k.kid, signer: keySigner(k.key, k.alg) },
          {
            spiffeId: id,
            audience: ['https://rp.example', 'spiffe://example.org/rp'],
            issuedAt: new Date(AT.getTime() - 60_000),
            expiresAt: new Date(AT.getTime() + 300_000),
          },
        ),
      ),
    );
    const tokens = stable('jwt-svid: tokens by es256, es384, rs256, ps384', () => minted.map((m) => m.token));
    const valid = new Set(tokens);
    return {
      seeds: [...tokens.map((t) => Buffer.from(t, 'latin1')), ...vectorFiles('spiffe/svid/jwtsvid')],
      mutators: [jwsMutator, jwsMutator, jwsMutator],
      isValid: (data) => valid.has(data.toString('latin1')),
      run(data) {
        validateJwtSvid(data.toString('latin1'), bundles, ['https://rp.example'], AT);
        return 'accepted';
      },
    };
  },
};
