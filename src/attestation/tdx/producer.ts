/**
 * The `tdx` evidence type's agent side: a TD guest gets its quote through the Linux configfs-tsm
 * interface (provider `tdx_guest`): `inblob` = the binding digest B ‖ 32 zero bytes, `outblob` =
 * the quote, as the Quoting Enclave on the host signed it (zero-padded by some stacks; the issuer
 * accepts zero padding). `writ agent attest --evidence tdx` uses a fresh report directory under
 * the configfs root; `--tdx-report-dir DIR` uses one made for an unprivileged agent.
 */
import { stringOption, UsageError } from '../../config/options.js';
import { tsmReport, TSM_REPORT_ROOT } from '../enclave/configfs-tsm.js';
import type { EvidenceProducer } from '../plugin.js';
import { reportDataFor, TDX_TYPE } from './verify.js';

/** The configfs-tsm provider name of TDX guests. */
export const TDX_TSM_PROVIDER = 'tdx_guest';

export const tdxProducer: EvidenceProducer = {
  type: TDX_TYPE,
  selectedBy: 'tdx-report-dir',
  cliName: 'tdx',
  options: {
    'tdx-report-dir': { type: 'string', value: 'DIR', help: 'an existing configfs-tsm report directory made for this agent (selects tdx evidence)' },
    'tdx-report-root': { type: 'string', value: 'DIR', help: `where to make a fresh report directory (default ${TSM_REPORT_ROOT})` },
  },
  async open(values) {
    const dir = stringOption(values, 'tdx-report-dir');
    const root = stringOption(values, 'tdx-report-root');
    if (dir !== undefined && root !== undefined) throw new UsageError('give --tdx-report-dir or --tdx-report-root, not both');
    return {
      async respond(challenge) {
        const inblob = reportDataFor(Buffer.from(challenge.nonce));
        const r = await tsmReport(inblob, { provider: TDX_TSM_PROVIDER, ...(dir !== undefined ? { dir } : {}), ...(root !== undefined ? { root } : {}) });
        return r.outblob;
      },
      async close() {},
    };
  },
};
