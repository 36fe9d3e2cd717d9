/** `writ grant create`: a principal's OIDC token buys a root grant for a task. */
import { readInputFile, writeFileAtomic } from '../../../config/files.js';
import { listOption, stringOption, UsageError } from '../../../config/options.js';
import { parsePermissionFlag } from '../../../delegation/scope.js';
import { serverAddresses, withFailover } from '../../../agent/failover.js';
import { createGrant } from '../../../agent/grant-client.js';
import { readPemBundle } from '../../bundle-file.js';
import { seconds } from '../../durations.js';
import { required, type Verb } from '../../verb.js';
import { PERMISSION_OPTIONS } from './permissions.js';

export const grantCreateVerb: Verb = {
  name: ['grant', 'create'],
  summary: "a principal's OIDC token (RFC 8693 subject token) buys a root grant for a task, if policy lets this principal delegate each permission",
  required: ['server', 'bundle', 'token-file', 'task-id', 'goal', 'scope', 'delegate', 'out'],
  options: {
    server: { type: 'string', value: 'HOST:PORT[,HOST:PORT...]', help: "the issuer's public port; replicas separated by commas, tried in order" },
    bundle: { type: 'string', value: 'FILE', help: "the issuer's trust bundle, PEM" },
    'token-file': { type: 'string', value: 'F', help: "a file holding the principal's ID token (or JWT)" },
    'token-type': { type: 'string', value: 'id_token|jwt', help: 'the RFC 8693 token type (default id_token)' },
    'task-id': { type: 'string', value: 'ID', help: 'the task this grant is for' },
    goal: { type: 'string', value: 'TEXT', help: 'what the task is for, in words' },
    ttl: { type: 'string', value: 'D', help: 'task lifetime (default and maximum: the server settings)' },
    ...PERMISSION_OPTIONS,
    'max-depth': { type: 'string', value: 'N', help: 'how many hops of delegation below the agent (default 0)' },
    delegate: { type: 'string', value: 'THUMBPRINT', help: "the agent key's RFC 7638 thumbprint (writ agent keygen prints it)", takesNext: true },
    out: { type: 'string', value: 'FILE', help: 'where to write the grant' },
  },
  async run({ values, io }) {
    const tokenType = stringOption(values, 'token-type') ?? 'id_token';
    if (tokenType !== 'id_token' && tokenType !== 'jwt') throw new UsageError('--token-type must be id_token or jwt');
    const perms = (flag: string) => listOption(values, flag).map(parsePermissionFlag);
    const maxDepth = Number(stringOption(values, 'max-depth') ?? 0);
    if (!Number.isInteger(maxDepth) || maxDepth < 0) throw new UsageError('--max-depth must be a non-negative integer');
    const scope = perms('scope');
    if (scope.length === 0) throw new UsageError('--scope is required');
    const servers = serverAddresses([required(values, 'server')]);
    const bundlePem = readPemBundle(required(values, 'bundle'));
    const subjectToken = readInputFile(required(values, 'token-file'), '--token-file').toString('utf8').trim();
    const request = {
      subjectToken,
      subjectTokenType: `urn:ietf:params:oauth:token-type:${tokenType}`,
      taskId: required(values, 'task-id'),
      goal: required(values, 'goal'),
      ttlSeconds: seconds(stringOption(values, 'ttl'), '--ttl'),
      scope,
      boundaries: perms('boundary'),
      escalate: perms('escalate'),
      maxDepth,
      delegateJkt: required(values, 'delegate'),
    };
    const res = await withFailover(servers, (server) => createGrant(server, bundlePem, request));
    writeFileAtomic(required(values, 'out'), `${res.grant}\n`);
    io.out(
      `grant ${res.grantId} for ${res.principalIss}#${res.principalSub}, task ends ${new Date(Number(res.expiresAt) * 1000).toISOString()}, policy ${res.policySnapshot.slice(0, 16)} (${res.policies.join(', ')})\n`,
    );
    return 0;
  },
};
