/**
 * An agent's Revoke proof is bound to the one target it revokes (review finding 4): its `htm` is
 * `writ.v1.RevocationService/Revoke <kind> <id>`. A proof for one grant revokes no other, even
 * where its one-time id is forgotten (after an issuer restart, on another replica); replayed for
 * the same grant it meets ALREADY_EXISTS. Before, the proof named only the RPC, and after a
 * restart a captured proof revoked a different grant the agent had signed.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { attest, type GrpcCallError } from '../../src/agent/attest-client.js';
import { createGrant, revokeRemote } from '../../src/agent/grant-client.js';
import { BUILTIN_EVIDENCE } from '../../src/attestation/builtins.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { delegateGrant } from '../../src/delegation/grant.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { REVOKE_METHOD, revokeMethod } from '../../src/writ/proof-methods.js';
import { WritServer } from '../../src/server/server.js';
import { serverSettings } from '../../src/server/settings.js';
import { createProof } from '../../src/writ/proof.js';
import { parseWrit } from '../../src/writ/writ.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';

const TD_ID = 'spiffe://example.org';
const newKey = () => {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  return { key, jkt: jwkThumbprint(createPublicKey(key)) };
};

const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected the call to be refused');
    },
    (e: GrpcCallError) => ({ code: e.code, writCode: e.writCode ?? '', message: e.message }),
  );

describe("an agent's Revoke proof", () => {
  let oidc: TestOidc | undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-revoke-proof-'));
  let server: WritServer | undefined;
  afterAll(async () => {
    await server?.stop();
    await oidc?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const start = async () => {
    const settings = serverSettings(
      { data_dir: dataDir, listen: '127.0.0.1:0', trust_domain: 'example.org', log_level: 'error', principals: [{ issuer: oidc!.issuer, audience: 'writ' }] },
      [],
      BUILTIN_EVIDENCE,
    );
    server = await WritServer.start(settings, { logger: pino({ level: 'silent' }), env: {} });
    return { address: server.address, bundlePem: readFileSync(server.bundlePemPath, 'utf8'), adminSocket: settings.adminSocket };
  };

  it('revokes exactly the target it names, before and after an issuer restart; replayed for it, ALREADY_EXISTS', async () => {
    oidc = await startOidc();
    let w = await start();
    const admin = adminClients(w.adminSocket).admin;
    await admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    const handshake = async (path: string, key: KeyObject, grants: string[]) => {
      const tok = await admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org${path}` });
      const res = await attest({ server: w.address, bundlePem: w.bundlePem, evidenceType: 'join_token', key, respond: () => Buffer.from(tok.token), grants });
      return parseWrit(res.writ!);
    };
    const [A, B, C1, C2] = [newKey(), newKey(), newKey(), newKey()];
    const root = await createGrant(w.address, w.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: `t-${randomBytes(3).toString('hex')}`,
      goal: 'g',
      ttlSeconds: 1800,
      scope: [{ action: 'repo:*', resource: 'repo://acme/*' }],
      maxDepth: 3,
      delegateJkt: A.jkt,
    });
    const now = Math.floor(Date.now() / 1000);
    const scope = [{ action: 'repo:read', resource: 'repo://acme/*' }];
    const a = await handshake('/agent/a', A.key, [root.grant]);
    const g1 = delegateGrant(root.grant, A.key, { childJkt: B.jkt, now, from: { sub: a.claims.sub, writ: a.claims.jti }, scope });
    const b = await handshake('/agent/b', B.key, [root.grant, g1]);
    const g2a = delegateGrant(g1, B.key, { childJkt: C1.jkt, now, from: { sub: b.claims.sub, writ: b.claims.jti }, scope });
    const g2b = delegateGrant(g1, B.key, { childJkt: C2.jkt, now, from: { sub: b.claims.sub, writ: b.claims.jti }, scope });
    const [ga, gb] = [
      (await handshake('/agent/c1', C1.key, [root.grant, g1, g2a])).claims.lineage[2]!,
      (await handshake('/agent/c2', C2.key, [root.grant, g1, g2b])).claims.lineage[2]!,
    ];
    const bWrit = b.jws.compact;
    const asB = (target: string, proof: string) =>
      revokeRemote(w.address, w.bundlePem, { kind: 'grant', target, reason: 'r', credential: { case: 'agent', value: { writ: bWrit, proof } } });

    // A proof naming only the RPC (the old form) is refused.
    const unbound = await failure(asB(ga, createProof(bWrit, B.key, { audience: TD_ID, method: REVOKE_METHOD, now: new Date() })));
    expect(unbound.writCode).toBe('ERR_PROOF_INVALID');
    expect(unbound.message).toMatch(/another method/);

    // B makes ONE proof, for g2a.
    const proof = createProof(bWrit, B.key, { audience: TD_ID, method: revokeMethod('grant', ga), now: new Date(), lifetimeS: 300 });
    expect((await asB(ga, proof)).writs).toBe(1);
    // Never used for g2b, another proof of the same form for g2a is refused for g2b too: the binding, not the cache.
    const fresh = createProof(bWrit, B.key, { audience: TD_ID, method: revokeMethod('grant', ga), now: new Date() });
    expect((await failure(asB(gb, fresh))).writCode).toBe('ERR_PROOF_INVALID');

    // Restart on the same data directory: the replay cache is gone, the binding is not.
    await server!.stop();
    server = undefined;
    w = await start();
    const other = await failure(asB(gb, proof));
    expect(other.writCode).toBe('ERR_PROOF_INVALID');
    expect(other.message).toMatch(/another method/);
    const again = await failure(asB(ga, proof));
    expect(again.writCode).toBe('ERR_REVOCATION_EXISTS');
    // g2b was never revoked: a proof made for it does.
    expect((await asB(gb, createProof(bWrit, B.key, { audience: TD_ID, method: revokeMethod('grant', gb), now: new Date() }))).writs).toBe(1);
  }, 60_000);
});
