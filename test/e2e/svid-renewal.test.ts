/**
 * Renewal by X.509-SVID end to end: a real issuer on 127.0.0.1:0, the real agent-side
 * `renewWithSvid` over gRPC and TLS, join tokens from the admin socket, a root grant from a real
 * OIDC provider. An agent attests once with a join token (which cannot be shown twice), then
 * renews twice by SVID (same key, then a new key), with a writ and JWT-SVIDs; every refusal is a
 * mutated twin of those renewals and is checked by its gRPC status and writ error code.
 */
import { createPublicKey, sign as cryptoSign, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, GrpcCallError, type AttestOutcome } from '../../src/agent/attest-client.js';
import { createGrant } from '../../src/agent/grant-client.js';
import { renewWithSvid } from '../../src/agent/renew.js';
import {
  MAX_X509_SVID_EVIDENCE_BYTES,
  RENEWAL_CONTEXT,
  encodeRenewalEvidence,
  renewalMessage,
  signRenewalWith,
} from '../../src/attestation/x509-svid/evidence.js';
import { parseRecord } from '../../src/audit/record.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { ManualClock } from '../../src/clock.js';
import { jwkThumbprint, keySigner } from '../../src/jose/jws.js';
import { BundleSet, parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { validateJwtSvid } from '../../src/svid/jwt-svid.js';
import { verifyX509Svid } from '../../src/svid/x509-svid.js';
import { parseCertificate } from '../../src/x509/certificate.js';
import { parseWrit } from '../../src/writ/writ.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { revokeAsOperator } from '../helpers/revocation.js';
import { startServer } from '../helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;
let s: Started;
/** A second issuer (another CA) that requires fresh evidence from join-token identities. */
let strict: Started;
let oidc: TestOidc;
const clock = new ManualClock(Date.now());

beforeAll(async () => {
  oidc = await startOidc();
  s = await startServer({ principals: [{ issuer: oidc.issuer, audience: 'writ' }], svid: { x509_ttl: '1h' } }, { clock });
  await adminClients(s.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
  strict = await startServer({ attestation: { x509_svid: { require_fresh_evidence: ['join_token'] } } });
});
afterAll(async () => {
  await s?.stop();
  await strict?.stop();
  await oidc?.stop();
});

const newKey = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const spki = (k: KeyObject) => createPublicKey(k).export({ type: 'spki', format: 'der' });
const serialOf = (der: Buffer) => parseCertificate(der).serial.toString('hex');

/** An agent attested once with a join token on `on`. */
async function joined(on: Started, path: string, o: { grants?: string[] } = {}) {
  const tok = await adminClients(on.adminSocket).admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org${path}` });
  const key = newKey();
  const outcome = await attest({
    server: on.address,
    bundlePem: on.bundlePem,
    evidenceType: 'join_token',
    key,
    respond: () => Buffer.from(tok.token),
    grants: o.grants ?? [],
  });
  return { key, outcome, entryId: tok.entryId };
}

/** The refusal of a call, as the sidecar sees it. */
async function refusal(p: Promise<unknown>): Promise<GrpcCallError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'expected the issuer to refuse').toBeInstanceOf(GrpcCallError);
  return e as GrpcCallError;
}

const renewOn = (on: Started, current: { outcome: AttestOutcome; key: KeyObject }, o: Partial<Parameters<typeof renewWithSvid>[0]> = {}) =>
  renewWithSvid({ server: on.address, bundlePem: on.bundlePem, current: { svidChain: current.outcome.svidChain, signer: current.key }, ...o });

describe('renewal by X.509-SVID (real issuer)', () => {
  it('attests with a join token, then renews twice by SVID (same key, then a new key), with a writ and JWT-SVIDs, audited', async () => {
    const agentKey = newKey();
    const root = await createGrant(s.address, s.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: 'renew-1',
      goal: 'triage the open issues of acme/widgets',
      ttlSeconds: 1800,
      scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
      boundaries: [],
      maxDepth: 2,
      delegateJkt: jwkThumbprint(createPublicKey(agentKey)),
    });
    const tok = await adminClients(s.adminSocket).admin.createJoinToken({ ttl: 600, spiffeId: 'spiffe://example.org/agent/renewer' });
    const first = await attest({
      server: s.address,
      bundlePem: s.bundlePem,
      evidenceType: 'join_token',
      key: agentKey,
      respond: () => Buffer.from(tok.token),
      grants: [root.grant],
    });
    const bundles = new BundleSet([parseSpiffeBundle('example.org', first.bundleJwks)]);

    // 1: the same key, a writ within the task, and a JWT-SVID for an audience not asked before.
    clock.advance(20 * 60_000);
    const r1 = await renewWithSvid({
      server: s.address,
      bundlePem: s.bundlePem,
      current: { svidChain: first.svidChain, signer: agentKey },
      grants: [root.grant],
      jwtAudiences: ['https://rp.example'],
    });
    expect(r1.spiffeId).toBe('spiffe://example.org/agent/renewer');
    expect(verifyX509Svid(r1.svidChain, bundles, clock.now()).id.uri).toBe(r1.spiffeId);
    expect(serialOf(r1.svidChain[0]!)).not.toBe(serialOf(first.svidChain[0]!));
    expect(validateJwtSvid(r1.jwtSvids[0]!.token, bundles, ['https://rp.example'], clock.now()).id.uri).toBe(r1.spiffeId);
    const w1 = parseWrit(r1.writ!).claims;
    expect(w1.att.type).toBe('join_token');
    expect(w1.att.sel).toEqual([tok.selector]);
    expect(w1.exp).toBeLessThanOrEqual(w1.task.exp);
    expect(w1.svid['x5t#S256']).toBeDefined();

    // 2: a new key, held behind a signer (as a TPM-resident key is), and no grants.
    const nextKey = newKey();
    const r2 = await renewWithSvid({
      server: s.address,
      bundlePem: s.bundlePem,
      current: { svidChain: r1.svidChain, signer: keySigner(agentKey) },
      newKey: keySigner(nextKey),
    });
    expect(new X509Certificate(r2.svidChain[0]!).publicKey.export({ type: 'spki', format: 'der' }).equals(spki(nextKey))).toBe(true);
    expect(r2.writ).toBeUndefined();

    // The superseded SVIDs are dead: the first, and the one renewed in step 2.
    for (const old of [first.svidChain, r1.svidChain]) {
      const e = await refusal(renewWithSvid({ server: s.address, bundlePem: s.bundlePem, current: { svidChain: old, signer: agentKey } }));
      expect([e.code, e.writCode]).toEqual([grpc.status.PERMISSION_DENIED, 'ERR_SVID_SUPERSEDED']);
      expect(e.details).toMatch(/is not the latest one issued to its agent/);
    }

    const rec = (await s.server.store.getAttestedAgentBySerial(serialOf(r2.svidChain[0]!)))!;
    expect(rec).toMatchObject({ evidenceType: 'join_token', renewals: 2, jkt: jwkThumbprint(createPublicKey(nextKey)) });
    const audit = (await s.server.store.listAuditRecords(0, 1000)).map((r) => parseRecord(r.canonical));
    const renewals = audit.filter((r) => r.event === 'handshake.issued' && r.resource?.startsWith('x509-svid:'));
    expect(renewals.map((r) => r.resource)).toEqual([`x509-svid:${serialOf(first.svidChain[0]!)}`, `x509-svid:${serialOf(r1.svidChain[0]!)}`]);
    expect(renewals[0]!.task).toBe('renew-1');
    // The writ minted on a renewal has its own record, beside the handshake's.
    const writs = audit.filter((r) => r.event === 'writ.issued' && r.task === 'renew-1');
    expect(writs.flatMap((r) => r.created)).toContain(w1.jti);
  });

  it('refuses an SVID from another CA', async () => {
    const theirs = await joined(strict, '/agent/elsewhere');
    const e = await refusal(renewWithSvid({ server: s.address, bundlePem: s.bundlePem, current: { svidChain: theirs.outcome.svidChain, signer: theirs.key } }));
    expect([e.code, e.writCode]).toEqual([grpc.status.PERMISSION_DENIED, 'ERR_SVID_RENEWAL_INVALID']);
    // Evidence failures say little to the caller (the log has the reason).
    expect(e.details).toMatch(/^attestation failed: renewal evidence rejected \(the server log has the reason under request id [0-9a-f]+\)$/);
  });

  it('refuses an identity whose evidence type the issuer requires fresh evidence from', async () => {
    const a = await joined(strict, '/agent/strict');
    const e = await refusal(renewOn(strict, a));
    expect([e.code, e.writCode]).toEqual([grpc.status.FAILED_PRECONDITION, 'ERR_FRESH_EVIDENCE_REQUIRED']);
    expect(e.details).toMatch(/identities attested with join_token must attest again with fresh join_token evidence/);
  });

  it('refuses a revoked SPIFFE ID, and keeps refusing with a new key', async () => {
    const a = await joined(s, '/agent/revoked');
    await revokeAsOperator(s.adminSocket, 'agent', 'spiffe://example.org/agent/revoked', 'compromised');
    for (const newKeyOpt of [{}, { newKey: newKey() }]) {
      const e = await refusal(renewOn(s, a, newKeyOpt));
      expect([e.code, e.writCode]).toEqual([grpc.status.PERMISSION_DENIED, 'ERR_REVOKED']);
    }
  });

  it('refuses a revoked key of an agent that never held a writ (the operator knows it by its attested-agent record)', async () => {
    const a = await joined(s, '/agent/revoked-key');
    await revokeAsOperator(s.adminSocket, 'key', jwkThumbprint(createPublicKey(a.key)), 'stolen');
    const e = await refusal(renewOn(s, a, { newKey: newKey() }));
    expect([e.code, e.writCode]).toEqual([grpc.status.PERMISSION_DENIED, 'ERR_REVOKED']);
    expect(e.details).toMatch(/of the presented X.509-SVID is revoked/);
  });

  it('refuses when the registration entry was deleted', async () => {
    const a = await joined(s, '/agent/deleted');
    await adminClients(s.adminSocket).admin.deleteEntry({ id: a.entryId });
    const e = await refusal(renewOn(s, a));
    expect([e.code, e.writCode]).toEqual([grpc.status.PERMISSION_DENIED, 'ERR_NO_MATCHING_ENTRY']);
  });

  describe('evidence on the wire', () => {
    /** A raw x509_svid handshake for `a`'s SVID whose evidence `payload` makes from the challenge. */
    const raw = (a: { outcome: AttestOutcome; key: KeyObject }, payload: (nonce: Uint8Array, next: Buffer) => Buffer | Promise<Buffer>, next = a.key) =>
      attest({ server: s.address, bundlePem: s.bundlePem, evidenceType: 'x509_svid', key: next, respond: async (c) => payload(c.nonce, spki(next)) });
    const sign = (k: KeyObject, nonce: Uint8Array, next: Buffer) => signRenewalWith(k, nonce, next);

    it('is accepted as renewWithSvid builds it, so the twins below differ in one thing each', async () => {
      const a = await joined(s, '/agent/wire-ok');
      const r = await raw(a, (n, k) => encodeRenewalEvidence({ chain: a.outcome.svidChain, signature: sign(a.key, n, k) }));
      expect(r.spiffeId).toBe('spiffe://example.org/agent/wire-ok');
    });

    it('refuses a signature by another key, one over another handshake’s nonce (replay), and one without the label', async () => {
      const a = await joined(s, '/agent/wire-twins');
      // The evidence of a handshake the agent abandoned, replayed into a new one.
      let captured: Buffer | undefined;
      await expect(
        raw(a, (n, k) => {
          captured = encodeRenewalEvidence({ chain: a.outcome.svidChain, signature: sign(a.key, n, k) });
          throw new Error('abandoned');
        }),
      ).rejects.toThrow('abandoned');
      const unlabelled = (n: Uint8Array, k: Buffer) =>
        cryptoSign('sha256', renewalMessage(n, k).subarray(RENEWAL_CONTEXT.length + 1), { key: a.key, dsaEncoding: 'ieee-p1363' });
      for (const payload of [
        (n: Uint8Array, k: Buffer) => encodeRenewalEvidence({ chain: a.outcome.svidChain, signature: sign(newKey(), n, k) }),
        () => captured!,
        (n: Uint8Array, k: Buffer) => encodeRenewalEvidence({ chain: a.outcome.svidChain, signature: unlabelled(n, k) }),
      ]) {
        const e = await refusal(raw(a, payload));
        expect([e.code, e.writCode]).toEqual([grpc.status.PERMISSION_DENIED, 'ERR_SVID_RENEWAL_INVALID']);
      }
      // None of it used the SVID up: the agent still renews.
      expect((await renewOn(s, a)).spiffeId).toBe('spiffe://example.org/agent/wire-twins');
    });

    it('refuses a truncated payload and an oversized one', async () => {
      const a = await joined(s, '/agent/wire-size');
      const truncated = await refusal(raw(a, (n, k) => encodeRenewalEvidence({ chain: a.outcome.svidChain, signature: sign(a.key, n, k) }).subarray(0, 200)));
      expect([truncated.code, truncated.writCode]).toEqual([grpc.status.PERMISSION_DENIED, 'ERR_SVID_RENEWAL_INVALID']);
      const oversized = await refusal(raw(a, () => Buffer.alloc(MAX_X509_SVID_EVIDENCE_BYTES + 1, 0x20)));
      expect([oversized.code, oversized.writCode]).toEqual([grpc.status.RESOURCE_EXHAUSTED, 'ERR_LIMIT_EXCEEDED']);
    });
  });

  it('refuses a signer that is not the SVID’s key before contacting the issuer', async () => {
    const a = await joined(s, '/agent/wrong-key');
    await expect(renewWithSvid({ server: s.address, bundlePem: s.bundlePem, current: { svidChain: a.outcome.svidChain, signer: newKey() } })).rejects.toThrow(
      /not the key of the current X.509-SVID/,
    );
  });

  it('refuses an expired SVID (last: it moves the issuer’s clock past the SVID’s life)', async () => {
    const a = await joined(s, '/agent/expired');
    clock.advance(60 * 60_000 + 1_000);
    const e = await refusal(renewOn(s, a));
    expect([e.code, e.writCode]).toEqual([grpc.status.PERMISSION_DENIED, 'ERR_SVID_RENEWAL_INVALID']);
  });
});
