/**
 * The spawn handshake (src/issuance/issuer.ts) without gRPC: hello → challenge → evidence (→
 * challenge …) → SVIDs and a writ, driven through the real Issuer with a scripted evidence
 * verifier (test/fakes/evidence.ts) and a real in-memory store (test/fakes/README.md). Each test
 * names the attack or the rule it pins; every refusal asserts its code and message and that
 * nothing was issued.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { signKeyProofWith } from '../../src/attestation/key-proof.js';
import { delegateGrant } from '../../src/delegation/grant.js';
import { DELEGATOR_SKEW_MS, NONCE_BYTES } from '../../src/issuance/issuer.js';
import { bindingDigest } from '../../src/writ/binding.js';
import { parseWrit } from '../../src/writ/writ.js';
import { fakeEvidence } from '../fakes/evidence.js';
import { expectWritError } from '../helpers/errors.js';
import { issuanceWorld, newAgent, nonceOf, T0, type TestAgent, type World } from '../helpers/issuance.js';
import { tmpDir } from '../helpers/tmp.js';

const SEL = ['fake:workload:a'];
const OPERATOR = { kind: 'operator' } as const;

let w: World;
beforeEach(async () => {
  w = await issuanceWorld();
});
afterEach(async () => {
  await w.close();
});

/** The SPIFFE ID in an X.509-SVID leaf. */
const svidId = (der: Buffer) => new X509Certificate(der).subjectAltName;

/** A root grant for `agent` and the writ its first handshake gets. */
async function rootWrit(agent: TestAgent, sel = SEL, over: Parameters<World['grantRequest']>[1] = {}) {
  const created = await w.grants.create(w.grantRequest(agent, over));
  const r = await w.attest(agent, { grants: [created.grant], sel });
  return { grant: created.grant, jti: created.jti, writ: r.writ!, result: r };
}

describe('handshake: hello → challenge → evidence → issue', () => {
  it('issues an X.509-SVID and JWT-SVIDs for the entry the attested selectors match, and records every one', async () => {
    const entry = await w.register('/agent/a', SEL);
    const r = await w.attest(newAgent(), { sel: SEL, jwtAudiences: ['https://rp.example.com', 'https://rp.example.com'] });
    expect(r.spiffeId).toBe('spiffe://example.org/agent/a');
    expect(r.entryId).toBe(entry.id);
    expect(svidId(r.svidChain[0]!)).toBe('URI:spiffe://example.org/agent/a');
    expect(r.jwtSvids.map((j) => j.audience)).toEqual(['https://rp.example.com']); // duplicates asked once
    expect(r.writ).toBeUndefined(); // no grant chain, no writ
    expect(await w.store.countIssued()).toBe(2);
  });

  it('binds the evidence to a fresh issuer nonce per hello, and to the binding digest when a grant chain is named', async () => {
    // Replay: evidence made for one handshake must not fit another, so every hello gets its own nonce.
    await w.register('/agent/a', SEL);
    const agent = newAgent();
    const a = await w.issuer.begin(w.hello(agent));
    const b = await w.issuer.begin(w.hello(agent));
    expect(nonceOf(a.challenge)).toHaveLength(NONCE_BYTES);
    expect(nonceOf(a.challenge).equals(nonceOf(b.challenge))).toBe(false);
    expect(w.evidence.sessions[0]!.ctx.nonce.equals(nonceOf(a.challenge))).toBe(true);
    expect(w.evidence.sessions[0]!.ctx.agentKey.spki.equals(agent.spki)).toBe(true);

    // With grants, the evidence signs the binding digest of key, chain, policy snapshot, task and nonce.
    const { writ } = await rootWrit(agent);
    const claims = parseWrit(writ).claims;
    const session = w.evidence.sessions.at(-1)!;
    const snapshot = await w.policies.active();
    const expected = bindingDigest({
      jkt: agent.jkt,
      chainDigest: (await w.store.getWrit(claims.jti))!.chainDigest,
      policySnapshot: snapshot.digest,
      taskId: 'task-1',
      nonce: Buffer.from(claims.att.nonce, 'base64url'),
    });
    expect(session.ctx.nonce.equals(expected)).toBe(true);
    expect(claims.att.bind).toBe(expected.toString('base64url'));
  });

  it('answers a challenge from the verifier with the same nonce, and issues on the next evidence', async () => {
    await w.register('/agent/a', SEL);
    const agent = newAgent();
    const { handshake, challenge } = await w.issuer.begin(w.hello(agent));
    expect(challenge).toMatchObject({ kind: 'challenge', payload: Buffer.from('fake-challenge') });
    const next = await handshake.respond(fakeEvidence({ challenge: 'quote please' }), signKeyProofWith(agent.key, nonceOf(challenge)));
    expect(next).toEqual({ kind: 'challenge', nonce: nonceOf(challenge), payload: Buffer.from('quote please') });
    const done = await handshake.respond(fakeEvidence({ sel: SEL }));
    expect(done.kind).toBe('result');
  });

  it('refuses a key proof after the first evidence (it belongs only with the first)', async () => {
    await w.register('/agent/a', SEL);
    const agent = newAgent();
    const { handshake, challenge } = await w.issuer.begin(w.hello(agent));
    await handshake.respond(fakeEvidence({ challenge: 'again' }), signKeyProofWith(agent.key, nonceOf(challenge)));
    await expectWritError(
      handshake.respond(fakeEvidence({ sel: SEL }), signKeyProofWith(agent.key, nonceOf(challenge))),
      'ERR_PROTOCOL',
      'key_proof belongs only in the first evidence',
    );
  });

  it('a CSR hello has proven possession already: it issues for the CSR key, and a key proof with it is refused', async () => {
    await w.register('/agent/a', SEL);
    const agent = newAgent();
    const dir = tmpDir();
    writeFileSync(join(dir, 'k.pem'), agent.key.export({ type: 'pkcs8', format: 'pem' }));
    execFileSync('openssl', ['req', '-new', '-key', join(dir, 'k.pem'), '-subj', '/CN=agent', '-outform', 'DER', '-out', join(dir, 'csr.der')]);
    const csrHello = { ...w.hello(agent), publicKey: new Uint8Array(0), csr: readFileSync(join(dir, 'csr.der')) };
    const a = await w.issuer.begin(csrHello);
    await expectWritError(
      a.handshake.respond(fakeEvidence({ sel: SEL }), signKeyProofWith(agent.key, nonceOf(a.challenge))),
      'ERR_PROTOCOL',
      'key_proof belongs only in the first evidence of a hello with a bare public key',
    );
    const b = await w.issuer.begin(csrHello);
    const step = await b.handshake.respond(fakeEvidence({ sel: SEL }));
    if (step.kind !== 'result') throw new Error('expected a result');
    expect(new X509Certificate(step.result.svidChain[0]!).publicKey.export({ type: 'spki', format: 'der' }).equals(agent.spki)).toBe(true);
  });

  it('refuses more evidence rounds than the verifier allows (an agent cannot keep a handshake open)', async () => {
    const agent = newAgent();
    const { handshake, challenge } = await w.issuer.begin(w.hello(agent));
    await handshake.respond(fakeEvidence({ challenge: '1' }), signKeyProofWith(agent.key, nonceOf(challenge)));
    for (let i = 1; i < w.evidence.maxRounds; i++) await handshake.respond(fakeEvidence({ challenge: `${i + 1}` }));
    await expectWritError(handshake.respond(fakeEvidence({ sel: SEL })), 'ERR_PROTOCOL', `more than ${w.evidence.maxRounds} evidence rounds`);
    expect(w.evidence.sessions[0]!.evidence).toHaveLength(w.evidence.maxRounds);
  });

  it('refuses evidence larger than the verifier accepts before the verifier parses it', async () => {
    const agent = newAgent();
    const { handshake, challenge } = await w.issuer.begin(w.hello(agent));
    await expectWritError(
      handshake.respond(Buffer.alloc(w.evidence.maxEvidenceBytes + 1, 0x20), signKeyProofWith(agent.key, nonceOf(challenge))),
      'ERR_LIMIT_EXCEEDED',
      `exceeds ${w.evidence.maxEvidenceBytes}`,
    );
    expect(w.evidence.sessions[0]!.evidence).toHaveLength(0);
  });
});

describe('handshake refusals', () => {
  it('refuses an unknown evidence type at hello, naming the supported ones', async () => {
    await expectWritError(
      w.issuer.begin({ ...w.hello(newAgent()), evidenceType: 'tpm' }),
      'ERR_EVIDENCE_TYPE_UNKNOWN',
      'attestation: unknown evidence type "tpm" (supported: fake)',
    );
    expect(w.evidence.sessions).toHaveLength(0);
  });

  it('refuses a hello with both a public key and a CSR, or with neither', async () => {
    const agent = newAgent();
    await expectWritError(w.issuer.begin({ ...w.hello(agent), csr: Buffer.from([0x30, 0x00]) }), 'ERR_PROTOCOL', 'exactly one of public_key and csr');
    await expectWritError(w.issuer.begin({ ...w.hello(agent), publicKey: new Uint8Array(0) }), 'ERR_PROTOCOL', 'exactly one of public_key and csr');
  });

  it('refuses audiences that are empty, too many or carry spaces (header injection into a JWT-SVID)', async () => {
    const agent = newAgent();
    await expectWritError(w.issuer.begin(w.hello(agent, { jwtAudiences: ['a b'] })), 'ERR_PROTOCOL', 'without spaces or control characters');
    await expectWritError(w.issuer.begin(w.hello(agent, { jwtAudiences: [''] })), 'ERR_PROTOCOL', 'an audience must be 1..256 bytes');
    await expectWritError(
      w.issuer.begin(w.hello(agent, { jwtAudiences: Array.from({ length: 9 }, (_, i) => `aud${i}`) })),
      'ERR_LIMIT_EXCEEDED',
      'at most 8 audiences',
    );
    await expectWritError(w.issuer.begin(w.hello(agent, { writAudiences: ['https://rp'] })), 'ERR_PROTOCOL', 'writ audiences need a grant chain');
  });

  describe('the key proof: a bare public key must be shown to be held', () => {
    it('refuses the first evidence without a key proof, before the verifier sees the evidence', async () => {
      // Key substitution: an agent naming someone else's public key would get an SVID for a key it cannot use... or can, if it later obtains it.
      await w.register('/agent/a', SEL);
      const { handshake } = await w.issuer.begin(w.hello(newAgent()));
      await expectWritError(handshake.respond(fakeEvidence({ sel: SEL })), 'ERR_KEY_PROOF_INVALID', 'the first evidence must carry key_proof');
      expect(w.evidence.sessions[0]!.evidence).toHaveLength(0);
      expect(await w.store.countIssued()).toBe(0);
    });

    it('refuses a key proof made by another key', async () => {
      await w.register('/agent/a', SEL);
      const { handshake, challenge } = await w.issuer.begin(w.hello(newAgent()));
      await expectWritError(
        handshake.respond(fakeEvidence({ sel: SEL }), signKeyProofWith(newAgent().key, nonceOf(challenge))),
        'ERR_KEY_PROOF_INVALID',
        'the agent does not hold the private key its hello names',
      );
      expect(w.evidence.sessions[0]!.evidence).toHaveLength(0);
    });

    it("refuses a key proof lifted from another handshake (signed over that one's nonce)", async () => {
      await w.register('/agent/a', SEL);
      const agent = newAgent();
      const old = await w.issuer.begin(w.hello(agent));
      const { handshake } = await w.issuer.begin(w.hello(agent));
      await expectWritError(
        handshake.respond(fakeEvidence({ sel: SEL }), signKeyProofWith(agent.key, nonceOf(old.challenge))),
        'ERR_KEY_PROOF_INVALID',
        'does not verify',
      );
    });
  });

  it('refuses when the verifier refuses the evidence, prefixed by the plug-in, and issues nothing', async () => {
    await w.register('/agent/a', SEL);
    const agent = newAgent();
    const { handshake, challenge } = await w.issuer.begin(w.hello(agent));
    await expectWritError(
      handshake.respond(fakeEvidence({ refuse: 'quote nonce mismatch' }), signKeyProofWith(agent.key, nonceOf(challenge))),
      'ERR_EVIDENCE_INVALID',
      'attestation(fake): evidence refused: quote nonce mismatch',
    );
    expect(await w.store.countIssued()).toBe(0);
  });

  it('refuses when no entry matches, showing the attested selectors; an entry needs every one of its selectors', async () => {
    await w.register('/agent/a', ['fake:workload:a', 'fake:region:eu']);
    await expectWritError(
      w.attest(newAgent(), { sel: ['fake:workload:a'] }),
      'ERR_NO_MATCHING_ENTRY',
      'attestation: no registration entry matches the attested selectors (fake:workload:a)',
    );
    expect(await w.store.countIssued()).toBe(0);
    const r = await w.attest(newAgent(), { sel: ['fake:workload:a', 'fake:region:eu', 'fake:extra:1'] });
    expect(r.spiffeId).toBe('spiffe://example.org/agent/a');
  });

  it('refuses selectors that match entries for different SPIFFE IDs equally (no guessing which identity)', async () => {
    await w.register('/agent/a', ['fake:workload:a']);
    await w.register('/agent/b', ['fake:region:eu']);
    await expectWritError(
      w.attest(newAgent(), { sel: ['fake:workload:a', 'fake:region:eu'] }),
      'ERR_NO_MATCHING_ENTRY',
      'match entries for different SPIFFE IDs equally',
    );
    expect(await w.store.countIssued()).toBe(0);
  });

  it('prefers the entry with the most matching selectors', async () => {
    await w.register('/agent/broad', ['fake:workload:a']);
    await w.register('/agent/narrow', ['fake:workload:a', 'fake:region:eu']);
    expect((await w.attest(newAgent(), { sel: ['fake:workload:a', 'fake:region:eu'] })).spiffeId).toBe('spiffe://example.org/agent/narrow');
  });

  describe('revocations refuse the handshake, with and without a grant chain', () => {
    it('refuses a revoked agent (SPIFFE ID)', async () => {
      await w.register('/agent/a', SEL);
      await w.revocations.revoke('agent', 'spiffe://example.org/agent/a', 'compromised', OPERATOR);
      await expectWritError(
        w.attest(newAgent(), { sel: SEL }),
        'ERR_REVOKED',
        'revocation: agent spiffe://example.org/agent/a is revoked (by operator: compromised)',
      );
      expect(await w.store.countIssued()).toBe(0);
    });

    it('refuses a revoked agent key, even for a fresh handshake without grants', async () => {
      await w.register('/agent/a', SEL);
      const agent = newAgent();
      await w.grants.create(w.grantRequest(agent)); // the issuer knows the key as a delegate
      await w.revocations.revoke('key', agent.jkt, 'leaked', OPERATOR);
      await expectWritError(w.attest(agent, { sel: SEL }), 'ERR_REVOKED', `key ${agent.jkt} is revoked`);
      expect((await w.attest(newAgent(), { sel: SEL })).spiffeId).toBe('spiffe://example.org/agent/a'); // another key is fine
    });

    it('refuses a revoked registration entry', async () => {
      const entry = await w.register('/agent/a', SEL);
      await w.revocations.revoke('entry', entry.id, 'decommissioned', OPERATOR);
      await expectWritError(w.attest(newAgent(), { sel: SEL }), 'ERR_REVOKED', `entry ${entry.id} is revoked`);
    });

    it('refuses evidence from a revoked platform, for any agent on it', async () => {
      await w.register('/agent/a', SEL);
      const agent = newAgent();
      const created = await w.grants.create(w.grantRequest(agent));
      await w.attest(agent, { grants: [created.grant], sel: SEL, platform: 'fake:device:1' });
      await w.revocations.revoke('platform', 'fake:device:1', 'stolen laptop', OPERATOR);
      await expectWritError(w.attest(newAgent(), { sel: SEL, platform: 'fake:device:1' }), 'ERR_REVOKED', 'platform fake:device:1 is revoked');
      expect((await w.attest(newAgent(), { sel: SEL, platform: 'fake:device:2' })).spiffeId).toBe('spiffe://example.org/agent/a');
    });

    it('checks revocations again inside the issuance transaction: a revocation committed during the handshake wins', async () => {
      // TOCTOU: the agent is revoked after its evidence was checked but before the SVIDs are recorded.
      await w.register('/agent/a', SEL);
      w.evidence.beforeResult = async () => {
        await w.revocations.revoke('agent', 'spiffe://example.org/agent/a', 'now', OPERATOR);
      };
      await expectWritError(w.attest(newAgent(), { sel: SEL }), 'ERR_REVOKED', 'agent spiffe://example.org/agent/a is revoked');
      expect(await w.store.countIssued()).toBe(0);
    });

    it("rolls back the evidence's own side effect (a consumed one-time token) when issuance is refused", async () => {
      await w.register('/agent/a', SEL);
      const { id } = await w.admin.createJoinToken(undefined);
      w.evidence.commit = async (tx, now) => {
        if (!(await tx.consumeJoinToken(id, now.getTime()))) throw new Error('token used');
      };
      await w.revocations.revoke('agent', 'spiffe://example.org/agent/a', 'compromised', OPERATOR);
      await expectWritError(w.attest(newAgent(), { sel: SEL }), 'ERR_REVOKED');
      expect((await w.store.getJoinToken(id))!.usedAt).toBeNull();
    });
  });
});

describe('a handshake ends at its first refusal (review finding A)', () => {
  // An agent whose evidence was refused must not try again on the same session: retries would
  // let it probe the verifier (guess a token, grind a quote) under one nonce and one rate-limit slot.
  const dead = 'attestation: this handshake has ended; start a new one';

  it.each([
    ['the evidence was refused', (a: TestAgent, nonce: Buffer) => [fakeEvidence({ refuse: 'bad quote' }), signKeyProofWith(a.key, nonce)] as const],
    ['the key proof was missing', () => [fakeEvidence({ sel: SEL }), new Uint8Array(0)] as const],
    ['the key proof was made by another key', (_a: TestAgent, nonce: Buffer) => [fakeEvidence({ sel: SEL }), signKeyProofWith(newAgent().key, nonce)] as const],
    [
      'the evidence was too large',
      (a: TestAgent, nonce: Buffer) => [Buffer.alloc(w.evidence.maxEvidenceBytes + 1, 0x20), signKeyProofWith(a.key, nonce)] as const,
    ],
  ])('after %s, good evidence on the same handshake is refused and nothing is issued', async (_what, first) => {
    await w.register('/agent/a', SEL);
    const agent = newAgent();
    const { handshake, challenge } = await w.issuer.begin(w.hello(agent));
    const [ev, proof] = first(agent, nonceOf(challenge));
    await expect(handshake.respond(ev, proof)).rejects.toThrow();
    const seen = w.evidence.sessions[0]!.evidence.length;
    await expectWritError(handshake.respond(fakeEvidence({ sel: SEL }), signKeyProofWith(agent.key, nonceOf(challenge))), 'ERR_PROTOCOL', dead);
    await expectWritError(handshake.respond(fakeEvidence({ sel: SEL })), 'ERR_PROTOCOL', dead);
    expect(w.evidence.sessions[0]!.evidence).toHaveLength(seen); // the verifier never saw the retries
    expect(await w.store.countIssued()).toBe(0);
  });

  it('after no entry matched, a retry with other selectors is refused', async () => {
    await w.register('/agent/a', SEL);
    const agent = newAgent();
    const { handshake, challenge } = await w.issuer.begin(w.hello(agent));
    await expectWritError(
      handshake.respond(fakeEvidence({ sel: ['fake:workload:zzz'] }), signKeyProofWith(agent.key, nonceOf(challenge))),
      'ERR_NO_MATCHING_ENTRY',
    );
    await expectWritError(handshake.respond(fakeEvidence({ sel: SEL })), 'ERR_PROTOCOL', dead);
    expect(await w.store.countIssued()).toBe(0);
  });

  it('after issuing, and while an evidence message is still being verified, further evidence is refused', async () => {
    await w.register('/agent/a', SEL);
    const agent = newAgent();
    const { handshake, challenge } = await w.issuer.begin(w.hello(agent));
    let release!: () => void;
    w.evidence.beforeResult = () => new Promise<void>((r) => (release = r));
    const first = handshake.respond(fakeEvidence({ sel: SEL }), signKeyProofWith(agent.key, nonceOf(challenge)));
    await expectWritError(handshake.respond(fakeEvidence({ sel: SEL })), 'ERR_PROTOCOL', dead);
    await new Promise((r) => setImmediate(r));
    release();
    expect((await first).kind).toBe('result');
    await expectWritError(handshake.respond(fakeEvidence({ sel: SEL })), 'ERR_PROTOCOL', dead);
    expect(await w.store.countIssued()).toBe(1);
  });

  it('a challenge keeps the handshake open for the next evidence', async () => {
    await w.register('/agent/a', SEL);
    const agent = newAgent();
    const { handshake, challenge } = await w.issuer.begin(w.hello(agent));
    await handshake.respond(fakeEvidence({ challenge: 'more' }), signKeyProofWith(agent.key, nonceOf(challenge)));
    expect((await handshake.respond(fakeEvidence({ sel: SEL }))).kind).toBe('result');
  });
});

describe('handshake with a grant chain', () => {
  beforeEach(async () => {
    await w.register('/agent/a', SEL);
    await w.register('/agent/b', ['fake:workload:b']);
    await w.register('/untrusted/x', ['fake:workload:x']);
  });

  it('issues a writ bound to the chain, the key, the evidence and the policy decision, and records it', async () => {
    const agent = newAgent();
    const { writ, grant, jti } = await rootWrit(agent);
    const c = parseWrit(writ).claims;
    expect(c).toMatchObject({ sub: 'spiffe://example.org/agent/a', cnf: { jkt: agent.jkt }, grants: [grant], lineage: [jti], task: { id: 'task-1' } });
    expect(c.att).toMatchObject({ type: 'fake', sel: SEL });
    expect(c.pol).toMatchObject({ decision: 'allow', snap: (await w.policies.active()).digest });
    expect(await w.store.getWrit(c.jti)).toMatchObject({ jti: c.jti, jkt: agent.jkt, lineage: [jti], parentJti: null });
    expect((await w.store.listDecisions(10)).map((d) => d.action)).toEqual(['receive task task-1 at depth 0', 'delegate task task-1']);
  });

  it('refuses a chain whose leaf is delegated to another key (a stolen grant)', async () => {
    const owner = newAgent();
    const { grant } = await w.grants.create(w.grantRequest(owner));
    await expectWritError(w.issuer.begin(w.hello(newAgent(), { grants: [grant] })), 'ERR_GRANT_INVALID', 'delegated to another key than the one presented');
    expect(w.evidence.sessions).toHaveLength(0);
  });

  it('refuses an agent the policy forbids to receive the task, and records the decision', async () => {
    const agent = newAgent();
    const { grant } = await w.grants.create(w.grantRequest(agent));
    await expectWritError(w.attest(agent, { grants: [grant], sel: ['fake:workload:x'] }), 'ERR_POLICY_DENIED', 'no-untrusted-agents');
    expect((await w.store.listDecisions(1))[0]).toMatchObject({ decision: 'deny', actor: 'spiffe://example.org/untrusted/x' });
    expect(await w.store.countIssued()).toBe(0);
    expect(await w.store.countWrits({ by: 'task', value: 'task-1' })).toBe(0);
  });

  describe('a revoked lineage is refused before any evidence is asked for', () => {
    it.each([
      ['grant', (g: { jti: string }) => g.jti, 'grant'],
      ['task', () => 'task-1', 'task task-1 has ended'],
      ['principal', () => 'https://idp.example.com#alice', 'principal https://idp.example.com#alice is revoked'],
    ] as const)('a revoked %s', async (kind, target, message) => {
      const agent = newAgent();
      const created = await w.grants.create(w.grantRequest(agent));
      await w.revocations.revoke(kind, target(created), 'stop', OPERATOR);
      await expectWritError(w.issuer.begin(w.hello(agent, { grants: [created.grant] })), 'ERR_REVOKED', message);
      expect(w.evidence.sessions).toHaveLength(0);
    });

    it('a grant revoked while the handshake runs is caught inside the issuance transaction', async () => {
      const agent = newAgent();
      const created = await w.grants.create(w.grantRequest(agent));
      w.evidence.beforeResult = async () => {
        await w.revocations.revoke('grant', created.jti, 'now', OPERATOR);
      };
      await expectWritError(w.attest(agent, { grants: [created.grant], sel: SEL }), 'ERR_REVOKED', `grant ${created.jti}`);
      expect(await w.store.countWrits({ by: 'task', value: 'task-1' })).toBe(0);
    });
  });

  describe('a hop grant needs live authority: the delegator held an unexpired, unrevoked writ', () => {
    it('issues the child a writ one hop down, naming its parent writ', async () => {
      const parent = newAgent();
      const child = newAgent();
      const p = await rootWrit(parent);
      const g1 = w.hop(p.grant, parent, p.writ, child);
      const r = await w.attest(child, { grants: [p.grant, g1], sel: ['fake:workload:b'] });
      const c = parseWrit(r.writ!).claims;
      expect(c.act).toEqual({ sub: 'spiffe://example.org/agent/a', act: { sub: 'alice', iss: 'https://idp.example.com' } });
      expect((await w.store.getWrit(c.jti))!.parentJti).toBe(parseWrit(p.writ).claims.jti);
    });

    it('refuses a hop made from a revoked parent writ', async () => {
      const parent = newAgent();
      const child = newAgent();
      const p = await rootWrit(parent);
      const g1 = w.hop(p.grant, parent, p.writ, child);
      const parentJti = parseWrit(p.writ).claims.jti;
      await w.revocations.revoke('writ', parentJti, 'parent misbehaved', OPERATOR);
      await expectWritError(w.issuer.begin(w.hello(child, { grants: [p.grant, g1] })), 'ERR_REVOKED', `made from writ ${parentJti}, which is revoked`);
    });

    it('refuses a hop made from an expired parent writ (beyond the skew), though the grants are still valid', async () => {
      const parent = newAgent();
      const child = newAgent();
      const created = await w.grants.create(w.grantRequest(parent));
      // The parent's SVID (so its writ) lives 60 s: an entry TTL.
      const entry = await w.admin.createEntry({
        spiffeId: 'spiffe://example.org/agent/brief',
        selectors: [{ type: 'fake', value: 'workload:brief' }],
        x509SvidTtl: 60,
        jwtSvidTtl: 0,
        scopeCeiling: [],
        hint: '',
      });
      const pw = (await w.attest(parent, { grants: [created.grant], sel: ['fake:workload:brief'] })).writ!;
      expect(parseWrit(pw).claims.exp).toBe(T0 / 1000 + 60);
      expect((await w.store.getWrit(parseWrit(pw).claims.jti))!.entryId).toBe(entry.id);
      const g1 = w.hop(created.grant, parent, pw, child);

      w.clock.set(T0 + 60_000 + DELEGATOR_SKEW_MS - 1000); // within the skew: still accepted
      await w.issuer.begin(w.hello(child, { grants: [created.grant, g1] }));
      w.clock.set(T0 + 60_000 + DELEGATOR_SKEW_MS);
      await expectWritError(
        w.issuer.begin(w.hello(child, { grants: [created.grant, g1] })),
        'ERR_GRANT_INVALID',
        `which has expired: a delegator needs live authority`,
      );
    });

    it("refuses a hop whose delegator's registration entry was deleted", async () => {
      const parent = newAgent();
      const child = newAgent();
      const p = await rootWrit(parent);
      const g1 = w.hop(p.grant, parent, p.writ, child);
      await w.admin.deleteEntry(p.result.entryId);
      await expectWritError(w.issuer.begin(w.hello(child, { grants: [p.grant, g1] })), 'ERR_GRANT_INVALID', 'whose registration entry no longer exists');
    });

    it('refuses a hop naming a writ this issuer never issued, or another SPIFFE ID than the writ it names', async () => {
      const parent = newAgent();
      const child = newAgent();
      const p = await rootWrit(parent);
      const now = Math.floor(w.clock.now().getTime() / 1000);
      const unknown = delegateGrant(p.grant, parent.key, {
        childJkt: child.jkt,
        now,
        from: { sub: 'spiffe://example.org/agent/a', writ: 'AAAAAAAAAAAAAAAAAAAAAA' },
      });
      await expectWritError(
        w.issuer.begin(w.hello(child, { grants: [p.grant, unknown] })),
        'ERR_GRANT_INVALID',
        'names a delegator writ this issuer did not issue',
      );
      const impostor = delegateGrant(p.grant, parent.key, {
        childJkt: child.jkt,
        now,
        from: { sub: 'spiffe://example.org/agent/b', writ: parseWrit(p.writ).claims.jti },
      });
      await expectWritError(
        w.issuer.begin(w.hello(child, { grants: [p.grant, impostor] })),
        'ERR_GRANT_INVALID',
        'was not made by the holder of the writ it names',
      );
    });

    it('refuses a hop from a delegating agent that has been revoked (its writ died with it)', async () => {
      const parent = newAgent();
      const child = newAgent();
      const p = await rootWrit(parent);
      const g1 = w.hop(p.grant, parent, p.writ, child);
      await w.revocations.revoke('agent', 'spiffe://example.org/agent/a', 'compromised', OPERATOR);
      const parentJti = parseWrit(p.writ).claims.jti;
      await expectWritError(w.issuer.begin(w.hello(child, { grants: [p.grant, g1] })), 'ERR_REVOKED', `made from writ ${parentJti}, which is revoked`);
    });
  });

  describe('renewal: the same key and chain, a new handshake', () => {
    it('gets a new writ (new jti, new nonce) on the same lineage while the task lives', async () => {
      const agent = newAgent();
      const first = await rootWrit(agent);
      w.clock.advance(10 * 60_000);
      const again = parseWrit((await w.attest(agent, { grants: [first.grant], sel: SEL })).writ!).claims;
      const before = parseWrit(first.writ).claims;
      expect(again.jti).not.toBe(before.jti);
      expect(again.att.nonce).not.toBe(before.att.nonce);
      expect(again.lineage).toEqual(before.lineage);
      expect(await w.store.countWrits({ by: 'task', value: 'task-1' })).toBe(2);
    });

    it('never outlives the task: a renewal near its end gets a writ that ends with it', async () => {
      const agent = newAgent();
      const first = await rootWrit(agent);
      const taskExp = parseWrit(first.writ).claims.task.exp;
      w.clock.set((taskExp - 120) * 1000);
      const c = parseWrit((await w.attest(agent, { grants: [first.grant], sel: SEL })).writ!).claims;
      expect(c.exp).toBe(taskExp);
      expect(c.exp - c.iat).toBe(120); // not the SVID's hour
    });

    it('is refused once the task has ended (renewal past the task needs the principal again)', async () => {
      const agent = newAgent();
      const first = await rootWrit(agent);
      await w.revocations.revoke('task', 'task-1', 'done', { kind: 'principal', iss: 'https://idp.example.com', sub: 'alice' });
      await expectWritError(w.attest(agent, { grants: [first.grant], sel: SEL }), 'ERR_REVOKED', 'task task-1 has ended');
    });

    it("is refused once the task's time is up", async () => {
      const agent = newAgent();
      const first = await rootWrit(agent);
      w.clock.set(parseWrit(first.writ).claims.task.exp * 1000 + 1000);
      await expectWritError(w.issuer.begin(w.hello(agent, { grants: [first.grant] })), 'ERR_GRANT_INVALID', 'grant 0 has expired');
    });
  });
});
