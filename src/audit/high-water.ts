/**
 * The issuer's high-water mark: the size and root of the last checkpoint it signed, kept
 * outside the database (a file beside the data directory's other state, written atomically
 * before each signature). The database's own last checkpoint cannot stop a fork after the
 * database is rolled back (restored from a backup): the restored copy holds the older
 * checkpoint too. The mark survives the restore, and AuditLog refuses to sign a tree that
 * does not extend it (ERR_AUDIT_INCONSISTENT), so the issuer never signs two checkpoints that
 * are not consistent (docs/audit.md "Checkpoints").
 */
import { AuditError } from '../errors.js';
import { parseStrictJson } from '../jose/strict-json.js';
import { HASH_BYTES } from './merkle.js';
import { strictBase64 } from './note.js';

export interface HighWater {
  readonly origin: string;
  readonly size: number;
  readonly root: Buffer;
}

/** Where the mark is kept (a file in the server; memory in tests). `read` is undefined before the first signature. */
export interface HighWaterStore {
  read(): HighWater | undefined;
  /** Durable when it returns (write-then-rename, fsync). */
  write(h: HighWater): void;
}

/** Longest mark file accepted, bytes. */
export const MAX_HIGH_WATER_BYTES = 4096;

const bad = (message: string): never => {
  throw new AuditError('ERR_AUDIT_INCONSISTENT', `audit(high-water): ${message}; refusing to sign checkpoints until an operator looks`);
};

/** The mark's file text: one JSON object `{"v":1,"origin":O,"size":N,"root":B64}` and a newline. */
export function formatHighWater(h: HighWater): string {
  return `${JSON.stringify({ v: 1, origin: h.origin, size: h.size, root: h.root.toString('base64') })}\n`;
}

/**
 * Parses the mark's file. A mark that does not parse is not treated as absent (that would
 * reopen the fork it guards against): it is refused, loudly.
 */
export function parseHighWater(text: string): HighWater {
  if (text.length > MAX_HIGH_WATER_BYTES) bad('the mark file is too large');
  let v: unknown;
  try {
    v = parseStrictJson(text.trimEnd(), 2);
  } catch (e) {
    return bad(`the mark file is not strict JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('the mark file is not a JSON object');
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'origin,root,size,v' || o.v !== 1) bad('the mark file must hold exactly v (1), origin, size and root');
  if (typeof o.origin !== 'string' || o.origin === '') bad('origin must be a non-empty string');
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) bad('size must be a non-negative integer');
  if (typeof o.root !== 'string') return bad('root must be base64');
  let root: Buffer;
  try {
    root = strictBase64(o.root, 'root');
  } catch (e) {
    return bad((e as Error).message);
  }
  if (root.length !== HASH_BYTES) bad('root must be 32 bytes');
  return { origin: o.origin as string, size: o.size as number, root };
}

/** A mark held in memory (tests, and a server run without a data directory). */
export class MemoryHighWater implements HighWaterStore {
  private mark?: HighWater;
  read(): HighWater | undefined {
    return this.mark;
  }
  write(h: HighWater): void {
    this.mark = h;
  }
}
