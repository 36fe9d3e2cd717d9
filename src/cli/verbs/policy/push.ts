/** `writ policy push DIR`: the *.cedar files of DIR as an immutable snapshot, activated. */
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readInputFile } from '../../../config/files.js';
import { UsageError } from '../../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../../admin-client.js';
import type { Verb } from '../../verb.js';

export const policyPushVerb: Verb = {
  name: ['policy', 'push'],
  summary: "store the *.cedar files of DIR as a snapshot addressed by its digest (validated against writ's schema) and activate it",
  positionals: 'DIR',
  maxPositionals: 1,
  options: { json: { type: 'boolean', help: 'print JSON' }, ...ADMIN_OPTIONS },
  async run({ values, positionals, env, io }) {
    const dir = positionals[0];
    if (!dir) throw new UsageError('the policy directory is required');
    let names: string[];
    try {
      names = readdirSync(dir)
        .filter((n) => n.endsWith('.cedar'))
        .sort();
    } catch (e) {
      throw new Error(
        `policy: cannot read the directory ${dir}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (e as Error).message}`,
      );
    }
    if (names.length === 0) throw new UsageError(`${dir} holds no .cedar files`);
    const files = names.map((n) => ({ name: basename(n), text: readInputFile(join(dir, n), 'policy file').toString('utf8') }));
    const r = await adminClients(adminSocketPath(values, env)).admin.pushPolicy({ files });
    io.out(values.json ? `${JSON.stringify({ digest: r.digest, created: r.created, policies: r.policies })}\n` : `${r.digest}\n`);
    return 0;
  },
};
