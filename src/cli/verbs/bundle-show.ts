/** `writ bundle show`: the trust bundle from the admin socket. */
import { stringOption, UsageError } from '../../config/options.js';
import { ADMIN_OPTIONS, adminClients, adminSocketPath } from '../admin-client.js';
import type { Verb } from '../verb.js';

export const bundleShowVerb: Verb = {
  name: ['bundle', 'show'],
  summary: 'print the trust bundle as PEM (X.509 authorities) or as a SPIFFE bundle (JWKS)',
  options: { format: { type: 'string', value: 'pem|jwks', help: 'output format (default pem)' }, ...ADMIN_OPTIONS },
  async run({ values, env, io }) {
    const format = stringOption(values, 'format') ?? 'pem';
    if (format !== 'pem' && format !== 'jwks') throw new UsageError('--format must be pem or jwks');
    const res = await adminClients(adminSocketPath(values, env)).bundle.getBundle({});
    io.out(format === 'pem' ? res.pem : res.jwks);
    return 0;
  },
};
