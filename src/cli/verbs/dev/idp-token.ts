/** `writ dev idp token`: an ID token from a running development provider, on stdout. */
import { stringOption } from '../../../config/options.js';
import { DevIdpUnreachableError, requestDevToken } from '../../../dev/idp.js';
import { seconds } from '../../durations.js';
import { required, type Verb } from '../../verb.js';

/** Pause between attempts while waiting. */
const RETRY_MS = 200;

export const devIdpTokenVerb: Verb = {
  name: ['dev', 'idp', 'token'],
  summary: 'FOR DEVELOPMENT ONLY: print an ID token from the `writ dev idp` at --issuer',
  required: ['issuer', 'sub'],
  options: {
    issuer: { type: 'string', value: 'URL', help: 'the issuer URL `writ dev idp` printed' },
    sub: { type: 'string', value: 'SUBJECT', help: 'the subject (the human)' },
    groups: { type: 'string', value: 'A,B', help: 'comma-separated groups claim' },
    ttl: { type: 'string', value: 'D', help: 'token lifetime (default 10m, at most 24h)' },
    wait: { type: 'string', value: 'D', help: 'keep trying this long (e.g. 10s) while the provider is still starting' },
  },
  async run({ values, io }) {
    const groups = stringOption(values, 'groups');
    const ttl = stringOption(values, 'ttl');
    const wait = stringOption(values, 'wait');
    const request = {
      issuer: required(values, 'issuer'),
      sub: required(values, 'sub'),
      ...(groups !== undefined ? { groups } : {}),
      ...(ttl ? { ttlSeconds: seconds(ttl, '--ttl') } : {}),
    };
    // With --wait, a provider that does not listen yet (it is starting) is asked again.
    const until = Date.now() + seconds(wait, '--wait') * 1000;
    for (;;) {
      try {
        io.out(`${await requestDevToken(request)}\n`);
        return 0;
      } catch (e) {
        if (!(e instanceof DevIdpUnreachableError && e.refused)) throw e;
        if (Date.now() + RETRY_MS > until) throw wait ? new Error(`${e.message} (waited ${wait})`) : e;
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  },
};
