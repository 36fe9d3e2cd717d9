/**
 * Renewal authenticated by the current X.509-SVID (src/attestation/x509-svid/), driven through
 * the real Issuer, CA and store (test/helpers/issuance.ts) with a manual clock. Each refusal is
 * a mutated twin of a renewal that succeeds, asserts its code and message, and that nothing was
 * issued: deleting the check it names makes its test fail.
 */
import { createHash, createPublicKey, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keyProofMessage, signKeyProofWith } from '../../src/attestation/key-proof.js';
import {
  MAX_X509_SVID_EVIDENCE_BYTES,
  RENEWAL_CONTEXT,
  encodeRenewalEvidence,
  parseRenewalEvidence,
  renewalMessage,
  signRenewalWith,
} from '../../src/attestation/x509-svid/evidence.js';
import { x509SvidPlugin } from '../../src/attestation/x509-svid/plugin.js';
import { x509SvidVerifier, type X509SvidSettings } from '../../src/attestation/x509-svid/verifier.js';
import { Section } from '../../src/config/section.js';
import { recordAttestedAgent } from '../../src/issuance/attested-agents.js';
import type { IssuedResult } from '../../src/issuance/issuer.js';
import { parseCertificate } from '../../src/x509/certificate.js';
import { parseWrit } from '../../src/writ/writ.js';
import { expectWritError } from '../helpers/errors.js';
import { HOUR, issuanceWorld, newAgent, nonceOf, type TestAgent, type World } from '../helpers/issuance.js';
import { makeCert } from '../helpers/testca.js';
import { POLICY } from '../helpers/policies.js';

const SEL = ['fake:workload:a'];
const OPERATOR = { kind: 'operator' } as const;
const EMPTY = new Uint8Array(0);

/** The renewal policy the verifier reads; tests change it. Default here: every type may renew. */
let policy: { requireFreshEvidence?: string[] };
let w: World;
beforeEach(async () => {
  policy = { requireFreshEvidence: [] };
  w = await issuanceWorld({
    verifiers: ({ store, ca }) => [x509SvidVerifier({ store, trustBundle: () => ca.bundle(), settings: policy as X509SvidSettings })],
  });
});
afterEach(async () => {
  await w.close();
});

/** What an agent holds: its SVID chain and the key of that SVID. */
interface Held {
  readonly chain: readonly Buffer[];
  readonly agent: TestAgent;
}

const serialOf = (der: Buffer) => parseCertificate(der).serial.toString('hex');

async function attestFresh(sel = SEL, a: { platform?: string; grants?: string[] } = {}): Promise<Held & { result: IssuedResult }> {
  const agent = newAgent();
  const result = await w.attest(agent, { sel, ...a });
  return { chain: result.svidChain, agent, result };
}

interface RenewOpts {
  /** The key the hello names (default: the held key). */
  readonly next?: TestAgent;
  readonly grants?: readonly string[];
  readonly jwtAudiences?: readonly string[];
  /** Replaces the evidence payload, given the challenge nonce and the hello's key. */
  readonly payload?: (nonce: Buffer, next: TestAgent) => Buffer;
}

async function renew(held: Held, o: RenewOpts = {}): Promise<IssuedResult> {
  const next = o.next ?? held.agent;
  const { handshake, challenge } = await w.issuer.begin({
    evidenceType: 'x509_svid',
    publicKey: next.spki,
    csr: EMPTY,
    grants: o.grants ?? [],
    jwtAudiences: o.jwtAudiences ?? [],
  });
  const nonce = nonceOf(challenge);
  const payload = o.payload
    ? o.payload(nonce, next)
    : encodeRenewalEvidence({ chain: held.chain, signature: signRenewalWith(held.agent.key, nonce, next.spki) });
  const step = await handshake.respond(payload, signKeyProofWith(next.key, nonce));
  if (step.kind !== 'result') throw new Error('renewal asked for another round');
  return step.result;
}

const heldAfter = (r: IssuedResult, agent: TestAgent): Held => ({ chain: r.svidChain, agent });

/** Runs `f` and checks that it issued nothing and left every attested agent's record as it was. */
async function refusedUnchanged<T>(held: Held, f: () => Promise<T>): Promise<T> {
  const issued = await w.store.countIssued();
  const before = await w.store.getAttestedAgentBySerial(serialOf(held.chain[0]!));
  const out = await f();
  expect(await w.store.countIssued()).toBe(issued);
  expect(await w.store.getAttestedAgentBySerial(serialOf(held.chain[0]!))).toEqual(before);
  return out;
}

describe('x509_svid renewal: what succeeds', () => {
  it('renews with the same key, then with a new key, each time under the original identity, selectors and evidence type', async () => {
    const entry = await w.register('/agent/a', SEL);
    const first = await attestFresh(SEL, { platform: 'fake:host:h1' });
    const rec0 = (await w.store.getAttestedAgentBySerial(serialOf(first.chain[0]!)))!;
    expect(rec0).toMatchObject({ spiffeId: 'spiffe://example.org/agent/a', entryId: entry.id, evidenceType: 'fake', platform: 'fake:host:h1', renewals: 0 });

    w.clock.advance(30 * 60_000);
    const r1 = await renew(first);
    expect(r1.spiffeId).toBe('spiffe://example.org/agent/a');
    expect(r1.selectors).toEqual([{ type: 'fake', value: 'workload:a' }]);
    expect(serialOf(r1.svidChain[0]!)).not.toBe(serialOf(first.chain[0]!));
    expect(parseCertificate(r1.svidChain[0]!).spki.equals(first.agent.spki)).toBe(true);
    const rec1 = (await w.store.getAttestedAgentBySerial(serialOf(r1.svidChain[0]!)))!;
    expect(rec1).toMatchObject({ id: rec0.id, evidenceType: 'fake', platform: 'fake:host:h1', renewals: 1, renewedAt: w.clock.now().getTime() });

    const fresh = newAgent();
    const r2 = await renew(heldAfter(r1, first.agent), { next: fresh, jwtAudiences: ['https://rp.example.com'] });
    expect(parseCertificate(r2.svidChain[0]!).spki.equals(fresh.spki)).toBe(true);
    expect(r2.jwtSvids.map((j) => j.audience)).toEqual(['https://rp.example.com']);
    const rec2 = (await w.store.getAttestedAgentBySerial(serialOf(r2.svidChain[0]!)))!;
    expect(rec2).toMatchObject({ id: rec0.id, jkt: fresh.jkt, renewals: 2, selectors: rec0.selectors });
  });

  it('carries key residency over only when the renewal keeps the resident key', async () => {
    await w.register('/agent/a', SEL);
    const agent = newAgent();
    const first = await w.attest(agent, { evidence: { sel: SEL, resident: 'tpm' } });
    expect(parseCertificate(first.svidChain[0]!).keyResidency).toBe('tpm');
    const same = await renew({ chain: first.svidChain, agent });
    expect(parseCertificate(same.svidChain[0]!).keyResidency).toBe('tpm');
    const moved = await renew({ chain: same.svidChain, agent }, { next: newAgent() });
    expect(parseCertificate(moved.svidChain[0]!).keyResidency).toBeUndefined();
    expect((await w.store.getAttestedAgentBySerial(serialOf(moved.svidChain[0]!)))!.keyResidency).toBe('');
  });

  it('keeps authorities trusted after a CA rotation: an SVID of the retired intermediate renews, and the new one comes from the active one', async () => {
    await w.register('/agent/a', SEL);
    // Prepared at 12 h, active at 20 h (24 h CA lifetime): attest at 19.5 h, rotate at 20.1 h.
    w.clock.advance(19.5 * HOUR);
    await w.ca.rotate();
    const held = await attestFresh();
    w.clock.advance(0.6 * HOUR);
    expect(await w.ca.rotate()).toBe(true);
    const r = await renew(held);
    expect(r.svidChain[1]!.equals(held.chain[1]!)).toBe(false);
  });

  it('mints a writ on renewal within the task, naming the original evidence type and selectors (also to policy)', async () => {
    await w.register('/agent/a', SEL);
    // Policy sees the original evidence type: a rule about "x509_svid" never applies.
    await w.policies.push([
      {
        name: 'policy.cedar',
        text: `${POLICY}\n@id("no-renewal-type")\nforbid(principal, action == Writ::Action::"receive", resource) when { principal.evidenceType == "x509_svid" };\n`,
      },
    ]);
    const agent = newAgent();
    const created = await w.grants.create(w.grantRequest(agent, { ttlSeconds: 3600 }));
    const first = await w.attest(agent, { sel: SEL, grants: [created.grant] });
    w.clock.advance(40 * 60_000);
    const r = await renew({ chain: first.svidChain, agent }, { grants: [created.grant] });
    const c = parseWrit(r.writ!).claims;
    expect(c.att.type).toBe('fake');
    expect(c.att.sel).toEqual(SEL);
    expect(c.att.ev).toBeUndefined(); // the original evidence signed another binding digest
    // nonce and ev_sha256 are the renewal handshake's: the writ says it was renewed, and from which SVID.
    const replaced = new X509Certificate(first.svidChain[0]!).serialNumber.toLowerCase();
    expect(c.att.renewed).toEqual({ via: 'x509_svid', serial: replaced });
    expect(parseWrit(first.writ!).claims.att.renewed).toBeUndefined();
    expect(c.exp).toBeLessThanOrEqual(c.task.exp);
    expect(c.cnf.jkt).toBe(agent.jkt);
    expect((await w.store.getWrit(c.jti))!.evidenceType).toBe('fake');
  });
});

describe('x509_svid renewal: mutated twins that must be refused', () => {
  let held: Held;
  beforeEach(async () => {
    await w.register('/agent/a', SEL);
    held = await attestFresh();
  });

  it('refuses an expired SVID', async () => {
    w.clock.advance(HOUR + 1);
    await refusedUnchanged(held, () => expectWritError(renew(held), 'ERR_SVID_RENEWAL_INVALID', /current time is after notAfter/));
  });

  it('refuses a superseded SVID: renewing twice with the same one', async () => {
    const r = await renew(held);
    expect(r.spiffeId).toBe('spiffe://example.org/agent/a');
    await expectWritError(renew(held), 'ERR_SVID_SUPERSEDED', /is not the latest one issued to its agent/);
    // The thief's copy is dead, and the holder of the latest one still renews.
    await renew(heldAfter(r, held.agent));
  });

  it('refuses the loser of two renewals from one SVID inside the issuance transaction (the conditional update)', async () => {
    const rec = (await w.store.getAttestedAgentBySerial(serialOf(held.chain[0]!)))!;
    await renew(held);
    const renewal = { agentId: rec.id, serial: rec.serial, evidenceType: 'fake', entryId: rec.entryId };
    const svid = { spiffeId: rec.spiffeId, entryId: rec.entryId, evidenceType: 'fake', serial: '7f01', jkt: 'j', expiresAt: 1, issuedAt: 1 };
    await expectWritError(
      w.store.transaction((tx) => recordAttestedAgent(tx, { selectors: [], evidenceDigest: Buffer.alloc(32), renewal }, svid)),
      'ERR_SVID_SUPERSEDED',
      /renewed by another handshake first/,
    );
  });

  /** A root for `td` and a leaf with the agent's key under it, valid now on the world's clock. */
  const foreign = (td: string, id: string) => {
    const valid = { notBefore: new Date(w.clock.now().getTime() - HOUR), notAfter: new Date(w.clock.now().getTime() + HOUR) };
    const root = makeCert({ subjectCn: `root ${td}`, ca: true, uris: [`spiffe://${td}`], ...valid });
    const leaf = makeCert({ subjectCn: 'leaf', issuer: root, uris: [id], key: { privateKey: held.agent.key, spki: held.agent.spki }, ...valid });
    return { root, leaf, valid };
  };

  it('refuses an SVID from another CA, and a self-signed leaf, naming the same SPIFFE ID', async () => {
    const other = foreign('example.org', 'spiffe://example.org/agent/a');
    await expectWritError(renew({ chain: [other.leaf.der], agent: held.agent }), 'ERR_SVID_RENEWAL_INVALID', /not a valid X.509-SVID of example.org: .*/);
    const self = makeCert({
      subjectCn: 'self',
      uris: ['spiffe://example.org/agent/a'],
      key: { privateKey: held.agent.key, spki: held.agent.spki },
      ...other.valid,
    });
    await expectWritError(renew({ chain: [self.der], agent: held.agent }), 'ERR_SVID_RENEWAL_INVALID', /signed by unknown authority/);
    // Our own leaf behind a foreign intermediate does not verify either.
    await expectWritError(renew({ chain: [held.chain[0]!, other.root.der], agent: held.agent }), 'ERR_SVID_RENEWAL_INVALID', /signed by unknown authority/);
  });

  it('refuses an SVID of another trust domain', async () => {
    const other = foreign('evil.example', 'spiffe://evil.example/agent/a');
    await expectWritError(
      renew({ chain: [other.leaf.der], agent: held.agent }),
      'ERR_SVID_RENEWAL_INVALID',
      /no X.509 bundle found for trust domain: "evil.example"/,
    );
  });

  it('refuses a signature by another key than the SVID’s', async () => {
    const thief = newAgent();
    await refusedUnchanged(held, () =>
      expectWritError(
        renew(held, { payload: (nonce, next) => encodeRenewalEvidence({ chain: held.chain, signature: signRenewalWith(thief.key, nonce, next.spki) }) }),
        'ERR_SVID_RENEWAL_INVALID',
        /signature is not the presented SVID key’s/,
      ),
    );
  });

  it('refuses a signature over another nonce (evidence replayed from an earlier handshake)', async () => {
    const earlier = Buffer.alloc(32, 1);
    await expectWritError(
      renew(held, { payload: (_nonce, next) => encodeRenewalEvidence({ chain: held.chain, signature: signRenewalWith(held.agent.key, earlier, next.spki) }) }),
      'ERR_SVID_RENEWAL_INVALID',
      /signature is not/,
    );
  });

  it('refuses a signature over another new key than the hello names', async () => {
    const other = newAgent();
    await expectWritError(
      renew(held, {
        next: newAgent(),
        payload: (nonce) => encodeRenewalEvidence({ chain: held.chain, signature: signRenewalWith(held.agent.key, nonce, other.spki) }),
      }),
      'ERR_SVID_RENEWAL_INVALID',
      /signature is not/,
    );
  });

  it('refuses a signature without the domain-separation label, and a key proof passed off as one', async () => {
    const unlabelled = (nonce: Buffer, next: TestAgent) =>
      sign('sha256', renewalMessage(nonce, next.spki).subarray(RENEWAL_CONTEXT.length + 1), { key: held.agent.key, dsaEncoding: 'ieee-p1363' });
    await expectWritError(
      renew(held, { payload: (nonce, next) => encodeRenewalEvidence({ chain: held.chain, signature: unlabelled(nonce, next) }) }),
      'ERR_SVID_RENEWAL_INVALID',
      /signature is not/,
    );
    // The key proof the old key would make in a handshake of its own is no renewal signature.
    const proof = (nonce: Buffer) => sign('sha256', keyProofMessage(nonce), { key: held.agent.key, dsaEncoding: 'ieee-p1363' });
    await expectWritError(
      renew(held, { payload: (nonce) => encodeRenewalEvidence({ chain: held.chain, signature: proof(nonce) }) }),
      'ERR_SVID_RENEWAL_INVALID',
      /signature is not/,
    );
  });

  it('refuses a signature with another algorithm than the key type fixes (DER ECDSA, SHA-384)', async () => {
    for (const opts of [
      { hash: 'sha256', dsaEncoding: 'der' as const },
      { hash: 'sha384', dsaEncoding: 'ieee-p1363' as const },
    ]) {
      await expectWritError(
        renew(held, {
          payload: (nonce, next) =>
            encodeRenewalEvidence({
              chain: held.chain,
              signature: sign(opts.hash, renewalMessage(nonce, next.spki), { key: held.agent.key, dsaEncoding: opts.dsaEncoding }),
            }),
        }),
        'ERR_SVID_RENEWAL_INVALID',
        /signature is not/,
      );
    }
  });

  it('refuses when the registration entry was deleted', async () => {
    const rec = (await w.store.getAttestedAgentBySerial(serialOf(held.chain[0]!)))!;
    await w.admin.deleteEntry(rec.entryId);
    await expectWritError(renew(held), 'ERR_NO_MATCHING_ENTRY', /no longer exists/);
  });

  it('refuses when the entry was deleted and made again for the same SPIFFE ID (the record names the one issued under)', async () => {
    const rec = (await w.store.getAttestedAgentBySerial(serialOf(held.chain[0]!)))!;
    await w.admin.deleteEntry(rec.entryId);
    await w.register('/agent/a', SEL);
    await expectWritError(renew(held), 'ERR_NO_MATCHING_ENTRY', /no longer exists/);
  });

  it('refuses when the recorded selectors now match another, more specific entry (a renewal never changes the identity)', async () => {
    const two = await attestFresh([...SEL, 'fake:host:h1']);
    const first = (await w.store.getAttestedAgentBySerial(serialOf(two.chain[0]!)))!;
    const narrower = await w.register('/agent/a/on-h1', [...SEL, 'fake:host:h1']);
    await refusedUnchanged(two, () =>
      expectWritError(renew(two), 'ERR_NO_MATCHING_ENTRY', `the recorded selectors now match entry ${narrower.id}, not ${first.entryId}`),
    );
  });

  it('refuses when the record of that serial names another key or SPIFFE ID (defence in depth against a serial collision)', async () => {
    const rec = (await w.store.getAttestedAgentBySerial(serialOf(held.chain[0]!)))!;
    for (const changed of [{ jkt: newAgent().jkt }, { spiffeId: 'spiffe://example.org/agent/other' }]) {
      await w.store.pruneAttestedAgents(Number.MAX_SAFE_INTEGER);
      await w.store.putAttestedAgent({ ...rec, ...changed });
      await expectWritError(renew(held), 'ERR_SVID_SUPERSEDED', /is not the latest one issued to its agent/);
    }
  });

  it('refuses a revoked SPIFFE ID', async () => {
    await w.revocations.revoke('agent', 'spiffe://example.org/agent/a', 'compromised', OPERATOR);
    await refusedUnchanged(held, () => expectWritError(renew(held), 'ERR_REVOKED', /agent spiffe:\/\/example.org\/agent\/a is revoked/));
  });

  it('refuses a revoked SVID key (checked inside the issuance transaction), also when the renewal asks for a new key', async () => {
    // Known to the operator API by its attested-agent record: this agent never held a writ.
    await w.revocations.revoke('key', held.agent.jkt, 'stolen', OPERATOR);
    await expectWritError(renew(held), 'ERR_REVOKED', /is revoked/);
    await expectWritError(renew(held, { next: newAgent() }), 'ERR_REVOKED', new RegExp(`key ${held.agent.jkt} of the presented X.509-SVID is revoked`));
  });

  it('refuses a revoked platform recorded at the original attestation', async () => {
    const onHost = await attestFresh(SEL, { platform: 'fake:host:h9' });
    await w.revocations.revoke('platform', 'fake:host:h9', 'decommissioned', OPERATOR);
    await expectWritError(renew(onHost), 'ERR_REVOKED', /platform fake:host:h9 is revoked/);
  });

  it('refuses an identity whose original evidence type must bring fresh evidence, and by default every type but join_token', async () => {
    policy.requireFreshEvidence = ['fake'];
    await refusedUnchanged(held, () =>
      expectWritError(renew(held), 'ERR_FRESH_EVIDENCE_REQUIRED', /attested with fake must attest again with fresh fake evidence/),
    );
    delete policy.requireFreshEvidence;
    await expectWritError(renew(held), 'ERR_FRESH_EVIDENCE_REQUIRED', /fresh fake evidence/);
  });

  it('refuses a truncated payload, an oversized one, unknown members, a missing signature and non-canonical base64', async () => {
    const good = (nonce: Buffer, next: TestAgent) => encodeRenewalEvidence({ chain: held.chain, signature: signRenewalWith(held.agent.key, nonce, next.spki) });
    await expectWritError(renew(held, { payload: (n, k) => good(n, k).subarray(0, 100) }), 'ERR_SVID_RENEWAL_INVALID', /not strict JSON/);
    await expectWritError(renew(held, { payload: () => Buffer.alloc(MAX_X509_SVID_EVIDENCE_BYTES + 1, 0x20) }), 'ERR_LIMIT_EXCEEDED', /exceeds/);
    const withMember = (n: Buffer, k: TestAgent) => Buffer.from(JSON.stringify({ ...JSON.parse(good(n, k).toString()), alg: 'none' }));
    await expectWritError(renew(held, { payload: withMember }), 'ERR_SVID_RENEWAL_INVALID', /unknown members alg/);
    await expectWritError(
      renew(held, { payload: () => Buffer.from(JSON.stringify({ x5c: held.chain.map((c) => c.toString('base64')) })) }),
      'ERR_SVID_RENEWAL_INVALID',
      /signature is missing/,
    );
    await expectWritError(
      renew(held, {
        payload: (n, k) =>
          Buffer.from(
            JSON.stringify({ x5c: held.chain.map((c) => c.toString('base64url')), signature: signRenewalWith(held.agent.key, n, k.spki).toString('base64') }),
          ),
      }),
      'ERR_SVID_RENEWAL_INVALID',
      /standard base64/,
    );
  });
});

describe('x509_svid evidence and settings', () => {
  it('signs exactly "writ-x509-svid-renewal-v1" ‖ 0 ‖ nonce ‖ SHA-256(new SPKI)', () => {
    const nonce = Buffer.alloc(32, 0xab);
    const spki = Buffer.from('spki');
    expect(renewalMessage(nonce, spki)).toEqual(
      Buffer.concat([Buffer.from('writ-x509-svid-renewal-v1'), Buffer.from([0]), nonce, createHash('sha256').update(spki).digest()]),
    );
    expect(() => renewalMessage(Buffer.alloc(31), spki)).toThrow(/32 bytes/);
  });

  it('parses what it encodes, and refuses empty and too long chains, duplicate members, and trailing bytes', () => {
    const chain = [Buffer.from([0x30, 1, 2]), Buffer.from([0x30, 3])];
    const ev = encodeRenewalEvidence({ chain, signature: Buffer.from([9, 9]) });
    expect(parseRenewalEvidence(ev)).toEqual({ chain, signature: Buffer.from([9, 9]) });
    const bad = (text: string, msg: RegExp) => expectWritError(() => parseRenewalEvidence(Buffer.from(text)), 'ERR_SVID_RENEWAL_INVALID', msg);
    return Promise.all([
      bad('{"x5c":[],"signature":"AA=="}', /x5c must be a list of 1..8/),
      bad(`{"x5c":[${Array(9).fill('"MAE="').join(',')}],"signature":"AA=="}`, /x5c must be a list of 1..8/),
      bad('{"x5c":["MAE="],"x5c":["MAE="],"signature":"AA=="}', /not strict JSON/),
      bad('{"x5c":["MAE="],"signature":"AA=="} x', /not strict JSON/),
      bad('{"x5c":["MAF="],"signature":"AA=="}', /canonical base64/),
      bad('{"x5c":[""],"signature":"AA=="}', /must be 1..8192 bytes/),
    ]);
  });

  it('reads require_fresh_evidence, and refuses names that are not evidence types', () => {
    const parse = (raw: Record<string, unknown>) => {
      const problems: string[] = [];
      const s = x509SvidPlugin.settings(Section.of('attestation.x509_svid', raw, problems));
      return { s, problems };
    };
    expect(parse({})).toEqual({ s: {}, problems: [] });
    expect(parse({ require_fresh_evidence: ['tpm', 'tpm', 'join_token'] })).toEqual({ s: { requireFreshEvidence: ['tpm', 'join_token'] }, problems: [] });
    expect(parse({ require_fresh_evidence: [] })).toEqual({ s: { requireFreshEvidence: [] }, problems: [] });
    expect(parse({ require_fresh_evidence: ['TPM'] }).problems).toEqual(['attestation.x509_svid.require_fresh_evidence: "TPM" is not an evidence type name']);
    expect(parse({ require_fresh_evidence: ['x509_svid'] }).problems[0]).toMatch(/never the evidence an identity was first attested with/);
    expect(parse({ require_fresh_evidence: 'tpm' }).problems).toEqual(['attestation.x509_svid.require_fresh_evidence must be a list of strings']);
    expect(parse({ other: 1 }).problems).toEqual(['unknown key attestation.x509_svid.other']);
  });

  it('fails closed when the issuer gives it no trust bundle', async () => {
    const v = x509SvidVerifier({ store: w.store, settings: {} });
    const agent = newAgent();
    const s = await v.begin({ nonce: Buffer.alloc(32), agentKey: { key: createPublicKey(agent.key), spki: agent.spki } as never, now: w.clock.now() });
    const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const leaf = makeCert({ subjectCn: 'x', uris: ['spiffe://example.org/a'] });
    await expectWritError(
      s.respond(encodeRenewalEvidence({ chain: [leaf.der], signature: signRenewalWith(k, Buffer.alloc(32), agent.spki) })),
      'ERR_SVID_RENEWAL_INVALID',
      /no X.509 trust bundle/,
    );
  });
});
