/** Targets: strict JSON (src/jose/strict-json.ts), compact JWS and JWKs (src/jose/jws.ts). */
import { isDeepStrictEqual } from 'node:util';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { JwsError } from '../../../src/errors.js';
import { parseStrictJson, StrictJsonError } from '../../../src/jose/strict-json.js';
import { decodeJws, keyFromJwk, publicJwk, publicKeyFromJwk, signJws } from '../../../src/jose/jws.js';
import { OracleError, type FuzzTarget } from '../engine/contract.js';
import { jsonMutator, jwsMutator } from '../engine/mutators.js';
import { AT_S, ecKey, rsaKey } from '../fixtures.js';
import { vectorFiles } from './common.js';
import { encodeEvidence2 } from '../../../src/tpm/evidence.js';

/** Refusals strict JSON adds to RFC 8259 on purpose; any other refusal of text JSON.parse accepts is a disagreement. */
const DELIBERATE = /^(duplicate member name|nesting too deep|lone surrogate|number out of range)/;

export const strictJsonTarget: FuzzTarget = {
  name: 'strict-json',
  parsers: 'src/jose/strict-json.ts: parseStrictJson',
  contract:
    'returns a value or throws StrictJsonError (which every caller wraps in its WritError); what it accepts JSON.parse accepts with an equal value, and it refuses valid JSON only for its documented reasons (duplicates, depth, lone surrogates, unsafe integers)',
  maxLen: 16 * 1024,
  sources: ['src/jose/strict-json.ts'],
  setup: () => ({
    seeds: [
      ...vectorFiles('spiffe/bundle', (n) => n.endsWith('.json')),
      Buffer.from('{"a":[1,-0.5e3,true,false,null,"\\u00e9\\ud83d\\ude00\\n"],"b":{"__proto__":1}}'),
      encodeEvidence2(Buffer.alloc(8)),
      Buffer.from(' [ "x" , { } , [ ] ] '),
    ],
    mutators: [jsonMutator],
    run(data) {
      const text = data.toString('utf8');
      let strict: unknown;
      let refused: StrictJsonError | undefined;
      try {
        strict = parseStrictJson(text);
      } catch (e) {
        if (!(e instanceof StrictJsonError)) throw e;
        refused = e;
      }
      let loose: unknown;
      let looseOk = true;
      try {
        loose = JSON.parse(text);
      } catch {
        looseOk = false;
      }
      if (!refused) {
        if (!looseOk) throw new OracleError('strict-json: accepted text that JSON.parse refuses');
        if (!isDeepStrictEqual(strict, loose)) throw new OracleError('strict-json: read a value other than JSON.parse reads');
        return undefined;
      }
      if (looseOk && !DELIBERATE.test(refused.message)) throw new OracleError(`strict-json: refused valid JSON: ${refused.message}`);
      throw new JwsError(`jws: ${refused.message}`);
    },
  }),
};

function jwsSeeds(): Buffer[] {
  const ec = ecKey('jws seed');
  const out = [
    signJws({ typ: 'writ+jwt', kid: 'k1' }, { iss: 'spiffe://example.org', iat: AT_S, n: [1, 2, { x: 'y' }] }, ec),
    signJws({ typ: 'writ-grant+jwt', jwk: publicJwk(createPublicKey(ec)) }, { a: 1 }, ec),
    signJws({ typ: 'writ-pop+jwt', alg: 'RS256' }, { b: 'c' }, rsaKey()),
    signJws({}, { sub: 'spiffe://example.org/x' }, ecKey('jws 384', 'P-384')),
  ];
  return [...out.map((s) => Buffer.from(s, 'latin1')), ...vectorFiles('spiffe/svid/jwtsvid')];
}

export const jwsTarget: FuzzTarget = {
  name: 'jws',
  parsers: 'src/jose/jws.ts: decodeJws (for each typ writ expects, and none)',
  contract: 'returns the decoded JWS or throws a WritError (ERR_JWS_INVALID)',
  maxLen: 16 * 1024,
  sources: ['src/jose/jws.ts', 'src/jose/strict-json.ts'],
  setup: () => ({
    seeds: jwsSeeds(),
    mutators: [jwsMutator, jwsMutator],
    run(data) {
      const s = data.toString('latin1');
      for (const typ of ['writ-grant+jwt', 'writ-pop+jwt', [undefined, 'JWT']] as const) {
        try {
          decodeJws(s, typ);
        } catch (e) {
          if (!(e instanceof JwsError)) throw e;
        }
      }
      decodeJws(s, 'writ+jwt');
      decodeJws(s, null, 8 * 1024);
      return undefined;
    },
  }),
};

export const jwkTarget: FuzzTarget = {
  name: 'jwk',
  parsers: 'src/jose/jws.ts: publicKeyFromJwk, keyFromJwk (a JWS jwk header, parsed by parseStrictJson)',
  contract: 'returns an acceptable public key (EC P-256/384/521, RSA 2048..8192, no private members) or throws a WritError (ERR_JWS_INVALID)',
  maxLen: 8192,
  sources: ['src/jose/jws.ts'],
  setup: () => {
    const jwks = [
      publicJwk(createPublicKey(ecKey('jwk 256'))),
      publicJwk(createPublicKey(ecKey('jwk 384', 'P-384'))),
      publicJwk(createPublicKey(generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).privateKey)),
      publicJwk(createPublicKey(rsaKey())),
      createPublicKey(generateKeyPairSync('ed25519').privateKey).export({ format: 'jwk' }),
      ecKey('jwk private').export({ format: 'jwk' }),
    ];
    return {
      seeds: jwks.map((j) => Buffer.from(JSON.stringify(j))),
      mutators: [jsonMutator, jsonMutator],
      run(data) {
        let v: unknown;
        try {
          v = parseStrictJson(data.toString('utf8'));
        } catch (e) {
          if (e instanceof StrictJsonError) return undefined;
          throw e;
        }
        try {
          publicKeyFromJwk(v);
        } catch (e) {
          if (!(e instanceof JwsError)) throw e;
        }
        keyFromJwk(v);
        return undefined;
      },
    };
  },
};
