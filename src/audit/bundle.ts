/**
 * The files outsiders verify offline (docs/audit.md §Files): a proof bundle (a record, its
 * inclusion proof, the checkpoint it is proved against) and a consistency bundle (two
 * checkpoints and the proof that the later extends the earlier). Parsing them is parsing
 * UNTRUSTED input: strict JSON, exact members, canonical base64, bounded sizes.
 */
import { AuditError } from '../errors.js';
import { parseStrictJson, StrictJsonError } from '../jose/strict-json.js';
import { type Checkpoint, verifyCheckpoint } from './checkpoint.js';
import { HASH_BYTES, leafHash, MAX_PROOF_HASHES, verifyConsistency, verifyInclusion } from './merkle.js';
import { MAX_NOTE_BYTES, type NoteVerifier, strictBase64 } from './note.js';
import { type AuditRecord, MAX_AUDIT_RECORD_BYTES, parseRecord } from './record.js';

/** Largest bundle file accepted, bytes. */
export const MAX_BUNDLE_BYTES = 2 * MAX_NOTE_BYTES + 2 * MAX_AUDIT_RECORD_BYTES + 64 * 1024;

export interface ProofBundle {
  readonly v: 1;
  readonly seq: number;
  readonly record: Buffer;
  readonly checkpoint: string;
  readonly inclusion: readonly Buffer[];
}

export interface ConsistencyBundle {
  readonly v: 1;
  readonly old: string;
  readonly new: string;
  readonly consistency: readonly Buffer[];
}

const bad = (message: string): never => {
  throw new AuditError('ERR_AUDIT_PROOF_INVALID', `audit(bundle): ${message}`);
};

const hashes = (hs: readonly Buffer[]) => hs.map((h) => h.toString('base64'));

export function encodeProofBundle(b: ProofBundle): string {
  return `${JSON.stringify({ v: 1, seq: b.seq, record: b.record.toString('base64'), checkpoint: b.checkpoint, inclusion: hashes(b.inclusion) }, null, 2)}\n`;
}

export function encodeConsistencyBundle(b: ConsistencyBundle): string {
  return `${JSON.stringify({ v: 1, old: b.old, new: b.new, consistency: hashes(b.consistency) }, null, 2)}\n`;
}

function object(text: string | Uint8Array, keys: readonly string[]): Record<string, unknown> {
  const s = typeof text === 'string' ? text : Buffer.from(text).toString('utf8');
  if (Buffer.byteLength(s) > MAX_BUNDLE_BYTES) bad(`bundle is larger than ${MAX_BUNDLE_BYTES} bytes`);
  let v: unknown;
  try {
    v = parseStrictJson(s, 3);
  } catch (e) {
    if (e instanceof StrictJsonError) return bad(`not strict JSON: ${e.message}`);
    throw e;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('a bundle is a JSON object');
  const o = v as Record<string, unknown>;
  const got = Object.keys(o).sort();
  if (got.join() !== [...keys].sort().join()) bad(`a bundle has exactly the members ${keys.join(', ')}`);
  if (o.v !== 1) bad('v must be 1');
  return o;
}

function proofOf(v: unknown, what: string): Buffer[] {
  if (!Array.isArray(v) || v.length > MAX_PROOF_HASHES) return bad(`${what} must be a list of at most ${MAX_PROOF_HASHES} hashes`);
  return v.map((h) => {
    if (typeof h !== 'string') return bad(`${what} holds a non-string`);
    const b = strictBase64(h, `${what} hash`);
    if (b.length !== HASH_BYTES) bad(`${what} holds a hash of ${b.length} bytes`);
    return b;
  });
}

const note = (v: unknown, what: string): string => (typeof v === 'string' ? v : bad(`${what} must be a signed note`));

export function parseProofBundle(text: string | Uint8Array): ProofBundle {
  const o = object(text, ['v', 'seq', 'record', 'checkpoint', 'inclusion']);
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 0) bad('seq must be a non-negative integer');
  if (typeof o.record !== 'string') bad('record must be base64');
  return {
    v: 1,
    seq: o.seq as number,
    record: strictBase64(o.record as string, 'record'),
    checkpoint: note(o.checkpoint, 'checkpoint'),
    inclusion: proofOf(o.inclusion, 'inclusion'),
  };
}

export function parseConsistencyBundle(text: string | Uint8Array): ConsistencyBundle {
  const o = object(text, ['v', 'old', 'new', 'consistency']);
  return { v: 1, old: note(o.old, 'old'), new: note(o.new, 'new'), consistency: proofOf(o.consistency, 'consistency') };
}

/** Verifies a proof bundle offline: checkpoint signature, canonical record at its place, inclusion. */
export function verifyProofBundle(b: ProofBundle, verifier: NoteVerifier): { record: AuditRecord; checkpoint: Checkpoint } {
  const checkpoint = verifyCheckpoint(b.checkpoint, verifier);
  const record = parseRecord(b.record);
  if (record.seq !== b.seq) bad(`the record says it is record ${record.seq}, the bundle ${b.seq}`);
  verifyInclusion(b.seq, checkpoint.size, leafHash(b.record), b.inclusion, checkpoint.root);
  return { record, checkpoint };
}

/** Verifies a consistency bundle offline: both signatures, then the proof between them. */
export function verifyConsistencyBundle(b: ConsistencyBundle, verifier: NoteVerifier): { old: Checkpoint; new: Checkpoint } {
  const a = verifyCheckpoint(b.old, verifier);
  const c = verifyCheckpoint(b.new, verifier);
  verifyConsistency(a.size, c.size, b.consistency, a.root, c.root);
  return { old: a, new: c };
}
