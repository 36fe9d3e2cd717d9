/** `writ task end ID`: end a task now (a task revocation): every grant and writ of it dies. */
import { UsageError } from '../../../config/options.js';
import { ADMIN_OPTIONS } from '../../admin-client.js';
import { PRINCIPAL_OPTIONS, REASON_OPTION, revokeAs, revokedLine } from '../../revoker.js';
import type { Verb } from '../../verb.js';

export const taskEndVerb: Verb = {
  name: ['task', 'end'],
  summary: 'end a task now: every grant and writ of it is revoked and nothing of it is renewed',
  positionals: 'ID',
  maxPositionals: 1,
  note: 'as the operator: the admin socket (--data-dir or --admin-socket); as its principal: --server --bundle --token-file',
  options: { ...REASON_OPTION, ...ADMIN_OPTIONS, ...PRINCIPAL_OPTIONS },
  async run(ctx) {
    const id = ctx.positionals[0];
    if (!id) throw new UsageError('the task ID is required');
    const r = await revokeAs(ctx, 'task', id, false);
    ctx.io.out(revokedLine('task', id, r).replace(/^revoked task/, 'ended task'));
    return 0;
  },
};
