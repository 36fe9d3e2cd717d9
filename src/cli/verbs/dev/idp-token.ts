/** `writ dev idp token`: an ID token from a running development provider, on stdout. */
import { stringOption } from '../../../config/options.js';
import { requestDevToken } from '../../../dev/idp.js';
import { seconds } from '../../durations.js';
import { required, type Verb } from '../../verb.js';

export const devIdpTokenVerb: Verb = {
  name: ['dev', 'idp', 'token'],
  summary: 'FOR DEVELOPMENT ONLY: print an ID token from the `writ dev idp` at --issuer',
  required: ['issuer', 'sub'],
  options: {
    issuer: { type: 'string', value: 'URL', help: 'the issuer URL `writ dev idp` printed' },
    sub: { type: 'string', value: 'SUBJECT', help: 'the subject (the human)' },
    groups: { type: 'string', value: 'A,B', help: 'comma-separated groups claim' },
    ttl: { type: 'string', value: 'D', help: 'token lifetime (default 10m, at most 24h)' },
  },
  async run({ values, io }) {
    const groups = stringOption(values, 'groups');
    const ttl = stringOption(values, 'ttl');
    const token = await requestDevToken({
      issuer: required(values, 'issuer'),
      sub: required(values, 'sub'),
      ...(groups !== undefined ? { groups } : {}),
      ...(ttl ? { ttlSeconds: seconds(ttl, '--ttl') } : {}),
    });
    io.out(`${token}\n`);
    return 0;
  },
};
