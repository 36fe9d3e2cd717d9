/**
 * `writ audit checkpoint`: the latest signed checkpoint of the audit log, from the admin socket
 * or, with --server --bundle, from the issuer's public port; with --audit-key it is verified
 * against that pinned key before it is printed (exit 1 when it does not verify).
 */
import { checkServerAddress } from '../../../agent/attest-client.js';
import { auditCheckpointRemote } from '../../../agent/grant-client.js';
import { verifyCheckpoint } from '../../../audit/checkpoint.js';
import { parseVerifierKey } from '../../../audit/note.js';
import { readInputFile } from '../../../config/files.js';
import { stringOption, UsageError } from '../../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';

export const auditCheckpointVerb: Verb = {
  name: ['audit', 'checkpoint'],
  summary: 'print the latest signed checkpoint of the audit log (a C2SP tlog-checkpoint signed note); signs one if records were appended since the last',
  options: {
    server: { type: 'string', value: 'HOST:PORT', help: "the issuer's public port (instead of the admin socket)" },
    bundle: { type: 'string', value: 'FILE', help: "the issuer's trust bundle, PEM (with --server)" },
    'audit-key': { type: 'string', value: 'KEY', help: 'verify the checkpoint against this pinned audit verifier key before printing it' },
    ...ADMIN_OPTIONS,
  },
  async run({ values, env, io }) {
    const server = stringOption(values, 'server');
    const bundle = stringOption(values, 'bundle');
    if (bundle !== undefined && !server) throw new UsageError('--bundle needs --server');
    let res: { checkpoint: string; verifierKey: string };
    if (server) {
      if (!bundle) throw new UsageError('--server needs --bundle');
      res = await auditCheckpointRemote(checkServerAddress(server), readInputFile(bundle, '--bundle').toString('utf8'));
    } else {
      res = await adminClients(adminSocketPath(values, env)).audit.getCheckpoint({});
    }
    const pinned = stringOption(values, 'audit-key');
    if (pinned !== undefined) verifyCheckpoint(res.checkpoint, parseVerifierKey(pinned));
    io.out(res.checkpoint);
    return 0;
  },
};
