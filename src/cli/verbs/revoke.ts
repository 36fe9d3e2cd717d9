/** `writ revoke KIND ID`: take back a grant, task, principal, agent, key, writ, entry or platform. */
import { UsageError } from '../../config/options.js';
import { REVOCATION_KINDS } from '../../revocation/target.js';
import { REVOKER_NOTE, revokeAs, revokedLine, revokerOptions } from '../revoker.js';
import type { Verb } from '../verb.js';

export const revokeVerb: Verb = {
  name: ['revoke'],
  summary: `revoke permanently a ${REVOCATION_KINDS.join('|')} and every grant and writ below it; relying parties learn it from Watch and status lists`,
  positionals: 'KIND ID',
  maxPositionals: 2,
  note: `KIND is one of ${REVOCATION_KINDS.join(', ')}; ${REVOKER_NOTE}`,
  options: revokerOptions,
  async run(ctx) {
    const [kind, target] = ctx.positionals;
    if (!kind || !target) throw new UsageError(`give what to revoke: one of ${REVOCATION_KINDS.join(', ')}, then its id`);
    if (!(REVOCATION_KINDS as readonly string[]).includes(kind))
      throw new UsageError(`unknown kind ${JSON.stringify(kind)} (want ${REVOCATION_KINDS.join(', ')})`);
    const r = await revokeAs(ctx, kind, target);
    ctx.io.out(revokedLine(kind, target, r));
    return 0;
  },
};
