/**
 * The invariant revocation rests on: a relying party fed by Watch, one reading the Token Status
 * List, and the issuer's own Verify refuse exactly the same writs, for every revocation kind.
 * The hard case: A's writ has expired (B and C, delegated from it before, outlive it), and then
 * something about A is revoked. The issuer's store kills B and C through the delegation links;
 * the stream must carry what lets a relying party match them (review finding 1: an entry
 * revocation published nothing for an expired A, so a Watch-fed party accepted B and C).
 * Platform revocations share the entry path (issuance/revocations.ts) and are pinned at the
 * store level (test/store/conformance.ts, "an expired writ whose descendants live").
 */
import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest } from '../../src/agent/attest-client.js';
import { createGrant, verifyRemote } from '../../src/agent/grant-client.js';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { delegateGrant } from '../../src/delegation/grant.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { httpsStatusListFetcher, StatusListSource } from '../../src/revocation/status-list-source.js';
import { type WatchedRevocation, WatchRevocationSource } from '../../src/revocation/watch-source.js';
import { parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { type RevocationSource, verifyWrit } from '../../src/writ/verify.js';
import { parseWrit, type WritClaims } from '../../src/writ/writ.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { revokeAsOperator } from '../helpers/revocation.js';
import { startServer } from '../helpers/server.js';

const AUD = 'spiffe://example.org/tool/github';
const METHOD = 'GET /repos/acme/widgets';

class OffsetClock {
  offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}

interface Agent {
  readonly key: KeyObject;
  readonly jkt: string;
  readonly writ: string;
  readonly claims: WritClaims;
  readonly entryId: string;
}

describe('Watch-fed, status-list and issuer verification refuse the same writs, for every revocation kind', () => {
  const clock = new OffsetClock();
  let w: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  let watch: WatchRevocationSource;
  let writKeys: ReadonlyMap<string, KeyObject>;

  beforeAll(async () => {
    oidc = await startOidc();
    w = await startServer(
      { http_listen: '127.0.0.1:0', principals: [{ issuer: oidc.issuer, audience: 'writ' }], revocation: { heartbeat: '100ms' } },
      { clock },
    );
    const admin = adminClients(w.adminSocket);
    await admin.admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    writKeys = parseSpiffeBundle('example.org', (await admin.bundle.getBundle({})).jwks).writAuthorities!;
    // The watcher's staleness runs on the real clock (the issuer's heartbeats do too).
    watch = new WatchRevocationSource({ addresses: [w.address], connector: grpcWatchConnector(w.bundlePem) }).start();
    await watch.synced();
  });
  afterAll(async () => {
    watch?.close();
    await w?.stop();
    await oidc?.stop();
  });

  const newKey = () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    return { key, jkt: jwkThumbprint(createPublicKey(key)) };
  };

  async function spawn(path: string, k: { key: KeyObject; jkt: string }, grants: string[], ttl = 0): Promise<Agent> {
    const admin = adminClients(w.adminSocket).admin;
    const tok = await admin.createJoinToken({ ttl: 600 });
    const e = await admin.createEntry({
      entry: { spiffeId: `spiffe://example.org${path}`, selectors: [{ type: 'join_token', value: tok.id }], x509SvidTtl: ttl },
    });
    const res = await attest({
      server: w.address,
      bundlePem: w.bundlePem,
      evidenceType: 'join_token',
      key: k.key,
      respond: () => Buffer.from(tok.token),
      grants,
    });
    return { ...k, writ: res.writ!, claims: parseWrit(res.writ!).claims, entryId: e.entry!.id };
  }

  /** principal → A (writ of 60 s) → B → C (the default lifetime). */
  async function expiredDelegatorChain(name: string) {
    const sub = `user-${name}-${randomBytes(3).toString('hex')}`;
    const taskId = `task-${name}-${randomBytes(3).toString('hex')}`;
    const [kA, kB, kC] = [newKey(), newKey(), newKey()];
    const root = await createGrant(w.address, w.bundlePem, {
      subjectToken: oidc.token(sub, { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId,
      goal: 'g',
      ttlSeconds: 1800,
      scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
      maxDepth: 3,
      delegateJkt: kA.jkt,
    });
    const hop = (parent: string, holder: Agent, child: { jkt: string }) =>
      delegateGrant(parent, holder.key, {
        childJkt: child.jkt,
        now: Math.floor(clock.now().getTime() / 1000),
        from: { sub: holder.claims.sub, writ: holder.claims.jti },
      });
    const A = await spawn(`/agent/${name}/a`, kA, [root.grant], 60);
    const g1 = hop(root.grant, A, kB);
    const B = await spawn(`/agent/${name}/b`, kB, [root.grant, g1]);
    const C = await spawn(`/agent/${name}/c`, kC, [root.grant, g1, hop(g1, B, kC)]);
    expect(A.claims.exp - A.claims.iat).toBeLessThanOrEqual(60);
    expect(B.claims.exp).toBeGreaterThan(A.claims.exp + 300);
    expect(C.claims.exp).toBeGreaterThan(A.claims.exp + 300);
    return { sub: `${oidc.issuer}#${sub}`, taskId, rootId: root.grantId, A, B, C };
  }

  const local = (a: Agent, revocation: RevocationSource) =>
    verifyWrit({
      writ: a.writ,
      proof: createProof(a.writ, a.key, { audience: AUD, method: METHOD, now: clock.now() }),
      trust: { issuer: 'spiffe://example.org', writKeys },
      audience: AUD,
      now: clock.now(),
      replayCache: new ProofReplayCache(),
      revocation,
    });

  /** 'valid', 'refused' when refused as revoked, else what was wrong (so a refusal for another reason fails the test). */
  const outcome = (verify: () => unknown): string => {
    try {
      verify();
      return 'valid';
    } catch (e) {
      const code = (e as { code?: string }).code;
      return code === 'ERR_WRIT_REVOKED' ? 'refused' : `${code}: ${(e as Error).message}`;
    }
  };

  /** Is `a` accepted by the issuer's Verify, a Watch-fed verifier and a status-list verifier? */
  async function verdicts(a: Agent) {
    const remote = await verifyRemote(w.address, w.bundlePem, {
      writ: a.writ,
      proof: createProof(a.writ, a.key, { audience: AUD, method: METHOD, now: clock.now() }),
      audience: AUD,
    });
    // A fresh status-list source: it fetches the list as served now.
    const lists = new StatusListSource({
      writKeys,
      now: () => clock.now(),
      fetch: httpsStatusListFetcher({ ca: w.bundlePem, spiffeId: 'spiffe://example.org/writ/server' }),
    });
    await lists.prepare(a.writ);
    return {
      issuer: remote.valid ? 'valid' : remote.errorCode,
      watch: outcome(() => local(a, watch)),
      statusList: outcome(() => local(a, lists)),
    };
  }

  /** Waits until the Watch source has applied `seq` and the status list has been re-signed (batched). */
  async function settle(seq: number) {
    const until = Date.now() + 5000;
    while (watch.sequence < seq && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(watch.sequence).toBeGreaterThanOrEqual(seq);
    await new Promise((r) => setTimeout(r, 600));
  }

  const REVOKED = { issuer: 'ERR_WRIT_REVOKED', watch: 'refused', statusList: 'refused' };
  const VALID = { issuer: 'valid', watch: 'valid', statusList: 'valid' };

  type Ch = Awaited<ReturnType<typeof expiredDelegatorChain>>;
  it.each<[string, (c: Ch) => string]>([
    ['grant', (c) => c.rootId],
    ['task', (c) => c.taskId],
    ['principal', (c) => c.sub],
    ['agent', (c) => c.A.claims.sub],
    ['key', (c) => c.A.jkt],
    ['writ', (c) => c.A.claims.jti],
    ['entry', (c) => c.A.entryId],
  ])("revoking A's %s after A's writ expired: B and C refused by all three, another chain accepted by all three", async (kind, target) => {
    clock.offsetMs = 0; // OIDC tokens are minted on real time and live 300 s
    const ch = await expiredDelegatorChain(kind);
    const other = await expiredDelegatorChain(`${kind}-other`);
    clock.offsetMs += 90_000;
    expect(clock.now().getTime()).toBeGreaterThan(Math.max(ch.A.claims.exp, other.A.claims.exp) * 1000);
    expect(await verdicts(ch.C)).toEqual(VALID);
    const watched: WatchedRevocation[] = [];
    const offRevoked = watch.onRevoked((x) => watched.push(x));
    const r = await revokeAsOperator(w.adminSocket, kind, target(ch), `A compromised (${kind})`);
    expect(r.writs).toBeGreaterThanOrEqual(3);
    // The newest sequence it recorded (derived revocations follow the target's).
    const { newest } = await new Promise<{ newest: number }>((resolve) => {
      const off = watch.onMessage((m) => {
        if (m.type === 'heartbeat') {
          off();
          resolve({ newest: m.sequence });
        }
      });
    });
    await settle(newest);
    expect(await verdicts(ch.B)).toEqual(REVOKED);
    expect(await verdicts(ch.C)).toEqual(REVOKED);
    expect(await verdicts(other.C)).toEqual(VALID);
    // What it records for A is kept until the last writ it kills has expired, not A's own expiry
    // (retention prunes by it, and a snapshot then would forget B and C).
    if (kind === 'writ' || kind === 'entry') {
      const recs = await w.server.store.listRevocationsSince(Number(r.sequence) - 1, 100);
      const forA = recs.find((x) => x.kind === 'writ' && x.target === ch.A.claims.jti);
      expect(forA?.expiresAt).toBe(Math.max(ch.B.claims.exp, ch.C.claims.exp) * 1000);
      // And it reaches the relying party on the stream (expires_at), which forgets it only after that.
      expect(watched.find((x) => x.target.kind === 'writ' && x.target.id === ch.A.claims.jti)?.expiresAt).toBe(forA?.expiresAt);
    }
    offRevoked();
  });
});
