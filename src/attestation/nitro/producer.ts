/**
 * The `nitro` evidence type's agent side. Inside an enclave the NSM is reached through
 * `/dev/nsm` with an ioctl, which Node cannot issue without native code, so the sidecar runs a
 * command the operator names (an NSM helper built with aws-nitro-enclaves-nsm-api, for
 * instance) for each handshake:
 *
 *   COMMAND [--nitro-arg ...] HEX      with HEX (and a newline) also on its standard input
 *
 * where HEX is the challenge nonce (the binding digest B, 32 bytes) as 64 lower-case hex
 * digits; the command must ask the NSM for an attestation document whose `nonce` is those 32
 * bytes and print the document on standard output, raw (CBOR) or base64. No shell is involved.
 * The output is bounded, the command is killed after `--nitro-timeout`, and the document is
 * parsed and its nonce compared before it is sent, so a broken helper fails here, clearly.
 */
import { spawn } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { parseDuration } from '../../config/duration.js';
import { listOption, stringOption, UsageError } from '../../config/options.js';
import { AttestationError } from '../../errors.js';
import type { EvidenceProducer } from '../plugin.js';
import { readNitroEvidence } from './check.js';
import { MAX_NITRO_DOCUMENT_BYTES, parseNitroDocument } from './document.js';
import { NITRO_CLI_NAME } from './plugin.js';
import { NITRO_TYPE } from './verify.js';

export const DEFAULT_NSM_TIMEOUT = '10s';
/** Largest output read from the command: a base64 document of MAX_NITRO_DOCUMENT_BYTES with line breaks. */
export const MAX_NSM_OUTPUT_BYTES = 2 * MAX_NITRO_DOCUMENT_BYTES + 1024;
/** How much of the command's standard error is kept for the message. */
const MAX_STDERR_BYTES = 2048;

const fail = (m: string, cause?: unknown) =>
  new AttestationError('ERR_EVIDENCE_INVALID', `attestation(nitro): ${m}`, cause === undefined ? undefined : { cause });

/** Runs the NSM command for one nonce; resolves with its standard output. */
export function runNsmCommand(command: string, args: readonly string[], nonce: Uint8Array, timeoutMs: number): Promise<Buffer> {
  const hex = Buffer.from(nonce).toString('hex');
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args, hex], { stdio: ['pipe', 'pipe', 'pipe'], shell: false });
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = Buffer.alloc(0);
    let done = false;
    const finish = (e: Error | undefined, v?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (e) {
        child.kill('SIGKILL');
        reject(e);
      } else resolve(v!);
    };
    const timer = setTimeout(() => finish(fail(`the NSM command ${command} did not finish within ${timeoutMs} ms`)), timeoutMs);
    child.on('error', (e) => finish(fail(`cannot run the NSM command ${command}: ${e.message}`, e)));
    child.stdout.on('data', (b: Buffer) => {
      outBytes += b.length;
      if (outBytes > MAX_NSM_OUTPUT_BYTES) return finish(fail(`the NSM command printed more than ${MAX_NSM_OUTPUT_BYTES} bytes`));
      out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => {
      if (err.length < MAX_STDERR_BYTES) err = Buffer.concat([err, b]).subarray(0, MAX_STDERR_BYTES);
    });
    // A command that does not read its standard input closes it; that is not an error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(`${hex}\n`);
    child.on('close', (code, signal) => {
      if (code !== 0) {
        const why = err.toString('utf8').trim().split('\n')[0]?.slice(0, 200);
        return finish(fail(`the NSM command ${command} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}${why ? `: ${why}` : ''}`));
      }
      finish(undefined, Buffer.concat(out));
    });
  });
}

export const nitroProducer: EvidenceProducer = {
  type: NITRO_TYPE,
  selectedBy: 'nitro-command',
  cliName: NITRO_CLI_NAME,
  options: {
    'nitro-command': {
      type: 'string',
      value: 'PATH',
      help: 'a command in the enclave that prints the NSM attestation document (raw or base64) for the nonce it gets as its last argument (hex) and on stdin',
    },
    'nitro-arg': {
      type: 'string',
      multiple: true,
      value: 'ARG',
      takesNext: true,
      help: 'an argument for the NSM command, before the nonce (may begin with -)',
    },
    'nitro-timeout': { type: 'string', value: 'D', help: `how long the NSM command may take (default ${DEFAULT_NSM_TIMEOUT})` },
  },
  async open(values) {
    const command = stringOption(values, 'nitro-command');
    if (!command) throw new UsageError('--evidence nitro needs --nitro-command PATH (the command that asks the NSM for an attestation document)');
    const args = listOption(values, 'nitro-arg');
    let timeoutMs: number;
    try {
      timeoutMs = parseDuration(stringOption(values, 'nitro-timeout') ?? DEFAULT_NSM_TIMEOUT);
    } catch (e) {
      throw new UsageError(`--nitro-timeout: ${(e as Error).message}`);
    }
    if (timeoutMs <= 0) throw new UsageError('--nitro-timeout must be positive');
    return {
      async respond(c) {
        const doc = readNitroEvidence(await runNsmCommand(command, args, c.nonce, timeoutMs));
        const { document } = parseNitroDocument(doc);
        const nonce = Buffer.from(c.nonce);
        if (!document.nonce || document.nonce.length !== nonce.length || !timingSafeEqual(document.nonce, nonce))
          throw fail('the NSM command printed a document whose nonce is not the challenge nonce it was given');
        return doc;
      },
      close: async () => {},
    };
  },
};
