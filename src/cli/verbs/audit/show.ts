/**
 * `writ audit show SEQ [--json]`: one audit record from the admin socket, as labelled lines
 * (actor and principal on lines of their own) or, with --json, exactly its canonical RFC 8785
 * bytes (the Merkle leaf, docs/audit.md). The bytes are parsed strictly, and must be record SEQ.
 */
import { leafHash } from '../../../audit/merkle.js';
import { parseRecord } from '../../../audit/record.js';
import { AuditError } from '../../../errors.js';
import { UsageError } from '../../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';
import { recordLines } from './verify.js';

export const auditShowVerb: Verb = {
  name: ['audit', 'show'],
  summary: 'show audit record SEQ: every field, actor and principal apart (--json: its canonical bytes, the Merkle leaf)',
  positionals: 'SEQ',
  maxPositionals: 1,
  options: { json: { type: 'boolean', help: 'print the record as its canonical JSON (RFC 8785), one line' }, ...ADMIN_OPTIONS },
  async run({ values, positionals, env, io }) {
    const text = positionals[0];
    if (text === undefined || !/^(?:0|[1-9][0-9]{0,15})$/.test(text)) throw new UsageError('SEQ must be a record number (from 0)');
    const seq = Number(text);
    const bytes = Buffer.from((await adminClients(adminSocketPath(values, env)).audit.getRecord({ seq: BigInt(seq) })).record);
    const r = parseRecord(bytes);
    if (r.seq !== seq) throw new AuditError('ERR_AUDIT_RECORD_INVALID', `audit: asked for record ${seq}, the server answered with record ${r.seq}`);
    if (values.json) {
      io.out(`${bytes.toString('utf8')}\n`);
      return 0;
    }
    io.out(`${recordLines(r)}  ${'leaf hash'.padEnd(10)} ${leafHash(bytes).toString('hex')}\n`);
    return 0;
  },
};
