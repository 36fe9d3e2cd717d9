/**
 * `writ audit witness --keep FILE --server HOST:PORT --bundle F --audit-key KEY`: fetch the
 * issuer's latest checkpoint, check it against the one kept in FILE (consistency proof from the
 * public port), and keep the new one. A fork fails loudly (exit 1) and leaves FILE as it was.
 */
import { existsSync } from 'node:fs';
import { checkServerAddress } from '../../../agent/attest-client.js';
import { auditCheckpointRemote, auditConsistencyRemote } from '../../../agent/grant-client.js';
import { verifyCheckpoint, witnessCheckpoint } from '../../../audit/checkpoint.js';
import { MAX_NOTE_BYTES, parseVerifierKey } from '../../../audit/note.js';
import { readInputFile, writeFileAtomic } from '../../../config/files.js';
import { AuditError } from '../../../errors.js';
import { required, type Verb } from '../../verb.js';

export const auditWitnessVerb: Verb = {
  name: ['audit', 'witness'],
  summary: "check the issuer's latest audit checkpoint against the last one kept in FILE (fails loudly on a fork), then keep the new one",
  options: {
    keep: { type: 'string', value: 'FILE', help: 'the last checkpoint accepted (created on first use)' },
    server: { type: 'string', value: 'HOST:PORT', help: "the issuer's public port" },
    bundle: { type: 'string', value: 'FILE', help: "the issuer's trust bundle, PEM" },
    'audit-key': { type: 'string', value: 'KEY', help: 'the pinned audit verifier key' },
  },
  required: ['keep', 'server', 'bundle', 'audit-key'],
  async run({ values, io }) {
    const keep = required(values, 'keep');
    const server = checkServerAddress(required(values, 'server'));
    const bundlePem = readInputFile(required(values, 'bundle'), '--bundle').toString('utf8');
    const key = parseVerifierKey(required(values, 'audit-key'));
    let kept: string | undefined;
    if (existsSync(keep)) {
      const b = readInputFile(keep, '--keep');
      if (b.length > MAX_NOTE_BYTES) throw new AuditError('ERR_CHECKPOINT_INVALID', `--keep: ${keep} is larger than a checkpoint`);
      kept = b.toString('utf8');
    }
    const next = (await auditCheckpointRemote(server, bundlePem)).checkpoint;
    const old = kept === undefined ? undefined : verifyCheckpoint(kept, key);
    const size = verifyCheckpoint(next, key).size;
    const proof =
      old && old.size > 0 && old.size < size ? (await auditConsistencyRemote(server, bundlePem, old.size, size)).hashes.map((h) => Buffer.from(h)) : [];
    const c = witnessCheckpoint(kept, next, proof, key);
    writeFileAtomic(keep, next, 0o644);
    io.out(old ? `consistent: ${c.origin} grew from ${old.size} to ${c.size} records\n` : `kept: ${c.origin} at ${c.size} records (first checkpoint seen)\n`);
    return 0;
  },
};
