/**
 * The agent's side of escalation through its sidecar: AgentService.Escalate (wait) on the Unix
 * socket → the issuer's pending request → an approver approves with a passkey → the sidecar
 * keeps the step-up grant and renews at once (by its SVID) → the writ it serves carries the
 * approval and a relying party allows the action. A real issuer, a real sidecar, a join token.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approvalClient } from '../../src/agent/approval-client.js';
import { createGrant } from '../../src/agent/grant-client.js';
import { joinTokenProducer } from '../../src/attestation/join-token/plugin.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { create } from '@bufbuild/protobuf';
import { AgentService, EscalateRequestSchema, type EscalateResponse } from '../../src/gen/writ/agent/v1/agent_pb.js';
import { securityHeaderInterceptor } from '../../src/sidecar/security-header.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { grpcClientConstructor } from '../../src/rpc/grpc-adapter.js';
import { renewingSource } from '../../src/sidecar/identity-source.js';
import { runSidecar } from '../../src/sidecar/run.js';
import { StepUpHolder } from '../../src/sidecar/step-ups.js';
import { parseWrit } from '../../src/writ/writ.js';
import { startOidc, type TestOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

const RP_ID = 'console.example';
const ORIGIN = 'https://console.example';
const b64 = (b: Buffer) => b.toString('base64url');

describe('AgentService.Escalate', () => {
  let w: Awaited<ReturnType<typeof startServer>>;
  let oidc: TestOidc;
  const cleanup: Array<() => Promise<void> | void> = [];

  beforeAll(async () => {
    oidc = await startOidc();
    w = await startServer({ principals: [{ issuer: oidc.issuer, audience: 'writ' }], approvals: { rp_id: RP_ID, origin: ORIGIN } });
    await adminClients(w.adminSocket).admin.pushPolicy({
      files: [
        {
          name: 'acme.cedar',
          text: `${POLICY}\n@id("oncall") permit(principal, action == Writ::Action::"approve", resource) when { principal.groups.contains("sec-oncall") };`,
        },
      ],
    });
  });
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
    await w?.stop();
    await oidc?.stop();
  });

  it('escalates, waits, and serves a renewed writ that carries the approval', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const root = await createGrant(w.address, w.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: 'task-sidecar-escalate',
      goal: 'ship',
      scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
      delegateJkt: jwkThumbprint(createPublicKey(key)),
    });
    const admin = adminClients(w.adminSocket).admin;
    const tok = await admin.createJoinToken({ ttl: 600 });
    await admin.createEntry({ entry: { spiffeId: 'spiffe://example.org/agent/escalating', selectors: [{ type: 'join_token', value: tok.id }] } });
    const stepUps = new StepUpHolder();
    const dir = mkdtempSync(join(tmpdir(), 'wse-'));
    const sc = await runSidecar({
      source: renewingSource(
        {
          server: w.address,
          bundlePem: w.bundlePem,
          producer: joinTokenProducer,
          values: { 'join-token': tok.token },
          key,
          grants: [root.grant],
          stepUps: () => stepUps.current(Date.now()),
          timeoutMs: 10_000,
        },
        Date.now,
      ),
      now: Date.now,
      socketPath: join(dir, 'agent.sock'),
      escalation: { server: w.address, bundlePem: () => w.bundlePem, stepUps },
    });
    cleanup.push(async () => {
      await sc.close();
      rmSync(dir, { recursive: true, force: true });
    });
    sc.sidecar.start();
    await sc.sidecar.ready();

    const Client = grpcClientConstructor(AgentService);
    const agent = new Client(`unix:${join(dir, 'agent.sock')}`, grpc.credentials.createInsecure(), {
      interceptors: [securityHeaderInterceptor],
    }) as grpc.Client & Record<string, (...a: unknown[]) => unknown>;
    cleanup.push(() => agent.close());
    const escalated = new Promise<EscalateResponse>((resolve, reject) =>
      agent.escalate!(
        create(EscalateRequestSchema, { action: 'repo:write', resource: 'repo://acme/app', reason: 'push the fix', wait: true }),
        (e: Error | null, r: EscalateResponse) => (e ? reject(e) : resolve(r)),
      ),
    );
    // An approver finds it, registers a passkey and approves.
    const client = approvalClient(w.address, w.bundlePem);
    const bob = oidc.token('bob', { groups: ['sec-oncall'] });
    let pending: string | undefined;
    for (let i = 0; i < 100 && !pending; i++) {
      pending = (await client.listApprovals({ approverToken: bob, taskId: 'task-sidecar-escalate' })).approvals[0]?.id;
      if (!pending) await new Promise((r) => setTimeout(r, 50));
    }
    expect(pending).toBeDefined();
    const auth = new SoftAuthenticator('ES256', RP_ID);
    const reg = JSON.parse((await client.beginPasskeyRegistration({ approverToken: bob })).optionsJson) as { challenge: string };
    const made = auth.makeCredential({ challenge: Buffer.from(reg.challenge, 'base64url'), origin: ORIGIN });
    await client.finishPasskeyRegistration({
      approverToken: bob,
      responseJson: JSON.stringify({
        id: b64(made.credentialId),
        rawId: b64(made.credentialId),
        type: 'public-key',
        response: { attestationObject: b64(made.attestationObject), clientDataJSON: b64(made.clientDataJSON) },
        clientExtensionResults: {},
      }),
    });
    const begun = await client.beginApproval({ id: pending!, approverToken: bob });
    const a = auth.getAssertion({ challenge: Buffer.from((JSON.parse(begun.optionsJson) as { challenge: string }).challenge, 'base64url'), origin: ORIGIN });
    await client.approve({
      id: pending!,
      approverToken: bob,
      assertionJson: JSON.stringify({
        id: b64(a.credentialId),
        rawId: b64(a.credentialId),
        type: 'public-key',
        response: {
          authenticatorData: b64(a.authenticatorData),
          clientDataJSON: b64(a.clientDataJSON),
          signature: b64(a.signature),
          userHandle: b64(a.userHandle),
        },
        clientExtensionResults: {},
      }),
    });
    const r = await escalated;
    expect(r).toMatchObject({ approvalId: pending, state: 'approved', decidedBy: `${oidc.issuer}#bob` });
    // The sidecar renews at once; the writ it serves then carries the step-up grant.
    const carried = await new Promise<string>((resolve) => {
      const check = () => {
        const s = sc.sidecar.current();
        if (s.state === 'serving' && s.identity.writ && parseWrit(s.identity.writ).claims.stepup?.length) {
          off();
          resolve(s.identity.writ);
        }
      };
      const off = sc.sidecar.subscribe(check);
      check();
    });
    expect(parseWrit(carried).claims.stepup).toHaveLength(1);
  }, 60_000);
});
