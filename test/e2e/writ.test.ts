/**
 * The writ end to end: a real issuer, a real OpenID Connect provider over HTTP, agents that
 * attest over gRPC/TLS and delegate across three hops, and relying parties that verify with
 * the library and with the gRPC Verify call.
 */
import { createHmac, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { attest, GrpcCallError } from '../../src/agent/attest-client.js';
import { createGrant, verifyRemote } from '../../src/agent/grant-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { delegateGrant } from '../../src/delegation/grant.js';
import { parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { createProof, ProofReplayCache } from '../../src/writ/proof.js';
import { authorize, verifyWrit } from '../../src/writ/verify.js';
import { parseWrit } from '../../src/writ/writ.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { startServer } from '../helpers/server.js';
import { FakeIssuer } from '../helpers/writ-fixture.js';
import { POLICY } from '../helpers/policies.js';
import { join } from 'node:path';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { issuerChannelCredentials } from '../../src/agent/attest-client.js';
import { signCheckpoint, verifyCheckpoint } from '../../src/audit/checkpoint.js';
import { verifyStoredLog } from '../../src/audit/log.js';
import { noteSigner, parseVerifierKey } from '../../src/audit/note.js';
import { parseRecord } from '../../src/audit/record.js';
import { AuditService } from '../../src/gen/writ/v1/audit_pb.js';
import { unaryCall } from '../../src/rpc/grpc-adapter.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { runCli } from '../helpers/cli.js';

const AUD = 'spiffe://example.org/tool/github';

/** Re-signs a token's payload with HS256 keyed by its own header (an algorithm-confusion attempt). */
function hs256(token: string): string {
  const [h, p] = token.split('.');
  const header = { ...JSON.parse(Buffer.from(h!, 'base64url').toString()), alg: 'HS256' };
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${p}`;
  return `${input}.${createHmac('sha256', h!).update(input).digest('base64url')}`;
}

/** Long enough that two calls in a row fall inside it even on a loaded machine, short enough to wait out once. */
const JWKS_COOLDOWN_MS = 2_000;
describe('writ end to end (issuer, OIDC provider, three hops, relying party)', () => {
  let w: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  let bundleJwks = '';

  beforeAll(async () => {
    oidc = await startOidc();
    w = await startServer({ principals: [{ issuer: oidc.issuer, audience: 'writ' }] }, { jwksRefetchCooldownMs: JWKS_COOLDOWN_MS });
    await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
  });
  afterAll(async () => {
    await w?.stop();
    await oidc?.stop();
  });

  const newKey = () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    return { key, jkt: jwkThumbprint(createPublicKey(key)) };
  };

  async function spawn(path: string, key: KeyObject, grants: string[]) {
    const tok = await adminClients(w.adminSocket).admin.createJoinToken({ ttl: 600, spiffeId: `spiffe://example.org${path}` });
    const res = await attest({
      server: w.address,
      bundlePem: w.bundlePem,
      evidenceType: 'join_token',
      key,
      respond: () => Buffer.from(tok.token),
      grants,
    });
    bundleJwks = res.bundleJwks;
    return res;
  }

  async function rootGrant(
    jkt: string,
    over: { scope?: Array<{ action: string; resource: string }>; taskId?: string } = {},
    token = oidc.token('alice', { groups: ['eng'] }),
  ) {
    return createGrant(w.address, w.bundlePem, {
      subjectToken: token,
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: 'triage-42',
      goal: 'triage the open issues of acme/widgets',
      ttlSeconds: 1800,
      scope: [{ action: 'repo:*', resource: 'repo://acme/*' }],
      boundaries: [{ action: '*', resource: 'repo://acme/secrets*' }],
      escalate: [{ action: 'repo:delete', resource: '*' }],
      maxDepth: 2,
      delegateJkt: jkt,
      ...over,
    });
  }

  const trust = () => {
    const b = parseSpiffeBundle('example.org', bundleJwks);
    return { issuer: 'spiffe://example.org', writKeys: b.writAuthorities! };
  };

  it('a principal delegates, the agent delegates twice, and a relying party verifies the third hop back to the human', async () => {
    const A = newKey();
    const B = newKey();
    const C = newKey();
    const root = await rootGrant(A.jkt);
    expect(root.policies).toEqual(['eng-may-delegate-acme']);
    const a = await spawn('/agent/planner', A.key, [root.grant]);
    const wa = parseWrit(a.writ!).claims;
    expect(wa).toMatchObject({
      sub: 'spiffe://example.org/agent/planner',
      cnf: { jkt: A.jkt },
      principal: { iss: oidc.issuer, sub: 'alice' },
      act: { sub: 'alice', iss: oidc.issuer },
    });
    expect(wa.pol.policies).toEqual(['acme-agents-receive']);

    const now = Math.floor(Date.now() / 1000);
    const g1 = delegateGrant(root.grant, A.key, {
      childJkt: B.jkt,
      now,
      from: { sub: wa.sub, writ: wa.jti },
      scope: [
        { action: 'repo:read', resource: 'repo://acme/*' },
        { action: 'repo:comment', resource: 'repo://acme/widgets' },
      ],
    });
    const b = await spawn('/agent/researcher', B.key, [root.grant, g1]);
    const wb = parseWrit(b.writ!).claims;
    const g2 = delegateGrant(g1, B.key, {
      childJkt: C.jkt,
      now,
      from: { sub: wb.sub, writ: wb.jti },
      scope: [{ action: 'repo:read', resource: 'repo://acme/widgets*' }],
    });
    const c = await spawn('/agent/reader', C.key, [root.grant, g1, g2]);
    const wc = parseWrit(c.writ!).claims;
    expect(wc.act).toEqual({
      sub: 'spiffe://example.org/agent/researcher',
      act: { sub: 'spiffe://example.org/agent/planner', act: { sub: 'alice', iss: oidc.issuer } },
    });
    expect(wc.exp).toBeLessThanOrEqual(wc.task.exp);

    const cache = new ProofReplayCache();
    for (const level of ['standard', 'deep'] as const) {
      const v = verifyWrit({
        writ: c.writ!,
        proof: createProof(c.writ!, C.key, { audience: AUD, method: 'GET /repos/acme/widgets', now: new Date() }),
        trust: trust(),
        audience: AUD,
        now: new Date(),
        level,
        replayCache: cache,
      });
      expect(v.chain).toEqual([
        `${oidc.issuer}#alice`,
        'spiffe://example.org/agent/planner',
        'spiffe://example.org/agent/researcher',
        'spiffe://example.org/agent/reader',
      ]);
      expect(v.lineage).toEqual(wc.lineage);
      expect(authorize(v, 'repo:read', 'repo://acme/widgets-api').decision).toBe('allow');
      expect(authorize(v, 'repo:comment', 'repo://acme/widgets').decision).toBe('deny');
      if (level === 'deep')
        expect(v.checks).toContainEqual({ by: 'issuer', check: expect.stringMatching(/evidence \(join_token\) verified by the issuer; it is not embedded/) });
    }

    // The same through the gRPC Verify call, with its own replay cache.
    const proof = createProof(c.writ!, C.key, { audience: AUD, method: 'Verify', now: new Date() });
    const remote = await verifyRemote(w.address, w.bundlePem, { writ: c.writ!, proof, audience: AUD, deep: true });
    expect(remote).toMatchObject({
      valid: true,
      spiffeId: 'spiffe://example.org/agent/reader',
      chain: [`${oidc.issuer}#alice`, 'spiffe://example.org/agent/planner', 'spiffe://example.org/agent/researcher', 'spiffe://example.org/agent/reader'],
    });
    expect(remote.checks.length).toBeGreaterThan(5);
    const replay = await verifyRemote(w.address, w.bundlePem, { writ: c.writ!, proof, audience: AUD });
    expect(replay).toMatchObject({ valid: false, errorCode: 'ERR_PROOF_REPLAYED' });
    const bearer = await verifyRemote(w.address, w.bundlePem, { writ: c.writ!, proof: '', audience: AUD });
    expect(bearer).toMatchObject({ valid: false, errorCode: 'ERR_PROOF_INVALID' });

    // Depth limit 2: C cannot delegate further, at the issuer.
    const D = newKey();
    const g3 = delegateGrant.bind(null, g2, C.key, { childJkt: D.jkt, now, from: { sub: wc.sub, writ: wc.jti } });
    expect(g3).toThrow(/would exceed the root's limit of 2/);
  });

  async function refused(p: Promise<unknown>): Promise<GrpcCallError> {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e, 'must be refused').toBeInstanceOf(GrpcCallError);
    return e as GrpcCallError;
  }

  it('the issuer refuses a stolen grant, a forged hop, a foreign root and an untrusted agent, and issues nothing', async () => {
    const A = newKey();
    const B = newKey();
    const M = newKey();
    const root = await rootGrant(A.jkt);
    const a = await spawn('/agent/owner', A.key, [root.grant]);
    const wa = parseWrit(a.writ!).claims;
    const count = async () => (await adminClients(w.adminSocket).admin.listDecisions({ limit: 1000 })).decisions.length;
    const before = await count();
    const issuedBefore = await w.server.store.countIssued();

    const stolen = await refused(spawn('/agent/thief', M.key, [root.grant]));
    expect(stolen).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      writCode: 'ERR_GRANT_INVALID',
      details: expect.stringMatching(/delegated to another key/),
    });

    const now = Math.floor(Date.now() / 1000);
    const forged = delegateGrant(root.grant, A.key, { childJkt: B.jkt, now, from: { sub: wa.sub, writ: 'AAAAAAAAAAAAAAAAAAAAAA' } });
    expect((await refused(spawn('/agent/b', B.key, [root.grant, forged]))).details).toMatch(/delegator writ this issuer did not issue/);

    const liar = delegateGrant(root.grant, A.key, { childJkt: B.jkt, now, from: { sub: 'spiffe://example.org/agent/someone-else', writ: wa.jti } });
    expect((await refused(spawn('/agent/b', B.key, [root.grant, liar]))).details).toMatch(/not made by the holder of the writ/);

    const foreign = new FakeIssuer('example.org').rootGrant({ jkt: M.jkt, key: M.key, spiffeId: '' }, { now });
    expect((await refused(spawn('/agent/m', M.key, [foreign]))).details).toMatch(/key the trust bundle does not hold/);

    const good = delegateGrant(root.grant, A.key, { childJkt: B.jkt, now, from: { sub: wa.sub, writ: wa.jti } });
    const untrusted = await refused(spawn('/untrusted/b', B.key, [root.grant, good]));
    expect(untrusted).toMatchObject({ writCode: 'ERR_POLICY_DENIED', details: expect.stringMatching(/forbidden by no-untrusted-agents/) });
    // The denial is recorded (actor apart from principal); the grant refusals never reached policy.
    const ds = (await adminClients(w.adminSocket).admin.listDecisions({ limit: 1 })).decisions[0]!;
    expect(ds).toMatchObject({
      decision: 'deny',
      actor: 'spiffe://example.org/untrusted/b',
      principal: `${oidc.issuer}#alice`,
      policies: ['no-untrusted-agents'],
    });
    expect(await count()).toBe(before + 1);
    expect(await w.server.store.countIssued()).toBe(issuedBefore);
  });

  it("the principal's groups from the token reach the agent's policy decision at the handshake", async () => {
    const A = newKey();
    // A task id belongs to the principal that first used it.
    const taken = await refused(rootGrant(A.jkt, {}, oidc.token('carol', { groups: ['eng', 'contractors'] })));
    expect(taken).toMatchObject({ writCode: 'ERR_GRANT_INVALID', details: 'delegation: task id triage-42 belongs to another principal; choose another id' });
    const root = await rootGrant(A.jkt, { taskId: 'carol-1' }, oidc.token('carol', { groups: ['eng', 'contractors'] }));
    const e = await refused(spawn('/agent/carol-helper', A.key, [root.grant]));
    expect(e).toMatchObject({ writCode: 'ERR_POLICY_DENIED', details: expect.stringMatching(/forbidden by no-agents-for-contractors/) });
    const B = newKey();
    const ok = await spawn('/agent/alice-helper', B.key, [(await rootGrant(B.jkt)).grant]);
    expect(ok.writ).toBeDefined();
  });

  it('every grant and handshake leaves exactly one audit record, actor and principal apart, three hops deep', async () => {
    const store = new SqliteStore(join(w.dataDir, 'writ.db'));
    try {
      const from = await store.getAuditSize();
      const [A, B, C] = [newKey(), newKey(), newKey()];
      const root = await rootGrant(A.jkt, { taskId: 'audit-7' });
      const a = await spawn('/agent/planner', A.key, [root.grant]);
      const wa = parseWrit(a.writ!).claims;
      const now = Math.floor(Date.now() / 1000);
      const scope = [{ action: 'repo:read', resource: 'repo://acme/*' }];
      const g1 = delegateGrant(root.grant, A.key, { childJkt: B.jkt, now, from: { sub: wa.sub, writ: wa.jti }, scope });
      const b = await spawn('/agent/researcher', B.key, [root.grant, g1]);
      const wb = parseWrit(b.writ!).claims;
      const g2 = delegateGrant(g1, B.key, { childJkt: C.jkt, now, from: { sub: wb.sub, writ: wb.jti }, scope });
      const c = await spawn('/agent/reader', C.key, [root.grant, g1, g2]);
      const wc = parseWrit(c.writ!).claims;
      await refused(rootGrant(A.jkt, { taskId: 'audit-8' }, oidc.token('bob', { groups: ['sales'] })));

      const rows = await store.listAuditRecords(from, 100);
      const recs = rows.map((r) => parseRecord(r.canonical));
      const alice = { iss: oidc.issuer, sub: 'alice' };
      // Each spawn's join token and its entry (the operator's change, by the token's id only), then the handshake.
      expect(recs.map((r) => r.event)).toEqual([
        'grant.created',
        'join_token.created',
        'entry.created',
        'handshake.issued',
        'writ.issued',
        'join_token.created',
        'entry.created',
        'handshake.issued',
        'delegation.accepted',
        'writ.issued',
        'join_token.created',
        'entry.created',
        'handshake.issued',
        'delegation.accepted',
        'writ.issued',
        'grant.denied',
      ]);
      expect(
        recs.filter((r) => r.event === 'entry.created' || r.event === 'join_token.created').every((r) => r.actor.kind === 'operator' && r.principal === null),
      ).toBe(true);
      const [hs1, hs2, hs3] = recs.filter((r) => r.event === 'handshake.issued');
      const [wr1, wr2, wr3] = recs.filter((r) => r.event === 'writ.issued');
      const [dl1, dl2] = recs.filter((r) => r.event === 'delegation.accepted');
      // Each hop is accepted with its delegator as the actor, the receiver acting in its own handshake.
      expect(dl1).toMatchObject({ actor: { kind: 'agent', spiffeId: wa.sub, jkt: A.jkt }, principal: alice, lineage: wb.lineage, created: [wb.lineage[1]] });
      expect(dl2).toMatchObject({ actor: { kind: 'agent', spiffeId: wb.sub, jkt: B.jkt }, principal: alice, lineage: wc.lineage, created: [wc.lineage[2]] });
      expect(recs[0]).toMatchObject({
        actor: { kind: 'principal', ...alice },
        principal: alice,
        task: 'audit-7',
        lineage: [root.grantId],
        created: [root.grantId],
        decision: 'allow',
      });
      const hops = [
        [hs1!, wr1!, wa, A.jkt],
        [hs2!, wr2!, wb, B.jkt],
        [hs3!, wr3!, wc, C.jkt],
      ] as const;
      for (const [r, wrec, wr, jkt] of hops) {
        expect(r).toMatchObject({ actor: { kind: 'agent', spiffeId: wr.sub, jkt }, principal: alice, task: 'audit-7', lineage: wr.lineage, decision: 'allow' });
        expect(wrec).toMatchObject({ actor: r.actor, principal: alice, task: 'audit-7', lineage: wr.lineage, created: [wr.jti] });
        expect(r.created).not.toContain(wr.jti);
        expect(r.policies).toEqual(wr.pol.policies);
        expect(r.snapshot).toBe(wr.pol.snap);
        expect(r.evidence).toMatch(/^[0-9a-f]{64}$/);
      }
      expect(hs3!.lineage).toHaveLength(3);
      expect(recs[recs.length - 1]).toMatchObject({
        actor: { kind: 'principal', iss: oidc.issuer, sub: 'bob' },
        principal: { iss: oidc.issuer, sub: 'bob' },
        decision: 'deny',
        reason: 'ERR_POLICY_DENIED',
        created: [],
      });
      // No secret of the flow (join tokens, grants, writs themselves) is in any record.
      const all = rows.map((r) => r.canonical.toString()).join('\n');
      expect(all).not.toMatch(/[0-9a-f]{16}\.[A-Za-z0-9_-]{43}/);
      expect(all).not.toContain(root.grant);

      // The issuer's own key, published beside the bundle, and the operator verbs over the admin socket.
      const vkey = readFileSync(join(w.dataDir, 'audit.vkey'), 'utf8').trim();
      const key = parseVerifierKey(vkey);
      expect(key.name).toBe('example.org/audit');
      const admin = ['--admin-socket', w.adminSocket];
      expect((await runCli(['audit', 'key', ...admin])).out).toBe(`${vkey}\n`);
      const cp = await runCli(['audit', 'checkpoint', ...admin]);
      expect(verifyCheckpoint(cp.out, key).size).toBe(await store.getAuditSize());
      expect(await verifyStoredLog(store, key)).toMatchObject({ ok: true });
      // A relying party or witness on the public port, checking against the pinned key.
      const remote = await runCli(['audit', 'checkpoint', '--server', w.address, '--bundle', w.server.bundlePemPath, '--audit-key', vkey]);
      expect(remote.code, remote.err).toBe(0);
      expect(verifyCheckpoint(remote.out, key).size).toBe(await store.getAuditSize());
      const otherKey = noteSigner('example.org/audit', generateKeyPairSync('ed25519').privateKey).vkey;
      const forged = await runCli(['audit', 'checkpoint', '--server', w.address, '--bundle', w.server.bundlePemPath, '--audit-key', otherKey]);
      expect(forged.code).toBe(1);
      expect(forged.err).toMatch(/no signature by example\.org\/audit/);

      const dir = mkdtempSync(join(tmpdir(), 'writ-e2e-audit-'));
      try {
        for (const r of rows) {
          const file = join(dir, `${r.seq}.json`);
          expect(await runCli(['audit', 'prove', String(r.seq), '--out', file, ...admin])).toMatchObject({ code: 0 });
          const v = await runCli(['audit', 'verify', '--proof', file, '--audit-key', vkey]);
          expect(v.code, v.err).toBe(0);
          expect(v.out).toContain(`  event      ${r.event}\n`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      // "Everything alice's agents did under task audit-7, and which policy allowed each step."
      const list = await runCli(['audit', 'list', '--task', 'audit-7', '--principal', `${oidc.issuer}#alice`, ...admin]);
      expect(list.code, list.err).toBe(0);
      const lines = list.out.trim().split('\n');
      expect(lines[0]).toMatch(/^SEQ +AT +EVENT +ACTOR +PRINCIPAL +TASK +DECISION +POLICIES$/);
      expect(lines.slice(1).map((l) => l.split(/ {2,}/)[2])).toEqual([
        'writ.issued',
        'delegation.accepted',
        'handshake.issued',
        'writ.issued',
        'delegation.accepted',
        'handshake.issued',
        'writ.issued',
        'handshake.issued',
        'grant.created',
      ]);
      expect(lines[1]).toContain(`agent ${wc.sub} (jkt ${C.jkt})`);
      expect(lines[1]).toContain('acme-agents-receive');
      const json = await runCli(['audit', 'list', '--actor', wa.sub, '--limit', '1', '--json', ...admin]);
      // A's newest act: the hop it delegated to B.
      expect(JSON.parse(json.out)).toMatchObject({ event: 'delegation.accepted', actor: { spiffeId: wa.sub }, principal: alice });
      expect((await runCli(['audit', 'list', '--limit', '0', ...admin])).code).toBe(2);
      // A witness keeps the last checkpoint it saw and checks the next one for consistency.
      const keepDir = mkdtempSync(join(tmpdir(), 'writ-e2e-witness-'));
      try {
        const keep = join(keepDir, 'kept');
        const witness = () => runCli(['audit', 'witness', '--keep', keep, '--server', w.address, '--bundle', w.server.bundlePemPath, '--audit-key', vkey]);
        expect((await witness()).out).toMatch(/^kept: example\.org\/audit at \d+ records \(first checkpoint seen\)\n$/);
        await refused(rootGrant(A.jkt, { taskId: 'audit-9' }, oidc.token('bob', { groups: ['sales'] })));
        const grew = await witness();
        expect(grew.code, grew.err).toBe(0);
        expect(grew.out).toMatch(/^consistent: example\.org\/audit grew from \d+ to \d+ records\n$/);
        // A kept checkpoint that is not the issuer's (another key) is refused, and left as it was.
        const stranger = noteSigner('example.org/audit', generateKeyPairSync('ed25519').privateKey);
        const forged = signCheckpoint({ origin: 'example.org/audit', size: 1, root: Buffer.alloc(32) }, stranger);
        writeFileSync(keep, forged);
        const bad = await witness();
        expect(bad.code).toBe(1);
        expect(readFileSync(keep, 'utf8')).toBe(forged);
      } finally {
        rmSync(keepDir, { recursive: true, force: true });
      }
      // verify-log over the admin socket: an UPDATE of one record's decision is named, then undone.
      expect(await runCli(['audit', 'verify-log', ...admin])).toMatchObject({ code: 0, out: expect.stringMatching(/^audit log verified: \d+ records, root /) });
      const db = new Database(join(w.dataDir, 'writ.db'));
      const victim = rows.find((r) => r.canonical.toString().includes('"decision":"allow"'))!;
      try {
        const changed = Buffer.from(victim.canonical.toString().replace('"decision":"allow"', '"decision":"deny"'));
        db.prepare('UPDATE audit_records SET canonical = ? WHERE seq = ?').run(changed, victim.seq);
        const bad = await runCli(['audit', 'verify-log', ...admin]);
        expect(bad.code).toBe(1);
        expect(bad.err).toMatch(new RegExp(`^writ: audit log does not verify at record ${victim.seq}: `));
      } finally {
        db.prepare('UPDATE audit_records SET canonical = ? WHERE seq = ?').run(victim.canonical, victim.seq);
        db.close();
      }
      expect((await runCli(['audit', 'verify-log', ...admin])).code).toBe(0);
      // Public: checkpoints and proofs, never record contents.
      const pub = (m: string, req: unknown) =>
        unaryCall(w.address, issuerChannelCredentials(w.bundlePem), AuditService, m, req, {
          deadline: new Date(Date.now() + 10_000),
          channelOptions: { 'grpc.ssl_target_name_override': 'writ-issuer' },
        });
      const pc = (await pub('getCheckpoint', {})) as { checkpoint: string; verifierKey: string };
      expect(pc.verifierKey).toBe(vkey);
      expect(verifyCheckpoint(pc.checkpoint, key).size).toBeGreaterThanOrEqual(from + 5);
      const denied = await pub('getRecord', { seq: BigInt(from) }).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(denied?.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(denied?.metadata.get('writ-error-code')).toEqual(['ERR_AUDIT_DENIED']);
    } finally {
      await store.close();
    }
  });

  it('CreateGrant: policy allows, denies and escalates; bad tokens are refused; key rotation is followed', async () => {
    const A = newKey();
    const denied = await refused(rootGrant(A.jkt, {}, oidc.token('bob', { groups: ['sales'] })));
    expect(denied).toMatchObject({ writCode: 'ERR_POLICY_DENIED', details: expect.stringMatching(/no policy permits this/) });
    const esc = await refused(rootGrant(A.jkt, { scope: [{ action: 'deploy:prod', resource: 'repo://acme/widgets' }] }));
    expect(esc).toMatchObject({ writCode: 'ERR_ESCALATION_REQUIRED', details: expect.stringMatching(/requires approval: production deploys need approval/) });
    const decisions = (await adminClients(w.adminSocket).admin.listDecisions({ limit: 2 })).decisions;
    expect(decisions.map((d) => d.decision)).toEqual(['escalate', 'deny']);
    const snap = (await adminClients(w.adminSocket).admin.listPolicies({})).snapshots[0]!;
    expect(decisions.every((d) => d.snapshot === snap.digest)).toBe(true);

    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    for (const [token, why] of [
      [oidc.token('alice', { groups: ['eng'] }, { key: other }), 'signed by another key'],
      [oidc.token('alice', { groups: ['eng'], aud: 'someone-else' }), 'other audience'],
      [oidc.token('alice', { groups: ['eng'], exp: Math.floor(Date.now() / 1000) - 3600 }), 'expired'],
      [oidc.token('alice', { groups: ['eng'], iss: 'https://evil.example' }), 'untrusted issuer'],
      [hs256(oidc.token('alice', { groups: ['eng'] })), 'HS256 keyed with a public value'],
    ] as const) {
      const e = await refused(rootGrant(A.jkt, {}, token));
      expect(e, why).toMatchObject({
        code: grpc.status.UNAUTHENTICATED,
        writCode: 'ERR_PRINCIPAL_INVALID',
        details: expect.stringMatching(/^principal token rejected \(the server log has the reason under request id [0-9a-f]{12}\)$/),
      });
    }

    // Past the cooldown of any earlier refetch, so the rotation's refetch is allowed.
    await new Promise((r) => setTimeout(r, JWKS_COOLDOWN_MS + 50));
    const jwksBefore = oidc.fetches.jwks;
    oidc.rotate();
    await rootGrant(A.jkt);
    expect(oidc.fetches.jwks).toBe(jwksBefore + 1);
    // An unknown kid right after a refetch does not trigger another (cooldown).
    await refused(rootGrant(A.jkt, {}, oidc.token('alice', { groups: ['eng'] }, { kid: 'unknown' })));
    expect(oidc.fetches.jwks).toBe(jwksBefore + 1);
  });

  it('policy push validates against the schema and leaves the active snapshot alone on failure', async () => {
    const before = (await adminClients(w.adminSocket).admin.listPolicies({})).snapshots;
    const e = await refused(
      adminClients(w.adminSocket).admin.pushPolicy({
        files: [{ name: 'bad.cedar', text: 'permit(principal, action, resource) when { principal.nope };' }],
      }),
    );
    expect(e).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, writCode: 'ERR_POLICY_INVALID', details: expect.stringMatching(/nope/) });
    expect((await adminClients(w.adminSocket).admin.listPolicies({})).snapshots).toEqual(before);
    // The same policies again: same digest, nothing new stored.
    const again = await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
    expect(again).toMatchObject({ digest: before.find((s) => s.active)!.digest, created: false });
  });
});

describe('public unary calls are rate limited per peer', () => {
  it('Verify past the burst is refused with RESOURCE_EXHAUSTED, and handshakes keep their own budget', async () => {
    const w = await startServer({ limits: { attestations_per_second: 0.001, attestation_burst: 2 } });
    try {
      const call = () => verifyRemote(w.address, w.bundlePem, { writ: 'x', proof: 'y', audience: 'a' });
      expect(await call()).toMatchObject({ valid: false, errorCode: 'ERR_JWS_INVALID' });
      expect(await call()).toMatchObject({ valid: false });
      const e = await call().then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, writCode: 'ERR_LIMIT_EXCEEDED' });
      const tok = await adminClients(w.adminSocket).admin.createJoinToken({
        ttl: 60,
        spiffeId: 'spiffe://example.org/agent/x',
      });
      const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
      const r = await attest({
        server: w.address,
        bundlePem: w.bundlePem,
        evidenceType: 'join_token',
        key,
        respond: () => Buffer.from(tok.token),
      });
      expect(r.spiffeId).toBe('spiffe://example.org/agent/x');
    } finally {
      await w.stop();
    }
  });
});
