/**
 * A fake evidence type, `fake_hsm`, registered only through test builtins lists: it proves the
 * plug-in seam (config section, issuer verifier, relying-party re-verifier with the same
 * settings, agent producer with its own CLI option) without any code outside this folder
 * knowing its name.
 *
 * The "HSM" is a P-256 device key in a file. Evidence is JSON { device: SPKI, sig } where sig
 * is the device key's ECDSA P-256 signature over `context ‖ 0x00 ‖ nonce`; the issuer trusts the
 * devices in `attestation.fake_hsm.devices` (PEM public keys) and the `context` string of its
 * settings, which the re-verifier must use too (as a TPM re-verifier must use the issuer's
 * agent PCR).
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AttestationError } from '../../../src/errors.js';
import { listOption, stringOption, UsageError } from '../../../src/config/options.js';
import type { Section } from '../../../src/config/section.js';
import type { EvidencePlugin, EvidenceProducer } from '../../../src/attestation/plugin.js';
import type { EvidenceReverifier, EvidenceVerifier } from '../../../src/attestation/verifier.js';
import { printChecks, type CheckLine } from '../../../src/attestation/enclave/report.js';

export const FAKE_TYPE = 'fake_hsm';

interface FakeSettings {
  readonly devices: readonly Buffer[];
  readonly context: string;
}

const fail = (m: string) => new AttestationError('ERR_EVIDENCE_INVALID', `attestation(${FAKE_TYPE}): ${m}`);
const message = (context: string, nonce: Uint8Array) => Buffer.concat([Buffer.from(context), Buffer.from([0]), Buffer.from(nonce)]);
const deviceHash = (spki: Buffer) => createHash('sha256').update(spki).digest('hex');

function pemKeys(files: readonly string[], problem?: (m: string) => void): Buffer[] {
  const out: Buffer[] = [];
  for (const f of files) {
    try {
      out.push(createPublicKey(readFileSync(f)).export({ type: 'spki', format: 'der' }));
    } catch (e) {
      if (!problem) throw e;
      problem(`attestation.${FAKE_TYPE}.devices: ${f}: ${(e as Error).message}`);
    }
  }
  return out;
}

function parseSettings(s: Section): FakeSettings {
  s.only(['devices', 'context']);
  return { devices: pemKeys(s.files('devices'), (m) => s.problem(m)), context: s.str('context', 'fake-hsm-v1') };
}

/** Checks evidence against trusted devices; returns the device SPKI. */
function check(evidence: Buffer, trust: FakeSettings, nonce: Uint8Array): Buffer {
  let doc: { device?: unknown; sig?: unknown };
  try {
    doc = JSON.parse(evidence.toString('utf8')) as typeof doc;
  } catch {
    throw fail('evidence is not JSON');
  }
  if (typeof doc.device !== 'string' || typeof doc.sig !== 'string') throw fail('evidence needs device and sig');
  const device = Buffer.from(doc.device, 'base64');
  if (!trust.devices.some((d) => d.equals(device))) throw fail('device is not trusted');
  const key = createPublicKey({ key: device, format: 'der', type: 'spki' });
  if (!verify('sha256', message(trust.context, nonce), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(doc.sig, 'base64')))
    throw fail('signature does not verify');
  return device;
}

function fakeVerifier(settings: FakeSettings): EvidenceVerifier {
  return {
    type: FAKE_TYPE,
    maxEvidenceBytes: 4096,
    maxRounds: 1,
    async begin(ctx) {
      return {
        challenge: Buffer.alloc(0),
        async respond(evidence) {
          const device = check(evidence, settings, ctx.nonce);
          return {
            kind: 'attested',
            result: {
              selectors: [{ type: FAKE_TYPE, value: `device:${deviceHash(device)}` }],
              // The device is the hardware instance: what a platform revocation names, as tpm:ek_hash: does.
              platform: `${FAKE_TYPE}:device:${deviceHash(device)}`,
              evidenceDigest: createHash('sha256').update(evidence).digest(),
              publicEvidence: evidence,
            },
          };
        },
      };
    },
  };
}

function fakeReverifier(trust: FakeSettings): EvidenceReverifier {
  return {
    type: FAKE_TYPE,
    reverify(evidence, ctx) {
      const device = check(evidence, trust, ctx.binding);
      return {
        selectors: [{ type: FAKE_TYPE, value: `device:${deviceHash(device)}` }],
        checked: [`${FAKE_TYPE}: a trusted device signed the binding digest under context ${trust.context}`],
        takenFromIssuer: [],
      };
    },
  };
}

export const fakePlugin: EvidencePlugin<FakeSettings, FakeSettings> = {
  offlineCheck: {
    name: 'fake-hsm',
    options: { 'fake-hsm-context': { type: 'string', value: 'TEXT', help: 'the context string the issuer configured' } },
    async run({ values, io }) {
      if (stringOption(values, 'collateral') !== undefined) throw new UsageError('--collateral: fake-hsm evidence has no collateral');
      const roots = stringOption(values, 'roots');
      const nonce = stringOption(values, 'report-data');
      if (!roots || !nonce) throw new UsageError('fake-hsm needs --roots (device public keys) and --report-data');
      const lines: CheckLine[] = [];
      try {
        check(
          readFileSync(stringOption(values, 'evidence')!),
          { devices: pemKeys([roots]), context: stringOption(values, 'fake-hsm-context') ?? 'fake-hsm-v1' },
          Buffer.from(nonce, 'hex'),
        );
        lines.push({ status: 'ok', check: 'a trusted device signed the report data' });
      } catch (e) {
        lines.push({ status: 'failed', check: 'a trusted device signed the report data', detail: (e as Error).message });
      }
      lines.push({ status: 'unchecked', check: 'device firmware', detail: 'a fake has none' });
      return printChecks(io, lines, values.json === true);
    },
  },
  type: FAKE_TYPE,
  settings: parseSettings,
  describe: (s) => `${s.devices.length} trusted device(s), context ${s.context}`,
  verifier: (s) => fakeVerifier(s),
  relyingParty: {
    options: {
      'fake-hsm-devices': { type: 'string', multiple: true, value: 'FILE', help: 'trusted fake HSM device public keys' },
      'fake-hsm-context': { type: 'string', value: 'TEXT', help: 'the context string the issuer configured' },
    },
    fromOptions: (v) => ({ devices: pemKeys(listOption(v, 'fake-hsm-devices')), context: stringOption(v, 'fake-hsm-context') ?? 'fake-hsm-v1' }),
    fromSettings: (s) => s,
    reverifier: fakeReverifier,
  },
};

export const fakeProducer: EvidenceProducer = {
  type: FAKE_TYPE,
  selectedBy: 'fake-hsm',
  cliName: 'fake-hsm',
  options: {
    'fake-hsm': { type: 'string', value: 'DEVICE_KEY', help: 'the fake HSM device key (PKCS#8 PEM)' },
    'fake-hsm-key': { type: 'string', value: 'DEVICE_KEY', help: 'the same, with --evidence fake-hsm' },
    'fake-hsm-context': { type: 'string', value: 'TEXT', help: 'the context string to sign under' },
  },
  async open(values) {
    const file = stringOption(values, 'fake-hsm') ?? stringOption(values, 'fake-hsm-key');
    if (!file) throw new UsageError('--fake-hsm needs the device key file');
    const device: KeyObject = createPrivateKey(readFileSync(file));
    const context = stringOption(values, 'fake-hsm-context') ?? 'fake-hsm-v1';
    return {
      async respond(c) {
        const sig = sign('sha256', message(context, c.nonce), { key: device, dsaEncoding: 'ieee-p1363' });
        return Buffer.from(
          JSON.stringify({ device: createPublicKey(device).export({ type: 'spki', format: 'der' }).toString('base64'), sig: sig.toString('base64') }),
        );
      },
      close: async () => {},
    };
  },
};
