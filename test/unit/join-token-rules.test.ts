/**
 * Join tokens (src/attestation/join-token/join-token.ts): one-time, expiring secrets of which only
 * the hash is stored. Each rule refuses the token it exists for; the store is an in-memory fake
 * of the two StoreTx calls the verifier makes (`make mutate`, docs/testing.md).
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { JOIN_TOKEN_TYPE, MAX_JOIN_TOKEN_BYTES, joinTokenId, joinTokenVerifier, newJoinToken } from '../../src/attestation/join-token/join-token.js';
import { joinTokenPlugin, joinTokenProducer } from '../../src/attestation/join-token/plugin.js';
import type { AttestationContext, AttestationResult } from '../../src/attestation/verifier.js';
import { Section } from '../../src/config/section.js';
import type { JoinTokenRecord, StoreTx } from '../../src/store/store.js';

const T = Date.UTC(2030, 0, 1);

class FakeTokens {
  readonly records = new Map<string, JoinTokenRecord>();
  async getJoinToken(id: string) {
    return this.records.get(id);
  }
  async consumeJoinToken(id: string, now: number) {
    const r = this.records.get(id);
    if (!r || r.usedAt !== null) return false;
    this.records.set(id, { ...r, usedAt: now });
    return true;
  }
}

function ctx(now = T): AttestationContext {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
  return { nonce: Buffer.alloc(32), agentKey: { key, spki: key.export({ type: 'spki', format: 'der' }), kind: 'ec-p256' } as never, now: new Date(now) };
}

async function present(store: FakeTokens, token: string, now = T) {
  const v = joinTokenVerifier({ tokens: store });
  const s = await v.begin(ctx(now));
  expect(s.challenge).toEqual(Buffer.alloc(0));
  return s.respond(Buffer.from(token, 'latin1'));
}

function issued(store: FakeTokens, ttlMs = 600_000) {
  const { token, record } = newJoinToken(new Date(T), ttlMs);
  store.records.set(record.id, record);
  return { token, record };
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}
const tokenErr = (message: string) => ({ code: 'ERR_JOIN_TOKEN_INVALID', message });

describe('join tokens', () => {
  it('are 16 hex id characters, a dot and 43 base64url secret characters; only the secret’s SHA-256 is stored', () => {
    const { token, record } = newJoinToken(new Date(T), 60_000);
    expect(token).toMatch(/^[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    const [id, secret] = token.split('.') as [string, string];
    expect(record).toEqual({ id, secretHash: createHash('sha256').update(secret).digest(), expiresAt: T + 60_000, createdAt: T, usedAt: null });
    expect(JSON.stringify(record)).not.toContain(secret);
    expect(joinTokenId(token)).toBe(id);
    expect(newJoinToken(new Date(T), 1).token).not.toBe(newJoinToken(new Date(T), 1).token);
  });

  it('joinTokenId: only for token-shaped strings, anchored at both ends', () => {
    const { token } = newJoinToken(new Date(T), 1);
    for (const bad of [`x${token}`, `${token}x`, token.replace('.', '-'), token.slice(1), token.toUpperCase(), '']) expect(joinTokenId(bad)).toBeUndefined();
  });

  it('the verifier is one round, for type join_token, of at most MAX_JOIN_TOKEN_BYTES', () => {
    const v = joinTokenVerifier({ tokens: new FakeTokens() });
    expect(v).toMatchObject({ type: JOIN_TOKEN_TYPE, maxRounds: 1, maxEvidenceBytes: MAX_JOIN_TOKEN_BYTES });
    expect(JOIN_TOKEN_TYPE).toBe('join_token');
    expect(MAX_JOIN_TOKEN_BYTES).toBe(128);
  });

  it('accepts a valid token once: selector join_token:<id>, the evidence digest, and a commit that consumes it', async () => {
    const store = new FakeTokens();
    const { token, record } = issued(store);
    const step = await present(store, token, T + 599_999);
    expect(step.kind).toBe('attested');
    const result = (step as { result: AttestationResult }).result;
    expect(result.selectors).toEqual([{ type: 'join_token', value: record.id }]);
    expect(result.evidenceDigest).toEqual(createHash('sha256').update(token).digest());
    expect(result.publicEvidence).toBeUndefined();
    await result.commit!(store as unknown as StoreTx, new Date(T + 1000));
    expect(store.records.get(record.id)!.usedAt).toBe(T + 1000);
    // A second handshake that got past the check before the first committed still cannot use it.
    await expect(result.commit!(store as unknown as StoreTx, new Date(T + 2000))).rejects.toMatchObject(tokenErr('token has already been used'));
  });

  it('refuses a malformed token before looking anything up', async () => {
    const store = new FakeTokens();
    const { token } = issued(store);
    for (const bad of [`${token}x`, `x${token}`, token.replace('.', ':'), '', `${token.slice(0, 17)}${'A'.repeat(42)}+`]) {
      expect(await rejection(present(store, bad))).toMatchObject(tokenErr('token is malformed'));
    }
  });

  it('refuses an unknown id and a wrong secret with the same message', async () => {
    const store = new FakeTokens();
    const { token } = issued(store);
    const [id] = token.split('.') as [string];
    const wrongSecret = `${id}.${'A'.repeat(43)}`;
    const unknownId = `${'0'.repeat(16)}.${token.split('.')[1]}`;
    expect(await rejection(present(store, wrongSecret))).toMatchObject(tokenErr('token is not valid'));
    expect(await rejection(present(store, unknownId))).toMatchObject(tokenErr('token is not valid'));
  });

  it('refuses a used token, and an expired one (at its expiry instant)', async () => {
    const store = new FakeTokens();
    const used = issued(store);
    store.records.set(used.record.id, { ...used.record, usedAt: T });
    expect(await rejection(present(store, used.token))).toMatchObject(tokenErr('token has already been used'));
    const old = issued(store, 1000);
    expect(await rejection(present(store, old.token, T + 1000))).toMatchObject(tokenErr('token has expired'));
    expect((await present(store, old.token, T + 999)).kind).toBe('attested');
  });
});

describe('the join_token plug-in', () => {
  it('has no settings: any key under attestation.join_token is a problem', () => {
    const problems: string[] = [];
    expect(joinTokenPlugin.settings(Section.of('attestation.join_token', { ttl: 1 }, problems))).toEqual({});
    expect(problems).toEqual(['unknown key attestation.join_token.ttl']);
    expect(joinTokenPlugin.type).toBe('join_token');
    expect(joinTokenPlugin.relyingParty).toBeUndefined();
  });

  it('its verifier reads tokens from the store it is given', async () => {
    const store = new FakeTokens();
    const { token, record } = issued(store);
    const v = joinTokenPlugin.verifier({}, { store: store as unknown as StoreTx });
    const step = await (await v.begin(ctx())).respond(Buffer.from(token));
    expect((step as { result: AttestationResult }).result.selectors).toEqual([{ type: 'join_token', value: record.id }]);
  });

  it('the agent side sends --join-token as it is, and needs one', async () => {
    expect(joinTokenProducer).toMatchObject({ type: 'join_token', selectedBy: 'join-token' });
    expect(Object.keys(joinTokenProducer.options)).toEqual(['join-token']);
    const s = await joinTokenProducer.open({ 'join-token': 'abc.def' });
    expect(await s.respond({ nonce: new Uint8Array(32), payload: new Uint8Array(0) })).toEqual(Buffer.from('abc.def'));
    await expect(s.close()).resolves.toBeUndefined();
    await expect(joinTokenProducer.open({})).rejects.toThrow('--join-token needs a token');
    await expect(joinTokenProducer.open({ 'join-token': '' })).rejects.toThrow('--join-token needs a token');
  });
});
