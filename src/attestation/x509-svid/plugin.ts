/**
 * The `x509_svid` evidence type: renewal authenticated by the current X.509-SVID. Settings
 * `attestation.x509_svid` (README.md); no relying-party side (a renewed writ names the original
 * evidence type, see docs/writ-format.md §Renewal); the agent side is `agent/renew.ts`
 * (`renewWithSvid`), which the sidecar calls.
 */
import type { EvidencePlugin } from '../plugin.js';
import { X509_SVID_TYPE } from './evidence.js';
import { RENEWABLE_BY_DEFAULT, type X509SvidSettings, x509SvidVerifier } from './verifier.js';

/** An evidence type name as hellos and `attestation.<type>` spell them. */
const TYPE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export const x509SvidPlugin: EvidencePlugin<X509SvidSettings> = {
  type: X509_SVID_TYPE,
  settings: (s) => {
    s.only(['require_fresh_evidence']);
    if (!s.has('require_fresh_evidence')) return {};
    const list = s.strings('require_fresh_evidence', []);
    for (const t of list) {
      if (!TYPE_NAME.test(t)) s.problem(`${s.name('require_fresh_evidence')}: ${JSON.stringify(t.slice(0, 64))} is not an evidence type name`);
      else if (t === X509_SVID_TYPE)
        s.problem(`${s.name('require_fresh_evidence')}: ${X509_SVID_TYPE} is never the evidence an identity was first attested with`);
    }
    return { requireFreshEvidence: [...new Set(list)] };
  },
  describe: (settings) =>
    settings.requireFreshEvidence
      ? `renewal by X.509-SVID for every evidence type but ${settings.requireFreshEvidence.join(', ') || '(none)'}`
      : `renewal by X.509-SVID for ${RENEWABLE_BY_DEFAULT.join(', ')} only (default; others attest again with fresh evidence)`,
  verifier: (settings, deps) => x509SvidVerifier({ store: deps.store, ...(deps.trustBundle ? { trustBundle: deps.trustBundle } : {}), settings }),
};
