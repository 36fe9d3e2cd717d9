/**
 * C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the note text
 * `<origin>\n<tree size>\n<base64 root hash>\n`, signed as a signed-note by the audit key
 * whose name is the origin. writ writes no extension lines and accepts none.
 *
 * The issuer never signs two checkpoints that are not consistent: `signNextCheckpoint` checks
 * the new tree against the last signed one with a consistency proof before it signs.
 */
import { AuditError } from '../errors.js';
import { HASH_BYTES, verifyConsistency } from './merkle.js';
import { type NoteSigner, type NoteVerifier, openNote, signNote, strictBase64 } from './note.js';

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Buffer;
}

const bad = (message: string): never => {
  throw new AuditError('ERR_CHECKPOINT_INVALID', `audit(checkpoint): ${message}`);
};

/** The checkpoint body (the note text). */
export function formatCheckpoint(c: Checkpoint): string {
  if (c.origin.length === 0 || /[\p{Cc}]/u.test(c.origin)) bad('origin must be one non-empty line without control characters');
  if (!Number.isSafeInteger(c.size) || c.size < 0) bad(`tree size ${c.size} is not a size`);
  if (c.root.length !== HASH_BYTES) bad('root hash must be 32 bytes');
  return `${c.origin}\n${c.size}\n${c.root.toString('base64')}\n`;
}

/** Parses a checkpoint body. UNTRUSTED; `origin`, when given, must match exactly. */
export function parseCheckpoint(text: string, origin?: string): Checkpoint {
  const lines = text.split('\n');
  if (lines.length !== 4 || lines[3] !== '') bad('a checkpoint is exactly three lines: origin, tree size, root hash (no extension lines)');
  const [o, size, root] = lines as [string, string, string];
  if (o.length === 0 || /[\p{Cc}]/u.test(o)) bad('origin must be one non-empty line without control characters');
  if (origin !== undefined && o !== origin) bad(`origin ${JSON.stringify(o)} is not ${JSON.stringify(origin)}`);
  if (!/^(?:0|[1-9][0-9]{0,15})$/.test(size) || !Number.isSafeInteger(Number(size))) bad('tree size must be a decimal without leading zeros');
  const hash = strictBase64(root, 'root hash');
  if (hash.length !== HASH_BYTES) bad('root hash must be 32 bytes');
  return { origin: o, size: Number(size), root: hash };
}

/** Signs a checkpoint as a signed note; the signer's name must be the origin. */
export function signCheckpoint(c: Checkpoint, signer: NoteSigner): string {
  if (signer.name !== c.origin) bad(`audit key ${signer.name} is not named for the origin ${c.origin}`);
  return signNote(formatCheckpoint(c), signer);
}

/** Opens a signed checkpoint: signed by `verifier`, whose name is the origin. UNTRUSTED input. */
export function verifyCheckpoint(note: string | Uint8Array, verifier: NoteVerifier): Checkpoint {
  const { text } = openNote(note, verifier);
  return parseCheckpoint(text, verifier.name);
}

/**
 * Signs `next` only if it extends `last` (the last checkpoint this issuer signed): a smaller
 * tree, the same size with another root, or a failing consistency proof is refused with
 * ERR_AUDIT_INCONSISTENT and nothing is signed.
 */
export function signNextCheckpoint(last: Checkpoint | undefined, next: Checkpoint, proof: readonly Buffer[], signer: NoteSigner): string {
  checkNextCheckpoint(last, next, proof);
  return signCheckpoint(next, signer);
}

/** signNextCheckpoint's check alone: throws ERR_AUDIT_INCONSISTENT unless `next` extends `last` (`proof` from last's size to next's). */
export function checkNextCheckpoint(last: Checkpoint | undefined, next: Checkpoint, proof: readonly Buffer[]): void {
  if (last) {
    if (last.origin !== next.origin) bad(`origin ${next.origin} is not that of the last checkpoint (${last.origin})`);
    if (next.size < last.size) {
      throw new AuditError(
        'ERR_AUDIT_INCONSISTENT',
        `audit(checkpoint): the tree has ${next.size} records, fewer than the ${last.size} of the last signed checkpoint`,
      );
    }
    try {
      verifyConsistency(last.size, next.size, proof, last.root, next.root);
    } catch (e) {
      throw new AuditError(
        'ERR_AUDIT_INCONSISTENT',
        `audit(checkpoint): the tree of ${next.size} does not extend the last signed checkpoint (${last.size}): ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
  }
}

/**
 * A witness's check (docs/audit.md): `next` (a signed note just fetched) against `kept` (the
 * last one it accepted), both verified under the pinned key, `proof` the consistency proof
 * from kept's size to next's. Returns the checkpoint to keep from now on; a fork (a smaller
 * tree, the same size with another root, or a proof that fails) is ERR_AUDIT_INCONSISTENT.
 */
export function witnessCheckpoint(kept: string | undefined, next: string, proof: readonly Buffer[], verifier: NoteVerifier): Checkpoint {
  const n = verifyCheckpoint(next, verifier);
  if (kept === undefined) return n;
  const k = verifyCheckpoint(kept, verifier);
  const fork = (why: string): never => {
    throw new AuditError('ERR_AUDIT_INCONSISTENT', `audit(witness): FORK: ${why}; the log shown now is not an extension of the one seen before`);
  };
  if (n.size < k.size) fork(`the tree shrank from ${k.size} to ${n.size} records`);
  if (n.size === k.size && !n.root.equals(k.root)) fork(`two different roots for ${n.size} records`);
  try {
    verifyConsistency(k.size, n.size, proof, k.root, n.root);
  } catch (e) {
    fork(`the consistency proof from ${k.size} to ${n.size} records fails (${(e as Error).message})`);
  }
  return n;
}
