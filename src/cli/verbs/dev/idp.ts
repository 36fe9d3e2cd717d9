/** `writ dev idp`: a development OpenID Connect provider on loopback (FOR DEVELOPMENT ONLY). */
import { systemClock } from '../../../clock.js';
import { stringOption } from '../../../config/options.js';
import { DEFAULT_DEV_IDP_LISTEN, runDevIdp } from '../../../dev/idp.js';
import type { Verb } from '../../verb.js';

export const devIdpVerb: Verb = {
  name: ['dev', 'idp'],
  summary: 'FOR DEVELOPMENT ONLY: serve OpenID Connect discovery, a JWKS and ID tokens on loopback, until SIGINT/SIGTERM; prints its issuer URL',
  options: {
    listen: { type: 'string', value: 'HOST:PORT', help: `loopback address to serve on (default ${DEFAULT_DEV_IDP_LISTEN})` },
    audience: { type: 'string', value: 'AUD', help: 'the aud of the tokens it mints (default writ)' },
    'key-type': { type: 'string', value: 'ES256|ES384|RS256', help: 'its signing key (default ES256), made at start and kept in memory' },
    'issuer-path': { type: 'string', value: 'PATH', help: 'a path under the origin for the issuer URL' },
  },
  async run({ values, io }) {
    const listen = stringOption(values, 'listen');
    const audience = stringOption(values, 'audience');
    const keyType = stringOption(values, 'key-type');
    const issuerPath = stringOption(values, 'issuer-path');
    await runDevIdp(
      { ...(listen ? { listen } : {}), ...(audience ? { audience } : {}), ...(keyType ? { keyType } : {}), ...(issuerPath ? { issuerPath } : {}) },
      { clock: systemClock, stdout: io.out, stderr: io.err },
    );
    return 0;
  },
};
