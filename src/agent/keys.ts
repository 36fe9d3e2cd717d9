/**
 * The agent key for verbs that sign with it: a PKCS#8 file (`--key`), or a key an evidence type
 * holds (e.g. TPM-resident: `--tpm SPEC --tpm-key-file F`), offered by the producers in
 * agent/builtins.ts. Exactly one must be named.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readInputFile } from '../config/files.js';
import { stringOption, UsageError, type OptionSpecs, type OptionValues } from '../config/options.js';
import type { EvidenceProducer, HeldKey } from '../attestation/plugin.js';
import { keySigner } from '../jose/jws.js';

export const KEY_FILE_OPTION: OptionSpecs = {
  key: { type: 'string', value: 'FILE', help: 'the agent key, PKCS#8 PEM (writ agent keygen writes agent.key)' },
};

/** The options that name an agent key: `--key` and every custody's. */
export function keyOptions(producers: readonly EvidenceProducer[]): OptionSpecs {
  return Object.assign({}, KEY_FILE_OPTION, ...producers.map((p) => p.keys?.options ?? {}));
}

/** Reads a PKCS#8 (or SEC1/PKCS#1) private key file, with a clear error. */
export function readPrivateKey(file: string): KeyObject {
  const data = readInputFile(file, '--key');
  try {
    const k = createPrivateKey(data);
    if (k.type !== 'private') throw new Error('not a private key');
    return k;
  } catch {
    throw new Error(`--key: ${file} is not a PEM or DER private key`);
  }
}

export interface OpenedKey {
  readonly key: HeldKey;
  close(): Promise<void>;
}

/** Opens the key the options name; a usage error when none or more than one is named. */
export async function openAgentKey(values: OptionValues, producers: readonly EvidenceProducer[]): Promise<OpenedKey> {
  const file = stringOption(values, 'key');
  const custodies = producers.filter((p) => p.keys?.selected(values));
  const named = (file ? 1 : 0) + custodies.length;
  if (named !== 1) {
    const ways = [
      '--key FILE',
      ...producers.flatMap((p) =>
        p.keys
          ? [
              Object.keys(p.keys.options)
                .map((k) => `--${k}`)
                .join(' '),
            ]
          : [],
      ),
    ];
    throw new UsageError(`name the agent key with exactly one of: ${ways.join(' | ')}`);
  }
  if (file) {
    const k = readPrivateKey(file);
    const signer = keySigner(k);
    return { key: { signer, spki: signer.publicKey.export({ type: 'spki', format: 'der' }) }, close: async () => {} };
  }
  return custodies[0]!.keys!.open(values);
}
