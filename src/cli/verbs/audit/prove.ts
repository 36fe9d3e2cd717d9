/**
 * `writ audit prove SEQ --out FILE`: a proof bundle (docs/audit.md §Files) for one record: its
 * canonical bytes, the latest signed checkpoint and the inclusion proof into it, checked here
 * against the server's audit key before it is written.
 */
import { encodeProofBundle, verifyProofBundle } from '../../../audit/bundle.js';
import { verifyCheckpoint } from '../../../audit/checkpoint.js';
import { parseVerifierKey } from '../../../audit/note.js';
import { writeFileAtomic } from '../../../config/files.js';
import { UsageError } from '../../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import { required, type Verb } from '../../verb.js';

export const auditProveVerb: Verb = {
  name: ['audit', 'prove'],
  summary: 'write a proof bundle for record SEQ: the record, the latest signed checkpoint and the inclusion proof (verify it with `writ audit verify --proof`)',
  positionals: 'SEQ',
  maxPositionals: 1,
  options: { out: { type: 'string', value: 'FILE', help: 'where to write the proof bundle (JSON)' }, ...ADMIN_OPTIONS },
  required: ['out'],
  async run({ values, positionals, env, io }) {
    const text = positionals[0];
    if (text === undefined || !/^(?:0|[1-9][0-9]{0,15})$/.test(text)) throw new UsageError('SEQ must be a record number (from 0)');
    const out = required(values, 'out');
    const seq = Number(text);
    const { audit } = adminClients(adminSocketPath(values, env));
    const cp = await audit.getCheckpoint({});
    const key = parseVerifierKey(cp.verifierKey);
    const { size } = verifyCheckpoint(cp.checkpoint, key);
    if (seq >= size) throw new Error(`audit: record ${seq} is not in the latest checkpoint (${size} records)`);
    const record = Buffer.from((await audit.getRecord({ seq: BigInt(seq) })).record);
    const proof = (await audit.proveInclusion({ seq: BigInt(seq), treeSize: BigInt(size) })).hashes.map((h) => Buffer.from(h));
    const bundle = { v: 1 as const, seq, record, checkpoint: cp.checkpoint, inclusion: proof };
    verifyProofBundle(bundle, key);
    writeFileAtomic(out, encodeProofBundle(bundle), 0o644);
    io.out(`wrote the proof of record ${seq} in the checkpoint of ${size} records to ${out}\n`);
    return 0;
  },
};
