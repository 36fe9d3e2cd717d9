/**
 * The one place that lists every evidence type the issuer verifies and relying parties
 * re-verify (SPIRE catalog). The agent side of each type is listed in `agent/builtins.ts`.
 */
import { joinTokenPlugin } from './join-token/plugin.js';
import type { EvidencePlugin } from './plugin.js';
import { tdxPlugin } from './tdx/plugin.js';
import { tpmPlugin } from './tpm/plugin.js';
import { snpPlugin } from './sev-snp/plugin.js';
import { nitroPlugin } from './nitro/plugin.js';
import { x509SvidPlugin } from './x509-svid/plugin.js';

export const BUILTIN_EVIDENCE: readonly EvidencePlugin[] = [
  joinTokenPlugin,
  tpmPlugin as EvidencePlugin,
  snpPlugin as EvidencePlugin,
  nitroPlugin as EvidencePlugin,
  tdxPlugin as EvidencePlugin,
  x509SvidPlugin as EvidencePlugin,
];
