/**
 * `writ approval approve ID`: approving needs the approver's passkey (WebAuthn), which a terminal
 * cannot present; this prints where to do it (the console's approvals page) and exits 1, since
 * nothing was approved. The console has no per-approval route, so the link is its approvals page.
 * The CLI does not know the issuer's HTTPS URL: it comes from --console.
 */
import { UsageError } from '../../../config/options.js';
import { oneLine } from '../task/format.js';
import { required, type Verb } from '../../verb.js';

export const approvalApproveVerb: Verb = {
  name: ['approval', 'approve'],
  summary: "approving needs the approver's passkey: prints the console link for it and exits 1 (nothing is approved here)",
  positionals: 'ID',
  maxPositionals: 1,
  required: ['console'],
  options: { console: { type: 'string', value: 'URL', help: "the issuer's HTTPS URL (where the console is served)" } },
  async run({ values, positionals, io }) {
    const id = positionals[0];
    if (!id) throw new UsageError('the approval ID is required');
    const base = required(values, 'console').replace(/\/+$/, '');
    if (!/^https:\/\//.test(base)) throw new UsageError('--console must be an https:// URL');
    io.err(`writ: approval ${oneLine(id)} was not approved: approving needs your passkey; open ${base}/console/#/approvals\n`);
    return 1;
  },
};
