/**
 * Revocation end to end on a real issuer (gRPC over TLS, a real OIDC provider, join tokens):
 * principal → A → B → C, then each kind of revocation, by each kind of revoker, through the
 * admin socket, the public port and the CLI. After it, C's writ is refused by gRPC Verify and
 * the issuer refuses C's renewal, B's delegation and A's new handshake; who may not revoke
 * gets PERMISSION_DENIED and nothing is written; delegation needs live authority.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, GrpcCallError } from '../../src/agent/attest-client.js';
import { createGrant, revokeRemote, verifyRemote } from '../../src/agent/grant-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { delegateGrant } from '../../src/delegation/grant.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { revokeMethod } from '../../src/writ/proof-methods.js';
import { createProof } from '../../src/writ/proof.js';
import { parseWrit, type WritClaims } from '../../src/writ/writ.js';
import { runCli } from '../helpers/cli.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';

const AUD = 'spiffe://example.org/tool/github';
const TD_ID = 'spiffe://example.org';

/** Real time plus an offset the tests move (TLS and OIDC tokens stay on real time). */
class OffsetClock {
  offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}

interface Key {
  readonly key: KeyObject;
  readonly jkt: string;
}

const newKey = (): Key => {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  return { key, jkt: jwkThumbprint(createPublicKey(key)) };
};

/** The gRPC status of a refused call. */
async function refusal(p: Promise<unknown>): Promise<{ code: number; message: string; writCode: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof GrpcCallError) return { code: e.code, message: e.message, writCode: e.writCode ?? '' };
    const err = e as grpc.ServiceError;
    if (typeof err.code === 'number') return { code: err.code, message: err.details, writCode: String(err.metadata?.get('writ-error-code')[0] ?? '') };
    throw e;
  }
  throw new Error('expected the call to be refused');
}

describe('revocation end to end (three hops, every kind, every revoker)', () => {
  let w: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  const clock = new OffsetClock();
  let dir: string;

  beforeAll(async () => {
    oidc = await startOidc();
    dir = mkdtempSync(join(tmpdir(), 'writ-revoke-'));
    w = await startServer({ principals: [{ issuer: oidc.issuer, audience: 'writ' }] }, { clock });
    await adminClients(w.adminSocket).admin.pushPolicy({ files: [{ name: 'acme.cedar', text: POLICY }] });
  });
  afterAll(async () => {
    await w?.stop();
    await oidc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const admin = () => adminClients(w.adminSocket);

  /** A join token and an entry for `spiffeId` (x509 TTL in seconds, 0: the default). */
  async function enrol(path: string, ttl = 0) {
    const tok = await admin().admin.createJoinToken({ ttl: 600 });
    const entry = await admin().admin.createEntry({
      entry: { spiffeId: `spiffe://example.org${path}`, selectors: [{ type: 'join_token', value: tok.id }], x509SvidTtl: ttl },
    });
    return { token: tok.token, entryId: entry.entry!.id };
  }

  async function handshake(path: string, key: KeyObject, grants: string[], ttl = 0) {
    const e = await enrol(path, ttl);
    const res = await attest({ server: w.address, bundlePem: w.bundlePem, evidenceType: 'join_token', key, respond: () => Buffer.from(e.token), grants });
    return { writ: res.writ!, claims: parseWrit(res.writ!).claims, entryId: e.entryId };
  }

  function hopFrom(parentGrant: string, holder: Key, holderWrit: WritClaims, child: Key, scope = [{ action: 'repo:read', resource: 'repo://acme/*' }]) {
    return delegateGrant(parentGrant, holder.key, {
      childJkt: child.jkt,
      now: Math.floor(clock.now().getTime() / 1000),
      from: { sub: holderWrit.sub, writ: holderWrit.jti },
      scope,
    });
  }

  /** principal → A → B → C for a fresh task (and, by default, a fresh principal). */
  async function chain(o: { sub?: string; ttlA?: number } = {}) {
    const sub = o.sub ?? `user-${randomBytes(4).toString('hex')}`;
    const token = oidc.token(sub, { groups: ['eng'] });
    const taskId = `task-${randomBytes(4).toString('hex')}`;
    const [A, B, C] = [newKey(), newKey(), newKey()];
    const root = await createGrant(w.address, w.bundlePem, {
      subjectToken: token,
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId,
      goal: 'triage the open issues of acme/widgets',
      ttlSeconds: 1800,
      scope: [{ action: 'repo:*', resource: 'repo://acme/*' }],
      maxDepth: 3,
      delegateJkt: A.jkt,
    });
    const a = await handshake(`/agent/a-${taskId}`, A.key, [root.grant], o.ttlA ?? 0);
    const g1 = hopFrom(root.grant, A, a.claims, B, [
      { action: 'repo:read', resource: 'repo://acme/*' },
      { action: 'repo:comment', resource: 'repo://acme/*' },
    ]);
    const b = await handshake(`/agent/b-${taskId}`, B.key, [root.grant, g1]);
    const g2 = hopFrom(g1, B, b.claims, C);
    const c = await handshake(`/agent/c-${taskId}`, C.key, [root.grant, g1, g2]);
    return { sub, token, taskId, A, B, C, root: root.grant, rootId: root.grantId, g1, g2, a, b, c };
  }
  type Chain = Awaited<ReturnType<typeof chain>>;

  async function verifyC(ch: Chain) {
    return verifyRemote(w.address, w.bundlePem, {
      writ: ch.c.writ,
      proof: createProof(ch.c.writ, ch.C.key, { audience: AUD, method: 'GET /repos/acme/widgets', now: new Date() }),
      audience: AUD,
    });
  }

  /** Everything the issue lists as refused after a revocation that reaches C. */
  async function expectAllRefused(ch: Chain, why: RegExp) {
    const v = await verifyC(ch);
    expect(v.valid).toBe(false);
    expect(v.errorCode).toBe('ERR_WRIT_REVOKED');
    expect(v.error).toMatch(why);

    // C's renewal: the same key and chain, a new handshake.
    const renewal = await refusal(handshake(`/agent/c2-${ch.taskId}`, ch.C.key, [ch.root, ch.g1, ch.g2]));
    expect(renewal.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(renewal.writCode).toBe('ERR_REVOKED');

    // B delegates to a new key D: D's handshake is refused.
    const D = newKey();
    const g3 = hopFrom(ch.g1, ch.B, ch.b.claims, D);
    const delegated = await refusal(handshake(`/agent/d-${ch.taskId}`, D.key, [ch.root, ch.g1, g3]));
    expect(delegated.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(delegated.writCode).toBe('ERR_REVOKED');
  }

  it('before any revocation C verifies, revocation checked by the issuer', async () => {
    const ch = await chain();
    const v = await verifyC(ch);
    expect(v.valid).toBe(true);
    const check = v.checks.find((c) => c.check.startsWith('not revoked'));
    expect(check?.by).toBe('verifier');
    expect(check?.check).toMatch(/the issuer's store at revocation sequence \d+/);
  });

  it('revoking the root grant (operator, admin socket) kills A, B and C; a new handshake on the chain is refused', async () => {
    const ch = await chain();
    const r = await admin().revocation.revoke({ kind: 'grant', target: ch.rootId, reason: 'compromised laptop' });
    expect(r.writs).toBe(3);
    await expectAllRefused(ch, new RegExp(`grant ${ch.rootId} revoked by operator: compromised laptop`));
    const again = await refusal(handshake(`/agent/a2-${ch.taskId}`, ch.A.key, [ch.root]));
    expect(again.writCode).toBe('ERR_REVOKED');
    expect(again.message).toMatch(/revoked/);
  });

  it('ending the task (writ task end, as its principal over the public port) kills everything in it', async () => {
    const ch = await chain();
    const tokenFile = join(dir, `${ch.taskId}.token`);
    const bundleFile = join(dir, 'bundle.pem');
    writeFileSync(tokenFile, ch.token);
    writeFileSync(bundleFile, w.bundlePem);
    const out = await runCli(['task', 'end', ch.taskId, '--reason', 'done', '--server', w.address, '--bundle', bundleFile, '--token-file', tokenFile]);
    expect(out.err).toBe('');
    expect(out.code).toBe(0);
    expect(out.out).toMatch(new RegExp(`^ended task ${ch.taskId} \\(revocation \\d+, .*\\); 3 live writs killed\\n$`));
    await expectAllRefused(ch, new RegExp(`task ${ch.taskId} revoked by principal ${oidc.issuer.replace(/[.:/]/g, '\\$&')}#${ch.sub}: done`));
    // Grant creation for the ended task is refused too.
    const grant = await refusal(
      createGrant(w.address, w.bundlePem, {
        subjectToken: ch.token,
        subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
        taskId: ch.taskId,
        goal: 'again',
        ttlSeconds: 600,
        scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
        delegateJkt: newKey().jkt,
      }),
    );
    expect(grant.writCode).toBe('ERR_REVOKED');

    const listed = await runCli(['task', 'list', '--json', '--admin-socket', w.adminSocket]);
    const task = (JSON.parse(listed.out) as Array<{ id: string; state: string; ended_by: string; end_reason: string }>).find((t) => t.id === ch.taskId);
    expect(task).toMatchObject({ state: 'ended', ended_by: `principal ${oidc.issuer}#${ch.sub}`, end_reason: 'done' });
  });

  it('revoking the principal (writ revoke principal) kills every task of it, and it can create no grant', async () => {
    const ch = await chain();
    const other = await chain({ sub: ch.sub });
    const principal = `${oidc.issuer}#${ch.sub}`;
    const out = await runCli(['revoke', 'principal', principal, '--reason', 'left the company', '--admin-socket', w.adminSocket]);
    expect(out.err).toBe('');
    expect(out.out).toMatch(/; 6 live writs killed\n$/);
    await expectAllRefused(ch, /principal .* revoked by operator: left the company/);
    expect((await verifyC(other)).errorCode).toBe('ERR_WRIT_REVOKED');
    const grant = await refusal(
      createGrant(w.address, w.bundlePem, {
        subjectToken: ch.token,
        subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
        taskId: `task-${randomBytes(4).toString('hex')}`,
        goal: 'anything',
        ttlSeconds: 600,
        scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
        delegateJkt: newKey().jkt,
      }),
    );
    expect(grant.writCode).toBe('ERR_REVOKED');
  });

  it("revoking A's key kills what is delegated below it; a writ of another chain stays valid", async () => {
    const ch = await chain();
    const bystander = await chain();
    const r = await admin().revocation.revoke({ kind: 'key', target: ch.A.jkt, reason: '' });
    expect(r.writs).toBe(3);
    await expectAllRefused(ch, new RegExp(`key ${ch.A.jkt} revoked by operator`));
    expect((await verifyC(bystander)).valid).toBe(true);
  });

  it('CreateGrant refuses a root grant for a revoked delegate key, with the revocation and its reason', async () => {
    const K = (await chain()).A;
    await admin().revocation.revoke({ kind: 'key', target: K.jkt, reason: 'key leaked' });
    const ask = (jkt: string) =>
      createGrant(w.address, w.bundlePem, {
        subjectToken: oidc.token(`user-${randomBytes(4).toString('hex')}`, { groups: ['eng'] }),
        subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
        taskId: `task-${randomBytes(4).toString('hex')}`,
        goal: 'anything',
        ttlSeconds: 600,
        scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
        delegateJkt: jkt,
      });
    const refused = await refusal(ask(K.jkt));
    expect(refused.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(refused.writCode).toBe('ERR_REVOKED');
    expect(refused.message).toContain(`revocation: the delegate key ${K.jkt} is revoked (by operator: key leaked)`);
    // Another key is fine.
    expect((await ask(newKey().jkt)).grant).toBeTruthy();
  });

  it("revoking agent B's SPIFFE ID kills B and C, not A", async () => {
    const ch = await chain();
    const r = await admin().revocation.revoke({ kind: 'agent', target: ch.b.claims.sub, reason: '' });
    expect(r.writs).toBe(2);
    await expectAllRefused(ch, /agent spiffe:\/\/example.org\/agent\/b-.* revoked by operator/);
    // A still delegates: a new hop to another agent works.
    const E = newKey();
    const gE = hopFrom(ch.root, ch.A, ch.a.claims, E);
    await expect(handshake(`/agent/e-${ch.taskId}`, E.key, [ch.root, gE])).resolves.toBeDefined();
  });

  it("revoking B's writ by jti kills C (delegated from it) and B's delegations", async () => {
    const ch = await chain();
    const r = await admin().revocation.revoke({ kind: 'writ', target: ch.b.claims.jti, reason: '' });
    expect(r.writs).toBe(2);
    await expectAllRefused(ch, new RegExp(`writ ${ch.b.claims.jti} revoked by operator`));
  });

  it("revoking A's registration entry publishes the writs it kills (and their descendants die with them)", async () => {
    const ch = await chain();
    const r = await admin().revocation.revoke({ kind: 'entry', target: ch.a.entryId, reason: 'decommissioned' });
    expect(r.writs).toBe(3);
    await expectAllRefused(ch, new RegExp(`writ ${ch.a.claims.jti} revoked by operator: decommissioned`));
  });

  it('a delegating agent revokes the grant it signed: below it dies, it and above it live', async () => {
    const ch = await chain();
    const res = await revokeRemote(w.address, w.bundlePem, {
      kind: 'grant',
      target: parseWrit(ch.c.writ).claims.lineage[2]!,
      reason: 'no longer needed',
      credential: {
        case: 'agent',
        value: {
          writ: ch.b.writ,
          proof: createProof(ch.b.writ, ch.B.key, { audience: TD_ID, method: revokeMethod('grant', parseWrit(ch.c.writ).claims.lineage[2]!), now: new Date() }),
        },
      },
    });
    expect(res.writs).toBe(1);
    const v = await verifyC(ch);
    expect(v.errorCode).toBe('ERR_WRIT_REVOKED');
    expect(v.error).toMatch(/revoked by agent spiffe:\/\/example.org\/agent\/b-.* \(jkt .*\): no longer needed/);
    const vb = await verifyRemote(w.address, w.bundlePem, {
      writ: ch.b.writ,
      proof: createProof(ch.b.writ, ch.B.key, { audience: AUD, method: 'GET /', now: new Date() }),
      audience: AUD,
    });
    expect(vb.valid).toBe(true);
  });

  it('an agent whose writ names audiences (aud) still revokes the grant it signed', async () => {
    const ch = await chain();
    // B's renewal restricted to one relying party: a writ with `aud`, not naming the issuer.
    const e = await enrol(`/agent/b-aud-${ch.taskId}`);
    const res = await attest({
      server: w.address,
      bundlePem: w.bundlePem,
      evidenceType: 'join_token',
      key: ch.B.key,
      respond: () => Buffer.from(e.token),
      grants: [ch.root, ch.g1],
      writAudiences: [AUD],
    });
    const bAud = parseWrit(res.writ!).claims;
    expect(bAud.aud).toEqual([AUD]);
    const g2 = ch.c.claims.lineage[2]!;
    const r = await revokeRemote(w.address, w.bundlePem, {
      kind: 'grant',
      target: g2,
      reason: 'restricted writ',
      credential: {
        case: 'agent',
        value: { writ: res.writ!, proof: createProof(res.writ!, ch.B.key, { audience: TD_ID, method: revokeMethod('grant', g2), now: new Date() }) },
      },
    });
    expect(r.writs).toBe(1);
    expect((await verifyC(ch)).errorCode).toBe('ERR_WRIT_REVOKED');
  });

  it('writ revoke as an agent (--writ --key) through the CLI', async () => {
    const ch = await chain();
    const files = { writ: join(dir, `${ch.taskId}.b.writ`), key: join(dir, `${ch.taskId}.b.key`), bundle: join(dir, 'bundle.pem') };
    writeFileSync(files.writ, ch.b.writ);
    writeFileSync(files.key, ch.B.key.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(files.bundle, w.bundlePem);
    const g2 = parseWrit(ch.c.writ).claims.lineage[2]!;
    const out = await runCli(['revoke', 'grant', g2, '--server', w.address, '--bundle', files.bundle, '--writ', files.writ, '--key', files.key]);
    expect(out.err).toBe('');
    expect(out.out).toMatch(new RegExp(`^revoked grant ${g2} .*; 1 live writ killed\\n$`));
    expect((await verifyC(ch)).errorCode).toBe('ERR_WRIT_REVOKED');
  });

  describe('who may not revoke gets PERMISSION_DENIED, and nothing is written', () => {
    /** The next revocation's sequence, found by making one (a throwaway grant revoked by the operator). */
    async function nextSequence(): Promise<bigint> {
      const t = await chain();
      return (await admin().revocation.revoke({ kind: 'writ', target: t.c.claims.jti, reason: '' })).sequence;
    }

    it("a principal revoking another principal's grant, task or principal", async () => {
      const alice = await chain();
      const mallory = await chain();
      const before = await nextSequence();
      for (const [kind, target] of [
        ['grant', alice.rootId],
        ['task', alice.taskId],
        ['principal', `${oidc.issuer}#${alice.sub}`],
      ] as const) {
        const r = await refusal(
          revokeRemote(w.address, w.bundlePem, {
            kind,
            target,
            reason: 'mine now',
            credential: { case: 'principal', value: { subjectToken: mallory.token, subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token' } },
          }),
        );
        expect(r.code, kind).toBe(grpc.status.PERMISSION_DENIED);
        expect(r.writCode).toBe('ERR_REVOCATION_DENIED');
      }
      // Another's grant or task and one that does not exist get the same answer: ids cannot be probed.
      const asMallory = (kind: string, target: string) =>
        refusal(
          revokeRemote(w.address, w.bundlePem, {
            kind,
            target,
            reason: '',
            credential: { case: 'principal', value: { subjectToken: mallory.token, subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token' } },
          }),
        );
      const answers = await Promise.all([
        asMallory('grant', alice.rootId),
        asMallory('grant', 'AAAAAAAAAAAAAAAAAAAAAA'),
        asMallory('task', alice.taskId),
        asMallory('task', 'no-such-task'),
      ]);
      for (const a of answers)
        expect(a).toEqual({
          code: grpc.status.PERMISSION_DENIED,
          writCode: 'ERR_REVOCATION_DENIED',
          message: 'revocation: a principal may revoke only its own grants and tasks',
        });
      expect((await verifyC(alice)).valid).toBe(true);
      // Nothing was written: the next revocation takes the very next sequence.
      expect(await nextSequence()).toBe(before + 1n);
    });

    it('an agent revoking a grant above its own, or the root grant, or its delegator', async () => {
      const ch = await chain();
      const before = await nextSequence();
      const asC = (kind: string, target: string) =>
        refusal(
          revokeRemote(w.address, w.bundlePem, {
            kind,
            target,
            reason: '',
            credential: {
              case: 'agent',
              value: { writ: ch.c.writ, proof: createProof(ch.c.writ, ch.C.key, { audience: TD_ID, method: revokeMethod(kind, target), now: new Date() }) },
            },
          }),
        );
      const lineage = ch.c.claims.lineage;
      for (const [kind, target] of [
        ['grant', lineage[1]!],
        ['grant', lineage[0]!],
        ['grant', lineage[2]!],
        ['agent', ch.b.claims.sub],
        ['task', ch.taskId],
      ] as const) {
        const r = await asC(kind, target);
        expect(r.code, `${kind} ${target}`).toBe(grpc.status.PERMISSION_DENIED);
        expect(r.writCode).toBe('ERR_REVOCATION_DENIED');
      }
      expect((await verifyC(ch)).valid).toBe(true);
      expect(await nextSequence()).toBe(before + 1n);
    });

    it('no credential, a forged proof, or a proof for another method on the public port', async () => {
      const ch = await chain();
      const before = await nextSequence();
      const none = await refusal(revokeRemote(w.address, w.bundlePem, { kind: 'grant', target: ch.rootId, reason: '' }));
      expect(none.writCode).toBe('ERR_REVOCATION_DENIED');
      const forged = await refusal(
        revokeRemote(w.address, w.bundlePem, {
          kind: 'grant',
          target: ch.c.claims.lineage[2]!,
          reason: '',
          credential: {
            case: 'agent',
            value: {
              writ: ch.b.writ,
              proof: createProof(ch.b.writ, newKey().key, { audience: TD_ID, method: revokeMethod('grant', ch.c.claims.lineage[2]!), now: new Date() }),
            },
          },
        }),
      );
      expect(forged.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(forged.writCode).toBe('ERR_PROOF_INVALID');
      const otherMethod = await refusal(
        revokeRemote(w.address, w.bundlePem, {
          kind: 'grant',
          target: ch.c.claims.lineage[2]!,
          reason: '',
          credential: {
            case: 'agent',
            value: { writ: ch.b.writ, proof: createProof(ch.b.writ, ch.B.key, { audience: TD_ID, method: 'GET /', now: new Date() }) },
          },
        }),
      );
      expect(otherMethod.writCode).toBe('ERR_PROOF_INVALID');
      expect((await verifyC(ch)).valid).toBe(true);
      expect(await nextSequence()).toBe(before + 1n);
    });

    it('the admin socket takes no credential (a principal token there is refused, not ignored)', async () => {
      const ch = await chain();
      const r = await refusal(
        admin().revocation.revoke({
          kind: 'grant',
          target: ch.rootId,
          reason: '',
          credential: { case: 'principal', value: { subjectToken: ch.token, subjectTokenType: '' } },
        }),
      );
      expect(r.writCode).toBe('ERR_REVOCATION_INVALID');
      expect((await verifyC(ch)).valid).toBe(true);
    });
  });

  it('unknown, malformed and repeated revocations are clear errors and change nothing', async () => {
    const ch = await chain();
    const unknown = await refusal(admin().revocation.revoke({ kind: 'grant', target: 'AAAAAAAAAAAAAAAAAAAAAA', reason: '' }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.writCode).toBe('ERR_REVOCATION_NOT_FOUND');
    for (const [kind, target] of [
      ['grant', 'not a grant id'],
      ['token', ch.rootId],
      ['key', 'short'],
      ['principal', 'no-hash'],
      ['agent', 'https://example.org/x'],
      ['task', '-leading-dash'],
    ] as const) {
      const r = await refusal(admin().revocation.revoke({ kind, target, reason: '' }));
      expect(r.code, `${kind} ${target}`).toBe(grpc.status.INVALID_ARGUMENT);
      expect(r.writCode).toBe('ERR_REVOCATION_INVALID');
    }
    const long = await refusal(admin().revocation.revoke({ kind: 'grant', target: ch.rootId, reason: 'x'.repeat(513) }));
    expect(long.writCode).toBe('ERR_REVOCATION_INVALID');
    // One line: a newline would forge lines where the reason is printed (writ task show).
    for (const reason of ['a\n└─ writ forged', 'tab\there', 'ls\u2028', 'c1\u0085']) {
      const r = await refusal(admin().revocation.revoke({ kind: 'grant', target: ch.rootId, reason }));
      expect(r.writCode, JSON.stringify(reason)).toBe('ERR_REVOCATION_INVALID');
    }
    expect((await verifyC(ch)).valid).toBe(true);

    const first = await admin().revocation.revoke({ kind: 'grant', target: ch.rootId, reason: 'first' });
    const second = await refusal(admin().revocation.revoke({ kind: 'grant', target: ch.rootId, reason: 'second' }));
    expect(second.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(second.writCode).toBe('ERR_REVOCATION_EXISTS');
    // The first reason stands.
    expect((await verifyC(ch)).error).toMatch(/: first/);
    const cli = await runCli(['revoke', 'grant', ch.rootId, '--admin-socket', w.adminSocket]);
    expect(cli.code).toBe(1);
    expect(cli.err).toMatch(/was revoked before/);
    const next = await admin().revocation.revoke({ kind: 'writ', target: (await chain()).c.claims.jti, reason: '' });
    expect(next.sequence).toBe(first.sequence + 1n);
  });

  describe('delegation only from live authority', () => {
    it("A's writ has expired: the hop A signs for B is refused at B's handshake", async () => {
      const A = newKey();
      const B = newKey();
      const sub = `user-${randomBytes(4).toString('hex')}`;
      const taskId = `task-${randomBytes(4).toString('hex')}`;
      const root = await createGrant(w.address, w.bundlePem, {
        subjectToken: oidc.token(sub, { groups: ['eng'] }),
        subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
        taskId,
        goal: 'short-lived delegator',
        ttlSeconds: 1800,
        scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
        maxDepth: 2,
        delegateJkt: A.jkt,
      });
      const a = await handshake(`/agent/short-${taskId}`, A.key, [root.grant], 60);
      expect(a.claims.exp - a.claims.iat).toBeLessThanOrEqual(60);
      try {
        clock.offsetMs = 70_000; // past A's writ and the 5 s skew; the root grant still has 28 minutes
        const g1 = hopFrom(root.grant, A, a.claims, B);
        const r = await refusal(handshake(`/agent/late-${taskId}`, B.key, [root.grant, g1]));
        expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
        expect(r.writCode).toBe('ERR_GRANT_INVALID');
        expect(r.message).toMatch(/which has expired: a delegator needs live authority/);
      } finally {
        clock.offsetMs = 0;
      }
    });

    it("A's registration entry was deleted: the hop A signs for B is refused", async () => {
      const ch = await chain();
      await admin().admin.deleteEntry({ id: ch.a.entryId });
      const D = newKey();
      const g = hopFrom(ch.root, ch.A, ch.a.claims, D);
      const r = await refusal(handshake(`/agent/orphan-${ch.taskId}`, D.key, [ch.root, g]));
      expect(r.writCode).toBe('ERR_GRANT_INVALID');
      expect(r.message).toMatch(/whose registration entry no longer exists/);
    });
  });

  it('writ task show prints the tree with each node state and who revoked it', async () => {
    const ch = await chain();
    const g2 = ch.c.claims.lineage[2]!;
    await admin().revocation.revoke({ kind: 'grant', target: g2, reason: 'too broad' });
    const text = await runCli(['task', 'show', ch.taskId, '--admin-socket', w.adminSocket]);
    expect(text.err).toBe('');
    const lines = text.out.split('\n');
    expect(lines[0]).toMatch(new RegExp(`^task ${ch.taskId}: "triage the open issues of acme/widgets", live, ends `));
    expect(lines[1]).toBe(`principal ${oidc.issuer}#${ch.sub}`);
    expect(lines[2]).toMatch(new RegExp(`^└─ root grant ${ch.rootId} → key ${ch.A.jkt}; scope repo:\\*=repo://acme/\\*; max depth 3; live, expires `));
    expect(lines[3]).toMatch(new RegExp(`^   └─ writ ${ch.a.claims.jti} ${ch.a.claims.sub.replace(/[.]/g, '\\.')}, key ${ch.A.jkt}, join_token; live`));
    expect(lines[4]).toMatch(
      new RegExp(`^      └─ hop 1 grant from ${ch.a.claims.sub} .* → key ${ch.B.jkt}; scope repo:read=repo://acme/\\* repo:comment=repo://acme/\\*;`),
    );
    expect(lines[5]).toMatch(new RegExp(`^         └─ writ ${ch.b.claims.jti} .*; live`));
    expect(lines[6]).toMatch(
      new RegExp(`^            └─ hop 2 grant from ${ch.b.claims.sub} ${g2} → key ${ch.C.jkt}; .*; revoked .* by operator: grant ${g2} \\(too broad\\)$`),
    );
    expect(lines[7]).toMatch(new RegExp(`^               └─ writ ${ch.c.claims.jti} .*; revoked .* by operator: grant ${g2} \\(too broad\\)$`));

    const json = JSON.parse((await runCli(['task', 'show', ch.taskId, '--json', '--admin-socket', w.adminSocket])).out);
    expect(json.task).toMatchObject({ id: ch.taskId, state: 'live', principal: `${oidc.issuer}#${ch.sub}` });
    const rootNode = json.tree[0];
    expect(rootNode).toMatchObject({ id: ch.rootId, depth: 0, delegate_jkt: ch.A.jkt, state: 'live' });
    const writA = rootNode.writs[0];
    expect(writA).toMatchObject({ id: ch.a.claims.jti, spiffe_id: ch.a.claims.sub, jkt: ch.A.jkt, evidence_type: 'join_token', state: 'live' });
    const hop2 = writA.delegated[0].writs[0].delegated[0];
    expect(hop2).toMatchObject({ id: g2, state: 'revoked', revoked_by: { kind: 'grant', target: g2, actor: 'operator', reason: 'too broad' } });
    expect(hop2.writs[0]).toMatchObject({ id: ch.c.claims.jti, state: 'revoked', revoked_by: { actor: 'operator' } });

    const missing = await runCli(['task', 'show', 'no-such-task', '--admin-socket', w.adminSocket]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/no task no-such-task/);
  });

  it('CLI usage errors name what is wrong', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['revoke'], /give what to revoke/],
      [['revoke', 'gadget', 'x'], /unknown kind "gadget"/],
      [['revoke', 'grant', 'x', '--server', '127.0.0.1:1'], /--server needs --bundle/],
      [['revoke', 'grant', 'x', '--bundle', 'b.pem'], /--bundle needs --server/],
      [['revoke', 'grant', 'x', '--server', '127.0.0.1:1', '--admin-socket', 's'], /exclude each other/],
      [['task', 'end'], /the task ID is required/],
      [['task', 'list', '--limit', '0'], /--limit must be an integer/],
    ];
    for (const [argv, msg] of cases) {
      const r = await runCli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toMatch(msg);
    }
  });
});
