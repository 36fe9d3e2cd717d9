/**
 * Revocation helpers for end-to-end tests and benchmarks: Revoke on the admin socket (the
 * operator), and three-hop worlds made by a real issuer (principal → A → B → C, join tokens).
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { attest } from '../../src/agent/attest-client.js';
import { createGrant } from '../../src/agent/grant-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { delegateGrant } from '../../src/delegation/grant.js';
import { RevocationService, type RevokeResponse } from '../../src/gen/writ/v1/revocation_pb.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { unaryCall } from '../../src/rpc/grpc-adapter.js';
import { parseWrit, type WritClaims } from '../../src/writ/writ.js';
import type { TestOidc } from './oidc.js';

/** Revoke as the operator, over the admin socket. */
export function revokeAsOperator(adminSocket: string, kind: string, target: string, reason = 'test'): Promise<RevokeResponse> {
  return unaryCall<RevokeResponse>(
    `unix:${adminSocket}`,
    grpc.credentials.createInsecure(),
    RevocationService,
    'revoke',
    { kind, target, reason },
    {
      deadline: new Date(Date.now() + 10_000),
    },
  );
}

export interface Hop {
  readonly key: KeyObject;
  readonly jkt: string;
  readonly writ: string;
  readonly claims: WritClaims;
  /** The entry its join token created, and the selector it attested with. */
  readonly entryId: string;
  readonly selector: string;
}

export interface Issuer {
  readonly address: string;
  readonly bundlePem: string;
  readonly adminSocket: string;
}

/** principal → A → B → C on a real issuer; each agent attests with a join token of its own. */
export async function threeHops(
  w: Issuer,
  oidc: TestOidc,
  o: { taskId: string; principal?: string; ttlSeconds?: number; name?: string },
): Promise<{ root: string; A: Hop; B: Hop; C: Hop }> {
  const name = o.name ?? o.taskId;
  const admin = adminClients(w.adminSocket).admin;
  const newKey = () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    return { key, jkt: jwkThumbprint(createPublicKey(key)) };
  };
  const spawn = async (path: string, k: { key: KeyObject; jkt: string }, grants: string[]): Promise<Hop> => {
    const tok = await admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org${path}` });
    const res = await attest({
      server: w.address,
      bundlePem: w.bundlePem,
      evidenceType: 'join_token',
      key: k.key,
      respond: () => Buffer.from(tok.token),
      grants,
    });
    return { ...k, writ: res.writ!, claims: parseWrit(res.writ!).claims, entryId: tok.entryId, selector: tok.selector };
  };
  const [a, b, c] = [newKey(), newKey(), newKey()];
  const root = await createGrant(w.address, w.bundlePem, {
    subjectToken: oidc.token(o.principal ?? 'alice', { groups: ['eng'] }),
    subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
    taskId: o.taskId,
    goal: 'triage the open issues of acme/widgets',
    ttlSeconds: o.ttlSeconds ?? 1800,
    scope: [{ action: 'repo:*', resource: 'repo://acme/*' }],
    boundaries: [{ action: '*', resource: 'repo://acme/secrets*' }],
    maxDepth: 3,
    delegateJkt: a.jkt,
  });
  const A = await spawn(`/agent/${name}/planner`, a, [root.grant]);
  const now = Math.floor(Date.now() / 1000);
  const g1 = delegateGrant(root.grant, A.key, {
    childJkt: b.jkt,
    now,
    from: { sub: A.claims.sub, writ: A.claims.jti },
    scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
  });
  const B = await spawn(`/agent/${name}/researcher`, b, [root.grant, g1]);
  const g2 = delegateGrant(g1, B.key, {
    childJkt: c.jkt,
    now,
    from: { sub: B.claims.sub, writ: B.claims.jti },
    scope: [{ action: 'repo:read', resource: 'repo://acme/widgets*' }],
  });
  const C = await spawn(`/agent/${name}/reader`, c, [root.grant, g1, g2]);
  return { root: root.grant, A, B, C };
}
