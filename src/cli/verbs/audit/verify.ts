/**
 * `writ audit verify`: offline, the way any outsider can (docs/audit.md): a proof bundle (a
 * record, its inclusion proof and the checkpoint it is proved against) or a consistency bundle
 * (two checkpoints and the proof that the later extends the earlier), against the audit
 * verifier key. Nothing is fetched; the files and the key are UNTRUSTED input.
 */
import { statSync } from 'node:fs';
import { MAX_BUNDLE_BYTES, parseConsistencyBundle, parseProofBundle, verifyConsistencyBundle, verifyProofBundle } from '../../../audit/bundle.js';
import { parseVerifierKey } from '../../../audit/note.js';
import type { AuditRecord } from '../../../audit/record.js';
import { readInputFile } from '../../../config/files.js';
import { stringOption, UsageError } from '../../../config/options.js';
import { AuditError } from '../../../errors.js';
import { required, type Verb } from '../../verb.js';

/** The file, refused unread when larger than any bundle can be. */
function readBundleFile(path: string, what: string): Buffer {
  let size: number | undefined;
  try {
    size = statSync(path).size;
  } catch {
    // readInputFile names the reason.
  }
  if (size !== undefined && size > MAX_BUNDLE_BYTES) {
    throw new AuditError('ERR_AUDIT_PROOF_INVALID', `${what}: ${path} is larger than any audit bundle (${MAX_BUNDLE_BYTES} bytes)`);
  }
  return readInputFile(path, what);
}

/** The actor in one phrase: `agent SPIFFE_ID (jkt ...)`, `principal ISS#SUB`, `operator ID`, `issuer`. */
export function actorText(r: AuditRecord): string {
  const a = r.actor;
  switch (a.kind) {
    case 'agent':
      return `agent ${a.spiffeId} (jkt ${a.jkt})`;
    case 'principal':
      return `principal ${a.iss}#${a.sub}`;
    case 'operator':
      return `operator ${a.id}`;
    case 'issuer':
      return 'issuer';
  }
}

/** The record as labelled lines, actor and principal on lines of their own. */
export function recordLines(r: AuditRecord): string {
  const rows: [string, string][] = [
    ['seq', String(r.seq)],
    ['at', new Date(r.at).toISOString()],
    ['event', r.event],
    ['actor', actorText(r)],
    ['principal', r.principal ? `${r.principal.iss}#${r.principal.sub}` : '-'],
    ['task', r.task ?? '-'],
    ['lineage', r.lineage.join(' → ') || '-'],
    ['action', r.action ?? '-'],
    ['resource', r.resource ?? '-'],
    ['decision', r.decision ?? '-'],
    ['reason', r.reason ?? '-'],
    ['policies', r.policies.join(', ') || '-'],
    ['snapshot', r.snapshot ?? '-'],
    ['evidence', r.evidence ?? '-'],
    ['created', r.created.join(', ') || '-'],
  ];
  // Record strings may hold newlines and other controls; shown escaped, one line each.
  return rows.map(([k, v]) => `  ${k.padEnd(10)} ${JSON.stringify(v).slice(1, -1)}\n`).join('');
}

export const auditVerifyVerb: Verb = {
  name: ['audit', 'verify'],
  summary: 'verify an audit proof bundle (record, inclusion proof, checkpoint) or a consistency bundle offline against the audit key',
  options: {
    proof: { type: 'string', value: 'FILE', help: 'a proof bundle (`writ audit prove SEQ --out FILE`)' },
    consistency: { type: 'string', value: 'FILE', help: 'a consistency bundle: two checkpoints and the proof between them' },
    'audit-key': { type: 'string', value: 'KEY', help: 'the audit verifier key, <origin>+<key ID>+<base64 key> (`writ audit key`)' },
    json: { type: 'boolean', help: 'print the verified record or checkpoints as JSON' },
  },
  required: ['audit-key'],
  note: 'exactly one of --proof and --consistency',
  async run({ values, io }) {
    const proof = stringOption(values, 'proof');
    const consistency = stringOption(values, 'consistency');
    if ((proof === undefined) === (consistency === undefined)) throw new UsageError('give exactly one of --proof and --consistency');
    const key = parseVerifierKey(required(values, 'audit-key'));
    if (proof !== undefined) {
      const { record, checkpoint } = verifyProofBundle(parseProofBundle(readBundleFile(proof, '--proof')), key);
      if (values.json)
        io.out(
          `${JSON.stringify({ verified: true, checkpoint: { origin: checkpoint.origin, size: checkpoint.size, root: checkpoint.root.toString('base64') }, record })}\n`,
        );
      else
        io.out(`verified: record ${record.seq} is in the log ${checkpoint.origin} of ${checkpoint.size} records (signed checkpoint)\n${recordLines(record)}`);
      return 0;
    }
    const c = verifyConsistencyBundle(parseConsistencyBundle(readBundleFile(consistency!, '--consistency')), key);
    const show = (x: typeof c.old) => ({ origin: x.origin, size: x.size, root: x.root.toString('base64') });
    if (values.json) io.out(`${JSON.stringify({ verified: true, old: show(c.old), new: show(c.new) })}\n`);
    else io.out(`verified: the log ${c.new.origin} of ${c.new.size} records extends its checkpoint of ${c.old.size} (both signed)\n`);
    return 0;
  },
};
