/**
 * `make bench`, audit log. First `audit_handshake_ratio`: handshakes/s of the issuer with the
 * audit log on divided by the same with it off, in one run: two issuers over SQLite files,
 * identical but for the audit appender (the off one has a no-op injected through IssuerDeps'
 * `appendAudit`, a seam for this benchmark only, docs/testing.md), driven one handshake each in
 * turn so that drift of the machine reaches both; each handshake presents a root grant, so it
 * appends two records (handshake.issued, writ.issued) beside its SVID, writ and decision rows.
 * Then a real SQLite store filled with BENCH_AUDIT_RECORDS records (default 1,000,000) appended
 * through `appendAudit` in transactions of 10,000 (through the store, not by handshakes); the
 * time to generate an inclusion proof (record read and proof, in one transaction) and a
 * consistency proof at random positions, medians of RUNS; and verify-log's time, scaled per
 * million records. Names carry the record count (`_1m_` at the default).
 */
import { generateKeyPairSync, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, appendAudit, storeNodes, verifyStoredLog } from '../../src/audit/log.js';
import { leafHash, rootHash, verifyConsistency, verifyInclusion } from '../../src/audit/merkle.js';
import { noteSigner } from '../../src/audit/note.js';
import type { NewAuditRecord } from '../../src/audit/record.js';
import { systemClock } from '../../src/clock.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { issuanceWorld, newAgent } from '../helpers/issuance.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;

const RECORDS = Number(process.env.BENCH_AUDIT_RECORDS ?? 1_000_000);
const BATCH = 10_000;
const RUNS = 200;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const label = (n: number) => (n % 1_000_000 === 0 ? `${n / 1_000_000}m` : n % 1000 === 0 ? `${n / 1000}k` : `${n}`);

const rec = (i: number): NewAuditRecord => ({
  at: 1_700_000_000_000 + i,
  event: 'handshake.issued',
  actor: { kind: 'agent', spiffeId: `spiffe://example.org/agent/${i % 1000}`, jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' },
  principal: { iss: 'https://idp.example.org', sub: `user-${i % 100}` },
  task: `task-${i % 500}`,
  lineage: ['g-root', 'g-hop1'],
  action: 'receive task at depth 1',
  resource: null,
  decision: 'allow',
  reason: null,
  policies: ['acme-agents-receive'],
  snapshot: 'a'.repeat(64),
  evidence: 'b'.repeat(64),
  created: ['0123456789abcdef', `w-${i}`],
});

/** Handshakes per side of the on/off comparison, after a warm-up of each. */
const RATIO_HANDSHAKES = 1500;
const RATIO_WARMUP = 200;

async function handshakeRatio(record: Record): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-audit-ratio-'));
  const worlds = await Promise.all(
    [true, false].map(async (on) => {
      const w = await issuanceWorld({ storePath: join(dir, `${on ? 'on' : 'off'}.db`), ...(on ? {} : { appendAudit: async () => undefined }) });
      w.clock.set(Date.now());
      await w.register('/agent/bench', ['fake:bench']);
      const agent = newAgent();
      const root = (await w.grants.create(w.grantRequest(agent, { taskId: 'bench-1' }))).grant;
      return { w, one: () => w.attest(agent, { grants: [root], sel: ['fake:bench'] }), ms: 0 };
    }),
  );
  const [on, off] = worlds as [(typeof worlds)[0], (typeof worlds)[0]];
  try {
    for (let i = 0; i < RATIO_WARMUP; i++) for (const x of worlds) await x.one();
    // One handshake each in turn, the side that goes first alternating: the machine's drift (other
    // load, JIT, the growing stores) reaches both sides alike, which rounds of many would not ensure.
    for (let i = 0; i < RATIO_HANDSHAKES; i++) {
      for (const x of i % 2 === 0 ? [on, off] : [off, on]) {
        const t = performance.now();
        await x.one();
        x.ms += performance.now() - t;
      }
    }
    const onSize = await on.w.store.getAuditSize();
    if ((await off.w.store.getAuditSize()) > onSize / 10) throw new Error('bench: the audit-off issuer appended records');
    const rate = (x: typeof on) => RATIO_HANDSHAKES / (x.ms / 1000);
    const unit = `root-grant handshakes one at a time, issuer in process over a SQLite file, ${RATIO_HANDSHAKES} each, interleaved`;
    record('audit_handshake_on_per_s', Math.round(rate(on)), `handshakes/s with the audit log (${unit})`);
    record('audit_handshake_off_per_s', Math.round(rate(off)), 'handshakes/s, the same with a no-op audit appender (same run)');
    record('audit_handshake_ratio', Number((rate(on) / rate(off)).toFixed(3)), 'ratio (handshakes/s with the audit log on / off, same run; goal >= 0.9)');
  } finally {
    for (const x of worlds) await x.w.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function auditBench(record: Record): Promise<void> {
  await handshakeRatio(record);
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-audit-'));
  const store = new SqliteStore(join(dir, 'w.db'));
  try {
    const t0 = performance.now();
    for (let from = 0; from < RECORDS; from += BATCH) {
      await store.transaction(async (tx) => {
        for (let i = from; i < Math.min(from + BATCH, RECORDS); i++) await appendAudit(tx, rec(i));
      });
    }
    const appendMs = performance.now() - t0;
    const n = label(RECORDS);
    record(
      `audit_append_${n}_per_s`,
      Math.round(RECORDS / (appendMs / 1000)),
      `records/s (appendAudit into SQLite, ${BATCH} per transaction, ${RECORDS} records)`,
    );

    const signer = noteSigner('example.org/audit', generateKeyPairSync('ed25519').privateKey);
    const log = new AuditLog({ store, signer, clock: systemClock });
    const cp = await log.checkpoint();
    const inclusion: number[] = [];
    const consistency: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const seq = randomInt(RECORDS);
      let t = performance.now();
      const b = await log.prove(seq, RECORDS);
      inclusion.push(performance.now() - t);
      verifyInclusion(seq, RECORDS, leafHash(b.record), b.proof, cp.checkpoint.root);
      const size1 = 1 + randomInt(RECORDS - 1);
      t = performance.now();
      const p = await log.consistency(size1, RECORDS);
      consistency.push(performance.now() - t);
      if (r === 0) verifyConsistency(size1, RECORDS, p, await rootHash(storeNodes(store), size1), cp.checkpoint.root);
    }
    record(
      `audit_inclusion_proof_${n}_ms`,
      Number(median(inclusion).toFixed(3)),
      `ms (median of ${RUNS}: record read and inclusion proof from stored nodes, SQLite, ${RECORDS} records)`,
    );
    record(
      `audit_consistency_proof_${n}_ms`,
      Number(median(consistency).toFixed(3)),
      `ms (median of ${RUNS}: consistency proof from a random size, SQLite, ${RECORDS} records)`,
    );

    const t1 = performance.now();
    const check = await verifyStoredLog(store, signer);
    if (!check.ok) throw new Error(`bench: verify-log failed: ${check.problem}`);
    const verifyMs = performance.now() - t1;
    record(
      'audit_verify_log_ms_per_1m',
      Math.round((verifyMs * 1_000_000) / RECORDS),
      `ms per million records (recompute the tree from the records, compare every stored node; measured on ${RECORDS})`,
    );
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
