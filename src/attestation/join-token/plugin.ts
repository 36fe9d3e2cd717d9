/**
 * The `join_token` evidence type: no settings (tokens are made on the admin socket), no
 * relying-party side (the token is a secret and is never embedded in a writ), and on the agent
 * side one option, `--join-token TOKEN`.
 */
import { stringOption, UsageError } from '../../config/options.js';
import type { EvidencePlugin, EvidenceProducer } from '../plugin.js';
import { JOIN_TOKEN_TYPE, joinTokenVerifier } from './join-token.js';

export const joinTokenPlugin: EvidencePlugin<Record<string, never>> = {
  type: JOIN_TOKEN_TYPE,
  settings: (s) => {
    s.only([]);
    return {};
  },
  verifier: (_settings, deps) => joinTokenVerifier({ tokens: deps.store }),
};

export const joinTokenProducer: EvidenceProducer = {
  type: JOIN_TOKEN_TYPE,
  selectedBy: 'join-token',
  options: {
    'join-token': { type: 'string', value: 'TOKEN', help: 'a one-time join token from `writ token create`' },
  },
  async open(values) {
    const token = stringOption(values, 'join-token');
    if (!token) throw new UsageError('--join-token needs a token');
    return {
      respond: async () => Buffer.from(token),
      close: async () => {},
    };
  },
};
