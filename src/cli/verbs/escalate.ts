/**
 * `writ escalate`: the agent asks a human approver for one concrete permission (Escalate, with a
 * proof signed by the writ's key); with --wait it follows WatchApproval until the decision
 * and writes the step-up grant if approved. Ctrl-C stops waiting (exit 130, the id printed, the
 * request still pending, nothing written); the same command again resumes, since a repeated
 * escalation from the same writ for the same permission answers the pending request.
 */
import { readInputFile, writeFileAtomic } from '../../config/files.js';
import { stringOption, UsageError, type OptionSpecs } from '../../config/options.js';
import { serverAddresses, withFailover } from '../../agent/failover.js';
import { escalate, watchApproval, type AgentAuth } from '../../agent/approval-client.js';
import { keyOptions, openAgentKey } from '../../agent/keys.js';
import { readPemBundle } from '../bundle-file.js';
import { oneLine } from './task/format.js';
import { required, type CliCatalog, type Verb } from '../verb.js';
import { approvalJson, ISSUER_OPTIONS } from './approval/common.js';

/** The exit code of a wait stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it). */
export const EXIT_INTERRUPTED = 130;

class Interrupted extends Error {}

function options(catalog: CliCatalog): OptionSpecs {
  return {
    ...ISSUER_OPTIONS,
    writ: { type: 'string', value: 'F', help: 'the writ asking' },
    ...keyOptions(catalog.producers),
    action: { type: 'string', value: 'A', help: 'the action wanted (concrete, no *)' },
    resource: { type: 'string', value: 'R', help: 'the resource wanted (concrete, no *)' },
    reason: { type: 'string', value: 'TEXT', help: 'why, shown to the approver' },
    wait: { type: 'boolean', help: 'wait for the decision (exit 1 if denied or expired, 130 on Ctrl-C: run it again to resume)' },
    out: { type: 'string', value: 'FILE', help: 'with --wait: where to write the step-up grant (default: print it)' },
    json: { type: 'boolean', help: 'print JSON' },
  };
}

/** The writ's issuer (its `iss`), the audience of the proofs. */
function writIssuer(writ: string): string {
  try {
    const iss = JSON.parse(Buffer.from(writ.split('.')[1] ?? '', 'base64url').toString('utf8')).iss;
    if (typeof iss === 'string' && iss) return iss;
  } catch {}
  throw new UsageError('--writ does not hold a writ (a JWS with an iss claim)');
}

export const escalateVerb: Verb = {
  name: ['escalate'],
  summary: 'ask an approver for one permission beyond the writ; --wait for the decision and the step-up grant',
  required: ['server', 'bundle', 'writ', 'action', 'resource', 'reason'],
  options,
  async run({ values, catalog, io }) {
    const servers = serverAddresses([required(values, 'server')]);
    const bundlePem = readPemBundle(required(values, 'bundle'));
    const writ = readInputFile(required(values, 'writ'), '--writ').toString('utf8').trim();
    const req = { action: required(values, 'action'), resource: required(values, 'resource'), reason: required(values, 'reason') };
    const out = stringOption(values, 'out');
    if (out && !values.wait) throw new UsageError('--out needs --wait');
    const opened = await openAgentKey(values, catalog.producers);
    try {
      const auth: AgentAuth = { writ, key: opened.key.signer, audience: writIssuer(writ) };
      let server = servers[0]!;
      const res = await withFailover(servers, (s) => {
        server = s;
        return escalate(s, bundlePem, auth, req);
      });
      const pending = res.approval;
      if (!pending) throw new Error('the issuer returned no approval');
      if (!values.wait) {
        io.out(values.json ? `${JSON.stringify(approvalJson(pending))}\n` : `approval ${pending.id}: ${pending.state}\n`);
        return 0;
      }
      let done = pending;
      if (pending.state === 'pending') {
        // Ctrl-C (or SIGTERM): the watch is cancelled, nothing is written, the request stays
        // pending; the same command again resumes (Escalate answers the pending request).
        const interrupted = new AbortController();
        const onSignal = () => interrupted.abort(new Interrupted());
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        // Printed once Ctrl-C is handled: whoever reads it may interrupt.
        if (!values.json) io.err(`approval ${pending.id}: pending, waiting for an approver (Ctrl-C stops waiting)\n`);
        try {
          done = await watchApproval(server, bundlePem, auth, pending.id, { signal: interrupted.signal });
        } catch (e) {
          if (!(e instanceof Interrupted)) throw e;
          io.err(`writ: approval ${pending.id}: stopped waiting; the request is still pending. Run the same command again to resume waiting for it\n`);
          return EXIT_INTERRUPTED;
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }
      if (values.json) io.out(`${JSON.stringify(approvalJson(done))}\n`);
      if (done.state === 'approved') {
        if (out) writeFileAtomic(out, `${done.stepUpGrant}\n`);
        if (!values.json) io.out(out ? `approval ${done.id}: approved by ${oneLine(done.decidedBy)}, step-up grant in ${out}\n` : `${done.stepUpGrant}\n`);
        return 0;
      }
      const why = done.decisionReason ? `: ${oneLine(done.decisionReason)}` : '';
      io.err(`writ: approval ${done.id} ${done.state}${done.decidedBy ? ` by ${oneLine(done.decidedBy)}` : ''}${why}\n`);
      return 1;
    } finally {
      await opened.close();
    }
  },
};
