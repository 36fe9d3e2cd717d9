/**
 * A real `writ server` (in process, its housekeeping driven by hand over an injected clock):
 * checkpoints are signed every `audit.checkpoint_interval`, not at every housekeeping tick, and
 * the refusals the server tallied are written as aggregate records before the checkpoint; a
 * checkpoint refused for a rolled-back database counts in the metrics.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { attest } from '../../src/agent/attest-client.js';
import { parseRecord } from '../../src/audit/record.js';
import { ManualClock } from '../../src/clock.js';
import { HIGH_WATER_FILE } from '../../src/server/audit-high-water.js';
import { startServer } from '../helpers/server.js';

const running: Array<{ stop(): Promise<void> }> = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
});

async function start(interval: string) {
  const clock = new ManualClock(Date.now());
  // Housekeeping only when the test ticks.
  const w = await startServer({ audit: { checkpoint_interval: interval } }, { clock, rotationIntervalMs: 3_600_000 });
  running.push(w);
  const entry = (n: number) =>
    w.server.core.admin.createEntry({
      spiffeId: `spiffe://example.org/agent/${n}`,
      selectors: [{ type: 'join_token', value: `t${n}` }],
      x509SvidTtl: 0,
      jwtSvidTtl: 0,
      scopeCeiling: [],
      hint: '',
    });
  const signedSize = async () => (await w.server.store.latestAuditCheckpoint())?.size;
  return { w, clock, entry, signedSize };
}

describe('checkpoints every audit.checkpoint_interval', () => {
  it('signs at the first tick, not again within the interval, and again once it has passed', async () => {
    const { w, clock, entry, signedSize } = await start('10m');
    await entry(1);
    await w.server.tick();
    const first = await signedSize();
    expect(first).toBe(await w.server.store.getAuditSize());
    await entry(2);
    clock.advance(9 * 60_000);
    await w.server.tick();
    expect(await signedSize()).toBe(first);
    clock.advance(60_000);
    await w.server.tick();
    expect(await signedSize()).toBe(first! + 1);
    // On demand, whatever the interval.
    await entry(3);
    expect((await w.server.core.audit.checkpoint()).checkpoint.size).toBe(first! + 2);
  });

  it('writes the tallied refusals as aggregate records, then a checkpoint that covers them', async () => {
    const { w, clock } = await start('1m');
    for (let i = 0; i < 3; i++) w.server.core.refusals.add('handshake.refused', 'ERR_EVIDENCE_INVALID', 'join_token');
    w.server.core.refusals.add('handshake.refused', 'ERR_EVIDENCE_TYPE_UNKNOWN', 'no-such-type');
    clock.advance(60_000);
    await w.server.tick();
    const size = await w.server.store.getAuditSize();
    const rows = (await w.server.store.listAuditRecords(size - 2, 2)).map((r) => parseRecord(r.canonical));
    expect(rows).toEqual([
      expect.objectContaining({
        event: 'handshake.refused',
        actor: { kind: 'issuer' },
        reason: 'ERR_EVIDENCE_INVALID',
        action: 'attest with join_token',
        resource: 'refusals:3',
      }),
      expect.objectContaining({ event: 'handshake.refused', reason: 'ERR_EVIDENCE_TYPE_UNKNOWN', action: 'attest with unknown', resource: 'refusals:1' }),
    ]);
    expect((await w.server.store.latestAuditCheckpoint())!.size).toBe(size);
    expect(w.server.core.refusals.pending).toBe(0);
  });

  it('a checkpoint refused by the high-water mark is counted in writ_audit_checkpoint_refusals_total', async () => {
    const { w, clock, entry } = await start('1m');
    await entry(1);
    await w.server.tick();
    // The mark says a larger tree was signed than the database holds: what a restored backup looks like.
    writeFileSync(
      join(w.dataDir, HIGH_WATER_FILE),
      `${JSON.stringify({ v: 1, origin: 'example.org/audit', size: 10_000, root: Buffer.alloc(32).toString('base64') })}\n`,
    );
    await entry(2);
    clock.advance(60_000);
    await w.server.tick();
    const metrics = await w.server.metrics.registry.getSingleMetricAsString('writ_audit_checkpoint_refusals_total');
    expect(metrics).toMatch(/writ_audit_checkpoint_refusals_total 1$/m);
    await expect(w.server.core.audit.checkpoint()).rejects.toMatchObject({ code: 'ERR_AUDIT_INCONSISTENT' });
  });
});

describe('the server tallies refusals of unnamed peers over gRPC, and never a refusal already recorded', () => {
  it('a bad join token and a garbage grant chain are counted; a revoked agent is one record and not counted', async () => {
    const { w } = await start('1h');
    const key = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const go = (token: string, grants: string[] = []) =>
      attest({
        server: w.address,
        bundlePem: w.bundlePem,
        evidenceType: 'join_token',
        key: key(),
        respond: () => Buffer.from(token),
        grants,
        timeoutMs: 30_000,
      });
    const before = await w.server.store.getAuditSize();
    await expect(go(`${'0'.repeat(16)}.${'A'.repeat(43)}`)).rejects.toThrow();
    await expect(go('x', ['not-a-grant'])).rejects.toThrow();
    expect(w.server.core.refusals.pending).toBe(2);
    expect(await w.server.store.getAuditSize()).toBe(before);
    // A named agent, revoked: its refusal is one record, not a count.
    const t = await w.server.core.admin.createJoinToken(600_000, 'spiffe://example.org/agent/revoked');
    await w.server.core.revocations.revoke('agent', 'spiffe://example.org/agent/revoked', 'gone', { kind: 'operator' });
    const mid = await w.server.store.getAuditSize();
    await expect(go(t.token)).rejects.toThrow(/revoked/);
    expect(w.server.core.refusals.pending).toBe(2);
    const [rec] = (await w.server.store.listAuditRecords(mid, 10)).map((r) => parseRecord(r.canonical));
    expect(rec).toMatchObject({ event: 'handshake.refused', actor: { kind: 'agent', spiffeId: 'spiffe://example.org/agent/revoked' }, reason: 'ERR_REVOKED' });
    await w.server.tick();
    const tallied = (await w.server.store.listAuditRecords(mid + 1, 10)).map((r) => parseRecord(r.canonical));
    expect(tallied.map((r) => [r.event, r.reason, r.action, r.resource])).toEqual([
      ['handshake.refused', 'ERR_JOIN_TOKEN_INVALID', 'attest with join_token', 'refusals:1'],
      ['delegation.refused', expect.stringMatching(/^ERR_/), 'hello with join_token', 'refusals:1'],
    ]);
  });
});
