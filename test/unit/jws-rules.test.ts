/**
 * writ's JOSE layer (src/jose/jws.ts, strict-json.ts, claims.ts) rule by rule: the algorithm
 * allow-list checked against an implementation we did not write (panva/jose signs and verifies
 * the same tokens), the size limit at its boundary, canonical base64url, strict JSON, untrusted
 * JWKs and thumbprints (`make mutate`, docs/testing.md).
 */
import { createHash, createPublicKey, createSecretKey, createSign, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { CompactSign, calculateJwkThumbprint, compactVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { claimReader } from '../../src/jose/claims.js';
import {
  JWS_ALGORITHMS,
  MAX_JWS_BYTES,
  algForKey,
  b64urlDecode,
  decodeJws,
  isJkt,
  jwkThumbprint,
  keyFits,
  keyFromJwk,
  keySigner,
  publicJwk,
  publicKeyFromJwk,
  sha256b64url,
  signJws,
  signJwsWith,
  verifyJws,
  type JwsAlg,
  type JwsSigner,
} from '../../src/jose/jws.js';
import { MAX_JSON_DEPTH, StrictJsonError, parseStrictJson } from '../../src/jose/strict-json.js';

function refusal(f: () => unknown): { code?: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}

const keys = {
  p256: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
  p384: generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey,
  p521: generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).privateKey,
  rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
};
const KEY_FOR: Record<JwsAlg, KeyObject> = {
  ES256: keys.p256,
  ES384: keys.p384,
  ES512: keys.p521,
  RS256: keys.rsa,
  RS384: keys.rsa,
  RS512: keys.rsa,
  PS256: keys.rsa,
  PS384: keys.rsa,
  PS512: keys.rsa,
};
const ALGS = Object.keys(KEY_FOR) as JwsAlg[];
const enc = new TextEncoder();

describe('JWS algorithms, checked against panva/jose', () => {
  it('allows exactly the nine algorithms', () => {
    expect([...JWS_ALGORITHMS.keys()].sort()).toEqual([...ALGS].sort());
  });

  it.each(ALGS)('%s: a token jose signs verifies here, and one signed here verifies in jose', async (alg) => {
    const key = KEY_FOR[alg];
    const theirs = await new CompactSign(enc.encode(JSON.stringify({ a: 1 }))).setProtectedHeader({ alg, typ: 't' }).sign(key);
    const d = decodeJws(theirs, 't');
    expect(d.alg).toBe(alg);
    expect(verifyJws(d, createPublicKey(key))).toBe(true);
    const mine = signJws({ alg, typ: 't' }, { b: 2 }, key);
    const { payload, protectedHeader } = await compactVerify(mine, createPublicKey(key));
    expect(protectedHeader).toEqual({ alg, typ: 't' });
    expect(JSON.parse(Buffer.from(payload).toString())).toEqual({ b: 2 });
  });

  it.each(ALGS)('%s: a signature made with the hash or padding of another algorithm does not verify', async (alg) => {
    const key = KEY_FOR[alg];
    // The same key, an algorithm that differs only in hash or padding: jose signs, we check under `alg`.
    const sibling = ALGS.filter((a) => a !== alg && KEY_FOR[a] === key && a !== 'ES512');
    for (const other of sibling) {
      const t = await new CompactSign(enc.encode('{}')).setProtectedHeader({ alg: other }).sign(key);
      const [, p, s] = t.split('.');
      const relabelled = `${Buffer.from(JSON.stringify({ alg })).toString('base64url')}.${p}.${s}`;
      expect(verifyJws(decodeJws(relabelled, [undefined]), createPublicKey(key)), `${other} as ${alg}`).toBe(false);
    }
  });

  it('picks ES256/ES384/ES512 by curve and PS256 for RSA, and no algorithm for other keys', () => {
    expect(algForKey(keys.p256)).toBe('ES256');
    expect(algForKey(keys.p384)).toBe('ES384');
    expect(algForKey(keys.p521)).toBe('ES512');
    expect(algForKey(keys.rsa)).toBe('PS256');
    const ed = generateKeyPairSync('ed25519').privateKey;
    expect(refusal(() => algForKey(ed))).toMatchObject({ code: 'ERR_JWS_INVALID', message: 'jws: no signing algorithm for a ed25519 key' });
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
    expect(refusal(() => algForKey(k1)).message).toBe('jws: no signing algorithm for a ec key');
    expect(refusal(() => algForKey(createSecretKey(Buffer.alloc(32)))).message).toBe('jws: no signing algorithm for a unknown key');
  });

  it('keySigner refuses a key that does not fit the algorithm asked for, or an algorithm not allowed', () => {
    expect(refusal(() => keySigner(keys.p256, 'ES384'))).toMatchObject({ code: 'ERR_JWS_INVALID', message: 'jws: the key does not fit ES384' });
    expect(refusal(() => keySigner(keys.rsa, 'ES256')).message).toBe('jws: the key does not fit ES256');
    expect(refusal(() => keySigner(keys.p256, 'HS256' as JwsAlg)).message).toBe('jws: the key does not fit HS256');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    expect(refusal(() => keySigner(small)).message).toBe('jws: the key does not fit PS256');
    const rs = keySigner(keys.rsa, 'RS384');
    expect(rs.alg).toBe('RS384');
    expect(rs.publicKey.export({ type: 'spki', format: 'der' })).toEqual(createPublicKey(keys.rsa).export({ type: 'spki', format: 'der' }));
  });

  it('keyFits: key type, curve, and at least 2048 RSA bits', () => {
    const spec = (a: JwsAlg) => JWS_ALGORITHMS.get(a)!;
    expect(keyFits(spec('ES256'), keys.p256)).toBe(true);
    expect(keyFits(spec('ES256'), keys.p384)).toBe(false);
    expect(keyFits(spec('ES384'), keys.p256)).toBe(false);
    expect(keyFits(spec('ES512'), keys.p521)).toBe(true);
    expect(keyFits(spec('ES256'), keys.rsa)).toBe(false);
    expect(keyFits(spec('PS256'), keys.p256)).toBe(false);
    expect(keyFits(spec('RS256'), keys.rsa)).toBe(true);
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    expect(keyFits(spec('RS256'), small)).toBe(false);
    expect(keyFits(spec('PS256'), small)).toBe(false);
  });

  it('signJws refuses an algorithm that is not allowed or does not fit the key, and fills alg from the key', () => {
    expect(refusal(() => signJws({ alg: 'HS256' }, {}, keys.p256))).toMatchObject({ code: 'ERR_JWS_INVALID', message: 'jws: signing key does not fit HS256' });
    expect(refusal(() => signJws({ alg: 'ES384' }, {}, keys.p256)).message).toBe('jws: signing key does not fit ES384');
    const t = signJws({ typ: 'x' }, { a: 1 }, keys.p384);
    expect(JSON.parse(Buffer.from(t.split('.')[0]!, 'base64url').toString())).toEqual({ typ: 'x', alg: 'ES384' });
    expect(JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString())).toEqual({ a: 1 });
  });

  it('signJwsWith checks the signer’s signature before returning it', async () => {
    const good = keySigner(keys.p256);
    expect(good.alg).toBe('ES256');
    const t = await signJwsWith({ typ: 'x' }, { a: 1 }, good);
    expect(verifyJws(decodeJws(t, 'x'), createPublicKey(keys.p256))).toBe(true);
    const liar: JwsSigner = { ...good, sign: async () => Buffer.alloc(64, 1) };
    await expect(signJwsWith({ typ: 'x' }, {}, liar)).rejects.toMatchObject({
      code: 'ERR_JWS_INVALID',
      message: 'jws: the signer produced a signature that does not verify',
    });
    const misfit: JwsSigner = { ...good, alg: 'ES384' };
    await expect(signJwsWith({}, {}, misfit)).rejects.toMatchObject({ message: 'jws: signing key does not fit ES384' });
    const rsa = await signJwsWith({}, {}, keySigner(keys.rsa));
    expect((await compactVerify(rsa, createPublicKey(keys.rsa))).protectedHeader.alg).toBe('PS256');
  });
});

describe('JWS decoding', () => {
  const t = signJws({ typ: 'x' }, { a: 1 }, keys.p256);
  const part = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
  const [h, p, s] = t.split('.') as [string, string, string];

  it('returns the exact signing input and parts', () => {
    const d = decodeJws(t, 'x');
    expect(d).toMatchObject({ header: { typ: 'x', alg: 'ES256' }, payload: { a: 1 }, alg: 'ES256', input: `${h}.${p}`, compact: t });
    expect(d.inputBytes).toEqual(Buffer.from(`${h}.${p}`));
    expect(d.signature).toEqual(Buffer.from(s, 'base64url'));
  });

  it(`refuses a JWS longer than the limit (default MAX_JWS_BYTES, ${MAX_JWS_BYTES}), accepts one at it`, () => {
    expect(decodeJws(t, 'x', t.length).compact).toBe(t);
    expect(refusal(() => decodeJws(t, 'x', t.length - 1))).toMatchObject({ code: 'ERR_JWS_INVALID', message: `jws: longer than ${t.length - 1} bytes` });
    const big = signJws({ typ: 'x' }, { pad: 'p'.repeat(MAX_JWS_BYTES) }, keys.p256);
    expect(refusal(() => decodeJws(big, 'x')).message).toBe(`jws: longer than ${MAX_JWS_BYTES} bytes`);
    expect(refusal(() => decodeJws(42 as unknown as string, 'x')).message).toBe(`jws: longer than ${MAX_JWS_BYTES} bytes`);
  });

  it('refuses anything but three parts', () => {
    for (const bad of [`${h}.${p}`, `${t}.${s}`, h]) {
      expect(refusal(() => decodeJws(bad, 'x')).message).toBe('jws: not a compact JWS (three dot-separated parts)');
    }
  });

  it('refuses non-canonical or padded base64url in any part', () => {
    // The last character of a part carries unused bits; setting them spells the same bytes differently.
    const flip = (x: string) => {
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(x.at(-1)!);
      return x.slice(0, -1) + alphabet[last ^ 1];
    };
    expect(Buffer.from(flip(s), 'base64url')).toEqual(Buffer.from(s, 'base64url'));
    expect(refusal(() => decodeJws(`${h}.${p}.${flip(s)}`, 'x')).message).toBe('jws: signature is not strict base64url');
    expect(refusal(() => decodeJws(`${h}.${p}.${s}=`, 'x')).message).toBe('jws: signature is not strict base64url');
    expect(refusal(() => decodeJws(`${h}.${p}.${s.replace(/-|_/, '+')}x`, 'x')).message).toBe('jws: signature is not strict base64url');
    expect(refusal(() => decodeJws(`${h}=.${p}.${s}`, 'x')).message).toBe('jws: header is not strict base64url JSON');
    expect(refusal(() => decodeJws(`${h}.${p}+.${s}`, 'x')).message).toBe('jws: payload is not strict base64url JSON');
  });

  it('keeps the reason of a decoding refusal as its cause', () => {
    const sig = refusal(() => decodeJws(`${h}.${p}.${s}=`, 'x')) as { cause?: Error };
    expect(sig.cause).toBeInstanceOf(Error);
    expect(sig.cause!.message).toBe('not base64url');
    const head = refusal(() => decodeJws(`${part('{"a":1,"a":2}')}.${p}.${s}`, null)) as { cause?: Error };
    expect(head.cause).toBeInstanceOf(StrictJsonError);
    const jwk = refusal(() => publicKeyFromJwk({ ...publicJwk(keys.p256), x: 'AA' })) as { cause?: Error };
    expect(jwk.cause!.message).toBe('bad coordinate length');
  });

  it('b64urlDecode: alphabet, no padding, canonical', () => {
    expect(b64urlDecode('AQID')).toEqual(Buffer.from([1, 2, 3]));
    expect(b64urlDecode('')).toEqual(Buffer.alloc(0));
    expect(b64urlDecode('-_8')).toEqual(Buffer.from('-_8', 'base64url'));
    expect(refusal(() => b64urlDecode('AQ+D')).message).toBe('not base64url');
    expect(refusal(() => b64urlDecode('AQ==')).message).toBe('not base64url');
    expect(refusal(() => b64urlDecode(' AQID')).message).toBe('not base64url');
    expect(refusal(() => b64urlDecode('AQID ')).message).toBe('not base64url');
    expect(refusal(() => b64urlDecode('AB')).message).toBe('non-canonical base64url');
  });

  it('refuses a header or payload that is not a JSON object, with the strict-JSON reason', () => {
    for (const [hd, pl, msg] of [
      [part([1]), p, 'jws: header is not a JSON object'],
      [h, part('null'), 'jws: payload is not a JSON object'],
      [h, part('"s"'), 'jws: payload is not a JSON object'],
      [part('{"alg":"ES256","alg":"none"}'), p, 'jws: header is not strict base64url JSON: duplicate member name "alg" at offset 20'],
    ] as const) {
      expect(refusal(() => decodeJws(`${hd}.${pl}.${s}`, null)).message).toBe(msg);
    }
  });

  it('refuses an algorithm that is not allowed, quoting it', () => {
    for (const [alg, shown] of [
      ['none', '"none"'],
      ['HS256', '"HS256"'],
      ['EdDSA', '"EdDSA"'],
      [7, '7'],
      [undefined, 'undefined'],
      ['ES256ES256ES256ES256ES256', '"ES256ES256ES256ES25'],
    ] as const) {
      expect(refusal(() => decodeJws(`${part({ alg })}.${p}.${s}`, null)).message).toBe(`jws: algorithm ${shown} is not allowed`);
    }
  });

  it('refuses crit and b64 header parameters', () => {
    expect(refusal(() => decodeJws(`${part({ alg: 'ES256', crit: [] })}.${p}.${s}`, null)).message).toBe('jws: crit header parameters are not supported');
    expect(refusal(() => decodeJws(`${part({ alg: 'ES256', b64: true })}.${p}.${s}`, null)).message).toBe('jws: unencoded payloads (b64) are not supported');
  });

  it('checks typ: one expected value, a list that may allow it absent, or none for the caller to check', () => {
    const untyped = signJws({}, {}, keys.p256);
    expect(refusal(() => decodeJws(untyped, 'x')).message).toBe('jws: typ must be "x"');
    expect(decodeJws(untyped, ['JWT', undefined]).header.typ).toBeUndefined();
    expect(refusal(() => decodeJws(t, ['JWT', undefined])).message).toBe('jws: typ must be "JWT" or absent');
    expect(decodeJws(t, null).header.typ).toBe('x');
    expect(decodeJws(t, ['y', 'x']).header.typ).toBe('x');
  });

  it('verifyJws refuses a signature by a key the algorithm does not allow, even one that is mathematically valid', async () => {
    const forged = (alg: string, key: KeyObject, hash: string, opts: Record<string, unknown> = {}) => {
      const input = `${part({ alg, typ: 'x' })}.${part({ a: 1 })}`;
      const sig = createSign(hash)
        .update(input)
        .sign({ key, ...opts });
      return decodeJws(`${input}.${sig.toString('base64url')}`, 'x');
    };
    // RS256 under a 1024-bit RSA key: the signature is valid for that key, and the key is too weak.
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const weak = forged('RS256', small, 'sha256');
    expect(verify('sha256', weak.inputBytes, createPublicKey(small), weak.signature)).toBe(true);
    expect(verifyJws(weak, createPublicKey(small))).toBe(false);
    // ES384 by a P-256 key (SHA-384 digest): valid P1363 ECDSA, but ES384 means P-384.
    const curve = forged('ES384', keys.p256, 'sha384', { dsaEncoding: 'ieee-p1363' });
    expect(verify('sha384', curve.inputBytes, { key: createPublicKey(keys.p256), dsaEncoding: 'ieee-p1363' }, curve.signature)).toBe(true);
    expect(verifyJws(curve, createPublicKey(keys.p256))).toBe(false);
  });

  it('verifyJws is false for a key that does not fit the algorithm, or another key', () => {
    const d = decodeJws(t, 'x');
    expect(verifyJws(d, createPublicKey(keys.p256))).toBe(true);
    expect(verifyJws(d, createPublicKey(keys.p384))).toBe(false);
    expect(verifyJws(d, createPublicKey(keys.rsa))).toBe(false);
    expect(verifyJws(d, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey)).toBe(false);
  });
});

describe('JWK thumbprints and untrusted JWKs', () => {
  it.each(Object.entries(keys))('%s: the RFC 7638 thumbprint agrees with panva/jose', async (_n, k) => {
    const pub = createPublicKey(k);
    expect(jwkThumbprint(pub)).toBe(await calculateJwkThumbprint(pub.export({ format: 'jwk' }) as never, 'sha256'));
  });

  it('has no thumbprint for other key types', () => {
    expect(refusal(() => jwkThumbprint(generateKeyPairSync('ed25519').publicKey))).toMatchObject({
      code: 'ERR_JWS_INVALID',
      message: 'jws: no thumbprint for a OKP key',
    });
  });

  it('isJkt: 43 canonical base64url characters and nothing else', () => {
    const jkt = jwkThumbprint(createPublicKey(keys.p256));
    expect(isJkt(jkt)).toBe(true);
    expect(isJkt(jkt.slice(1))).toBe(false);
    expect(isJkt(`${jkt}A`)).toBe(false);
    expect(isJkt(`+${jkt.slice(1)}`)).toBe(false);
    expect(isJkt(`${jkt.slice(0, -1)}=`)).toBe(false);
    expect(isJkt(` ${jkt.slice(1)}`)).toBe(false);
    // Same 32 bytes, unused low bits of the last character set: not canonical.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const other = jkt.slice(0, -1) + alphabet[alphabet.indexOf(jkt.at(-1)!) ^ 1];
    expect(Buffer.from(other, 'base64url')).toEqual(Buffer.from(jkt, 'base64url'));
    expect(isJkt(other)).toBe(false);
    expect(isJkt(Buffer.from(jkt))).toBe(false);
    // Every character class of the alphabet, in a canonical spelling (the last character's unused bits zero).
    for (const chars of ['-', '_', 'z', 'Z', '9', '-_azAZ09']) {
      const candidate = `${chars}${'A'.repeat(43 - chars.length)}`;
      expect(isJkt(candidate), candidate).toBe(true);
    }
    expect(isJkt(`${'A'.repeat(42)}B`)).toBe(false);
  });

  it('sha256b64url is SHA-256 of the UTF-8 bytes, base64url (FIPS 180-2 "abc")', () => {
    expect(sha256b64url('abc')).toBe(Buffer.from('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'hex').toString('base64url'));
    expect(sha256b64url('é')).toBe(createHash('sha256').update(Buffer.from('é', 'utf8')).digest('base64url'));
  });

  it('publicJwk keeps only the RFC 7638 members', () => {
    const ec = createPublicKey(keys.p256).export({ format: 'jwk' });
    expect(publicJwk(keys.p256)).toEqual({ kty: 'EC', crv: 'P-256', x: ec.x, y: ec.y });
    const rsa = createPublicKey(keys.rsa).export({ format: 'jwk' });
    expect(publicJwk(keys.rsa)).toEqual({ kty: 'RSA', n: rsa.n, e: rsa.e });
  });

  it.each([
    ['P-256', keys.p256, 32],
    ['P-384', keys.p384, 48],
    ['P-521', keys.p521, 66],
  ] as const)('accepts a %s public JWK and refuses its coordinates at the wrong length', (_c, k, len) => {
    const jwk = publicJwk(k);
    const key = publicKeyFromJwk(jwk);
    expect(key.export({ type: 'spki', format: 'der' })).toEqual(createPublicKey(k).export({ type: 'spki', format: 'der' }));
    const short = Buffer.from(jwk.x!, 'base64url').subarray(1).toString('base64url');
    expect(Buffer.from(short, 'base64url')).toHaveLength(len - 1);
    expect(refusal(() => publicKeyFromJwk({ ...jwk, x: short })).message).toBe('jws: jwk is not an acceptable public key: bad coordinate length');
    const longY = Buffer.concat([Buffer.alloc(1), Buffer.from(jwk.y!, 'base64url')]).toString('base64url');
    expect(refusal(() => publicKeyFromJwk({ ...jwk, y: longY })).message).toBe('jws: jwk is not an acceptable public key: bad coordinate length');
  });

  it('refuses JWKs that are not objects, carry private members, or have bad EC members', () => {
    for (const v of [null, 'k', ['EC'], 3])
      expect(refusal(() => publicKeyFromJwk(v))).toMatchObject({ code: 'ERR_JWS_INVALID', message: 'jws: jwk is not an object' });
    const jwk = publicJwk(keys.p256);
    for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth']) {
      expect(refusal(() => publicKeyFromJwk({ ...jwk, [m]: 'AA' })).message, m).toBe('jws: jwk carries private key material');
    }
    for (const bad of [{ crv: 'P-192' }, { crv: undefined }, { x: 5 }, { y: undefined }]) {
      expect(refusal(() => publicKeyFromJwk({ ...jwk, ...bad })).message, JSON.stringify(bad)).toBe('jws: jwk is not an acceptable public key: bad EC members');
    }
    expect(refusal(() => publicKeyFromJwk({ ...jwk, x: `${jwk.x}=` })).message).toBe('jws: jwk is not an acceptable public key: not base64url');
    expect(refusal(() => publicKeyFromJwk({ kty: 'oct' })).message).toBe('jws: jwk kty must be EC or RSA');
    expect(refusal(() => publicKeyFromJwk({ kty: 'OKP', crv: 'Ed25519', x: 'AA' })).message).toBe('jws: jwk kty must be EC or RSA');
  });

  it('accepts RSA keys of 2048..8192 bits only, with string members in strict base64url', () => {
    const jwk = publicJwk(keys.rsa);
    expect(publicKeyFromJwk(jwk).asymmetricKeyDetails?.modulusLength).toBe(2048);
    const modulus = (bits: number) => {
      const n = Buffer.alloc(bits / 8 + (bits % 8 ? 1 : 0));
      n[0] = bits % 8 ? 1 << ((bits % 8) - 1) : 0x80;
      n[n.length - 1] = 1;
      return n.toString('base64url');
    };
    expect(publicKeyFromJwk({ kty: 'RSA', n: modulus(8192), e: 'AQAB' }).asymmetricKeyDetails?.modulusLength).toBe(8192);
    expect(refusal(() => publicKeyFromJwk({ kty: 'RSA', n: modulus(8193), e: 'AQAB' })).message).toBe(
      'jws: jwk is not an acceptable public key: RSA modulus of 8193 bits',
    );
    expect(refusal(() => publicKeyFromJwk({ kty: 'RSA', n: modulus(2040), e: 'AQAB' })).message).toBe(
      'jws: jwk is not an acceptable public key: RSA modulus of 2040 bits',
    );
    expect(publicKeyFromJwk({ kty: 'RSA', n: modulus(2048), e: 'AQAB' }).asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(refusal(() => publicKeyFromJwk({ kty: 'RSA', n: 5, e: 'AQAB' })).message).toBe('jws: jwk is not an acceptable public key: bad RSA members');
    expect(refusal(() => publicKeyFromJwk({ kty: 'RSA', n: jwk.n })).message).toBe('jws: jwk is not an acceptable public key: bad RSA members');
    expect(refusal(() => publicKeyFromJwk({ kty: 'RSA', n: `${jwk.n}=`, e: 'AQAB' })).message).toBe('jws: jwk is not an acceptable public key: not base64url');
    expect(refusal(() => publicKeyFromJwk({ kty: 'RSA', n: jwk.n, e: 'AQAB=' })).message).toBe('jws: jwk is not an acceptable public key: not base64url');
  });

  it('keyFromJwk finds a cached key only by all its members: the other point with the same x, the same modulus with another exponent', () => {
    const jwk = publicJwk(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey);
    const first = keyFromJwk(jwk);
    // (x, p - y) is the negated point: on the curve, another key.
    const p = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
    const y = BigInt(`0x${Buffer.from(jwk.y!, 'base64url').toString('hex')}`);
    const negY = Buffer.from((p - y).toString(16).padStart(64, '0'), 'hex').toString('base64url');
    const negated = keyFromJwk({ ...jwk, y: negY });
    expect(negated.jkt).not.toBe(first.jkt);
    expect(negated.jkt).toBe(jwkThumbprint(publicKeyFromJwk({ ...jwk, y: negY })));
    expect(negated.key.export({ format: 'jwk' }).y).toBe(negY);
    const rsa = publicJwk(keys.rsa);
    const e65537 = keyFromJwk(rsa);
    const e3 = keyFromJwk({ ...rsa, e: 'Aw' });
    expect(e3.jkt).not.toBe(e65537.jkt);
    expect(e3.key.export({ format: 'jwk' }).e).toBe('Aw');
    expect(keyFromJwk(jwk)).toBe(first);
    const other = publicJwk(keys.p256);
    expect(keyFromJwk(other).jkt).toBe(jwkThumbprint(createPublicKey(keys.p256)));
  });

  it('keyFromJwk refuses private members even for a key it has seen (and cached) before', () => {
    const jwk = publicJwk(keys.p384);
    const first = keyFromJwk(jwk);
    expect(first.jkt).toBe(jwkThumbprint(createPublicKey(keys.p384)));
    expect(keyFromJwk({ ...jwk }).jkt).toBe(first.jkt);
    const priv = keys.p384.export({ format: 'jwk' });
    expect(refusal(() => keyFromJwk(priv)).message).toBe('jws: jwk carries private key material');
    expect(refusal(() => keyFromJwk(null)).message).toBe('jws: jwk is not an object');
    expect(refusal(() => keyFromJwk('jwk')).message).toBe('jws: jwk is not an object');
  });
});

describe('strict JSON', () => {
  const bad = (text: string, depth?: number) => {
    const e = refusal(() => parseStrictJson(text, depth));
    expect(e).toBeInstanceOf(StrictJsonError);
    return e.message;
  };

  it('parses every kind of value', () => {
    expect(parseStrictJson(' \t\r\n{ "a" : [ 1 , -2.5e3 , 0 , -0 , 1E+2 , 1e-2 , true , false , null , "s" ] , "b" : { } , "c" : [ ] } \n')).toEqual({
      a: [1, -2500, 0, -0, 100, 0.01, true, false, null, 's'],
      b: {},
      c: [],
    });
    expect(parseStrictJson('"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\ud83d\\ude00"')).toBe('"\\/\b\f\n\r\tAé😀');
    expect(parseStrictJson('9007199254740991')).toBe(9007199254740991);
    expect(parseStrictJson('-9007199254740991')).toBe(-9007199254740991);
    expect(parseStrictJson('"plain"')).toBe('plain');
    expect(parseStrictJson('"a\\nb"')).toBe('a\nb');
    expect(parseStrictJson('"\\u00E9\\u00e9\\u0009"')).toBe('éé\t');
    expect(parseStrictJson('1e5')).toBe(100000);
    expect(parseStrictJson('{"a":[{"b":"c"}]}')).toEqual({ a: [{ b: 'c' }] });
  });

  it('quotes at most 40 characters of a duplicate member name', () => {
    const k = 'k'.repeat(50);
    expect(bad(`{"${k}":1,"${k}":2}`)).toBe(`duplicate member name "${'k'.repeat(40)}" at offset 108`);
  });

  it.each([
    ['{"a":1,"a":2}', 'duplicate member name "a" at offset 10'],
    ['{"a":1} x', 'trailing characters at offset 8'],
    ['', 'unexpected token at offset 0'],
    ['\f1', 'unexpected token at offset 0'],
    ['\u00a01', 'unexpected token at offset 0'],
    ['01', 'trailing characters at offset 1'],
    ['1.', 'trailing characters at offset 1'],
    ['.5', 'unexpected token at offset 0'],
    ['-', 'unexpected token at offset 0'],
    ['+1', 'unexpected token at offset 0'],
    ['9007199254740992', 'number out of range at offset 16'],
    ['1e400', 'number out of range at offset 5'],
    ['tru', 'unexpected token at offset 0'],
    ['nul', 'unexpected token at offset 0'],
    ['"abc', 'unterminated string at offset 4'],
    ['"a\nb"', 'control character in string at offset 2'],
    ['"\\x"', 'bad escape at offset 1'],
    ['"\\', 'bad escape at offset 1'],
    ['"\\u12G4"', 'bad \\u escape at offset 1'],
    ['"\\u12"', 'bad \\u escape at offset 1'],
    ['"\\ud800"', 'lone surrogate in string at offset 8'],
    ['"\\udc00"', 'lone surrogate in string at offset 8'],
    ['"\\ud800x"', 'lone surrogate in string at offset 9'],
    ['{"a" 1}', 'expected ":" at offset 5'],
    ['{a:1}', 'expected member name at offset 1'],
    ['{"a":1,}', 'expected member name at offset 7'],
    ['{"a":1 "b":2}', 'expected "," or "}" at offset 7'],
    ['{"a":1', 'expected "," or "}" at offset 6'],
    ['[1 2]', 'expected "," or "]" at offset 3'],
    ['[1,]', 'unexpected token at offset 3'],
    ['[1', 'expected "," or "]" at offset 2'],
  ])('refuses %j: %s', (text, message) => {
    expect(bad(text)).toBe(message);
  });

  it(`parses nesting up to MAX_JSON_DEPTH (${MAX_JSON_DEPTH}) and refuses one level more, for arrays and objects alike`, () => {
    const arrays = (n: number) => `${'['.repeat(n)}1${']'.repeat(n)}`;
    const objects = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
    expect(() => parseStrictJson(arrays(MAX_JSON_DEPTH))).not.toThrow();
    expect(() => parseStrictJson(objects(MAX_JSON_DEPTH))).not.toThrow();
    expect(bad(arrays(MAX_JSON_DEPTH + 1))).toBe(`nesting too deep at offset ${MAX_JSON_DEPTH}`);
    expect(bad(objects(MAX_JSON_DEPTH + 1))).toBe(`nesting too deep at offset ${MAX_JSON_DEPTH * 5}`);
    expect(bad(arrays(3), 2)).toBe('nesting too deep at offset 2');
    expect(() => parseStrictJson(arrays(2), 2)).not.toThrow();
  });

  it('keeps "__proto__" an own data member', () => {
    const v = parseStrictJson('{"__proto__":{"x":1},"y":2}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(v, '__proto__')).toEqual({ value: { x: 1 }, enumerable: true, writable: true, configurable: true });
    expect(() => parseStrictJson('{"__proto__":1,"__proto__":2}')).toThrow(/duplicate member name "__proto__"/);
  });
});

describe('claim readers', () => {
  const r = claimReader((msg) => {
    throw new Error(msg);
  });
  const err = (f: () => unknown) => refusal(f).message;

  it('object: an object with no other members', () => {
    expect(r.object({ a: 1 }, 'x', ['a', 'b'])).toEqual({ a: 1 });
    for (const v of [null, [], 'o', 1]) expect(err(() => r.object(v, 'x', []))).toBe('x must be an object');
    expect(err(() => r.object({ a: 1, c: 2, d: 3 }, 'x', ['a']))).toBe('x has unknown members c, d');
    expect(err(() => r.object({ [`${'k'.repeat(100)}`]: 1 }, 'x', []))).toBe(`x has unknown members ${'k'.repeat(80)}`);
  });

  it('string: non-empty, at most maxBytes UTF-8 bytes (2048 by default), matching the pattern', () => {
    expect(r.string('s', 'x')).toBe('s');
    expect(r.string('s'.repeat(2048), 'x')).toHaveLength(2048);
    expect(err(() => r.string('s'.repeat(2049), 'x'))).toBe('x must be a non-empty string of at most 2048 bytes');
    expect(r.string('éé', 'x', 4)).toBe('éé');
    expect(err(() => r.string('ééé', 'x', 5))).toBe('x must be a non-empty string of at most 5 bytes');
    for (const v of ['', 1, null, undefined]) expect(err(() => r.string(v, 'x', 8))).toBe('x must be a non-empty string of at most 8 bytes');
    expect(r.string('ab', 'x', 8, /^[a-z]+$/)).toBe('ab');
    expect(err(() => r.string('aB', 'x', 8, /^[a-z]+$/))).toBe('x is malformed');
  });

  it('int: a non-negative safe integer', () => {
    expect(r.int(0, 'x')).toBe(0);
    expect(r.int(2 ** 53 - 1, 'x')).toBe(2 ** 53 - 1);
    for (const v of [-1, 1.5, '1', 2 ** 53, Number.NaN, null]) expect(err(() => r.int(v, 'x'))).toBe('x must be a non-negative integer');
  });

  it('strings: an array of at most max non-empty strings', () => {
    expect(r.strings(['a', 'b'], 'x', 2)).toEqual(['a', 'b']);
    expect(r.strings([], 'x', 0)).toEqual([]);
    for (const v of [['a', 'b', 'c'], ['a', ''], ['a', 1], ['a', ['b']], [{ length: 1 }], 'a', null])
      expect(err(() => r.strings(v, 'x', 2))).toBe('x must be an array of at most 2 non-empty strings');
  });
});
