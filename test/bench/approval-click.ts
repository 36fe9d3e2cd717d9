/**
 * `BENCH_ONLY=approvals`, click to writ: from the approver's Approve call (a WebAuthn assertion
 * made beforehand by a software authenticator, test/helpers/soft-authenticator.ts) to the
 * agent's FetchWrit stream, on the sidecar's Unix socket, delivering the renewed writ that
 * carries the step-up grant. One real issuer on loopback (SQLite), one in-process sidecar with
 * join-token evidence whose agent waits in AgentService.Escalate; the path timed is the Approve
 * transaction, the issuer's approval change waking the sidecar's WatchApproval, the sidecar's
 * immediate renewal (handshake by its SVID, step-up grants checked and added), and FetchWrit.
 * The floor, measured in the same run with the same sidecar: a bare renewal (renewNow) to the
 * FetchWrit message carrying its writ. BENCH_APPROVAL_CLICKS (default 30) sets the samples.
 */
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approvalClient } from '../../src/agent/approval-client.js';
import { createGrant } from '../../src/agent/grant-client.js';
import { joinTokenProducer } from '../../src/attestation/join-token/plugin.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { AgentService, EscalateRequestSchema, type EscalateResponse, type FetchWritResponse } from '../../src/gen/writ/agent/v1/agent_pb.js';
import { jwkThumbprint } from '../../src/jose/jws.js';
import { grpcClientConstructor } from '../../src/rpc/grpc-adapter.js';
import { renewingSource } from '../../src/sidecar/identity-source.js';
import { runSidecar } from '../../src/sidecar/run.js';
import { securityHeaderInterceptor } from '../../src/sidecar/security-header.js';
import { StepUpHolder } from '../../src/sidecar/step-ups.js';
import { parseWrit } from '../../src/writ/writ.js';
import { startOidc } from '../helpers/oidc.js';
import { POLICY } from '../helpers/policies.js';
import { startServer } from '../helpers/server.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;

const SAMPLES = Number(process.env.BENCH_APPROVAL_CLICKS ?? 30);
const RP_ID = 'console.example';
const ORIGIN = 'https://console.example';
const TASK = 'task-bench-click';
const b64 = (b: Buffer) => b.toString('base64url');
const pct = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

export async function approvalClickBench(record: Record): Promise<void> {
  const oidc = await startOidc();
  const w = await startServer({ principals: [{ issuer: oidc.issuer, audience: 'writ' }], approvals: { rp_id: RP_ID, origin: ORIGIN } });
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-click-'));
  const closers: Array<() => unknown> = [];
  try {
    const admin = adminClients(w.adminSocket).admin;
    await admin.pushPolicy({
      files: [
        {
          name: 'acme.cedar',
          text: `${POLICY}\n@id("oncall") permit(principal, action == Writ::Action::"approve", resource) when { principal.groups.contains("sec-oncall") };`,
        },
      ],
    });
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const root = await createGrant(w.address, w.bundlePem, {
      subjectToken: oidc.token('alice', { groups: ['eng'] }),
      subjectTokenType: 'urn:ietf:params:oauth:token-type:id_token',
      taskId: TASK,
      goal: 'bench',
      scope: [{ action: 'repo:read', resource: 'repo://acme/*' }],
      ttlSeconds: 3600,
      delegateJkt: jwkThumbprint(createPublicKey(key)),
    });
    const tok = await admin.createJoinToken({ ttl: 600 });
    await admin.createEntry({ entry: { spiffeId: 'spiffe://example.org/agent/bench-click', selectors: [{ type: 'join_token', value: tok.id }] } });
    const stepUps = new StepUpHolder();
    const socketPath = join(dir, 'agent.sock');
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
      socketPath,
      escalation: { server: w.address, bundlePem: () => w.bundlePem, stepUps },
    });
    closers.push(() => sc.close());
    sc.sidecar.start();
    await sc.sidecar.ready();

    const Client = grpcClientConstructor(AgentService);
    const agent = new Client(`unix:${socketPath}`, grpc.credentials.createInsecure(), { interceptors: [securityHeaderInterceptor] }) as grpc.Client &
      globalThis.Record<string, (...a: unknown[]) => unknown>;
    closers.push(() => agent.close());
    // The agent's FetchWrit stream: every writ it delivers, with when it arrived.
    const delivered: { writ: string; at: number }[] = [];
    let wake: (() => void) | undefined;
    const stream = (agent.fetchWrit as (r: unknown) => grpc.ClientReadableStream<FetchWritResponse>).call(agent, {});
    stream.on('data', (m: FetchWritResponse) => {
      delivered.push({ writ: m.writ, at: performance.now() });
      wake?.();
    });
    stream.on('error', () => {});
    closers.push(() => stream.cancel());
    const deliveredAfter = async (from: number, pred: (writ: string) => boolean): Promise<number> => {
      for (;;) {
        const hit = delivered.slice(from).find((d) => pred(d.writ));
        if (hit) return hit.at;
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 5_000).unref();
        });
      }
    };
    await deliveredAfter(0, () => true);

    // The approver: a passkey registered once through the real ceremony.
    const client = approvalClient(w.address, w.bundlePem);
    const bob = oidc.token('bob', { groups: ['sec-oncall'] });
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

    const clicks: number[] = [];
    const renewals: number[] = [];
    for (let i = 0; i < SAMPLES + 3; i++) {
      // Floor: a bare renewal, interleaved with the clicks.
      let from = delivered.length;
      let t0 = performance.now();
      sc.sidecar.renewNow();
      const renewed = await deliveredAfter(from, () => true);
      if (i >= 3) renewals.push(renewed - t0);

      const escalated = new Promise<EscalateResponse>((resolve, reject) =>
        agent.escalate!(
          create(EscalateRequestSchema, { action: 'repo:write', resource: `repo://acme/r${i}`, reason: 'bench', wait: true }),
          (e: Error | null, r: EscalateResponse) => (e ? reject(e) : resolve(r)),
        ),
      );
      let id: string | undefined;
      while (!id) {
        id = (await client.listApprovals({ approverToken: bob, taskId: TASK })).approvals[0]?.id;
        if (!id) await new Promise((r) => setTimeout(r, 5));
      }
      const begun = await client.beginApproval({ id, approverToken: bob });
      const a = auth.getAssertion({ challenge: Buffer.from((JSON.parse(begun.optionsJson) as { challenge: string }).challenge, 'base64url'), origin: ORIGIN });
      const assertionJson = JSON.stringify({
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
      });
      from = delivered.length;
      t0 = performance.now();
      const done = await client.approve({ id, approverToken: bob, assertionJson });
      const grant = done.approval!.stepUpGrant;
      const at = await deliveredAfter(from, (writ) => parseWrit(writ).claims.stepup?.includes(grant) ?? false);
      if (i >= 3) clicks.push(at - t0);
      if ((await escalated).state !== 'approved') throw new Error('bench: the escalation did not end approved');
    }
    clicks.sort((x, y) => x - y);
    renewals.sort((x, y) => x - y);
    const r1 = (x: number) => Math.round(x * 10) / 10;
    record(
      'approvals_click_to_writ_p50_ms',
      r1(pct(clicks, 50)),
      `ms from Approve (passkey assertion ready) to the agent's FetchWrit delivering the renewed writ carrying the step-up grant, sidecar on loopback; ${SAMPLES} one at a time`,
      r1(pct(renewals, 50)),
    );
    record('approvals_click_to_writ_p99_ms', r1(pct(clicks, 99)), 'the same, p99', r1(pct(renewals, 99)));
    record(
      'approvals_bare_renewal_p50_ms',
      r1(pct(renewals, 50)),
      "ms from the sidecar's renewNow to FetchWrit delivering the renewed writ (the floor), same run",
    );
  } finally {
    for (const c of closers.reverse()) await c();
    await w.stop();
    await oidc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
