/**
 * Operator actions (src/issuance/admin.ts) without the admin socket: registration entries
 * (validated against the trust domain, one per SPIFFE ID and selector set, typed not-found) and
 * join tokens (lifetime bounds, the entry made in the same transaction, the secret never stored),
 * then a token attested through the real join_token verifier: once, to its entry's SPIFFE ID.
 * Each test names the rule it pins.
 */
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { signKeyProofWith } from '../../src/attestation/key-proof.js';
import { joinTokenVerifier } from '../../src/attestation/join-token/join-token.js';
import { VerifierRegistry } from '../../src/attestation/registry.js';
import { Issuer } from '../../src/issuance/issuer.js';
import { expectWritError } from '../helpers/errors.js';
import { HOUR, issuanceWorld, JOIN_TOKEN_MAX_TTL_MS, newAgent, nonceOf, T0, type World } from '../helpers/issuance.js';

let w: World;
beforeEach(async () => {
  w = await issuanceWorld();
});
afterEach(async () => {
  await w.close();
});

const input = (over: Partial<Parameters<World['admin']['createEntry']>[0]> = {}) => ({
  spiffeId: 'spiffe://example.org/agent/a',
  selectors: [
    { type: 'fake', value: 'workload:a' },
    { type: 'fake', value: 'region:eu' },
  ],
  x509SvidTtl: 600,
  jwtSvidTtl: 60,
  scopeCeiling: [],
  hint: 'ci runner',
  ...over,
});

describe('registration entries', () => {
  it('creates an entry with a fresh id and the clock’s time, readable and listed', async () => {
    const e = await w.admin.createEntry(input());
    expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(e.createdAt).toBe(T0);
    expect(await w.admin.getEntry(e.id)).toEqual(e);
    expect(await w.admin.listEntries()).toEqual([e]);
    expect((await w.admin.createEntry(input({ spiffeId: 'spiffe://example.org/agent/b' }))).id).not.toBe(e.id);
  });

  it('refuses a second entry for the same SPIFFE ID and selectors, in any order (no duplicate identities)', async () => {
    await w.admin.createEntry(input());
    const reordered = input({ selectors: [...input().selectors].reverse() });
    await expectWritError(
      w.admin.createEntry(reordered),
      'ERR_ENTRY_INVALID',
      'an entry for spiffe://example.org/agent/a with the same selectors already exists',
    );
    expect(await w.admin.listEntries()).toHaveLength(1);
    // Another SPIFFE ID on the same selectors is a registration choice (the handshake refuses the tie).
    await w.admin.createEntry(input({ spiffeId: 'spiffe://example.org/agent/b' }));
    expect(await w.admin.listEntries()).toHaveLength(2);
  });

  it.each([
    ['outside the trust domain', { spiffeId: 'spiffe://other.org/agent/a' }, 'outside the trust domain example.org'],
    ['under /writ/, reserved for the issuer', { spiffeId: 'spiffe://example.org/writ/ca' }, 'reserved for the issuer'],
    ['without selectors (it would match every agent)', { selectors: [] }, 'at least one selector is required'],
    ['with an SVID lifetime over a week', { x509SvidTtl: 7 * 24 * 3600 + 1 }, 'x509 ttl must be 0..604800 seconds'],
  ])('refuses an entry %s, and writes nothing', async (_what, over, message) => {
    await expectWritError(w.admin.createEntry(input(over)), 'ERR_ENTRY_INVALID', message);
    expect(await w.admin.listEntries()).toEqual([]);
  });

  it('says which entry it could not find, and deletes an entry once', async () => {
    const e = await w.admin.createEntry(input());
    await expectWritError(w.admin.getEntry('nope'), 'ERR_ENTRY_NOT_FOUND', 'entry: no entry with id "nope"');
    await expectWritError(w.admin.getEntry('x'.repeat(500)), 'ERR_ENTRY_NOT_FOUND', `"${'x'.repeat(64)}"`); // an id shown is cut at 64
    await w.admin.deleteEntry(e.id);
    await expectWritError(w.admin.deleteEntry(e.id), 'ERR_ENTRY_NOT_FOUND', e.id);
    await expectWritError(w.admin.getEntry(e.id), 'ERR_ENTRY_NOT_FOUND');
    expect(await w.store.listEntriesBySelectors(['fake:workload:a'])).toEqual([]); // nothing left to match
  });
});

describe('join tokens', () => {
  it('lives the default when no lifetime is asked, and the asked lifetime up to the maximum', async () => {
    expect((await w.admin.createJoinToken(undefined)).expiresAt.getTime()).toBe(T0 + 10 * 60_000);
    expect((await w.admin.createJoinToken(0)).expiresAt.getTime()).toBe(T0 + 10 * 60_000);
    expect((await w.admin.createJoinToken(JOIN_TOKEN_MAX_TTL_MS)).expiresAt.getTime()).toBe(T0 + JOIN_TOKEN_MAX_TTL_MS);
  });

  it('refuses a lifetime above the maximum or below zero instead of cutting it, and stores no token', async () => {
    for (const ttl of [JOIN_TOKEN_MAX_TTL_MS + 1, -1]) {
      await expectWritError(w.admin.createJoinToken(ttl), 'ERR_LIMIT_EXCEEDED', `token: ttl must be between 1s and ${JOIN_TOKEN_MAX_TTL_MS / 1000}s`);
    }
    expect(await w.store.pruneJoinTokens(Number.MAX_SAFE_INTEGER)).toBe(0);
  });

  it('stores only the hash of the secret: the store cannot hand out a usable token', async () => {
    const t = await w.admin.createJoinToken(undefined);
    const [id, secret] = t.token.split('.') as [string, string];
    expect(id).toBe(t.id);
    const rec = (await w.store.getJoinToken(t.id))!;
    expect(rec.secretHash).toEqual(createHash('sha256').update(secret).digest());
    expect(rec.secretHash.toString('latin1')).not.toContain(secret);
    expect(rec.usedAt).toBeNull();
  });

  it('with a SPIFFE ID, creates the entry for its selector in the same transaction', async () => {
    const t = await w.admin.createJoinToken(undefined, 'spiffe://example.org/agent/joined');
    expect(t.selector).toBe(`join_token:${t.id}`);
    const e = await w.admin.getEntry(t.entryId!);
    expect(e).toMatchObject({
      spiffeId: 'spiffe://example.org/agent/joined',
      selectors: [{ type: 'join_token', value: t.id }],
      hint: 'created with join token',
    });
  });

  it('with a SPIFFE ID the entry refuses, stores neither the entry nor the token', async () => {
    await expectWritError(w.admin.createJoinToken(undefined, 'spiffe://other.org/agent/x'), 'ERR_ENTRY_INVALID', 'outside the trust domain');
    expect(await w.admin.listEntries()).toEqual([]);
    expect(await w.store.pruneJoinTokens(Number.MAX_SAFE_INTEGER)).toBe(0);
  });

  describe('attested through the real join_token verifier', () => {
    const issuerWithTokens = () =>
      new Issuer({
        ca: w.ca,
        store: w.store,
        verifiers: new VerifierRegistry([joinTokenVerifier({ tokens: w.store })]),
        clock: w.clock,
        policies: w.policies,
        engine: w.engine,
        settings: { x509SvidTtlMs: HOUR, jwtSvidTtlMs: 300_000 },
      });
    async function attestToken(issuer: Issuer, token: string) {
      const agent = newAgent();
      const { handshake, challenge } = await issuer.begin({
        evidenceType: 'join_token',
        publicKey: agent.spki,
        csr: new Uint8Array(0),
        grants: [],
        jwtAudiences: [],
      });
      return handshake.respond(Buffer.from(token), signKeyProofWith(agent.key, nonceOf(challenge)));
    }

    it('a token attests once, to its entry’s SPIFFE ID; a second use is refused (one-time)', async () => {
      const issuer = issuerWithTokens();
      const t = await w.admin.createJoinToken(undefined, 'spiffe://example.org/agent/joined');
      const first = await attestToken(issuer, t.token);
      expect(first.kind === 'result' && first.result.spiffeId).toBe('spiffe://example.org/agent/joined');
      expect((await w.store.getJoinToken(t.id))!.usedAt).toBe(T0);
      await expectWritError(attestToken(issuer, t.token), 'ERR_JOIN_TOKEN_INVALID', 'attestation(join_token): token has already been used');
    });

    it('an expired token is refused, and a token with a wrong secret is refused without being consumed', async () => {
      const issuer = issuerWithTokens();
      const t = await w.admin.createJoinToken(60_000, 'spiffe://example.org/agent/joined');
      await expectWritError(attestToken(issuer, `${t.id}.${'A'.repeat(43)}`), 'ERR_JOIN_TOKEN_INVALID', 'token is not valid');
      expect((await w.store.getJoinToken(t.id))!.usedAt).toBeNull();
      w.clock.advance(60_000);
      await expectWritError(attestToken(issuer, t.token), 'ERR_JOIN_TOKEN_INVALID', 'token has expired');
    });
  });
});

describe('policy snapshots (writ policy push)', () => {
  const files = [{ name: 'p.cedar', text: '@id("all-read")\npermit(principal, action == Writ::Action::"delegate", resource);' }];

  it('stores a policy set under its digest and activates it; the same set again is the same snapshot', async () => {
    const first = await w.policies.push(files);
    expect(first).toMatchObject({ created: true, policies: 1 });
    expect((await w.policies.active()).digest).toBe(first.digest);
    w.clock.advance(1000);
    const again = await w.policies.push(files);
    expect(again).toEqual({ ...first, created: false });
    expect((await w.policies.active()).activatedAt).toBe(T0 + 1000);
    expect((await w.policies.list()).filter((s) => s.active).map((s) => s.digest)).toEqual([first.digest]);
  });

  it('refuses a policy set Cedar cannot parse, and keeps the active one', async () => {
    const before = (await w.policies.active()).digest;
    await expectWritError(w.policies.push([{ name: 'bad.cedar', text: 'permit(principal, action, resource' }]), 'ERR_POLICY_INVALID');
    expect((await w.policies.active()).digest).toBe(before);
  });

  it('refuses a digest that is not 64 hex characters, an unknown one, and a stored snapshot that no longer hashes to its digest (tampering)', async () => {
    await expectWritError(w.policies.get('ABC'), 'ERR_POLICY_NOT_FOUND', 'a snapshot digest is 64 lower-case hex characters');
    await expectWritError(w.policies.get('0'.repeat(64)), 'ERR_POLICY_NOT_FOUND', `no snapshot ${'0'.repeat(64)}`);
    const forged = 'f'.repeat(64);
    await w.store.putPolicySnapshot({ digest: forged, policies: [{ id: 'x', text: 'permit(principal, action, resource);' }], createdAt: T0 });
    await expectWritError(w.policies.get(forged), 'ERR_POLICY_INVALID', `stored snapshot ${forged} hashes to`);
  });
});
