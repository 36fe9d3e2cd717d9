/** Targets: the audit record (src/audit/record.ts), signed checkpoints (checkpoint.ts, note.ts) and proof bundles (bundle.ts). */
import { createHash } from 'node:crypto';
import { encodeProofBundle, parseProofBundle, verifyProofBundle } from '../../../src/audit/bundle.js';
import { signCheckpoint, verifyCheckpoint } from '../../../src/audit/checkpoint.js';
import { inclusionProof, MemoryTree, rootHash } from '../../../src/audit/merkle.js';
import { ed25519FromSeed, noteSigner, parseVerifierKey } from '../../../src/audit/note.js';
import { type AuditRecord, encodeRecord, parseRecord } from '../../../src/audit/record.js';
import { type FuzzTarget, OracleError } from '../engine/contract.js';
import { jsonMutator } from '../engine/mutators.js';

/** A fixed audit key, so seeds and findings replay. */
const signer = noteSigner('example.org/audit', ed25519FromSeed(createHash('sha256').update('fuzz audit key').digest()));
const verifier = parseVerifierKey(signer.vkey);

const record = (seq: number, over: Partial<AuditRecord> = {}): AuditRecord => ({
  v: 1,
  seq,
  at: 1_700_000_000_000 + seq,
  event: 'handshake.issued',
  actor: { kind: 'agent', spiffeId: `spiffe://example.org/agent/${seq}`, jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' },
  principal: { iss: 'https://idp.example.org', sub: 'alice' },
  task: 'triage-42',
  lineage: ['g-root', 'g-hop1'],
  action: null,
  resource: null,
  decision: 'allow',
  reason: null,
  policies: ['p1'],
  snapshot: 'a'.repeat(64),
  evidence: null,
  created: [`w-${seq}`],
  ...over,
});

const RECORDS = [
  record(0),
  record(1, { event: 'revocation', actor: { kind: 'operator', id: 'admin' }, principal: null, decision: null, reason: 'line\n"quoted" é 😀' }),
  record(2, { event: 'task.ended', actor: { kind: 'principal', iss: 'https://idp.example.org', sub: 'alice' }, lineage: [], policies: [] }),
  record(3, { event: 'key.rotated', actor: { kind: 'issuer' }, principal: null, task: null }),
];

async function signedLog() {
  const tree = new MemoryTree();
  const bytes = RECORDS.map((r) => encodeRecord(r));
  for (const b of bytes) tree.append(b);
  const checkpoints = await Promise.all([1, 3, 4].map(async (n) => signCheckpoint({ origin: signer.name, size: n, root: await rootHash(tree, n) }, signer)));
  const bundles = await Promise.all(
    [0, 2].map(async (seq) =>
      encodeProofBundle({ v: 1, seq, record: bytes[seq]!, checkpoint: checkpoints[2]!, inclusion: await inclusionProof(tree, seq, 4) }),
    ),
  );
  return { bytes, checkpoints, bundles };
}

export const auditRecordTarget: FuzzTarget = {
  name: 'audit-record',
  parsers: 'src/audit/record.ts: parseRecord',
  contract: 'returns a record whose canonical bytes are exactly the input, or throws a WritError (ERR_AUDIT_RECORD_INVALID)',
  maxLen: 16 * 1024,
  sources: ['src/audit/record.ts', 'src/audit/jcs.ts'],
  setup: () => ({
    seeds: RECORDS.map((r) => encodeRecord(r)),
    mutators: [jsonMutator],
    run(data) {
      const r = parseRecord(data);
      if (!encodeRecord(r).equals(data)) throw new OracleError('audit-record: accepted bytes that are not the canonical form of what they parse to');
      return undefined;
    },
  }),
};

export const auditCheckpointTarget: FuzzTarget = {
  name: 'audit-checkpoint',
  parsers: 'src/audit/checkpoint.ts: verifyCheckpoint (note.ts openNote, parseCheckpoint) with a fixed audit key',
  contract: 'only the signed checkpoints are accepted; everything else is a WritError (ERR_CHECKPOINT_INVALID)',
  maxLen: 16 * 1024,
  signed: true,
  sources: ['src/audit/note.ts', 'src/audit/checkpoint.ts'],
  setup: async () => {
    const { checkpoints } = await signedLog();
    const valid = checkpoints.map((c) => Buffer.from(c));
    return {
      seeds: valid,
      isValid: (data) => valid.some((v) => v.equals(data)),
      run(data) {
        verifyCheckpoint(data, verifier);
        return 'accepted';
      },
    };
  },
};

export const auditBundleTarget: FuzzTarget = {
  name: 'audit-bundle',
  parsers: 'src/audit/bundle.ts: parseProofBundle, verifyProofBundle with a fixed audit key',
  contract: 'only the valid proof bundles are accepted (re-encoded byte for byte); everything else is a WritError',
  maxLen: 64 * 1024,
  signed: true,
  sources: ['src/audit/bundle.ts', 'src/audit/merkle.ts'],
  setup: async () => {
    const { bundles } = await signedLog();
    const valid = bundles.map((b) => Buffer.from(b));
    return {
      seeds: valid,
      mutators: [jsonMutator],
      // JSON whitespace is not signed; a bundle is valid when it re-encodes to a valid one.
      isValid: (data) => {
        try {
          const b = parseProofBundle(data);
          return valid.some((v) => v.equals(Buffer.from(encodeProofBundle(b))));
        } catch {
          return false;
        }
      },
      run(data) {
        verifyProofBundle(parseProofBundle(data), verifier);
        return 'accepted';
      },
    };
  },
};
