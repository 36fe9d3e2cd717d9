/**
 * `make bench`, audit log: a real SQLite store filled with BENCH_AUDIT_RECORDS records (default
 * 1,000,000) appended through `appendAudit` in transactions of 10,000, as the issuance flows
 * append them; then the time to generate an inclusion proof (record read and proof, in one
 * transaction) and a consistency proof at random positions, medians of RUNS; and verify-log's
 * time, scaled per million records. Names carry the record count (`_1m_` at the default).
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

export async function auditBench(record: Record): Promise<void> {
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
