/**
 * The `nitro` evidence type's issuer side (README.md in this folder): its settings
 * (`attestation.nitro`), the verifier of one handshake, and the relying party's re-verification
 * of the document embedded in a writ with the same trust.
 */
import { createHash } from 'node:crypto';
import { InputFileError, readInputFile } from '../../config/files.js';
import { type OptionValues, UsageError } from '../../config/options.js';
import type { Section } from '../../config/section.js';
import { ENCLAVE_ROOTS_OPTION, enclaveRootFiles } from '../enclave/options.js';
import type { EvidencePlugin } from '../plugin.js';
import type { EvidenceReverifier, EvidenceVerifier } from '../verifier.js';
import { nitroOfflineCheck } from './check.js';
import { MAX_NITRO_DOCUMENT_BYTES, parseNitroDocument } from './document.js';
import { NitroEvidenceError } from './errors.js';
import { DEFAULT_NITRO_ANCHORS, anchorsIn, sha256Hex } from './roots.js';
import { NITRO_CLOCK_SKEW_MS, NITRO_TYPE, NitroChainCache, verifyNitroDocument } from './verify.js';

/** The CLI name of the type (`--enclave-roots nitro=FILE`, `writ enclave check --type nitro`). */
export const NITRO_CLI_NAME = 'nitro';
export const DEFAULT_MAX_AGE = '5m';
export const DEFAULT_MAX_CLOCK_SKEW = '1m';

export interface NitroSettings {
  /** Pinned roots (DER); the shipped AWS Nitro root G1 unless `roots` names others. */
  readonly anchors: readonly Buffer[];
  readonly rootFiles: readonly string[];
  readonly allowDebug: boolean;
  /** Oldest accepted document timestamp, before the issuer's clock, ms. */
  readonly maxAgeMs: number;
  /** Newest accepted document timestamp, after the issuer's clock, ms. */
  readonly maxClockSkewMs: number;
}

/** What a relying party trusts to re-verify embedded Nitro documents. */
export interface NitroTrust {
  readonly anchors: readonly Buffer[];
  readonly allowDebug: boolean;
}

export function parseNitroSettings(s: Section): NitroSettings {
  s.only(['roots', 'root_sha256', 'allow_debug', 'max_age', 'max_clock_skew']);
  const rootFiles = s.files('roots');
  let anchors: Buffer[] = [...DEFAULT_NITRO_ANCHORS];
  if (rootFiles.length) {
    anchors = [];
    for (const f of rootFiles) {
      try {
        anchors.push(...anchorsIn(readInputFile(f, s.name('roots')), f));
      } catch (e) {
        s.problem(e instanceof InputFileError ? e.message : `${s.name('roots')}: ${(e as Error).message}`);
      }
    }
  }
  const pins = s.strings('root_sha256', []).map((p) => p.replace(/:/g, '').toLowerCase());
  for (const p of pins)
    if (!/^[0-9a-f]{64}$/.test(p)) s.problem(`${s.name('root_sha256')}: ${JSON.stringify(p.slice(0, 80))} is not a SHA-256 fingerprint (64 hex digits)`);
  if (pins.length) {
    for (const a of anchors) if (!pins.includes(sha256Hex(a))) s.problem(`${s.name('roots')}: root ${sha256Hex(a)} is not one of ${s.name('root_sha256')}`);
  }
  return {
    anchors,
    rootFiles,
    allowDebug: s.bool('allow_debug', false),
    maxAgeMs: s.duration('max_age', DEFAULT_MAX_AGE),
    maxClockSkewMs: s.duration('max_clock_skew', DEFAULT_MAX_CLOCK_SKEW),
  };
}

export function nitroVerifier(settings: NitroSettings): EvidenceVerifier {
  const chainCache = new NitroChainCache();
  return {
    type: NITRO_TYPE,
    maxEvidenceBytes: MAX_NITRO_DOCUMENT_BYTES,
    maxRounds: 1,
    async begin(ctx) {
      return {
        challenge: Buffer.alloc(0),
        async respond(evidence) {
          const now = ctx.now.getTime();
          const v = verifyNitroDocument(evidence, {
            anchors: settings.anchors,
            at: ctx.now,
            allowDebug: settings.allowDebug,
            nonce: ctx.nonce,
            timestampWindow: { notBefore: now - settings.maxAgeMs, notAfter: now + settings.maxClockSkewMs },
            chainCache,
          });
          return {
            kind: 'attested',
            result: {
              selectors: v.selectors,
              platform: `${NITRO_TYPE}:module_id:${v.document.moduleId}`,
              evidenceDigest: createHash('sha256').update(evidence).digest(),
              publicEvidence: evidence,
            },
          };
        },
      };
    },
  };
}

/**
 * Deep verification: every check is the relying party's own, with its own roots. The chain is
 * checked at the document's timestamp (the leaf lives about three hours, often less than the
 * writ), which must not be ahead of the relying party's clock; that the document was fresh at
 * the handshake is the issuer's check.
 */
export function nitroReverifier(trust: NitroTrust): EvidenceReverifier {
  const chainCache = new NitroChainCache();
  return {
    type: NITRO_TYPE,
    reverify(evidence, ctx) {
      const { document } = parseNitroDocument(evidence);
      if (document.timestamp > ctx.at.getTime() + NITRO_CLOCK_SKEW_MS)
        throw new NitroEvidenceError('timestamp', `the document's timestamp ${new Date(document.timestamp).toISOString()} is in the future`);
      const v = verifyNitroDocument(evidence, {
        anchors: trust.anchors,
        at: new Date(document.timestamp),
        allowDebug: trust.allowDebug,
        nonce: ctx.binding,
        chainCache,
      });
      return {
        selectors: v.selectors,
        checked: [
          'nitro: COSE_Sign1 ES384 signature by the leaf certificate over the exact Sig_structure',
          `nitro: chain leaf → cabundle → pinned root ${v.rootSha256.slice(0, 16)}… valid at the document's timestamp ${new Date(document.timestamp).toISOString()}`,
          'nitro: the document nonce is the binding digest recomputed from the writ',
          v.debug ? 'nitro: a debug enclave (PCR0 all zero), accepted by this relying party' : 'nitro: not a debug enclave (PCR0 is not all zero)',
        ],
        takenFromIssuer: ["nitro: the document was fresh at the handshake (its timestamp within the issuer's window of its clock)"],
      };
    },
  };
}

function trustFromOptions(values: OptionValues): NitroTrust {
  const files = enclaveRootFiles(values, NITRO_CLI_NAME);
  const anchors = files.length
    ? files.flatMap((f) => {
        const what = `--enclave-roots ${NITRO_CLI_NAME}=${f}`;
        try {
          return anchorsIn(readInputFile(f, what), what);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
      })
    : [...DEFAULT_NITRO_ANCHORS];
  return { anchors, allowDebug: values['nitro-allow-debug'] === true };
}

export const nitroPlugin: EvidencePlugin<NitroSettings, NitroTrust> = {
  type: NITRO_TYPE,
  settings: parseNitroSettings,
  describe: (s) =>
    `${s.rootFiles.length ? `${s.anchors.length} root(s) from ${s.rootFiles.length} file(s)` : 'the shipped AWS Nitro root G1'} (${s.anchors
      .map((a) => sha256Hex(a).slice(0, 16))
      .join(', ')}), debug enclaves ${s.allowDebug ? 'allowed' : 'refused'}, timestamps from -${s.maxAgeMs / 1000}s to +${s.maxClockSkewMs / 1000}s`,
  verifier: (s) => nitroVerifier(s),
  relyingParty: {
    options: {
      ...ENCLAVE_ROOTS_OPTION,
      'nitro-allow-debug': { type: 'boolean', help: 'accept embedded Nitro documents from debug enclaves (PCR0 all zero)' },
    },
    fromOptions: trustFromOptions,
    fromSettings: (s) => ({ anchors: s.anchors, allowDebug: s.allowDebug }),
    reverifier: nitroReverifier,
  },
  offlineCheck: nitroOfflineCheck,
};
