/**
 * Platform revocation on real TPM evidence (swtpm): an agent attested by its TPM delegates two
 * hops to join-token agents; revoking the TPM (by EK hash) kills all three writs, which the
 * issuer publishes as writ revocations (a writ names its selectors, not its descendants'), and
 * the TPM can attest for nothing any more, with or without a grant chain.
 */
import { createHash, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, GrpcCallError } from '../../src/agent/attest-client.js';
import { createGrant, verifyRemote } from '../../src/agent/grant-client.js';
import { TpmAttestor } from '../../src/attestation/tpm/attestor.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { delegateGrant } from '../../src/delegation/grant.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { createProof } from '../../src/writ/proof.js';
import { parseWrit } from '../../src/writ/writ.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';
import { HAVE_SWTPM, startSwtpm, type Swtpm } from '../helpers/swtpm.js';

const AUD = 'spiffe://example.org/tool/github';

describe.skipIf(!HAVE_SWTPM)('platform revocation (swtpm)', () => {
  let tpm: Swtpm;
  let oidc: TestOidc;
  let s: Awaited<ReturnType<typeof startServer>>;
  let ekHash: string;

  beforeAll(async () => {
    tpm = await startSwtpm();
    oidc = await startOidc();
    s = await startServer({
      principals: [{ issuer: oidc.issuer, audience: 'writ' }],
      attestation: { tpm: { manufacturer_roots: [tpm.rootPem], intermediates: [tpm.intermediatePem], pcr_selection: 'sha256:0,1,2,3,7' } },
    });
    const t = await tpm.open();
    const cert = new X509Certificate(await t.nvRead(0x01c00002));
    await t.close();
    ekHash = createHash('sha256')
      .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex');
    await adminClients(s.adminSocket).admin.createEntry({
      entry: { spiffeId: 'spiffe://example.org/agent/planner', selectors: [{ type: 'tpm', value: `ek_hash:${ekHash}` }] },
    });
    await adminClients(s.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
  }, 90_000);

  afterAll(async () => {
    await s?.stop();
    await oidc?.stop();
    await tpm?.stop();
  });

  const newKey = () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    return { key, jkt: jwkThumbprint(createPublicKey(key)) };
  };

  async function onTpm(key: KeyObject, grants: string[]) {
    const t = await tpm.open();
    const attestor = new TpmAttestor(t, {});
    try {
      return await attest({ server: s.address, bundlePem: s.bundlePem, evidenceType: 'tpm', key, respond: (c) => attestor.respond(c), grants });
    } finally {
      await attestor.close();
      await t.close();
    }
  }

  async function onJoinToken(path: string, key: KeyObject, grants: string[]) {
    const tok = await adminClients(s.adminSocket).admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org${path}` });
    return attest({ server: s.address, bundlePem: s.bundlePem, evidenceType: 'join_token', key, respond: () => Buffer.from(tok.token), grants });
  }

  const rootGrant = (jkt: string, taskId: string) =>
    createGrant(s.address, s.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId,
      goal: 'triage',
      ttlSeconds: 1800,
      scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
      maxDepth: 2,
      delegateJkt: jkt,
    });

  it('revoking the TPM by EK hash kills its writ and the two hops below; the TPM attests for nothing afterwards', async () => {
    const [A, B, C] = [newKey(), newKey(), newKey()];
    const root = await rootGrant(A.jkt, 'tpm-task-1');
    const a = parseWrit((await onTpm(A.key, [root.grant])).writ!).claims;
    expect(a.att.sel).toContain(`tpm:ek_hash:${ekHash}`);
    const now = Math.floor(Date.now() / 1000);
    const g1 = delegateGrant(root.grant, A.key, { childJkt: B.jkt, now, from: { sub: a.sub, writ: a.jti } });
    const b = parseWrit((await onJoinToken('/agent/b', B.key, [root.grant, g1])).writ!).claims;
    const g2 = delegateGrant(g1, B.key, { childJkt: C.jkt, now, from: { sub: b.sub, writ: b.jti } });
    const cWrit = (await onJoinToken('/agent/c', C.key, [root.grant, g1, g2])).writ!;
    const verifyC = () =>
      verifyRemote(s.address, s.bundlePem, {
        writ: cWrit,
        proof: createProof(cWrit, C.key, { audience: AUD, method: 'GET /', now: new Date() }),
        audience: AUD,
      });
    expect((await verifyC()).valid).toBe(true);

    const r = await adminClients(s.adminSocket).revocation.revoke({ kind: 'platform', target: `tpm:ek_hash:${ekHash}`, reason: 'TPM stolen' });
    expect(r.writs).toBe(3);
    const v = await verifyC();
    expect(v.valid).toBe(false);
    expect(v.errorCode).toBe('ERR_WRIT_REVOKED');
    expect(v.error).toContain(`writ ${a.jti} revoked by operator: TPM stolen`);

    const refusals: GrpcCallError[] = [];
    for (const p of [onTpm(newKey().key, []), onTpm(A.key, [(await rootGrant(A.jkt, 'tpm-task-2')).grant])]) {
      await p.then(
        () => expect.fail('a revoked platform attested'),
        (e: unknown) => refusals.push(e as GrpcCallError),
      );
    }
    for (const e of refusals) {
      expect(e).toBeInstanceOf(GrpcCallError);
      expect(e.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(e.writCode).toBe('ERR_REVOKED');
      expect(e.message).toContain(`platform tpm:ek_hash:${ekHash} is revoked (by operator: TPM stolen)`);
    }
  }, 120_000);
});

describe.skipIf(!HAVE_SWTPM)('platform revocation of a TPM that only received plain SVIDs (swtpm)', () => {
  let tpm: Swtpm;
  let s: Awaited<ReturnType<typeof startServer>>;
  let ekHash: string;

  beforeAll(async () => {
    tpm = await startSwtpm();
    s = await startServer({
      attestation: { tpm: { manufacturer_roots: [tpm.rootPem], intermediates: [tpm.intermediatePem], pcr_selection: 'sha256:0,1,2,3,7' } },
    });
    const t = await tpm.open();
    const cert = new X509Certificate(await t.nvRead(0x01c00002));
    await t.close();
    ekHash = createHash('sha256')
      .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex');
    await adminClients(s.adminSocket).admin.createEntry({
      entry: { spiffeId: 'spiffe://example.org/agent/svid-only', selectors: [{ type: 'tpm', value: `ek_hash:${ekHash}` }] },
    });
  }, 90_000);

  afterAll(async () => {
    await s?.stop();
    await tpm?.stop();
  });

  async function onTpm() {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const t = await tpm.open();
    const attestor = new TpmAttestor(t, {});
    try {
      return await attest({ server: s.address, bundlePem: s.bundlePem, evidenceType: 'tpm', key, respond: (c) => attestor.respond(c), grants: [] });
    } finally {
      await attestor.close();
      await t.close();
    }
  }

  it('is known by its endorsement: revoked (not NOT_FOUND, review finding 8), it attests for nothing afterwards', async () => {
    expect((await onTpm()).writ).toBeFalsy();
    const r = await adminClients(s.adminSocket).revocation.revoke({ kind: 'platform', target: `tpm:ek_hash:${ekHash}`, reason: 'TPM stolen' });
    expect(r.writs).toBe(0);
    expect(r.sequence).toBeGreaterThan(0n);
    const e = await onTpm().then(
      () => expect.fail('a revoked platform attested'),
      (err: unknown) => err as GrpcCallError,
    );
    expect(e.writCode).toBe('ERR_REVOKED');
    expect(e.message).toContain(`platform tpm:ek_hash:${ekHash} is revoked (by operator: TPM stolen)`);
    // A TPM the issuer never saw is still NOT_FOUND.
    const unknown = await adminClients(s.adminSocket)
      .revocation.revoke({ kind: 'platform', target: `tpm:ek_hash:${'0'.repeat(64)}`, reason: '' })
      .then(
        () => expect.fail('revoked an unknown TPM'),
        (err: unknown) => err as GrpcCallError,
      );
    expect(unknown.writCode).toBe('ERR_REVOCATION_NOT_FOUND');
  }, 120_000);
});
