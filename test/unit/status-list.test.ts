/** Token Status Lists: the draft's vectors, mutated twins, bounds, and the status list token. */
import { generateKeyPairSync } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { keySigner, signJws } from '../../src/jose/jws.js';
import { MAX_STATUS_LIST_BYTES, StatusList, signStatusListToken, verifyStatusListToken } from '../../src/revocation/status-list.js';
import { expectWritErrorSync } from './status-list-helpers.js';

describe('status list (draft-ietf-oauth-status-list §4)', () => {
  // §4.1 examples: bits 1, bytes [0xb9, 0xa3]; bits 2, bytes [0xc9, 0x44, 0xf9].
  it('decodes the draft 1-bit example, index 0 in the low bit of the first byte', () => {
    const l = StatusList.decode({ bits: 1, lst: 'eNrbuRgAAhcBXQ' });
    expect(l.size).toBe(16);
    expect(Array.from({ length: 16 }, (_, i) => l.status(i))).toEqual([1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]);
  });
  it('decodes the draft 2-bit example', () => {
    const l = StatusList.decode({ bits: 2, lst: 'eNo76fITAAPfAgc' });
    expect(Array.from({ length: 12 }, (_, i) => l.status(i))).toEqual([1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]);
  });
  it('encodes what it decodes, and sets single entries without touching neighbours', () => {
    const l = StatusList.empty(16);
    for (const i of [0, 3, 4, 5, 7, 8, 9, 13, 15]) l.set(i, 1);
    expect(l.raw()).toEqual(Buffer.from([0xb9, 0xa3]));
    expect(StatusList.decode(l.encode()).raw()).toEqual(Buffer.from([0xb9, 0xa3]));
    l.set(3, 0);
    expect([l.status(2), l.status(3), l.status(4)]).toEqual([0, 0, 1]);
  });
  it('mutated twins of the vectors are refused or decode differently, never crash', () => {
    for (const lst of ['eNrbuRgAAhcBXR', 'eNrbuRgAAhcBX', 'eNrbuRgAAhcBXQ=', '+NrbuRgAAhcBXQ', '']) {
      let out: string;
      try {
        const l = StatusList.decode({ bits: 1, lst });
        out = l.raw().toString('hex');
      } catch (e) {
        out = (e as { code?: string }).code ?? 'other';
      }
      expect(out, lst).not.toBe('b9a3');
      expect(['ERR_STATUS_LIST_INVALID'].includes(out) || /^[0-9a-f]+$/.test(out), lst).toBe(true);
    }
    expectWritErrorSync(() => StatusList.decode({ bits: 3, lst: 'eNrbuRgAAhcBXQ' }), 'ERR_STATUS_LIST_INVALID', /bits must be 1, 2, 4 or 8/);
    expectWritErrorSync(() => StatusList.decode({ bits: 1, lst: 'eNrbuRgAAhcBXQ', extra: 1 }), 'ERR_STATUS_LIST_INVALID', /unknown members extra/);
  });
  it('an index outside the list is an error, never VALID', () => {
    const l = StatusList.decode({ bits: 1, lst: 'eNrbuRgAAhcBXQ' });
    for (const i of [16, -1, 1.5, Number.MAX_SAFE_INTEGER + 1]) expectWritErrorSync(() => l.status(i), 'ERR_STATUS_LIST_INVALID', /outside the list/);
  });
  it('a decompression bomb stops at the bound', () => {
    const bomb = deflateSync(Buffer.alloc(MAX_STATUS_LIST_BYTES + 1)).toString('base64url');
    expect(bomb.length).toBeLessThan(4096);
    expectWritErrorSync(() => StatusList.decode({ bits: 1, lst: bomb }), 'ERR_STATUS_LIST_INVALID', /at most/);
  });
});

describe('status list token (§5.1, §8.3)', () => {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const keys = new Map([['w1', keySigner(key).publicKey]]);
  const uri = 'https://issuer.example/status/1';
  const now = new Date('2026-12-01T00:00:00Z');
  const iat = Math.floor(now.getTime() / 1000);
  const list = StatusList.empty(64);
  list.set(5, 1);
  const token = () => signStatusListToken({ sub: uri, iat, exp: iat + 600, ttl: 60, list }, keySigner(key), 'w1');

  it('verifies with the writ key and answers statuses', async () => {
    const v = verifyStatusListToken(await token(), { keys, uri, now });
    expect([v.list.status(5), v.list.status(6), v.ttl, v.exp]).toEqual([1, 0, 60, iat + 600]);
  });
  it('refuses another sub, another key, an expired or future token, a tampered list, and the wrong typ', async () => {
    const t = await token();
    expectWritErrorSync(() => verifyStatusListToken(t, { keys, uri: 'https://issuer.example/status/2', now }), 'ERR_STATUS_LIST_INVALID', /made for/);
    expectWritErrorSync(
      () => verifyStatusListToken(t, { keys: new Map([['w1', generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey]]), uri, now }),
      'ERR_STATUS_LIST_INVALID',
      /signature does not verify/,
    );
    expectWritErrorSync(() => verifyStatusListToken(t, { keys: new Map(), uri, now }), 'ERR_STATUS_LIST_INVALID', /kid unknown/);
    expectWritErrorSync(() => verifyStatusListToken(t, { keys, uri, now: new Date(now.getTime() + 3600_000) }), 'ERR_STATUS_LIST_INVALID', /expired/);
    expectWritErrorSync(() => verifyStatusListToken(t, { keys, uri, now: new Date(now.getTime() - 3600_000) }), 'ERR_STATUS_LIST_INVALID', /in the future/);
    const [h, p, s] = t.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
    payload.status_list = StatusList.empty(64).encode(); // the revocation erased
    expectWritErrorSync(
      () => verifyStatusListToken(`${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`, { keys, uri, now }),
      'ERR_STATUS_LIST_INVALID',
      /signature does not verify/,
    );
    const wrongTyp = signJws({ typ: 'JWT', kid: 'w1' }, { sub: uri, iat, status_list: list.encode() }, key);
    expectWritErrorSync(() => verifyStatusListToken(wrongTyp, { keys, uri, now }), 'ERR_STATUS_LIST_INVALID', /typ/);
  });
});
