/**
 * The `tpm` evidence type's agent side: the options it adds to `writ agent attest`, the
 * evidence (attestor.ts), TPM-resident agent keys for every verb that signs with the agent
 * key, and the verbs `writ tpm check-quote` and `writ tpm ek-hash`.
 */
import { TpmError } from '../../errors.js';
import { certificatesInFile, readInputFile } from '../../config/files.js';
import { stringOption, UsageError, type OptionSpecs, type OptionValues } from '../../config/options.js';
import { Tpm } from '../../tpm/client.js';
import { parsePcrSelectionSpec } from '../../tpm/structures.js';
import { tss2PrivateKeyPem } from './tss2-key.js';
import type { EvidenceProducer, HeldKey, KeyCustody, PluginCommand } from '../plugin.js';
import { TpmAttestor, type TpmAttestorOptions } from './attestor.js';
import { checkQuoteOffline } from './check-quote.js';
import { TPM_TYPE } from './verifier.js';

const TPM_SPEC = { type: 'string', value: 'SPEC', help: 'the TPM: /dev/tpmrm0, or swtpm:host=127.0.0.1,port=2321' } as const;
const EK_OPTION = { type: 'string', value: 'rsa2048|ecc384', help: 'which TCG EK template (default rsa2048)' } as const;

/** What `writ agent keygen --tpm` and `--tpm-key` write: the wrapped key, loadable by its TPM alone. */
interface ResidentBlob {
  readonly public: Buffer;
  readonly private: Buffer;
}

export function residentBlobText(k: ResidentBlob): string {
  return `${JSON.stringify({ parent: 'srk:ecc-p256', public: k.public.toString('base64'), private: k.private.toString('base64') })}\n`;
}

export function readResidentBlob(file: string): ResidentBlob {
  let blob: { public?: unknown; private?: unknown };
  try {
    blob = JSON.parse(readInputFile(file, 'a TPM key blob').toString('utf8')) as typeof blob;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${file} is not a TPM key blob (writ agent keygen --tpm writes one)`);
  }
  if (typeof blob.public !== 'string' || typeof blob.private !== 'string')
    throw new UsageError(`${file} is not a TPM key blob (writ agent keygen --tpm writes one)`);
  return { public: Buffer.from(blob.public, 'base64'), private: Buffer.from(blob.private, 'base64') };
}

function ekChoice(values: OptionValues): 'rsa2048' | 'ecc384' | undefined {
  const ek = stringOption(values, 'ek');
  if (ek !== undefined && ek !== 'rsa2048' && ek !== 'ecc384') throw new UsageError('--ek must be rsa2048 or ecc384');
  return ek;
}

function attestorOptions(values: OptionValues): TpmAttestorOptions {
  const ak = stringOption(values, 'ak');
  if (ak !== undefined && ak !== 'ecc' && ak !== 'rsa') throw new UsageError('--ak must be ecc or rsa');
  const measure = stringOption(values, 'measure');
  const measureLog = stringOption(values, 'measure-log');
  if ((measure === undefined) !== (measureLog === undefined)) throw new UsageError('--measure and --measure-log go together');
  const eventLog = stringOption(values, 'event-log');
  const ek = ekChoice(values);
  return {
    ...(ek ? { ek } : {}),
    ...(ak ? { ak } : {}),
    ...(measure && measureLog ? { measure: { path: measure, logFile: measureLog } } : {}),
    ...(eventLog ? { eventLog: readInputFile(eventLog, 'the firmware event log') } : {}),
  };
}

async function openTpm(values: OptionValues): Promise<Tpm> {
  const spec = stringOption(values, 'tpm');
  if (!spec) throw new UsageError('--tpm SPEC is required (/dev/tpmrm0 or swtpm:host=H,port=N)');
  return Tpm.open(spec);
}

const custodyOptions: OptionSpecs = {
  tpm: TPM_SPEC,
  'tpm-key-file': { type: 'string', value: 'FILE', help: 'a TPM-resident agent key made by `writ agent keygen --tpm` (signs inside the TPM)' },
};

/** TPM-resident agent keys: made under the SRK, never exportable; signatures by TPM2_Sign. */
const residentKeys: KeyCustody = {
  options: custodyOptions,
  selected: (values) => stringOption(values, 'tpm-key-file') !== undefined,
  async open(values) {
    const blob = readResidentBlob(stringOption(values, 'tpm-key-file')!);
    const tpm = await openTpm(values);
    const attestor = new TpmAttestor(tpm);
    try {
      const spki = await attestor.loadResidentKey(blob.public, blob.private);
      return {
        key: { signer: attestor.residentSigner(), spki },
        close: async () => {
          await attestor.close();
          await tpm.close();
        },
      };
    } catch (e) {
      await attestor.close();
      await tpm.close();
      throw e;
    }
  },
  keygenOptions: {
    tpm: {
      ...TPM_SPEC,
      help: 'make the key inside this TPM (only its wrapped blob is written: agent.key.tpm, and agent.key.tss2.pem for OpenSSL’s tpm2 provider)',
    },
  },
  async keygen(values) {
    const tpm = await openTpm(values);
    const attestor = new TpmAttestor(tpm);
    try {
      const k = await attestor.createResidentKey();
      return {
        signer: attestor.residentSigner(),
        spki: k.spki,
        files: [
          { name: 'agent.key.tpm', text: residentBlobText(k) },
          // The same key for OpenSSL's tpm2 provider (a TLS server signing inside this TPM).
          { name: 'agent.key.tss2.pem', text: tss2PrivateKeyPem(k) },
        ],
      };
    } finally {
      await attestor.close();
      await tpm.close();
    }
  },
};

const checkQuote: PluginCommand = {
  name: ['tpm', 'check-quote'],
  summary: 'check a quote offline, from files as tpm2-tools writes them',
  options: {
    'ak-pub': { type: 'string', value: 'F', help: 'the AK public area (TPM2B_PUBLIC, tpm2_createak -u)' },
    attest: { type: 'string', value: 'F', help: 'TPMS_ATTEST (tpm2_quote -m)' },
    sig: { type: 'string', value: 'F', help: 'TPMT_SIGNATURE (tpm2_quote -s)' },
    pcrs: { type: 'string', value: 'F', help: 'PCR values as tpm2_pcrread -o writes them' },
    'pcr-selection': { type: 'string', value: 'SEL', help: 'the quoted PCRs, e.g. sha256:0,1,2,3,7' },
    nonce: { type: 'string', value: 'HEX', help: 'the qualifying data the quote must carry' },
    'ek-cert': { type: 'string', value: 'F', help: 'the EK certificate (with --ek-pub and --roots)' },
    'ek-pub': { type: 'string', value: 'F', help: 'the EK public area' },
    roots: { type: 'string', value: 'F', help: 'manufacturer root certificates' },
    intermediates: { type: 'string', value: 'F', help: 'intermediates for the EK chain' },
    eventlog: { type: 'string', value: 'F', help: 'a TCG event log to replay against the quoted PCRs' },
  },
  async run({ values, io, now }) {
    const need = (flag: string): string => {
      const v = stringOption(values, flag);
      if (!v) throw new UsageError(`--${flag} is required`);
      return v;
    };
    const nonceHex = need('nonce');
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(nonceHex)) throw new UsageError('--nonce must be hex');
    let selection;
    try {
      selection = parsePcrSelectionSpec(need('pcr-selection'));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const ekFlags = ['ek-cert', 'ek-pub', 'roots'].filter((f) => stringOption(values, f) !== undefined);
    if (ekFlags.length !== 0 && ekFlags.length !== 3) throw new UsageError('--ek-cert, --ek-pub and --roots go together');
    const file = (flag: string) => readInputFile(need(flag), `--${flag}`);
    const eventlog = stringOption(values, 'eventlog');
    const intermediates = stringOption(values, 'intermediates');
    const report = checkQuoteOffline({
      akPublic: file('ak-pub'),
      attest: file('attest'),
      signature: file('sig'),
      pcrValues: file('pcrs'),
      selection,
      nonce: Buffer.from(nonceHex, 'hex'),
      ...(eventlog ? { eventLog: readInputFile(eventlog, '--eventlog') } : {}),
      ...(ekFlags.length === 3
        ? {
            ek: {
              certificate: certificatesInFile(need('ek-cert'))[0]!,
              public: file('ek-pub'),
              roots: certificatesInFile(need('roots')),
              intermediates: intermediates ? certificatesInFile(intermediates) : [],
              at: now(),
            },
          }
        : {}),
    });
    io.out(`${report.checks.map((c) => `ok       ${c}`).join('\n')}\n`);
    io.out(`${report.notChecked.map((c) => `unchecked ${c}`).join('\n')}\n`);
    return 0;
  },
};

const ekHash: PluginCommand = {
  name: ['tpm', 'ek-hash'],
  summary: 'print the EK hash of a TPM: the value of its tpm:ek_hash: selector',
  options: { tpm: TPM_SPEC, ek: EK_OPTION },
  async run({ values, io }) {
    const tpm = await openTpm(values);
    const ek = ekChoice(values);
    const attestor = new TpmAttestor(tpm, ek ? { ek } : {});
    try {
      const { ekHash } = await attestor.endorsementKey();
      io.out(`${ekHash}\n`);
      io.err(`selector: tpm:ek_hash:${ekHash}\n`);
      return 0;
    } finally {
      await attestor.close();
      await tpm.close();
    }
  },
};

export const tpmProducer: EvidenceProducer = {
  type: TPM_TYPE,
  selectedBy: 'tpm',
  options: {
    tpm: TPM_SPEC,
    ek: EK_OPTION,
    ak: { type: 'string', value: 'ecc|rsa', help: 'AK key type (default ecc, P-256)' },
    measure: { type: 'string', value: 'AGENT_PATH', help: 'measure this executable into the agent PCR before quoting (with --measure-log)' },
    'measure-log': { type: 'string', value: 'FILE', help: 'where the sidecar keeps its log of the agent PCR' },
    'event-log': { type: 'string', value: 'FILE', help: "the firmware's TCG event log to send (e.g. /sys/kernel/security/tpm0/binary_bios_measurements)" },
    'tpm-key': { type: 'boolean', help: 'make the agent key inside the TPM for this handshake (its wrapped blob is written as svid.key.tpm)' },
    'tpm-key-file': custodyOptions['tpm-key-file']!,
  },
  async open(values) {
    const opts = attestorOptions(values);
    const createKey = values['tpm-key'] === true;
    const keyFile = stringOption(values, 'tpm-key-file');
    if (createKey && keyFile) throw new UsageError('--tpm-key and --tpm-key-file are exclusive');
    const blob = keyFile ? readResidentBlob(keyFile) : undefined;
    const tpm = await openTpm(values);
    const attestor = new TpmAttestor(tpm, opts);
    const close = async () => {
      await attestor.close();
      await tpm.close();
    };
    try {
      let key: HeldKey | undefined;
      if (createKey) {
        const k = await attestor.createResidentKey();
        key = { signer: attestor.residentSigner(), spki: k.spki, files: [{ name: 'svid.key.tpm', text: residentBlobText(k) }] };
      } else if (blob) {
        const spki = await attestor.loadResidentKey(blob.public, blob.private);
        key = { signer: attestor.residentSigner(), spki };
      }
      // A TPM failure while answering (its connection lost, a command refused) is kept, so that
      // restart says the session is done: the agent key signs through this TPM connection too.
      let failed: TpmError | undefined;
      const respond = async (c: { readonly nonce: Uint8Array; readonly payload: Uint8Array }) => {
        try {
          return await attestor.respond(c);
        } catch (e) {
          if (e instanceof TpmError) failed = e;
          throw e;
        }
      };
      const restart = async () => {
        if (failed) throw failed;
        await attestor.restart();
      };
      return { ...(key ? { key } : {}), respond, restart, close };
    } catch (e) {
      await close();
      throw e;
    }
  },
  keys: residentKeys,
  commands: [checkQuote, ekHash],
};
