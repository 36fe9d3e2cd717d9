import { timingSafeEqual } from 'node:crypto';
/**
 * `writ enclave check --type nitro`: an offline check of an attestation document as the NSM
 * writes it (raw CBOR, or base64 of it as most tools print it), every check printed. Exit 0 only
 * when every check it can make passes; the nonce and the freshness are checked only when the
 * caller gives what to compare with (`--report-data`, `--nitro-max-age`), else printed unchecked.
 */
import { readInputFile } from '../../config/files.js';
import { stringOption, UsageError, type OptionValues } from '../../config/options.js';
import { parseDuration } from '../../config/duration.js';
import { type CheckLine, printChecks } from '../enclave/report.js';
import type { OfflineCheck } from '../plugin.js';
import { MAX_NITRO_DOCUMENT_BYTES, parseNitroDocument, type CoseSign1 } from './document.js';
import { malformed } from './errors.js';
import { DEFAULT_NITRO_ANCHORS, anchorsIn, sha256Hex } from './roots.js';
import { NITRO_CLOCK_SKEW_MS, nitroSelectors, verifyNitroChain, verifyNitroSignature } from './verify.js';

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * The document bytes from a file: raw COSE_Sign1 (an array of 4, or tag 18) or its base64
 * (standard or URL-safe alphabet, whitespace ignored). UNTRUSTED input.
 */
export function readNitroEvidence(data: Buffer): Buffer {
  if (data.length > 0 && (data[0] === 0x84 || data[0] === 0xd2)) return data;
  const text = data.toString('latin1').replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/');
  if (text.length === 0 || text.length > Math.ceil((MAX_NITRO_DOCUMENT_BYTES * 4) / 3) + 4 || !BASE64.test(text))
    throw malformed('the evidence is neither a COSE_Sign1 document nor base64 of one');
  const raw = Buffer.from(text, 'base64');
  if (raw.length === 0 || (raw[0] !== 0x84 && raw[0] !== 0xd2)) throw malformed('the base64 evidence does not decode to a COSE_Sign1 document');
  return raw;
}

function instant(values: OptionValues, now: Date): Date {
  const text = stringOption(values, 'at');
  if (text === undefined) return now;
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) throw new UsageError('--at must be an ISO 8601 instant, e.g. 2024-11-14T23:46:27Z');
  return at;
}

function reportData(values: OptionValues): Buffer | undefined {
  const text = stringOption(values, 'report-data');
  if (text === undefined) return undefined;
  if (!/^([0-9a-fA-F]{2}){1,512}$/.test(text)) throw new UsageError('--report-data must be 1..512 bytes of hex (the nonce the document must carry)');
  return Buffer.from(text, 'hex');
}

export const nitroOfflineCheck: OfflineCheck = {
  name: 'nitro',
  options: {
    'nitro-max-age': { type: 'string', value: 'D', help: 'fail when the document is older than this before --at (e.g. 5m)' },
  },
  async run({ values, io, now }) {
    for (const o of ['certs', 'collateral', 'require-tcb'])
      if (values[o] !== undefined) throw new UsageError(`--${o}: a Nitro document carries its certificates and has no TCB collateral`);
    const at = instant(values, now());
    const nonce = reportData(values);
    const maxAgeText = stringOption(values, 'nitro-max-age');
    let maxAge: number | undefined;
    if (maxAgeText !== undefined) {
      try {
        maxAge = parseDuration(maxAgeText);
      } catch (e) {
        throw new UsageError(`--nitro-max-age: ${(e as Error).message}`);
      }
    }
    const rootsFile = stringOption(values, 'roots');
    let anchors: readonly Buffer[] = DEFAULT_NITRO_ANCHORS;
    if (rootsFile !== undefined) {
      try {
        anchors = anchorsIn(readInputFile(rootsFile, '--roots'), rootsFile);
      } catch (e) {
        throw new UsageError(`--roots: ${(e as Error).message}`);
      }
    }
    const allowDebug = values['allow-debug'] === true;
    const json = values.json === true;
    const lines: CheckLine[] = [];
    const step = (check: string, f: () => string | undefined): boolean => {
      try {
        const detail = f();
        lines.push({ status: 'ok', check, ...(detail ? { detail } : {}) });
        return true;
      } catch (e) {
        lines.push({ status: 'failed', check, detail: (e as Error).message });
        return false;
      }
    };

    const file = readInputFile(stringOption(values, 'evidence')!, '--evidence');
    let cose: CoseSign1 | undefined;
    const parsed = step('COSE_Sign1 (ES384) attestation document parsed strictly', () => {
      cose = parseNitroDocument(readNitroEvidence(file));
      return `module_id ${cose.document.moduleId}, timestamp ${new Date(cose.document.timestamp).toISOString()}`;
    });
    if (!parsed || !cose) return printChecks(io, lines, json);
    const doc = cose.document;
    const signed = cose;
    step('ES384 signature by the leaf certificate over the exact Sig_structure', () => {
      verifyNitroSignature(signed);
      return undefined;
    });
    step(`certificate chain leaf → cabundle (${doc.cabundle.length}) → a pinned root, valid at ${at.toISOString()}`, () => {
      const root = verifyNitroChain(doc, anchors, at);
      return `root SHA-256 ${root}`;
    });
    step(allowDebug ? 'debug enclave (PCR0 all zero) allowed by --allow-debug' : 'not a debug enclave (PCR0 is not all zero)', () => {
      const debug = doc.pcrs.get(0)?.every((b) => b === 0) ?? true;
      if (debug && !allowDebug) throw new Error('PCR0 is all zero: the enclave runs in debug mode (give --allow-debug to accept it)');
      return debug ? 'PCR0 is all zero' : undefined;
    });
    if (nonce) {
      step('nonce equals --report-data', () => {
        if (!doc.nonce || doc.nonce.length !== nonce.length || !timingSafeEqual(doc.nonce, nonce))
          throw new Error(doc.nonce ? `the nonce is ${doc.nonce.toString('hex')}` : 'the document has no nonce');
        return undefined;
      });
    } else
      lines.push({
        status: 'unchecked',
        check: 'nonce',
        detail: doc.nonce ? `${doc.nonce.toString('hex')} (give --report-data to compare)` : 'the document has none',
      });
    step(
      `timestamp at most ${NITRO_CLOCK_SKEW_MS / 1000}s after ${at.toISOString()}${maxAge !== undefined ? ` and at most ${maxAgeText} before it` : ''}`,
      () => {
        if (doc.timestamp > at.getTime() + NITRO_CLOCK_SKEW_MS) throw new Error(`the timestamp ${new Date(doc.timestamp).toISOString()} is later`);
        if (maxAge !== undefined && doc.timestamp < at.getTime() - maxAge) throw new Error(`the timestamp ${new Date(doc.timestamp).toISOString()} is older`);
        return undefined;
      },
    );
    if (maxAge === undefined) lines.push({ status: 'unchecked', check: 'freshness', detail: 'give --nitro-max-age to bound the age of the document' });
    const pcrs = Object.fromEntries([...doc.pcrs].map(([i, v]) => [String(i), v.toString('hex')]));
    const code = printChecks(io, lines, json, {
      moduleId: doc.moduleId,
      timestamp: new Date(doc.timestamp).toISOString(),
      pcrs,
      ...(doc.userData ? { userData: doc.userData.toString('hex') } : {}),
      ...(doc.publicKey ? { publicKey: doc.publicKey.toString('hex') } : {}),
      ...(doc.nonce ? { nonce: doc.nonce.toString('hex') } : {}),
      cabundleSha256: doc.cabundle.map(sha256Hex),
    });
    if (!json) for (const s of nitroSelectors(doc)) io.out(`selector ${s.type}:${s.value}\n`);
    return code;
  },
};
