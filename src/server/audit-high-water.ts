/** The audit high-water mark (audit/high-water.ts) as a file in the data directory, written atomically and durably. */
import { readFileSync } from 'node:fs';
import { formatHighWater, type HighWater, type HighWaterStore, MAX_HIGH_WATER_BYTES, parseHighWater } from '../audit/high-water.js';
import { writeFileAtomic } from '../config/files.js';
import { AuditError } from '../errors.js';

/** The mark's file name in the data directory, beside writ.db, bundle.pem and audit.vkey. */
export const HIGH_WATER_FILE = 'audit.highwater';

export class FileHighWater implements HighWaterStore {
  constructor(private readonly path: string) {}

  read(): HighWater | undefined {
    let text: Buffer;
    try {
      text = readFileSync(this.path);
    } catch (e) {
      // Absent before the first checkpoint this data directory signed; any other failure is not "absent".
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new AuditError('ERR_AUDIT_INCONSISTENT', `audit(high-water): cannot read ${this.path}: ${(e as Error).message}`, { cause: e });
    }
    if (text.length > MAX_HIGH_WATER_BYTES) throw new AuditError('ERR_AUDIT_INCONSISTENT', `audit(high-water): ${this.path} is too large`);
    return parseHighWater(text.toString('utf8'));
  }

  write(h: HighWater): void {
    writeFileAtomic(this.path, formatHighWater(h), 0o600, true);
  }
}
